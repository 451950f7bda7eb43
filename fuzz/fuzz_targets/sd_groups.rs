//! Target groups as discovery reads them: the first byte even, the rest
//! is JSON (an http_sd answer, a `.json` file_sd file); odd, YAML (a
//! `.yml` file_sd file).
#![no_main]

use argus::scrape::discovery::{GroupFormat, parse_groups};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = if mode & 1 == 0 {
        GroupFormat::Json
    } else {
        GroupFormat::Yaml
    };
    if let Ok(groups) = parse_groups(text, format, "http://sd/x", "__meta_url") {
        for g in &groups {
            assert_eq!(g.labels.get("__meta_url").map(String::as_str), Some("http://sd/x"));
        }
    }
});
