//! Rule unit tests in promtool's format (`promtool test rules`): input
//! series in the expanding notation, rule groups evaluated every
//! `evaluation_interval` from the start time, firing alerts compared at
//! `alert_rule_test` times, and `promql_expr_test` queries run at the end.
//! Failures are reported with promtool's wording so existing CI logs read
//! the same. argus adds partial label matching for alerts (opt-in per
//! test), JUnit XML and a list of alerting rules no test exercised.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Deserializer};

use super::file::{NameValidation, load_rule_file_with};
use super::group::{AlertState, EvalEnv, Group, Rule};
use crate::config::PromDuration;
use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, parse_rfc3339, stale_nan};
use crate::promql::series_notation::{SeqValue, parse_histogram, parse_labels, parse_values};
use crate::promql::{Engine, EngineOptions, Query, QueryOptions, Value};
use crate::storage::{Appender, Head};

/// A YAML scalar read as text, whatever its YAML type (`values: 1`,
/// `eval_time: 0`), as Go's YAML library reads scalars into strings.
#[derive(Clone, Debug, Default, PartialEq)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Asking for a string gets the scalar's text as written: `0x10`
        // stays the series notation, not the number 16.
        String::deserialize(d).map(Scalar)
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<PromDuration, D::Error> {
    // A null is Go's zero duration.
    let Some(s) = Option::<Scalar>::deserialize(d)? else {
        return Ok(PromDuration::default());
    };
    crate::config::parse_duration(&s.0)
        .map(PromDuration)
        .map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PromDuration>, D::Error> {
    de_duration(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    tests: Vec<TestGroup>,
    #[serde(default)]
    fuzzy_compare: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, deserialize_with = "de_opt_duration")]
    interval: Option<PromDuration>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    start_timestamp: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    #[serde(default)]
    series: String,
    #[serde(default)]
    values: Scalar,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(default, deserialize_with = "de_duration")]
    eval_time: PromDuration,
    #[serde(default)]
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
    /// argus: expected labels and annotations need only be a subset of
    /// the alert's (Prometheus #7370).
    #[serde(default)]
    partial_match: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    #[serde(default)]
    expr: String,
    #[serde(default, deserialize_with = "de_duration")]
    eval_time: PromDuration,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: Option<Scalar>,
    #[serde(default)]
    histogram: String,
}

/// How to run unit tests.
#[derive(Clone, Debug, Default)]
pub struct UnitTestOptions {
    /// Only test groups whose name matches (promtool's `--run`).
    pub run: Option<regex::Regex>,
    /// Ignore keys Prometheus does not read in the rule files.
    pub ignore_unknown_fields: bool,
}

/// The outcome of one test group.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupOutcome {
    /// The group's `name`, or `unnamed#N`.
    pub name: String,
    /// Failures, each in promtool's wording.
    pub failures: Vec<String>,
    /// Seconds it took.
    pub seconds: f64,
}

/// An alerting rule the tests loaded.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertRuleRef {
    /// Rule file.
    pub file: String,
    /// Group name.
    pub group: String,
    /// Alert name.
    pub alert: String,
}

/// The outcome of one unit-test file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileOutcome {
    /// The file as given.
    pub file: String,
    /// An error that stopped the file before its groups ran (unreadable,
    /// not valid YAML, repeated group in `group_eval_order`).
    pub error: Option<String>,
    /// Each test group that ran.
    pub groups: Vec<GroupOutcome>,
    /// Alerting rules of the rule files the tests loaded.
    pub alert_rules: BTreeSet<AlertRuleRef>,
    /// Alert names some `alert_rule_test` checked.
    pub tested_alerts: BTreeSet<String>,
}

impl FileOutcome {
    /// True when nothing failed.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.groups.iter().all(|g| g.failures.is_empty())
    }

    /// Every failure, in order, file-level error first.
    pub fn failures(&self) -> Vec<String> {
        self.error
            .iter()
            .cloned()
            .chain(self.groups.iter().flat_map(|g| g.failures.iter().cloned()))
            .collect()
    }
}

/// The test file's YAML, errors as `FILE:LINE:COL: message`.
fn parse_test_yaml(src: &str, file: &str) -> Result<TestFile, String> {
    crate::config::yaml::from_str(src).map_err(|e| {
        let positions = crate::config::Positions::index(src);
        let (pos, _, msg) = crate::config::yaml_error_parts(&e, &positions);
        match pos {
            Some(p) => format!("{file}:{}:{}: {msg}", p.line, p.col),
            None => format!("{file}: {msg}"),
        }
    })
}

/// Reads a unit-test file's text as [`run_file`] does before it
/// evaluates anything: the YAML and every input series in the series
/// notation. The fuzz target for test files calls it.
pub fn check_test_text(src: &str, file: &str) -> Result<(), String> {
    let tf = parse_test_yaml(src, file)?;
    for g in &tf.tests {
        for s in &g.input_series {
            parse_labels(&s.series).map_err(|e| format!("{:?}: {e}", s.series))?;
            parse_values(&s.values.0).map_err(|e| format!("{:?}: {e}", s.series))?;
        }
    }
    Ok(())
}

/// Runs one unit-test file.
pub fn run_file(path: &Path, opts: &UnitTestOptions) -> FileOutcome {
    let mut out = FileOutcome {
        file: path.display().to_string(),
        ..Default::default()
    };
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            out.error = Some(format!("open {}: {e}", path.display()));
            return out;
        }
    };
    let tf = match parse_test_yaml(&src, &path.display().to_string()) {
        Ok(t) => t,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut rule_files: Vec<PathBuf> = Vec::new();
    for rf in &tf.rule_files {
        let p = if Path::new(rf).is_absolute() || rf.is_empty() {
            PathBuf::from(rf)
        } else {
            base.join(rf)
        };
        let pattern = p.display().to_string();
        match glob::glob(&pattern) {
            Ok(paths) => {
                let mut found: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                if found.is_empty() {
                    eprintln!("  WARNING: no file match pattern {pattern}");
                }
                found.sort();
                rule_files.extend(found);
            }
            Err(e) => {
                out.error = Some(format!("{pattern}: {e}"));
                return out;
            }
        }
    }
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    for (i, g) in tf.group_eval_order.iter().enumerate() {
        if order.insert(g.clone(), i).is_some() {
            out.error = Some(format!("group name repeated in evaluation order: {g}"));
            return out;
        }
    }
    let eval_interval = tf
        .evaluation_interval
        .filter(|d| !d.0.is_zero())
        .map(|d| d.as_millis())
        .unwrap_or(60_000);
    for t in &tf.tests {
        out.tested_alerts
            .extend(t.alert_rule_test.iter().map(|a| a.alertname.clone()));
    }
    for (i, tg) in tf.tests.iter().enumerate() {
        if let Some(re) = &opts.run {
            if !re.is_match(&tg.name) {
                continue;
            }
        }
        let name = if tg.name.is_empty() {
            format!("unnamed#{i}")
        } else {
            tg.name.clone()
        };
        let started = std::time::Instant::now();
        let ctx = GroupCtx {
            eval_interval,
            order: &order,
            rule_files: &rule_files,
            fuzzy: tf.fuzzy_compare,
            opts,
        };
        let failures = ctx.run(tg, &mut out.alert_rules);
        out.groups.push(GroupOutcome {
            name,
            failures,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    out
}

struct GroupCtx<'a> {
    eval_interval: i64,
    order: &'a BTreeMap<String, usize>,
    rule_files: &'a [PathBuf],
    fuzzy: bool,
    opts: &'a UnitTestOptions,
}

/// Input samples of one series, consumed as evaluation time advances.
struct Input {
    labels: Labels,
    samples: Vec<(i64, SeqValue)>,
    next: usize,
}

impl GroupCtx<'_> {
    fn run(&self, tg: &TestGroup, alert_rules: &mut BTreeSet<AlertRuleRef>) -> Vec<String> {
        let mint = match &tg.start_timestamp {
            None => 0,
            Some(s) => match parse_start(&s.0) {
                Ok(t) => t,
                Err(e) => return vec![e],
            },
        };
        let interval = tg
            .interval
            .filter(|d| !d.0.is_zero())
            .map(|d| d.as_millis())
            .unwrap_or(self.eval_interval);
        // Input series.
        let mut inputs = Vec::with_capacity(tg.input_series.len());
        for s in &tg.input_series {
            let labels = match parse_labels(&s.series) {
                Ok(l) => l,
                Err(e) => return vec![format!("{:?}: {e}", s.series)],
            };
            let vals = match parse_values(&s.values.0) {
                Ok(v) => v,
                Err(e) => return vec![format!("{:?}: {e}", s.series)],
            };
            let samples = vals
                .into_iter()
                .enumerate()
                .filter(|(_, v)| *v != SeqValue::Omitted)
                .map(|(k, v)| (mint + k as i64 * interval, v))
                .collect();
            inputs.push(Input {
                labels,
                samples,
                next: 0,
            });
        }
        // Rule groups, ordered by group_eval_order (groups it does not
        // name count as position 0, as in promtool).
        let mut groups: Vec<Group> = Vec::new();
        let mut errs = Vec::new();
        for f in self.rule_files {
            match load_rule_file_with(f, NameValidation::Utf8, self.opts.ignore_unknown_fields) {
                Ok(rf) => {
                    for g in &rf.groups {
                        match Group::new(&f.display().to_string(), g, interval) {
                            Ok(g) => groups.push(g),
                            Err(e) => errs.push(format!("{}: {e}", f.display())),
                        }
                    }
                }
                Err(es) => errs.extend(es.iter().map(|e| e.to_string())),
            }
        }
        if !errs.is_empty() {
            return errs;
        }
        groups.sort_by_key(|g| self.order.get(&g.name).copied().unwrap_or(0));
        for g in &groups {
            for r in &g.rules {
                if let Rule::Alerting(a) = r {
                    alert_rules.insert(AlertRuleRef {
                        file: g.file.clone(),
                        group: g.name.clone(),
                        alert: a.name.clone(),
                    });
                }
            }
        }
        let head = Arc::new(Head::new());
        let engine = Engine::new(EngineOptions {
            default_subquery_step: std::time::Duration::from_millis(
                self.eval_interval.max(1) as u64
            ),
            ..EngineOptions::default()
        });
        let env = EvalEnv {
            engine: &engine,
            head: &head,
            external_labels: tg.external_labels.clone(),
            external_url: tg.external_url.clone(),
        };
        let mut failures = Vec::new();
        for a in &tg.alert_rule_test {
            if a.alertname.is_empty() {
                let in_group = if tg.name.is_empty() {
                    String::new()
                } else {
                    format!(" (in TestGroup {})", tg.name)
                };
                return vec![format!(
                    "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                    a.eval_time
                )];
            }
        }
        let mut alert_times: Vec<i64> = tg
            .alert_rule_test
            .iter()
            .map(|a| a.eval_time.as_millis())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        alert_times.sort_unstable();
        let maxt = mint
            + tg.alert_rule_test
                .iter()
                .map(|a| a.eval_time.as_millis())
                .chain(tg.promql_expr_test.iter().map(|e| e.eval_time.as_millis()))
                .max()
                .unwrap_or(0);
        let mut curr = 0;
        let mut ts = mint;
        while ts <= maxt {
            if let Err(e) = append_till(&head, &mut inputs, ts) {
                failures.push(e);
            }
            let mut eval_errs = Vec::new();
            for g in groups.iter_mut() {
                for (rule, e) in g.eval(&env, ts) {
                    eval_errs.push(format!(
                        "    rule: {rule}, time: {}, err: {e}",
                        go_duration(ts)
                    ));
                }
            }
            if !eval_errs.is_empty() {
                failures.extend(eval_errs);
                return failures;
            }
            while curr < alert_times.len()
                && ts - mint <= alert_times[curr]
                && alert_times[curr] < ts - mint + self.eval_interval
            {
                let t = alert_times[curr];
                for case in tg
                    .alert_rule_test
                    .iter()
                    .filter(|a| a.eval_time.as_millis() == t)
                {
                    if let Some(f) = self.check_alerts(tg, case, &groups) {
                        failures.push(f);
                    }
                }
                curr += 1;
            }
            ts += self.eval_interval.max(1);
        }
        for case in &tg.promql_expr_test {
            if let Some(f) = self.check_expr(case, &engine, &head, mint) {
                failures.push(f);
            }
        }
        failures
    }

    fn check_alerts(&self, tg: &TestGroup, case: &AlertTest, groups: &[Group]) -> Option<String> {
        let mut got: Vec<(Labels, Labels)> = Vec::new();
        for g in groups {
            for r in &g.rules {
                let Rule::Alerting(a) = r else { continue };
                if a.name != case.alertname {
                    continue;
                }
                for al in a.active.values() {
                    if al.state == AlertState::Firing {
                        got.push((
                            al.labels.clone(),
                            Labels::from_pairs(
                                al.annotations.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                            ),
                        ));
                    }
                }
            }
        }
        let mut exp: Vec<(Labels, Labels)> = case
            .exp_alerts
            .iter()
            .map(|e| {
                let mut l = e.exp_labels.clone();
                l.insert("alertname".into(), case.alertname.clone());
                // Kept as written, sorted by the map: an expected label or
                // annotation with an empty value (`bogus:`) stays, so it
                // never matches, as in promtool.
                let kept = |m: &BTreeMap<String, String>| {
                    Labels::from_sorted(
                        m.iter()
                            .map(|(k, v)| crate::model::Label::new(k.as_str(), v.as_str()))
                            .collect(),
                    )
                };
                (kept(&l), kept(&e.exp_annotations))
            })
            .collect();
        got.sort();
        exp.sort();
        let same = if case.partial_match {
            partial_match(&exp, &got)
        } else {
            exp == got
        };
        if same {
            return None;
        }
        let name = if tg.name.is_empty() {
            String::new()
        } else {
            format!("    name: {},\n", tg.name)
        };
        let indent = "            ";
        Some(format!(
            "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
            case.alertname,
            case.eval_time,
            indent_lines(&alerts_string(&exp), indent),
            indent_lines(&alerts_string(&got), indent)
        ))
    }

    fn check_expr(
        &self,
        case: &ExprTest,
        engine: &Engine,
        head: &Arc<Head>,
        mint: i64,
    ) -> Option<String> {
        let at = mint + case.eval_time.as_millis();
        let fail = |e: String| {
            Some(format!(
                "    expr: {}, time: {}, err: {e}",
                go_quote(&case.expr),
                case.eval_time
            ))
        };
        let q = match Query::parse(&case.expr) {
            Ok(q) => q,
            Err(e) => return fail(e.to_string()),
        };
        let got: Vec<(Labels, f64, Option<String>)> =
            match engine.instant(head.as_ref(), &q, at, &QueryOptions::default()) {
                Err(e) => return fail(e.to_string()),
                Ok(r) => match r.value {
                    Value::Vector(v) => v
                        .into_iter()
                        .map(|s| (s.labels, s.v, s.h.map(|h| test_expression(&h))))
                        .collect(),
                    Value::Scalar { v, .. } => vec![(Labels::empty(), v, None)],
                    _ => return fail("rule result is not a vector or scalar".into()),
                },
            };
        let mut exp: Vec<(Labels, f64, Option<String>)> = Vec::new();
        for s in &case.exp_samples {
            let parsed = parse_labels(&s.labels).and_then(|l| {
                if s.histogram.is_empty() {
                    let v = match &s.value {
                        None => 0.0,
                        Some(v) => parse_float(&v.0)?,
                    };
                    Ok((l, v, None))
                } else {
                    let (h, _) = parse_histogram(s.histogram.trim())?;
                    Ok((l, 0.0, Some(test_expression(&h))))
                }
            });
            match parsed {
                Ok(x) => exp.push(x),
                Err(e) => return fail(format!("labels {}: {e}", go_quote(&s.labels))),
            }
        }
        let by_labels =
            |a: &(Labels, f64, Option<String>), b: &(Labels, f64, Option<String>)| a.0.cmp(&b.0);
        let mut got = got;
        got.sort_by(by_labels);
        exp.sort_by(by_labels);
        let equal = exp.len() == got.len()
            && exp.iter().zip(&got).all(|(e, g)| {
                e.0 == g.0 && e.2 == g.2 && (e.2.is_some() || float_equal(e.1, g.1, self.fuzzy))
            });
        if equal {
            return None;
        }
        Some(format!(
            "    expr: {}, time: {},\n        exp: {}\n        got: {}",
            go_quote(&case.expr),
            case.eval_time,
            samples_string(&exp),
            samples_string(&got)
        ))
    }
}

/// Each expected alert must be contained in a distinct got alert, and
/// there must be as many of each.
fn partial_match(exp: &[(Labels, Labels)], got: &[(Labels, Labels)]) -> bool {
    if exp.len() != got.len() {
        return false;
    }
    let contains =
        |big: &Labels, small: &Labels| small.iter().all(|l| big.get(&l.name) == Some(&*l.value));
    // Small sets: a greedy pass over the most specific expectations first
    // is enough in practice, but try every assignment to be exact.
    fn assign(
        i: usize,
        exp: &[(Labels, Labels)],
        got: &[(Labels, Labels)],
        used: &mut Vec<bool>,
        contains: &dyn Fn(&Labels, &Labels) -> bool,
    ) -> bool {
        if i == exp.len() {
            return true;
        }
        for j in 0..got.len() {
            if !used[j] && contains(&got[j].0, &exp[i].0) && contains(&got[j].1, &exp[i].1) {
                used[j] = true;
                if assign(i + 1, exp, got, used, contains) {
                    return true;
                }
                used[j] = false;
            }
        }
        false
    }
    assign(0, exp, got, &mut vec![false; got.len()], &contains)
}

fn append_till(head: &Arc<Head>, inputs: &mut [Input], ts: i64) -> Result<(), String> {
    let mut app = head.appender();
    let mut err = None;
    for s in inputs.iter_mut() {
        while s.next < s.samples.len() && s.samples[s.next].0 <= ts {
            let (t, v) = &s.samples[s.next];
            let r = match v {
                SeqValue::Value(v) => app.append(&s.labels, *t, *v),
                SeqValue::Stale => app.append(&s.labels, *t, stale_nan()),
                SeqValue::Histogram(h, _) => app.append_histogram(&s.labels, *t, h.clone()),
                SeqValue::Omitted => {
                    s.next += 1;
                    continue;
                }
            };
            if let Err(e) = r {
                err.get_or_insert(format!("{}: {e}", s.labels));
            }
            s.next += 1;
        }
    }
    app.commit();
    err.map_or(Ok(()), Err)
}

fn parse_float(s: &str) -> Result<f64, String> {
    match s.trim() {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        t => t.parse().map_err(|_| format!("invalid value {s:?}")),
    }
}

/// `start_timestamp`: RFC 3339 or Unix seconds (fractions allowed).
fn parse_start(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.trim().parse::<f64>() {
        return Ok((f * 1000.0).round() as i64);
    }
    parse_rfc3339(s.trim()).ok_or_else(|| format!("cannot parse {s:?} to a valid timestamp"))
}

/// promtool's float comparison: exact, or with `fuzzy_compare` one unit
/// in the last place either way.
fn float_equal(a: f64, b: f64, fuzzy: bool) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    fuzzy && (next_toward(a, f64::NEG_INFINITY) == b || next_toward(a, f64::INFINITY) == b)
}

fn next_toward(x: f64, dir: f64) -> f64 {
    if x.is_nan() || x == dir {
        return x;
    }
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if dir > 0.0 { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    let up = (dir > x) == (x > 0.0);
    f64::from_bits(if up { bits + 1 } else { bits - 1 })
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            '\u{7}' => o.push_str("\\a"),
            '\u{8}' => o.push_str("\\b"),
            '\u{c}' => o.push_str("\\f"),
            '\u{b}' => o.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Prometheus's `labels.Labels.String()`: `{a="1", b="2"}`, names that are
/// not legacy-valid quoted.
fn labels_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| {
            let name = if crate::model::is_legacy_label_name(&x.name) {
                x.name.to_string()
            } else {
                go_quote(&x.name)
            };
            format!("{name}={}", go_quote(&x.value))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn alerts_string(a: &[(Labels, Labels)]) -> String {
    if a.is_empty() {
        return "[]".into();
    }
    let one = |l: &(Labels, Labels)| {
        format!(
            "Labels:{}\nAnnotations:{}",
            labels_string(&l.0),
            labels_string(&l.1)
        )
    };
    let mut s = format!("[\n0:{}", indent_lines(&format!("\n{}", one(&a[0])), "  "));
    for (i, x) in a.iter().enumerate().skip(1) {
        s.push_str(&format!(
            ",\n{i}:{}",
            indent_lines(&format!("\n{}", one(x)), "  ")
        ));
    }
    s.push_str("\n]");
    s
}

fn samples_string(s: &[(Labels, f64, Option<String>)]) -> String {
    if s.is_empty() {
        return "nil".into();
    }
    s.iter()
        .map(|(l, v, h)| match h {
            Some(h) => format!("{} {h}", labels_string(l)),
            None => format!("{} {}", labels_string(l), go_float_upper_e(*v)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn go_float_upper_e(v: f64) -> String {
    crate::template::go_float_exp(v, true)
}

fn indent_lines(s: &str, indent: &str) -> String {
    s.split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                format!("{indent}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `time.Duration.String()` of a span in ms: `0s`, `1m0s`, `2h0m0s`,
/// `1.5s`, `500ms`.
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, rem) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rem) = (rem / 60_000, rem % 60_000);
    let (s, frac) = (rem / 1000, rem % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    if h > 0 {
        format!("{sign}{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{sign}{m}m{secs}")
    } else {
        format!("{sign}{secs}")
    }
}

/// Prometheus's `FloatHistogram.TestExpression()`: the histogram as a
/// series-notation literal, compacted into one span per side.
pub fn test_expression(h: &FloatHistogram) -> String {
    use crate::model::histogram::CounterResetHint;
    let g = crate::template::go_float;
    let mut res: Vec<String> = Vec::new();
    if h.schema != 0 {
        res.push(format!("schema:{}", h.schema));
    }
    if h.count != 0.0 {
        res.push(format!("count:{}", g(h.count)));
    }
    if h.sum != 0.0 {
        res.push(format!("sum:{}", g(h.sum)));
    }
    if h.zero_count != 0.0 {
        res.push(format!("z_bucket:{}", g(h.zero_count)));
    }
    if h.zero_threshold != 0.0 {
        res.push(format!("z_bucket_w:{}", g(h.zero_threshold)));
    }
    if h.uses_custom_buckets() {
        let cv: Vec<String> = h.custom_values.iter().map(|v| g(*v)).collect();
        res.push(format!("custom_values:[{}]", cv.join(" ")));
    }
    match h.counter_reset_hint {
        CounterResetHint::Unknown => {}
        CounterResetHint::Reset => res.push("counter_reset_hint:reset".into()),
        CounterResetHint::NotReset => res.push("counter_reset_hint:not_reset".into()),
        CounterResetHint::Gauge => res.push("counter_reset_hint:gauge".into()),
    }
    let mut side = |buckets: &[(i32, f64)], key: &str, off_key: &str| {
        let nz: Vec<&(i32, f64)> = buckets.iter().filter(|b| b.1 != 0.0).collect();
        let (Some(first), Some(last)) = (nz.first(), nz.last()) else {
            return;
        };
        let (lo, hi) = (first.0, last.0);
        let mut dense = vec![0.0; (hi - lo + 1) as usize];
        for &(i, c) in buckets {
            if (lo..=hi).contains(&i) {
                dense[(i - lo) as usize] += c;
            }
        }
        let d: Vec<String> = dense.iter().map(|v| g(*v)).collect();
        res.push(format!("{key}:[{}]", d.join(" ")));
        if lo != 0 {
            res.push(format!("{off_key}:{lo}"));
        }
    };
    side(&h.positive, "buckets", "offset");
    side(&h.negative, "n_buckets", "n_offset");
    format!("{{{{{}}}}}", res.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(7_200_000), "2h0m0s");
        assert_eq!(go_duration(179_999), "2m59.999s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_float_upper_e(1.0), "1E+00");
        assert_eq!(go_float_upper_e(0.0), "0E+00");
        assert_eq!(
            go_float_upper_e(2.9999999999999996),
            "2.9999999999999996E+00"
        );
        assert_eq!(go_float_upper_e(0.0025), "2.5E-03");
        assert_eq!(
            labels_string(&Labels::from_pairs([("__name__", "x"), ("a.b", "q\"")])),
            "{__name__=\"x\", \"a.b\"=\"q\\\"\"}"
        );
        assert!(float_equal(3.0, 2.9999999999999996, true));
        assert!(!float_equal(3.0, 2.9999999999999996, false));
        assert!(!float_equal(3.0, 2.9999999999999987, true));
    }

    #[test]
    fn histogram_test_expression_round_trips() {
        let lit = "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}";
        let (h, _) = parse_histogram(lit).unwrap();
        assert_eq!(test_expression(&h), lit);
    }
}
