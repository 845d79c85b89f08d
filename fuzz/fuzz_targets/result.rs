//! The stored-result reader (baselines, `compare`, `report DIR`) on arbitrary bytes: a report or one error line
//! naming the file, never a panic and never an allocation the size of a forged histogram header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match run_load_test::result::parse_result(std::path::Path::new("r.json"), "result", &text) {
        Ok(_) => {}
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with("result r.json") && !e.contains('\n'), "{e}");
        }
    }
});
