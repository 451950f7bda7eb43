//! SLOs: specs in Sloth's formats (`spec`) and the Prometheus rules that
//! evaluate them (`generate`) — the same series names, labels and
//! multiwindow, multi-burn-rate alerts Sloth produces, so dashboards and
//! routing built for Sloth keep working, whether the rules run in argus
//! or in a vanilla Prometheus.

mod engine;
mod generate;
mod spec;
mod window;

pub use engine::{SLO_WINDOWS_FILE, SloEngine};
pub use generate::{
    AlertWindow, GenerateOptions, RuleGroup, RuleOut, alert_windows, generate, parse_alert_windows,
    to_yaml,
};
pub use spec::{
    AlertMeta, Alerting, LatencySource, Sli, Slo, SloSpec, SpecError, SpecKind, parse_spec,
    parse_spec_with, period_days,
};
pub use window::{SliWindows, WindowStats, windows_from_bytes, windows_to_bytes};

use crate::template::{Funcs, Limits, Template, Value};

/// A query with its `{{.window}}` placeholders filled (Sloth's template
/// syntax, rendered by argus's Go template engine).
pub fn render_window(query: &str, window: &str) -> Result<String, String> {
    if !query.contains("{{") {
        return Ok(query.to_string());
    }
    let t = Template::parse("query", query).map_err(|e| e.to_string())?;
    let mut m = std::collections::BTreeMap::new();
    m.insert("window".to_string(), Value::Str(window.to_string()));
    t.execute(&Value::Map(m), &Funcs::builtin(), Limits::default())
        .map_err(|e| e.to_string())
}

/// The specs of the files `patterns` (globs) name, sorted by file and
/// each with its file name, or every error found. Both the rules (which
/// evaluate what specs generate) and the SLO engine read specs here.
pub fn load_spec_files(patterns: &[String]) -> Result<Vec<(String, SloSpec)>, Vec<SpecError>> {
    let mut files = Vec::new();
    let mut errs = Vec::new();
    let fail = |file: String, msg: String| SpecError {
        file,
        pos: None,
        path: String::new(),
        msg,
    };
    for pattern in patterns {
        match glob::glob(pattern) {
            Ok(paths) => files.extend(paths.filter_map(Result::ok)),
            Err(e) => errs.push(fail(pattern.clone(), format!("invalid pattern: {e}"))),
        }
    }
    files.sort();
    files.dedup();
    let mut out = Vec::new();
    for f in files {
        let name = f.display().to_string();
        match std::fs::read_to_string(&f) {
            Ok(src) => match parse_spec(&src, &name) {
                Ok(specs) => out.extend(specs.into_iter().map(|s| (name.clone(), s))),
                Err(e) => errs.extend(e),
            },
            Err(e) => errs.push(fail(name, format!("cannot read: {e}"))),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}
