//! `google.protobuf.Any` helpers: the type name in a type URL, type checks. (Packing is
//! prost's `Any::from_msg`.)
//!
//! Unpacking with errors that name the operation lives with the typed snapshot
//! ([`crate::operation::unpack`]); this module knows nothing of operations.

use prost::Name;
use prost_types::Any;

/// The full proto type name in a type URL: everything after the last `/`.
pub fn type_name_of(type_url: &str) -> Option<&str> {
    type_url
        .rsplit_once('/')
        .map(|(_, name)| name)
        .filter(|n| !n.is_empty())
}

/// Whether `any` holds a `T`, judged by its type URL (any prefix up to the last `/`).
///
/// ```
/// use longrunning::any::is_type;
/// let any = prost_types::Any::from_msg(&prost_types::Duration { seconds: 1, nanos: 0 }).unwrap();
/// assert!(is_type::<prost_types::Duration>(&any));
/// assert!(!is_type::<prost_types::Timestamp>(&any));
/// let bare = prost_types::Any { type_url: "google.protobuf.Duration".into(), value: vec![] };
/// assert!(!is_type::<prost_types::Duration>(&bare)); // no `/`: not a type URL
/// ```
pub fn is_type<T: Name>(any: &Any) -> bool {
    // `…/PACKAGE.NAME`, compared from the end without searching or building the string.
    let url = any.type_url.as_bytes();
    let Some(rest) = url.strip_suffix(T::NAME.as_bytes()) else {
        return false;
    };
    let Some(rest) = rest.strip_suffix(b".") else {
        return false;
    };
    rest.strip_suffix(T::PACKAGE.as_bytes())
        .is_some_and(|prefix| prefix.ends_with(b"/"))
}
