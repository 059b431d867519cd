//! [`RestRules`]: Google's HTTP rules for the Operations methods (`google.api.http`), and
//! how a request is put on a path by them.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The Operations methods a REST binding can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RestMethod {
    /// GetOperation.
    Get,
    /// ListOperations.
    List,
    /// CancelOperation.
    Cancel,
    /// DeleteOperation.
    Delete,
    /// WaitOperation.
    Wait,
}

impl RestMethod {
    const ALL: [RestMethod; 5] = [
        RestMethod::Get,
        RestMethod::List,
        RestMethod::Cancel,
        RestMethod::Delete,
        RestMethod::Wait,
    ];

    /// The gRPC method's name.
    pub fn rpc_name(self) -> &'static str {
        match self {
            RestMethod::Get => "GetOperation",
            RestMethod::List => "ListOperations",
            RestMethod::Cancel => "CancelOperation",
            RestMethod::Delete => "DeleteOperation",
            RestMethod::Wait => "WaitOperation",
        }
    }
}

/// One HTTP rule: a verb and a path template such as
/// `/v1/{name=projects/*/locations/*/operations/*}:cancel`, as `google.api.http` writes them.
/// For the Operations methods the variable is `name`; `*` matches one segment, `**` the rest
/// (slashes kept). A template without a variable sends `name` in the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    verb: http::Method,
    template: String,
    /// The request field the variable takes (`name`, or `parent` for a start call).
    field: String,
    prefix: String,
    pattern: Option<Vec<Segment>>,
    suffix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// Path segments: every byte but RFC 3986's unreserved characters escaped (`/` too: `**`
/// puts the slashes back between segments), as `http.proto` asks.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl Binding {
    /// A binding from its verb (`GET`, `POST`, `DELETE`, …) and path template, whose
    /// variable is `name`.
    pub fn new(verb: &str, template: &str) -> Result<Self, String> {
        let binding = Self::with_any_field(verb, template)?;
        if binding.pattern.is_some() && binding.field != "name" {
            return Err(format!(
                "path template {template:?}: the variable must be `name`"
            ));
        }
        Ok(binding)
    }

    /// A binding whose variable may be any field (a start call's `parent`).
    pub(crate) fn with_any_field(verb: &str, template: &str) -> Result<Self, String> {
        let verb = http::Method::from_bytes(verb.as_bytes())
            .map_err(|_| format!("bad HTTP verb {verb:?}"))?;
        if !template.starts_with('/') {
            return Err(format!("path template {template:?} must start with /"));
        }
        let (field, prefix, pattern, suffix) = match template.split_once('{') {
            None => ("name".to_owned(), template.to_owned(), None, String::new()),
            Some((prefix, rest)) => {
                let (variable, suffix) = rest
                    .split_once('}')
                    .ok_or_else(|| format!("path template {template:?}: unclosed {{"))?;
                let (field, pattern) = variable.split_once('=').unwrap_or((variable, "**"));
                if field.is_empty()
                    || !field
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!(
                        "path template {template:?}: a bad variable {field:?}"
                    ));
                }
                if suffix.contains('{') {
                    return Err(format!("path template {template:?}: one variable only"));
                }
                let segments = pattern
                    .split('/')
                    .map(|segment| match segment {
                        "*" => Ok(Segment::One),
                        "**" => Ok(Segment::Rest),
                        "" => Err(format!("path template {template:?}: an empty segment")),
                        literal if literal.contains('*') => Err(format!(
                            "path template {template:?}: a wildcard inside {literal:?}"
                        )),
                        literal => Ok(Segment::Literal(literal.to_owned())),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if segments[..segments.len() - 1].contains(&Segment::Rest) {
                    return Err(format!("path template {template:?}: ** must come last"));
                }
                (
                    field.to_owned(),
                    prefix.to_owned(),
                    Some(segments),
                    suffix.to_owned(),
                )
            }
        };
        Ok(Binding {
            verb,
            template: template.to_owned(),
            field,
            prefix,
            pattern,
            suffix,
        })
    }

    /// The verb.
    pub fn verb(&self) -> &http::Method {
        &self.verb
    }

    /// The path template, as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The request field the variable takes.
    pub(crate) fn field(&self) -> &str {
        &self.field
    }

    /// Whether the template has a variable.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn has_variable(&self) -> bool {
        self.pattern.is_some()
    }

    /// The variable's value in `path` (percent-decoded), if `path` fits the template (the
    /// empty string for a template without one): how a server reads a request (the fake's).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    pub(crate) fn extract(&self, path: &str) -> Option<String> {
        let Some(pattern) = &self.pattern else {
            return (path == self.prefix).then(String::new);
        };
        let rest = path
            .strip_prefix(&self.prefix)?
            .strip_suffix(&self.suffix)?;
        let decoded: Vec<String> = rest
            .split('/')
            .map(|segment| {
                percent_encoding::percent_decode_str(segment)
                    .decode_utf8()
                    .ok()
                    .map(|s| s.into_owned())
            })
            .collect::<Option<_>>()?;
        let value = decoded.join("/");
        self.path(&value)
            .filter(|(_, in_path)| *in_path)
            .map(|_| value)
            .filter(|_| pattern.len() <= decoded.len())
    }

    /// The path for `name` (percent-encoded), and whether `name` went into it; `None` if
    /// `name` fits no variable of the template.
    pub(crate) fn path(&self, name: &str) -> Option<(String, bool)> {
        let Some(pattern) = &self.pattern else {
            return Some((self.prefix.clone(), false));
        };
        let segments: Vec<&str> = name.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return None;
        }
        let mut encoded = Vec::with_capacity(segments.len());
        for (i, want) in pattern.iter().enumerate() {
            match want {
                Segment::Rest => {
                    if i >= segments.len() {
                        return None;
                    }
                    encoded.extend(segments[i..].iter().map(|s| encode(s)));
                    return Some((
                        format!("{}{}{}", self.prefix, encoded.join("/"), self.suffix),
                        true,
                    ));
                }
                Segment::One => encoded.push(encode(segments.get(i)?)),
                Segment::Literal(literal) => {
                    if segments.get(i) != Some(&literal.as_str()) {
                        return None;
                    }
                    encoded.push(encode(literal));
                }
            }
        }
        (segments.len() == pattern.len()).then(|| {
            (
                format!("{}{}{}", self.prefix, encoded.join("/"), self.suffix),
                true,
            )
        })
    }
}

/// `snake_case` as proto3 JSON names fields.
pub(crate) fn lower_camel(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb, self.template)
    }
}

/// Where a request goes: the verb and the path, and whether `name` is still to be sent in
/// the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) verb: http::Method,
    pub(crate) path: String,
    pub(crate) name_in_query: bool,
}

/// Why a request has no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// The rules bind nothing for the method.
    Unbound(RestMethod),
    /// The name fits none of the method's templates (listed).
    NoFit {
        method: RestMethod,
        name: String,
        templates: Vec<String>,
    },
}

impl fmt::Display for NoRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoRoute::Unbound(method) => write!(
                f,
                "no REST binding for {} in these REST rules: nothing was sent",
                method.rpc_name()
            ),
            NoRoute::NoFit {
                method,
                name,
                templates,
            } => write!(
                f,
                "{name:?} fits no REST binding of {}: {}; nothing was sent",
                method.rpc_name(),
                templates.join(", ")
            ),
        }
    }
}

/// Google's HTTP rules for the five Operations methods, several bindings each, tried in
/// order. A method with none is refused locally: UNIMPLEMENTED ("no REST binding"), and
/// nothing is sent; a wait then polls.
///
/// ```
/// use longrunning::rest::{RestMethod, RestRules};
///
/// let rules = RestRules::new()
///     .bind(RestMethod::Get, "GET", "/v1/{name=projects/*/operations/*}")?
///     .bind(RestMethod::List, "GET", "/v1/{name=projects/*}/operations")?;
/// assert!(rules.bindings(RestMethod::Cancel).is_empty());
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestRules {
    bindings: [Vec<Binding>; 5],
}

impl RestRules {
    /// No bindings at all.
    pub fn new() -> Self {
        RestRules::default()
    }

    /// Adds a binding for `method` (after those it has).
    pub fn bind(mut self, method: RestMethod, verb: &str, template: &str) -> Result<Self, String> {
        let binding = Binding::new(verb, template)?;
        self.bindings[index(method)].push(binding);
        Ok(self)
    }

    /// The bindings of `method`, in the order they are tried.
    pub fn bindings(&self, method: RestMethod) -> &[Binding] {
        &self.bindings[index(method)]
    }

    /// Cloud Vision v1, exactly as its service config binds the Operations: GetOperation
    /// only, on four paths; List, Cancel, Delete and Wait have no binding.
    pub fn vision_v1() -> Self {
        let get = [
            "/v1/{name=projects/*/operations/*}",
            "/v1/{name=projects/*/locations/*/operations/*}",
            "/v1/{name=operations/*}",
            "/v1/{name=locations/*/operations/*}",
        ];
        let mut rules = RestRules::new();
        for template in get {
            rules.bindings[index(RestMethod::Get)].push(known("GET", template));
        }
        rules
    }

    /// Cloud Speech v1: GetOperation on `/v1/operations/{name=**}`, ListOperations on
    /// `/v1/operations` (the name in the query).
    pub fn speech_v1() -> Self {
        let mut rules = RestRules::new();
        rules.bindings[index(RestMethod::Get)].push(known("GET", "/v1/operations/{name=**}"));
        rules.bindings[index(RestMethod::List)].push(known("GET", "/v1/operations"));
        rules
    }

    /// The usual binding of the whole service under `/VERSION/` (Cloud Run v2 binds it so):
    /// get `GET /VERSION/{name}`, list `GET /VERSION/{name}/operations`, cancel
    /// `POST /VERSION/{name}:cancel`, delete `DELETE /VERSION/{name}`, wait
    /// `POST /VERSION/{name}:wait`.
    pub fn standard(version: &str) -> Result<Self, String> {
        let version = version.trim_matches('/');
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("bad API version {version:?} (e.g. v2)"));
        }
        RestRules::new()
            .bind(RestMethod::Get, "GET", &format!("/{version}/{{name=**}}"))?
            .bind(
                RestMethod::List,
                "GET",
                &format!("/{version}/{{name=**}}/operations"),
            )?
            .bind(
                RestMethod::Cancel,
                "POST",
                &format!("/{version}/{{name=**}}:cancel"),
            )?
            .bind(
                RestMethod::Delete,
                "DELETE",
                &format!("/{version}/{{name=**}}"),
            )?
            .bind(
                RestMethod::Wait,
                "POST",
                &format!("/{version}/{{name=**}}:wait"),
            )
    }

    /// Where a request for `method` about `name` goes: the first binding `name` fits.
    pub(crate) fn route(&self, method: RestMethod, name: &str) -> Result<Route, NoRoute> {
        let bindings = self.bindings(method);
        if bindings.is_empty() {
            return Err(NoRoute::Unbound(method));
        }
        bindings
            .iter()
            .find_map(|binding| {
                binding.path(name).map(|(path, in_path)| Route {
                    verb: binding.verb.clone(),
                    path,
                    name_in_query: !in_path,
                })
            })
            .ok_or_else(|| NoRoute::NoFit {
                method,
                name: name.to_owned(),
                templates: bindings.iter().map(ToString::to_string).collect(),
            })
    }
}

fn index(method: RestMethod) -> usize {
    RestMethod::ALL
        .iter()
        .position(|m| *m == method)
        .unwrap_or_default()
}

/// A preset's binding, known to parse.
fn known(verb: &str, template: &str) -> Binding {
    Binding::new(verb, template).unwrap_or_else(|_| Binding {
        verb: http::Method::GET,
        template: template.to_owned(),
        field: "name".to_owned(),
        prefix: template.to_owned(),
        pattern: None,
        suffix: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(rules: &RestRules, method: RestMethod, name: &str) -> Option<String> {
        rules.route(method, name).ok().map(|r| {
            format!(
                "{} {}{}",
                r.verb,
                r.path,
                if r.name_in_query { " ?name" } else { "" }
            )
        })
    }

    #[test]
    fn vision_binds_get_on_its_four_paths_and_nothing_else() {
        let vision = RestRules::vision_v1();
        let table = [
            (
                "projects/p/operations/1",
                Some("GET /v1/projects/p/operations/1"),
            ),
            (
                "projects/p/locations/us-west1/operations/1",
                Some("GET /v1/projects/p/locations/us-west1/operations/1"),
            ),
            ("operations/abc", Some("GET /v1/operations/abc")),
            (
                "locations/l/operations/abc",
                Some("GET /v1/locations/l/operations/abc"),
            ),
            ("projects/p/jobs/1", None),
            ("operations/a/b", None),
            ("projects//operations/1", None),
        ];
        for (name, expected) in table {
            assert_eq!(
                route(&vision, RestMethod::Get, name).as_deref(),
                expected,
                "{name}"
            );
        }
        for method in [
            RestMethod::List,
            RestMethod::Cancel,
            RestMethod::Delete,
            RestMethod::Wait,
        ] {
            assert_eq!(
                vision.route(method, "operations/a"),
                Err(NoRoute::Unbound(method))
            );
        }
        let err = vision
            .route(RestMethod::Get, "projects/p/jobs/1")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("GET /v1/{name=projects/*/locations/*/operations/*}"),
            "{text}"
        );
        assert!(text.contains("nothing was sent"), "{text}");
    }

    #[test]
    fn segments_are_percent_encoded_and_double_star_keeps_the_slashes() {
        let speech = RestRules::speech_v1();
        assert_eq!(
            route(&speech, RestMethod::Get, "a b/ü?#%").as_deref(),
            Some("GET /v1/operations/a%20b/%C3%BC%3F%23%25")
        );
        assert_eq!(
            route(&speech, RestMethod::List, "projects/p").as_deref(),
            Some("GET /v1/operations ?name")
        );
        let vision = RestRules::vision_v1();
        assert_eq!(
            route(&vision, RestMethod::Get, "operations/a~b.c-d_e").as_deref(),
            Some("GET /v1/operations/a~b.c-d_e")
        );
    }

    #[test]
    fn the_standard_rules_bind_every_method_under_the_version() {
        let rules = RestRules::standard("v2").unwrap();
        let name = "projects/p/locations/l/operations/o";
        let table = [
            (
                RestMethod::Get,
                "GET /v2/projects/p/locations/l/operations/o",
            ),
            (
                RestMethod::List,
                "GET /v2/projects/p/locations/l/operations/o/operations",
            ),
            (
                RestMethod::Cancel,
                "POST /v2/projects/p/locations/l/operations/o:cancel",
            ),
            (
                RestMethod::Delete,
                "DELETE /v2/projects/p/locations/l/operations/o",
            ),
            (
                RestMethod::Wait,
                "POST /v2/projects/p/locations/l/operations/o:wait",
            ),
        ];
        for (method, expected) in table {
            assert_eq!(route(&rules, method, name).as_deref(), Some(expected));
        }
        assert!(RestRules::standard("v2/../x").is_err());
        assert!(RestRules::standard("").is_err());
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (verb, template) in [
            ("GET", "v1/{name=*}"),
            ("GET", "/v1/{name=*"),
            ("GET", "/v1/{parent=*}"),
            ("GET", "/v1/{name=**/x}"),
            ("GET", "/v1/{name=a*}"),
            ("GET", "/v1/{name=a//b}"),
            ("G ET", "/v1/{name=*}"),
            ("GET", "/v1/{name=*}/{name=*}"),
        ] {
            assert!(Binding::new(verb, template).is_err(), "{verb} {template}");
        }
    }
}
