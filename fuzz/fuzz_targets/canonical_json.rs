//! RFC 8785 canonical JSON: the canonical text of any JSON value parses
//! back to a value with the same canonical text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let canonical = host::canonical::to_string(&value);
    let again: serde_json::Value =
        serde_json::from_str(&canonical).expect("canonical text is JSON");
    assert_eq!(host::canonical::to_string(&again), canonical);
});
