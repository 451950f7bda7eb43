//! The webhook integration's message: Alertmanager's version "4" payload,
//! field for field as Alertmanager 0.25 writes it (Go's JSON escaping, a
//! trailing newline, firing alerts with a zero `endsAt`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::dispatch::{Flush, GroupedAlert};
use super::tmpl::NotificationData;
use crate::model::{format_rfc3339, go_json_escape};

#[derive(Serialize)]
struct WebhookAlert<'a> {
    status: &'a str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: &'a str,
    fingerprint: &'a str,
}

#[derive(Serialize)]
struct Message<'a> {
    receiver: &'a str,
    status: &'a str,
    alerts: Vec<WebhookAlert<'a>>,
    #[serde(rename = "groupLabels")]
    group_labels: &'a BTreeMap<String, String>,
    #[serde(rename = "commonLabels")]
    common_labels: &'a BTreeMap<String, String>,
    #[serde(rename = "commonAnnotations")]
    common_annotations: &'a BTreeMap<String, String>,
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

/// The alerts an integration sends for a flush: resolved ones only when it
/// sends resolves.
pub fn alerts_to_send(f: &Flush, send_resolved: bool) -> Vec<&GroupedAlert> {
    f.alerts
        .iter()
        .filter(|a| send_resolved || !a.resolved_at(f.now))
        .collect()
}

/// The data of a webhook message: at most `max_alerts` of `alerts` (0:
/// all), the rest counted in `truncated_alerts`, as Alertmanager cuts
/// before it builds the data.
pub fn webhook_data(
    f: &Flush,
    alerts: &[&GroupedAlert],
    max_alerts: u64,
    external_url: &str,
) -> NotificationData {
    let (kept, truncated) = if max_alerts > 0 && alerts.len() as u64 > max_alerts {
        (
            &alerts[..max_alerts as usize],
            alerts.len() as u64 - max_alerts,
        )
    } else {
        (alerts, 0)
    };
    let mut d = NotificationData::new(f, kept, external_url);
    d.truncated_alerts = truncated;
    d
}

/// The JSON body of a webhook message.
pub fn webhook_body(d: &NotificationData) -> Vec<u8> {
    versioned_body(d, "4")
}

/// The webhook payload with another `version` (incident.io's is "1").
pub fn versioned_body(d: &NotificationData, version: &'static str) -> Vec<u8> {
    let msg = Message {
        receiver: &d.receiver,
        status: &d.status,
        alerts: d
            .alerts
            .iter()
            .map(|a| WebhookAlert {
                status: &a.status,
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: go_time(Some(a.starts_at)),
                ends_at: go_time(a.ends_at),
                generator_url: &a.generator_url,
                fingerprint: &a.fingerprint,
            })
            .collect(),
        group_labels: &d.group_labels,
        common_labels: &d.common_labels,
        common_annotations: &d.common_annotations,
        external_url: &d.external_url,
        version,
        group_key: &d.group_key,
        truncated_alerts: d.truncated_alerts,
    };
    let mut body = go_json_escape(serde_json::to_vec(&msg).unwrap_or_default());
    body.push(b'\n');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alert, Labels};

    #[test]
    fn message_is_alertmanagers() {
        let a = |job: &str, ends: i64| GroupedAlert {
            fp: 0x0123_4567_89ab_cdef,
            alert: std::sync::Arc::new(Alert {
                labels: Labels::from_pairs([("alertname", "Down"), ("job", job)]),
                annotations: BTreeMap::from([("summary".to_string(), "down".to_string())]),
                starts_at: 1_700_000_000_000,
                ends_at: ends,
                generator_url: "http://x/graph".into(),
            }),
        };
        let f = Flush {
            slot: String::new(),
            group_key: "{}:{alertname=\"Down\"}".into(),
            receiver: "team.x".into(),
            group_labels: Labels::from_pairs([("alertname", "Down")]),
            route_labels: BTreeMap::new(),
            repeat_interval_ms: 0,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            alerts: vec![a("a&b", i64::MAX), a("c", 1_700_000_060_000)],
            now: 1_700_000_100_000,
        };
        let all = alerts_to_send(&f, true);
        let body = String::from_utf8(webhook_body(&webhook_data(
            &f,
            &all,
            1,
            "http://argus:9095",
        )))
        .unwrap();
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
