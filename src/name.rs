//! Operation names: opaque strings, checked only for what can never be a name.
//!
//! Every Google API names its operations its own way: Vision
//! `projects/P/locations/L/operations/ID` or `locations/L/operations/ID`, Firestore
//! `projects/P/databases/D/operations/ID`, Spanner
//! `projects/P/instances/I/databases/D/operations/ID`, Dataproc `projects/P/regions/R/…`,
//! Compute-style zonal names, Vertex AI's nested ones. As Google's own clients do, this crate
//! treats names as opaque: any non-empty text without whitespace, control characters or
//! invisible format characters (Unicode category Cf, such as zero-width spaces and
//! right-to-left overrides) is sent as given. The parts ([`OperationName::project`],
//! [`OperationName::location`], [`OperationName::id`]) are read best effort.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A checked, opaque operation name.
///
/// ```
/// use longrunning::OperationName;
///
/// let vision: OperationName = "projects/p1/locations/us-west1/operations/bc4e1d412863e626".parse()?;
/// assert_eq!(vision.id(), Some("bc4e1d412863e626"));
/// assert_eq!(vision.location(), Some("us-west1"));
/// assert_eq!(vision.project(), Some("p1"));
///
/// let spanner: OperationName = "projects/p/instances/i/databases/d/operations/_auto_op_1".parse()?;
/// assert_eq!(spanner.id(), Some("_auto_op_1"));
/// assert_eq!(spanner.location(), None);
///
/// assert!(OperationName::parse("operations/a\u{200b}b").is_err()); // zero-width space
/// # Ok::<(), longrunning::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OperationName {
    full: String,
}

impl OperationName {
    /// Checks a full operation name: non-empty, no whitespace, control or format characters.
    pub fn parse(name: &str) -> Result<Self> {
        validate_text(name, "name")?;
        Ok(OperationName {
            full: name.to_owned(),
        })
    }

    /// `locations/{location}/operations/{id}`, the form Vision's REST documentation uses.
    /// Both parts must be single path segments.
    pub fn in_location(location: &str, id: &str) -> Result<Self> {
        for (part, what) in [(location, "location"), (id, "operation id")] {
            validate_text(part, what)?;
            if part.contains('/') {
                return Err(Error::invalid_name(
                    part,
                    format!("the {what} contains '/'"),
                ));
            }
        }
        Self::parse(&format!("locations/{location}/operations/{id}"))
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The operation ID, best effort: the last path segment, if it is not empty.
    pub fn id(&self) -> Option<&str> {
        self.full.rsplit('/').next().filter(|id| !id.is_empty())
    }

    /// The location, best effort: the segment after `locations/`, `regions/` or `zones/`.
    pub fn location(&self) -> Option<&str> {
        ["locations", "regions", "zones"]
            .iter()
            .find_map(|key| self.after(key))
    }

    /// The project, best effort: the segment after a leading `projects/`.
    pub fn project(&self) -> Option<&str> {
        let mut segments = self.full.split('/');
        (segments.next() == Some("projects"))
            .then(|| segments.next())
            .flatten()
            .filter(|p| !p.is_empty())
    }

    /// The segment that follows the segment `key`, if both are there and it is not empty.
    fn after(&self, key: &str) -> Option<&str> {
        let mut segments = self.full.split('/');
        while let Some(segment) = segments.next() {
            if segment == key {
                return segments.next().filter(|s| !s.is_empty());
            }
        }
        None
    }
}

/// Rejects text that cannot be a resource name: empty, or with whitespace, control
/// characters or invisible format characters (Unicode Cf). `what` names the text in errors.
pub(crate) fn validate_text(text: &str, what: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid_name(text, format!("the {what} is empty")));
    }
    // Visible ASCII, the usual case: not short-circuiting, so that it runs many bytes at
    // a time.
    if text.bytes().fold(true, |all, b| all & b.is_ascii_graphic()) {
        return Ok(());
    }
    let bad = text.chars().find_map(|c| {
        let kind = if c.is_whitespace() {
            "whitespace"
        } else if c.is_control() {
            "a control character"
        } else if is_format_character(c) {
            "an invisible format character"
        } else {
            return None;
        };
        Some((c, kind))
    });
    match bad {
        Some((c, kind)) => Err(Error::invalid_name(
            text,
            format!("the {what} contains {kind} ({:?})", c),
        )),
        None => Ok(()),
    }
}

/// Unicode's general category Cf (format characters): invisible, and used to make one
/// name look like another (zero-width spaces and joiners, bidirectional overrides, the byte
/// order mark, soft hyphen, tags).
fn is_format_character(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
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

/// A location's name, `projects/{project}/locations/{location}`: the parent of Vision's
/// product sets and of the operations its start calls begin, as the fake and `lro` check it.
///
/// ```
/// use longrunning::LocationName;
///
/// let parent = LocationName::parse("projects/p1/locations/us-west1")?;
/// assert_eq!((parent.project(), parent.location()), ("p1", "us-west1"));
/// assert!(LocationName::parse("projects/p1").is_err());
/// assert!(LocationName::parse("projects/p1/locations/us west").is_err());
/// # Ok::<(), longrunning::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocationName {
    full: String,
    /// Where the location begins in `full`.
    location_at: usize,
}

impl LocationName {
    /// Checks `projects/P/locations/L`: both parts non-empty single segments, the whole a
    /// valid name.
    pub fn parse(text: &str) -> Result<Self> {
        validate_text(text, "location name")?;
        let parts = text
            .strip_prefix("projects/")
            .and_then(|rest| rest.split_once("/locations/"))
            .filter(|(project, location)| {
                !project.is_empty()
                    && !location.is_empty()
                    && !project.contains('/')
                    && !location.contains('/')
            });
        match parts {
            Some((_, location)) => Ok(LocationName {
                full: text.to_owned(),
                location_at: text.len() - location.len(),
            }),
            None => Err(Error::invalid_name(
                text,
                "it is not of the form projects/P/locations/L",
            )),
        }
    }

    /// The project.
    pub fn project(&self) -> &str {
        let end = self.location_at - "/locations/".len();
        &self.full["projects/".len()..end]
    }

    /// The location.
    pub fn location(&self) -> &str {
        &self.full[self.location_at..]
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for LocationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_every_google_api_are_accepted_with_their_parts() {
        let cases = [
            (
                "projects/p1/locations/us-west1/operations/bc4e1d412863e626",
                Some("p1"),
                Some("us-west1"),
                Some("bc4e1d412863e626"),
            ),
            (
                "locations/us-east1/operations/bc4e1d412863e626",
                None,
                Some("us-east1"),
                Some("bc4e1d412863e626"),
            ),
            ("operations/42", None, None, Some("42")),
            (
                "projects/p/databases/(default)/operations/ASA3NDEwOTg0",
                Some("p"),
                None,
                Some("ASA3NDEwOTg0"),
            ),
            (
                "projects/p/instances/i/databases/d/operations/_auto_op_1",
                Some("p"),
                None,
                Some("_auto_op_1"),
            ),
            (
                "projects/p/regions/us-central1/operations/abc-123",
                Some("p"),
                Some("us-central1"),
                Some("abc-123"),
            ),
            (
                "projects/p/zones/us-central1-a/operations/operation-1",
                Some("p"),
                Some("us-central1-a"),
                Some("operation-1"),
            ),
            (
                "projects/p/locations/us-central1/endpoints/9/operations/77",
                Some("p"),
                Some("us-central1"),
                Some("77"),
            ),
            ("opaque-token", None, None, Some("opaque-token")),
            ("operations/", None, None, None),
        ];
        for (text, project, location, id) in cases {
            let name = OperationName::parse(text).unwrap();
            assert_eq!(name.as_str(), text);
            assert_eq!(name.project(), project, "{text}");
            assert_eq!(name.location(), location, "{text}");
            assert_eq!(name.id(), id, "{text}");
        }
    }

    #[test]
    fn empty_whitespace_control_and_format_characters_are_rejected() {
        let cases = [
            ("", "empty"),
            ("operations/a b", "whitespace"),
            ("operations/ab\t", "whitespace"),
            ("operations/a\u{7}b", "control character"),
            ("operations/a\u{a0}b", "whitespace"),
            ("operations/a\u{200b}b", "format character"),
            ("operations/a\u{202e}b", "format character"),
            ("operations/\u{feff}x", "format character"),
            ("operations/x\u{e0041}", "format character"),
        ];
        for (text, reason) in cases {
            let err = OperationName::parse(text).unwrap_err();
            let Error::InvalidName { name, reason: why } = &err else {
                panic!("{text:?}: wrong error {err:?}");
            };
            assert_eq!(name, text);
            assert!(why.contains(reason), "{text:?}: {why}");
        }
        assert!(OperationName::parse("operations/é-ü").is_ok());
    }

    #[test]
    fn in_location_builds_the_rest_form_and_validates_its_parts() {
        let name = OperationName::in_location("europe-west1", "42").unwrap();
        assert_eq!(name.as_str(), "locations/europe-west1/operations/42");
        assert!(OperationName::in_location("us-west1", "a/b").is_err());
        assert!(OperationName::in_location("", "42").is_err());
    }
}
