//! SLO specs (Sloth prometheus/v1, its Kubernetes CRD, OpenSLO v1alpha)
//! and the rules generated from them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(specs) = argus::slo::parse_spec(s, "fuzz.yml") {
            for spec in &specs {
                let _ = argus::slo::generate(spec, &argus::slo::GenerateOptions::default());
            }
        }
    }
});
