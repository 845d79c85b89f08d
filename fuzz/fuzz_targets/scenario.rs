//! The scenario loader on arbitrary text: a scenario or a located error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = run_load_test::scenario::parse(std::path::Path::new("f.toml"), text.to_string()) {
            assert!(e.to_string().starts_with("f.toml"), "an error that does not name the file: {e}");
        }
    }
});
