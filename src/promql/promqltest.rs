//! A runner for Prometheus's promqltest scripts (`load`, `clear`, `eval`
//! with `expect` lines), evaluating them with argus's engine over a real
//! [`Head`](crate::storage::Head).
//!
//! Like Prometheus's own runner, every instant `eval` is also re-run with
//! `@` pinned on each selector at several evaluation times, and once as a
//! range query whose middle step must give the same answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr};
use regex::Regex;

use super::series_notation::{SeqValue, parse_series};
use super::{Engine, EngineOptions, Query, QueryError, QueryOptions, Value};
use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, stale_nan};
use crate::storage::{Appender, Head, Store, StoreOptions};

/// A one-line reason for a failure, for the known-failures list.
pub fn reason(failure: &str) -> String {
    let one_line: String = failure.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(160).collect()
}

/// One `eval` command and how it went.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// 1-based line of the `eval` command.
    pub line: usize,
    /// The query.
    pub expr: String,
    /// `None` on success, else what went wrong.
    pub failure: Option<String>,
}

/// The outcome of one script.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    /// Every eval case in file order.
    pub cases: Vec<CaseResult>,
}

impl FileReport {
    /// Cases that passed.
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_none()).count()
    }

    /// Cases that failed.
    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }
}

#[derive(Debug, Clone)]
struct Expect {
    kind: String,
    matcher: Option<Matcher>,
}

#[derive(Debug, Clone)]
enum Matcher {
    Msg(String),
    Re(Regex),
}

impl Matcher {
    fn matches(&self, s: &str) -> bool {
        match self {
            Matcher::Msg(m) => m == s,
            Matcher::Re(r) => r.is_match(s),
        }
    }

    fn describe(&self) -> String {
        match self {
            Matcher::Msg(m) => format!("message {m:?}"),
            Matcher::Re(r) => format!("pattern {:?}", r.as_str()),
        }
    }
}

#[derive(Debug, Clone)]
struct Eval {
    line: usize,
    expr: String,
    range: Option<(i64, i64, i64)>,
    at: i64,
    expects: Vec<Expect>,
    /// Expected series by labels: (position in the listing, values).
    expected: HashMap<Labels, (usize, Vec<SeqValue>)>,
    scalar: Option<f64>,
    string: Option<String>,
    /// `expect range vector from … to … step …`.
    range_vector: Option<(i64, i64, i64)>,
    fail_legacy: bool,
    warn_legacy: bool,
    info_legacy: bool,
    ordered_legacy: bool,
    fail_message: Option<String>,
    fail_regexp: Option<Regex>,
}

impl Eval {
    fn has(&self, kind: &str) -> bool {
        self.expects.iter().any(|e| e.kind == kind)
    }

    fn is_fail(&self) -> bool {
        self.fail_legacy || self.has("fail")
    }

    fn is_ordered(&self) -> bool {
        self.ordered_legacy || self.has("ordered")
    }
}

enum Cmd {
    /// Step, series, and whether classic histograms also load as NHCB.
    Load(i64, Vec<(Labels, Vec<SeqValue>)>, bool),
    Clear,
    Eval(Box<Eval>),
    /// A command that could not be parsed, reported as a failed case.
    Broken(usize, String, String),
}

/// Prometheus's duration syntax (`1m`, `1h30m`, `0`, `100ms`), with the
/// leading minus the test scripts allow.
fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let d = crate::model::parse_duration(body).map_err(|e| format!("{s:?}: {e}"))?;
    let ms = d.as_millis() as i64;
    Ok(if neg { -ms } else { ms })
}

fn go_unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2 && s.starts_with('`') && s.ends_with('`') {
        return Some(s[1..s.len() - 1].to_string());
    }
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        return serde_json::from_str::<String>(s).ok();
    }
    None
}

fn parse_script(text: &str) -> Vec<Cmd> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim();
            if t.starts_with('#') {
                String::new()
            } else {
                t.to_string()
            }
        })
        .collect();
    let re_instant =
        Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$")
            .expect("static regex");
    let re_range = Regex::new(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    )
    .expect("static regex");
    let re_expect =
        Regex::new(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
            .expect("static regex");
    let re_rv = Regex::new(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
        .expect("static regex");
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let first = l
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if first == "clear" {
            cmds.push(Cmd::Clear);
            i += 1;
        } else if first.starts_with("load") {
            let gap = l.split_whitespace().nth(1).unwrap_or("");
            let gap = match parse_duration_ms(gap) {
                Ok(g) => g,
                Err(e) => {
                    cmds.push(Cmd::Broken(
                        i + 1,
                        l.clone(),
                        format!("invalid load step: {e}"),
                    ));
                    0
                }
            };
            let mut series = Vec::new();
            let mut broken = None;
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                match parse_series(&lines[i]) {
                    Ok(s) => series.push(s),
                    Err(e) => broken = Some(format!("line {}: {e}", i + 1)),
                }
                i += 1;
            }
            // A series defined twice in one load keeps its last definition,
            // as in Prometheus's runner.
            let mut seen = std::collections::HashMap::new();
            for (i, (l, _)) in series.iter().enumerate() {
                seen.insert(l.clone(), i);
            }
            let series: Vec<_> = series
                .into_iter()
                .enumerate()
                .filter(|(i, (l, _))| seen.get(l) == Some(i))
                .map(|(_, s)| s)
                .collect();
            if let Some(e) = broken {
                // Load what parsed; the evals that needed the rest fail.
                cmds.push(Cmd::Broken(0, String::new(), e));
            }
            cmds.push(Cmd::Load(gap, series, first == "load_with_nhcb"));
        } else if first.starts_with("eval") {
            let line_no = i + 1;
            let mut ev = Eval {
                line: line_no,
                expr: String::new(),
                range: None,
                at: 0,
                expects: Vec::new(),
                expected: HashMap::new(),
                scalar: None,
                string: None,
                range_vector: None,
                fail_legacy: false,
                warn_legacy: false,
                info_legacy: false,
                ordered_legacy: false,
                fail_message: None,
                fail_regexp: None,
            };
            let mut err = None;
            let modifier;
            if let Some(c) = re_instant.captures(l) {
                modifier = c.get(1).map(|m| m.as_str().to_string());
                ev.expr = c[3].to_string();
                match c.get(2).map(|m| parse_duration_ms(m.as_str())) {
                    Some(Ok(t)) => ev.at = t,
                    Some(Err(e)) => err = Some(e),
                    None => {}
                }
            } else if let Some(c) = re_range.captures(l) {
                modifier = c.get(1).map(|m| m.as_str().to_string());
                ev.expr = c[5].to_string();
                match (
                    parse_duration_ms(&c[2]),
                    parse_duration_ms(&c[3]),
                    parse_duration_ms(&c[4]),
                ) {
                    (Ok(a), Ok(b), Ok(s)) => ev.range = Some((a, b, s)),
                    _ => err = Some("invalid range".to_string()),
                }
            } else {
                modifier = None;
                err = Some("invalid evaluation command".into());
            }
            match modifier.as_deref() {
                Some("fail") => ev.fail_legacy = true,
                Some("warn") => ev.warn_legacy = true,
                Some("info") => ev.info_legacy = true,
                Some("ordered") => ev.ordered_legacy = true,
                _ => {}
            }
            let mut pos = 0usize;
            i += 1;
            while i < lines.len() && !lines[i].is_empty() {
                let d = &lines[i];
                i += 1;
                if ev.fail_legacy {
                    if let Some(m) = d.strip_prefix("expected_fail_message") {
                        ev.fail_message = Some(m.trim().to_string());
                        continue;
                    }
                    if let Some(m) = d.strip_prefix("expected_fail_regexp") {
                        match Regex::new(m.trim()) {
                            Ok(r) => ev.fail_regexp = Some(r),
                            Err(e) => err = Some(e.to_string()),
                        }
                        continue;
                    }
                }
                if let Some(c) = re_rv.captures(d) {
                    match (
                        parse_duration_ms(&c[1]),
                        parse_duration_ms(&c[2]),
                        parse_duration_ms(&c[3]),
                    ) {
                        (Ok(a), Ok(b), Ok(s)) => {
                            ev.range_vector = Some((a, b, s));
                            ev.at = b;
                        }
                        _ => err = Some("invalid expect range vector".into()),
                    }
                    continue;
                }
                if let Some(rest) = d.strip_prefix("expect string") {
                    match go_unquote(rest) {
                        Some(s) => ev.string = Some(s),
                        None => err = Some("expected string literal not valid".into()),
                    }
                    continue;
                }
                if d.split(' ').next() == Some("expect") {
                    match re_expect.captures(d) {
                        Some(c) => {
                            let matcher = match (c.get(2).map(|m| m.as_str()), c.get(3)) {
                                (Some("msg"), Some(m)) => {
                                    Some(Matcher::Msg(m.as_str().trim().to_string()))
                                }
                                (Some("regex"), Some(m)) => match Regex::new(m.as_str().trim()) {
                                    Ok(r) => Some(Matcher::Re(r)),
                                    Err(e) => {
                                        err = Some(e.to_string());
                                        None
                                    }
                                },
                                _ => None,
                            };
                            ev.expects.push(Expect {
                                kind: c[1].to_string(),
                                matcher,
                            });
                        }
                        None => err = Some(format!("invalid expect line {d:?}")),
                    }
                    continue;
                }
                if let Some(v) = parse_number(d) {
                    ev.scalar = Some(v);
                    continue;
                }
                pos += 1;
                match parse_series(d) {
                    Ok((labels, vals)) => {
                        ev.expected.insert(labels, (pos, vals));
                    }
                    Err(e) => err = Some(e),
                }
            }
            match err {
                Some(e) => cmds.push(Cmd::Broken(line_no, ev.expr.clone(), e)),
                None => cmds.push(Cmd::Eval(Box::new(ev))),
            }
        } else {
            cmds.push(Cmd::Broken(i + 1, l.clone(), "invalid command".into()));
            i += 1;
        }
    }
    cmds
}

fn parse_number(s: &str) -> Option<f64> {
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|v| v as f64);
    }
    if let Ok(v) = s.parse::<i64>() {
        return Some(v as f64);
    }
    match s {
        "Inf" | "+Inf" => return Some(f64::INFINITY),
        "-Inf" => return Some(f64::NEG_INFINITY),
        "NaN" => return Some(f64::NAN),
        _ => {}
    }
    if s.bytes()
        .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
    {
        return s.parse().ok();
    }
    None
}

/// Prometheus's histogram comparison for test results: schema, counts
/// and sum within tolerance, the same buckets (spans) with counts within
/// tolerance, and the reset hint only when the expectation names one.
fn histograms_match(e: &FloatHistogram, g: &FloatHistogram, hint_set: bool) -> bool {
    // Both sides are compacted first, as Prometheus's runner does.
    let (mut e, mut g) = (e.clone(), g.clone());
    e.compact();
    g.compact();
    let buckets = |a: &[(i32, f64)], b: &[(i32, f64)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x.0 == y.0 && almost_equal(x.1, y.1))
    };
    e.schema == g.schema
        && almost_equal(e.count, g.count)
        && almost_equal(e.sum, g.sum)
        && (!e.uses_custom_buckets() || e.custom_values == g.custom_values)
        && e.zero_threshold == g.zero_threshold
        && almost_equal(e.zero_count, g.zero_count)
        && buckets(&e.positive, &g.positive)
        && buckets(&e.negative, &g.negative)
        && (!hint_set || e.counter_reset_hint == g.counter_reset_hint)
}

/// `load_with_nhcb`: classic histogram series (`_bucket`, `_sum`,
/// `_count`) also loaded as native histograms with custom buckets under
/// the base name.
fn to_nhcb(
    series: &[(Labels, Vec<SeqValue>)],
    gap: i64,
) -> Vec<(Labels, Vec<(i64, FloatHistogram)>)> {
    #[derive(Default, Clone)]
    struct Temp {
        buckets: Vec<(f64, f64)>,
        count: Option<f64>,
        sum: f64,
    }
    let mut groups: HashMap<Labels, std::collections::BTreeMap<i64, Temp>> = HashMap::new();
    for (labels, vals) in series {
        let Some(name) = labels.metric_name() else {
            continue;
        };
        let (kind, base) = if let Some(b) = name.strip_suffix("_bucket") {
            (0, b)
        } else if let Some(b) = name.strip_suffix("_count") {
            (1, b)
        } else if let Some(b) = name.strip_suffix("_sum") {
            (2, b)
        } else {
            continue;
        };
        let le = if kind == 0 {
            match labels
                .get("le")
                .and_then(super::functions::parse_go_float_pub)
            {
                Some(le) if !le.is_nan() => Some(le),
                _ => continue,
            }
        } else {
            None
        };
        let mut b = labels.builder();
        b.set_str(crate::model::METRIC_NAME, base);
        b.del("le");
        let key = b.build();
        let per_t = groups.entry(key).or_default();
        for (k, v) in vals.iter().enumerate() {
            let SeqValue::Value(f) = v else { continue };
            let t = per_t.entry(k as i64 * gap).or_default();
            match (kind, le) {
                (0, Some(le)) => {
                    t.buckets.push((le, *f));
                }
                (1, _) => t.count = Some(*f),
                _ => t.sum = *f,
            }
        }
    }
    let mut out = Vec::new();
    for (labels, per_t) in groups {
        let mut samples = Vec::new();
        for (t, mut tmp) in per_t {
            tmp.buckets
                .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
            let count = tmp
                .count
                .unwrap_or_else(|| tmp.buckets.last().map(|b| b.1).unwrap_or(0.0));
            if tmp.buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
                tmp.buckets.push((f64::INFINITY, count));
            }
            let integral = tmp.buckets.iter().all(|b| b.1.fract() == 0.0) && count.fract() == 0.0;
            let mut h = FloatHistogram {
                schema: crate::model::histogram::CUSTOM_BUCKETS_SCHEMA,
                count,
                sum: tmp.sum,
                ..Default::default()
            };
            let mut prev = 0.0;
            for (i, (le, c)) in tmp.buckets.iter().enumerate() {
                h.positive.push((i as i32, c - prev));
                prev = *c;
                if le.is_finite() {
                    h.custom_values.push(*le);
                }
            }
            h.compact_n(if integral { 2 } else { 0 });
            samples.push((t, h));
        }
        out.push((labels, samples));
    }
    out
}

/// Prometheus's float comparison for test results.
fn almost_equal(a: f64, b: f64) -> bool {
    crate::model::almost_equal(a, b, 1e-6)
}

/// The script runner: a fresh store per script, the engine configured as
/// Prometheus's test engine (5m lookback, 1m default subquery step).
pub struct Runner {
    engine: Engine,
    /// Where stores with chunk files go, when the data is to be read from
    /// disk rather than from the head's memory.
    disk: Option<std::path::PathBuf>,
    stores: std::sync::atomic::AtomicUsize,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            engine: Engine::new(EngineOptions {
                max_samples: 50_000_000,
                timeout: Duration::from_secs(100),
                ..EngineOptions::default()
            }),
            disk: None,
            stores: Default::default(),
        }
    }
}

impl Runner {
    /// A runner whose loads go to stores under `dir` (one directory per
    /// script and `clear`), with every chunk closed and written to a chunk
    /// file after each load: the same cases, read from disk.
    pub fn on_disk(dir: &std::path::Path) -> Runner {
        Runner {
            disk: Some(dir.to_path_buf()),
            ..Runner::default()
        }
    }

    /// An empty head, and the store that owns it when reading from disk.
    fn fresh(&self) -> Result<(Arc<Head>, Option<Store>), String> {
        let Some(dir) = &self.disk else {
            return Ok((Arc::new(Head::new()), None));
        };
        let n = self
            .stores
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (store, _) = Store::open(&dir.join(n.to_string()), StoreOptions::default())
            .map_err(|e| e.to_string())?;
        Ok((store.head().clone(), Some(store)))
    }

    /// Runs one script's text.
    pub fn run(&self, text: &str) -> FileReport {
        let mut report = FileReport::default();
        let mut pending_load_error: Option<String> = None;
        let (mut head, mut store) = match self.fresh() {
            Ok(x) => x,
            Err(e) => {
                pending_load_error = Some(e);
                (Arc::new(Head::new()), None)
            }
        };
        for cmd in parse_script(text) {
            match cmd {
                Cmd::Clear => {
                    pending_load_error = None;
                    (head, store) = match self.fresh() {
                        Ok(x) => x,
                        Err(e) => {
                            pending_load_error = Some(e);
                            (Arc::new(Head::new()), None)
                        }
                    };
                }
                Cmd::Load(gap, series, nhcb) => {
                    let mut app = head.appender();
                    let converted = if nhcb {
                        to_nhcb(&series, gap)
                    } else {
                        Vec::new()
                    };
                    for (labels, vals) in series {
                        for (k, v) in vals.iter().enumerate() {
                            let t = k as i64 * gap;
                            let r = match v {
                                SeqValue::Value(v) => app.append(&labels, t, *v),
                                SeqValue::Stale => app.append(&labels, t, stale_nan()),
                                SeqValue::Histogram(h, _) => {
                                    app.append_histogram(&labels, t, h.clone())
                                }
                                SeqValue::Omitted => continue,
                            };
                            if let Err(e) = r {
                                pending_load_error = Some(format!("load {labels}: {e}"));
                            }
                        }
                    }
                    for (labels, samples) in converted {
                        for (t, h) in samples {
                            if let Err(e) = app.append_histogram(&labels, t, Arc::new(h)) {
                                pending_load_error = Some(format!("load {labels}: {e}"));
                            }
                        }
                    }
                    app.commit();
                    if let Some(s) = &store {
                        head.freeze_open_chunks();
                        if let Err(e) = s.chunk_files().flush(crate::model::now_millis()) {
                            pending_load_error = Some(format!("writing chunk files: {e}"));
                        }
                    }
                }
                Cmd::Broken(line, expr, msg) => {
                    if line == 0 {
                        pending_load_error = Some(msg);
                    } else {
                        report.cases.push(CaseResult {
                            line,
                            expr,
                            failure: Some(msg),
                        });
                    }
                }
                Cmd::Eval(ev) => {
                    let mut failure = self.exec(&head, &ev).err();
                    if let (Some(f), Some(l)) = (&mut failure, &pending_load_error) {
                        f.push_str(&format!(" (an earlier load failed: {l})"));
                    }
                    report.cases.push(CaseResult {
                        line: ev.line,
                        expr: ev.expr.clone(),
                        failure,
                    });
                }
            }
        }
        report
    }

    fn exec(&self, head: &Arc<Head>, ev: &Eval) -> Result<(), String> {
        let store: &dyn crate::storage::Queryable = head.as_ref();
        let opts = QueryOptions::default();
        if let Some((start, end, step)) = ev.range {
            let res = Query::parse(&ev.expr)
                .and_then(|q| self.engine.range(store, &q, start, end, step, &opts));
            return self.check(ev, res, Some((start, end, step)), &ev.expr);
        }
        let mut queries = vec![(ev.expr.clone(), ev.at)];
        queries.extend(at_modifier_cases(&ev.expr, ev.at));
        let ctx_fn = Regex::new(r"(start|end|range|step)\(\)").expect("static regex");
        for (expr, at) in queries {
            let res = Query::parse(&expr).and_then(|q| self.engine.instant(store, &q, at, &opts));
            let scalar_result = matches!(
                res,
                Ok(super::QueryResult {
                    value: Value::Scalar { .. },
                    ..
                })
            );
            let ok = res.is_ok();
            self.check(ev, res, None, &expr).map_err(|e| {
                if expr == ev.expr {
                    e
                } else {
                    format!("{e} [as {expr} at {at}ms]")
                }
            })?;
            if !ok || ev.range_vector.is_some() || ev.string.is_some() || ev.is_ordered() {
                continue;
            }
            if ctx_fn.is_match(&expr) {
                continue;
            }
            // The same query as the middle step of a range query.
            let q = Query::parse(&expr).map_err(|e| e.to_string())?;
            let rr = self
                .engine
                .range(store, &q, at - 60_000, at + 60_000, 60_000, &opts)
                .map_err(|e| format!("error evaluating query {expr:?} in range mode: {e}"))?;
            let Value::Matrix(m) = rr.value else {
                return Err("range mode did not return a matrix".into());
            };
            for w in m.windows(2) {
                if w[0].labels > w[1].labels {
                    return Err("matrix results should always be sorted by labels".into());
                }
            }
            let mut vec = Vec::new();
            for s in m {
                if let Some(p) = s.points.iter().find(|p| p.t == at) {
                    vec.push(super::InstantSample {
                        labels: s.labels.clone(),
                        t: p.t,
                        v: p.v,
                        h: p.h.clone(),
                        drop_name: false,
                    });
                }
            }
            let v = if scalar_result {
                Value::Scalar {
                    t: at,
                    v: vec.first().map(|s| s.v).unwrap_or(f64::NAN),
                }
            } else {
                Value::Vector(vec)
            };
            compare(ev, &v, None).map_err(|e| format!("range mode: {e} [as {expr} at {at}ms]"))?;
        }
        Ok(())
    }

    fn check(
        &self,
        ev: &Eval,
        res: Result<super::QueryResult, QueryError>,
        range: Option<(i64, i64, i64)>,
        expr: &str,
    ) -> Result<(), String> {
        let res = match res {
            Err(e) => {
                if !ev.is_fail() {
                    return Err(format!("error evaluating query {expr:?}: {e}"));
                }
                let msg = e.to_string();
                if let Some(m) = &ev.fail_message {
                    if *m != msg {
                        return Err(format!("expected error {m:?}, got {msg:?}"));
                    }
                }
                if let Some(r) = &ev.fail_regexp {
                    if !r.is_match(&msg) {
                        return Err(format!(
                            "expected error matching {:?}, got {msg:?}",
                            r.as_str()
                        ));
                    }
                }
                if let Some(x) = ev.expects.iter().find(|x| x.kind == "fail") {
                    if let Some(m) = &x.matcher {
                        if !m.matches(&msg) {
                            return Err(format!(
                                "expected error matching {}, got {msg:?}",
                                m.describe()
                            ));
                        }
                    }
                }
                return Ok(());
            }
            Ok(r) => r,
        };
        if ev.is_fail() {
            return Err(format!(
                "expected error evaluating query {expr:?} but got none"
            ));
        }
        let a = &res.annotations;
        if ev.warn_legacy && a.warnings.is_empty() {
            return Err("expected warnings but got none".into());
        }
        if ev.info_legacy && a.infos.is_empty() {
            return Err("expected info annotations but got none".into());
        }
        check_annotations(ev, "warn", &a.warnings)?;
        check_annotations(ev, "info", &a.infos)?;
        if ev.has("no_warn") && !a.warnings.is_empty() {
            return Err(format!("unexpected warning annotations: {:?}", a.warnings));
        }
        if ev.has("no_info") && !a.infos.is_empty() {
            return Err(format!("unexpected info annotations: {:?}", a.infos));
        }
        compare(ev, &res.value, range)
    }
}

fn check_annotations(ev: &Eval, kind: &str, actual: &[String]) -> Result<(), String> {
    let exp: Vec<&Matcher> = ev
        .expects
        .iter()
        .filter(|e| e.kind == kind)
        .filter_map(|e| e.matcher.as_ref())
        .collect();
    let any = ev.expects.iter().any(|e| e.kind == kind);
    if !any {
        return Ok(());
    }
    if actual.is_empty() {
        return Err(format!("expected {kind} annotations but none were found"));
    }
    for m in &exp {
        if !actual.iter().any(|a| m.matches(a)) {
            return Err(format!(
                "expected {kind} annotation matching {} but found {actual:?}",
                m.describe()
            ));
        }
    }
    if !exp.is_empty() {
        for a in actual {
            if !exp.iter().any(|m| m.matches(a)) {
                return Err(format!("unexpected {kind} annotation {a:?}"));
            }
        }
    }
    Ok(())
}

fn compare(ev: &Eval, v: &Value, range: Option<(i64, i64, i64)>) -> Result<(), String> {
    match v {
        Value::Matrix(m) => {
            if ev.is_ordered() {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if ev.scalar.is_some() {
                return Err("expected scalar result, but got matrix".into());
            }
            let (start, end, step) = range.or(ev.range_vector).unwrap_or((ev.at, ev.at, 1));
            let mut seen = 0;
            for s in m {
                let Some((_, vals)) = ev.expected.get(&s.labels) else {
                    return Err(format!("unexpected metric {s} in result", s = s.labels));
                };
                seen += 1;
                let mut exp = Vec::new();
                for (i, e) in vals.iter().enumerate() {
                    let t = start + i as i64 * step;
                    if t > end {
                        return Err(format!(
                            "expected {} points for {}, but query time range cannot return this many points",
                            vals.len(),
                            s.labels
                        ));
                    }
                    match e {
                        SeqValue::Value(v) => exp.push((t, *v, None)),
                        SeqValue::Stale => exp.push((t, stale_nan(), None)),
                        SeqValue::Histogram(h, hint) => {
                            exp.push((t, 0.0, Some((h.clone(), *hint))))
                        }
                        SeqValue::Omitted => {}
                    }
                }
                if exp.len() != s.points.len() {
                    return Err(format!(
                        "expected {} points for {}, but got {:?}",
                        exp.len(),
                        s.labels,
                        s.points.iter().map(|p| (p.t, p.v)).collect::<Vec<_>>()
                    ));
                }
                for (i, (t, v, eh)) in exp.iter().enumerate() {
                    let p = &s.points[i];
                    if p.t != *t {
                        return Err(format!(
                            "expected point {i} of {} at {t}, got {}",
                            s.labels, p.t
                        ));
                    }
                    match (eh, &p.h) {
                        (Some((e, hint)), Some(g)) => {
                            if !histograms_match(e, g, *hint) {
                                return Err(format!(
                                    "expected histogram {e:?} at point {i} of {}, got {g:?}",
                                    s.labels
                                ));
                            }
                            continue;
                        }
                        (Some(_), None) => {
                            return Err(format!(
                                "expected a histogram at point {i} of {}, got float {}",
                                s.labels, p.v
                            ));
                        }
                        (None, Some(g)) => {
                            return Err(format!(
                                "expected a float at point {i} of {}, got histogram {g}",
                                s.labels
                            ));
                        }
                        (None, None) => {}
                    }
                    if !almost_equal(p.v, *v) {
                        return Err(format!(
                            "expected point {i} (t={t}) of {} to be {v}, got {}",
                            s.labels, p.v
                        ));
                    }
                }
            }
            if seen != ev.expected.len() {
                let missing: Vec<String> = ev
                    .expected
                    .keys()
                    .filter(|l| !m.iter().any(|s| &s.labels == *l))
                    .map(|l| l.to_string())
                    .collect();
                return Err(format!("expected metrics not found: {missing:?}"));
            }
            Ok(())
        }
        Value::Vector(vec) => {
            if ev.scalar.is_some() {
                return Err("expected scalar result, but got vector".into());
            }
            let mut seen = 0;
            for (pos, s) in vec.iter().enumerate() {
                let Some((epos, vals)) = ev.expected.get(&s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        s.labels, s.v
                    ));
                };
                if ev.is_ordered() && *epos != pos + 1 {
                    return Err(format!(
                        "expected metric {} at position {epos} but was at {}",
                        s.labels,
                        pos + 1
                    ));
                }
                let e = match (vals.first(), &s.h) {
                    (Some(SeqValue::Histogram(e, hint)), Some(g)) => {
                        if !histograms_match(e, g, *hint) {
                            return Err(format!(
                                "expected histogram {e:?} for {}, got {g:?}",
                                s.labels
                            ));
                        }
                        seen += 1;
                        continue;
                    }
                    (Some(SeqValue::Histogram(..)), None) => {
                        return Err(format!(
                            "expected a histogram for {}, got float {}",
                            s.labels, s.v
                        ));
                    }
                    (_, Some(g)) => {
                        return Err(format!(
                            "expected a float for {}, got histogram {g}",
                            s.labels
                        ));
                    }
                    (Some(SeqValue::Value(v)), None) => *v,
                    (Some(SeqValue::Stale), None) => stale_nan(),
                    _ => return Err(format!("no expected value for {}", s.labels)),
                };
                if !almost_equal(e, s.v) {
                    return Err(format!("expected {e} for {} but got {}", s.labels, s.v));
                }
                seen += 1;
            }
            if seen != ev.expected.len() {
                let missing: Vec<String> = ev
                    .expected
                    .keys()
                    .filter(|l| !vec.iter().any(|s| &s.labels == *l))
                    .map(|l| l.to_string())
                    .collect();
                return Err(format!("expected metrics not found: {missing:?}"));
            }
            Ok(())
        }
        Value::Scalar { v, .. } => {
            let Some(e) = ev.scalar else {
                return Err(format!(
                    "expected vector or matrix result, but got scalar {v}"
                ));
            };
            if !almost_equal(e, *v) {
                return Err(format!("expected scalar {e} but got {v}"));
            }
            Ok(())
        }
        Value::String { s, .. } => {
            if ev.string.as_deref() != Some(s.as_str()) {
                return Err(format!("expected string {:?} but got {s:?}", ev.string));
            }
            Ok(())
        }
    }
}

const AT_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "end",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "range",
    "start",
    "step",
    "time",
    "timestamp",
];

fn system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Pins `@ ts` on every selector and subquery lacking one (not below a
/// subquery that has one) and returns the re-serialized query at the
/// evaluation times Prometheus's runner uses.
fn at_modifier_cases(expr: &str, ts: i64) -> Vec<(String, i64)> {
    let Ok(mut e) = super::limits::parse_expr(expr) else {
        return Vec::new();
    };
    let mut unsafe_fn = false;
    pin(&mut e, ts, &mut unsafe_fn);
    if unsafe_fn {
        return Vec::new();
    }
    let text = e.to_string();
    let times = if ts == 0 {
        vec![-1000, 0, 1000]
    } else {
        vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
    };
    times.into_iter().map(|t| (text.clone(), t)).collect()
}

fn pin(e: &mut Expr, ts: i64, unsafe_fn: &mut bool) {
    match e {
        Expr::VectorSelector(vs) if vs.at.is_none() => {
            vs.at = Some(AtModifier::At(system_time(ts)));
        }
        Expr::MatrixSelector(ms) if ms.vs.at.is_none() => {
            ms.vs.at = Some(AtModifier::At(system_time(ts)));
        }
        Expr::Subquery(sq) => {
            if sq.at.is_none() {
                sq.at = Some(AtModifier::At(system_time(ts)));
            }
            // Selectors below a pinned subquery are evaluated relative to
            // it and keep their own times.
            check_unsafe(&sq.expr, unsafe_fn);
        }
        Expr::Call(c) => {
            if AT_UNSAFE.contains(&c.func.name) {
                *unsafe_fn = true;
            }
            for a in c.args.args.iter_mut() {
                pin(a, ts, unsafe_fn);
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = a.param.as_mut() {
                pin(p, ts, unsafe_fn);
            }
            pin(&mut a.expr, ts, unsafe_fn);
        }
        Expr::Binary(b) => {
            pin(&mut b.lhs, ts, unsafe_fn);
            pin(&mut b.rhs, ts, unsafe_fn);
        }
        Expr::Paren(p) => pin(&mut p.expr, ts, unsafe_fn),
        Expr::Unary(u) => pin(&mut u.expr, ts, unsafe_fn),
        _ => {}
    }
}

fn check_unsafe(e: &Expr, unsafe_fn: &mut bool) {
    match e {
        Expr::Call(c) => {
            if AT_UNSAFE.contains(&c.func.name) {
                *unsafe_fn = true;
            }
            for a in &c.args.args {
                check_unsafe(a, unsafe_fn);
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                check_unsafe(p, unsafe_fn);
            }
            check_unsafe(&a.expr, unsafe_fn);
        }
        Expr::Binary(b) => {
            check_unsafe(&b.lhs, unsafe_fn);
            check_unsafe(&b.rhs, unsafe_fn);
        }
        Expr::Paren(p) => check_unsafe(&p.expr, unsafe_fn),
        Expr::Unary(u) => check_unsafe(&u.expr, unsafe_fn),
        Expr::Subquery(s) => check_unsafe(&s.expr, unsafe_fn),
        _ => {}
    }
}
