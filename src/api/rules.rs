//! `/api/v1/rules` and `/api/v1/alerts`, with Prometheus's JSON.

use axum::extract::{RawForm, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiState, body_bytes, get_all, get_one, params, selectors, success};
use crate::model::{Labels, format_rfc3339};
use crate::rules::{Alert, AlertState, Rule};

fn labels_obj(l: &Labels) -> Json {
    Json::Object(
        l.iter()
            .map(|x| (x.name.to_string(), Json::String(x.value.to_string())))
            .collect(),
    )
}

fn map_obj(m: &std::collections::BTreeMap<String, String>) -> Json {
    Json::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect(),
    )
}

/// How Prometheus prints an alert's value.
fn go_e(v: f64) -> String {
    crate::template::go_float_exp(v, false)
}

fn alert_json(a: &Alert) -> Json {
    json!({
        "labels": labels_obj(&a.labels),
        "annotations": map_obj(&a.annotations),
        "state": a.state.as_str(),
        "activeAt": format_rfc3339(a.active_at),
        "value": go_e(a.value),
    })
}

fn time_or_zero(ms: i64) -> String {
    if ms == 0 {
        "0001-01-01T00:00:00Z".into()
    } else {
        format_rfc3339(ms)
    }
}

/// `GET|POST /api/v1/rules`
pub(crate) async fn rules(
    State(st): State<ApiState>,
    method: Method,
    uri: axum::http::Uri,
    form: RawForm,
) -> Response {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    let kind = get_one(&p, "type").unwrap_or("").to_string();
    let names: Vec<String> = get_all(&p, "rule_name[]")
        .into_iter()
        .map(str::to_string)
        .collect();
    let groups_f: Vec<String> = get_all(&p, "rule_group[]")
        .into_iter()
        .map(str::to_string)
        .collect();
    let files_f: Vec<String> = get_all(&p, "file[]")
        .into_iter()
        .map(str::to_string)
        .collect();
    let exclude_alerts = get_one(&p, "exclude_alerts") == Some("true");
    // `match[]` selects rules by their configured labels, as Prometheus 3.
    let sets = match selectors(&p) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let label_match = |l: &std::collections::BTreeMap<String, String>| {
        sets.is_empty() || {
            let l = Labels::from_pairs(l.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            sets.iter()
                .any(|set| set.iter().all(|m| m.matches_labels(&l)))
        }
    };
    let groups: Vec<Json> = st
        .rules
        .with_groups(|gs| {
            let g = &gs.group;
            if (!groups_f.is_empty() && !groups_f.contains(&g.name))
                || (!files_f.is_empty() && !files_f.contains(&g.file))
            {
                return None;
            }
            let health = |name: &str| -> (String, Option<String>) {
                match gs.errors.get(name) {
                    Some(e) => ("err".into(), Some(e.clone())),
                    None if gs.last_eval == 0 => ("unknown".into(), None),
                    None => ("ok".into(), None),
                }
            };
            let mut rules = Vec::new();
            for r in &g.rules {
                if !names.is_empty() && !names.iter().any(|n| n == r.name()) {
                    continue;
                }
                let labels = match r {
                    Rule::Alerting(a) => a.labels(),
                    Rule::Recording(rr) => rr.labels(),
                };
                if !label_match(labels) {
                    continue;
                }
                let (h, err) = health(r.name());
                let mut j = match r {
                    Rule::Alerting(a) => {
                        if kind == "record" {
                            continue;
                        }
                        let mut alerts: Vec<&Alert> = a
                            .active
                            .values()
                            .filter(|x| x.state != AlertState::Inactive)
                            .collect();
                        alerts.sort_by(|x, y| x.labels.cmp(&y.labels));
                        let state = alerts
                            .iter()
                            .map(|x| x.state)
                            .max_by_key(|s| match s {
                                AlertState::Firing => 2,
                                AlertState::Pending => 1,
                                AlertState::Inactive => 0,
                            })
                            .unwrap_or(AlertState::Inactive);
                        let mut j = json!({
                            "state": state.as_str(),
                            "name": a.name,
                            "query": a.expr(),
                            "duration": a.for_ms() as f64 / 1000.0,
                            "keepFiringFor": a.keep_firing_for_ms() as f64 / 1000.0,
                            "labels": map_obj(a.labels()),
                            "annotations": map_obj(a.annotations()),
                            "type": "alerting",
                        });
                        if !exclude_alerts {
                            j["alerts"] =
                                Json::Array(alerts.iter().map(|x| alert_json(x)).collect());
                        }
                        j
                    }
                    Rule::Recording(rr) => {
                        if kind == "alert" {
                            continue;
                        }
                        json!({
                            "name": rr.name,
                            "query": rr.expr(),
                            "labels": map_obj(rr.labels()),
                            "type": "recording",
                        })
                    }
                };
                j["health"] = json!(h);
                if let Some(e) = err {
                    j["lastError"] = json!(e);
                }
                j["evaluationTime"] = json!(gs.last_duration);
                j["lastEvaluation"] = json!(time_or_zero(gs.last_eval));
                rules.push(j);
            }
            if rules.is_empty() && (!names.is_empty() || !kind.is_empty() || !sets.is_empty()) {
                return None;
            }
            Some(json!({
                "name": g.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval_ms as f64 / 1000.0,
                "limit": g.limit,
                "evaluationTime": gs.last_duration,
                "lastEvaluation": time_or_zero(gs.last_eval),
            }))
        })
        .into_iter()
        .flatten()
        .collect();
    success(json!({ "groups": groups }))
}

/// `GET /api/v1/alerts`: pending and firing alerts.
pub(crate) async fn alerts(State(st): State<ApiState>) -> Response {
    let mut all: Vec<Json> = Vec::new();
    st.rules.with_groups(|gs| {
        for r in &gs.group.rules {
            if let Rule::Alerting(a) = r {
                let mut v: Vec<&Alert> = a
                    .active
                    .values()
                    .filter(|x| x.state != AlertState::Inactive)
                    .collect();
                v.sort_by(|x, y| x.labels.cmp(&y.labels));
                all.extend(v.into_iter().map(alert_json));
            }
        }
    });
    success(json!({ "alerts": all }))
}

/// `GET /api/v1/alertmanagers`: where alerts are forwarded, in
/// Prometheus's shape (argus has no discovery, so nothing is dropped).
pub(crate) async fn alertmanagers(State(st): State<ApiState>) -> Response {
    let active: Vec<Json> = st
        .forwarder
        .alertmanagers()
        .into_iter()
        .map(|url| json!({ "url": url }))
        .collect();
    success(json!({ "activeAlertmanagers": active, "droppedAlertmanagers": [] }))
}
