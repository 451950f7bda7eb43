//! Runs rule groups: loads `rule_files`, one task per group evaluating on
//! its interval at a phase derived from a hash of the group, and config
//! reloads that keep the alert state of rules that did not change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::file::{NameValidation, RuleError, load_rule_file};
use super::group::{EvalEnv, Group, Rule};
use crate::config::Config;
use crate::model::{Clock, Fnv64};
use crate::promql::Engine;
use crate::storage::Head;

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
    running: Mutex<Vec<Running>>,
}

/// Expands `rule_files` globs and loads every file, sorted by name.
pub fn load_groups(cfg: &Config) -> Result<Vec<Group>, RulesError> {
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
    if errs.is_empty() {
        Ok(groups)
    } else {
        Err(RulesError::Invalid(errs))
    }
}

fn group_key(g: &Group) -> String {
    format!("{};{}", g.file, g.name)
}

impl RuleManager {
    /// A manager with nothing scheduled.
    pub fn new(engine: Arc<Engine>, head: Arc<Head>, clock: Arc<dyn Clock>) -> Self {
        RuleManager {
            engine,
            head,
            clock,
            running: Mutex::new(Vec::new()),
        }
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
        let n = groups.len();
        *running = groups.into_iter().map(|g| self.start(g, cfg)).collect();
        Ok(n)
    }

    fn start(&self, group: Group, cfg: &Config) -> Running {
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
        }));
        let (engine, head, clock) = (self.engine.clone(), self.head.clone(), self.clock.clone());
        let external_labels = cfg.global.external_labels.clone();
        let st = state.clone();
        tokio::spawn(async move {
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
                let st = st.clone();
                let (engine, head, ext) = (engine.clone(), head.clone(), external_labels.clone());
                let started = std::time::Instant::now();
                let done = tokio::task::spawn_blocking(move || {
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    let env = EvalEnv {
                        engine: &engine,
                        head: &head,
                        external_labels: ext,
                        external_url: String::new(),
                    };
                    let errors = s.group.eval(&env, next);
                    for (rule, e) in &errors {
                        tracing::warn!(group = %s.group.name, rule = %rule, error = %e, "rule evaluation failed");
                    }
                    s.errors = errors.into_iter().collect();
                    s.last_eval = next;
                    s.last_duration = started.elapsed().as_secs_f64();
                })
                .await;
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

    /// Stops every group.
    pub fn stop(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for r in running.iter() {
            let _ = r.stop.send(true);
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
