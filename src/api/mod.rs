//! The one HTTP server: health, reload, self metrics, the Prometheus v1
//! read API (targets, series, labels, status) and federation.

pub mod alertmanager;
mod auth;
mod query;
mod rules;
pub mod web_file;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, Query, RawForm, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::config::Config;
use crate::model::{
    Labels, MatchOp, Matcher, Timestamp, escape_label_value, format_duration, format_float,
    format_rfc3339, is_stale_nan, parse_rfc3339,
};
use crate::scrape::ScrapeManager;
use crate::storage::{Head, Queryable};
use crate::telemetry::Metrics;

/// A reload request: returns the error text if the new config was refused.
pub type ReloadFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The config currently running, with its source text.
#[derive(Clone, Debug, Default)]
pub struct LoadedConfig {
    /// Parsed config.
    pub config: Config,
}

/// Everything the handlers read.
#[derive(Clone)]
pub struct ApiState {
    /// The series store.
    pub head: Arc<Head>,
    /// Scrape targets.
    pub scrape: Arc<ScrapeManager>,
    /// Self metrics.
    pub metrics: Arc<Metrics>,
    /// Running config.
    pub config: Arc<RwLock<LoadedConfig>>,
    /// Triggers a reload.
    pub reload: ReloadFn,
    /// True once startup finished.
    pub ready: Arc<AtomicBool>,
    /// The PromQL engine; its lookback also bounds federation.
    pub engine: Arc<crate::promql::Engine>,
    /// Rule groups and their alerts.
    pub rules: Arc<crate::rules::RuleManager>,
    /// Alertmanagers alerts are forwarded to.
    pub forwarder: Arc<crate::notify::Forwarder>,
    /// argus's own routing and delivery.
    pub notifier: Arc<crate::notify::Notifier>,
    /// When the process started (ms).
    pub started_at: i64,
    /// The other peers (see `ha`).
    pub peers: Arc<crate::ha::Peers>,
    /// Slots for concurrent API queries (`--query.max-concurrency`), so
    /// a flood of queries waits instead of starving evaluation.
    pub query_slots: Arc<tokio::sync::Semaphore>,
}

/// Largest heartbeat body: a full sync of a busy notification log and
/// silences. Read before the signature is checked, so it is bounded.
pub const MAX_HEARTBEAT_BODY: usize = 64 << 20;

/// Largest `POST /api/v2/alerts` body: 100,000 alerts in one request, as
/// Alertmanager takes them, fit with room to spare.
pub const MAX_ALERTS_BODY: usize = 64 << 20;

/// Largest body of every other endpoint (axum's default): queries, silences,
/// reloads.
pub const MAX_OTHER_BODY: usize = 2 << 20;

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route(
            "/api/v1/peers/heartbeat",
            post(peer_heartbeat).layer(axum::extract::DefaultBodyLimit::max(MAX_HEARTBEAT_BODY)),
        )
        .route("/api/v1/peers", get(peer_status))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics))
        .route("/federate", get(federate))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/format_query",
            get(query::format).post(query::format),
        )
        .route("/api/v1/parse_query", get(query::parse).post(query::parse))
        .route("/api/v1/rules", get(rules::rules).post(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/alertmanagers", get(rules::alertmanagers))
        .route(
            "/api/v2/alerts",
            get(alertmanager::get_alerts)
                .post(alertmanager::post_alerts)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_ALERTS_BODY)),
        )
        .route("/api/v2/alerts/groups", get(alertmanager::get_alert_groups))
        .route("/api/v2/receivers", get(alertmanager::get_receivers))
        .route("/api/v2/status", get(alertmanager::get_status))
        .route(
            "/api/v2/silences",
            get(alertmanager::get_silences).post(alertmanager::post_silences),
        )
        .route(
            "/api/v2/silence/{id}",
            get(alertmanager::get_silence).delete(alertmanager::delete_silence),
        )
        .route("/api/v1/metadata", get(metadata))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/status/config", get(status_config))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_OTHER_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn observe(
    State(st): State<ApiState>,
    matched: Option<axum::extract::MatchedPath>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let handler = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "other".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    let code = resp.status().as_u16().to_string();
    st.metrics
        .http_requests
        .get_or_create(&vec![
            ("handler".into(), handler.clone()),
            ("code".into(), code),
        ])
        .inc();
    st.metrics
        .http_duration
        .get_or_create(&vec![("handler".into(), handler)])
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Prometheus API error types.
#[derive(Clone, Copy, Debug)]
pub enum ErrorType {
    /// 400
    BadData,
    /// 500
    Internal,
    /// 404
    NotFound,
}

/// An API error rendered as Prometheus renders it.
#[derive(Debug)]
pub struct ApiError(ErrorType, String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(ErrorType::BadData, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, t) = match self.0 {
            ErrorType::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
            ErrorType::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ErrorType::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        };
        (
            code,
            axum::Json(json!({"status": "error", "errorType": t, "error": self.1})),
        )
            .into_response()
    }
}

fn success(data: Value) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

async fn healthy() -> &'static str {
    "argus is Healthy.\n"
}

/// Ready: started (config loaded), every rule group evaluated within
/// three of its intervals, and not every receiver integration failing.
/// Otherwise 503 with the reasons, one per line (what `argus check
/// health` prints).
async fn ready(State(st): State<ApiState>) -> Response {
    let reasons = unready_reasons(&st);
    if reasons.is_empty() {
        // State that cannot be saved does not stop delivery: ready, but
        // saying what a restart now would lose.
        let degraded = st.notifier.degraded();
        if degraded.is_empty() {
            (StatusCode::OK, "argus is Ready.\n").into_response()
        } else {
            (
                StatusCode::OK,
                format!("argus is Ready, degraded:\n{}\n", degraded.join("\n")),
            )
                .into_response()
        }
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("argus is not ready:\n{}\n", reasons.join("\n")),
        )
            .into_response()
    }
}

fn unready_reasons(st: &ApiState) -> Vec<String> {
    if !st.ready.load(Ordering::Relaxed) {
        return vec!["starting or shutting down".into()];
    }
    let now = st.notifier.now();
    let mut out: Vec<String> = st
        .rules
        .with_groups(|g| {
            let late = 3 * g.group.interval_ms.max(1000);
            // A group gets its first slot within one interval of start.
            let since = if g.last_eval == 0 {
                st.started_at + g.group.interval_ms
            } else {
                g.last_eval
            };
            (now - since > late).then(|| {
                format!(
                    "rule group {:?} ({}) has not evaluated for {}s",
                    g.group.name,
                    g.group.file,
                    (now - since) / 1000
                )
            })
        })
        .into_iter()
        .flatten()
        .collect();
    let (failing, total) = st.notifier.failing_integrations();
    if total > 0 && failing.len() == total {
        out.push(format!(
            "every receiver integration is failing (circuit open): {}",
            failing.join(", ")
        ));
    }
    out
}

async fn peer_heartbeat(
    State(st): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    match st.peers.receive(
        h(crate::ha::HEADER_TIMESTAMP),
        h(crate::ha::HEADER_SIGNATURE),
        &body,
    ) {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(crate::ha::Reject::NotConfigured) => not_found().await,
        Err(e @ crate::ha::Reject::Malformed(_)) => {
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::UNAUTHORIZED, format!("{e}\n")).into_response(),
    }
}

async fn peer_status(State(st): State<ApiState>) -> Response {
    success(serde_json::to_value(st.peers.status()).unwrap_or_default())
}

async fn reload(State(st): State<ApiState>, headers: axum::http::HeaderMap) -> Response {
    if let Err(r) = auth::check_write(&st, &headers) {
        return *r;
    }
    match (st.reload)().await {
        Ok(()) => (StatusCode::OK, "").into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {e}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<ApiState>) -> Response {
    let h = &st.head.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let figures = crate::telemetry::StoreFigures {
        series: st.head.num_series(),
        samples_appended: h.samples_appended.load(Ordering::Relaxed),
        out_of_order: h.out_of_order.load(Ordering::Relaxed),
        duplicate: h.duplicate.load(Ordering::Relaxed),
        series_removed: h.series_removed.load(Ordering::Relaxed),
        unknown_ref: h.unknown_ref.load(Ordering::Relaxed),
        memory: crate::storage::HeadMemory::PARTS
            .iter()
            .zip(h.memory.iter())
            .map(|(p, v)| (*p, v.load(Ordering::Relaxed)))
            .collect(),
        wal: st.head.wal().map(|w| {
            let s = &w.stats;
            crate::telemetry::WalFigures {
                bytes_written: get(&s.bytes_written),
                fsyncs: get(&s.fsyncs),
                fsync_seconds: get(&s.fsync_micros) as f64 / 1e6,
                write_failures: get(&s.write_failures),
                corruptions: get(&s.corruptions),
                truncations: get(&s.truncations),
                segment: get(&s.segment),
                buffer_bytes: get(&s.buffer_capacity).max(get(&s.pending_bytes)),
            }
        }),
        chunks: st.head.chunk_files().map(|c| {
            let s = &c.stats;
            crate::telemetry::ChunkFigures {
                chunks_written: get(&s.chunks_written),
                bytes_written: get(&s.bytes_written),
                write_failures: get(&s.write_failures),
                corruptions: get(&s.corruptions),
                files_removed: get(&s.files_removed),
                files: get(&s.files),
                disk_bytes: get(&s.disk_bytes),
            }
        }),
    };
    let body = st.metrics.render(&figures);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Query parameters that may repeat (`match[]`), from the URL and a
/// form-encoded body alike.
fn params(query: Option<&str>, form: Option<&[u8]>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |s: &[u8]| {
        for part in s.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (k, v) = match part.iter().position(|&b| b == b'=') {
                Some(i) => (&part[..i], &part[i + 1..]),
                None => (part, &b""[..]),
            };
            out.push((url_decode(k), url_decode(v)));
        }
    };
    if let Some(q) = query {
        add(q.as_bytes());
    }
    if let Some(f) = form {
        add(f);
    }
    out
}

fn url_decode(b: &[u8]) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn get_all<'a>(p: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    p.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn get_one<'a>(p: &'a [(String, String)], key: &str) -> Option<&'a str> {
    p.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Parses a Prometheus API time: float Unix seconds or RFC 3339.
pub fn parse_time(s: &str) -> Option<Timestamp> {
    if let Ok(f) = s.parse::<f64>() {
        // Beyond ±2^62 ms (146 million years) a float time is refused
        // rather than saturated, so no later arithmetic on it overflows.
        let ms = (f * 1000.0).round();
        if ms.is_finite() && ms.abs() <= (1i64 << 62) as f64 {
            return Some(ms as i64);
        }
        return None;
    }
    parse_rfc3339(s)
}

fn time_param(
    p: &[(String, String)],
    key: &str,
    default: Timestamp,
) -> Result<Timestamp, ApiError> {
    match get_one(p, key) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            ApiError::bad(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp"
            ))
        }),
    }
}

fn limit_param(p: &[(String, String)]) -> Result<usize, ApiError> {
    match get_one(p, "limit") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                ApiError::bad("invalid parameter \"limit\": limit must be non-negative")
            }),
    }
}

/// Converts one series selector (`up{job="a"}`) into matcher sets (one per
/// `or` branch).
pub fn parse_selector(s: &str) -> Result<Vec<Vec<Matcher>>, String> {
    let expr = crate::promql::limits::parse_expr(s)?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector"
        ));
    };
    let conv = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, String> {
        let mut out = Vec::new();
        if let Some(n) = &vs.name {
            if !ms.iter().any(|m| m.name == "__name__") {
                out.push(
                    Matcher::new(MatchOp::Equal, "__name__", n.as_str())
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        for m in ms {
            let op = match m.op {
                promql_parser::label::MatchOp::Equal => MatchOp::Equal,
                promql_parser::label::MatchOp::NotEqual => MatchOp::NotEqual,
                promql_parser::label::MatchOp::Re(_) => MatchOp::Regex,
                promql_parser::label::MatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|e| e.to_string())?,
            );
        }
        if out.iter().all(|m| m.matches_empty()) {
            return Err("match[] must contain at least one non-empty matcher".into());
        }
        Ok(out)
    };
    let mut sets = vec![conv(&vs.matchers.matchers)?];
    for branch in &vs.matchers.or_matchers {
        sets.push(conv(branch)?);
    }
    if !vs.matchers.or_matchers.is_empty() && vs.matchers.matchers.is_empty() {
        sets.remove(0);
    }
    Ok(sets)
}

pub(crate) fn selectors(p: &[(String, String)]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for s in get_all(p, "match[]") {
        out.extend(
            parse_selector(s)
                .map_err(|e| ApiError::bad(format!("invalid parameter \"match[]\": {e}")))?,
        );
    }
    Ok(out)
}

fn labels_json(l: &Labels) -> Value {
    let m: serde_json::Map<String, Value> = l
        .iter()
        .map(|x| (x.name.to_string(), Value::String(x.value.to_string())))
        .collect();
    Value::Object(m)
}

const MIN_TIME: Timestamp = i64::MIN / 2;
/// What Prometheus shows for a target that was never scraped (Go's zero time).
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const MAX_TIME: Timestamp = i64::MAX / 2;

fn body_bytes(method: &Method, form: &RawForm) -> Option<Vec<u8>> {
    (method == Method::POST).then(|| form.0.to_vec())
}

/// The parameters every series-metadata endpoint shares.
struct ReadParams {
    selectors: Vec<Vec<Matcher>>,
    start: Timestamp,
    end: Timestamp,
    limit: usize,
}

impl ReadParams {
    fn parse(p: &[(String, String)]) -> Result<Self, ApiError> {
        Ok(ReadParams {
            selectors: selectors(p)?,
            start: time_param(p, "start", MIN_TIME)?,
            end: time_param(p, "end", MAX_TIME)?,
            limit: limit_param(p)?,
        })
    }

    /// The selectors, or one empty selector (all series) when none was given.
    fn selectors_or_all(&self) -> Vec<Vec<Matcher>> {
        if self.selectors.is_empty() {
            vec![Vec::new()]
        } else {
            self.selectors.clone()
        }
    }
}

async fn series(
    State(st): State<ApiState>,
    method: Method,
    uri: axum::http::Uri,
    form: RawForm,
) -> Result<Response, ApiError> {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    let rp = ReadParams::parse(&p)?;
    if rp.selectors.is_empty() {
        return Err(ApiError::bad("no match[] parameter provided"));
    }
    let mut all = std::collections::BTreeSet::new();
    for ms in &rp.selectors {
        all.extend(st.head.series(ms, rp.start, rp.end));
    }
    Ok(limited(all.iter().map(labels_json).collect(), rp.limit))
}

async fn labels(
    State(st): State<ApiState>,
    method: Method,
    uri: axum::http::Uri,
    form: RawForm,
) -> Result<Response, ApiError> {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    let rp = ReadParams::parse(&p)?;
    let mut names = std::collections::BTreeSet::new();
    for ms in rp.selectors_or_all() {
        names.extend(st.head.label_names(&ms, rp.start, rp.end));
    }
    Ok(limited(
        names.into_iter().map(Value::String).collect(),
        rp.limit,
    ))
}

/// A success response whose data is cut to `limit` items (0 = all), with
/// Prometheus's warning when it was cut.
fn limited(mut v: Vec<Value>, limit: usize) -> Response {
    let mut body = json!({"status": "success"});
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        body["warnings"] = json!(["results truncated due to limit"]);
    }
    body["data"] = json!(v);
    axum::Json(body).into_response()
}

async fn label_values(
    State(st): State<ApiState>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let p = params(uri.query(), None);
    // UTF-8 label names arrive as `U__` + escaped form; plain names as is.
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad(format!("invalid label name: {name:?}")));
    }
    let rp = ReadParams::parse(&p)?;
    let mut values = std::collections::BTreeSet::new();
    for ms in rp.selectors_or_all() {
        values.extend(st.head.label_values(&name, &ms, rp.start, rp.end));
    }
    Ok(limited(
        values.into_iter().map(Value::String).collect(),
        rp.limit,
    ))
}

/// Decodes Prometheus's `U__` value-encoding of UTF-8 label names in paths.
fn unescape_label_name(s: &str) -> String {
    let Some(rest) = s.strip_prefix("U__") else {
        return s.to_string();
    };
    let mut out = String::new();
    let mut it = rest.chars().peekable();
    while let Some(c) = it.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'_') {
            it.next();
            out.push('_');
            continue;
        }
        let hex: String = it.by_ref().take_while(|c| *c != '_').collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) => out.push(ch),
            None => return s.to_string(),
        }
    }
    out
}

async fn targets(
    State(st): State<ApiState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let state = q
        .get("state")
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_else(|| "any".into());
    let pool = q.get("scrapePool").cloned();
    let crate::scrape::Targets {
        active,
        dropped,
        dropped_counts,
    } = st.scrape.targets();
    let mut data = json!({});
    if state == "any" || state == "active" {
        let v: Vec<Value> = active
            .iter()
            .filter(|t| pool.as_ref().is_none_or(|p| p == &t.job))
            .map(|t| {
                json!({
                    "discoveredLabels": labels_json(&t.discovered),
                    "labels": labels_json(&t.labels),
                    "scrapePool": t.job,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": t.health.last_error,
                    "lastScrape": t.health.last_scrape.map(format_rfc3339).unwrap_or_else(|| GO_ZERO_TIME.to_string()),
                    "lastScrapeDuration": t.health.last_duration.as_secs_f64(),
                    "health": t.health.health,
                    "scrapeInterval": format_duration(t.interval),
                    "scrapeTimeout": format_duration(t.timeout),
                })
            })
            .collect();
        data["activeTargets"] = json!(v);
    }
    if state == "any" || state == "dropped" {
        let v: Vec<Value> = dropped
            .iter()
            .filter(|(j, _)| pool.as_ref().is_none_or(|p| p == j))
            .map(|(j, l)| json!({"discoveredLabels": labels_json(l), "scrapePool": j}))
            .collect();
        let counts: BTreeMap<&String, usize> = dropped_counts
            .iter()
            .filter(|(j, n)| **n > 0 && pool.as_ref().is_none_or(|p| p == *j))
            .map(|(j, n)| (j, *n))
            .collect();
        data["droppedTargets"] = json!(v);
        data["droppedTargetCounts"] = json!(counts);
    }
    success(data)
}

/// argus keeps no metric metadata (HELP/TYPE) yet: an empty map, which is
/// what Prometheus answers for metrics it has no metadata for, keeps
/// Grafana's query editor working.
async fn metadata() -> Response {
    success(json!({}))
}

/// argus stores no exemplars: an empty list, as Prometheus answers when
/// none match.
async fn query_exemplars() -> Response {
    success(json!([]))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": crate::build_info::VERSION,
        "revision": crate::build_info::REVISION,
        "branch": "",
        "buildUser": "",
        "buildDate": crate::build_info::BUILD_DATE,
        "goVersion": "",
    }))
}

async fn status_config(State(st): State<ApiState>) -> Result<Response, ApiError> {
    let cfg = st
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .config
        .clone();
    let yaml =
        serde_saphyr::to_string(&cfg).map_err(|e| ApiError(ErrorType::Internal, e.to_string()))?;
    Ok(success(json!({"yaml": yaml})))
}

async fn federate(State(st): State<ApiState>, uri: axum::http::Uri) -> Result<Response, ApiError> {
    let p = params(uri.query(), None);
    let sels = selectors(&p)?;
    let now = crate::model::now_millis();
    let ext: Vec<(String, String)> = st
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .config
        .global
        .external_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut latest: BTreeMap<Labels, (Timestamp, f64)> = BTreeMap::new();
    for ms in &sels {
        for s in st.head.select(
            ms,
            now - st.engine.options().lookback_delta.as_millis() as i64,
            now,
        ) {
            if let Some(last) = s.samples.last() {
                if !is_stale_nan(last.v) {
                    latest.insert(s.labels, (last.t, last.v));
                }
            }
        }
    }
    // Group by metric name, each family behind a `# TYPE name untyped` line.
    let mut out = String::new();
    let mut last_name: Option<String> = None;
    let mut rows: Vec<(String, Labels, Timestamp, f64)> = latest
        .into_iter()
        .map(|(l, (t, v))| {
            let mut b = l.builder();
            for (k, v) in &ext {
                if l.get(k).is_none() {
                    b.set_str(k, v);
                }
            }
            (l.metric_name().unwrap_or("").to_string(), b.build(), t, v)
        })
        .collect();
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (name, l, t, v) in rows {
        if last_name.as_deref() != Some(name.as_str()) {
            out.push_str(&format!("# TYPE {name} untyped\n"));
            last_name = Some(name.clone());
        }
        out.push_str(&name);
        let rest: Vec<String> = l
            .iter()
            .filter(|x| &*x.name != "__name__")
            .map(|x| format!("{}=\"{}\"", x.name, escape_label_value(&x.value)))
            .collect();
        if !rest.is_empty() {
            out.push('{');
            out.push_str(&rest.join(","));
            out.push('}');
        }
        out.push(' ');
        out.push_str(&format_float(v));
        out.push(' ');
        out.push_str(&t.to_string());
        out.push('\n');
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_times() {
        let s = parse_selector("up{job=~\"a|b\"}").unwrap();
        assert_eq!(s[0].len(), 2);
        assert!(parse_selector("{job=\"\"}").is_err());
        assert!(parse_selector("sum(up)").is_err());
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(url_decode(b"a%20b+c%zz%4"), "a b c%zz%4");
        assert_eq!(unescape_label_name("U__my_2e_label"), "my.label");
        assert_eq!(unescape_label_name("job"), "job");
    }
}
