//! Operation names: parsing, validation, and their parts.
//!
//! Google Cloud names operations by resource path. The forms accepted here are
//!
//! | form | example |
//! |---|---|
//! | `projects/P/locations/L/operations/ID` | `projects/my-proj/locations/us-west1/operations/bc4e1d412863e626` |
//! | `locations/L/operations/ID` | Vision's REST form, with the project sent in `x-goog-user-project` |
//! | `projects/P/operations/ID` | APIs without locations |
//! | `operations/ID` | global operations |

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A validated operation name.
///
/// ```
/// use longrunning::OperationName;
///
/// let name: OperationName = "projects/p1/locations/us-west1/operations/bc4e1d412863e626".parse()?;
/// assert_eq!(name.id(), "bc4e1d412863e626");
/// assert_eq!(name.location(), Some("us-west1"));
/// assert_eq!(name.project(), Some("p1"));
///
/// let rest = OperationName::in_location("us-west1", "bc4e1d412863e626")?;
/// assert_eq!(rest.as_str(), "locations/us-west1/operations/bc4e1d412863e626");
/// assert_eq!(rest.project(), None);
/// # Ok::<(), longrunning::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationName {
    full: String,
    layout: Layout,
}

/// Where the parts sit among the `/`-separated segments.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
enum Layout {
    Global,
    Project,
    Location,
    ProjectLocation,
}

const FORMS: &str = "expected projects/P/locations/L/operations/ID, locations/L/operations/ID, \
                     projects/P/operations/ID or operations/ID";

impl OperationName {
    /// Parses and validates a full operation name.
    pub fn parse(name: &str) -> Result<Self> {
        // One pass over the bytes: the segments (at most six are ever valid, read without
        // allocating), the first structural problem, and whether all is visible ASCII.
        enum Problem {
            EmptySegment,
            TooManySegments,
        }
        let mut segments = [""; 6];
        let mut count = 0;
        let mut problem = None;
        let mut start = 0;
        let bytes = name.as_bytes();
        // Not short-circuiting, so that it runs many bytes at a time.
        let graphic =
            !name.is_empty() && bytes.iter().fold(true, |all, b| all & b.is_ascii_graphic());
        let slashes = bytes
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'/').then_some(i));
        for end in slashes.chain(std::iter::once(bytes.len())) {
            // `/` is ASCII, so these are character boundaries.
            let segment = name.get(start..end).unwrap_or_default();
            start = end + 1;
            match segments.get_mut(count) {
                _ if segment.is_empty() => problem = Some(Problem::EmptySegment),
                Some(slot) => {
                    *slot = segment;
                    count += 1;
                    continue;
                }
                None => problem = Some(Problem::TooManySegments),
            }
            break;
        }
        if !graphic {
            validate_text(name, "name")?;
        }
        match problem {
            Some(Problem::EmptySegment) => {
                return Err(Error::invalid_name(
                    name,
                    format!("it has an empty path segment; {FORMS}"),
                ));
            }
            Some(Problem::TooManySegments) => return Err(Error::invalid_name(name, FORMS)),
            None => {}
        }
        let layout = match &segments[..count] {
            ["operations", _] => Layout::Global,
            ["projects", _, "operations", _] => Layout::Project,
            ["locations", _, "operations", _] => Layout::Location,
            ["projects", _, "locations", _, "operations", _] => Layout::ProjectLocation,
            _ => return Err(Error::invalid_name(name, FORMS)),
        };
        Ok(OperationName {
            full: name.to_owned(),
            layout,
        })
    }

    /// `locations/{location}/operations/{id}`, the form Vision's REST documentation uses.
    pub fn in_location(location: &str, id: &str) -> Result<Self> {
        Self::parse(&format!("locations/{location}/operations/{id}"))
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The operation ID: the last element of the name.
    pub fn id(&self) -> &str {
        self.segment_from_end(0)
    }

    /// The location, for names that have one.
    pub fn location(&self) -> Option<&str> {
        match self.layout {
            Layout::Location | Layout::ProjectLocation => Some(self.segment_from_end(2)),
            Layout::Global | Layout::Project => None,
        }
    }

    /// The project, for names that have one.
    pub fn project(&self) -> Option<&str> {
        match self.layout {
            Layout::Project | Layout::ProjectLocation => Some(self.segment(1)),
            Layout::Global | Layout::Location => None,
        }
    }

    fn segment(&self, index: usize) -> &str {
        self.full.split('/').nth(index).unwrap_or_default()
    }

    fn segment_from_end(&self, index: usize) -> &str {
        self.full.rsplit('/').nth(index).unwrap_or_default()
    }
}

/// Rejects text that cannot be a resource name: empty, or with whitespace or control
/// characters. `what` names the text in the error.
pub(crate) fn validate_text(text: &str, what: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid_name(text, format!("the {what} is empty")));
    }
    // Visible ASCII, the usual case, is checked a byte at a time.
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        let kind = if c.is_whitespace() {
            "whitespace"
        } else {
            "a control character"
        };
        return Err(Error::invalid_name(
            text,
            format!("the {what} contains {kind} ({:?})", c),
        ));
    }
    Ok(())
}

impl fmt::Debug for OperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.full, f)
    }
}

impl fmt::Display for OperationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl FromStr for OperationName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for OperationName {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl TryFrom<String> for OperationName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl AsRef<str> for OperationName {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl From<OperationName> for String {
    fn from(name: OperationName) -> String {
        name.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_accepted_form_with_its_parts() {
        let cases = [
            (
                "projects/p1/locations/us-west1/operations/bc4e1d412863e626",
                Some("p1"),
                Some("us-west1"),
            ),
            (
                "locations/us-east1/operations/bc4e1d412863e626",
                None,
                Some("us-east1"),
            ),
            ("projects/p1/operations/bc4e1d412863e626", Some("p1"), None),
            ("operations/bc4e1d412863e626", None, None),
        ];
        for (text, project, location) in cases {
            let name = OperationName::parse(text).unwrap();
            assert_eq!(name.as_str(), text);
            assert_eq!(name.id(), "bc4e1d412863e626", "{text}");
            assert_eq!(name.project(), project, "{text}");
            assert_eq!(name.location(), location, "{text}");
            assert_eq!(name.to_string(), text);
        }
    }

    #[test]
    fn rejects_empty_whitespace_control_and_unknown_shapes() {
        let cases = [
            ("", "empty"),
            ("operations/a b", "whitespace"),
            ("operations/ab\t", "whitespace"),
            ("operations/a\u{7}b", "control character"),
            ("operations/a\u{a0}b", "whitespace"),
            ("operations/", "empty path segment"),
            ("/operations/x", "empty path segment"),
            ("projects//operations/x", "empty path segment"),
            ("operations/x/", "empty path segment"),
            ("x", "expected projects/P"),
            ("projects/p/locations/l", "expected projects/P"),
            ("projects/p/zones/z/operations/x", "expected projects/P"),
            ("operations/x/y", "expected projects/P"),
        ];
        for (text, reason) in cases {
            let err = OperationName::parse(text).unwrap_err();
            let Error::InvalidName { name, reason: why } = &err else {
                panic!("{text:?}: wrong error {err:?}");
            };
            assert_eq!(name, text);
            assert!(why.contains(reason), "{text:?}: {why}");
        }
    }

    #[test]
    fn in_location_builds_the_rest_form_and_validates_its_parts() {
        let name = OperationName::in_location("europe-west1", "42").unwrap();
        assert_eq!(name.as_str(), "locations/europe-west1/operations/42");
        assert!(OperationName::in_location("us-west1", "a/b").is_err());
        assert!(OperationName::in_location("", "42").is_err());
    }
}
