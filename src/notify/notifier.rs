//! argus's own Alertmanager: alerts from rule evaluation go through the
//! route tree into aggregation groups, and due groups are delivered to
//! their receivers' integrations when the notification log says so. The
//! decisions are the `dispatch` state machine's; this is the task that
//! feeds it the clock and does the sending.
//!
//! Delivered today: `webhook_configs`. A configuration that names other
//! integrations is refused at load, so that no page is silently dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::amconfig::{AmConfig, ReceiverConfig};
use super::dispatch::{Dispatcher, Flush, LogEntry, NotificationLog, fingerprint};
use super::inhibit::Inhibitor;
use super::route::Route;
use super::silence::{SILENCE_RETENTION_MS, Silence, SilenceError, Silences};
use super::webhook::{alerts_to_send, webhook_body, webhook_data};
use crate::config::read_secret_file;
use crate::model::{Alert, AlertSink, Clock};
use crate::net::{build_client, error_chain};

/// Default per-request timeout of an integration.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// File of the notification log under the storage directory.
pub const NFLOG_FILE: &str = "nflog.json";
/// File of the silences under the storage directory.
pub const SILENCES_FILE: &str = "silences.json";
/// How long notification log entries are kept (Alertmanager's default
/// `--data.retention`).
const NFLOG_RETENTION_MS: i64 = 120 * 3_600_000;

struct State {
    /// False while no routing is configured: alerts are not kept.
    enabled: bool,
    dispatcher: Dispatcher,
    inhibitor: Inhibitor,
    receivers: BTreeMap<String, ReceiverConfig>,
    /// The latest version of every alert, to rebuild groups on reload.
    alerts: BTreeMap<u64, Alert>,
    /// When each alert was last received.
    updated: BTreeMap<u64, i64>,
    /// `global.resolve_timeout` in ms.
    resolve_timeout_ms: i64,
    nflog: NotificationLog,
    silences: Silences,
    /// `silences.version()` when they were last saved.
    silences_saved: u64,
}

/// Routes, groups and delivers alerts.
pub struct Notifier {
    state: Mutex<State>,
    wake: Notify,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    external_url: String,
    state_dir: Option<std::path::PathBuf>,
}

/// Integrations of a receiver that argus cannot deliver to yet; the
/// configuration is refused when any are used.
pub fn undeliverable(cfg: &AmConfig) -> Vec<String> {
    let mut out = Vec::new();
    for r in &cfg.receivers {
        for (k, n) in [
            ("slack_configs", r.slack_configs.len()),
            ("pagerduty_configs", r.pagerduty_configs.len()),
            ("email_configs", r.email_configs.len()),
        ] {
            if n > 0 {
                out.push(format!(
                    "receiver {:?}: {k} are not delivered by this version of argus yet",
                    r.name
                ));
            }
        }
    }
    out
}

/// Reads one state file; a missing file is `None`, a damaged one is moved
/// aside (and `None`) so that the next save does not destroy the evidence.
fn read_state_file<T, E: std::fmt::Display>(
    dir: &std::path::Path,
    name: &str,
    now_s: i64,
    parse: impl FnOnce(&[u8]) -> Result<T, E>,
) -> Option<T> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(b) => match parse(&b) {
            Ok(v) => Some(v),
            Err(e) => {
                let aside = dir.join(format!("{name}.corrupt-{now_s}"));
                let _ = std::fs::rename(&path, &aside);
                tracing::error!(error = %e, file = %path.display(), moved_to = %aside.display(), "cannot read a state file; starting without it");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot read a state file");
            None
        }
    }
}

impl Notifier {
    /// A notifier with no routing configured (see [`apply`](Self::apply)).
    pub fn new(clock: Arc<dyn Clock>, external_url: &str) -> Result<Self, String> {
        let client = build_client(None, None)?;
        Ok(Notifier {
            state: Mutex::new(State {
                enabled: false,
                dispatcher: Dispatcher::new(Route::from_config(&Default::default())),
                inhibitor: Inhibitor::default(),
                receivers: BTreeMap::new(),
                alerts: BTreeMap::new(),
                updated: BTreeMap::new(),
                resolve_timeout_ms: 5 * 60_000,
                nflog: NotificationLog::default(),
                silences: Silences::default(),
                silences_saved: 0,
            }),
            wake: Notify::new(),
            clock,
            client,
            external_url: external_url.trim_end_matches('/').to_string(),
            state_dir: None,
        })
    }

    /// Keeps the notification log (`nflog.json`) and the silences
    /// (`silences.json`) in `dir`, read now and written after every change,
    /// so that a restart neither repeats a notification, nor forgets to
    /// resolve one, nor wakes anyone for a silenced alert. A damaged file
    /// is moved aside and that part starts empty.
    pub fn with_state_dir(mut self, dir: std::path::PathBuf) -> Self {
        let now_s = self.clock.now_millis() / 1000;
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = read_state_file(&dir, NFLOG_FILE, now_s, NotificationLog::from_json) {
            tracing::info!(entries = log.len(), "notification log restored");
            st.nflog = log;
        }
        if let Some(s) = read_state_file(&dir, SILENCES_FILE, now_s, Silences::from_json) {
            tracing::info!(silences = s.len(), "silences restored");
            st.silences = s;
            st.silences_saved = st.silences.version();
        }
        self.state_dir = Some(dir);
        self
    }

    fn save_log(&self) {
        let Some(dir) = &self.state_dir else { return };
        let body = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.nflog
                .to_json(self.clock.now_millis() - NFLOG_RETENTION_MS)
        };
        if let Err(e) = crate::model::write_atomic(dir, NFLOG_FILE, &body) {
            tracing::error!(error = %e, "cannot save the notification log");
        }
    }

    /// Drops silences past their retention and writes the set if it
    /// changed since the last save.
    fn save_silences(&self) {
        let body = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.silences
                .gc(self.clock.now_millis(), SILENCE_RETENTION_MS);
            let v = st.silences.version();
            if v == st.silences_saved {
                return;
            }
            st.silences_saved = v;
            st.silences.to_json()
        };
        let Some(dir) = &self.state_dir else { return };
        if let Err(e) = crate::model::write_atomic(dir, SILENCES_FILE, &body) {
            tracing::error!(error = %e, "cannot save the silences");
        }
    }

    /// Takes a new configuration (`None`: no routing): a new route tree
    /// with the current alerts regrouped; the notification log is kept, so
    /// nothing already sent is sent again. On error nothing changes.
    pub fn apply(&self, cfg: Option<&AmConfig>) -> Result<(), String> {
        let Some(cfg) = cfg else {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.enabled = false;
            st.alerts.clear();
            st.updated.clear();
            st.dispatcher = Dispatcher::new(Route::from_config(&Default::default()));
            return Ok(());
        };
        let bad = undeliverable(cfg);
        if !bad.is_empty() {
            return Err(bad.join("; "));
        }
        let route = cfg
            .route
            .as_ref()
            .ok_or_else(|| "no route provided in config".to_string())?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = Dispatcher::new(Route::from_config(route));
        let now = self.clock.now_millis();
        let current: Vec<Alert> = st.alerts.values().cloned().collect();
        d.ingest(&current, now);
        let mut inh = Inhibitor::new(&cfg.inhibit_rules);
        for (fp, a) in &st.alerts {
            inh.observe(*fp, a);
        }
        st.dispatcher = d;
        st.inhibitor = inh;
        st.resolve_timeout_ms = cfg
            .global
            .as_ref()
            .and_then(|g| g.resolve_timeout)
            .map_or(5 * 60_000, |d| d.as_millis());
        st.enabled = true;
        st.receivers = cfg
            .receivers
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Runs until `stop` turns true: flushes groups when due and delivers.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let now = self.clock.now_millis();
            let (flushes, next) = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let f = st.dispatcher.flush_due(now);
                (f, st.dispatcher.next_flush())
            };
            for f in &flushes {
                let ok = self.deliver(f).await;
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.dispatcher.flushed(f, ok);
                if ok {
                    // Alerts resolved and delivered need no keeping.
                    let now = f.now;
                    for a in f.alerts.iter().filter(|a| a.resolved_at(now)) {
                        if st.alerts.get(&a.fp) == Some(&a.alert) {
                            st.alerts.remove(&a.fp);
                            st.updated.remove(&a.fp);
                        }
                    }
                    st.inhibitor.gc(now);
                }
            }
            if !flushes.is_empty() {
                self.save_log();
                continue;
            }
            self.save_silences();
            let wait = next.map_or(Duration::from_secs(3600), |t| {
                Duration::from_millis((t - self.clock.now_millis()).max(0) as u64)
            });
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Sends a flush to each integration of its receiver that the
    /// notification log says needs it; true when none failed.
    async fn deliver(&self, f: &Flush) -> bool {
        // Inhibited and silenced alerts are left out before anything is
        // decided, as Alertmanager's mute stages do: they neither notify
        // nor enter the notification log.
        let (receiver, f) = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut muted = f.clone();
            muted.alerts.retain(|a| {
                !st.inhibitor.is_inhibited(a.fp, &a.alert.labels, f.now)
                    && st.silences.mutes(&a.alert.labels, f.now).is_empty()
            });
            (st.receivers.get(&f.receiver).cloned(), muted)
        };
        let f = &f;
        let Some(r) = receiver else {
            return true;
        };
        let (firing, resolved) = f.sets();
        let mut all_ok = true;
        for (i, w) in r.webhook_configs.iter().enumerate() {
            let integration = format!("webhook/{i}");
            let need = {
                let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                NotificationLog::needs_update(
                    st.nflog.get(&f.group_key, &f.receiver, &integration),
                    &firing,
                    &resolved,
                    w.send_resolved,
                    f.repeat_interval_ms,
                    f.now,
                )
            };
            if !need {
                continue;
            }
            let alerts = alerts_to_send(f, w.send_resolved);
            let sent = if alerts.is_empty() {
                Ok(())
            } else {
                let body = webhook_body(&webhook_data(f, &alerts, w.max_alerts, &self.external_url));
                self.post_webhook(w, body).await
            };
            match sent {
                Ok(()) => {
                    let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                    st.nflog.log(
                        &f.group_key,
                        &f.receiver,
                        &integration,
                        LogEntry {
                            firing: firing.clone(),
                            resolved: resolved.clone(),
                            at: f.now,
                        },
                    );
                }
                Err(e) => {
                    all_ok = false;
                    tracing::warn!(receiver = %f.receiver, integration = %integration, group = %f.group_key, error = %e, "notification failed; retried at the next group interval");
                }
            }
        }
        all_ok
    }

    async fn post_webhook(
        &self,
        w: &super::integrations::WebhookConfig,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let url = match (&w.url, &w.url_file) {
            (Some(u), _) => u.expose().to_string(),
            (None, Some(f)) => read_secret_file(f)?.expose().trim().to_string(),
            _ => return Err("webhook has no url".into()),
        };
        let timeout = w
            .timeout
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(SEND_TIMEOUT);
        let resp = self
            .client
            .post(&url)
            .timeout(timeout)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")))
            .body(body)
            .send()
            .await
            // The URL may carry a secret: report the error without it.
            .map_err(|e| error_chain(&e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("unexpected status code {}", resp.status().as_u16()));
        }
        Ok(())
    }
}

impl AlertSink for Notifier {
    fn send(&self, alerts: Vec<Alert>) {
        let now = self.clock.now_millis();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.enabled {
            return;
        }
        for a in &alerts {
            let fp = fingerprint(&a.labels);
            st.inhibitor.observe(fp, a);
            st.alerts.insert(fp, a.clone());
            st.updated.insert(fp, now);
        }
        st.dispatcher.ingest(&alerts, now);
        drop(st);
        self.wake.notify_one();
    }
}

/// An alert as the Alertmanager API lists it.
#[derive(Clone, Debug)]
pub struct AlertView {
    /// Fingerprint.
    pub fp: u64,
    /// The alert.
    pub alert: Alert,
    /// When it was last received (ms).
    pub updated_at: i64,
    /// Receivers it routes to.
    pub receivers: Vec<String>,
    /// True when an inhibition rule mutes it.
    pub inhibited: bool,
    /// IDs of the active silences that mute it.
    pub silenced_by: Vec<String>,
}

impl Notifier {
    /// Alerts from outside (the Alertmanager API), completed as
    /// Alertmanager completes them: no start → now (or the end); no end →
    /// now plus `global.resolve_timeout`.
    pub fn receive(&self, mut alerts: Vec<Alert>, have_start: &[bool], have_end: &[bool]) {
        let now = self.clock.now_millis();
        let timeout = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.resolve_timeout_ms
        };
        for (i, a) in alerts.iter_mut().enumerate() {
            let (s, e) = (
                have_start.get(i) == Some(&true),
                have_end.get(i) == Some(&true),
            );
            if !s {
                a.starts_at = if e { a.ends_at } else { now };
            }
            if !e {
                a.ends_at = now + timeout;
            }
        }
        self.send(alerts);
    }

    /// The alerts known now, firing or recently resolved, with their
    /// receivers and whether they are inhibited.
    pub fn alerts(&self) -> Vec<AlertView> {
        let now = self.clock.now_millis();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.alerts
            .iter()
            .map(|(fp, a)| AlertView {
                fp: *fp,
                alert: a.clone(),
                updated_at: st.updated.get(fp).copied().unwrap_or(now),
                receivers: st.dispatcher.receivers_of(&a.labels),
                inhibited: st.inhibitor.is_inhibited(*fp, &a.labels, now),
                silenced_by: st.silences.mutes(&a.labels, now),
            })
            .collect()
    }

    /// Creates or updates a silence (see [`Silences::set`]), saved before
    /// the answer; returns its ID.
    pub fn set_silence(&self, s: Silence) -> Result<String, SilenceError> {
        let id = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.silences.set(s, self.clock.now_millis())?
        };
        self.save_silences();
        // A silence that ended may release alerts held back.
        self.wake.notify_one();
        Ok(id)
    }

    /// Expires a silence now, saved before the answer.
    pub fn expire_silence(&self, id: &str) -> Result<(), SilenceError> {
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.silences.expire(id, self.clock.now_millis())?;
        }
        self.save_silences();
        self.wake.notify_one();
        Ok(())
    }

    /// All silences kept (active, pending, and expired within the
    /// retention).
    pub fn silences(&self) -> Vec<Silence> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.silences.iter().cloned().collect()
    }

    /// The clock's now (ms), for API answers that depend on state.
    pub fn now(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Whether routing is configured (the Alertmanager API answers only
    /// then).
    pub fn enabled(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).enabled
    }
}

/// Hands every alert to several sinks (argus's own routing and the
/// Alertmanagers it forwards to).
pub struct Fanout(pub Vec<Arc<dyn AlertSink>>);

impl AlertSink for Fanout {
    fn send(&self, alerts: Vec<Alert>) {
        for s in &self.0 {
            s.send(alerts.clone());
        }
    }
}
