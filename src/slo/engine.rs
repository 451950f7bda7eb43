//! The native part of SLO evaluation: each events SLI's error and total
//! counts accumulate into its `SliWindows` at every evaluation, so the
//! events-weighted error ratio and budget over the whole period come from
//! bounded-memory slots instead of a `rate(...[30d])` that would need 30
//! days of samples in the store. The counts of a step are the SLI's
//! 5-minute rates times the step, so summed over the period they are its
//! increase (to within the 5-minute smoothing at the period's two ends).
//! Windows are persisted under the storage directory.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::model::{Clock, Labels};
use crate::promql::{Engine, Query, QueryOptions, Value};
use crate::storage::{Appender, Head};

use super::{Sli, SliWindows, render_window};

/// File of the SLO windows under the storage directory.
pub const SLO_WINDOWS_FILE: &str = "slo_windows.bin";
/// Counts are kept in thousandths of an event: rates times a step are
/// fractions.
const SCALE: f64 = 1000.0;

/// An events SLI evaluated natively.
struct NativeSlo {
    id: String,
    labels: Vec<(String, String)>,
    period_days: u32,
    budget: f64,
    error: Query,
    total: Query,
}

struct State {
    slos: Vec<NativeSlo>,
    windows: BTreeMap<String, SliWindows>,
    last: Option<i64>,
}

/// Accumulates SLI counts and writes the events-weighted period series.
pub struct SloEngine {
    engine: Arc<Engine>,
    head: Arc<Head>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    state_dir: Option<PathBuf>,
}

/// The scalar value of an instant query, summing a vector's samples
/// (the SLI queries aggregate to one series; an empty result is 0).
fn value_of(engine: &Engine, head: &Head, q: &Query, at: i64) -> Option<f64> {
    let r = engine.instant(head, q, at, &QueryOptions::default()).ok()?;
    match r.value {
        Value::Vector(v) => Some(v.iter().map(|s| s.v).filter(|v| v.is_finite()).sum()),
        Value::Scalar { v, .. } => Some(v),
        _ => None,
    }
}

impl SloEngine {
    /// An engine with no SLOs.
    pub fn new(engine: Arc<Engine>, head: Arc<Head>, clock: Arc<dyn Clock>) -> SloEngine {
        SloEngine {
            engine,
            head,
            clock,
            state: Mutex::new(State {
                slos: Vec::new(),
                windows: BTreeMap::new(),
                last: None,
            }),
            state_dir: None,
        }
    }

    /// Keeps the windows in `dir` (`slo_windows.bin`), read now.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        let path = dir.join(SLO_WINDOWS_FILE);
        match std::fs::read(&path) {
            Ok(b) => match super::windows_from_bytes(&b) {
                Ok(w) => {
                    tracing::info!(slos = w.len(), "SLO windows restored");
                    self.state
                        .get_mut()
                        .unwrap_or_else(|e| e.into_inner())
                        .windows = w;
                }
                Err(e) => {
                    let aside = dir.join(format!("{SLO_WINDOWS_FILE}.corrupt"));
                    let _ = std::fs::rename(&path, &aside);
                    tracing::error!(error = %e, moved_to = %aside.display(), "cannot read the SLO windows; starting without them");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "cannot read the SLO windows"),
        }
        self.state_dir = Some(dir);
        self
    }

    /// Takes the events SLIs of `cfg.slo_files` (the files were checked
    /// when the rules loaded them); windows of SLOs that remain are kept.
    pub fn apply(&self, cfg: &Config) {
        let mut slos = Vec::new();
        // Invalid files were refused when the rules loaded them.
        let specs = super::load_spec_files(&cfg.slo_files).unwrap_or_default();
        for (_, spec) in &specs {
            for slo in &spec.slos {
                let Sli::Events {
                    error_query,
                    total_query,
                } = &slo.sli
                else {
                    continue;
                };
                let q = |t: &str| {
                    render_window(t, "5m")
                        .ok()
                        .and_then(|text| Query::parse(&text).ok())
                };
                let (Some(error), Some(total)) = (q(error_query), q(total_query)) else {
                    continue;
                };
                let mut labels: Vec<(String, String)> = slo.labels.clone().into_iter().collect();
                labels.push(("sloth_id".into(), slo.id.clone()));
                labels.push(("sloth_service".into(), spec.service.clone()));
                labels.push(("sloth_slo".into(), slo.name.clone()));
                slos.push(NativeSlo {
                    id: slo.id.clone(),
                    labels,
                    period_days: slo.period_days,
                    budget: (100.0 - slo.objective) / 100.0,
                    error,
                    total,
                });
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.windows.retain(|id, _| slos.iter().any(|s| &s.id == id));
        st.slos = slos;
    }

    /// One evaluation at the clock's now: counts since the last one go
    /// into each SLI's windows, and the period series are written.
    pub fn evaluate(&self) {
        let now = self.clock.now_millis();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let step_s = st
            .last
            .map_or(0.0, |l| ((now - l) as f64 / 1000.0).clamp(0.0, 3600.0));
        st.last = Some(now);
        let mut out: Vec<(Labels, f64)> = Vec::new();
        let State { slos, windows, .. } = &mut *st;
        for s in slos.iter() {
            let w = windows
                .entry(s.id.clone())
                .or_insert_with(|| SliWindows::new(false, s.period_days, now));
            if step_s > 0.0 {
                let (Some(e), Some(t)) = (
                    value_of(&self.engine, &self.head, &s.error, now),
                    value_of(&self.engine, &self.head, &s.total, now),
                ) else {
                    continue;
                };
                let scaled = |rate: f64| (rate.max(0.0) * step_s * SCALE).round() as u64;
                w.observe_events(now, scaled(e), scaled(t));
            }
            let st = w.window(now, s.period_days as i64 * 86_400_000);
            let Some(ratio) = st.error_ratio() else {
                continue;
            };
            let period = format!("{}d", s.period_days);
            let with = |name: &str| {
                let mut l = s.labels.clone();
                l.push(("__name__".into(), name.into()));
                Labels::from_pairs(l)
            };
            out.push((
                with(&format!("slo:sli_error_events:ratio_rate{period}")),
                ratio,
            ));
            if s.budget > 0.0 {
                out.push((
                    with("slo:period_error_budget_remaining_events:ratio"),
                    1.0 - ratio / s.budget,
                ));
            }
        }
        drop(st);
        if out.is_empty() {
            return;
        }
        let mut app = self.head.appender();
        for (l, v) in &out {
            let _ = app.append(l, now, *v);
        }
        app.commit();
    }

    /// Writes the windows (with the head's snapshots and at shutdown).
    pub fn save(&self) {
        let Some(dir) = &self.state_dir else { return };
        let b = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.windows.is_empty() {
                return;
            }
            super::windows_to_bytes(&st.windows)
        };
        if let Err(e) = crate::model::write_atomic(dir, SLO_WINDOWS_FILE, &b) {
            tracing::error!(error = %e, "cannot save the SLO windows");
        }
    }
}
