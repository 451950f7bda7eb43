//! The native part of SLO evaluation: what would otherwise need more
//! than a day of samples in the store comes from each SLI's bounded-
//! memory `SliWindows`, accumulated at every evaluation and persisted
//! under the storage directory:
//!
//! - events: the SLI's 5-minute error and total rates times the step, so
//!   summed over a window they are its increase (to within the 5-minute
//!   smoothing at the window's two ends) — the 3-day and events-weighted
//!   period ratios;
//! - the 5-minute error ratio times the step over the step: the time-
//!   weighted average of the 5-minute ratios, Sloth's period ratio (and
//!   the 3-day ratio of a raw SLI);
//! - latencies of histogram SLIs: each step's bucket increases (classic
//!   `_bucket` series or native histograms) spread over their buckets in
//!   the HDR histogram — quantiles of any window to within a bucket.
//!
//! The rule groups generated in native mode leave these series out and
//! read the ones written here.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::model::histogram::FloatHistogram;
use crate::model::{Clock, Labels};
use crate::promql::{Engine, InstantSample, Query, QueryOptions, Value};
use crate::storage::{Appender, Head};

use super::generate::{LATENCY_QUANTILES, NATIVE_FROM_S, window_name};
use super::{LatencySource, Sli, SliWindows, render_window};

/// File of the SLO windows under the storage directory.
pub const SLO_WINDOWS_FILE: &str = "slo_windows.bin";
/// Counts are kept in thousandths of an event: rates times a step are
/// fractions.
const SCALE: f64 = 1000.0;

/// How the 5-minute error ratio of an SLI is read.
enum NativeSli {
    /// Error and total rates.
    Events { error: Query, total: Query },
    /// The ratio itself.
    Raw { ratio: Query },
}

/// A histogram SLI's latency source: its classic buckets and, if the
/// target exposes it so, the native histogram of the same name.
struct LatencyFeed {
    classic: Query,
    native: Query,
}

/// The last cumulative value of one source series.
enum Prev {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

/// An SLO evaluated natively.
struct NativeSlo {
    id: String,
    labels: Vec<(String, String)>,
    period_days: u32,
    budget: f64,
    sli: NativeSli,
    latency: Option<LatencyFeed>,
}

struct State {
    slos: Vec<NativeSlo>,
    /// `events/<id>` (events SLIs; with latencies for histogram SLIs)
    /// and `ratio/<id>` (the time-weighted 5-minute ratio).
    windows: BTreeMap<String, SliWindows>,
    /// Per SLO id, the latency source series' last values (not persisted:
    /// after a restart the first evaluation only primes them).
    prev: HashMap<String, HashMap<Labels, Prev>>,
    last: Option<i64>,
}

/// Accumulates SLI windows and writes the series that come from them.
pub struct SloEngine {
    engine: Arc<Engine>,
    head: Arc<Head>,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    state_dir: Option<PathBuf>,
    /// Paces the windows file's rewrites.
    saved: crate::model::PacedFile,
}

/// The samples of an instant query (empty on error or a non-vector).
fn samples(engine: &Engine, head: &Head, q: &Query, at: i64) -> Option<Vec<InstantSample>> {
    let r = engine.instant(head, q, at, &QueryOptions::default()).ok()?;
    match r.value {
        Value::Vector(v) => Some(v),
        Value::Scalar { t, v } => Some(vec![InstantSample {
            labels: Labels::default(),
            t,
            v,
            h: None,
            drop_name: false,
        }]),
        _ => None,
    }
}

/// The scalar value of an instant query, summing a vector's samples
/// (the SLI queries aggregate to one series; an empty result is 0).
fn value_of(engine: &Engine, head: &Head, q: &Query, at: i64) -> Option<f64> {
    let v = samples(engine, head, q, at)?;
    Some(v.iter().map(|s| s.v).filter(|v| v.is_finite()).sum())
}

/// The bucket increases since `prev` of a histogram's source series
/// (native histograms if there are any, else classic buckets), as
/// (lower, upper, count) in seconds; `prev` becomes the current values.
/// A series that went down restarted from zero (a counter reset). Classic
/// buckets are summed by `le` and then turned from cumulative counts into
/// per-bucket ones; the `+Inf` bucket's observations are put at the
/// highest finite bound (where `histogram_quantile` puts them).
fn bucket_increases(
    classic: Vec<InstantSample>,
    native: Vec<InstantSample>,
    prev: &mut HashMap<Labels, Prev>,
) -> Vec<(f64, f64, u64)> {
    let mut seen: HashMap<Labels, Prev> = HashMap::new();
    let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    // A target exposing both (protobuf with classic buckets kept) would
    // count twice: the native histogram is the finer one.
    let classic = if native.iter().any(|s| s.h.is_some()) {
        Vec::new()
    } else {
        classic
    };
    for s in classic {
        let Some(le) = s.labels.get("le").and_then(|l| l.parse::<f64>().ok()) else {
            continue;
        };
        if s.h.is_some() || !s.v.is_finite() || le.is_nan() {
            continue;
        }
        let inc = match prev.get(&s.labels) {
            Some(Prev::Float(p)) if s.v >= *p => s.v - p,
            Some(_) => s.v,
            None => 0.0,
        };
        // Non-negative floats sort as their bits do.
        let key = le.max(0.0).to_bits();
        by_le.entry(key).or_insert((le.max(0.0), 0.0)).1 += inc;
        seen.insert(s.labels, Prev::Float(s.v));
    }
    let mut out = Vec::new();
    let (mut lower, mut below, mut last_finite) = (0.0, 0.0, 0.0);
    for (_, (le, cum)) in by_le {
        let n = (cum - below).max(0.0).round() as u64;
        if le.is_finite() {
            out.push((lower, le, n));
            lower = le;
            last_finite = le;
        } else {
            out.push((last_finite, last_finite, n));
        }
        below = below.max(cum);
    }
    for s in native {
        let Some(h) = s.h else { continue };
        let inc = match prev.get(&s.labels) {
            Some(Prev::Histogram(p)) if !h.detect_reset(p) => {
                let mut d = (*h).clone();
                match d.sub(p) {
                    Ok(_) => Some(d),
                    Err(_) => None,
                }
            }
            Some(_) => Some((*h).clone()),
            None => None,
        };
        if let Some(d) = inc {
            for b in d.all_buckets() {
                if b.upper > 0.0 && b.count > 0.0 {
                    let upper = if b.upper.is_finite() {
                        b.upper
                    } else {
                        b.lower
                    };
                    out.push((b.lower.max(0.0), upper, b.count.round() as u64));
                }
            }
        }
        seen.insert(s.labels, Prev::Histogram(h));
    }
    *prev = seen;
    out
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
                prev: HashMap::new(),
                last: None,
            }),
            state_dir: None,
            saved: crate::model::PacedFile::default(),
        }
    }

    /// Keeps the windows in `dir` (`slo_windows.bin`), read now.
    pub fn with_state_dir(mut self, dir: PathBuf) -> Self {
        let path = dir.join(SLO_WINDOWS_FILE);
        match std::fs::read(&path) {
            Ok(b) => match super::windows_from_bytes(&b) {
                Ok((w, damage)) => {
                    for d in damage {
                        tracing::error!(file = %path.display(), offset = d.offset, reason = %d.reason, "a damaged record of a state file was skipped; the rest of the file was read");
                    }
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

    /// Takes the SLOs of `cfg.slo_files` (the files were checked when the
    /// rules loaded them); windows of SLOs that remain are kept.
    pub fn apply(&self, cfg: &Config) {
        let mut slos = Vec::new();
        // Invalid files were refused when the rules loaded them.
        let specs = super::load_spec_files(&cfg.slo_files).unwrap_or_default();
        let q = |t: &str| {
            render_window(t, "5m")
                .ok()
                .and_then(|text| Query::parse(&text).ok())
        };
        for (_, spec) in &specs {
            for slo in &spec.slos {
                let sli = match &slo.sli {
                    Sli::Events {
                        error_query,
                        total_query,
                    } => match (q(error_query), q(total_query)) {
                        (Some(error), Some(total)) => NativeSli::Events { error, total },
                        _ => continue,
                    },
                    Sli::Raw { error_ratio_query } => match q(error_ratio_query) {
                        Some(ratio) => NativeSli::Raw { ratio },
                        None => continue,
                    },
                };
                let latency = match &slo.latency {
                    Some(LatencySource::Histogram {
                        histogram,
                        selector,
                    }) => match (
                        q(&format!("{histogram}_bucket{selector}")),
                        q(&format!("{histogram}{selector}")),
                    ) {
                        (Some(classic), Some(native)) => Some(LatencyFeed { classic, native }),
                        _ => None,
                    },
                    _ => None,
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
                    sli,
                    latency,
                });
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Windows of another shape (the SLI gained or lost latencies, or
        // the period changed) start over.
        st.windows.retain(|key, w| {
            slos.iter().any(|s| {
                let fits = match key.strip_prefix("events/") {
                    Some(id) => id == s.id && w.has_latency() == s.latency.is_some(),
                    None => key.strip_prefix("ratio/") == Some(&s.id),
                };
                fits && w.period_days() == s.period_days
            })
        });
        st.prev.retain(|id, _| slos.iter().any(|s| &s.id == id));
        st.slos = slos;
    }

    /// One evaluation at the clock's now: what happened since the last
    /// one goes into each SLI's windows, and the series from them are
    /// written.
    pub fn evaluate(&self) {
        let now = self.clock.now_millis();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let step_s = st
            .last
            .map_or(0.0, |l| ((now - l) as f64 / 1000.0).clamp(0.0, 3600.0));
        st.last = Some(now);
        let mut out: Vec<(Labels, f64)> = Vec::new();
        let State {
            slos,
            windows,
            prev,
            ..
        } = &mut *st;
        let (engine, head) = (&*self.engine, &*self.head);
        // The first evaluation (step 0) records nothing but primes the
        // latency sources.
        let scaled = |v: f64| (v.max(0.0) * step_s * SCALE).round() as u64;
        for s in slos.iter() {
            let with = |name: &str, extra: &[(&str, &str)]| {
                let mut l = s.labels.clone();
                l.push(("__name__".into(), name.into()));
                l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                Labels::from_pairs(l)
            };
            let period_ms = s.period_days as i64 * 86_400_000;
            let period = format!("{}d", s.period_days);
            let new = |lat: bool| SliWindows::new(lat, s.period_days, now);

            // The step's events and 5-minute ratio.
            let ratio5m = match &s.sli {
                NativeSli::Events { error, total } => {
                    let ev = windows
                        .entry(format!("events/{}", s.id))
                        .or_insert_with(|| new(s.latency.is_some()));
                    match (
                        value_of(engine, head, error, now),
                        value_of(engine, head, total, now),
                    ) {
                        (Some(e), Some(t)) => {
                            ev.observe_events(now, scaled(e), scaled(t));
                            (t > 0.0).then(|| e / t)
                        }
                        _ => None,
                    }
                }
                NativeSli::Raw { ratio } => value_of(engine, head, ratio, now),
            };
            let ra = windows
                .entry(format!("ratio/{}", s.id))
                .or_insert_with(|| new(false));
            if let Some(r) = ratio5m.filter(|r| r.is_finite()) {
                ra.observe_events(now, scaled(r), scaled(1.0));
            }

            // Sloth's period ratio (the average of the 5-minute ratios)
            // and, for raw SLIs, its windows beyond a day.
            let ratio_window = |w: &mut SliWindows, ms: i64| w.window(now, ms).error_ratio();
            if let Some(r) = ratio_window(ra, period_ms) {
                out.push((
                    with(
                        &format!("slo:sli_error:ratio_rate{period}"),
                        &[("sloth_window", &period)],
                    ),
                    r,
                ));
            }
            let long: Vec<u64> = super::alert_windows()
                .iter()
                .map(|w| w.long_s)
                .filter(|&l| l > NATIVE_FROM_S)
                .collect();
            if let NativeSli::Raw { .. } = s.sli {
                for &l in &long {
                    if let Some(r) = ratio_window(ra, l as i64 * 1000) {
                        let name = window_name(l);
                        out.push((
                            with(
                                &format!("slo:sli_error:ratio_rate{name}"),
                                &[("sloth_window", &name)],
                            ),
                            r,
                        ));
                    }
                }
                continue;
            }
            let Some(ev) = windows.get_mut(&format!("events/{}", s.id)) else {
                continue;
            };

            // Latencies: this step's bucket increases.
            if let Some(feed) = &s.latency {
                let classic = samples(engine, head, &feed.classic, now).unwrap_or_default();
                let native = samples(engine, head, &feed.native, now).unwrap_or_default();
                let p = prev.entry(s.id.clone()).or_default();
                for (lo, hi, n) in bucket_increases(classic, native, p) {
                    ev.observe_bucket(now, lo, hi, n);
                }
            }

            // Events windows: beyond a day, and the events-weighted period.
            for &l in &long {
                if let Some(r) = ev.window(now, l as i64 * 1000).error_ratio() {
                    let name = window_name(l);
                    out.push((
                        with(
                            &format!("slo:sli_error:ratio_rate{name}"),
                            &[("sloth_window", &name)],
                        ),
                        r,
                    ));
                }
            }
            let mut windows_read = vec![("5m", 300_000), ("1h", 3_600_000), ("1d", 86_400_000)];
            windows_read.push((&period, period_ms));
            for (name, ms) in windows_read {
                let w = ev.window(now, ms);
                if ms == period_ms {
                    if let Some(ratio) = w.error_ratio() {
                        out.push((
                            with(&format!("slo:sli_error_events:ratio_rate{period}"), &[]),
                            ratio,
                        ));
                        if s.budget > 0.0 {
                            out.push((
                                with("slo:period_error_budget_remaining_events:ratio", &[]),
                                1.0 - ratio / s.budget,
                            ));
                        }
                    }
                }
                if s.latency.is_none() {
                    continue;
                }
                for q in LATENCY_QUANTILES {
                    let Some(v) = q.parse().ok().and_then(|q| w.latency_quantile(q)) else {
                        continue;
                    };
                    out.push((
                        with(
                            &format!("slo:sli_latency_seconds:rate{name}"),
                            &[("quantile", q)],
                        ),
                        v,
                    ));
                }
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

    /// Writes the windows file if the windows changed since the last
    /// write: called every second, it writes when due (see
    /// [`crate::model::PacedFile`]: every second for a small file, less
    /// often for a large one); `force` (at shutdown) writes regardless.
    pub fn save(&self, force: bool) {
        let Some(dir) = &self.state_dir else { return };
        if !force && !self.saved.due() {
            return;
        }
        let b = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.windows.is_empty() {
                return;
            }
            super::windows_to_bytes(&st.windows)
        };
        if let Err(e) = self.saved.write(dir, SLO_WINDOWS_FILE, &b) {
            tracing::error!(error = %e, "cannot save the SLO windows");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ManualClock;
    use crate::model::histogram::CounterResetHint;
    use crate::promql::EngineOptions;

    const SPEC: &str = r#"version: prometheus/v1
service: svc
period: 30d
slos:
  - name: avail
    objective: 99
    sli:
      events:
        error_query: sum(rate(req_errors_total[{{.window}}]))
        total_query: sum(rate(req_total[{{.window}}]))
    alerting: {name: A}
  - name: raw
    objective: 99
    sli:
      raw:
        error_ratio_query: avg_over_time(err_ratio[{{.window}}])
    alerting: {name: B}
  - name: lat
    objective: 95
    sli:
      latency: {histogram: lat_seconds, threshold: 0.2, selector: '{job="x"}'}
    alerting: {name: C}
"#;

    /// Cumulative native histogram (custom bounds) after `steps` steps of
    /// 10, 50, 30, 8 and 2 observations in its five buckets.
    fn native(steps: f64) -> FloatHistogram {
        FloatHistogram {
            schema: crate::model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 100.0 * steps,
            sum: 12.0 * steps,
            positive: [10.0, 50.0, 30.0, 8.0, 2.0]
                .iter()
                .enumerate()
                .map(|(i, c)| (i as i32, c * steps))
                .collect(),
            custom_values: vec![0.05, 0.1, 0.2, 0.4],
            counter_reset_hint: CounterResetHint::Unknown,
            ..Default::default()
        }
    }

    /// Four simulated hours at a 15 s step: the Sloth and events-weighted
    /// period ratios and the 3-day ratios come from the windows, the raw
    /// SLI's too, and a native histogram's bucket increases (across a
    /// counter reset) give quantiles within their buckets.
    #[test]
    fn windows_give_long_ratios_and_native_histogram_quantiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = dir.path().join("svc.yml");
        std::fs::write(&spec, SPEC).expect("write");
        let cfg = Config {
            slo_files: vec![spec.display().to_string()],
            ..Default::default()
        };
        let t0 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000;
        let clock = Arc::new(ManualClock::new(t0));
        let head = Arc::new(Head::new());
        let engine = Arc::new(Engine::new(EngineOptions::default()));
        let slo = SloEngine::new(engine.clone(), head.clone(), clock.clone());
        slo.apply(&cfg);
        let l = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
        let (req, errs) = (
            l(&[("__name__", "req_total")]),
            l(&[("__name__", "req_errors_total")]),
        );
        let ratio = l(&[("__name__", "err_ratio")]);
        let lat = l(&[("__name__", "lat_seconds"), ("job", "x")]);
        let (mut n_req, mut n_err, mut steps) = (0.0, 0.0, 0.0);
        for i in 0..(4 * 240) {
            let t = t0 + i * 15_000;
            clock.set(t);
            // Busy first two hours with 1% errors, quiet last two with
            // 10%: the same number of errors in each half.
            let busy = i < 480;
            n_req += if busy { 1500.0 } else { 150.0 };
            n_err += 15.0;
            // The histogram's source restarts at the third hour.
            steps = if i == 720 { 1.0 } else { steps + 1.0 };
            let mut a = head.appender();
            a.append(&req, t, n_req).expect("append");
            a.append(&errs, t, n_err).expect("append");
            a.append(&ratio, t, if busy { 0.01 } else { 0.03 })
                .expect("append");
            a.append_histogram(&lat, t, Arc::new(native(steps)))
                .expect("append");
            a.commit();
            slo.evaluate();
        }
        let now = clock.now_millis();
        let get = |sel: &str| {
            let q = Query::parse(sel).expect("query");
            let v = samples(&engine, &head, &q, now).unwrap_or_default();
            assert_eq!(v.len(), 1, "{sel}: {v:?}");
            v[0].v
        };
        let near = |sel: &str, want: f64, tol: f64| {
            let got = get(sel);
            assert!(
                (got - want).abs() <= tol,
                "{sel} = {got}, want {want} ± {tol}"
            );
        };
        // Sloth's period ratio: the average of 5-minute ratios (1% and
        // 10% for as long each); events-weighted: 2 × 7200 × 1 errors
        // over 7200 × (100 + 10) events.
        near(
            "slo:sli_error:ratio_rate30d{sloth_slo=\"avail\", sloth_window=\"30d\"}",
            0.055,
            0.002,
        );
        near(
            "slo:sli_error:ratio_rate3d{sloth_slo=\"avail\", sloth_window=\"3d\"}",
            2.0 / 110.0,
            0.001,
        );
        near(
            "slo:sli_error_events:ratio_rate30d{sloth_slo=\"avail\"}",
            2.0 / 110.0,
            0.001,
        );
        near(
            "slo:period_error_budget_remaining_events:ratio{sloth_slo=\"avail\"}",
            1.0 - (2.0 / 110.0) / 0.01,
            0.1,
        );
        near(
            "slo:sli_error:ratio_rate30d{sloth_slo=\"raw\"}",
            0.02,
            0.001,
        );
        near("slo:sli_error:ratio_rate3d{sloth_slo=\"raw\"}", 0.02, 0.001);
        // p50 is 40/50 into (0.05, 0.1]; p90 the top of (0.1, 0.2]; p99
        // among the +Inf bucket's, put at the highest finite bound.
        for w in ["5m", "1h", "1d", "30d"] {
            let q = |q: &str| {
                format!("slo:sli_latency_seconds:rate{w}{{sloth_slo=\"lat\", quantile=\"{q}\"}}")
            };
            near(&q("0.5"), 0.09, 0.004);
            near(&q("0.9"), 0.2, 0.008);
            near(&q("0.99"), 0.4, 0.008);
        }
        // Nothing of the sort for SLIs without latencies.
        let q = Query::parse("slo:sli_latency_seconds:rate5m{sloth_slo=\"avail\"}").expect("q");
        assert!(
            samples(&engine, &head, &q, now)
                .unwrap_or_default()
                .is_empty()
        );
    }
}
