//! alertmanager.yml as argus reads it for delivery and for routing.
#![no_main]

use argus::notify::{Strictness, parse_am_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_am_config(s, "fuzz.yml", Strictness::Deliver);
        let _ = parse_am_config(s, "fuzz.yml", Strictness::Routing);
    }
});
