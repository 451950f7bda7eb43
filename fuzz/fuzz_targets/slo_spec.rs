//! SLO specs (Sloth prometheus/v1, its Kubernetes CRD, OpenSLO v1alpha)
//! and the rules generated from them; the same text read as a Sloth
//! `AlertWindows` file, whose windows then generate the rules of a spec
//! of their period.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let mut opts = argus::slo::GenerateOptions::default();
        if let Ok((days, windows)) = argus::slo::parse_alert_windows(s, "fuzz.yml") {
            opts.windows.insert(days, windows);
        }
        if let Ok(specs) = argus::slo::parse_spec(s, "fuzz.yml") {
            for spec in &specs {
                let _ = argus::slo::generate(spec, &opts);
            }
        }
        // An example spec over the windows' period, when they parse.
        if let Some(&days) = opts.windows.keys().next() {
            let spec = format!(
                "version: prometheus/v1\nservice: s\nperiod: {days}d\nslos:\n  - name: a\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(e[{{{{.window}}}}]))\n        total_query: sum(rate(t[{{{{.window}}}}]))\n    alerting: {{name: A}}\n"
            );
            if let Ok(specs) = argus::slo::parse_spec(&spec, "fuzz.yml") {
                for spec in &specs {
                    let _ = argus::slo::generate(spec, &opts);
                }
            }
        }
    }
});
