//! The evaluator: walks a promql-parser AST over all steps of a query at
//! once, as Prometheus's engine does, so a selector is read from the store
//! once per query rather than once per step.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::label::MatchOp as PMatchOp;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};

use super::value::{Annotations, Point, Series};
use super::{QueryError, functions};
use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, MatchOp, Matcher, Sample, is_stale_nan};
use crate::storage::Queryable;
use std::sync::Arc;

/// An intermediate value over all steps of the evaluation.
pub(crate) enum Val {
    /// One value per step.
    Scalar(Vec<f64>),
    /// A string literal.
    String(String),
    /// An instant vector over steps: each series has at most one point per
    /// step, at the step's timestamp.
    Vector(Vec<Series>),
    /// A range vector (only as a function argument or an instant query's
    /// result): raw points, with the window each step sees.
    Range(RangeVal),
}

/// Raw points of a matrix selector or subquery plus how to cut the window
/// for each step.
pub(crate) struct RangeVal {
    pub series: RangeSeries,
    /// Window length in ms; windows are left-open `(end - range, end]`.
    pub range: i64,
    pub offset: i64,
    pub at: Option<i64>,
}

/// The series of a range value. A matrix selector keeps the store's
/// samples and turns one series at a time into points, through one
/// reused buffer: rules run `rate(x[5m])` over tens of thousands of
/// series, and a second copy of every sample costs more than computing.
pub(crate) enum RangeSeries {
    /// Points already built (subqueries).
    Points(Vec<Series>),
    /// Samples as read, with what still has to be done to them.
    Raw {
        raw: Arc<Vec<crate::storage::SeriesSamples>>,
        /// The series of `raw` that were selected (`None`: all).
        subset: Option<Vec<usize>>,
        /// Samples at or before this time are outside every window.
        after: i64,
        /// Samples after this time too (a shared read may be wider).
        until: i64,
        stats_only: bool,
    },
}

impl RangeVal {
    /// The window end for evaluation step time `ts`.
    pub fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts) - self.offset
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        match &self.series {
            RangeSeries::Points(v) => v.len(),
            RangeSeries::Raw { raw, subset, .. } => subset.as_ref().map_or(raw.len(), |s| s.len()),
        }
    }

    /// Calls `f` with each non-empty series' labels, points (stale markers
    /// left out) and whether its name is to be dropped.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&Labels, &[Point], bool) -> Result<(), QueryError>,
    ) -> Result<(), QueryError> {
        match &self.series {
            RangeSeries::Points(v) => {
                for s in v {
                    f(&s.labels, &s.points, s.drop_name)?;
                }
            }
            RangeSeries::Raw {
                raw,
                subset,
                after,
                until,
                stats_only,
            } => {
                let mut buf: Vec<Point> = Vec::new();
                let mut each = |s: &crate::storage::SeriesSamples| {
                    raw_points(s, *after, *until, *stats_only, &mut buf);
                    if buf.is_empty() {
                        Ok(())
                    } else {
                        f(&s.labels, &buf, false)
                    }
                };
                match subset {
                    None => raw.iter().try_for_each(&mut each)?,
                    Some(idx) => idx.iter().try_for_each(|&i| each(&raw[i]))?,
                }
            }
        }
        Ok(())
    }

    /// The series with their points, for returning a range vector.
    pub fn into_series(self) -> Vec<Series> {
        match self.series {
            RangeSeries::Points(v) => v,
            RangeSeries::Raw {
                raw,
                subset,
                after,
                until,
                stats_only,
            } => {
                let all: Vec<usize> = subset.unwrap_or_else(|| (0..raw.len()).collect());
                let mut out = Vec::with_capacity(all.len());
                for s in all.into_iter().map(|i| &raw[i]) {
                    let mut buf = Vec::new();
                    raw_points(s, after, until, stats_only, &mut buf);
                    if !buf.is_empty() {
                        out.push(Series {
                            labels: s.labels.clone(),
                            points: buf,
                            drop_name: false,
                        });
                    }
                }
                out
            }
        }
    }
}

/// Index of the first sample after `t`. Samples are nearly evenly spaced,
/// so guessing by interpolation and stepping lands in one or two probes;
/// a binary search over tens of thousands of series waits on a cache miss
/// at every probe.
fn first_after(s: &[Sample], t: i64) -> usize {
    let n = s.len();
    match (s.first(), s.last()) {
        (Some(a), Some(b)) if a.t <= t && b.t > t => {
            let frac = (t - a.t) as f64 / (b.t - a.t) as f64;
            let mut i = ((frac * (n - 1) as f64) as usize).min(n - 1);
            while i < n && s[i].t <= t {
                i += 1;
            }
            while i > 0 && s[i - 1].t > t {
                i -= 1;
            }
            i
        }
        (Some(a), _) if a.t > t => 0,
        _ => n,
    }
}

/// Each selected series' latest sample in `[mint, maxt]` from a shared
/// read, as the store's `select_latest` would return it.
fn latest_of(
    r: &super::cache::SharedRead,
    mint: i64,
    maxt: i64,
) -> Vec<crate::storage::SeriesSamples> {
    let pick = |s: &crate::storage::SeriesSamples| {
        let fi = s.samples.partition_point(|x| x.t <= maxt);
        let f = fi
            .checked_sub(1)
            .map(|i| s.samples[i])
            .filter(|x| x.t >= mint);
        let hi = s.histograms.partition_point(|x| x.0 <= maxt);
        let h = hi
            .checked_sub(1)
            .map(|i| &s.histograms[i])
            .filter(|x| x.0 >= mint);
        let (samples, histograms) = match (f, h) {
            (Some(f), Some(h)) if h.0 > f.t => (Vec::new(), vec![h.clone()]),
            (Some(f), _) => (vec![f], Vec::new()),
            (None, Some(h)) => (Vec::new(), vec![h.clone()]),
            (None, None) => return None,
        };
        Some(crate::storage::SeriesSamples {
            labels: s.labels.clone(),
            samples,
            histograms,
        })
    };
    match &r.subset {
        None => r.data.iter().filter_map(pick).collect(),
        Some(idx) => idx.iter().filter_map(|&i| pick(&r.data[i])).collect(),
    }
}

/// One series' samples as points into `buf`: floats and histograms merged
/// in time order, stale markers and samples outside `(after, until]` left
/// out.
fn raw_points(
    s: &crate::storage::SeriesSamples,
    after: i64,
    until: i64,
    stats_only: bool,
    buf: &mut Vec<Point>,
) {
    buf.clear();
    let keep = |t: i64| t > after && t <= until;
    if s.histograms.is_empty() {
        let lo = first_after(&s.samples, after);
        let hi = first_after(&s.samples, until);
        buf.extend(
            s.samples[lo..hi.max(lo)]
                .iter()
                .filter(|x| !is_stale_nan(x.v))
                .map(|x| Point::float(x.t, x.v)),
        );
        return;
    }
    let mut pts = merge_points(s.samples.clone(), s.histograms.clone());
    if stats_only {
        histogram_stats(&mut pts);
    }
    buf.extend(
        pts.into_iter()
            .filter(|p| keep(p.t) && (p.h.is_some() || !is_stale_nan(p.v))),
    );
}

/// One element of an instant vector at one step: index of its series in
/// the argument plus value.
#[derive(Clone)]
pub(crate) struct El {
    pub s: usize,
    pub v: f64,
    pub h: Option<Arc<FloatHistogram>>,
}

/// A function or operator's view of one argument at one step.
pub(crate) enum StepArg<'a> {
    Scalar(f64),
    Vector { series: &'a [Series], els: &'a [El] },
    String,
}

impl<'a> StepArg<'a> {
    /// The series and this step's elements, if the argument is a vector.
    pub fn vector(&self) -> Option<(&'a [Series], &'a [El])> {
        match self {
            StepArg::Vector { series, els } => Some((series, els)),
            _ => None,
        }
    }
}

/// One output element of a step.
pub(crate) struct Out {
    pub labels: Labels,
    pub v: f64,
    pub h: Option<Arc<FloatHistogram>>,
    pub drop_name: bool,
}

impl Out {
    /// A float output.
    pub fn f(labels: Labels, v: f64, drop_name: bool) -> Out {
        Out {
            labels,
            v,
            h: None,
            drop_name,
        }
    }
}

/// Merges a stored series' float and histogram samples into points.
pub(crate) fn merge_points(
    floats: Vec<Sample>,
    hists: Vec<(i64, Arc<FloatHistogram>)>,
) -> Vec<Point> {
    if hists.is_empty() {
        return floats.into_iter().map(|s| Point::float(s.t, s.v)).collect();
    }
    let mut out = Vec::with_capacity(floats.len() + hists.len());
    let mut hi = hists.into_iter().peekable();
    for f in floats {
        while hi.peek().is_some_and(|h| h.0 < f.t) {
            let (t, h) = hi.next().expect("peeked");
            out.push(Point {
                t,
                v: 0.0,
                h: Some(h),
            });
        }
        out.push(Point::float(f.t, f.v));
    }
    for (t, h) in hi {
        out.push(Point {
            t,
            v: 0.0,
            h: Some(h),
        });
    }
    out
}

/// Collects step outputs into series, keeping first-seen order.
pub(crate) struct Acc {
    pub series: Vec<Series>,
    index: HashMap<Labels, usize>,
    steps: usize,
}

impl Acc {
    pub fn new(steps: usize) -> Self {
        Acc {
            series: Vec::new(),
            index: HashMap::new(),
            steps,
        }
    }

    pub fn push(&mut self, ts: i64, o: Out) -> Result<(), QueryError> {
        let steps = self.steps;
        let i = match self.index.get(&o.labels) {
            Some(&i) => i,
            None => {
                let i = self.series.len();
                self.index.insert(o.labels.clone(), i);
                self.series.push(Series {
                    labels: o.labels,
                    points: Vec::with_capacity(steps.min(64)),
                    drop_name: o.drop_name,
                });
                i
            }
        };
        let s = &mut self.series[i];
        if s.points.last().is_some_and(|p| p.t == ts) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
        s.drop_name |= o.drop_name;
        s.points.push(Point {
            t: ts,
            v: o.v,
            h: o.h,
        });
        Ok(())
    }
}

/// Units of [`Evaluator::work`] between two reads of the clock: about a
/// tenth of a millisecond of the cheapest work, so a deadline is kept to
/// well under a millisecond without a clock read per point.
pub(crate) const WORK_PER_CHECK: usize = 4096;

/// Everything one evaluation needs.
pub(crate) struct Evaluator<'q> {
    pub q: &'q dyn Queryable,
    pub start: i64,
    pub end: i64,
    pub interval: i64,
    pub lookback: i64,
    pub max_samples: usize,
    pub cur_samples: usize,
    pub deadline: Option<Instant>,
    pub annos: Annotations,
    /// Query start and end, what `@ start()` and `@ end()` refer to.
    pub query_start: i64,
    pub query_end: i64,
    /// The query's step in ms, 0 for an instant query.
    pub query_step: i64,
    pub default_subquery_step: i64,
    /// Work done since the clock and the cancel flag were last read, so
    /// they are read rarely but at most [`WORK_PER_CHECK`] units apart.
    pub checks: u32,
    /// Set when whoever asked for the query has gone away.
    pub cancel: Option<&'q std::sync::atomic::AtomicBool>,
    /// Where each AST node starts in the query text.
    pub positions: &'q super::positions::Positions,
    /// Set below histogram_count/_sum/_avg: histograms are read as count
    /// and sum only, with reset hints detected while reading, as
    /// Prometheus's histogram stats iterator does.
    pub stats_only: bool,
    /// Reads shared with the other queries of a batch.
    pub cache: Option<&'q super::cache::ReadCache>,
}

/// Reduces a series' histograms to count and sum and fills in reset
/// hints from the sample before, as Prometheus's stats iterator does.
pub(crate) fn histogram_stats(points: &mut [Point]) {
    use crate::model::histogram::CounterResetHint as Hint;
    let mut last: Option<Arc<FloatHistogram>> = None;
    for p in points.iter_mut() {
        let Some(h) = p.h.take() else {
            last = None;
            continue;
        };
        let hint = match (&last, h.counter_reset_hint) {
            (_, hint) if hint != Hint::Unknown => hint,
            (Some(prev), _) if h.detect_reset(prev) => Hint::Reset,
            (Some(_), _) => Hint::NotReset,
            (None, _) => Hint::Unknown,
        };
        p.h = Some(Arc::new(FloatHistogram {
            schema: h.schema,
            count: h.count,
            sum: h.sum,
            custom_values: h.custom_values.clone(),
            counter_reset_hint: hint,
            ..Default::default()
        }));
        last = Some(h);
    }
}

pub(crate) fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Converts a promql-parser selector into argus matchers, recompiling
/// regexes with Prometheus 3 anchoring (`^(?s:…)$`).
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, String> {
    let conv = |ms: &[promql_parser::label::Matcher]| -> Result<Vec<Matcher>, String> {
        let mut out = Vec::with_capacity(ms.len() + 1);
        if let Some(n) = &vs.name {
            if !ms.iter().any(|m| m.name == METRIC_NAME) {
                out.push(
                    Matcher::new(MatchOp::Equal, METRIC_NAME, n.as_str())
                        .map_err(|e| e.to_string())?,
                );
            }
        }
        for m in ms {
            let op = match m.op {
                PMatchOp::Equal => MatchOp::Equal,
                PMatchOp::NotEqual => MatchOp::NotEqual,
                PMatchOp::Re(_) => MatchOp::Regex,
                PMatchOp::NotRe(_) => MatchOp::NotRegex,
            };
            out.push(
                Matcher::new(op, m.name.as_str(), m.value.as_str()).map_err(|e| e.to_string())?,
            );
        }
        Ok(out)
    };
    let mut sets = Vec::new();
    if !vs.matchers.matchers.is_empty() || vs.matchers.or_matchers.is_empty() {
        sets.push(conv(&vs.matchers.matchers)?);
    }
    for branch in &vs.matchers.or_matchers {
        sets.push(conv(branch)?);
    }
    Ok(sets)
}

impl<'q> Evaluator<'q> {
    pub fn steps(&self) -> usize {
        ((self.end - self.start) / self.interval) as usize + 1
    }

    pub fn step_ts(&self) -> impl Iterator<Item = i64> + use<> {
        let (s, e, i) = (self.start, self.end, self.interval);
        (0..).map(move |k| s + k * i).take_while(move |t| *t <= e)
    }

    /// `" (line:col)"` of a node, as annotations end.
    pub fn pos(&self, e: &Expr) -> String {
        self.positions.of(e)
    }

    /// Position of a binary, call or aggregation node.
    pub fn pos_node<T>(&self, n: &T) -> String {
        self.positions.of_node(n)
    }

    pub fn at_ms_pub(&self, at: &Option<AtModifier>) -> Option<i64> {
        self.at_ms(at)
    }

    pub fn select_pub(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<crate::storage::SeriesSamples>, QueryError> {
        self.select(vs, mint, maxt, false)
    }

    fn check_deadline(&mut self) -> Result<(), QueryError> {
        self.work(1)
    }

    /// Accounts `units` of work (points scanned, series visited) and, every
    /// [`WORK_PER_CHECK`] units, stops the query if it is past its deadline
    /// or cancelled. Every loop whose length grows with the input calls it.
    pub fn work(&mut self, units: usize) -> Result<(), QueryError> {
        let total = self.checks as usize + units;
        if total < WORK_PER_CHECK {
            self.checks = total as u32;
            return Ok(());
        }
        self.checks = 0;
        if self
            .cancel
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(QueryError::Timeout(
                "query cancelled: the client went away".into(),
            ));
        }
        if let Some(d) = self.deadline {
            if Instant::now() > d {
                return Err(QueryError::Timeout(
                    "query timed out in expression evaluation".into(),
                ));
            }
        }
        Ok(())
    }

    pub fn add_samples(&mut self, n: usize) -> Result<(), QueryError> {
        self.cur_samples += n;
        if self.cur_samples > self.max_samples {
            return Err(QueryError::TooManySamples);
        }
        Ok(())
    }

    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.query_start),
            Some(AtModifier::End) => Some(self.query_end),
            Some(AtModifier::At(t)) => Some(millis(*t)),
        }
    }

    pub fn eval(&mut self, e: &Expr) -> Result<Val, QueryError> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; self.steps()])),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut ss) => {
                    for s in &mut ss {
                        s.drop_name = true;
                        for p in s.points.iter_mut() {
                            p.v = -p.v;
                            if let Some(h) = &p.h {
                                let mut x = (**h).clone();
                                x.mul(-1.0);
                                p.h = Some(Arc::new(x));
                            }
                        }
                    }
                    Ok(Val::Vector(ss))
                }
                _ => Err(QueryError::Execution(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs).map(Val::Vector),
            Expr::MatrixSelector(ms) => {
                let range = ms.range.as_millis() as i64;
                self.eval_matrix_selector(&ms.vs, range).map(Val::Range)
            }
            Expr::Subquery(sq) => self.eval_subquery(sq).map(Val::Range),
            Expr::Call(c) => self.eval_call(c),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Binary(b) => self.eval_binary(b),
            Expr::Extension(_) => Err(QueryError::Execution("unsupported expression".into())),
        }
    }

    fn select(
        &mut self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        latest_only: bool,
    ) -> Result<Vec<crate::storage::SeriesSamples>, QueryError> {
        if latest_only {
            if let Some(r) = self.shared(vs, mint, maxt)? {
                return Ok(latest_of(&r, mint, maxt));
            }
        }
        let sets = selector_matchers(vs).map_err(QueryError::BadData)?;
        let read = |q: &dyn Queryable, set: &[Matcher]| {
            if latest_only {
                q.select_latest(set, mint, maxt)
            } else {
                q.select(set, mint, maxt)
            }
        };
        let mut out = Vec::new();
        if sets.len() == 1 {
            out = read(self.q, &sets[0]);
        } else {
            let mut seen = std::collections::HashSet::new();
            for set in &sets {
                for s in read(self.q, set) {
                    if seen.insert(s.labels.clone()) {
                        out.push(s);
                    }
                }
            }
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        Ok(out)
    }

    /// A read of the batch's cache covering this selector, if any.
    fn shared(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
    ) -> Result<Option<super::cache::SharedRead>, QueryError> {
        let Some(cache) = self.cache else {
            return Ok(None);
        };
        if !vs.matchers.or_matchers.is_empty() {
            return Ok(None);
        }
        let mut sets = selector_matchers(vs).map_err(QueryError::BadData)?;
        Ok(sets.pop().and_then(|m| cache.lookup(&m, mint, maxt)))
    }

    /// An instant-vector selector at every step: the latest sample within
    /// the lookback window `(t - lookback, t]`, unless it is a stale marker.
    fn eval_vector_selector(&mut self, vs: &VectorSelector) -> Result<Vec<Series>, QueryError> {
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let (first, last) = match at {
            Some(a) => (a - off, a - off),
            None => (self.start - off, self.end - off),
        };
        // One evaluation time (instant queries, rules, `@`): only the
        // latest sample of each series matters, unless histograms are read
        // for their statistics, whose reset hints come from the sample
        // before.
        let latest_only = first == last && !self.stats_only;
        let raw = self.select(vs, first - self.lookback + 1, last, latest_only)?;
        let steps = self.steps();
        let mut out = Vec::with_capacity(raw.len());
        for s in raw {
            self.check_deadline()?;
            let mut samples = merge_points(s.samples, s.histograms);
            if self.stats_only {
                histogram_stats(&mut samples);
            }
            let mut pts = Vec::with_capacity(steps.min(samples.len().max(1) * 2));
            let mut j = 0usize;
            self.work(steps + samples.len())?;
            for ts in self.step_ts() {
                let rt = at.unwrap_or(ts) - off;
                while j + 1 < samples.len() && samples[j + 1].t <= rt {
                    j += 1;
                }
                if let Some(p) = samples.get(j) {
                    if p.t <= rt
                        && p.t > rt - self.lookback
                        && (p.h.is_some() || !is_stale_nan(p.v))
                    {
                        pts.push(Point {
                            t: ts,
                            v: p.v,
                            h: p.h.clone(),
                        });
                    }
                }
            }
            if !pts.is_empty() {
                self.add_samples(pts.len())?;
                out.push(Series {
                    labels: s.labels,
                    points: pts,
                    drop_name: false,
                });
            }
        }
        Ok(out)
    }

    /// Raw points of a matrix selector covering every step's window.
    fn eval_matrix_selector(
        &mut self,
        vs: &VectorSelector,
        range: i64,
    ) -> Result<RangeVal, QueryError> {
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let (first, last) = match at {
            Some(a) => (a - off, a - off),
            None => (self.start - off, self.end - off),
        };
        let (raw, subset) = match self.shared(vs, first - range + 1, last)? {
            Some(r) => (r.data, r.subset),
            None => (
                Arc::new(self.select(vs, first - range + 1, last, false)?),
                None,
            ),
        };
        let n: usize = match &subset {
            None => raw
                .iter()
                .map(|s| s.samples.len() + s.histograms.len())
                .sum(),
            Some(idx) => idx
                .iter()
                .map(|&i| raw[i].samples.len() + raw[i].histograms.len())
                .sum(),
        };
        self.add_samples(n)?;
        Ok(RangeVal {
            series: RangeSeries::Raw {
                raw,
                subset,
                after: first - range,
                until: last,
                stats_only: self.stats_only,
            },
            range,
            offset: off,
            at,
        })
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr) -> Result<RangeVal, QueryError> {
        let at = self.at_ms(&sq.at);
        let off = offset_ms(&sq.offset);
        let range = sq.range.as_millis() as i64;
        // A step under a millisecond is a millisecond: time has no finer
        // grain here.
        let step = match sq.step {
            Some(d) if !d.is_zero() => (d.as_millis() as i64).max(1),
            _ => self.default_subquery_step,
        };
        let (first, last) = match at {
            Some(a) => (a - off, a - off),
            None => (self.start - off, self.end - off),
        };
        // The first step-aligned timestamp strictly after the window start.
        let start = ((first - range).div_euclid(step) + 1) * step;
        // Each inner step holds at least one sample, so more steps than
        // the sample budget has left can never finish: refuse before
        // anything is sized by the step count.
        super::limits::step_count(
            start,
            last,
            step,
            self.max_samples.saturating_sub(self.cur_samples),
        )?;
        let mut inner = Evaluator {
            q: self.q,
            start,
            end: last,
            interval: step,
            lookback: self.lookback,
            max_samples: self.max_samples,
            cur_samples: self.cur_samples,
            deadline: self.deadline,
            annos: Annotations::default(),
            query_start: self.query_start,
            query_end: self.query_end,
            query_step: self.query_step,
            default_subquery_step: self.default_subquery_step,
            checks: self.checks,
            cancel: self.cancel,
            positions: self.positions,
            // A subquery needs whole histograms for its reset detection.
            stats_only: false,
            cache: self.cache,
        };
        let series = if start > last {
            Vec::new()
        } else {
            match inner.eval(&sq.expr)? {
                Val::Vector(v) => v,
                Val::Scalar(v) => {
                    let pts: Vec<Point> = inner
                        .step_ts()
                        .zip(v)
                        .map(|(t, v)| Point::float(t, v))
                        .collect();
                    vec![Series {
                        labels: Labels::empty(),
                        points: pts,
                        drop_name: false,
                    }]
                }
                _ => {
                    return Err(QueryError::Execution(
                        "subquery is only allowed on instant vector or scalar".into(),
                    ));
                }
            }
        };
        // Hints of histograms a subquery returns cannot be trusted: it may
        // skip the sample that reset or repeat it, so they become unknown.
        let mut series = series;
        for s in series.iter_mut() {
            for p in s.points.iter_mut() {
                if let Some(h) = &p.h {
                    use crate::model::histogram::CounterResetHint as Hint;
                    if matches!(h.counter_reset_hint, Hint::Reset | Hint::NotReset) {
                        let mut x = (**h).clone();
                        x.counter_reset_hint = Hint::Unknown;
                        p.h = Some(Arc::new(x));
                    }
                }
            }
        }
        self.cur_samples = inner.cur_samples;
        self.checks = inner.checks;
        merge_annotations(&mut self.annos, inner.annos);
        Ok(RangeVal {
            series: RangeSeries::Points(series),
            range,
            offset: off,
            at,
        })
    }

    /// Calls `f` once per step with each argument's value at that step and
    /// gathers the outputs into series.
    pub fn range_eval(
        &mut self,
        args: &[Val],
        mut f: impl FnMut(&mut Self, i64, &[StepArg<'_>]) -> Result<Vec<Out>, QueryError>,
    ) -> Result<Vec<Series>, QueryError> {
        let steps = self.steps();
        let mut acc = Acc::new(steps);
        let mut cursors: Vec<Vec<usize>> = args
            .iter()
            .map(|a| match a {
                Val::Vector(v) => vec![0; v.len()],
                _ => Vec::new(),
            })
            .collect();
        let mut bufs: Vec<Vec<El>> = args.iter().map(|_| Vec::new()).collect();
        for (k, ts) in self.step_ts().enumerate() {
            let width: usize = args
                .iter()
                .map(|a| match a {
                    Val::Vector(v) => v.len(),
                    _ => 1,
                })
                .sum();
            self.work(width)?;
            for (i, a) in args.iter().enumerate() {
                if let Val::Vector(v) = a {
                    let buf = &mut bufs[i];
                    buf.clear();
                    for (si, s) in v.iter().enumerate() {
                        let c = &mut cursors[i][si];
                        if let Some(p) = s.points.get(*c) {
                            if p.t == ts {
                                buf.push(El {
                                    s: si,
                                    v: p.v,
                                    h: p.h.clone(),
                                });
                                *c += 1;
                            }
                        }
                    }
                }
            }
            let step_args: Vec<StepArg<'_>> = args
                .iter()
                .enumerate()
                .map(|(i, a)| match a {
                    Val::Scalar(v) => StepArg::Scalar(v[k]),
                    Val::String(_) => StepArg::String,
                    Val::Vector(v) => StepArg::Vector {
                        series: v,
                        els: &bufs[i],
                    },
                    Val::Range(_) => StepArg::Scalar(f64::NAN),
                })
                .collect();
            let outs = f(self, ts, &step_args)?;
            for o in outs {
                acc.push(ts, o)?;
            }
        }
        let n: usize = acc.series.iter().map(|s| s.points.len()).sum();
        self.add_samples(n)?;
        Ok(acc.series)
    }

    fn eval_args(&mut self, args: &[Box<Expr>]) -> Result<Vec<Val>, QueryError> {
        args.iter().map(|a| self.eval(a)).collect()
    }

    fn eval_call(&mut self, c: &Call) -> Result<Val, QueryError> {
        functions::eval_call(self, c)
    }

    pub fn eval_args_pub(&mut self, args: &[Box<Expr>]) -> Result<Vec<Val>, QueryError> {
        self.eval_args(args)
    }

    fn eval_aggregate(&mut self, a: &AggregateExpr) -> Result<Val, QueryError> {
        super::aggregate::eval(self, a)
    }

    fn eval_binary(&mut self, b: &BinaryExpr) -> Result<Val, QueryError> {
        super::binary::eval(self, b)
    }
}

pub(crate) fn merge_annotations(into: &mut Annotations, from: Annotations) {
    for w in from.warnings {
        if !into.warnings.contains(&w) {
            into.warnings.push(w);
        }
    }
    for i in from.infos {
        if !into.infos.contains(&i) {
            into.infos.push(i);
        }
    }
}

/// Labels for grouping: `by` keeps only the listed labels, `without`
/// drops them and the metric name.
pub(crate) fn grouping_labels(l: &Labels, m: &Option<LabelModifier>) -> Labels {
    match m {
        None => Labels::empty(),
        Some(LabelModifier::Include(names)) => {
            let v: Vec<_> = l
                .iter()
                .filter(|x| names.labels.iter().any(|n| **n == *x.name))
                .cloned()
                .collect();
            Labels::from_sorted(v)
        }
        Some(LabelModifier::Exclude(names)) => {
            let v: Vec<_> = l
                .iter()
                .filter(|x| &*x.name != METRIC_NAME && !names.labels.iter().any(|n| **n == *x.name))
                .cloned()
                .collect();
            Labels::from_sorted(v)
        }
    }
}

/// Merges series with identical labels (label_replace and name removal
/// can produce them); overlapping points are an error, as in Prometheus.
/// Whether two of the label sets are equal. Duplicates are rare: sort
/// cheap hashes and compare label sets only where hashes collide.
pub(crate) fn has_duplicate_labels<'a>(labels: impl Iterator<Item = &'a Labels>) -> bool {
    let all: Vec<&Labels> = labels.collect();
    let mut hashes: Vec<(u64, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, l)| (l.fast_hash(), i))
        .collect();
    hashes.sort_unstable();
    hashes.chunk_by(|a, b| a.0 == b.0).any(|run| {
        run.len() > 1
            && run
                .iter()
                .enumerate()
                .any(|(k, a)| run[k + 1..].iter().any(|b| all[a.1] == all[b.1]))
    })
}

pub(crate) fn merge_same_labelset(series: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    if !has_duplicate_labels(series.iter().map(|s| &s.labels)) {
        return Ok(series);
    }
    let mut index: crate::model::FastMap<Labels, usize> =
        crate::model::FastMap::with_capacity_and_hasher(series.len(), Default::default());
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        match index.get(&s.labels) {
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let t = &mut out[i];
                let mut merged = Vec::with_capacity(t.points.len() + s.points.len());
                let (mut a, mut b) = (0, 0);
                while a < t.points.len() || b < s.points.len() {
                    let take_a = match (t.points.get(a), s.points.get(b)) {
                        (Some(x), Some(y)) => {
                            if x.t == y.t {
                                return Err(QueryError::Execution(
                                    "vector cannot contain metrics with the same labelset".into(),
                                ));
                            }
                            x.t < y.t
                        }
                        (Some(_), None) => true,
                        _ => false,
                    };
                    if take_a {
                        merged.push(t.points[a].clone());
                        a += 1;
                    } else {
                        merged.push(s.points[b].clone());
                        b += 1;
                    }
                }
                t.points = merged;
            }
        }
    }
    Ok(out)
}

/// The labels without the metric name.
/// The labels that describe what a series measures: the name and, with
/// Prometheus's type-and-unit labels, `__type__` and `__unit__`. They go
/// together when an operation changes what the series means.
pub(crate) const METADATA_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

pub(crate) fn drop_metric_name(l: &Labels) -> Labels {
    if METADATA_LABELS.iter().all(|n| l.get(n).is_none()) {
        return l.clone();
    }
    let mut b: LabelsBuilder = l.builder();
    for n in METADATA_LABELS {
        b.del(n);
    }
    b.build()
}

/// For vector matching: is this cardinality one of the grouping ones.
pub(crate) fn card_include(c: &VectorMatchCardinality) -> Vec<String> {
    match c {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
            l.labels.clone()
        }
        _ => Vec::new(),
    }
}
