//! `info(v [, {data-label selector}])`: adds the data labels of info
//! series (`target_info` by default, or those the selector names) that
//! share `instance` and `job` with each series of `v`.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::parser::{Call, Expr};

use super::QueryError;
use super::eval::{Evaluator, Out, Val, offset_ms};
use super::value::{Point, Series};
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher, is_stale_nan};

const TARGET_INFO: &str = "target_info";
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// The name matchers that pick info series: as given if one selects
/// positively, else `.+_info` plus the given ones, else `target_info`.
fn effective_name_matchers(given: Vec<Matcher>) -> Result<Vec<Matcher>, QueryError> {
    let bad = |e: crate::model::MatcherError| QueryError::Execution(e.to_string());
    if given
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex))
    {
        return Ok(given);
    }
    if !given.is_empty() {
        let mut v = vec![Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info").map_err(bad)?];
        v.extend(given);
        return Ok(v);
    }
    Ok(vec![
        Matcher::new(MatchOp::Equal, METRIC_NAME, TARGET_INFO).map_err(bad)?,
    ])
}

/// The `@` time and offset of the first selector in `e`, which info
/// series are read with.
fn first_selector_time(ev: &Evaluator<'_>, e: &Expr) -> Option<(Option<i64>, i64)> {
    match e {
        Expr::VectorSelector(vs) => Some((ev.at_ms_pub(&vs.at), offset_ms(&vs.offset))),
        Expr::MatrixSelector(ms) => Some((ev.at_ms_pub(&ms.vs.at), offset_ms(&ms.vs.offset))),
        Expr::Subquery(sq) => first_selector_time(ev, &sq.expr)
            .map(|(at, off)| (at.or(ev.at_ms_pub(&sq.at)), off + offset_ms(&sq.offset))),
        Expr::Paren(p) => first_selector_time(ev, &p.expr),
        Expr::Unary(u) => first_selector_time(ev, &u.expr),
        Expr::Binary(b) => {
            first_selector_time(ev, &b.lhs).or_else(|| first_selector_time(ev, &b.rhs))
        }
        Expr::Aggregate(a) => first_selector_time(ev, &a.expr),
        Expr::Call(c) => c.args.args.iter().find_map(|a| first_selector_time(ev, a)),
        _ => None,
    }
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, c: &Call) -> Result<Val, QueryError> {
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    let (at, off) = first_selector_time(ev, args[0]).unwrap_or((None, 0));
    let base = match ev.eval(args[0])? {
        Val::Vector(v) => v,
        _ => {
            return Err(QueryError::Execution(
                "info() expects an instant vector".into(),
            ));
        }
    };
    // Data label matchers by label name; name matchers pick info metrics.
    let mut data: BTreeMap<String, Vec<Matcher>> = BTreeMap::new();
    let mut name_matchers = Vec::new();
    if let Some(Expr::VectorSelector(vs)) = args.get(1) {
        let sets = super::eval::selector_matchers(vs).map_err(QueryError::BadData)?;
        for m in sets.into_iter().next().unwrap_or_default() {
            if m.name == METRIC_NAME {
                name_matchers.push(m.clone());
            }
            data.entry(m.name.clone()).or_default().push(m);
        }
    } else {
        name_matchers.push(
            Matcher::new(MatchOp::Equal, METRIC_NAME, TARGET_INFO)
                .map_err(|e| QueryError::Execution(e.to_string()))?,
        );
    }
    let name_filter = effective_name_matchers(name_matchers.clone())?;
    // Info series given as the base pass through unchanged.
    let ignored: Vec<bool> = base
        .iter()
        .map(|s| {
            let n = s.labels.metric_name().unwrap_or("");
            name_filter.iter().all(|m| m.matches(n))
        })
        .collect();
    let mut id_values: BTreeMap<&str, HashSet<String>> = BTreeMap::new();
    for (s, ign) in base.iter().zip(&ignored) {
        if *ign {
            continue;
        }
        for l in IDENTIFYING {
            if let Some(v) = s.labels.get(l).filter(|v| !v.is_empty()) {
                id_values.entry(l).or_default().insert(v.to_string());
            }
        }
    }
    data.remove(METRIC_NAME);
    let mut info: Vec<Series> = Vec::new();
    if !id_values.is_empty() {
        let bad = |e: crate::model::MatcherError| QueryError::Execution(e.to_string());
        let mut ms = Vec::new();
        for (name, vals) in &id_values {
            let mut vals: Vec<&String> = vals.iter().collect();
            vals.sort();
            let re = vals
                .iter()
                .map(|v| regex::escape(v))
                .collect::<Vec<_>>()
                .join("|");
            ms.push(Matcher::new(MatchOp::Regex, *name, re).map_err(bad)?);
        }
        for v in data.values() {
            ms.extend(v.iter().cloned());
        }
        ms.extend(effective_name_matchers(name_matchers)?);
        info = read_info_series(ev, &ms, at, off)?;
    }
    // Signatures: info metric name plus identifying label values.
    let sig = |name: &str, l: &Labels| -> String {
        let mut s = String::from(name);
        for k in IDENTIFYING {
            s.push('\u{ff}');
            s.push_str(l.get(k).unwrap_or(""));
        }
        s
    };
    let info_names: Vec<String> = {
        let mut v: Vec<String> = info
            .iter()
            .filter_map(|s| s.labels.metric_name().map(str::to_string))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let info_sigs: Vec<String> = info
        .iter()
        .map(|s| sig(s.labels.metric_name().unwrap_or(""), &s.labels))
        .collect();
    let all_match_empty = data.values().flatten().all(|m| m.matches(""));
    let args_v = [Val::Vector(base), Val::Vector(info)];
    let out = ev.range_eval(&args_v, |_, _, a| {
        let (Some((bs, be)), Some((is, ie))) = (a[0].vector(), a[1].vector()) else {
            return Ok(Vec::new());
        };
        // The newest info sample per signature; its value is the sample's
        // own timestamp.
        let mut by_sig: HashMap<&str, (usize, f64)> = HashMap::new();
        for e in ie.iter() {
            let key = info_sigs[e.s].as_str();
            match by_sig.get(key) {
                Some(&(_, t)) if t > e.v => {}
                Some(&(prev, t)) if t == e.v => {
                    return Err(QueryError::Execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        super::binary::labels_string(&is[prev].labels),
                        t as i64,
                        super::binary::labels_string(&is[e.s].labels),
                        e.v as i64
                    )));
                }
                _ => {
                    by_sig.insert(key, (e.s, e.v));
                }
            }
        }
        let mut out = Vec::with_capacity(be.len());
        for e in be.iter() {
            let s = &bs[e.s];
            if ignored[e.s] {
                out.push(Out {
                    labels: s.labels.clone(),
                    v: e.v,
                    h: e.h.clone(),
                    drop_name: s.drop_name,
                });
                continue;
            }
            let mut add: BTreeMap<String, String> = BTreeMap::new();
            let mut seen = 0;
            for name in &info_names {
                let Some(&(i, _)) = by_sig.get(sig(name, &s.labels).as_str()) else {
                    continue;
                };
                for l in is[i].labels.iter() {
                    if &*l.name == METRIC_NAME {
                        continue;
                    }
                    if !data.is_empty() && !data.contains_key(&*l.name) {
                        continue;
                    }
                    if let Some(v) = add.get(&*l.name) {
                        if v != &*l.value {
                            return Err(QueryError::Execution(format!(
                                "conflicting label: {}",
                                l.name
                            )));
                        }
                    }
                    if s.labels.get(&l.name).is_some() {
                        continue;
                    }
                    add.insert(l.name.to_string(), l.value.to_string());
                }
                seen += 1;
            }
            if seen == 0 && !all_match_empty {
                continue;
            }
            let mut b = s.labels.builder();
            for (k, v) in &add {
                b.set_str(k, v);
            }
            out.push(Out {
                labels: b.build(),
                v: e.v,
                h: e.h.clone(),
                drop_name: s.drop_name,
            });
        }
        Ok(out)
    })?;
    Ok(Val::Vector(out))
}

/// Info series at every step with instant-selector semantics; each point's
/// value is the timestamp of the sample found (to pick the newest).
fn read_info_series(
    ev: &mut Evaluator<'_>,
    ms: &[Matcher],
    at: Option<i64>,
    off: i64,
) -> Result<Vec<Series>, QueryError> {
    let (first, last) = match at {
        Some(a) => (a - off, a - off),
        None => (ev.start - off, ev.end - off),
    };
    let raw = ev.q.select(ms, first - ev.lookback + 1, last);
    let steps: Vec<i64> = ev.step_ts().collect();
    let mut out = Vec::with_capacity(raw.len());
    for s in raw {
        if !s.histograms.is_empty() {
            return Err(QueryError::Execution(format!(
                "this should be an info metric, with float samples: {}",
                super::binary::labels_string(&s.labels)
            )));
        }
        let mut pts = Vec::new();
        let mut j = 0usize;
        for &ts in &steps {
            let rt = at.unwrap_or(ts) - off;
            while j + 1 < s.samples.len() && s.samples[j + 1].t <= rt {
                j += 1;
            }
            if let Some(p) = s.samples.get(j) {
                if p.t <= rt && p.t > rt - ev.lookback && !is_stale_nan(p.v) {
                    pts.push(Point::float(ts, p.t as f64));
                }
            }
        }
        if !pts.is_empty() {
            ev.add_samples(pts.len())?;
            out.push(Series {
                labels: s.labels,
                points: pts,
                drop_name: false,
            });
        }
    }
    Ok(out)
}
