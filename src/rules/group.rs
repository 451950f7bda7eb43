//! Evaluating a rule group at one timestamp: recording rules write their
//! results (and stale markers for series that vanished), alerting rules
//! run Prometheus's alert state machine and write `ALERTS` and
//! `ALERTS_FOR_STATE`. Scheduling is the caller's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::expand::{AlertData, expand_alert_template};
use super::file::RuleGroup;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, stale_nan};
use crate::promql::{Engine, Query, QueryOptions, ReadCache, Value};
use crate::storage::{Appender, Head};

/// How long a resolved alert is kept (and re-sent) after it resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Where an alert is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    /// Resolved, kept for [`RESOLVED_RETENTION_MS`].
    Inactive,
    /// Active, waiting out `for`.
    Pending,
    /// Active for at least `for`.
    Firing,
}

impl AlertState {
    /// The `alertstate` label value.
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of an alerting rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels (including `alertname`).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// State.
    pub state: AlertState,
    /// The last value of the expression.
    pub value: f64,
    /// When it became active (ms).
    pub active_at: i64,
    /// When it started firing.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// When it was last sent.
    pub last_sent_at: Option<i64>,
    /// Since when it has been kept firing by `keep_firing_for`.
    pub keep_firing_since: Option<i64>,
}

/// A recording rule.
#[derive(Debug)]
pub struct RecordingRule {
    /// The output metric name.
    pub name: String,
    query: Query,
    labels: BTreeMap<String, String>,
    written: HashSet<Labels>,
}

/// An alerting rule with its active alerts.
#[derive(Debug)]
pub struct AlertingRule {
    /// The alert name.
    pub name: String,
    query: Query,
    for_ms: i64,
    keep_firing_for_ms: i64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    /// Active (pending, firing) and recently resolved alerts.
    pub active: HashMap<Labels, Alert>,
    written: HashSet<Labels>,
}

/// A rule of a group.
#[derive(Debug)]
pub enum Rule {
    /// `record:`
    Recording(RecordingRule),
    /// `alert:`
    Alerting(AlertingRule),
}

impl Rule {
    /// The record or alert name.
    pub fn name(&self) -> &str {
        match self {
            Rule::Recording(r) => &r.name,
            Rule::Alerting(a) => &a.name,
        }
    }
}

/// A group ready to evaluate.
#[derive(Debug)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// File it came from.
    pub file: String,
    /// Evaluation interval in ms.
    pub interval_ms: i64,
    /// Query offset in ms.
    pub query_offset_ms: i64,
    /// Series/alert limit per rule (0 = none).
    pub limit: usize,
    /// The rules in order.
    pub rules: Vec<Rule>,
}

/// What rules evaluate against.
pub struct EvalEnv<'a> {
    /// The PromQL engine.
    pub engine: &'a Engine,
    /// The store results are read from and written to.
    pub head: &'a Arc<Head>,
    /// The config's external labels.
    pub external_labels: BTreeMap<String, String>,
    /// `--web.external-url`.
    pub external_url: String,
}

fn millis(d: Option<crate::config::PromDuration>) -> i64 {
    d.map(|d| d.as_millis()).unwrap_or(0)
}

impl Group {
    /// Builds a group from its file form; rule expressions are parsed
    /// again (the file was validated already).
    pub fn new(file: &str, g: &RuleGroup, default_interval_ms: i64) -> Result<Group, String> {
        let mut rules = Vec::with_capacity(g.rules.len());
        for r in &g.rules {
            let query = Query::parse(&r.expr).map_err(|e| format!("{}: {e}", r.name()))?;
            let mut labels = g.labels.clone();
            labels.extend(r.labels.clone());
            rules.push(match (&r.record, &r.alert) {
                (Some(rec), _) => Rule::Recording(RecordingRule {
                    name: rec.clone(),
                    query,
                    labels,
                    written: HashSet::new(),
                }),
                (None, Some(alert)) => Rule::Alerting(AlertingRule {
                    name: alert.clone(),
                    query,
                    for_ms: millis(r.for_),
                    keep_firing_for_ms: millis(r.keep_firing_for),
                    labels,
                    annotations: r.annotations.clone(),
                    active: HashMap::new(),
                    written: HashSet::new(),
                }),
                (None, None) => return Err("rule without record or alert".into()),
            });
        }
        Ok(Group {
            name: g.name.clone(),
            file: file.to_string(),
            interval_ms: g
                .interval
                .map(|d| d.as_millis())
                .unwrap_or(default_interval_ms),
            query_offset_ms: millis(g.query_offset),
            limit: g.limit as usize,
            rules,
        })
    }

    /// Evaluates every rule at `ts` (ms), in order, each rule's output
    /// committed before the next runs so later rules see it. Returns the
    /// errors by rule name; a failing rule does not stop the group.
    pub fn eval(&mut self, env: &EvalEnv<'_>, ts: i64) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        let at = ts - self.query_offset_ms;
        // Inputs several rules share are read once for the whole group.
        let cache = Arc::new(ReadCache::new());
        if self.rules.len() > 1 {
            let queries: Vec<&Query> = self
                .rules
                .iter()
                .map(|r| match r {
                    Rule::Recording(r) => &r.query,
                    Rule::Alerting(a) => &a.query,
                })
                .collect();
            let lookback = env.engine.options().lookback_delta.as_millis() as i64;
            cache.plan(env.head.as_ref(), &queries, at, lookback);
        }
        let ctx = RuleCtx {
            env,
            opts: QueryOptions {
                cache: Some(cache.clone()),
                ..Default::default()
            },
            cache: &cache,
        };
        for rule in self.rules.iter_mut() {
            let r = match rule {
                Rule::Recording(r) => r.eval(&ctx, at, self.limit),
                Rule::Alerting(a) => a.eval(&ctx, ts, at, self.limit),
            };
            if let Err(e) = r {
                errors.push((rule.name().to_string(), e));
            }
        }
        errors
    }
}

impl Group {
    /// The alerts due to be sent after the evaluation at `ts`, by
    /// Prometheus's rules: pending alerts never; an alert that resolved
    /// since it was last sent at once; otherwise every `resend_delay_ms`.
    /// Marks them sent. Firing alerts carry an `ends_at` of four times the
    /// larger of the resend delay and the group interval ahead, so a
    /// receiver that stops hearing about them resolves them. External
    /// labels are added where the alert does not set them.
    pub fn due_alerts(
        &mut self,
        ts: i64,
        resend_delay_ms: i64,
        external_url: &str,
        external_labels: &BTreeMap<String, String>,
    ) -> Vec<crate::model::Alert> {
        let valid_for = 4 * resend_delay_ms.max(self.interval_ms);
        let base = external_url.trim_end_matches('/');
        let mut out = Vec::new();
        for r in self.rules.iter_mut() {
            let Rule::Alerting(rule) = r else { continue };
            let generator_url = format!(
                "{base}/graph?g0.expr={}&g0.tab=1",
                crate::template::url_escape(rule.query.text())
            );
            for a in rule.active.values_mut() {
                if a.state == AlertState::Pending {
                    continue;
                }
                let last = a.last_sent_at;
                let resolved_unsent = match (a.resolved_at, last) {
                    (Some(r), Some(l)) => r > l,
                    (Some(_), None) => true,
                    _ => false,
                };
                if !resolved_unsent && last.is_some_and(|l| l + resend_delay_ms >= ts) {
                    continue;
                }
                a.last_sent_at = Some(ts);
                let mut labels = a.labels.clone();
                if external_labels.keys().any(|k| labels.get(k).is_none()) {
                    let mut b = labels.builder();
                    for (k, v) in external_labels {
                        if labels.get(k).is_none() {
                            b.set_str(k, v);
                        }
                    }
                    labels = b.build();
                }
                out.push(crate::model::Alert {
                    labels,
                    annotations: a.annotations.clone(),
                    starts_at: a.fired_at.unwrap_or(a.active_at),
                    ends_at: a.resolved_at.unwrap_or(ts + valid_for),
                    generator_url: generator_url.clone(),
                });
            }
        }
        out
    }
}

/// The `query` template function: PromQL at the rule's evaluation time.
fn template_query(env: &EvalEnv<'_>, at: i64) -> crate::template::prometheus::QueryFn {
    let (engine, head) = (env.engine.clone(), env.head.clone());
    Arc::new(move |text: &str| {
        let q = Query::parse(text).map_err(|e| e.to_string())?;
        let r = engine
            .instant(head.as_ref(), &q, at, &QueryOptions::default())
            .map_err(|e| e.to_string())?;
        let row = |l: &Labels| -> BTreeMap<String, String> {
            l.iter()
                .map(|x| (x.name.to_string(), x.value.to_string()))
                .collect()
        };
        match r.value {
            Value::Vector(v) => Ok(v.iter().map(|s| (row(&s.labels), s.v)).collect()),
            Value::Scalar { v, .. } => Ok(vec![(BTreeMap::new(), v)]),
            other => Err(format!(
                "query result is a {}, not a vector or scalar",
                other.type_name()
            )),
        }
    })
}

/// One group evaluation's environment: where rules read and write, and
/// the reads they share.
struct RuleCtx<'a> {
    env: &'a EvalEnv<'a>,
    opts: QueryOptions,
    cache: &'a ReadCache,
}

fn instant_vector(ctx: &RuleCtx<'_>, q: &Query, at: i64) -> Result<Vec<(Labels, f64)>, String> {
    let r = ctx
        .env
        .engine
        .instant(ctx.env.head.as_ref(), q, at, &ctx.opts)
        .map_err(|e| e.to_string())?;
    match r.value {
        Value::Vector(v) => Ok(v
            .into_iter()
            .filter(|s| s.h.is_none())
            .map(|s| (s.labels, s.v))
            .collect()),
        Value::Scalar { v, .. } => Ok(vec![(Labels::empty(), v)]),
        other => Err(format!(
            "rule result is a {}, not an instant vector",
            other.type_name()
        )),
    }
}

/// Writes `samples` at `at`, then stale markers for series written last
/// time and not now; returns the new set of written series. Shared reads
/// the written series belong to are dropped, so later rules see them.
fn write_with_staleness(
    ctx: &RuleCtx<'_>,
    at: i64,
    samples: &[(Labels, f64)],
    previous: &HashSet<Labels>,
) -> Result<HashSet<Labels>, String> {
    let mut app = ctx.env.head.appender_with_capacity(samples.len());
    let mut now = HashSet::with_capacity(samples.len());
    for (l, v) in samples {
        app.append(l, at, *v).map_err(|e| e.to_string())?;
        ctx.cache.invalidate(l);
        now.insert(l.clone());
    }
    for l in previous.difference(&now) {
        app.append(l, at, stale_nan()).map_err(|e| e.to_string())?;
        ctx.cache.invalidate(l);
    }
    app.commit();
    Ok(now)
}

impl RecordingRule {
    pub(crate) fn same_definition(&self, o: &RecordingRule) -> bool {
        self.name == o.name && self.query.text() == o.query.text() && self.labels == o.labels
    }

    pub(crate) fn take_state_from(&mut self, o: &mut RecordingRule) {
        self.written = std::mem::take(&mut o.written);
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        self.query.text()
    }

    /// Labels added to results.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    fn eval(&mut self, ctx: &RuleCtx<'_>, at: i64, limit: usize) -> Result<(), String> {
        let rows = instant_vector(ctx, &self.query, at)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut seen = HashSet::with_capacity(rows.len());
        for (l, v) in rows {
            let mut b: LabelsBuilder = l.builder();
            b.set_str(METRIC_NAME, &self.name);
            for (k, val) in &self.labels {
                if val.is_empty() {
                    b.del(k);
                } else {
                    b.set_str(k, val);
                }
            }
            let l = b.build();
            if !seen.insert(l.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            out.push((l, v));
        }
        if limit > 0 && out.len() > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                out.len()
            ));
        }
        self.written = write_with_staleness(ctx, at, &out, &self.written)?;
        Ok(())
    }
}

impl AlertingRule {
    pub(crate) fn same_definition(&self, o: &AlertingRule) -> bool {
        self.name == o.name && self.query.text() == o.query.text()
    }

    pub(crate) fn take_state_from(&mut self, o: &mut AlertingRule) {
        self.active = std::mem::take(&mut o.active);
        self.written = std::mem::take(&mut o.written);
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        self.query.text()
    }

    /// `for` in ms.
    pub fn for_ms(&self) -> i64 {
        self.for_ms
    }

    /// `keep_firing_for` in ms.
    pub fn keep_firing_for_ms(&self) -> i64 {
        self.keep_firing_for_ms
    }

    /// Label templates.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// Annotation templates.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.annotations
    }

    fn eval(&mut self, ctx: &RuleCtx<'_>, ts: i64, at: i64, limit: usize) -> Result<(), String> {
        let env = ctx.env;
        let rows = instant_vector(ctx, &self.query, at)?;
        let now_s = ts as f64 / 1000.0;
        let query_fn = template_query(env, at);
        let mut current: HashMap<Labels, (f64, BTreeMap<String, String>)> = HashMap::new();
        for (l, v) in rows {
            let data = AlertData {
                labels: l
                    .iter()
                    .filter(|x| &*x.name != METRIC_NAME)
                    .map(|x| (x.name.to_string(), x.value.to_string()))
                    .collect(),
                external_labels: env.external_labels.clone(),
                external_url: env.external_url.clone(),
                value: v,
            };
            let mut b = l.builder();
            b.del(METRIC_NAME);
            for (k, t) in &self.labels {
                let val =
                    expand_alert_template(t, &self.name, &data, now_s, Some(query_fn.clone()));
                if val.is_empty() {
                    b.del(k);
                } else {
                    b.set_str(k, &val);
                }
            }
            b.set_str("alertname", &self.name);
            let labels = b.build();
            let annotations = self
                .annotations
                .iter()
                .map(|(k, t)| {
                    (
                        k.clone(),
                        expand_alert_template(t, &self.name, &data, now_s, Some(query_fn.clone())),
                    )
                })
                .collect();
            if current.insert(labels, (v, annotations)).is_some() {
                return Err(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
            }
        }
        for (labels, (v, annotations)) in &current {
            match self.active.get_mut(labels) {
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = *v;
                    a.annotations = annotations.clone();
                }
                _ => {
                    self.active.insert(
                        labels.clone(),
                        Alert {
                            labels: labels.clone(),
                            annotations: annotations.clone(),
                            state: AlertState::Pending,
                            value: *v,
                            active_at: ts,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }
        let mut active_pending = 0usize;
        let mut remove = Vec::new();
        for (labels, a) in self.active.iter_mut() {
            if !current.contains_key(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(ts);
                    keep_firing = ts - since < self.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| ts - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(labels.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_pending += 1;
            if a.state == AlertState::Pending && ts - a.active_at >= self.for_ms {
                a.state = AlertState::Firing;
                a.fired_at = Some(ts);
            }
        }
        for l in remove {
            self.active.remove(&l);
        }
        if limit > 0 && active_pending > limit {
            self.active.clear();
            return Err(format!(
                "exceeded limit of {limit} with {active_pending} alerts"
            ));
        }
        // ALERTS and ALERTS_FOR_STATE for pending and firing alerts.
        let mut out = Vec::new();
        for a in self.active.values() {
            if a.state == AlertState::Inactive {
                continue;
            }
            let mut b = a.labels.builder();
            b.set_str(METRIC_NAME, "ALERTS");
            b.set_str("alertstate", a.state.as_str());
            out.push((b.build(), 1.0));
            let mut b = a.labels.builder();
            b.set_str(METRIC_NAME, "ALERTS_FOR_STATE");
            out.push((b.build(), (a.active_at / 1000) as f64));
        }
        self.written = write_with_staleness(ctx, at, &out, &self.written)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{NameValidation, parse_rule_file};
    use crate::storage::Queryable;

    const RULES: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n      - alert: Down\n        expr: job:up:sum == 0\n        for: 2m\n        keep_firing_for: 1m\n        labels: {severity: page, job_copy: '{{ $labels.job }}'}\n        annotations: {summary: '{{ $labels.job }} down, value {{ $value }}'}\n";

    fn setup() -> (Arc<Head>, Group) {
        let rf = parse_rule_file(RULES, "r.yml", NameValidation::Utf8).unwrap();
        let g = Group::new("r.yml", &rf.groups[0], 60_000).unwrap();
        (Arc::new(Head::new()), g)
    }

    fn scrape(head: &Arc<Head>, t: i64, up: f64) {
        let mut a = head.appender();
        a.append(
            &Labels::from_pairs([("__name__", "up"), ("job", "api")]),
            t,
            up,
        )
        .unwrap();
        a.commit();
    }

    fn state(g: &Group) -> Option<(AlertState, Option<i64>, Option<i64>)> {
        let Rule::Alerting(a) = &g.rules[1] else {
            return None;
        };
        a.active
            .values()
            .next()
            .map(|x| (x.state, x.fired_at, x.resolved_at))
    }

    fn alerts_series(head: &Arc<Head>, t: i64) -> Vec<String> {
        let m =
            crate::model::Matcher::new(crate::model::MatchOp::Equal, "__name__", "ALERTS").unwrap();
        head.select(&[m], t, t)
            .into_iter()
            .filter(|s| {
                s.samples
                    .iter()
                    .any(|p| p.t == t && !crate::model::is_stale_nan(p.v))
            })
            .map(|s| s.labels.get("alertstate").unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn alert_lifecycle_with_for_and_keep_firing_for() {
        let (head, mut g) = setup();
        let engine = Engine::default();
        let env = EvalEnv {
            engine: &engine,
            head: &head,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        };
        let min = 60_000;
        // Up: nothing active.
        scrape(&head, 0, 1.0);
        assert!(g.eval(&env, 0).is_empty());
        assert_eq!(state(&g), None);
        // Down at 1m: pending; still pending at 2m; firing at 3m (for: 2m).
        for (t, want) in [
            (1, AlertState::Pending),
            (2, AlertState::Pending),
            (3, AlertState::Firing),
        ] {
            scrape(&head, t * min, 0.0);
            assert!(g.eval(&env, t * min).is_empty());
            assert_eq!(state(&g).map(|s| s.0), Some(want), "at {t}m");
        }
        assert_eq!(state(&g).unwrap().1, Some(3 * min));
        assert_eq!(alerts_series(&head, 3 * min), vec!["firing".to_string()]);
        let Rule::Alerting(a) = &g.rules[1] else {
            unreachable!()
        };
        let alert = a.active.values().next().unwrap();
        assert_eq!(alert.labels.get("severity"), Some("page"));
        assert_eq!(alert.labels.get("job_copy"), Some("api"));
        assert_eq!(alert.annotations["summary"], "api down, value 0");
        // Back up at 4m: kept firing for keep_firing_for (1m) …
        scrape(&head, 4 * min, 1.0);
        g.eval(&env, 4 * min);
        assert_eq!(state(&g).map(|s| s.0), Some(AlertState::Firing));
        // … then resolved at 5m, and ALERTS goes stale.
        scrape(&head, 5 * min, 1.0);
        g.eval(&env, 5 * min);
        assert_eq!(
            state(&g),
            Some((AlertState::Inactive, Some(3 * min), Some(5 * min)))
        );
        assert!(alerts_series(&head, 5 * min).is_empty());
        // Resolved alerts are kept 15 minutes, then dropped.
        scrape(&head, 20 * min, 1.0);
        g.eval(&env, 20 * min);
        assert!(state(&g).is_some());
        scrape(&head, 21 * min, 1.0);
        g.eval(&env, 21 * min);
        assert_eq!(state(&g), None);
    }

    #[test]
    fn alert_templates_can_query() {
        let rf = parse_rule_file(
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          total: '{{ with query \"sum(up)\" }}{{ . | first | value }}{{ end }}'\n          bad: '{{ query \"sum(\" }}'\n",
            "r.yml",
            NameValidation::Utf8,
        )
        .unwrap();
        let mut g = Group::new("r.yml", &rf.groups[0], 60_000).unwrap();
        let head = Arc::new(Head::new());
        let mut a = head.appender();
        for (i, v) in [0.0, 1.0, 1.0].iter().enumerate() {
            let l = Labels::from_pairs([("__name__", "up"), ("i", &*i.to_string())]);
            a.append(&l, 0, *v).unwrap();
        }
        a.commit();
        let engine = Engine::default();
        let env = EvalEnv {
            engine: &engine,
            head: &head,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        };
        assert!(g.eval(&env, 0).is_empty());
        let Rule::Alerting(r) = &g.rules[0] else {
            unreachable!()
        };
        let alert = r.active.values().next().unwrap();
        assert_eq!(alert.annotations["total"], "2");
        assert!(
            alert.annotations["bad"].starts_with("<error expanding template: "),
            "{}",
            alert.annotations["bad"]
        );
    }

    #[test]
    fn recording_rules_write_results_and_stale_markers() {
        let (head, mut g) = setup();
        let engine = Engine::default();
        let env = EvalEnv {
            engine: &engine,
            head: &head,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        };
        scrape(&head, 0, 1.0);
        g.eval(&env, 0);
        let m = crate::model::Matcher::new(crate::model::MatchOp::Equal, "__name__", "job:up:sum")
            .unwrap();
        let got = head.select(std::slice::from_ref(&m), 0, 0);
        assert_eq!(got[0].samples[0].v, 1.0);
        assert_eq!(got[0].labels.get("job"), Some("api"));
        // The input goes away (beyond the lookback): the output gets a
        // stale marker at the next evaluation.
        g.eval(&env, 10 * 60_000);
        let got = head.select(&[m], 10 * 60_000, 10 * 60_000);
        assert!(crate::model::is_stale_nan(got[0].samples[0].v));
    }
}
