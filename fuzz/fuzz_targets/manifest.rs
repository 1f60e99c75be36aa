//! A policy manifest (`<name>.toml`): parsed or refused with an error,
//! never a panic; what parses keeps its limits in their ranges.
#![no_main]

use host::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(manifest) = Manifest::parse(text) {
        let limits = manifest.limits();
        assert!(limits.memory_bytes > 0);
        let _ = manifest.settings_json();
    }
});
