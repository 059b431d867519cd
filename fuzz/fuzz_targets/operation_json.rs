#![no_main]
//! Proto3 JSON rendering of arbitrary operation bytes: never panics.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(json) = longrunning::json::operation_bytes_to_json(bytes) {
        assert!(json.is_object());
    }
});
