//! Blackbox-style HTTP probes argus runs itself (`probe_configs`): each
//! probe checks its URL every interval (method, headers, body, expected
//! status codes, body regex, timeout, TLS settings, `fail_if_not_ssl`)
//! and writes `probe_success`, `probe_duration_seconds` and
//! `probe_http_status_code` into the store, labelled `job="probe"`,
//! `probe` and `instance` (the URL). Every result also goes into the
//! probe's SLI windows (`slo::SliWindows`), whose exact latency quantiles
//! and success ratios are written as `probe_latency_seconds{quantile,
//! window}` and `probe_success_ratio{window}` — the latencies the probe
//! measured, not bucket interpolations — and into the classic histogram
//! `probe_check_duration_seconds` (failed checks only in `+Inf`), from
//! which a probe latency SLI counts checks that failed or were slower
//! than its threshold with the same PromQL a vanilla Prometheus runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::{Config, ProbeConfig};
use crate::model::{Clock, Labels};
use crate::slo::SliWindows;
use crate::storage::{Appender, Head};

/// Windows written as series, with their names.
const WINDOWS: [(&str, i64); 4] = [
    ("5m", 300_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
    ("30d", 30 * 86_400_000),
];
/// Quantiles written per window.
const QUANTILES: [f64; 5] = [0.5, 0.9, 0.95, 0.99, 0.999];

/// What one probe found.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeResult {
    /// The check passed.
    pub success: bool,
    /// Seconds from sending to the end of the body (or the failure).
    pub duration: f64,
    /// The HTTP status, 0 without an answer.
    pub status: u16,
    /// Why it failed.
    pub error: Option<String>,
}

/// Runs one check; `body_re` is the probe's `body_regex`, compiled once.
pub async fn run_probe(
    client: &reqwest::Client,
    p: &ProbeConfig,
    body_re: Option<&regex::Regex>,
) -> ProbeResult {
    let started = Instant::now();
    let fail = |status: u16, e: String| ProbeResult {
        success: false,
        duration: started.elapsed().as_secs_f64(),
        status,
        error: Some(e),
    };
    let method = reqwest::Method::from_bytes(p.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, &p.url).timeout(p.timeout.0);
    for (k, v) in &p.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    if !p.body.is_empty() {
        req = req.body(p.body.clone());
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return fail(0, crate::net::error_chain(&e)),
    };
    let status = resp.status().as_u16();
    let tls = resp.url().scheme() == "https";
    let limit = crate::config::effective_body_size_limit(p.body_size_limit);
    let mut body = Vec::new();
    match crate::net::read_body(&mut resp, &mut body, limit).await {
        Ok(true) => {}
        Ok(false) => {
            return fail(
                status,
                format!("the body is longer than {limit} bytes (body_size_limit)"),
            );
        }
        Err(e) => return fail(status, crate::net::error_chain(&e)),
    }
    let duration = started.elapsed().as_secs_f64();
    let status_ok = if p.valid_status_codes.is_empty() {
        (200..300).contains(&status)
    } else {
        p.valid_status_codes.contains(&status)
    };
    let error = if !status_ok {
        Some(format!("unexpected status code {status}"))
    } else if p.fail_if_not_ssl && !tls {
        Some("the final connection did not use TLS".into())
    } else if let Some(re) = body_re {
        (!re.is_match(&String::from_utf8_lossy(&body)))
            .then(|| format!("body does not match {:?}", re.as_str()))
    } else {
        None
    };
    ProbeResult {
        success: error.is_none(),
        duration,
        status,
        error,
    }
}

struct Running {
    cfg: ProbeConfig,
    stop: tokio::sync::watch::Sender<bool>,
}

/// Runs the configured probes.
pub struct ProbeManager {
    head: Arc<Head>,
    clock: Arc<dyn Clock>,
    running: Mutex<BTreeMap<String, Running>>,
    /// SLI windows per probe name; kept across reloads and restarts.
    windows: Arc<Mutex<BTreeMap<String, SliWindows>>>,
    state_dir: Option<std::path::PathBuf>,
    /// Paces the windows file's rewrites.
    saved: crate::model::PacedFile,
}

/// File of the probes' SLI windows under the storage directory.
pub const PROBE_WINDOWS_FILE: &str = "probe_windows.bin";

impl ProbeManager {
    /// A manager writing into `head`.
    pub fn new(head: Arc<Head>, clock: Arc<dyn Clock>) -> ProbeManager {
        ProbeManager {
            head,
            clock,
            running: Mutex::new(BTreeMap::new()),
            windows: Arc::new(Mutex::new(BTreeMap::new())),
            state_dir: None,
            saved: crate::model::PacedFile::default(),
        }
    }

    /// Keeps the probes' windows in `dir` (`probe_windows.bin`), read now:
    /// a restart continues them. A damaged file is moved aside.
    pub fn with_state_dir(mut self, dir: std::path::PathBuf) -> Self {
        let path = dir.join(PROBE_WINDOWS_FILE);
        match std::fs::read(&path) {
            Ok(b) => match crate::slo::windows_from_bytes(&b) {
                Ok((w, damage)) => {
                    for d in damage {
                        tracing::error!(file = %path.display(), offset = d.offset, reason = %d.reason, "a damaged record of a state file was skipped; the rest of the file was read");
                    }
                    tracing::info!(probes = w.len(), "probe windows restored");
                    *self.windows.lock().unwrap_or_else(|e| e.into_inner()) = w;
                }
                Err(e) => {
                    let aside = dir.join(format!("{PROBE_WINDOWS_FILE}.corrupt"));
                    let _ = std::fs::rename(&path, &aside);
                    tracing::error!(error = %e, moved_to = %aside.display(), "cannot read the probe windows; starting without them");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::error!(error = %e, file = %path.display(), "cannot read the probe windows")
            }
        }
        self.state_dir = Some(dir);
        self
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
            let w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
            if w.is_empty() {
                return;
            }
            crate::slo::windows_to_bytes(&w)
        };
        if let Err(e) = self.saved.write(dir, PROBE_WINDOWS_FILE, &b) {
            tracing::error!(error = %e, "cannot save the probe windows");
        }
    }

    /// Starts, restarts (when changed) and stops probes to match `cfg`.
    /// A probe whose TLS settings cannot be used is refused.
    pub fn apply(&self, cfg: &Config) -> Result<(), String> {
        let mut clients = BTreeMap::new();
        for p in &cfg.probe_configs {
            let c = crate::net::build_client(p.tls_config.as_ref())
                .map_err(|e| format!("probe {:?}: {e}", p.name))?;
            clients.insert(p.name.clone(), c);
        }
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|name, r| {
            let keep = cfg
                .probe_configs
                .iter()
                .any(|p| p == &r.cfg && p.name == *name);
            if !keep {
                let _ = r.stop.send(true);
            }
            keep
        });
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n, _| cfg.probe_configs.iter().any(|p| &p.name == n));
        for p in &cfg.probe_configs {
            if running.contains_key(&p.name) {
                continue;
            }
            let (tx, rx) = tokio::sync::watch::channel(false);
            let client = clients.remove(&p.name).unwrap_or_default();
            tokio::spawn(probe_loop(
                p.clone(),
                client,
                self.head.clone(),
                self.clock.clone(),
                self.windows.clone(),
                rx,
            ));
            running.insert(
                p.name.clone(),
                Running {
                    cfg: p.clone(),
                    stop: tx,
                },
            );
        }
        Ok(())
    }

    /// Stops every probe.
    pub fn stop(&self) {
        for r in self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = r.stop.send(true);
        }
    }
}

fn labels(p: &ProbeConfig, name: &str, extra: &[(&str, String)]) -> Labels {
    let mut l: Vec<(String, String)> = vec![
        ("__name__".into(), name.into()),
        ("job".into(), "probe".into()),
        ("probe".into(), p.name.clone()),
        ("instance".into(), p.url.clone()),
    ];
    l.extend(p.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Labels::from_pairs(l)
}

async fn probe_loop(
    p: ProbeConfig,
    client: reqwest::Client,
    head: Arc<Head>,
    clock: Arc<dyn Clock>,
    windows: Arc<Mutex<BTreeMap<String, SliWindows>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // The config was validated, so the pattern compiles.
    let body_re = p
        .body_regex
        .as_deref()
        .and_then(|r| regex::Regex::new(r).ok());
    // Cumulative counts of `probe_check_duration_seconds` (restarting
    // from zero with the process, as any client library's counters do).
    let mut hist_counts = vec![0u64; p.buckets.len()];
    let (mut hist_count, mut hist_sum) = (0u64, 0.0f64);
    let mut ticker = tokio::time::interval(p.interval.0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let now = clock.now_millis();
        let r = tokio::select! {
            r = run_probe(&client, &p, body_re.as_ref()) => r,
            _ = stop.changed() => return,
        };
        if let Some(e) = &r.error {
            tracing::debug!(probe = %p.name, error = %e, "probe failed");
        }
        let mut series: Vec<(Labels, f64)> = vec![
            (
                labels(&p, "probe_success", &[]),
                if r.success { 1.0 } else { 0.0 },
            ),
            (labels(&p, "probe_duration_seconds", &[]), r.duration),
            (labels(&p, "probe_http_status_code", &[]), r.status as f64),
        ];
        hist_count += 1;
        hist_sum += r.duration;
        for (b, c) in p.buckets.iter().zip(hist_counts.iter_mut()) {
            if r.success && r.duration <= *b {
                *c += 1;
            }
        }
        let hist = "probe_check_duration_seconds";
        for (b, c) in p.buckets.iter().zip(&hist_counts) {
            let le = crate::scrape::parse::float_label(*b);
            series.push((
                labels(&p, &format!("{hist}_bucket"), &[("le", le)]),
                *c as f64,
            ));
        }
        series.push((
            labels(&p, &format!("{hist}_bucket"), &[("le", "+Inf".into())]),
            hist_count as f64,
        ));
        series.push((labels(&p, &format!("{hist}_count"), &[]), hist_count as f64));
        series.push((labels(&p, &format!("{hist}_sum"), &[]), hist_sum));
        {
            let mut all = windows.lock().unwrap_or_else(|e| e.into_inner());
            let w = all
                .entry(p.name.clone())
                .or_insert_with(|| SliWindows::new(true, 30, now));
            w.observe_events(now, u64::from(!r.success), 1);
            w.observe_latency(now, r.duration);
            for (wname, ms) in WINDOWS {
                let st = w.window(now, ms);
                if let Some(ratio) = st.error_ratio() {
                    series.push((
                        labels(&p, "probe_success_ratio", &[("window", wname.to_string())]),
                        1.0 - ratio,
                    ));
                }
                for q in QUANTILES {
                    if let Some(v) = st.latency_quantile(q) {
                        series.push((
                            labels(
                                &p,
                                "probe_latency_seconds",
                                &[
                                    ("quantile", crate::template::go_float(q)),
                                    ("window", wname.to_string()),
                                ],
                            ),
                            v,
                        ));
                    }
                }
            }
        }
        let mut app = head.appender();
        for (l, v) in &series {
            let _ = app.append(l, now, *v);
        }
        app.commit();
    }
}
