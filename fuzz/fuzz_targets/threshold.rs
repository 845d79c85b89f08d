//! The threshold grammar (`"metric{selector}" = ["agg op value"]`) on arbitrary text: parsed or refused, never a
//! panic. The input is the key, a newline, then the expression.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (key, expr) = text.split_once('\n').unwrap_or((text, "p(95) < 1s"));
    if let Ok(t) = run_load_test::slo::parse(key, expr) {
        assert!(!t.value.is_nan(), "a NaN threshold was accepted: {key} {expr}");
    }
});
