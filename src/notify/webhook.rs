//! The webhook integration's message: Alertmanager's version "4" payload,
//! field for field as Alertmanager 0.25 writes it (Go's JSON escaping, a
//! trailing newline, firing alerts with a zero `endsAt`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::dispatch::{Flush, GroupedAlert};
use crate::model::{Labels, format_rfc3339, go_json_escape};

#[derive(Serialize)]
struct WebhookAlert<'a> {
    status: &'static str,
    labels: BTreeMap<&'a str, &'a str>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: String,
}

#[derive(Serialize)]
struct Message<'a> {
    receiver: String,
    status: &'static str,
    alerts: Vec<WebhookAlert<'a>>,
    #[serde(rename = "groupLabels")]
    group_labels: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "commonLabels")]
    common_labels: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "commonAnnotations")]
    common_annotations: BTreeMap<&'a str, &'a str>,
    #[serde(rename = "externalURL")]
    external_url: &'a str,
    version: &'static str,
    #[serde(rename = "groupKey")]
    group_key: &'a str,
    #[serde(rename = "truncatedAlerts")]
    truncated_alerts: u64,
}

/// Go's `time.Time` in JSON: RFC 3339 with the fraction trimmed; the zero
/// time for "not set".
fn go_time(ms: Option<i64>) -> String {
    match ms {
        Some(t) => format_rfc3339(t),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver
/// name in template data.
fn quote_meta(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn map(l: &Labels) -> BTreeMap<&str, &str> {
    l.iter().map(|x| (&*x.name, &*x.value)).collect()
}

/// The alerts an integration sends for a flush: resolved ones only when it
/// sends resolves.
pub fn alerts_to_send(f: &Flush, send_resolved: bool) -> Vec<&GroupedAlert> {
    f.alerts
        .iter()
        .filter(|a| send_resolved || !a.resolved_at(f.now))
        .collect()
}

/// The JSON body for `alerts` of flush `f`, at most `max_alerts` of them
/// (0: all), the rest counted in `truncatedAlerts`.
pub fn webhook_message(
    f: &Flush,
    alerts: &[&GroupedAlert],
    max_alerts: u64,
    external_url: &str,
) -> Vec<u8> {
    let (kept, truncated) = if max_alerts > 0 && alerts.len() as u64 > max_alerts {
        (
            &alerts[..max_alerts as usize],
            alerts.len() as u64 - max_alerts,
        )
    } else {
        (alerts, 0)
    };
    let firing = kept.iter().any(|a| !a.resolved_at(f.now));
    let mut common_labels = kept
        .first()
        .map(|a| map(&a.alert.labels))
        .unwrap_or_default();
    let mut common_annotations: BTreeMap<&str, &str> = kept
        .first()
        .map(|a| {
            a.alert
                .annotations
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        })
        .unwrap_or_default();
    for a in kept.iter().skip(1) {
        common_labels.retain(|k, v| a.alert.labels.get(k) == Some(*v));
        common_annotations
            .retain(|k, v| a.alert.annotations.get(*k).map(|s| s.as_str()) == Some(*v));
    }
    let msg = Message {
        receiver: quote_meta(&f.receiver),
        status: if firing { "firing" } else { "resolved" },
        alerts: kept
            .iter()
            .map(|a| {
                let resolved = a.resolved_at(f.now);
                WebhookAlert {
                    status: if resolved { "resolved" } else { "firing" },
                    labels: map(&a.alert.labels),
                    annotations: &a.alert.annotations,
                    starts_at: go_time(Some(a.alert.starts_at)),
                    ends_at: go_time(resolved.then_some(a.alert.ends_at)),
                    generator_url: &a.alert.generator_url,
                    fingerprint: format!("{:016x}", a.fp),
                }
            })
            .collect(),
        group_labels: map(&f.group_labels),
        common_labels,
        common_annotations,
        external_url,
        version: "4",
        group_key: &f.group_key,
        truncated_alerts: truncated,
    };
    let mut body = go_json_escape(serde_json::to_vec(&msg).unwrap_or_default());
    body.push(b'\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Alert;

    #[test]
    fn message_is_alertmanagers() {
        let l = Labels::from_pairs([("alertname", "Down"), ("job", "a&b")]);
        let a = |job: &str, ends: i64| GroupedAlert {
            fp: 0x0123_4567_89ab_cdef,
            alert: Alert {
                labels: Labels::from_pairs([("alertname", "Down"), ("job", job)]),
                annotations: BTreeMap::from([("summary".to_string(), "down".to_string())]),
                starts_at: 1_700_000_000_000,
                ends_at: ends,
                generator_url: "http://x/graph".into(),
            },
        };
        let f = Flush {
            group_key: "{}:{alertname=\"Down\"}".into(),
            receiver: "team.x".into(),
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            route_labels: BTreeMap::new(),
            repeat_interval_ms: 0,
            alerts: vec![a("a&b", i64::MAX), a("c", 1_700_000_060_000)],
            now: 1_700_000_100_000,
        };
        let _ = l;
        let all = alerts_to_send(&f, true);
        let body = String::from_utf8(webhook_message(&f, &all, 1, "http://argus:9095")).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"receiver":"team\\.x","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Down","job":"a\u0026b"},"#,
                r#""annotations":{"summary":"down"},"startsAt":"2023-11-14T22:13:20Z","endsAt":"0001-01-01T00:00:00Z","#,
                r#""generatorURL":"http://x/graph","fingerprint":"0123456789abcdef"}],"groupLabels":{"alertname":"Down"},"#,
                r#""commonLabels":{"alertname":"Down","job":"a\u0026b"},"commonAnnotations":{"summary":"down"},"#,
                r#""externalURL":"http://argus:9095","version":"4","groupKey":"{}:{alertname=\"Down\"}","truncatedAlerts":1}"#,
                "\n"
            )
        );
        assert_eq!(alerts_to_send(&f, false).len(), 1);
    }
}
