//! PromQL endpoints: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/format_query` and `/api/v1/parse_query`, with Prometheus's
//! JSON shapes, error types and status codes.

use std::time::Duration;

use axum::extract::{RawForm, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiState, body_bytes, get_one, params, parse_time};
use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, Timestamp, now_millis};
use crate::promql::{Point, Query, QueryError, QueryOptions, QueryResult, Value};

/// A query API error with its Prometheus type and HTTP status.
struct QueryApiError {
    status: StatusCode,
    kind: &'static str,
    msg: String,
}

impl QueryApiError {
    fn bad(msg: impl Into<String>) -> Self {
        QueryApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            msg: msg.into(),
        }
    }
}

impl From<QueryError> for QueryApiError {
    fn from(e: QueryError) -> Self {
        let status = match e {
            QueryError::BadData(_) => StatusCode::BAD_REQUEST,
            QueryError::Execution(_) | QueryError::TooManySamples => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        QueryApiError {
            status,
            kind: e.error_type(),
            msg: e.to_string(),
        }
    }
}

impl IntoResponse for QueryApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"status": "error", "errorType": self.kind, "error": self.msg})),
        )
            .into_response()
    }
}

/// A float as the Prometheus API writes sample values.
pub(crate) fn json_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        let s = format!("{v:e}");
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e:0>2}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        };
    }
    format!("{v}")
}

/// A timestamp as the API writes it: Unix seconds with up to three
/// decimals, as a JSON number.
fn json_time(t: Timestamp) -> Json {
    if t % 1000 == 0 {
        json!(t / 1000)
    } else {
        serde_json::Number::from_f64(t as f64 / 1000.0)
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

fn labels_obj(l: &Labels) -> Json {
    let mut m = serde_json::Map::new();
    for x in l.iter() {
        m.insert(x.name.to_string(), Json::String(x.value.to_string()));
    }
    Json::Object(m)
}

fn point(p: &Point) -> Json {
    json!([json_time(p.t), json_float(p.v)])
}

/// A native histogram as the API writes it: count, sum, and the
/// non-empty buckets as `[boundary_rule, lower, upper, count]`, where the
/// rule is 0 for `(a,b]`, 1 for `[a,b)` and 3 for `[a,b]`.
fn histogram_json(h: &FloatHistogram) -> Json {
    let buckets: Vec<Json> = h
        .all_buckets()
        .iter()
        .filter(|b| b.count != 0.0)
        .map(|b| {
            let rule = if b.zero {
                3
            } else if b.positive {
                0
            } else {
                1
            };
            json!([
                rule,
                json_float(b.lower),
                json_float(b.upper),
                json_float(b.count)
            ])
        })
        .collect();
    let mut o = json!({"count": json_float(h.count), "sum": json_float(h.sum)});
    if !buckets.is_empty() {
        o["buckets"] = Json::Array(buckets);
    }
    o
}

/// The `data` object of a query response.
pub(crate) fn result_json(v: &Value) -> Json {
    match v {
        Value::Scalar { t, v } => {
            json!({"resultType": "scalar", "result": [json_time(*t), json_float(*v)]})
        }
        Value::String { t, s } => json!({"resultType": "string", "result": [json_time(*t), s]}),
        Value::Vector(vec) => json!({
            "resultType": "vector",
            "result": vec.iter().map(|s| match &s.h {
                Some(h) => json!({
                    "metric": labels_obj(&s.labels),
                    "histogram": [json_time(s.t), histogram_json(h)],
                }),
                None => json!({
                    "metric": labels_obj(&s.labels),
                    "value": [json_time(s.t), json_float(s.v)],
                }),
            }).collect::<Vec<_>>(),
        }),
        Value::Matrix(m) => json!({
            "resultType": "matrix",
            "result": m.iter().map(|s| {
                let mut o = json!({"metric": labels_obj(&s.labels)});
                let floats: Vec<Json> = s.points.iter().filter(|p| p.h.is_none()).map(point).collect();
                let hists: Vec<Json> = s
                    .points
                    .iter()
                    .filter_map(|p| p.h.as_ref().map(|h| json!([json_time(p.t), histogram_json(h)])))
                    .collect();
                if !floats.is_empty() {
                    o["values"] = Json::Array(floats);
                }
                if !hists.is_empty() {
                    o["histograms"] = Json::Array(hists);
                }
                o
            }).collect::<Vec<_>>(),
        }),
    }
}

fn success(r: &QueryResult) -> Response {
    let mut body = json!({"status": "success", "data": result_json(&r.value)});
    if !r.annotations.warnings.is_empty() {
        body["warnings"] = json!(r.annotations.warnings);
    }
    if !r.annotations.infos.is_empty() {
        body["infos"] = json!(r.annotations.infos);
    }
    axum::Json(body).into_response()
}

/// Parses a duration parameter: float seconds or a Prometheus duration.
fn parse_duration_param(s: &str) -> Option<Duration> {
    crate::model::parse_duration(s).ok()
}

fn duration_param(p: &[(String, String)], key: &str) -> Result<Option<Duration>, QueryApiError> {
    match get_one(p, key) {
        None | Some("") => Ok(None),
        Some(v) => parse_duration_param(v).map(Some).ok_or_else(|| {
            QueryApiError::bad(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid duration"
            ))
        }),
    }
}

fn time_or(
    p: &[(String, String)],
    key: &str,
    default: Timestamp,
) -> Result<Timestamp, QueryApiError> {
    match get_one(p, key) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).ok_or_else(|| {
            QueryApiError::bad(format!(
                "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp"
            ))
        }),
    }
}

/// The `timeout` and `lookback_delta` parameters both query endpoints take.
fn exec_params(p: &[(String, String)]) -> Result<(Option<Duration>, QueryOptions), QueryApiError> {
    Ok((
        duration_param(p, "timeout")?,
        QueryOptions {
            lookback_delta: duration_param(p, "lookback_delta")?,
            ..Default::default()
        },
    ))
}

fn query_param(p: &[(String, String)]) -> Result<Query, QueryApiError> {
    let text = get_one(p, "query").unwrap_or("");
    Query::parse(text).map_err(|e| QueryApiError::bad(format!("invalid parameter \"query\": {e}")))
}

/// Sets the query's cancel flag when the request is dropped (the client
/// went away), so its blocking evaluation stops at its next check.
struct CancelOnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs the evaluation off the async threads, at most
/// `--query.max-concurrency` at once (the others wait, within their
/// timeout, for a slot), bounded by the request's `timeout` when it is
/// shorter than the engine's, and cancelled if the client goes away.
async fn run(
    st: &ApiState,
    timeout: Option<Duration>,
    mut opts: QueryOptions,
    f: impl FnOnce(
        &crate::promql::Engine,
        &crate::storage::Head,
        &QueryOptions,
    ) -> Result<QueryResult, QueryError>
    + Send
    + 'static,
) -> Result<QueryResult, QueryApiError> {
    let mut engine = (*st.engine).clone();
    if let Some(t) = timeout {
        let mut o = engine.options().clone();
        if t < o.timeout {
            o.timeout = t;
        }
        engine = crate::promql::Engine::new(o);
    }
    let wait = engine.options().timeout;
    let queued = std::time::Instant::now();
    let _permit = match tokio::time::timeout(wait, st.query_slots.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            return Err(QueryError::Timeout("query timed out in query queue".into()).into());
        }
    };
    // Time spent queued counts against the query's timeout.
    let mut o = engine.options().clone();
    o.timeout = o.timeout.saturating_sub(queued.elapsed());
    let engine = crate::promql::Engine::new(o);
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    opts.cancel = Some(cancel.clone());
    let _guard = CancelOnDrop(cancel);
    let head = st.head.clone();
    tokio::task::spawn_blocking(move || f(&engine, &head, &opts))
        .await
        .map_err(|e| QueryApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "internal",
            msg: e.to_string(),
        })?
        .map_err(QueryApiError::from)
}

/// `GET|POST /api/v1/query`
pub(crate) async fn instant(
    State(st): State<ApiState>,
    method: Method,
    uri: axum::http::Uri,
    form: RawForm,
) -> Response {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    let go = async {
        let q = query_param(&p)?;
        let t = time_or(&p, "time", now_millis())?;
        let (timeout, opts) = exec_params(&p)?;
        run(&st, timeout, opts, move |e, h, o| e.instant(h, &q, t, o)).await
    };
    match go.await {
        Ok(r) => success(&r),
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /api/v1/query_range`
pub(crate) async fn range(
    State(st): State<ApiState>,
    method: Method,
    uri: axum::http::Uri,
    form: RawForm,
) -> Response {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    let go = async {
        let start = match get_one(&p, "start") {
            Some(v) if !v.is_empty() => time_or(&p, "start", 0)?,
            _ => return Err(QueryApiError::bad("invalid parameter \"start\": missing")),
        };
        let end = match get_one(&p, "end") {
            Some(v) if !v.is_empty() => time_or(&p, "end", 0)?,
            _ => return Err(QueryApiError::bad("invalid parameter \"end\": missing")),
        };
        if end < start {
            return Err(QueryApiError::bad(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        let step = match get_one(&p, "step") {
            Some(v) if !v.is_empty() => parse_duration_param(v).ok_or_else(|| {
                QueryApiError::bad(format!(
                    "invalid parameter \"step\": cannot parse \"{v}\" to a valid duration"
                ))
            })?,
            _ => return Err(QueryApiError::bad("invalid parameter \"step\": missing")),
        };
        let step_ms = step.as_millis() as i64;
        if step_ms <= 0 {
            return Err(QueryApiError::bad(
                "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        let q = query_param(&p)?;
        let (timeout, opts) = exec_params(&p)?;
        run(&st, timeout, opts, move |e, h, o| {
            e.range(h, &q, start, end, step_ms, o)
        })
        .await
    };
    match go.await {
        Ok(r) => success(&r),
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /api/v1/format_query`
pub(crate) async fn format(method: Method, uri: axum::http::Uri, form: RawForm) -> Response {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    match query_param(&p) {
        Ok(q) => {
            axum::Json(json!({"status": "success", "data": q.expr().prettify()})).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /api/v1/parse_query`: the AST as JSON, in the shape
/// Prometheus's own parse_query endpoint uses.
pub(crate) async fn parse(method: Method, uri: axum::http::Uri, form: RawForm) -> Response {
    let p = params(uri.query(), body_bytes(&method, &form).as_deref());
    match query_param(&p) {
        Ok(q) => match serde_json::to_value(q.expr()) {
            Ok(ast) => axum::Json(json!({"status": "success", "data": ast})).into_response(),
            Err(e) => QueryApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                kind: "internal",
                msg: e.to_string(),
            }
            .into_response(),
        },
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_times_render_as_prometheus_does() {
        assert_eq!(json_float(1.0), "1");
        assert_eq!(json_float(1e-7), "1e-07");
        assert_eq!(json_float(0.0001), "0.0001");
        assert_eq!(json_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(json_time(1_500), json!(1.5));
        assert_eq!(json_time(2_000), json!(2));
    }

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration_param("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration_param("1m"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_duration_param("0.5"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration_param("x"), None);
    }
}
