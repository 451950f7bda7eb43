//! argus's config file (prometheus.yml and argus's extensions).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = argus::config::Config::load_str(s, "fuzz.yml");
    }
});
