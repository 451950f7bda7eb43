//! promtool unit-test files: the YAML and the series notation of every
//! input series.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = argus::rules::check_test_text(s, "fuzz.yml");
        // Lines of the notation on their own, as promqltest scripts use it.
        for line in s.lines() {
            let _ = argus::promql::series_notation::parse_series(line);
        }
    }
});
