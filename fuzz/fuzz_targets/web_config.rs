//! `--web.config.file` as argus reads and checks it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = argus::config::web_file::parse_web_file(s, "fuzz.yml");
    }
});
