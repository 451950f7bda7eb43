//! Expanding alert label and annotation templates as Prometheus does:
//! `$labels`, `$externalLabels`, `$externalURL` and `$value` are defined
//! ahead of the text, and a failure becomes `<error expanding template: …>`
//! in the result instead of failing the rule.

use std::collections::BTreeMap;

use crate::template::prometheus::{QueryFn, add_prometheus_funcs};
use crate::template::{Funcs, Limits, Template, Value};

/// What an alert template sees.
#[derive(Clone, Debug, Default)]
pub struct AlertData {
    /// The alert's labels (the sample's, without `__name__`).
    pub labels: BTreeMap<String, String>,
    /// The config's external labels.
    pub external_labels: BTreeMap<String, String>,
    /// `--web.external-url`.
    pub external_url: String,
    /// The sample's value.
    pub value: f64,
}

const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Expands `text` for the alert `rule` at `now` (Unix seconds).
pub fn expand_alert_template(
    text: &str,
    rule: &str,
    data: &AlertData,
    now: f64,
    query: Option<QueryFn>,
) -> String {
    let name = format!("__alert_{rule}");
    let mut funcs = Funcs::builtin();
    add_prometheus_funcs(&mut funcs, &data.external_url, now, query);
    let mut m = BTreeMap::new();
    m.insert("Labels".to_string(), Value::StrMap(data.labels.clone()));
    m.insert(
        "ExternalLabels".to_string(),
        Value::StrMap(data.external_labels.clone()),
    );
    m.insert(
        "ExternalURL".to_string(),
        Value::Str(data.external_url.clone()),
    );
    m.insert("Value".to_string(), Value::Float(data.value));
    let full = format!("{DEFS}{text}");
    let result = Template::parse(&name, &full)
        .map_err(|e| format!("error parsing template {name}: {e}"))
        .and_then(|t| {
            t.execute(&Value::Map(m), &funcs, Limits::default())
                .map_err(|e| format!("error executing template {name}: {e}"))
        });
    match result {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data() -> AlertData {
        AlertData {
            labels: BTreeMap::from([
                ("instance".to_string(), "web-1:9100".to_string()),
                ("job".to_string(), "node".to_string()),
            ]),
            external_labels: BTreeMap::from([("region".to_string(), "eu".to_string())]),
            external_url: "http://argus.example.com:9095".into(),
            value: 0.0123,
        }
    }

    #[test]
    fn expands_as_prometheus() {
        let out = expand_alert_template(
            "{{ $labels.instance }} in {{ $externalLabels.region }} at {{ $value | humanizePercentage }} ({{ $labels.missing }}) {{ $externalURL }}",
            "HighErrors",
            &data(),
            0.0,
            None,
        );
        assert_eq!(
            out,
            "web-1:9100 in eu at 1.23% () http://argus.example.com:9095"
        );
    }

    #[test]
    fn failures_show_in_the_text() {
        let out = expand_alert_template("{{ $value | nosuch }}", "A", &data(), 0.0, None);
        assert!(
            out.starts_with("<error expanding template: error executing template __alert_A: template: __alert_A:1:")
                && out.ends_with("function \"nosuch\" not defined>"),
            "{out}"
        );
        let out = expand_alert_template("{{ if }}", "A", &data(), 0.0, None);
        assert!(
            out.starts_with("<error expanding template: error parsing template __alert_A:"),
            "{out}"
        );
    }
}
