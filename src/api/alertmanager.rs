//! The Alertmanager API v2 subset that lets Prometheus and `amtool` use
//! argus as their Alertmanager: alerts (`POST`/`GET /api/v2/alerts`),
//! silences (`GET`/`POST /api/v2/silences`, `GET`/`DELETE
//! /api/v2/silence/{id}`). Alerts posted here go through argus's own
//! routing (`alerting.routing_file`).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::model::{format_rfc3339_millis, go_json_escape, parse_rfc3339};
use crate::notify::{
    ApiMatcher, PostableAlert, Silence, SilenceError, SilenceState, parse_matchers,
};

fn reply(code: StatusCode, body: Vec<u8>) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn message(code: StatusCode, msg: &str) -> Response {
    reply(code, serde_json::to_vec(msg).unwrap_or_default())
}

/// `POST /api/v2/alerts`: the valid alerts are taken, the invalid ones
/// named in a 400 answer, as Alertmanager does.
pub(crate) async fn post_alerts(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = super::auth::check_write(&st, &headers) {
        return *r;
    }
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
        match p.check() {
            Ok(a) => {
                have_start.push(a.has_start);
                have_end.push(a.has_end);
                alerts.push(a.alert);
            }
            Err(e) => errors.push(format!("alert {i}: {e}")),
        }
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

/// The selection `GET /api/v2/alerts` and `/api/v2/alerts/groups` make:
/// `active`, `silenced`, `inhibited` (all true by default), `filter`
/// matchers and a `receiver` regex, as Alertmanager filters.
struct AlertFilter {
    active: bool,
    silenced: bool,
    inhibited: bool,
    matchers: Vec<crate::model::Matcher>,
    receiver: Option<regex::Regex>,
}

/// The matchers of one `filter` parameter. Alertmanager takes one matcher
/// per parameter; argus also takes a list (`{a="1",b="2"}`), but a filter
/// that says nothing (`{`, `}`, `,`) is refused as Alertmanager refuses
/// it, rather than matching everything.
fn filter_matchers(f: &str) -> Result<Vec<crate::model::Matcher>, String> {
    let m = parse_matchers(f).map_err(|e| e.to_string())?;
    if m.is_empty() && !f.trim().is_empty() {
        return Err(format!("bad matcher format: {f}"));
    }
    Ok(m)
}

impl AlertFilter {
    /// The filter, or the 400 message.
    fn from_query(q: Option<&str>) -> Result<AlertFilter, String> {
        let p = super::params(q, None);
        let flag = |k: &str| super::get_one(&p, k) != Some("false");
        let mut matchers = Vec::new();
        for f in super::get_all(&p, "filter") {
            matchers.extend(filter_matchers(f)?);
        }
        let receiver = match super::get_one(&p, "receiver").filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => Some(crate::model::anchored_regex(r).map_err(|e| e.to_string())?),
        };
        Ok(AlertFilter {
            active: flag("active"),
            silenced: flag("silenced"),
            inhibited: flag("inhibited"),
            matchers,
            receiver,
        })
    }

    fn keeps(&self, v: &crate::notify::AlertView, now: i64) -> bool {
        let silenced = !v.silenced_by.is_empty();
        !(v.alert.ends_at <= now
            || (v.inhibited && !self.inhibited)
            || (silenced && !self.silenced)
            || (!v.inhibited && !silenced && !self.active)
            || !self
                .matchers
                .iter()
                .all(|m| m.matches_labels(&v.alert.labels))
            || self
                .receiver
                .as_ref()
                .is_some_and(|re| !v.receivers.iter().any(|r| re.is_match(r))))
    }
}

fn gettable_alert(v: &crate::notify::AlertView) -> GettableAlert {
    GettableAlert {
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
            state: if v.inhibited || !v.silenced_by.is_empty() {
                "suppressed"
            } else {
                "active"
            },
            silenced_by: v.silenced_by.clone(),
        },
        updated_at: format_rfc3339_millis(v.updated_at),
        generator_url: v.alert.generator_url.clone(),
        labels: v
            .alert
            .labels
            .iter()
            .map(|l| (l.name.to_string(), l.value.to_string()))
            .collect(),
    }
}

/// `GET /api/v2/alerts`: the alerts argus routes (resolved ones are not
/// listed).
pub(crate) async fn get_alerts(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let f = match AlertFilter::from_query(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let now = st.notifier.now();
    let out: Vec<GettableAlert> = st
        .notifier
        .alerts()
        .iter()
        .filter(|v| f.keeps(v, now))
        .map(gettable_alert)
        .collect();
    json_reply(&out)
}

#[derive(Serialize)]
struct AlertGroup {
    alerts: Vec<GettableAlert>,
    labels: BTreeMap<String, String>,
    receiver: Receiver,
}

/// `GET /api/v2/alerts/groups`: the aggregation groups with their alerts,
/// filtered as `/api/v2/alerts`; groups left empty are not listed.
pub(crate) async fn get_alert_groups(
    State(st): State<ApiState>,
    RawQuery(q): RawQuery,
) -> Response {
    let f = match AlertFilter::from_query(q.as_deref()) {
        Ok(f) => f,
        Err(e) => return message(StatusCode::BAD_REQUEST, &e),
    };
    let now = st.notifier.now();
    let views: BTreeMap<u64, crate::notify::AlertView> = st
        .notifier
        .alerts()
        .into_iter()
        .map(|v| (v.fp, v))
        .collect();
    let mut out = Vec::new();
    for (labels, receiver, fps) in st.notifier.groups() {
        if f.receiver
            .as_ref()
            .is_some_and(|re| !re.is_match(&receiver))
        {
            continue;
        }
        let alerts: Vec<GettableAlert> = fps
            .iter()
            .filter_map(|fp| views.get(fp))
            .filter(|v| f.keeps(v, now))
            .map(gettable_alert)
            .collect();
        if alerts.is_empty() {
            continue;
        }
        out.push(AlertGroup {
            alerts,
            labels: labels
                .iter()
                .map(|l| (l.name.to_string(), l.value.to_string()))
                .collect(),
            receiver: Receiver { name: receiver },
        });
    }
    json_reply(&out)
}

/// `GET /api/v2/receivers`.
pub(crate) async fn get_receivers(State(st): State<ApiState>) -> Response {
    let out: Vec<Receiver> = st
        .notifier
        .receiver_names()
        .into_iter()
        .map(|name| Receiver { name })
        .collect();
    json_reply(&out)
}

/// `GET /api/v2/status`: version, uptime, the routing configuration with
/// its secrets hidden (`amtool config show` prints it), no cluster.
pub(crate) async fn get_status(State(st): State<ApiState>) -> Response {
    let alerting = st
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .config
        .alerting
        .clone();
    let value = match (&alerting.routing_file, &alerting.routing) {
        (Some(f), _) => std::fs::read_to_string(f)
            .ok()
            .and_then(|text| serde_saphyr::from_str::<serde_json::Value>(&text).ok()),
        (None, Some(inline)) => Some(inline.0.clone()),
        (None, None) => None,
    };
    let original = value
        .map(|mut v| {
            crate::config::redact_secrets(&mut v);
            serde_saphyr::to_string(&v).unwrap_or_default()
        })
        .unwrap_or_default();
    // Peers as Alertmanager lists cluster members: this instance's name,
    // and the members that are up.
    let members = st.peers.status();
    let cluster = match members.iter().find(|m| m.is_self) {
        None => serde_json::json!({"name": "", "peers": [], "status": "disabled"}),
        Some(me) => serde_json::json!({
            "name": me.id,
            "peers": members
                .iter()
                .filter(|m| m.up)
                .map(|m| serde_json::json!({"name": m.id, "address": m.url}))
                .collect::<Vec<_>>(),
            "status": "ready",
        }),
    };
    json_reply(&serde_json::json!({
        "cluster": cluster,
        "config": {"original": original},
        "uptime": format_rfc3339_millis(st.started_at),
        "versionInfo": {
            "branch": "",
            "buildDate": crate::build_info::BUILD_DATE,
            "buildUser": "",
            "goVersion": "",
            "revision": crate::build_info::REVISION,
            "version": crate::build_info::VERSION,
        },
    }))
}

/// A silence as clients post it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<ApiMatcher>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "createdBy")]
    created_by: String,
    comment: String,
}

#[derive(Serialize)]
struct SilenceStatus {
    state: &'static str,
}

#[derive(Serialize)]
struct GettableSilence {
    id: String,
    status: SilenceStatus,
    #[serde(rename = "updatedAt")]
    updated_at: String,
    comment: String,
    #[serde(rename = "createdBy")]
    created_by: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    matchers: Vec<ApiMatcher>,
    #[serde(rename = "startsAt")]
    starts_at: String,
}

fn gettable(s: &Silence, now: i64) -> GettableSilence {
    GettableSilence {
        id: s.id.clone(),
        status: SilenceStatus {
            state: s.state(now).as_str(),
        },
        updated_at: format_rfc3339_millis(s.updated_at),
        comment: s.comment.clone(),
        created_by: s.created_by.clone(),
        ends_at: format_rfc3339_millis(s.ends_at),
        matchers: s.matchers.iter().map(ApiMatcher::from).collect(),
        starts_at: format_rfc3339_millis(s.starts_at),
    }
}

fn json_reply<T: Serialize>(v: &T) -> Response {
    reply(
        StatusCode::OK,
        go_json_escape(serde_json::to_vec(v).unwrap_or_default()),
    )
}

/// A silence matches a filter when, for every filter matcher, it has a
/// matcher with the same name, operator and value (Alertmanager's rule).
fn silence_matches_filter(s: &Silence, filter: &[crate::model::Matcher]) -> bool {
    filter.iter().all(|f| {
        s.matchers
            .iter()
            .any(|m| m.name == f.name && m.op == f.op && m.value == f.value)
    })
}

/// `GET /api/v2/silences` with `filter` matchers: active ones first (the
/// next to end first), then pending (the next to start first), then
/// expired (the latest to end first).
pub(crate) async fn get_silences(State(st): State<ApiState>, RawQuery(q): RawQuery) -> Response {
    let p = super::params(q.as_deref(), None);
    let mut filter = Vec::new();
    for f in super::get_all(&p, "filter") {
        match filter_matchers(f) {
            Ok(m) => filter.extend(m),
            Err(e) => return message(StatusCode::BAD_REQUEST, &e),
        }
    }
    let now = st.notifier.now();
    let mut sils: Vec<Silence> = st
        .notifier
        .silences()
        .into_iter()
        .filter(|s| silence_matches_filter(s, &filter))
        .collect();
    sils.sort_by(|a, b| {
        let (sa, sb) = (a.state(now), b.state(now));
        sa.cmp(&sb).then_with(|| match sa {
            SilenceState::Active => a.ends_at.cmp(&b.ends_at),
            SilenceState::Pending => a.starts_at.cmp(&b.starts_at),
            SilenceState::Expired => b.ends_at.cmp(&a.ends_at),
        })
    });
    let out: Vec<GettableSilence> = sils.iter().map(|s| gettable(s, now)).collect();
    json_reply(&out)
}

/// Reads a posted silence as Alertmanager checks it (times, order, not
/// ended before `now`, matchers); the error is the 400 message.
pub fn decode_silence(body: &[u8], now: i64) -> Result<Silence, String> {
    let p: PostableSilence =
        serde_json::from_slice(body).map_err(|e| format!("invalid body: {e}"))?;
    let time =
        |what: &str, t: &str| parse_rfc3339(t).ok_or_else(|| format!("invalid {what} time {t:?}"));
    let (starts_at, ends_at) = (time("start", &p.starts_at)?, time("end", &p.ends_at)?);
    if starts_at >= ends_at {
        return Err("Failed to create silence: start time must be before end time".into());
    }
    if ends_at < now {
        return Err("Failed to create silence: end time can't be in the past".into());
    }
    let matchers = p
        .matchers
        .iter()
        .map(|m| m.to_matcher())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Silence {
        id: p.id.unwrap_or_default(),
        matchers,
        starts_at,
        ends_at,
        updated_at: 0,
        created_by: p.created_by,
        comment: p.comment,
    })
}

/// `POST /api/v2/silences`: creates a silence, or updates the one named by
/// `id`; answers `{"silenceID": ...}`.
pub(crate) async fn post_silences(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = super::auth::check_write(&st, &headers) {
        return *r;
    }
    let sil = match decode_silence(&body, st.notifier.now()) {
        Ok(s) => s,
        Err(m) => return message(StatusCode::BAD_REQUEST, &m),
    };
    match st.notifier.set_silence(sil) {
        Ok(id) => json_reply(&serde_json::json!({ "silenceID": id })),
        Err(e @ SilenceError::NotFound(_)) => message(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ SilenceError::Storage(_)) => {
            message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Err(e) => message(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}

/// `GET /api/v2/silence/{id}`.
pub(crate) async fn get_silence(State(st): State<ApiState>, Path(id): Path<String>) -> Response {
    let now = st.notifier.now();
    match st.notifier.silences().iter().find(|s| s.id == id) {
        Some(s) => json_reply(&gettable(s, now)),
        None => reply(StatusCode::NOT_FOUND, Vec::new()),
    }
}

/// `DELETE /api/v2/silence/{id}`: expires it.
pub(crate) async fn delete_silence(
    State(st): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = super::auth::check_write(&st, &headers) {
        return *r;
    }
    match st.notifier.expire_silence(&id) {
        Ok(()) => reply(StatusCode::OK, Vec::new()),
        Err(SilenceError::NotFound(_)) => reply(StatusCode::NOT_FOUND, Vec::new()),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
