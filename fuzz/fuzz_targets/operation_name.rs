#![no_main]
//! Operation names: parsing never panics, and what parses round-trips.

use libfuzzer_sys::fuzz_target;
use longrunning::OperationName;

fuzz_target!(|text: &str| {
    if let Ok(name) = OperationName::parse(text) {
        assert_eq!(name.as_str(), text);
        assert!(name.id().is_none_or(|id| !id.is_empty() && !id.contains('/')));
        assert_eq!(OperationName::parse(name.as_str()).ok(), Some(name));
    }
});
