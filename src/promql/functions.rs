//! PromQL functions.

use promql_parser::parser::{Call, Expr};

use super::QueryError;
use super::aggregate::{kahan_inc, quantile};
use super::eval::{Evaluator, Out, RangeVal, StepArg, Val, merge_same_labelset, offset_ms};
use super::value::{Point, Series};
use crate::model::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{Labels, METRIC_NAME, MatchOp, anchored_regex, format_float, is_stale_nan};
use std::sync::Arc;

fn string_arg(e: &Expr) -> Result<&str, QueryError> {
    match e {
        Expr::StringLiteral(s) => Ok(&s.val),
        Expr::Paren(p) => string_arg(&p.expr),
        _ => Err(QueryError::Execution(
            "expected a string literal argument".into(),
        )),
    }
}

/// Strips parentheses, which do not change what an argument is.
fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        other => other,
    }
}

pub(crate) fn eval_call(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, QueryError> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|b| b.as_ref()).collect();
    match name {
        "time" => {
            let v = ev.step_ts().map(|t| t as f64 / 1000.0).collect();
            return Ok(Val::Scalar(v));
        }
        "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; ev.steps()])),
        // The query's own shape, fixed for the whole query (subqueries
        // included), as Prometheus resolves them before evaluation.
        "step" | "range" | "start" | "end" => {
            let v = match name {
                "step" => ev.query_step as f64 / 1000.0,
                "range" => (ev.query_end - ev.query_start) as f64 / 1000.0,
                "start" => ev.query_start as f64 / 1000.0,
                _ => ev.query_end as f64 / 1000.0,
            };
            return Ok(Val::Scalar(vec![v; ev.steps()]));
        }
        "min_of" | "max_of" => {
            let vals = ev.eval_args_pub(&c.args.args)?;
            let (Some(Val::Scalar(a)), Some(Val::Scalar(b))) = (vals.first(), vals.get(1)) else {
                return Err(QueryError::Execution(format!("{name} expects two scalars")));
            };
            let min = name == "min_of";
            let v = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| {
                    if x.is_nan() || y.is_nan() {
                        f64::NAN
                    } else if min {
                        x.min(y)
                    } else {
                        x.max(y)
                    }
                })
                .collect();
            return Ok(Val::Scalar(v));
        }
        "label_replace" => return label_replace(ev, &args),
        "label_join" => return label_join(ev, &args),
        "info" => return super::info::eval(ev, c),
        "timestamp" => {
            if let Expr::VectorSelector(vs) = unparen(args[0]) {
                return timestamp_of_selector(ev, vs);
            }
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" if ev.start != ev.end => {
            let pos = ev.pos_node(c);
            ev.annos.warn(format!(
                    "sort is ineffective for range queries since results are always ordered by labels{pos}"
                ));
        }
        _ => {}
    }
    if let Some(kind) = range_function(name) {
        return eval_range_function(ev, c, &args, kind);
    }
    // Which histogram detail the arguments must be read with.
    let saved = ev.stats_only;
    match name {
        "histogram_count" | "histogram_sum" | "histogram_avg" => ev.stats_only = true,
        "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
            ev.stats_only = false
        }
        _ => {}
    }
    let vals = ev.eval_args_pub(&c.args.args);
    ev.stats_only = saved;
    let vals = vals?;
    match name {
        "vector" => {
            let Some(Val::Scalar(v)) = vals.into_iter().next() else {
                return Err(QueryError::Execution("vector() expects a scalar".into()));
            };
            let points = ev
                .step_ts()
                .zip(v)
                .map(|(t, v)| Point::float(t, v))
                .collect();
            Ok(Val::Vector(vec![Series {
                labels: Labels::empty(),
                points,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let series = match vals.into_iter().next() {
                Some(Val::Vector(s)) => s,
                _ => Vec::new(),
            };
            let args = [Val::Vector(series)];
            let mut out = vec![f64::NAN; ev.steps()];
            let mut k = 0;
            ev.range_eval(&args, |_, _, a| {
                if let StepArg::Vector { els, .. } = &a[0] {
                    let mut floats = els.iter().filter(|e| e.h.is_none());
                    if let (Some(e), None) = (floats.next(), floats.next()) {
                        out[k] = e.v;
                    }
                }
                k += 1;
                Ok(Vec::new())
            })?;
            Ok(Val::Scalar(out))
        }
        "absent" => {
            let labels = absent_labels(args[0]);
            let args_v = vals;
            let out = ev.range_eval(&args_v, |_, _, a| {
                if let StepArg::Vector { els, .. } = &a[0] {
                    if els.is_empty() {
                        return Ok(vec![Out::f(labels.clone(), 1.0, false)]);
                    }
                }
                Ok(Vec::new())
            })?;
            Ok(Val::Vector(out))
        }
        "histogram_quantile" => histogram_quantile(ev, c, vals),
        "histogram_fraction" => histogram_fraction(ev, c, vals),
        "histogram_quantiles" => histogram_quantiles(ev, c, vals),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => histogram_stat(ev, name, vals),
        "sort" | "sort_desc" => sort_by_value(ev, vals, name == "sort_desc"),
        "sort_by_label" | "sort_by_label_desc" => {
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(string_arg(a)?.to_string());
            }
            sort_by_label(ev, vals, &names, name == "sort_by_label_desc")
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => date_function(ev, name, vals),
        _ => elementwise(ev, name, vals),
    }
}

/// `timestamp(selector)` reports the sample's own timestamp, which the
/// stepped vector no longer carries, so it reads the selector itself.
fn timestamp_of_selector(
    ev: &mut Evaluator<'_>,
    vs: &promql_parser::parser::VectorSelector,
) -> Result<Val, QueryError> {
    let off = offset_ms(&vs.offset);
    let at = ev.at_ms_pub(&vs.at);
    let lookback = ev.lookback;
    let (first, last) = match at {
        Some(a) => (a - off, a - off),
        None => (ev.start - off, ev.end - off),
    };
    let raw = ev.select_pub(vs, first - lookback + 1, last)?;
    let mut out = Vec::new();
    let steps: Vec<i64> = ev.step_ts().collect();
    for s in raw {
        let samples = super::eval::merge_points(s.samples, s.histograms);
        let mut pts = Vec::new();
        let mut j = 0usize;
        for &ts in &steps {
            let rt = at.unwrap_or(ts) - off;
            while j + 1 < samples.len() && samples[j + 1].t <= rt {
                j += 1;
            }
            if let Some(p) = samples.get(j) {
                if p.t <= rt && p.t > rt - lookback && (p.h.is_some() || !is_stale_nan(p.v)) {
                    pts.push(Point::float(ts, p.t as f64 / 1000.0));
                }
            }
        }
        if !pts.is_empty() {
            ev.add_samples(pts.len())?;
            out.push(Series {
                labels: s.labels,
                points: pts,
                drop_name: true,
            });
        }
    }
    Ok(Val::Vector(out))
}

fn elementwise(ev: &mut Evaluator<'_>, name: &str, vals: Vec<Val>) -> Result<Val, QueryError> {
    let f: fn(f64, &[f64]) -> f64 = match name {
        "abs" => |v, _| v.abs(),
        "ceil" => |v, _| v.ceil(),
        "floor" => |v, _| v.floor(),
        "exp" => |v, _| v.exp(),
        "ln" => |v, _| v.ln(),
        "log2" => |v, _| v.log2(),
        "log10" => |v, _| v.log10(),
        "sqrt" => |v, _| v.sqrt(),
        "sgn" => |v, _| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "acos" => |v, _| v.acos(),
        "acosh" => |v, _| v.acosh(),
        "asin" => |v, _| v.asin(),
        "asinh" => |v, _| v.asinh(),
        "atan" => |v, _| v.atan(),
        "atanh" => |v, _| v.atanh(),
        "cos" => |v, _| v.cos(),
        "cosh" => |v, _| v.cosh(),
        "sin" => |v, _| v.sin(),
        "sinh" => |v, _| v.sinh(),
        "tan" => |v, _| v.tan(),
        "tanh" => |v, _| v.tanh(),
        "deg" => |v, _| v * 180.0 / std::f64::consts::PI,
        "rad" => |v, _| v * std::f64::consts::PI / 180.0,
        "timestamp" => |v, _| v,
        "round" => |v, p| {
            let to = p.first().copied().unwrap_or(1.0);
            let inv = 1.0 / to;
            (v * inv + 0.5).floor() / inv
        },
        "clamp" => |v, p| go_max(p[0], go_min(p[1], v)),
        "clamp_min" => |v, p| go_max(p[0], v),
        "clamp_max" => |v, p| go_min(p[0], v),
        other => {
            return Err(QueryError::Execution(format!(
                "function {other:?} is not supported"
            )));
        }
    };
    let is_ts = name == "timestamp";
    let is_clamp = name == "clamp";
    let out = ev.range_eval(&vals, |_, ts, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        let params: Vec<f64> = a[1..]
            .iter()
            .map(|x| match x {
                StepArg::Scalar(v) => *v,
                _ => f64::NAN,
            })
            .collect();
        if is_clamp && params[1] < params[0] {
            return Ok(Vec::new());
        }
        Ok(els
            .iter()
            .filter(|e| is_ts || e.h.is_none())
            .map(|e| {
                let v = if is_ts {
                    ts as f64 / 1000.0
                } else {
                    f(e.v, &params)
                };
                Out::f(series[e.s].labels.clone(), v, true)
            })
            .collect())
    })?;
    Ok(Val::Vector(out))
}

/// Go's math.Max: NaN if either is NaN.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's math.Min: NaN if either is NaN.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    let s = secs as i64;
    let days = s.div_euclid(86_400);
    let sod = s.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut doy = CUM[(m - 1) as usize] + d;
            if m > 2 && is_leap(y) {
                doy += 1;
            }
            doy as f64
        }
        "days_in_month" => match m {
            2 => {
                if is_leap(y) {
                    29.0
                } else {
                    28.0
                }
            }
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        "hour" => (sod / 3600) as f64,
        "minute" => ((sod % 3600) / 60) as f64,
        "month" => m as f64,
        _ => y as f64,
    }
}

fn date_function(ev: &mut Evaluator<'_>, name: &str, vals: Vec<Val>) -> Result<Val, QueryError> {
    if vals.is_empty() {
        let out = ev.range_eval(&[], |_, ts, _| {
            Ok(vec![Out::f(
                Labels::empty(),
                date_part(name, (ts / 1000) as f64),
                false,
            )])
        })?;
        return Ok(Val::Vector(out));
    }
    let out = ev.range_eval(&vals, |_, _, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        Ok(els
            .iter()
            .filter(|e| e.h.is_none())
            .map(|e| {
                let v = if e.v.is_nan() || e.v.is_infinite() {
                    f64::NAN
                } else {
                    date_part(name, e.v)
                };
                Out::f(series[e.s].labels.clone(), v, true)
            })
            .collect())
    })?;
    Ok(Val::Vector(out))
}

fn sort_by_value(ev: &mut Evaluator<'_>, vals: Vec<Val>, desc: bool) -> Result<Val, QueryError> {
    let out = ev.range_eval(&vals, |_, _, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        let mut v: Vec<_> = els.iter().filter(|e| e.h.is_none()).cloned().collect();
        // NaN sorts last in both directions, as in Prometheus.
        v.sort_by(|a, b| {
            use std::cmp::Ordering::*;
            match (a.v.is_nan(), b.v.is_nan()) {
                (true, true) => Equal,
                (true, false) => Greater,
                (false, true) => Less,
                _ if desc => b.v.partial_cmp(&a.v).unwrap_or(Equal),
                _ => a.v.partial_cmp(&b.v).unwrap_or(Equal),
            }
        });
        Ok(v.iter()
            .map(|e| Out {
                labels: series[e.s].labels.clone(),
                v: e.v,
                h: e.h.clone(),
                drop_name: series[e.s].drop_name,
            })
            .collect())
    })?;
    Ok(Val::Vector(out))
}

/// Natural ("human") ordering: digit runs compare by numeric value.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

fn sort_by_label(
    ev: &mut Evaluator<'_>,
    vals: Vec<Val>,
    names: &[String],
    desc: bool,
) -> Result<Val, QueryError> {
    let out = ev.range_eval(&vals[..1], |_, _, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        let mut v: Vec<_> = els.to_vec();
        v.sort_by(|x, y| {
            let (lx, ly) = (&series[x.s].labels, &series[y.s].labels);
            for n in names {
                let (a, b) = (lx.get(n).unwrap_or(""), ly.get(n).unwrap_or(""));
                if a == b {
                    continue;
                }
                let o = natural_cmp(a, b);
                return if desc { o.reverse() } else { o };
            }
            let o = lx.cmp(ly);
            if desc { o.reverse() } else { o }
        });
        Ok(v.iter()
            .map(|e| Out {
                labels: series[e.s].labels.clone(),
                v: e.v,
                h: e.h.clone(),
                drop_name: series[e.s].drop_name,
            })
            .collect())
    })?;
    Ok(Val::Vector(out))
}

/// Labels `absent()` reports: the equality matchers of a lone selector,
/// except labels matched more than once.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match unparen(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::empty(),
    };
    let Ok(sets) = super::eval::selector_matchers(vs) else {
        return Labels::empty();
    };
    let Some(ms) = sets.first() else {
        return Labels::empty();
    };
    let mut b = crate::model::LabelsBuilder::new();
    let mut has = std::collections::HashSet::new();
    for m in ms {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name) {
            b.set_str(&m.name, &m.value);
            has.insert(m.name.clone());
        } else {
            b.del(&m.name);
        }
    }
    b.build()
}

fn label_replace(ev: &mut Evaluator<'_>, args: &[&Expr]) -> Result<Val, QueryError> {
    let dst = string_arg(args[1])?;
    let repl = string_arg(args[2])?;
    let src = string_arg(args[3])?;
    let re_s = string_arg(args[4])?;
    let re = anchored_regex(re_s).map_err(|_| {
        QueryError::Execution(format!(
            "invalid regular expression in label_replace(): {re_s}"
        ))
    })?;
    if dst.is_empty() {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let Val::Vector(ss) = ev.eval(args[0])? else {
        return Err(QueryError::Execution(
            "label_replace expects an instant vector".into(),
        ));
    };
    set_label(ss, dst, |l| {
        let v = l.get(src).unwrap_or("");
        re.captures(v).map(|caps| {
            let mut res = String::new();
            caps.expand(repl, &mut res);
            res
        })
    })
}

/// Sets `dst` on every series to what `value` returns (an empty value
/// deletes it; `None` leaves the series alone), then merges series that
/// now share a label set. Setting `__name__` keeps the name a function
/// would otherwise drop.
fn set_label(
    mut ss: Vec<Series>,
    dst: &str,
    value: impl Fn(&Labels) -> Option<String>,
) -> Result<Val, QueryError> {
    for s in ss.iter_mut() {
        let Some(v) = value(&s.labels) else { continue };
        let mut b = s.labels.builder();
        if v.is_empty() {
            b.del(dst);
        } else {
            b.set_str(dst, &v);
        }
        s.labels = b.build();
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Val::Vector(merge_same_labelset(ss)?))
}

fn label_join(ev: &mut Evaluator<'_>, args: &[&Expr]) -> Result<Val, QueryError> {
    let dst = string_arg(args[1])?;
    let sep = string_arg(args[2])?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        srcs.push(string_arg(a)?);
    }
    if dst.is_empty() {
        return Err(QueryError::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let Val::Vector(ss) = ev.eval(args[0])? else {
        return Err(QueryError::Execution(
            "label_join expects an instant vector".into(),
        ));
    };
    set_label(ss, dst, |l| {
        Some(
            srcs.iter()
                .map(|n| l.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(sep),
        )
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Deriv,
    PredictLinear,
    Resets,
    Changes,
    Avg,
    Min,
    Max,
    Sum,
    Count,
    Last,
    First,
    Present,
    Stddev,
    Stdvar,
    Quantile,
    Mad,
    TsOfMin,
    TsOfMax,
    TsOfLast,
    TsOfFirst,
    AbsentOverTime,
    Des,
}

fn range_function(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => RangeFn::Rate,
        "increase" => RangeFn::Increase,
        "delta" => RangeFn::Delta,
        "irate" => RangeFn::Irate,
        "idelta" => RangeFn::Idelta,
        "deriv" => RangeFn::Deriv,
        "predict_linear" => RangeFn::PredictLinear,
        "resets" => RangeFn::Resets,
        "changes" => RangeFn::Changes,
        "avg_over_time" => RangeFn::Avg,
        "min_over_time" => RangeFn::Min,
        "max_over_time" => RangeFn::Max,
        "sum_over_time" => RangeFn::Sum,
        "count_over_time" => RangeFn::Count,
        "last_over_time" => RangeFn::Last,
        "first_over_time" => RangeFn::First,
        "present_over_time" => RangeFn::Present,
        "stddev_over_time" => RangeFn::Stddev,
        "stdvar_over_time" => RangeFn::Stdvar,
        "quantile_over_time" => RangeFn::Quantile,
        "mad_over_time" => RangeFn::Mad,
        "ts_of_min_over_time" => RangeFn::TsOfMin,
        "ts_of_max_over_time" => RangeFn::TsOfMax,
        "ts_of_last_over_time" => RangeFn::TsOfLast,
        "ts_of_first_over_time" => RangeFn::TsOfFirst,
        "absent_over_time" => RangeFn::AbsentOverTime,
        "double_exponential_smoothing" | "holt_winters" => RangeFn::Des,
        _ => return None,
    })
}

/// What a range function noticed about one series' windows, raised as
/// annotations once per series.
#[derive(Default)]
struct RangeNotes {
    mixed: bool,
    ignored_hist: bool,
    not_counter_hist: bool,
    not_gauge_hist: bool,
    mixed_schemas: bool,
    reconciled: Option<&'static str>,
    collision: bool,
}

fn eval_range_function(
    ev: &mut Evaluator<'_>,
    c: &Call,
    args: &[&Expr],
    kind: RangeFn,
) -> Result<Val, QueryError> {
    let midx = args
        .iter()
        .position(|a| matches!(unparen(a), Expr::MatrixSelector(_) | Expr::Subquery(_)))
        .ok_or_else(|| QueryError::Execution("expected a range vector argument".into()))?;
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i == midx {
            continue;
        }
        match ev.eval(a)? {
            Val::Scalar(v) => scalars.push(v),
            _ => return Err(QueryError::Execution("expected a scalar argument".into())),
        }
    }
    let rv: RangeVal = match ev.eval(args[midx])? {
        Val::Range(r) => r,
        _ => {
            return Err(QueryError::Execution(
                "expected a range vector argument".into(),
            ));
        }
    };
    let arg_pos = ev.pos(args[midx]);
    // Parameter checks that Prometheus reports once per query.
    match kind {
        RangeFn::Quantile => {
            for &q in scalars.first().map(|v| v.as_slice()).unwrap_or(&[]) {
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    let qpos = ev.pos(args[0]);
                    ev.annos.warn(format!(
                        "quantile value should be between 0 and 1, got {}{qpos}",
                        format_float(q)
                    ));
                }
            }
        }
        RangeFn::Des => {
            for (i, what) in [(0usize, "smoothing"), (1, "trend")] {
                if let Some(&v) = scalars.get(i).and_then(|s| s.first()) {
                    if v <= 0.0 || v >= 1.0 {
                        return Err(QueryError::Execution(format!(
                            "invalid {what} factor. Expected: 0 < {} < 1, got: {v:.6}",
                            if i == 0 { "sf" } else { "tf" }
                        )));
                    }
                }
            }
        }
        _ => {}
    }
    let keep_name = matches!(kind, RangeFn::Last | RangeFn::First);
    let steps: Vec<i64> = ev.step_ts().collect();
    let mut out: Vec<Series> = Vec::with_capacity(rv.len());
    let mut not_counter: Vec<String> = Vec::new();
    rv.for_each(|labels, pts, drop_name| {
        let mut res: Vec<Point> = Vec::new();
        let mut notes = RangeNotes::default();
        let (mut lo, mut hi) = (0usize, 0usize);
        for (k, &ts) in steps.iter().enumerate() {
            let end = rv.window_end(ts);
            let start = end - rv.range;
            // Windows only move forward (or stay put under @).
            if lo > 0 && pts.get(lo - 1).is_some_and(|p| p.t > start) {
                lo = 0;
                hi = 0;
            }
            while lo < pts.len() && pts[lo].t <= start {
                lo += 1;
            }
            if hi < lo {
                hi = lo;
            }
            while hi < pts.len() && pts[hi].t <= end {
                hi += 1;
            }
            let w = &pts[lo..hi];
            // The functions scan their window once per step: that scan is
            // what can grow without bound, so it is what is accounted.
            ev.work(w.len())?;
            if w.is_empty() {
                continue;
            }
            let params: Vec<f64> = scalars.iter().map(|v| v[k]).collect();
            // predict_linear's intercept is the step time even under @, as
            // Prometheus does not treat it as step-invariant.
            let eval_ts = ts;
            if let Some((v, h)) =
                apply_range_point(kind, w, start, end, rv.range, eval_ts, &params, &mut notes)
            {
                res.push(Point { t: ts, v, h });
            }
        }
        let name = labels.metric_name().unwrap_or("").to_string();
        if notes.mixed {
            ev.annos.warn(format!(
                "encountered a mix of histograms and floats for metric name {name:?}{arg_pos}"
            ));
        }
        if notes.ignored_hist {
            ev.annos.info(format!(
                "ignored histograms in a range containing both floats and histograms for metric name {name:?}{arg_pos}"
            ));
        }
        if notes.not_counter_hist {
            ev.annos.warn(format!(
                "this native histogram metric is not a counter: {name:?}{arg_pos}"
            ));
        }
        if notes.not_gauge_hist {
            ev.annos.warn(format!(
                "this native histogram metric is not a gauge: {name:?}{arg_pos}"
            ));
        }
        if notes.mixed_schemas {
            ev.annos.warn(format!(
                "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {name:?}{arg_pos}"
            ));
        }
        if let Some(w) = notes.reconciled {
            ev.annos.info(format!(
                "mismatched custom buckets were reconciled during {w}{arg_pos}"
            ));
        }
        if notes.collision {
            ev.annos.warn(format!(
                "conflicting counter resets during histogram aggregation{arg_pos}"
            ));
        }
        if res.is_empty() {
            return Ok(());
        }
        if matches!(kind, RangeFn::Rate | RangeFn::Increase)
            && !name.is_empty()
            && res.iter().any(|p| p.h.is_none())
            && !(name.ends_with("_total")
                || name.ends_with("_sum")
                || name.ends_with("_count")
                || name.ends_with("_bucket"))
        {
            not_counter.push(name);
        }
        ev.add_samples(res.len())?;
        out.push(Series {
            labels: labels.clone(),
            points: res,
            drop_name: drop_name || !keep_name,
        });
        Ok(())
    })?;
    for n in not_counter {
        ev.annos.info(format!(
            "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}{arg_pos}"
        ));
    }
    if kind == RangeFn::AbsentOverTime {
        let mut present = vec![false; steps.len()];
        for s in &out {
            for p in &s.points {
                if let Ok(i) = steps.binary_search(&p.t) {
                    present[i] = true;
                }
            }
        }
        let points: Vec<Point> = steps
            .iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(&t, _)| Point::float(t, 1.0))
            .collect();
        if points.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        return Ok(Val::Vector(vec![Series {
            labels: absent_labels(args[midx]),
            points,
            drop_name: true,
        }]));
    }
    let _ = c;
    Ok(Val::Vector(out))
}

type Hist = Arc<FloatHistogram>;

/// One step of a range function over a window that may hold histograms.
#[allow(clippy::too_many_arguments)]
fn apply_range_point(
    kind: RangeFn,
    w: &[Point],
    start: i64,
    end: i64,
    range: i64,
    ts: i64,
    p: &[f64],
    notes: &mut RangeNotes,
) -> Option<(f64, Option<Hist>)> {
    let nh = w.iter().filter(|x| x.h.is_some()).count();
    if nh == 0 {
        return apply_range_fn(kind, w, start, end, range, ts, p).map(|v| (v, None));
    }
    let nf = w.len() - nh;
    match kind {
        RangeFn::Count => Some((w.len() as f64, None)),
        RangeFn::Present | RangeFn::AbsentOverTime => Some((1.0, None)),
        RangeFn::Last => w.last().map(|x| (x.v, x.h.clone())),
        RangeFn::First => w.first().map(|x| (x.v, x.h.clone())),
        RangeFn::TsOfLast => w.last().map(|x| (x.t as f64 / 1000.0, None)),
        RangeFn::TsOfFirst => w.first().map(|x| (x.t as f64 / 1000.0, None)),
        RangeFn::Rate | RangeFn::Increase | RangeFn::Delta => {
            if nf > 0 {
                notes.mixed = true;
                return None;
            }
            let hs: Vec<(i64, &Hist)> = w
                .iter()
                .filter_map(|x| x.h.as_ref().map(|h| (x.t, h)))
                .collect();
            histogram_rate(&hs, start, end, range, kind, notes).map(|h| (0.0, Some(Arc::new(h))))
        }
        RangeFn::Irate | RangeFn::Idelta => {
            let n = w.len();
            if n < 2 {
                return None;
            }
            let (a, b) = (&w[n - 2], &w[n - 1]);
            let dt = b.t - a.t;
            if dt == 0 {
                return None;
            }
            let (Some(ha), Some(hb)) = (&a.h, &b.h) else {
                notes.mixed = true;
                return None;
            };
            let is_rate = kind == RangeFn::Irate;
            let gauge = |h: &FloatHistogram| h.counter_reset_hint == CounterResetHint::Gauge;
            if is_rate && (gauge(ha) || gauge(hb)) {
                notes.not_counter_hist = true;
            }
            if !(is_rate || gauge(ha) && gauge(hb)) {
                notes.not_gauge_hist = true;
            }
            let mut r = (**hb).clone();
            if !is_rate || !hb.detect_reset(ha) {
                match r.sub(ha) {
                    Ok((_, rec)) => {
                        if rec {
                            notes.reconciled = Some("subtraction");
                        }
                    }
                    Err(_) => {
                        notes.mixed_schemas = true;
                        return None;
                    }
                }
            }
            r.counter_reset_hint = CounterResetHint::Gauge;
            r.compact();
            if is_rate {
                r.div(dt as f64 / 1000.0);
            }
            Some((0.0, Some(Arc::new(r))))
        }
        RangeFn::Sum | RangeFn::Avg => {
            if nf > 0 {
                notes.mixed = true;
                return None;
            }
            let mut acc = if kind == RangeFn::Avg {
                crate::model::histogram::HistogramSum::for_mean()
            } else {
                crate::model::histogram::HistogramSum::default()
            };
            for x in w {
                if acc.add(x.h.as_ref()?).is_err() {
                    notes.mixed_schemas = true;
                    return None;
                }
            }
            if acc.reconciled {
                notes.reconciled = Some("aggregation");
            }
            if acc.reset_seen && acc.not_reset_seen {
                notes.collision = true;
            }
            let mut h = if kind == RangeFn::Avg {
                acc.mean()?
            } else {
                acc.sum()?
            };
            h.compact();
            Some((0.0, Some(Arc::new(h))))
        }
        RangeFn::Resets | RangeFn::Changes => {
            let mut r = 0.0;
            for i in 1..w.len() {
                let (a, b) = (&w[i - 1], &w[i]);
                let hit = match (&a.h, &b.h) {
                    (Some(x), Some(y)) => {
                        if kind == RangeFn::Resets {
                            y.detect_reset(x)
                        } else {
                            !y.equals(x)
                        }
                    }
                    (None, None) => {
                        if kind == RangeFn::Resets {
                            b.v < a.v
                        } else {
                            a.v != b.v && !(a.v.is_nan() && b.v.is_nan())
                        }
                    }
                    _ => true,
                };
                if hit {
                    r += 1.0;
                }
            }
            Some((r, None))
        }
        _ => {
            // Float-only functions ignore histograms, and say so when the
            // window held both.
            if nf == 0 {
                return None;
            }
            notes.ignored_hist = true;
            let floats: Vec<Point> = w.iter().filter(|x| x.h.is_none()).cloned().collect();
            apply_range_fn(kind, &floats, start, end, range, ts, p).map(|v| (v, None))
        }
    }
}

/// rate/increase/delta over native histograms.
fn histogram_rate(
    hs: &[(i64, &Hist)],
    range_start: i64,
    range_end: i64,
    range: i64,
    kind: RangeFn,
    notes: &mut RangeNotes,
) -> Option<FloatHistogram> {
    let n = hs.len();
    if n < 2 {
        return None;
    }
    let is_counter = kind != RangeFn::Delta;
    let (first, last) = (hs[0].1, hs[n - 1].1);
    let mut prev: FloatHistogram = (**first).clone();
    if is_counter
        && (first.counter_reset_hint == CounterResetHint::Gauge
            || last.counter_reset_hint == CounterResetHint::Gauge)
    {
        notes.not_counter_hist = true;
    }
    if is_counter && hs[1].1.detect_reset(first) {
        prev = FloatHistogram {
            schema: hs[1].1.schema,
            custom_values: hs[1].1.custom_values.clone(),
            ..Default::default()
        };
    }
    let custom = prev.uses_custom_buckets();
    if last.uses_custom_buckets() != custom {
        notes.mixed_schemas = true;
        return None;
    }
    let mut min_schema = last.schema.min(prev.schema);
    for (_, cur) in &hs[1..n - 1] {
        if !is_counter {
            continue;
        }
        if cur.counter_reset_hint == CounterResetHint::Gauge {
            notes.not_counter_hist = true;
        }
        min_schema = min_schema.min(cur.schema);
        if cur.uses_custom_buckets() != custom {
            notes.mixed_schemas = true;
            return None;
        }
    }
    let mut h = (**last).clone();
    h.reduce_resolution(min_schema);
    match h.sub(&prev) {
        Ok((_, rec)) => {
            if rec {
                notes.reconciled = Some("subtraction");
            }
        }
        Err(_) => {
            notes.mixed_schemas = true;
            return None;
        }
    }
    if is_counter {
        let mut p: &FloatHistogram = &prev;
        for (_, cur) in &hs[1..] {
            if cur.detect_reset(p) {
                match h.add(p) {
                    Ok((_, rec)) => {
                        if rec {
                            notes.reconciled = Some("addition");
                        }
                    }
                    Err(_) => {
                        notes.mixed_schemas = true;
                        return None;
                    }
                }
            }
            p = cur;
        }
    } else if first.counter_reset_hint != CounterResetHint::Gauge
        || last.counter_reset_hint != CounterResetHint::Gauge
    {
        notes.not_gauge_hist = true;
    }
    h.counter_reset_hint = CounterResetHint::Gauge;
    h.compact();
    // Extrapolate as for floats, scaling every count.
    let (first_t, last_t) = (hs[0].0, hs[n - 1].0);
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter && h.count > 0.0 && first.count >= 0.0 {
        let to_zero = sampled * (first.count / h.count);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if kind == RangeFn::Rate {
        factor /= range as f64 / 1000.0;
    }
    h.mul(factor);
    Some(h)
}

fn apply_range_fn(
    kind: RangeFn,
    w: &[Point],
    start: i64,
    end: i64,
    range: i64,
    ts: i64,
    p: &[f64],
) -> Option<f64> {
    let n = w.len();
    match kind {
        RangeFn::Rate => extrapolated_rate(w, start, end, range, true, true),
        RangeFn::Increase => extrapolated_rate(w, start, end, range, true, false),
        RangeFn::Delta => extrapolated_rate(w, start, end, range, false, false),
        RangeFn::Irate | RangeFn::Idelta => {
            if n < 2 {
                return None;
            }
            let (a, b) = (&w[n - 2], &w[n - 1]);
            let dt = b.t - a.t;
            if dt == 0 {
                return None;
            }
            let is_rate = kind == RangeFn::Irate;
            let mut v = if is_rate && b.v < a.v { b.v } else { b.v - a.v };
            if is_rate {
                v /= dt as f64 / 1000.0;
            }
            Some(v)
        }
        RangeFn::Deriv => {
            if n < 2 {
                return None;
            }
            Some(linear_regression(w, w[0].t).0)
        }
        RangeFn::PredictLinear => {
            if n < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(w, ts);
            Some(slope * p[0] + intercept)
        }
        RangeFn::Resets => {
            let mut r = 0.0;
            for i in 1..n {
                if w[i].v < w[i - 1].v {
                    r += 1.0;
                }
            }
            Some(r)
        }
        RangeFn::Changes => {
            let mut r = 0.0;
            for i in 1..n {
                let (a, b) = (w[i - 1].v, w[i].v);
                if a != b && !(a.is_nan() && b.is_nan()) {
                    r += 1.0;
                }
            }
            Some(r)
        }
        RangeFn::Avg => {
            let (mut sum, mut c, mut mean) = (w[0].v, 0.0f64, 0.0f64);
            let mut incremental = false;
            let mut count = 1.0;
            for s in &w[1..] {
                count += 1.0;
                if !incremental {
                    let (ns, nc) = kahan_inc(s.v, sum, c);
                    if !ns.is_infinite() {
                        sum = ns;
                        c = nc;
                        continue;
                    }
                    incremental = true;
                    mean = sum / (count - 1.0);
                    c /= count - 1.0;
                }
                let q = (count - 1.0) / count;
                let (m, nc) = kahan_inc(s.v / count, q * mean, q * c);
                mean = m;
                c = nc;
            }
            Some(if incremental {
                mean + c
            } else {
                sum / count + c / count
            })
        }
        RangeFn::Min | RangeFn::Max | RangeFn::TsOfMin | RangeFn::TsOfMax => {
            let is_max = matches!(kind, RangeFn::Max | RangeFn::TsOfMax);
            let strict = matches!(kind, RangeFn::Min | RangeFn::Max);
            let (mut best, mut best_t) = (w[0].v, w[0].t);
            for s in w {
                let better = if is_max {
                    if strict { s.v > best } else { s.v >= best }
                } else if strict {
                    s.v < best
                } else {
                    s.v <= best
                };
                if better || best.is_nan() {
                    best = s.v;
                    best_t = s.t;
                }
            }
            Some(if strict { best } else { best_t as f64 / 1000.0 })
        }
        RangeFn::Sum => {
            let (mut sum, mut c) = (0.0, 0.0);
            for s in w {
                (sum, c) = kahan_inc(s.v, sum, c);
            }
            Some(if sum.is_infinite() { sum } else { sum + c })
        }
        RangeFn::Count => Some(n as f64),
        RangeFn::Last => Some(w[n - 1].v),
        RangeFn::First => Some(w[0].v),
        RangeFn::TsOfLast => Some(w[n - 1].t as f64 / 1000.0),
        RangeFn::TsOfFirst => Some(w[0].t as f64 / 1000.0),
        RangeFn::Present | RangeFn::AbsentOverTime => Some(1.0),
        RangeFn::Stddev | RangeFn::Stdvar => {
            let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for s in w {
                count += 1.0;
                let delta = s.v - (mean + cm);
                (mean, cm) = kahan_inc(delta / count, mean, cm);
                (aux, ca) = kahan_inc(delta * (s.v - (mean + cm)), aux, ca);
            }
            let var = (aux + ca) / count;
            Some(if kind == RangeFn::Stddev {
                var.sqrt()
            } else {
                var
            })
        }
        RangeFn::Quantile => {
            let mut v: Vec<f64> = w.iter().map(|s| s.v).collect();
            Some(quantile(p[0], &mut v))
        }
        RangeFn::Mad => {
            if w.iter().any(|s| s.v.is_nan()) {
                return Some(f64::NAN);
            }
            let mut v: Vec<f64> = w.iter().map(|s| s.v).collect();
            let median = quantile(0.5, &mut v);
            for x in v.iter_mut() {
                *x = (*x - median).abs();
            }
            Some(quantile(0.5, &mut v))
        }
        RangeFn::Des => {
            if n < 2 {
                return None;
            }
            let (sf, tf) = (p[0], p[1]);
            let (mut s0, mut s1) = (0.0, w[0].v);
            let mut b = w[1].v - w[0].v;
            for (i, s) in w.iter().enumerate().skip(1) {
                let x = sf * s.v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            Some(s1)
        }
    }
}

/// Prometheus's rate/increase/delta: the change over the window,
/// extrapolated towards the window edges unless the series starts or
/// ends well inside it, and never below zero for counters.
fn extrapolated_rate(
    w: &[Point],
    range_start: i64,
    range_end: i64,
    range: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let n = w.len();
    if n < 2 {
        return None;
    }
    let mut result = w[n - 1].v - w[0].v;
    if is_counter {
        for i in 1..n {
            if w[i].v < w[i - 1].v {
                result += w[i - 1].v;
            }
        }
    }
    let (first_t, last_t) = (w[0].t, w[n - 1].t);
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg = sampled / (n - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if is_counter && result > 0.0 && w[0].v >= 0.0 {
        let to_zero = sampled * (w[0].v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}

fn linear_regression(w: &[Point], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = w[0].v;
    let mut const_y = true;
    for (i, s) in w.iter().enumerate() {
        if const_y && i > 0 && s.v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (s.t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.v, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// One classic-histogram bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    upper: f64,
    count: f64,
}

fn sort_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.drain(..) {
        match out.last_mut() {
            Some(l) if l.upper == b.upper => l.count += b.count,
            _ => out.push(b),
        }
    }
    *buckets = out;
}

/// `histogram_quantile` over one classic histogram given as (upper bound,
/// cumulative count) pairs, by the same code the engine runs (for
/// benchmarks and tools that compare against it).
pub fn classic_histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    let mut b: Vec<Bucket> = buckets
        .iter()
        .map(|&(upper, count)| Bucket { upper, count })
        .collect();
    sort_coalesce(&mut b);
    bucket_quantile(q, &mut b).0
}

/// Returns (quantile, forced_monotonic, min_bucket, max_bucket, max_diff).
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool, f64, f64, f64) {
    let mut forced = false;
    let (mut minb, mut maxb, mut maxd) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    if q.is_nan() {
        return (f64::NAN, forced, minb, maxb, maxd);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, forced, minb, maxb, maxd);
    }
    if q > 1.0 {
        return (f64::INFINITY, forced, minb, maxb, maxd);
    }
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !buckets.last().is_some_and(|b| b.upper == f64::INFINITY) {
        return (f64::NAN, forced, minb, maxb, maxd);
    }
    sort_coalesce(buckets);
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.count;
        if cur == prev {
            continue;
        }
        if crate::model::almost_equal(prev, cur, 1e-12) {
            b.count = prev;
            continue;
        }
        if cur < prev {
            b.count = prev;
            forced = true;
            minb = minb.min(b.upper);
            maxb = maxb.max(b.upper);
            maxd = maxd.max(prev - cur);
            continue;
        }
        prev = cur;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced, minb, maxb, maxd);
    }
    let obs = buckets[buckets.len() - 1].count;
    if obs == 0.0 {
        return (f64::NAN, forced, minb, maxb, maxd);
    }
    let mut rank = q * obs;
    let last = buckets.len() - 1;
    let b = buckets[..last]
        .iter()
        .position(|x| x.count >= rank)
        .unwrap_or(last);
    let v = if b == last {
        buckets[last - 1].upper
    } else if b == 0 && buckets[0].upper <= 0.0 {
        buckets[0].upper
    } else {
        let mut start = 0.0;
        let end = buckets[b].upper;
        let mut count = buckets[b].count;
        if b > 0 {
            start = buckets[b - 1].upper;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        start + (end - start) * (rank / count)
    };
    (v, forced, minb, maxb, maxd)
}

fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    if !buckets.last().is_some_and(|b| b.upper == f64::INFINITY) {
        return f64::NAN;
    }
    sort_coalesce(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].upper <= 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    for (i, b) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].upper;
        }
        let upper_bound = b.upper;
        let interp = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interp(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interp(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = b.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Groups a step's bucket series by their labels without `le`, in
/// first-seen order. Series whose `le` does not parse raise a warning.
fn group_buckets(
    ev: &mut Evaluator<'_>,
    series: &[Series],
    els: &[super::eval::El],
    pos: &str,
) -> Vec<(Labels, Vec<Bucket>)> {
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    let mut idx: std::collections::HashMap<Labels, usize> = Default::default();
    for e in els {
        let l = &series[e.s].labels;
        let le = l.get("le").unwrap_or("");
        let Some(upper) = parse_go_float(le) else {
            let name = l.metric_name().unwrap_or("");
            let msg = if name.is_empty() {
                format!("bucket label \"le\" is missing or has a malformed value of {le:?}{pos}")
            } else {
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {le:?} for metric name {name:?}{pos}"
                )
            };
            ev.annos.warn(msg);
            continue;
        };
        let mut b = l.builder();
        b.del("le");
        let key = b.build();
        let i = match idx.get(&key) {
            Some(&i) => i,
            None => {
                idx.insert(key.clone(), groups.len());
                groups.push((key, Vec::new()));
                groups.len() - 1
            }
        };
        groups[i].1.push(Bucket { upper, count: e.v });
    }
    groups
}

/// [`parse_go_float`] for the test runner.
pub(crate) fn parse_go_float_pub(s: &str) -> Option<f64> {
    parse_go_float(s)
}

/// Parses a float the way Go's strconv.ParseFloat accepts label values.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t != s || t.is_empty() {
        return None;
    }
    match t.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// Native histogram samples of a step, and the annotations about the
/// classic-bucket series next to them.
fn split_native<'a>(
    series: &'a [Series],
    els: &'a [super::eval::El],
) -> (Vec<&'a super::eval::El>, Vec<super::eval::El>) {
    let native: Vec<&super::eval::El> = els.iter().filter(|e| e.h.is_some()).collect();
    let classic: Vec<super::eval::El> = els.iter().filter(|e| e.h.is_none()).cloned().collect();
    let _ = series;
    (native, classic)
}

fn histogram_quantile(ev: &mut Evaluator<'_>, c: &Call, vals: Vec<Val>) -> Result<Val, QueryError> {
    let qpos = ev.pos(&c.args.args[0]);
    let bpos = ev.pos(&c.args.args[1]);
    if let Val::Scalar(qs) = &vals[0] {
        for &q in qs {
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.annos.warn(format!(
                    "quantile value should be between 0 and 1, got {}{qpos}",
                    format_float(q)
                ));
                break;
            }
        }
    }
    let mut mono = Monotonicity::default();
    let out = ev.range_eval(&vals, |ev, ts, a| {
        let (StepArg::Scalar(q), StepArg::Vector { series, els }) = (&a[0], &a[1]) else {
            return Ok(Vec::new());
        };
        let (native, classic) = split_native(series, els);
        let mut groups = group_buckets(ev, series, &classic, &bpos);
        let native = drop_conflicts(ev, series, native, &mut groups, &bpos);
        let mut out = Vec::new();
        for e in native {
            let labels = &series[e.s].labels;
            let Some(h) = &e.h else { continue };
            let (v, nan) = h.quantile(*q);
            note_nan_quantile(ev, nan, labels, &bpos);
            out.push(Out::f(labels.clone(), v, true));
        }
        for (labels, mut buckets) in groups {
            let (v, forced, minb, maxb, maxd) = bucket_quantile(*q, &mut buckets);
            if forced {
                mono.record(&labels, ts, minb, maxb, maxd);
            }
            out.push(Out::f(labels, v, true));
        }
        Ok(out)
    })?;
    mono.raise(ev, &bpos);
    Ok(Val::Vector(out))
}

/// Buckets histogram_quantile had to make monotonic, reported once per
/// query as Prometheus merges its info: the bucket and time ranges, the
/// largest correction and how many samples needed one.
#[derive(Default)]
struct Monotonicity(Option<(String, i64, i64, f64, f64, f64, usize)>);

impl Monotonicity {
    fn record(&mut self, labels: &Labels, ts: i64, minb: f64, maxb: f64, maxd: f64) {
        let name = labels.metric_name().unwrap_or("").to_string();
        match &mut self.0 {
            Some(m) if m.0 == name => {
                m.1 = m.1.min(ts);
                m.2 = m.2.max(ts);
                m.3 = m.3.min(minb);
                m.4 = m.4.max(maxb);
                m.5 = m.5.max(maxd);
                m.6 += 1;
            }
            None => self.0 = Some((name, ts, ts, minb, maxb, maxd, 0)),
            _ => {}
        }
    }

    fn raise(self, ev: &mut Evaluator<'_>, pos: &str) {
        let Some((name, mint, maxt, minb, maxb, maxd, count)) = self.0 else {
            return;
        };
        let metric = if name.is_empty() {
            String::new()
        } else {
            format!(" for metric name {name:?}")
        };
        ev.annos.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile){metric}, from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}{pos}",
            format_float(minb),
            format_float(maxb),
            go_g2(maxd),
            count + 1,
            crate::model::format_rfc3339(mint / 1000 * 1000).replace(".000Z", "Z"),
            crate::model::format_rfc3339(maxt / 1000 * 1000).replace(".000Z", "Z"),
        ));
    }
}

fn note_nan_quantile(ev: &mut Evaluator<'_>, nan: Option<bool>, labels: &Labels, pos: &str) {
    let name = labels.metric_name().unwrap_or("");
    match nan {
        Some(true) => ev.annos.info(format!(
            "input to histogram_quantile has NaN observations, result is NaN for metric name {name:?}{pos}"
        )),
        Some(false) => ev.annos.info(format!(
            "input to histogram_quantile has NaN observations, result is skewed higher for metric name {name:?}{pos}"
        )),
        None => {}
    }
}

/// `histogram_quantiles(v, "label", q1, q2, …)`: several quantiles at once,
/// one output series per quantile, told apart by `label`.
fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    c: &Call,
    vals: Vec<Val>,
) -> Result<Val, QueryError> {
    let bpos = ev.pos(&c.args.args[0]);
    let label = match c.args.args.get(1).map(|a| string_arg(a)) {
        Some(Ok(l)) => l.to_string(),
        _ => {
            return Err(QueryError::Execution(
                "histogram_quantiles expects a label name".into(),
            ));
        }
    };
    let mut qs: Vec<Vec<f64>> = Vec::new();
    for (i, v) in vals.iter().enumerate().skip(2) {
        match v {
            Val::Scalar(s) => {
                if let Some(&q) = s.iter().find(|q| q.is_nan() || !(0.0..=1.0).contains(*q)) {
                    let qpos = ev.pos(&c.args.args[i]);
                    ev.annos.warn(format!(
                        "quantile value should be between 0 and 1, got {}{qpos}",
                        format_float(q)
                    ));
                }
                qs.push(s.clone());
            }
            _ => return Err(QueryError::Execution("quantiles must be scalars".into())),
        }
    }
    let input = vals.into_iter().next().unwrap_or(Val::Vector(Vec::new()));
    let mut k = 0usize;
    let mut mono = Monotonicity::default();
    let out = ev.range_eval(&[input], |ev, ts, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        let step_qs: Vec<f64> = qs.iter().map(|q| q[k]).collect();
        k += 1;
        let (native, classic) = split_native(series, els);
        let mut groups = group_buckets(ev, series, &classic, &bpos);
        let native = drop_conflicts(ev, series, native, &mut groups, &bpos);
        let mut out = Vec::new();
        let with_q = |l: &Labels, q: f64| {
            let mut b = l.builder();
            // Prometheus prints whole quantiles with one decimal ("0.0").
            let mut qs = format_float(q);
            if qs.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                qs.push_str(".0");
            }
            b.set_str(&label, &qs);
            b.build()
        };
        for e in native {
            let Some(h) = &e.h else { continue };
            let labels = &series[e.s].labels;
            for &q in &step_qs {
                let (v, nan) = h.quantile(q);
                note_nan_quantile(ev, nan, labels, &bpos);
                out.push(Out::f(with_q(labels, q), v, true));
            }
        }
        for (labels, buckets) in groups {
            for &q in &step_qs {
                let mut b = buckets.clone();
                let (v, forced, minb, maxb, maxd) = bucket_quantile(q, &mut b);
                if forced {
                    mono.record(&labels, ts, minb, maxb, maxd);
                }
                out.push(Out::f(with_q(&labels, q), v, true));
            }
        }
        Ok(out)
    })?;
    mono.raise(ev, &bpos);
    Ok(Val::Vector(out))
}

/// A native histogram and classic buckets with the same labels at one
/// step: Prometheus evaluates neither and warns.
fn drop_conflicts<'a>(
    ev: &mut Evaluator<'_>,
    series: &[Series],
    native: Vec<&'a super::eval::El>,
    groups: &mut Vec<(Labels, Vec<Bucket>)>,
    pos: &str,
) -> Vec<&'a super::eval::El> {
    let mut keep = Vec::with_capacity(native.len());
    for e in native {
        let labels = &series[e.s].labels;
        if let Some(i) = groups
            .iter()
            .position(|(l, b)| l == labels && !b.is_empty())
        {
            let name = labels.metric_name().unwrap_or("");
            ev.annos.warn(format!(
                "vector contains a mix of classic and native histograms for metric name {name:?}{pos}"
            ));
            groups.remove(i);
            continue;
        }
        keep.push(e);
    }
    keep
}

/// histogram_count, _sum, _avg, _stddev and _stdvar: one number per
/// native histogram sample; float samples are skipped.
fn histogram_stat(ev: &mut Evaluator<'_>, name: &str, vals: Vec<Val>) -> Result<Val, QueryError> {
    let out = ev.range_eval(&vals, |_, _, a| {
        let StepArg::Vector { series, els } = &a[0] else {
            return Ok(Vec::new());
        };
        Ok(els
            .iter()
            .filter_map(|e| {
                let h = e.h.as_ref()?;
                let v = match name {
                    "histogram_count" => h.count,
                    "histogram_sum" => h.sum,
                    "histogram_avg" => h.sum / h.count,
                    "histogram_stddev" => h.variance().sqrt(),
                    _ => h.variance(),
                };
                Some(Out::f(series[e.s].labels.clone(), v, true))
            })
            .collect())
    })?;
    Ok(Val::Vector(out))
}

/// Go's `%.2g`.
fn go_g2(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..2).contains(&exp) {
        let s = format!("{v:.1e}");
        // Rust prints 1.5e3; Go prints 1.5e+03.
        if let Some((m, e)) = s.split_once('e') {
            let m = m.trim_end_matches('0').trim_end_matches('.');
            let e: i32 = e.parse().unwrap_or(0);
            return format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
        }
        return s;
    }
    let decimals = (1 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn histogram_fraction(ev: &mut Evaluator<'_>, c: &Call, vals: Vec<Val>) -> Result<Val, QueryError> {
    let bpos = ev.pos(&c.args.args[2]);
    let out = ev.range_eval(&vals, |ev, _, a| {
        let (StepArg::Scalar(lo), StepArg::Scalar(hi), StepArg::Vector { series, els }) =
            (&a[0], &a[1], &a[2])
        else {
            return Ok(Vec::new());
        };
        let (native, classic) = split_native(series, els);
        let mut groups = group_buckets(ev, series, &classic, &bpos);
        let native = drop_conflicts(ev, series, native, &mut groups, &bpos);
        let mut out = Vec::new();
        for e in native {
            let Some(h) = &e.h else { continue };
            let labels = &series[e.s].labels;
            let (v, nan) = h.fraction(*lo, *hi);
            if nan {
                let name = labels.metric_name().unwrap_or("");
                ev.annos.info(format!(
                    "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {name:?}{bpos}"
                ));
            }
            out.push(Out::f(labels.clone(), v, true));
        }
        for (labels, mut buckets) in groups {
            out.push(Out::f(labels, bucket_fraction(*lo, *hi, &mut buckets), true));
        }
        Ok(out)
    })?;
    Ok(Val::Vector(out))
}
