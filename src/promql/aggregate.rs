//! Aggregation operators over instant vectors, grouped with `by` or
//! `without`.

use std::collections::HashMap;

use promql_parser::parser::AggregateExpr;

use super::QueryError;
use super::eval::{Evaluator, Out, StepArg, Val, grouping_labels};
use super::value::Series;
use crate::model::histogram::HistogramSum;
use crate::model::{Labels, format_float, is_legacy_label_name};
use std::sync::Arc;

pub(crate) use crate::model::kahan_inc;

/// Linear-interpolated quantile of `values` (sorted in place).
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus's value heap.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let w = rank - rank.floor();
    values[lower as usize] * (1.0 - w) + values[upper as usize] * w
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AggOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile,
    CountValues,
    Topk,
    Bottomk,
    Limitk,
    LimitRatio,
}

#[derive(Default)]
struct Group {
    has_float: bool,
    has_hist: bool,
    hist: Option<HistogramSum>,
    incompatible: bool,
    seen: bool,
    value: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
    drop_name: bool,
    values: Vec<f64>,
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, a: &AggregateExpr) -> Result<Val, QueryError> {
    let name = a.op.to_string();
    let op = match name.as_str() {
        "sum" => AggOp::Sum,
        "avg" => AggOp::Avg,
        "min" => AggOp::Min,
        "max" => AggOp::Max,
        "count" => AggOp::Count,
        "group" => AggOp::Group,
        "stddev" => AggOp::Stddev,
        "stdvar" => AggOp::Stdvar,
        "quantile" => AggOp::Quantile,
        "count_values" => AggOp::CountValues,
        "topk" => AggOp::Topk,
        "bottomk" => AggOp::Bottomk,
        "limitk" => AggOp::Limitk,
        "limit_ratio" => AggOp::LimitRatio,
        other => {
            return Err(QueryError::Execution(format!(
                "unsupported aggregation {other:?}"
            )));
        }
    };
    let param = match &a.param {
        Some(p) => Some(ev.eval(p)?),
        None => None,
    };
    let input = match ev.eval(&a.expr)? {
        Val::Vector(v) => v,
        _ => {
            return Err(QueryError::Execution(
                "aggregation requires an instant vector".into(),
            ));
        }
    };
    let pos = ev.pos(a.param.as_deref().unwrap_or(&a.expr));
    let mut params: Vec<f64> = Vec::new();
    if let Some(Val::Scalar(p)) = &param {
        params = p.clone();
    }
    match op {
        AggOp::Topk | AggOp::Bottomk | AggOp::Limitk => {
            if params.iter().any(|p| p.is_nan()) {
                return Err(QueryError::Execution("Parameter value is NaN".into()));
            }
            let max = params.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if max < 1.0 {
                return Ok(Val::Vector(Vec::new()));
            }
            let min = params.iter().cloned().fold(f64::INFINITY, f64::min);
            if min <= i64::MIN as f64 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} underflows int64",
                    format_float(min)
                )));
            }
            if max >= i64::MAX as f64 {
                return Err(QueryError::Execution(format!(
                    "Scalar value {} overflows int64",
                    format_float(max)
                )));
            }
        }
        AggOp::LimitRatio => {
            let max = params.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let min = params.iter().cloned().fold(f64::INFINITY, f64::min);
            if max == 0.0 && min == 0.0 {
                return Ok(Val::Vector(Vec::new()));
            }
            if params.iter().any(|p| p.is_nan()) {
                return Err(QueryError::Execution("Ratio value is NaN".into()));
            }
            if max > 1.0 {
                ev.annos.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to 1{pos}",
                    format_float(max)
                ));
            }
            if min < -1.0 {
                ev.annos.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to -1{pos}",
                    format_float(min)
                ));
            }
        }
        AggOp::Quantile => {
            if params.iter().any(|p| p.is_nan()) {
                ev.annos.warn(format!(
                    "quantile value should be between 0 and 1, got NaN{pos}"
                ));
            }
            let max = params.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let min = params.iter().cloned().fold(f64::INFINITY, f64::min);
            if max > 1.0 {
                ev.annos.warn(format!(
                    "quantile value should be between 0 and 1, got {}{pos}",
                    format_float(max)
                ));
            }
            if min < 0.0 {
                ev.annos.warn(format!(
                    "quantile value should be between 0 and 1, got {}{pos}",
                    format_float(min)
                ));
            }
        }
        _ => {}
    }
    // Group membership is fixed across steps.
    let mut group_index: HashMap<Labels, usize> = HashMap::new();
    let mut group_labels: Vec<Labels> = Vec::new();
    let mut series_group: Vec<usize> = Vec::with_capacity(input.len());
    for s in &input {
        let g = grouping_labels(&s.labels, &a.modifier);
        let n = group_index.len();
        let idx = *group_index.entry(g.clone()).or_insert_with(|| {
            group_labels.push(g);
            n
        });
        series_group.push(idx);
    }
    let label_name = match &param {
        Some(Val::String(s)) => Some(s.clone()),
        _ => None,
    };
    if op == AggOp::CountValues {
        let ln = label_name.clone().unwrap_or_default();
        if !is_legacy_label_name(&ln) && (ln.is_empty() || ln.starts_with("__")) {
            return Err(QueryError::Execution(format!("invalid label name {ln:?}")));
        }
        if ln.is_empty() {
            return Err(QueryError::Execution(format!("invalid label name {ln:?}")));
        }
    }
    let mut groups: Vec<Group> = (0..group_labels.len()).map(|_| Group::default()).collect();
    let args = [Val::Vector(input)];
    let mut k_step = 0usize;
    // Annotations gathered across steps, raised once.
    let (mut ignored_hist, mut mixed, mut collision, mut reconciled) = (false, false, false, false);
    let mut mixed_schemas: Vec<String> = Vec::new();
    let mut ignored_k = false;
    let out = ev.range_eval(&args, |_, _, sa| {
        let StepArg::Vector { series, els } = &sa[0] else {
            return Ok(Vec::new());
        };
        let p = params.get(k_step).copied().unwrap_or(f64::NAN);
        k_step += 1;
        match op {
            AggOp::Topk | AggOp::Bottomk | AggOp::Limitk | AggOp::LimitRatio => Ok(aggregate_k(
                op,
                p,
                series,
                els,
                &series_group,
                group_labels.len(),
                &mut ignored_k,
            )),
            AggOp::CountValues => {
                let ln = label_name.as_deref().unwrap_or("");
                let mut counts: Vec<(Labels, f64)> = Vec::new();
                let mut idx: HashMap<Labels, usize> = HashMap::new();
                for e in els.iter() {
                    let g = &group_labels[series_group[e.s]];
                    let mut b = g.builder();
                    let value = match &e.h {
                        Some(h) => h.to_string(),
                        None => format_float(e.v),
                    };
                    b.set(ln.into(), value.into());
                    let l = b.build();
                    match idx.get(&l) {
                        Some(&i) => counts[i].1 += 1.0,
                        None => {
                            idx.insert(l.clone(), counts.len());
                            counts.push((l, 1.0));
                        }
                    }
                }
                Ok(counts
                    .into_iter()
                    .map(|(labels, v)| Out::f(labels, v, false))
                    .collect())
            }
            _ => {
                for g in groups.iter_mut() {
                    g.seen = false;
                }
                for e in els.iter() {
                    let g = &mut groups[series_group[e.s]];
                    if let Some(h) = &e.h {
                        match op {
                            AggOp::Sum | AggOp::Avg => {}
                            AggOp::Count | AggOp::Group => {}
                            _ => {
                                ignored_hist = true;
                                continue;
                            }
                        }
                        if !g.seen {
                            *g = Group {
                                seen: true,
                                drop_name: series[e.s].drop_name,
                                ..Group::default()
                            };
                        }
                        g.drop_name |= series[e.s].drop_name;
                        g.count += 1.0;
                        if op == AggOp::Group {
                            g.value = 1.0;
                        }
                        if matches!(op, AggOp::Count | AggOp::Group) {
                            continue;
                        }
                        g.has_hist = true;
                        if g.incompatible {
                            continue;
                        }
                        let fresh = || {
                            if op == AggOp::Avg {
                                HistogramSum::for_mean()
                            } else {
                                HistogramSum::default()
                            }
                        };
                        if g.hist.get_or_insert_with(fresh).add(h).is_err() {
                            g.incompatible = true;
                            mixed_schemas
                                .push(series[e.s].labels.metric_name().unwrap_or("").to_string());
                        }
                        continue;
                    }
                    let f = e.v;
                    if !g.seen {
                        *g = Group {
                            seen: true,
                            value: f,
                            c: 0.0,
                            mean: f,
                            count: 1.0,
                            drop_name: series[e.s].drop_name,
                            has_float: true,
                            ..Group::default()
                        };
                        match op {
                            AggOp::Stddev | AggOp::Stdvar => {
                                g.value = if f.is_nan() || f.is_infinite() {
                                    f64::NAN
                                } else {
                                    0.0
                                };
                            }
                            AggOp::Quantile => g.values.push(f),
                            AggOp::Group => g.value = 1.0,
                            _ => {}
                        }
                        continue;
                    }
                    if series[e.s].drop_name {
                        g.drop_name = true;
                    }
                    let first_float = !g.has_float;
                    g.has_float = true;
                    match op {
                        AggOp::Sum if first_float => g.value = f,
                        AggOp::Sum => {
                            let (v, c) = kahan_inc(f, g.value, g.c);
                            g.value = v;
                            g.c = c;
                        }
                        AggOp::Avg if first_float => {
                            g.count += 1.0;
                            g.value = f;
                        }
                        AggOp::Avg => {
                            g.count += 1.0;
                            if !g.incremental {
                                let (v, c) = kahan_inc(f, g.value, g.c);
                                if !v.is_infinite() {
                                    g.value = v;
                                    g.c = c;
                                    continue;
                                }
                                g.incremental = true;
                                g.mean = g.value / (g.count - 1.0);
                                g.c /= g.count - 1.0;
                            }
                            let q = (g.count - 1.0) / g.count;
                            let (m, c) = kahan_inc(f / g.count, q * g.mean, q * g.c);
                            g.mean = m;
                            g.c = c;
                        }
                        AggOp::Max if g.value < f || g.value.is_nan() => g.value = f,
                        AggOp::Min if g.value > f || g.value.is_nan() => g.value = f,
                        AggOp::Count => g.count += 1.0,
                        AggOp::Group => {}
                        AggOp::Stddev | AggOp::Stdvar => {
                            g.count += 1.0;
                            let delta = f - g.mean;
                            g.mean += delta / g.count;
                            g.value += delta * (f - g.mean);
                        }
                        AggOp::Quantile => g.values.push(f),
                        _ => {}
                    }
                }
                let mut out = Vec::new();
                for (gi, g) in groups.iter_mut().enumerate() {
                    if !g.seen {
                        continue;
                    }
                    if matches!(op, AggOp::Sum | AggOp::Avg) && g.has_hist {
                        if g.has_float {
                            mixed = true;
                            continue;
                        }
                        if g.incompatible {
                            continue;
                        }
                        let Some(acc) = g.hist.take() else { continue };
                        collision |= acc.reset_seen && acc.not_reset_seen;
                        reconciled |= acc.reconciled;
                        let h = if op == AggOp::Avg {
                            acc.mean()
                        } else {
                            acc.sum()
                        };
                        let Some(mut h) = h else { continue };
                        h.compact();
                        out.push(Out {
                            labels: group_labels[gi].clone(),
                            v: 0.0,
                            h: Some(Arc::new(h)),
                            drop_name: g.drop_name,
                        });
                        continue;
                    }
                    let v = match op {
                        AggOp::Avg => {
                            if g.incremental {
                                g.mean + g.c
                            } else {
                                g.value / g.count + g.c / g.count
                            }
                        }
                        AggOp::Count => g.count,
                        AggOp::Stdvar => g.value / g.count,
                        AggOp::Stddev => (g.value / g.count).sqrt(),
                        AggOp::Quantile => quantile(p, &mut g.values),
                        AggOp::Sum => g.value + g.c,
                        _ => g.value,
                    };
                    out.push(Out::f(group_labels[gi].clone(), v, g.drop_name));
                }
                Ok(out)
            }
        }
    })?;
    let expr_pos = ev.pos(&a.expr);
    let agg_pos = ev.pos_node(a);
    if ignored_hist || ignored_k {
        ev.annos
            .info(format!("ignored histogram in {name} aggregation{agg_pos}"));
    }
    if mixed {
        ev.annos.warn(format!(
            "encountered a mix of histograms and floats for aggregation{expr_pos}"
        ));
    }
    for m in mixed_schemas {
        ev.annos.warn(format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {m:?}{expr_pos}"
        ));
    }
    if collision {
        ev.annos.warn(format!(
            "conflicting counter resets during histogram aggregation{expr_pos}"
        ));
    }
    if reconciled {
        ev.annos.info(format!(
            "mismatched custom buckets were reconciled during aggregation{expr_pos}"
        ));
    }
    Ok(Val::Vector(out))
}

/// topk, bottomk, limitk and limit_ratio: keep some input series per group.
fn aggregate_k(
    op: AggOp,
    p: f64,
    series: &[Series],
    els: &[super::eval::El],
    series_group: &[usize],
    ngroups: usize,
    ignored_hist: &mut bool,
) -> Vec<Out> {
    let mut per_group: Vec<Vec<super::eval::El>> = vec![Vec::new(); ngroups];
    let mut order: Vec<usize> = Vec::new();
    let k = match op {
        AggOp::LimitRatio => 0,
        _ => {
            let k = (p as i64).min(els.len() as i64);
            if k < 1 {
                return Vec::new();
            }
            k as usize
        }
    };
    let r = p.clamp(-1.0, 1.0);
    for e in els.iter() {
        if e.h.is_some() && matches!(op, AggOp::Topk | AggOp::Bottomk) {
            *ignored_hist = true;
            continue;
        }
        let g = series_group[e.s];
        if per_group[g].is_empty() {
            order.push(g);
        }
        per_group[g].push(e.clone());
    }
    let mut out = Vec::new();
    for g in order {
        let mut v = std::mem::take(&mut per_group[g]);
        match op {
            AggOp::Topk | AggOp::Bottomk => {
                v = select_k(v, k, op == AggOp::Topk);
            }
            AggOp::Limitk => v.truncate(k),
            _ => {
                v.retain(|e| ratio_sample(r, &series[e.s].labels));
            }
        }
        for e in v {
            let s = &series[e.s];
            out.push(Out {
                labels: s.labels.clone(),
                v: e.v,
                h: e.h,
                drop_name: s.drop_name,
            });
        }
    }
    out
}

/// topk/bottomk with the same bounded heap Prometheus uses (Go's
/// container/heap), so ties at the k-th place keep the same series, then
/// sorted best first. NaN counts as the worst value for both.
fn select_k(input: Vec<super::eval::El>, k: usize, top: bool) -> Vec<super::eval::El> {
    // `less(a, b)`: a belongs nearer the heap root, i.e. is the first to go.
    let less = |a: &super::eval::El, b: &super::eval::El| -> bool {
        if a.v.is_nan() {
            return true;
        }
        if top { a.v < b.v } else { a.v > b.v }
    };
    fn up(
        h: &mut [super::eval::El],
        mut j: usize,
        less: &impl Fn(&super::eval::El, &super::eval::El) -> bool,
    ) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !less(&h[j], &h[i]) {
                break;
            }
            h.swap(i, j);
            j = i;
        }
    }
    fn down(
        h: &mut [super::eval::El],
        i0: usize,
        less: &impl Fn(&super::eval::El, &super::eval::El) -> bool,
    ) -> bool {
        let n = h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && less(&h[j1 + 1], &h[j1]) {
                j = j1 + 1;
            }
            if !less(&h[j], &h[i]) {
                break;
            }
            h.swap(i, j);
            i = j;
        }
        i > i0
    }
    let mut heap: Vec<super::eval::El> = Vec::with_capacity(k);
    for e in input {
        if heap.len() < k {
            heap.push(e);
            let j = heap.len() - 1;
            up(&mut heap, j, &less);
        } else {
            let worse = if top {
                heap[0].v < e.v || (heap[0].v.is_nan() && !e.v.is_nan())
            } else {
                heap[0].v > e.v || (heap[0].v.is_nan() && !e.v.is_nan())
            };
            if worse {
                heap[0] = e;
                if k > 1 && !down(&mut heap, 0, &less) {
                    up(&mut heap, 0, &less);
                }
            }
        }
    }
    // Best first; NaN last.
    heap.sort_by(|a, b| {
        use std::cmp::Ordering::*;
        match (a.v.is_nan(), b.v.is_nan()) {
            (true, true) => Equal,
            (true, false) => Greater,
            (false, true) => Less,
            _ if top => b.v.partial_cmp(&a.v).unwrap_or(Equal),
            _ => a.v.partial_cmp(&b.v).unwrap_or(Equal),
        }
    });
    heap
}

/// Whether a series belongs to the sample `limit_ratio(r, …)` keeps: a
/// stable hash of its labels mapped to [0, 1) is compared to the ratio, so
/// `limit_ratio(r)` and `limit_ratio(-(1-r))` partition the input.
fn ratio_sample(r: f64, l: &Labels) -> bool {
    let off = l.stable_hash() as f64 / u64::MAX as f64;
    (r >= 0.0 && off < r) || (r < 0.0 && off >= 1.0 + r)
}
