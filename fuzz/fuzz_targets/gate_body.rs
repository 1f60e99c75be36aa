//! A gate body as the server reads it: the JSON object check, serde, then
//! the contract's field rules. Any input gets a value or an error, never a
//! panic, and a valid body's step input is always an object.
#![no_main]

use host::api::extract::parse_json;
use host::input::GateBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(body) = parse_json::<GateBody>(bytes) else {
        return;
    };
    if let Ok(valid) = body.validate() {
        assert!(valid.step_input.is_object());
        assert!(!valid.step_type.is_empty());
    }
});
