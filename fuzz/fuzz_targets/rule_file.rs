//! Prometheus rule files, with both name validation schemes.
#![no_main]

use argus::rules::{NameValidation, parse_rule_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_rule_file(s, "fuzz.yml", NameValidation::Utf8);
        let _ = parse_rule_file(s, "fuzz.yml", NameValidation::Legacy);
    }
});
