//! Target groups as discovery reads them: the first byte modulo 5 picks
//! JSON (0: an http_sd answer, a `.json` file_sd file), YAML (1: a `.yml`
//! file_sd file), a Consul health API answer (2), a DNS response message
//! (3, to query id 7) or a Kubernetes list answer (4: the next byte picks
//! the role; the text is also checked as label and field selectors).
#![no_main]

use argus::scrape::discovery::{GroupFormat, parse_groups};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 5 == 3 {
        if let Ok(a) = argus::scrape::dns::parse_answer(rest, 7) {
            let g = argus::scrape::dns::name_group("x.example", &a.records, 9100);
            assert!(g.targets.len() <= a.records.len());
        }
        return;
    }
    if mode % 5 == 4 {
        let Some((&role, body)) = rest.split_first() else {
            return;
        };
        let roles = argus::config::KUBERNETES_ROLES;
        let role = roles[role as usize % roles.len()];
        if let Ok(groups) = argus::scrape::kubernetes::list_answer_groups(role, body) {
            for g in &groups {
                assert!(g.targets.iter().all(|t| t.contains_key("__address__")));
            }
        }
        if let Ok(text) = std::str::from_utf8(body) {
            let _ = argus::scrape::kubernetes::check_label_selector(text);
            let _ = argus::scrape::kubernetes::check_field_selector(text);
        }
        return;
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let format = match mode % 5 {
        0 => GroupFormat::Json,
        1 => GroupFormat::Yaml,
        _ => {
            if let Ok(g) = argus::scrape::consul::health_answer_group(rest, "web", "dc1", ",") {
                assert!(g.targets.iter().all(|t| t.contains_key("__address__")));
            }
            return;
        }
    };
    if let Ok(groups) = parse_groups(text, format, "http://sd/x", "__meta_url") {
        for g in &groups {
            assert_eq!(g.labels.get("__meta_url").map(String::as_str), Some("http://sd/x"));
        }
    }
});
