//! The Alertmanager API v2 subset that lets Prometheus and `amtool` use
//! argus as their Alertmanager: `POST`/`GET /api/v2/alerts`. Alerts posted
//! here go through argus's own routing (`alerting.routing_file`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::model::{Alert, Labels, format_rfc3339_millis, go_json_escape, parse_rfc3339};
use crate::notify::parse_matchers;

/// An alert as clients post it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
}

fn reply(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn message(code: StatusCode, msg: &str) -> Response {
    reply(code, serde_json::to_vec(msg).unwrap_or_default())
}

/// `POST /api/v2/alerts`: the valid alerts are taken, the invalid ones
/// named in a 400 answer, as Alertmanager does.
pub(crate) async fn post_alerts(State(st): State<ApiState>, body: Bytes) -> Response {
    if !st.notifier.enabled() {
        return message(
            StatusCode::SERVICE_UNAVAILABLE,
            "argus has no alerting.routing_file: alerts posted here would go nowhere",
        );
    }
    let posted: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return message(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")),
    };
    let (mut alerts, mut have_start, mut have_end, mut errors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, p) in posted.into_iter().enumerate() {
        let labels: Vec<(String, String)> = p
            .labels
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if labels.is_empty() {
            errors.push(format!("alert {i}: at least one label pair required"));
            continue;
        }
        if let Some((n, _)) = labels
            .iter()
            .find(|(n, _)| !crate::model::is_legacy_label_name(n))
        {
            errors.push(format!("alert {i}: invalid label name {n:?}"));
            continue;
        }
        let time = |s: &Option<String>| -> Result<Option<i64>, String> {
            match s
                .as_deref()
                .filter(|s| !s.is_empty() && !s.starts_with("0001-01-01"))
            {
                None => Ok(None),
                Some(t) => parse_rfc3339(t)
                    .map(Some)
                    .ok_or_else(|| format!("invalid time {t:?}")),
            }
        };
        let (s, e) = match (time(&p.starts_at), time(&p.ends_at)) {
            (Ok(s), Ok(e)) => (s, e),
            (Err(m), _) | (_, Err(m)) => {
                errors.push(format!("alert {i}: {m}"));
                continue;
            }
        };
        if let (Some(s), Some(e)) = (s, e) {
            if e < s {
                errors.push(format!("alert {i}: start time must be before end time"));
                continue;
            }
        }
        have_start.push(s.is_some());
        have_end.push(e.is_some());
        alerts.push(Alert {
            labels: Labels::from_pairs(labels),
            annotations: p.annotations,
            starts_at: s.unwrap_or(0),
            ends_at: e.unwrap_or(0),
            generator_url: p.generator_url.unwrap_or_default(),
        });
    }
    st.notifier.receive(alerts, &have_start, &have_end);
    if errors.is_empty() {
        reply(StatusCode::OK, Vec::new())
    } else {
        message(StatusCode::BAD_REQUEST, &errors.join("\n"))
    }
}

#[derive(Serialize)]
struct Receiver {
    name: String,
}

#[derive(Serialize)]
struct Status {
    #[serde(rename = "inhibitedBy")]
    inhibited_by: Vec<String>,
    #[serde(rename = "silencedBy")]
    silenced_by: Vec<String>,
    state: &'static str,
}

#[derive(Serialize)]
struct GettableAlert {
    annotations: BTreeMap<String, String>,
    #[serde(rename = "endsAt")]
    ends_at: String,
    fingerprint: String,
    receivers: Vec<Receiver>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    status: Status,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "String::is_empty")]
    generator_url: String,
    labels: BTreeMap<String, String>,
}

/// `GET /api/v2/alerts` with `active`, `inhibited`, `silenced`,
/// `unprocessed`, `filter` (matchers) and `receiver` (regex), as
/// Alertmanager filters; resolved alerts are not listed.
pub(crate) async fn get_alerts(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = super::params(q.as_deref(), None);
    let flag = |k: &str| super::get_one(&p, k) != Some("false");
    let (active, inhibited) = (flag("active"), flag("inhibited"));
    let mut matchers = Vec::new();
    for f in super::get_all(&p, "filter") {
        match parse_matchers(f) {
            Ok(m) => matchers.extend(m),
            Err(e) => return message(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    let receiver = match super::get_one(&p, "receiver").filter(|r| !r.is_empty()) {
        None => None,
        Some(r) => match crate::model::anchored_regex(r) {
            Ok(re) => Some(re),
            Err(e) => return message(StatusCode::BAD_REQUEST, &e.to_string()),
        },
    };
    let now = crate::model::now_millis();
    let mut out: Vec<GettableAlert> = Vec::new();
    for v in st.notifier.alerts() {
        if v.alert.ends_at <= now
            || (v.inhibited && !inhibited)
            || (!v.inhibited && !active)
            || !matchers.iter().all(|m| m.matches_labels(&v.alert.labels))
            || receiver
                .as_ref()
                .is_some_and(|re| !v.receivers.iter().any(|r| re.is_match(r)))
        {
            continue;
        }
        out.push(GettableAlert {
            annotations: v.alert.annotations.clone(),
            ends_at: format_rfc3339_millis(v.alert.ends_at),
            fingerprint: format!("{:016x}", v.fp),
            receivers: v
                .receivers
                .iter()
                .map(|n| Receiver { name: n.clone() })
                .collect(),
            starts_at: format_rfc3339_millis(v.alert.starts_at),
            status: Status {
                inhibited_by: Vec::new(),
                silenced_by: Vec::new(),
                state: if v.inhibited { "suppressed" } else { "active" },
            },
            updated_at: format_rfc3339_millis(v.updated_at),
            generator_url: v.alert.generator_url.clone(),
            labels: v
                .alert
                .labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
        });
    }
    reply(
        StatusCode::OK,
        go_json_escape(serde_json::to_vec(&out).unwrap_or_default()),
    )
}
