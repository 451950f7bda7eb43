//! Shared reads for a batch of queries at one time, such as the rules of a
//! group: selectors that several queries use are read from the store once,
//! over the widest window any of them needs, and each query takes its
//! window (and, when it selects more narrowly, its series) from that read.
//! Rule groups commonly read one counter over many windows (5m to 3d in
//! SLO burn-rate rules) or with several label filters; without this each
//! rule decodes the same chunks again.
//!
//! Writes between the queries (recording rule results) must be visible to
//! later ones: [`ReadCache::invalidate`] drops the reads a written series
//! would have been part of.

use std::sync::{Arc, Mutex};

use promql_parser::parser::{Expr, VectorSelector};

use super::Query;
use super::eval::{offset_ms, selector_matchers};
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher};
use crate::storage::{Queryable, SeriesSamples};

/// One read: its matchers, window and what it returned.
struct Entry {
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
    data: Arc<Vec<SeriesSamples>>,
}

/// Reads shared by the queries of one batch.
#[derive(Default)]
pub struct ReadCache {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        write!(f, "ReadCache({n} reads)")
    }
}

/// A read a query can use: the shared series, and which of them match
/// (`None`: all).
pub(crate) struct SharedRead {
    pub data: Arc<Vec<SeriesSamples>>,
    pub subset: Option<Vec<usize>>,
}

/// What a selector of a query reads at the batch's time.
struct Use {
    matchers: Vec<Matcher>,
    mint: i64,
    maxt: i64,
}

fn collect(e: &Expr, ts: i64, lookback: i64, out: &mut Vec<Use>) {
    let mut add = |vs: &VectorSelector, range: Option<i64>| {
        // `@` pins a time of its own; several `or` branches read several
        // sets. Neither is worth sharing.
        if vs.at.is_some() || !vs.matchers.or_matchers.is_empty() {
            return;
        }
        let Ok(mut sets) = selector_matchers(vs) else {
            return;
        };
        let Some(matchers) = sets.pop() else { return };
        let end = ts - offset_ms(&vs.offset);
        let span = range.unwrap_or(lookback);
        out.push(Use {
            matchers,
            mint: end - span + 1,
            maxt: end,
        });
    };
    match e {
        Expr::VectorSelector(vs) => add(vs, None),
        Expr::MatrixSelector(ms) => add(&ms.vs, Some(ms.range.as_millis() as i64)),
        Expr::Aggregate(a) => {
            collect(&a.expr, ts, lookback, out);
            if let Some(p) = &a.param {
                collect(p, ts, lookback, out);
            }
        }
        Expr::Unary(u) => collect(&u.expr, ts, lookback, out),
        Expr::Binary(b) => {
            collect(&b.lhs, ts, lookback, out);
            collect(&b.rhs, ts, lookback, out);
        }
        Expr::Paren(p) => collect(&p.expr, ts, lookback, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                collect(a, ts, lookback, out);
            }
        }
        // Subqueries evaluate at their own steps; their reads are not
        // planned (a covering read still serves them).
        _ => {}
    }
}

fn name_of(ms: &[Matcher]) -> Option<&str> {
    ms.iter()
        .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
        .map(|m| m.value.as_str())
}

impl ReadCache {
    /// An empty cache.
    pub fn new() -> Self {
        ReadCache::default()
    }

    /// Reads ahead what the `queries`, about to run at `ts`, share: for
    /// each metric name selected more than once, the series matching the
    /// matchers all those selectors have in common, over the union of
    /// their windows.
    pub fn plan(&self, store: &dyn Queryable, queries: &[&Query], ts: i64, lookback: i64) {
        let mut uses = Vec::new();
        for q in queries {
            collect(&q.expr, ts, lookback, &mut uses);
        }
        let mut names: Vec<&str> = uses.iter().filter_map(|u| name_of(&u.matchers)).collect();
        names.sort_unstable();
        names.dedup();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for name in names {
            let group: Vec<&Use> = uses
                .iter()
                .filter(|u| name_of(&u.matchers) == Some(name))
                .collect();
            if group.len() < 2 {
                continue;
            }
            let common: Vec<Matcher> = group[0]
                .matchers
                .iter()
                .filter(|m| group.iter().all(|u| u.matchers.contains(m)))
                .cloned()
                .collect();
            let mint = group.iter().map(|u| u.mint).min().unwrap_or(ts);
            let maxt = group.iter().map(|u| u.maxt).max().unwrap_or(ts);
            let data = Arc::new(store.select(&common, mint, maxt));
            entries.push(Entry {
                matchers: common,
                mint,
                maxt,
                data,
            });
        }
    }

    /// Forgets the reads that `labels`, just written, would belong to.
    pub fn invalidate(&self, labels: &Labels) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| !e.matchers.iter().all(|m| m.matches_labels(labels)));
    }

    /// A read covering `matchers` over `[mint, maxt]`, if one was made.
    pub(crate) fn lookup(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Option<SharedRead> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let e = entries.iter().find(|e| {
            e.mint <= mint && e.maxt >= maxt && e.matchers.iter().all(|m| matchers.contains(m))
        })?;
        let extra: Vec<&Matcher> = matchers
            .iter()
            .filter(|m| !e.matchers.contains(m))
            .collect();
        let subset = (!extra.is_empty()).then(|| {
            e.data
                .iter()
                .enumerate()
                .filter(|(_, s)| extra.iter().all(|m| m.matches_labels(&s.labels)))
                .map(|(i, _)| i)
                .collect()
        });
        Some(SharedRead {
            data: e.data.clone(),
            subset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{Engine, QueryOptions, Value};
    use crate::storage::{Appender, Head};

    #[test]
    fn shared_reads_give_the_same_answers_and_see_writes() {
        let head = Arc::new(Head::new());
        let mut app = head.appender();
        for i in 0..20 {
            let l = Labels::from_pairs([
                ("__name__", "req_total"),
                ("code", if i % 4 == 0 { "500" } else { "200" }),
                ("i", &*i.to_string()),
            ]);
            for k in 0..=60 {
                app.append(&l, k * 10_000, (k * (i + 1)) as f64).unwrap();
            }
        }
        app.commit();
        let ts = 600_000;
        let texts = [
            "sum(rate(req_total[5m]))",
            "sum(rate(req_total{code=\"500\"}[1m]))",
            "count(req_total)",
            "sum(rate(req_total[2m] offset 1m))",
        ];
        let queries: Vec<Query> = texts.iter().map(|t| Query::parse(t).unwrap()).collect();
        let engine = Engine::default();
        let plain: Vec<Value> = queries
            .iter()
            .map(|q| {
                engine
                    .instant(head.as_ref(), q, ts, &QueryOptions::default())
                    .unwrap()
                    .value
            })
            .collect();
        let cache = Arc::new(ReadCache::new());
        cache.plan(
            head.as_ref(),
            &queries.iter().collect::<Vec<_>>(),
            ts,
            300_000,
        );
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
        let opts = QueryOptions {
            cache: Some(cache.clone()),
            ..Default::default()
        };
        for (q, want) in queries.iter().zip(&plain) {
            let got = engine.instant(head.as_ref(), q, ts, &opts).unwrap().value;
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{}", q.text());
        }
        // A write the shared read would include drops it.
        cache.invalidate(&Labels::from_pairs([
            ("__name__", "req_total"),
            ("i", "99"),
        ]));
        assert!(cache.entries.lock().unwrap().is_empty());
    }
}
