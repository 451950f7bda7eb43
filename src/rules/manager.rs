//! Runs rule groups: loads `rule_files`, one task per group evaluating on
//! its interval at a phase derived from a hash of the group, and config
//! reloads that keep the alert state of rules that did not change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::file::{NameValidation, RuleError, load_rule_file, parse_rule_file};
use super::group::{EvalEnv, Group, Rule};
use super::persist::{self, Restored, SavedState};
use crate::config::Config;
use crate::model::{AlertSink, Clock, Fnv64};
use crate::promql::Engine;
use crate::storage::Head;
use crate::telemetry::Metrics;

/// Why rule files could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// A glob pattern is invalid.
    #[error("rule_files: invalid pattern {pattern:?}: {msg}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        msg: String,
    },
    /// Files failed validation.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RuleError>),
}

/// A group and what its last evaluation did.
pub struct GroupState {
    /// The group with its rules and alerts.
    pub group: Group,
    /// Start of the last evaluation (ms), 0 before the first.
    pub last_eval: i64,
    /// How long it took (seconds).
    pub last_duration: f64,
    /// Errors of the last evaluation by rule name.
    pub errors: BTreeMap<String, String>,
    /// Fingerprint of the alert states after the last evaluation.
    fingerprint: u64,
}

struct Running {
    state: Arc<Mutex<GroupState>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Loads and schedules rule groups.
pub struct RuleManager {
    engine: Arc<Engine>,
    head: Arc<Head>,
    clock: Arc<dyn Clock>,
    running: Arc<Mutex<Vec<Running>>>,
    persist: Option<Arc<Persist>>,
    /// No evaluation before this time (ms), set by the first `apply`.
    hold_until: Mutex<Option<i64>>,
    out: Output,
}

/// Where evaluation results go besides the store.
#[derive(Clone)]
struct Output {
    sink: Option<Arc<dyn AlertSink>>,
    resend_delay_ms: i64,
    external_url: String,
    metrics: Option<Arc<Metrics>>,
}

/// Prometheus's default `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND_DELAY_MS: i64 = 60_000;

/// The longest start-up hold, whatever the scrape intervals.
const MAX_WARMUP_MS: i64 = 2 * 60 * 1000;

/// How long after start every target has had its first scrape: each loop
/// starts somewhere within its interval and may take its timeout.
fn warmup_ms(cfg: &Config) -> i64 {
    cfg.scrape_configs
        .iter()
        .map(|sc| sc.interval().as_millis() + sc.timeout().as_millis())
        .max()
        .unwrap_or(0)
        .min(MAX_WARMUP_MS)
}

/// Where alert state is kept and what is waiting to be restored.
struct Persist {
    dir: std::path::PathBuf,
    /// Set once the first `apply` has read the saved state.
    restore_done: std::sync::atomic::AtomicBool,
    /// Signalled when some group's alert state changed.
    changed: tokio::sync::Notify,
    flusher: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
}

impl Persist {
    /// Writes every group's alerts. Errors are logged: the next change
    /// tries again, and evaluation must not stop over a full disk.
    fn save(&self, running: &Mutex<Vec<Running>>, now: i64) {
        let mut st = SavedState::new(now);
        {
            let running = running.lock().unwrap_or_else(|e| e.into_inner());
            for r in running.iter() {
                st.add_group(&r.state.lock().unwrap_or_else(|e| e.into_inner()).group);
            }
        }
        if let Err(e) = st.write(&self.dir) {
            tracing::error!(error = %e, "cannot save alert state");
        }
    }

    /// The saved alerts, once: a damaged file is moved aside (so the next
    /// save does not destroy the evidence) and argus starts without it.
    fn take_restored(&self, now: i64) -> Option<Restored> {
        if self
            .restore_done
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return None;
        }
        match persist::load(&self.dir) {
            Ok(r) => Some(r),
            Err(e) => {
                let from = self.dir.join(persist::ALERTS_FILE);
                let to = self
                    .dir
                    .join(format!("{}.corrupt-{}", persist::ALERTS_FILE, now / 1000));
                let _ = std::fs::rename(&from, &to);
                tracing::error!(error = %e, moved_to = %to.display(), "cannot read saved alert state; starting without it");
                None
            }
        }
    }
}

/// The files `rule_files` names (its globs expanded), sorted, each once.
pub fn rule_file_paths(cfg: &Config) -> Result<Vec<std::path::PathBuf>, RulesError> {
    let mut files = Vec::new();
    for pattern in &cfg.rule_files {
        let paths = glob::glob(pattern).map_err(|e| RulesError::Pattern {
            pattern: pattern.clone(),
            msg: e.to_string(),
        })?;
        files.extend(paths.filter_map(Result::ok));
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Expands `rule_files` globs and loads every file, sorted by name.
pub fn load_groups(cfg: &Config) -> Result<Vec<Group>, RulesError> {
    let files = rule_file_paths(cfg)?;
    let default_ms = cfg.global.evaluation_interval.as_millis();
    let mut groups = Vec::new();
    let mut errs = Vec::new();
    for f in files {
        match load_rule_file(&f, NameValidation::Utf8) {
            Ok(rf) => {
                for g in &rf.groups {
                    match Group::new(&f.display().to_string(), g, default_ms) {
                        Ok(g) => groups.push(g),
                        Err(msg) => errs.push(RuleError {
                            file: f.display().to_string(),
                            pos: None,
                            context: format!("group {:?}", g.name),
                            msg,
                        }),
                    }
                }
            }
            Err(e) => errs.extend(e),
        }
    }
    // SLO specs become the rule groups they generate, with the events-
    // weighted budget beside Sloth's series.
    let opts = crate::slo::GenerateOptions {
        extensions: true,
        native: true,
        ..Default::default()
    };
    let specs = match crate::slo::load_spec_files(&cfg.slo_files) {
        Ok(s) => s,
        Err(es) => {
            errs.extend(es.into_iter().map(|e| RuleError {
                file: e.file,
                pos: e.pos,
                context: e.path,
                msg: e.msg,
            }));
            Vec::new()
        }
    };
    for (name, spec) in specs {
        let fail = |msg: String| RuleError {
            file: name.clone(),
            pos: None,
            context: String::new(),
            msg,
        };
        for (i, slo) in spec.slos.iter().enumerate() {
            if let Some(crate::slo::LatencySource::Probe {
                name: probe,
                threshold,
            }) = &slo.latency
            {
                let ctx = |field: &str| format!("slos[{i}].sli.probe.{field}");
                match cfg.probe_configs.iter().find(|p| &p.name == probe) {
                    None => errs.push(RuleError {
                        context: ctx("name"),
                        ..fail(format!("no probe_configs entry is named {probe:?}"))
                    }),
                    Some(p) => match threshold {
                        Some(t) if !p.buckets.contains(t) => errs.push(RuleError {
                            context: ctx("threshold"),
                            ..fail(format!(
                                "{t}s is not one of probe {probe:?}'s buckets {:?} (set its `buckets`)",
                                p.buckets
                            ))
                        }),
                        _ => {}
                    },
                }
            }
        }
        let generated = crate::slo::generate(&spec, &opts)
            .and_then(|g| crate::slo::to_yaml(&crate::slo::SpecKind::Prometheus, &g));
        let text = match generated {
            Ok(t) => t,
            Err(e) => {
                errs.push(fail(e));
                continue;
            }
        };
        match parse_rule_file(&text, &name, NameValidation::Utf8) {
            Ok(rf) => {
                for g in &rf.groups {
                    match Group::new(&name, g, default_ms) {
                        Ok(g) => groups.push(g),
                        Err(msg) => errs.push(fail(format!("group {:?}: {msg}", g.name))),
                    }
                }
            }
            Err(e) => errs.extend(e),
        }
    }
    if errs.is_empty() {
        Ok(groups)
    } else {
        Err(RulesError::Invalid(errs))
    }
}

fn group_key(g: &Group) -> String {
    format!("{};{}", g.file, g.name)
}

/// What a group's task needs besides its own state.
struct EvalCtx {
    engine: Arc<Engine>,
    head: Arc<Head>,
    persist: Option<Arc<Persist>>,
    out: Output,
    external_labels: BTreeMap<String, String>,
}

impl EvalCtx {
    /// One evaluation of a group at `ts`: rules, then the alerts due to be
    /// sent, then the persistence check.
    fn eval_once(&self, st: &Mutex<GroupState>, ts: i64, missed: i64) {
        let started = std::time::Instant::now();
        let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
        let env = EvalEnv {
            engine: &self.engine,
            head: &self.head,
            external_labels: self.external_labels.clone(),
            external_url: self.out.external_url.clone(),
        };
        let errors = s.group.eval(&env, ts);
        for (rule, e) in &errors {
            tracing::warn!(group = %s.group.name, rule = %rule, error = %e, "rule evaluation failed");
        }
        if let Some(sink) = &self.out.sink {
            let due = s.group.due_alerts(
                ts,
                self.out.resend_delay_ms,
                &self.out.external_url,
                &self.external_labels,
            );
            if !due.is_empty() {
                sink.send(due);
            }
        }
        s.last_eval = ts;
        s.last_duration = started.elapsed().as_secs_f64();
        if let Some(m) = &self.out.metrics {
            let l = vec![("rule_group".to_string(), group_key(&s.group))];
            m.rule_evaluations
                .get_or_create(&l)
                .inc_by(s.group.rules.len() as u64);
            m.rule_evaluation_failures
                .get_or_create(&l)
                .inc_by(errors.len() as u64);
            m.rule_group_last_duration
                .get_or_create(&l)
                .set(s.last_duration);
            m.rule_group_interval
                .get_or_create(&l)
                .set(s.group.interval_ms as f64 / 1000.0);
            if missed > 0 {
                m.rule_group_iterations_missed
                    .get_or_create(&l)
                    .inc_by(missed as u64);
            }
        }
        s.errors = errors.into_iter().collect();
        let fp = persist::fingerprint(&s.group, ts);
        if fp != s.fingerprint {
            s.fingerprint = fp;
            if let Some(p) = &self.persist {
                p.changed.notify_one();
            }
        }
    }
}

impl RuleManager {
    /// A manager with nothing scheduled.
    pub fn new(engine: Arc<Engine>, head: Arc<Head>, clock: Arc<dyn Clock>) -> Self {
        RuleManager {
            engine,
            head,
            clock,
            running: Arc::new(Mutex::new(Vec::new())),
            persist: None,
            hold_until: Mutex::new(None),
            out: Output {
                sink: None,
                resend_delay_ms: DEFAULT_RESEND_DELAY_MS,
                external_url: String::new(),
                metrics: None,
            },
        }
    }

    /// Sends alerts to `sink` after each evaluation: firing ones again
    /// every `resend_delay_ms`, resolved ones until sent.
    pub fn with_sink(mut self, sink: Arc<dyn AlertSink>, resend_delay_ms: i64) -> Self {
        self.out.sink = Some(sink);
        self.out.resend_delay_ms = resend_delay_ms.max(1);
        self
    }

    /// The URL argus is reached at, for `$externalURL` and alerts'
    /// generator links.
    pub fn with_external_url(mut self, url: &str) -> Self {
        self.out.external_url = url.trim_end_matches('/').to_string();
        self
    }

    /// Records evaluation counts, failures and durations.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.out.metrics = Some(metrics);
        self
    }

    /// Keeps alert state in `dir` (`alerts.json`): restored by the first
    /// [`apply`](Self::apply) before any evaluation, written after every
    /// change (at most once a second) and on [`stop`](Self::stop).
    pub fn with_state_dir(mut self, dir: std::path::PathBuf) -> Self {
        self.persist = Some(Arc::new(Persist {
            dir,
            restore_done: std::sync::atomic::AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            flusher: Mutex::new(None),
        }));
        self
    }

    fn start_flusher(&self, p: &Arc<Persist>) {
        let mut f = p.flusher.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_some() {
            return;
        }
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        *f = Some(tx);
        let (p, running, clock) = (p.clone(), self.running.clone(), self.clock.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = p.changed.notified() => {}
                    _ = rx.changed() => return,
                }
                // Batch: changes of the next second go into the same write.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = rx.changed() => return,
                }
                let (p, running, now) = (p.clone(), running.clone(), clock.now_millis());
                let _ = tokio::task::spawn_blocking(move || p.save(&running, now)).await;
            }
        });
    }

    /// Loads the config's rule files and (re)starts their groups. Rules
    /// whose group, name and expression are unchanged keep their alerts.
    /// On error nothing changes.
    pub fn apply(&self, cfg: &Config) -> Result<usize, RulesError> {
        let mut groups = load_groups(cfg)?;
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for r in running.iter() {
            let _ = r.stop.send(true);
        }
        for g in groups.iter_mut() {
            let key = group_key(g);
            if let Some(old) = running.iter().find(|r| {
                let st = r.state.lock().unwrap_or_else(|e| e.into_inner());
                group_key(&st.group) == key
            }) {
                let mut st = old.state.lock().unwrap_or_else(|e| e.into_inner());
                g.take_state_from(&mut st.group);
            }
        }
        if let Some(p) = &self.persist {
            let now = self.clock.now_millis();
            let t0 = std::time::Instant::now();
            if let Some(mut restored) = p.take_restored(now) {
                let n: usize = groups
                    .iter_mut()
                    .map(|g| restored.restore_into(g, now))
                    .sum();
                if n > 0 {
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    tracing::info!(alerts = n, took_ms = ms, "restored alert state");
                }
            }
            self.start_flusher(p);
            // Rules that went away took their alerts with them.
            p.changed.notify_one();
        }
        // After a start the store holds only what the snapshot had: an
        // evaluation before the first scrapes would see restored alerts'
        // series as absent, resolve them and page again when they return.
        let hold_until = *self
            .hold_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| self.clock.now_millis() + warmup_ms(cfg));
        let n = groups.len();
        *running = groups
            .into_iter()
            .map(|g| self.start(g, cfg, hold_until))
            .collect();
        Ok(n)
    }

    fn start(&self, group: Group, cfg: &Config, hold_until: i64) -> Running {
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let interval = group.interval_ms.max(1);
        let mut h = Fnv64::new();
        h.write(group_key(&group).as_bytes());
        let offset = (h.finish() % interval as u64) as i64;
        let state = Arc::new(Mutex::new(GroupState {
            group,
            last_eval: 0,
            last_duration: 0.0,
            errors: BTreeMap::new(),
            fingerprint: 0,
        }));
        let ctx = Arc::new(EvalCtx {
            engine: self.engine.clone(),
            head: self.head.clone(),
            persist: self.persist.clone(),
            out: self.out.clone(),
            external_labels: cfg.global.external_labels.clone(),
        });
        let clock = self.clock.clone();
        let st = state.clone();
        tokio::spawn(async move {
            let mut prev: Option<i64> = None;
            loop {
                let now = clock.now_millis();
                // The next slot on this group's grid: evaluations land on
                // multiples of the interval shifted by the group's phase.
                let next = ((now - offset).div_euclid(interval) + 1) * interval + offset;
                let wait = Duration::from_millis((next - now).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = rx.changed() => return,
                }
                if *rx.borrow() {
                    return;
                }
                if next < hold_until {
                    continue;
                }
                // Slots that passed while the previous evaluation ran are
                // skipped, not caught up, as in Prometheus.
                let missed = prev.map_or(0, |p| (next - p) / interval - 1);
                prev = Some(next);
                let (st, ctx) = (st.clone(), ctx.clone());
                let done =
                    tokio::task::spawn_blocking(move || ctx.eval_once(&st, next, missed)).await;
                if done.is_err() {
                    tracing::error!("rule group evaluation panicked");
                }
            }
        });
        Running { state, stop: tx }
    }

    /// Calls `f` with each group's state, in file and group order.
    pub fn with_groups<T>(&self, mut f: impl FnMut(&GroupState) -> T) -> Vec<T> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .map(|r| f(&r.state.lock().unwrap_or_else(|e| e.into_inner())))
            .collect()
    }

    /// Stops every group and writes the alert state a last time.
    pub fn stop(&self) {
        {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            for r in running.iter() {
                let _ = r.stop.send(true);
            }
        }
        if let Some(p) = &self.persist {
            if let Some(f) = p.flusher.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = f.send(true);
            }
            p.save(&self.running, self.clock.now_millis());
        }
    }
}

impl Group {
    /// Moves the alert state of rules that are unchanged (same name and
    /// expression) from `old` into this group.
    pub fn take_state_from(&mut self, old: &mut Group) {
        for r in self.rules.iter_mut() {
            for o in old.rules.iter_mut() {
                match (&mut *r, o) {
                    (Rule::Alerting(a), Rule::Alerting(b)) if a.same_definition(b) => {
                        a.take_state_from(b);
                        break;
                    }
                    (Rule::Recording(a), Rule::Recording(b)) if a.same_definition(b) => {
                        a.take_state_from(b);
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
}
