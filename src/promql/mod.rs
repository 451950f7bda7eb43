//! PromQL evaluation with Prometheus 3 semantics over any
//! [`Queryable`](crate::storage::Queryable).
//!
//! Parsing is promql-parser's; everything after the AST is ours. Queries
//! are evaluated over all their steps at once (an instant query is a range
//! query with one step), so each selector reads the store once.

mod aggregate;
mod binary;
mod cache;
mod eval;
mod functions;
pub use functions::classic_histogram_quantile;
mod info;
pub mod limits;
mod positions;
pub mod promqltest;
pub mod series_notation;
mod value;

pub use cache::ReadCache;

use std::time::{Duration, Instant};

use promql_parser::parser::Expr;

pub use eval::selector_matchers;
pub use value::{Annotations, InstantSample, Point, Series, Value};

use crate::model::Timestamp;
use crate::storage::Queryable;
use eval::{Evaluator, Val};

/// Why a query failed, classified as the Prometheus API classifies errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query text or parameters are invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran past its deadline (`timeout`, HTTP 503).
    #[error("{0}")]
    Timeout(String),
    /// The query would hold more samples than allowed (`execution`, 422).
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
}

impl QueryError {
    /// The `errorType` string of the Prometheus API.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) | QueryError::TooManySamples => "execution",
            QueryError::Timeout(_) => "timeout",
        }
    }
}

/// The most points per series a range query may return (Prometheus's API
/// limit).
pub const MAX_POINTS: i64 = 11_000;

/// Engine-wide settings; defaults as Prometheus's.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (default 5m).
    pub lookback_delta: Duration,
    /// Most samples a query may hold at once (default 50 million).
    pub max_samples: usize,
    /// Wall-clock limit per query (default 2m).
    pub timeout: Duration,
    /// Most API queries evaluated at once (default 20, as Prometheus's
    /// `--query.max-concurrency`); rule evaluation does not count.
    pub max_concurrency: usize,
    /// Step of subqueries written without one (`x[1h:]`), Prometheus's
    /// global evaluation interval (default 1m).
    pub default_subquery_step: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: Duration::from_secs(300),
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            max_concurrency: 20,
            default_subquery_step: Duration::from_secs(60),
        }
    }
}

/// A parsed query, ready to run any number of times.
#[derive(Debug)]
pub struct Query {
    expr: Box<Expr>,
    text: String,
}

impl Query {
    /// Parses `text`; errors are `bad_data`, worded as promql-parser
    /// words them.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let expr = limits::parse_expr(text).map_err(QueryError::BadData)?;
        Ok(Query {
            expr: Box::new(expr),
            text: text.to_string(),
        })
    }

    /// The AST.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The query as written.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warnings and infos.
    pub annotations: Annotations,
}

/// Per-query overrides.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Overrides the engine's lookback delta.
    pub lookback_delta: Option<Duration>,
    /// Reads shared with other queries at the same time (a rule group).
    pub cache: Option<std::sync::Arc<ReadCache>>,
    /// Set by the caller to stop the query (the API sets it when the
    /// client goes away).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The PromQL engine: stateless apart from its options.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    /// An engine with the given options.
    pub fn new(opts: EngineOptions) -> Self {
        Engine { opts }
    }

    /// The engine's options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `q` at time `t` (ms).
    pub fn instant(
        &self,
        store: &dyn Queryable,
        q: &Query,
        t: Timestamp,
        o: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.run(store, q, t, t, 1, o, true)
    }

    /// Evaluates `q` at every `step` ms from `start` to `end`.
    pub fn range(
        &self,
        store: &dyn Queryable,
        q: &Query,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        o: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        if step <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end < start {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        limits::check_time(start)?;
        limits::check_time(end)?;
        // Prometheus's API limit, kept here so every caller has it.
        if (end - start) / step > MAX_POINTS {
            return Err(QueryError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        match q.expr.value_type() {
            promql_parser::parser::value::ValueType::Vector
            | promql_parser::parser::value::ValueType::Scalar => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    match other {
                        promql_parser::parser::value::ValueType::Matrix => "range vector",
                        _ => "string",
                    }
                )));
            }
        }
        self.run(store, q, start, end, step, o, false)
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        store: &dyn Queryable,
        q: &Query,
        start: i64,
        end: i64,
        step: i64,
        o: &QueryOptions,
        instant: bool,
    ) -> Result<QueryResult, QueryError> {
        let lookback = o
            .lookback_delta
            .unwrap_or(self.opts.lookback_delta)
            .as_millis() as i64;
        limits::check_time(start)?;
        limits::check_time(end)?;
        limits::step_count(start, end, step, self.opts.max_samples)?;
        let positions = positions::Positions::build(&q.text, &q.expr);
        let mut ev = Evaluator {
            q: store,
            start,
            end,
            interval: step,
            lookback: lookback.max(1),
            max_samples: self.opts.max_samples,
            cur_samples: 0,
            deadline: Instant::now().checked_add(self.opts.timeout),
            annos: Annotations::default(),
            query_start: start,
            query_end: end,
            query_step: if instant { 0 } else { step },
            default_subquery_step: (self.opts.default_subquery_step.as_millis() as i64).max(1),
            checks: 0,
            cancel: o.cancel.as_deref(),
            positions: &positions,
            stats_only: false,
            cache: o.cache.as_deref(),
        };
        let val = ev.eval(&q.expr)?;
        let value = match val {
            Val::Scalar(v) => {
                if instant {
                    Value::Scalar { t: start, v: v[0] }
                } else {
                    let points = ev
                        .step_ts()
                        .zip(v)
                        .map(|(t, v)| Point::float(t, v))
                        .collect();
                    Value::Matrix(vec![Series {
                        labels: crate::model::Labels::empty(),
                        points,
                        drop_name: false,
                    }])
                }
            }
            Val::String(s) => Value::String { t: start, s },
            Val::Vector(series) => {
                let series = cleanup_names(series)?;
                if instant {
                    let mut out = Vec::with_capacity(series.len());
                    for s in series {
                        if let Some(p) = s.points.first() {
                            out.push(InstantSample {
                                labels: s.labels,
                                t: p.t,
                                v: p.v,
                                h: p.h.clone(),
                                drop_name: false,
                            });
                        }
                    }
                    if eval::has_duplicate_labels(out.iter().map(|s| &s.labels)) {
                        return Err(QueryError::Execution(
                            "vector cannot contain metrics with the same labelset".into(),
                        ));
                    }
                    Value::Vector(out)
                } else {
                    let mut series = series;
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                    Value::Matrix(series)
                }
            }
            Val::Range(r) => {
                // Only an instant query can return a range vector: the raw
                // points of each series inside the window.
                let end_t = r.window_end(start);
                let begin = end_t - r.range;
                let mut out = Vec::new();
                for mut s in r.into_series() {
                    s.points.retain(|p| p.t > begin && p.t <= end_t);
                    if !s.points.is_empty() {
                        out.push(s);
                    }
                }
                let mut out = cleanup_names(out)?;
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(out)
            }
        };
        Ok(QueryResult {
            value,
            annotations: ev.annos,
        })
    }
}

/// Applies delayed name removal and merges series that end up with the
/// same labels (they must not overlap in time).
fn cleanup_names(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let mut series = series;
    for s in series.iter_mut() {
        if s.drop_name {
            s.labels = eval::drop_metric_name(&s.labels);
            s.drop_name = false;
        }
    }
    eval::merge_same_labelset(series)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::storage::{Appender, Head};
    use std::sync::Arc;

    fn head() -> Arc<Head> {
        let h = Arc::new(Head::new());
        let mut a = h.appender();
        for i in 0..3 {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &*i.to_string())]);
            for k in 0..100 {
                a.append(&l, k * 15_000, k as f64).expect("append");
            }
        }
        a.commit();
        h
    }

    #[test]
    fn timeout_and_sample_limit_are_execution_errors() {
        let h = head();
        let q = Query::parse("sum(m)").expect("parse");
        let slow = Engine::new(EngineOptions {
            timeout: Duration::ZERO,
            ..Default::default()
        });
        let err = slow
            .range(
                h.as_ref(),
                &q,
                0,
                1_000_000,
                1_000,
                &QueryOptions::default(),
            )
            .expect_err("times out");
        assert_eq!(err.error_type(), "timeout");
        let small = Engine::new(EngineOptions {
            max_samples: 10,
            ..Default::default()
        });
        let err = small
            .instant(
                h.as_ref(),
                &Query::parse("m[10m]").expect("parse"),
                1_000_000,
                &QueryOptions::default(),
            )
            .expect_err("too many samples");
        assert_eq!(err, QueryError::TooManySamples);
        let ok = Engine::default()
            .instant(h.as_ref(), &q, 1_485_000, &QueryOptions::default())
            .expect("evaluates");
        assert_eq!(
            ok.value,
            Value::Vector(vec![InstantSample {
                labels: Labels::empty(),
                t: 1_485_000,
                v: 297.0,
                h: None,
                drop_name: false,
            }])
        );
    }

    #[test]
    fn lookback_can_be_set_per_query() {
        let h = head();
        let q = Query::parse("m").expect("parse");
        // The last sample is at 1485 s; at 1600 s it is 115 s old.
        let e = Engine::default();
        let n =
            |o: &QueryOptions| match e.instant(h.as_ref(), &q, 1_600_000, o).expect("eval").value {
                Value::Vector(v) => v.len(),
                _ => 0,
            };
        assert_eq!(n(&QueryOptions::default()), 3);
        assert_eq!(
            n(&QueryOptions {
                lookback_delta: Some(Duration::from_secs(60)),
                ..Default::default()
            }),
            0
        );
    }
}
