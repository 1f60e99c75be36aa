//! A tenants file: parsed or refused with an error, never a panic.
#![no_main]

use host::tenants::TenantsFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(file) = TenantsFile::parse(text) {
        let _ = file.tenants();
    }
});
