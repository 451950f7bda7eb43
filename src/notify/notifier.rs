//! argus's own Alertmanager: alerts from rule evaluation (and the
//! Alertmanager API) go through the route tree into aggregation groups;
//! due groups, minus what inhibition and silences mute, become
//! notifications queued per receiver integration in the outbox when the
//! notification log says so; a worker per integration delivers its queue.
//! The decisions are the `dispatch` and `outbox` state machines'; this is
//! the task that feeds them the clock and does the sending.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::amconfig::{AmConfig, ReceiverConfig};
use super::dispatch::{Dispatcher, Flush, LogEntry, NotificationLog, fingerprint};
use super::inhibit::Inhibitor;
use super::integrations::GlobalConfig;
use super::outbox::{Next, Outbox, OutboxSettings, Outcome, PeerCheck, Pending, Rate, queue_key};
use super::route::Route;
use super::send::{Note, Prepared, RenderCtx, Sender, integrations};
use super::silence::{SILENCE_RETENTION_MS, Silence, SilenceError, Silences};
use super::timeinterval::any_contains;
use super::tmpl::Templates;
use super::webhook::{alerts_to_send, webhook_data};
use crate::config::DeliveryConfig;
use crate::model::{Alert, AlertSink, Clock};
use crate::telemetry::Metrics;

/// File of the notification log under the storage directory.
pub const NFLOG_FILE: &str = "nflog.json";
/// File of the silences under the storage directory.
pub const SILENCES_FILE: &str = "silences.json";
/// Write-ahead file of the notification log: entries logged since
/// `nflog.json` was written, one JSON line each, so a delivery costs an
/// appended line rather than a rewrite of the whole log.
pub const NFLOG_WAL_FILE: &str = "nflog.wal";
/// The write-ahead file is folded into `nflog.json` past this size.
const NFLOG_WAL_MAX: u64 = 4 << 20;
/// File of the alerts argus routes (from its rules and from the API),
/// so that groups, resolves and `/api/v2/alerts` survive a restart.
pub const ROUTED_ALERTS_FILE: &str = "routed_alerts.json";
/// The routed alerts are written at most this often: they are large and
/// change with every resend, and a restart within the interval loses at
/// most its changes (firing alerts come back with their next resend).
const ALERTS_SAVE_INTERVAL: Duration = Duration::from_secs(5);
/// File of the outbox under the storage directory.
pub const OUTBOX_FILE: &str = "outbox.json";
/// Longest time between a change of the notification log or the outbox
/// and its write: a crash inside it can repeat a notification (the log
/// had not recorded it), never lose one the outbox held for longer.
pub const SAVE_DELAY: Duration = Duration::from_millis(250);
/// How long notification log entries are kept (Alertmanager's default
/// `--data.retention`).
const NFLOG_RETENTION_MS: i64 = 120 * 3_600_000;
/// A saved-version mark no version equals: the file must be written.
const UNSAVED: u64 = u64::MAX;

/// Pause before a failed queue worker is started again, so a fault that
/// repeats costs a restart a second, not a busy loop.
const WORKER_RESTART_DELAY: Duration = Duration::from_secs(1);

/// Why a notification could not be made ready to send.
enum PrepareError {
    /// Its receiver or integration is no longer configured: it can never
    /// be sent.
    Gone(String),
    /// Something a fix outside argus can cure (a secret file that cannot
    /// be read yet): worth retrying.
    Retry(String),
}

/// Counts a delivery under way for as long as it lives, however its
/// task ends.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct State {
    /// False while no routing is configured: alerts are not kept.
    enabled: bool,
    dispatcher: Dispatcher,
    inhibitor: Inhibitor,
    receivers: BTreeMap<String, ReceiverConfig>,
    /// The latest version of every alert, to rebuild groups on reload.
    /// Shared, so the saver's copy of them all costs pointers.
    alerts: BTreeMap<u64, Arc<Alert>>,
    /// When each alert was last received.
    updated: BTreeMap<u64, i64>,
    /// `global.resolve_timeout` in ms.
    resolve_timeout_ms: i64,
    nflog: NotificationLog,
    silences: Silences,
    /// `silences.version()` when they were last saved.
    silences_saved: u64,
    /// Bumped when the routed alerts change.
    alerts_version: u64,
    alerts_saved: u64,
    /// Bumped when the notification log changes.
    nflog_version: u64,
    nflog_saved: u64,
    /// The write-ahead file missed lines (a failed write): the next save
    /// writes the whole log.
    nflog_full_due: bool,
    outbox: Outbox,
    outbox_saved: u64,
    global: GlobalConfig,
    base_dir: PathBuf,
    templates: Templates,
    delivery: DeliveryConfig,
    intervals: BTreeMap<String, Vec<super::timeinterval::TimeInterval>>,
    receiver_order: Vec<String>,
}

/// Routes, groups and delivers alerts.
pub struct Notifier {
    state: Mutex<State>,
    wake: Notify,
    clock: Arc<dyn Clock>,
    sender: Sender,
    metrics: Arc<Metrics>,
    external_url: String,
    state_dir: Option<PathBuf>,
    dry_run: bool,
    /// A wake-up per integration queue with a running worker.
    workers: Mutex<HashMap<String, Arc<Notify>>>,
    stop: Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    save_wanted: Notify,
    /// State files whose last write failed, with the error: shown by
    /// `/-/ready` and cleared by the next good write.
    degraded: Mutex<BTreeMap<String, String>>,
    /// Bytes in the notification log's write-ahead file.
    wal_size: std::sync::atomic::AtomicU64,
    /// Deliveries under way; shutdown waits for them so the log records
    /// what they sent.
    in_flight: std::sync::atomic::AtomicUsize,
    /// How long new notifications wait for peers that deliver before
    /// this instance (ms), and until when they wait anyway because this
    /// instance has not yet heard what its peers delivered (see `ha`).
    peer_hold_ms: std::sync::atomic::AtomicI64,
    peer_settle_until: std::sync::atomic::AtomicI64,
    /// The alert name whose routing the dead-man's switch watches, and
    /// when it was last routed.
    watched: Mutex<(String, Option<i64>)>,
    /// Woken when a delivery is logged or a silence changes: peers hear
    /// of it at once rather than at their next heartbeat, which narrows
    /// the window in which a peer that dies has delivered what its
    /// partner will repeat (or silenced what its partner will page).
    delivered: Arc<Notify>,
}

/// Delivery state to write, taken under the lock.
#[derive(Default)]
struct StateWrite {
    log_lines: Vec<u8>,
    log_snapshot: Option<Vec<u8>>,
    outbox: Option<Vec<u8>>,
    /// A copy of the routed alerts, serialised outside the lock.
    alerts: Option<Vec<(Arc<Alert>, i64)>>,
}

/// A routed alert as its state file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: i64,
    ends_at: i64,
    generator_url: String,
    updated_at: i64,
}

/// A [`StoredAlert`] as written, borrowing the alert.
#[derive(serde::Serialize)]
struct StoredAlertRef<'a> {
    #[serde(serialize_with = "labels_as_map")]
    labels: &'a crate::model::Labels,
    annotations: &'a BTreeMap<String, String>,
    starts_at: i64,
    ends_at: i64,
    generator_url: &'a str,
    updated_at: i64,
}

fn labels_as_map<S: serde::Serializer>(l: &&crate::model::Labels, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(l.iter().map(|l| (&*l.name, &*l.value)))
}

/// The rate limit of one integration's queue.
fn rate_for(d: &DeliveryConfig, receiver: &str, integration: &str) -> Option<Rate> {
    let kind = integration.split('/').next().unwrap_or("");
    d.receiver_rate_limits
        .get(receiver)
        .or_else(|| d.rate_limits.get(kind))
        .and_then(|r| Rate::parse(r).ok())
}

fn outbox_settings(d: &DeliveryConfig) -> OutboxSettings {
    OutboxSettings {
        capacity: d.queue_capacity,
        retry_initial_ms: d.retry_initial.as_millis(),
        retry_max_ms: d.retry_max.as_millis(),
        breaker_failures: d.breaker_failures,
        breaker_cooldown_ms: d.breaker_cooldown.as_millis(),
    }
}

/// Reads one state file; a missing file is `None`, a damaged one is moved
/// aside (and `None`) so that the next save does not destroy the evidence.
/// Logs each damaged record of a state file with its offset: what it
/// held is lost, the rest of the file was read.
fn report_damage(dir: &std::path::Path, name: &str, damage: &[crate::model::RecordDamage]) {
    for d in damage {
        tracing::error!(file = %dir.join(name).display(), offset = d.offset, reason = %d.reason, "a damaged record of a state file was skipped; the rest of the file was read");
    }
}

/// Reads a state file; one that cannot be read at all is moved aside.
fn read_state_file<T, E: std::fmt::Display>(
    dir: &std::path::Path,
    name: &str,
    now_s: i64,
    parse: impl FnOnce(&[u8]) -> Result<(T, Vec<crate::model::RecordDamage>), E>,
) -> Option<T> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(b) => match parse(&b) {
            Ok((v, damage)) => {
                report_damage(dir, name, &damage);
                Some(v)
            }
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
    pub fn new(
        clock: Arc<dyn Clock>,
        external_url: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let delivery = DeliveryConfig::default();
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
                alerts_version: 0,
                alerts_saved: 0,
                nflog_version: 0,
                nflog_saved: 0,
                nflog_full_due: false,
                outbox: Outbox::new(outbox_settings(&delivery), clock.clone()),
                outbox_saved: 0,
                global: GlobalConfig::default(),
                base_dir: PathBuf::new(),
                templates: Templates::defaults(),
                delivery,
                intervals: BTreeMap::new(),
                receiver_order: Vec::new(),
            }),
            wake: Notify::new(),
            clock,
            sender: Sender::new()?,
            metrics,
            external_url: external_url.trim_end_matches('/').to_string(),
            state_dir: None,
            dry_run: false,
            workers: Mutex::new(HashMap::new()),
            stop: Mutex::new(None),
            save_wanted: Notify::new(),
            degraded: Mutex::new(BTreeMap::new()),
            wal_size: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            peer_hold_ms: std::sync::atomic::AtomicI64::new(0),
            peer_settle_until: std::sync::atomic::AtomicI64::new(i64::MIN),
            watched: Mutex::new((String::new(), None)),
            delivered: Arc::new(Notify::new()),
        })
    }

    /// Renders and logs every notification in full instead of sending it
    /// (`argus run --dry-run`); the notification log records it as sent.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
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
            st.nflog = log;
        }
        if let Ok(wal) = std::fs::read(dir.join(NFLOG_WAL_FILE)) {
            let (n, damage) = st.nflog.apply_changes(&wal);
            report_damage(&dir, NFLOG_WAL_FILE, &damage);
            self.wal_size
                .store(wal.len() as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(changes = n, "notification log write-ahead file replayed");
        }
        tracing::info!(entries = st.nflog.len(), "notification log restored");
        if let Some(v) = read_state_file(&dir, ROUTED_ALERTS_FILE, now_s, |b| {
            match crate::model::records::json_records::<StoredAlert>(b) {
                Some(r) => Ok(r),
                None => serde_json::from_slice::<Vec<StoredAlert>>(b).map(|v| (v, Vec::new())),
            }
        }) {
            let now = self.clock.now_millis();
            for s in v {
                // An alert firing when last received keeps the life it
                // had left then: its sender (argus's own rules, restarted
                // with it, or a Prometheus that could not reach it) had
                // no chance to resend while argus was down, and resolving
                // it now would page a resolve and then the alert again.
                let ends_at = if s.ends_at > s.updated_at {
                    s.ends_at.max(now + (s.ends_at - s.updated_at))
                } else {
                    s.ends_at
                };
                let a = Alert {
                    labels: crate::model::Labels::from_pairs(s.labels),
                    annotations: s.annotations,
                    starts_at: s.starts_at,
                    ends_at,
                    generator_url: s.generator_url,
                };
                let fp = fingerprint(&a.labels);
                st.alerts.insert(fp, Arc::new(a));
                st.updated.insert(fp, s.updated_at.max(now));
            }
            tracing::info!(alerts = st.alerts.len(), "routed alerts restored");
        }
        if let Some(s) = read_state_file(&dir, SILENCES_FILE, now_s, Silences::from_json) {
            tracing::info!(silences = s.len(), "silences restored");
            st.silences = s;
            st.silences_saved = st.silences.version();
        }
        if let Some(b) = read_state_file(&dir, OUTBOX_FILE, now_s, |b| {
            Ok::<_, std::convert::Infallible>((b.to_vec(), Vec::new()))
        }) {
            match st.outbox.restore(&b) {
                Ok((n, damage)) => {
                    report_damage(&dir, OUTBOX_FILE, &damage);
                    tracing::info!(pending = n, "undelivered notifications restored");
                    st.outbox_saved = st.outbox.version();
                }
                Err(e) => {
                    let aside = dir.join(format!("{OUTBOX_FILE}.corrupt-{now_s}"));
                    let _ = std::fs::rename(dir.join(OUTBOX_FILE), &aside);
                    tracing::error!(error = %e, moved_to = %aside.display(), "cannot read the outbox; starting without it");
                }
            }
        }
        self.state_dir = Some(dir);
        self
    }

    /// Asks the saver to write the notification log and the outbox soon
    /// (within [`SAVE_DELAY`]): one write covers every change in between,
    /// so a burst of deliveries costs one write, not one each.
    fn save_state(&self) {
        self.save_wanted.notify_one();
    }

    /// What changed since the last write, taken under the lock: the
    /// notification log's new lines (or, when its write-ahead file has
    /// grown past its limit, the whole log) and the outbox.
    fn state_to_write(&self, with_alerts: bool) -> StateWrite {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = StateWrite::default();
        if with_alerts && st.alerts_version != st.alerts_saved {
            st.alerts_saved = st.alerts_version;
            w.alerts = Some(
                st.alerts
                    .iter()
                    .map(|(fp, a)| (a.clone(), st.updated.get(fp).copied().unwrap_or(0)))
                    .collect(),
            );
        }
        if st.nflog_version != st.nflog_saved || st.nflog_full_due {
            st.nflog_saved = st.nflog_version;
            let lines = st.nflog.take_changes();
            let wal = self.wal_size.load(std::sync::atomic::Ordering::Relaxed);
            if st.nflog_full_due || wal + lines.len() as u64 > NFLOG_WAL_MAX {
                st.nflog_full_due = false;
                w.log_snapshot = Some(
                    st.nflog
                        .to_json(self.clock.now_millis() - NFLOG_RETENTION_MS),
                );
            } else {
                w.log_lines = lines;
            }
        }
        let v = st.outbox.version();
        if v != st.outbox_saved {
            st.outbox_saved = v;
            w.outbox = Some(st.outbox.to_json());
        }
        w
    }

    /// Writes what [`state_to_write`](Self::state_to_write) took; file
    /// work (and its fsyncs) runs here, outside the lock.
    fn write(&self, w: StateWrite) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let Some(dir) = &self.state_dir else { return };
        // A failed write is retried by the saver's next round (every
        // few seconds) from the state in memory, which stays complete.
        let nflog_failed = |st: &mut State| st.nflog_full_due = true;
        if let Some(snap) = w.log_snapshot {
            let r = crate::model::write_atomic(dir, NFLOG_FILE, &snap);
            self.wrote(NFLOG_FILE, &r, nflog_failed);
            if r.is_ok() {
                let _ = std::fs::remove_file(dir.join(NFLOG_WAL_FILE));
                self.wal_size.store(0, Ordering::Relaxed);
            }
        } else if !w.log_lines.is_empty() {
            let r = std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(NFLOG_WAL_FILE))
                })
                .and_then(|mut f| {
                    f.write_all(&w.log_lines)?;
                    f.sync_data()
                });
            self.wrote(NFLOG_WAL_FILE, &r, nflog_failed);
            if r.is_ok() {
                self.wal_size
                    .fetch_add(w.log_lines.len() as u64, Ordering::Relaxed);
            }
        }
        if let Some(b) = w.outbox {
            let r = crate::model::write_atomic(dir, OUTBOX_FILE, &b);
            self.wrote(OUTBOX_FILE, &r, |st| st.outbox_saved = UNSAVED);
        }
        if let Some(alerts) = w.alerts {
            // Serialised straight from the alerts, one record at a time:
            // with many alerts a converted copy of them all was the
            // largest allocation argus made.
            let stored = alerts.iter().map(|(a, updated_at)| StoredAlertRef {
                labels: &a.labels,
                annotations: &a.annotations,
                starts_at: a.starts_at,
                ends_at: a.ends_at,
                generator_url: &a.generator_url,
                updated_at: *updated_at,
            });
            let body = crate::model::records::to_json_records(stored);
            let r = crate::model::write_atomic(dir, ROUTED_ALERTS_FILE, &body);
            self.wrote(ROUTED_ALERTS_FILE, &r, |st| st.alerts_saved = UNSAVED);
        }
    }

    /// Writes everything that changed, now (shutdown).
    fn write_state(&self) {
        let w = self.state_to_write(true);
        self.write(w);
    }

    /// Drops silences past their retention and writes the set if it
    /// changed since the last save; a failed write is retried at the
    /// saver's next round.
    fn save_silences(&self) -> std::io::Result<()> {
        let body = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.silences
                .gc(self.clock.now_millis(), SILENCE_RETENTION_MS);
            let v = st.silences.version();
            if v == st.silences_saved {
                return Ok(());
            }
            st.silences_saved = v;
            st.silences.to_json()
        };
        let Some(dir) = &self.state_dir else {
            return Ok(());
        };
        let r = crate::model::write_atomic(dir, SILENCES_FILE, &body);
        self.wrote(SILENCES_FILE, &r, |st| st.silences_saved = UNSAVED);
        r
    }

    /// Records how a state file's write went: failures mark the state
    /// unsaved (`unsaved`, so the saver's next round writes it again), are
    /// counted, logged and listed by [`degraded`](Self::degraded) until a
    /// write of that file succeeds.
    fn wrote(&self, file: &str, r: &std::io::Result<()>, unsaved: impl FnOnce(&mut State)) {
        if r.is_err() {
            unsaved(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
        }
        let mut d = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        match r {
            Ok(()) => {
                if d.remove(file).is_some() {
                    tracing::info!(file, "state file written again");
                }
            }
            Err(e) => {
                self.metrics
                    .state_write_failures
                    .get_or_create(&vec![("file".to_string(), file.to_string())])
                    .inc();
                tracing::error!(error = %e, file, "cannot write a state file; retrying, and a restart now would lose its changes");
                d.insert(file.to_string(), e.to_string());
            }
        }
    }

    /// The state files that cannot be written now, as `file: error`.
    pub fn degraded(&self) -> Vec<String> {
        self.degraded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(f, e)| format!("cannot write {f}: {e}"))
            .collect()
    }

    /// Takes a new configuration (`None`: no routing) and delivery
    /// settings: a new route tree with the current alerts regrouped; the
    /// notification log and the outbox are kept, so nothing already sent
    /// is sent again and nothing queued is lost (notifications queued for
    /// integrations that no longer exist are dropped, and counted). On
    /// error nothing changes.
    pub fn apply(&self, cfg: Option<&AmConfig>, delivery: &DeliveryConfig) -> Result<(), String> {
        let Some(cfg) = cfg else {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.enabled = false;
            st.alerts.clear();
            st.updated.clear();
            st.dispatcher = Dispatcher::new(Route::from_config(&Default::default()));
            return Ok(());
        };
        let route = cfg
            .route
            .as_ref()
            .ok_or_else(|| "no route provided in config".to_string())?;
        let templates =
            Templates::load(&cfg.templates, &cfg.base_dir).map_err(|e| e.to_string())?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = Dispatcher::new(Route::from_config(route));
        let now = self.clock.now_millis();
        let current: Vec<Arc<Alert>> = st.alerts.values().cloned().collect();
        d.ingest_shared(&current, now);
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
        st.global = cfg.global.clone().unwrap_or_default();
        st.base_dir = cfg.base_dir.clone();
        st.templates = templates;
        st.intervals = cfg.time_intervals();
        st.receiver_order = cfg.receivers.iter().map(|r| r.name.clone()).collect();
        st.delivery = delivery.clone();
        st.outbox.set_settings(outbox_settings(delivery));
        let mut keys = std::collections::BTreeSet::new();
        for r in cfg.receivers.iter() {
            for i in integrations(r) {
                let k = queue_key(&r.name, &i.name);
                st.outbox.set_rate(&k, rate_for(delivery, &r.name, &i.name));
                keys.insert(k);
            }
        }
        let dropped = st.outbox.retain_queues(&|k| keys.contains(k));
        drop(st);
        for p in dropped {
            tracing::warn!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, "queued notification dropped: its integration is no longer configured");
            self.metrics
                .receiver_dropped
                .get_or_create(&vec![
                    ("receiver".into(), p.receiver.clone()),
                    ("integration".into(), p.integration.clone()),
                ])
                .inc();
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Runs until `stop` turns true: flushes groups when due into the
    /// outbox; a worker per integration delivers.
    pub async fn run(self: Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        let saver = tokio::spawn(self.clone().saver(stop.clone()));
        self.clone().dispatch(stop).await;
        let _ = saver.await;
        // Deliveries under way finish (for at most two seconds) so the
        // log knows what they sent and a restart does not page again.
        let t = std::time::Instant::now();
        while self.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0
            && t.elapsed() < Duration::from_secs(2)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Whatever changed since the saver's last write.
        self.write_state();
    }

    /// Writes delivery state at most every [`SAVE_DELAY`] while it changes.
    async fn saver(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut alerts_written = std::time::Instant::now();
        loop {
            tokio::select! {
                _ = self.save_wanted.notified() => {}
                _ = tokio::time::sleep(ALERTS_SAVE_INTERVAL) => {}
                _ = stop.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(SAVE_DELAY) => {}
                _ = stop.changed() => return,
            }
            // Serialising takes the lock briefly; writing and syncing run
            // on a blocking thread, so deliveries never wait for the disk.
            let with_alerts = alerts_written.elapsed() >= ALERTS_SAVE_INTERVAL;
            if with_alerts {
                alerts_written = std::time::Instant::now();
            }
            // Silences past their retention go with the routed alerts'
            // cadence, off the dispatcher's path.
            if with_alerts {
                let _ = self.save_silences();
            }
            let w = self.state_to_write(with_alerts);
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.write(w)).await;
        }
    }

    async fn dispatch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(stop.clone());
        // Notifications restored from the outbox go out first.
        self.start_workers();
        loop {
            let now = self.clock.now_millis();
            let (flushes, next) = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let f = st.dispatcher.flush_due(now);
                (f, st.dispatcher.next_flush())
            };
            for f in &flushes {
                self.enqueue_flush(f);
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                // Queued is as good as sent: the outbox is persisted and
                // retried, so resolved alerts leave the group now.
                st.dispatcher.flushed(f, true);
                let now = f.now;
                for a in f.alerts.iter().filter(|a| a.resolved_at(now)) {
                    if st
                        .alerts
                        .get(&a.fp)
                        .is_some_and(|x| Arc::ptr_eq(x, &a.alert) || **x == *a.alert)
                    {
                        st.alerts.remove(&a.fp);
                        st.updated.remove(&a.fp);
                        st.alerts_version += 1;
                    }
                }
                st.inhibitor.gc(now);
            }
            if !flushes.is_empty() {
                self.save_state();
                self.start_workers();
                continue;
            }
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

    /// Wakes the dispatcher and every worker, for a clock that moved
    /// without them (tests with a manual clock).
    pub fn poke(&self) {
        self.wake.notify_one();
        for w in self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            w.notify_one();
        }
    }

    /// Starts a worker for every queue that has none, and wakes all.
    fn start_workers(self: &Arc<Self>) {
        let keys = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.outbox.keys()
        };
        let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for k in keys {
            let w = workers.entry(k.clone()).or_insert_with(|| {
                let n = Arc::new(Notify::new());
                tokio::spawn(self.clone().supervise(k.clone(), n.clone(), stop.clone()));
                n
            });
            w.notify_one();
        }
    }

    /// Runs a queue's worker and restarts it (after a pause, counted and
    /// logged) if it ever dies: no integration's queue may stop in
    /// silence.
    async fn supervise(
        self: Arc<Self>,
        key: String,
        wake: Arc<Notify>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let run = tokio::spawn(self.clone().worker(key.clone(), wake.clone(), stop.clone()));
            match run.await {
                Err(e) if e.is_panic() && !*stop.borrow() => {
                    self.metrics
                        .notifier_worker_restarts
                        .get_or_create(&vec![("queue".to_string(), key.clone())])
                        .inc();
                    tracing::error!(queue = %key, "the delivery worker of this queue failed unexpectedly; restarting it");
                    tokio::time::sleep(WORKER_RESTART_DELAY).await;
                }
                _ => return,
            }
        }
    }

    /// Delivers one integration's queue, in order, until stopped.
    async fn worker(
        self: Arc<Self>,
        key: String,
        wake: Arc<Notify>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.clock.now_millis();
            let next = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.outbox.next(&key, now)
            };
            let wait = match next {
                Next::Send(p) if self.delivered_by_peer(&p, now) => {
                    self.finish(&key, &p, Outcome::Superseded, Note::new());
                    continue;
                }
                Next::Send(p) => {
                    let _sending = InFlight::enter(&self.in_flight);
                    let (outcome, note) = self.attempt(&p).await;
                    self.finish(&key, &p, outcome, note);
                    continue;
                }
                Next::At(t) => Duration::from_millis((t - now).max(1) as u64),
                Next::Idle => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Renders `p` with the current configuration and sends it.
    async fn attempt(&self, p: &Pending) -> (Outcome, Note) {
        let now = self.clock.now_millis();
        let prepared = {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            self.prepare(&st, p, now)
        };
        let prepared = match prepared {
            Ok(x) => x,
            Err(PrepareError::Gone(e)) => return (Outcome::Failed(e), Note::new()),
            // An unreadable secret file or the like may be fixed without
            // a reload: the notification waits in the outbox, retried with
            // backoff and counted, rather than being dropped.
            Err(PrepareError::Retry(e)) => {
                let retry = Outcome::Retry {
                    reason: e,
                    after: None,
                };
                return (retry, Note::new());
            }
        };
        if self.dry_run {
            tracing::info!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, message = ?prepared, "dry run: notification not sent");
            return (Outcome::Delivered, Note::new());
        }
        self.sender.send_noted(prepared, now).await
    }

    fn prepare(&self, st: &State, p: &Pending, now: i64) -> Result<Prepared, PrepareError> {
        let r = st.receivers.get(&p.receiver).ok_or_else(|| {
            PrepareError::Gone(format!("receiver {:?} is no longer configured", p.receiver))
        })?;
        let (kind, idx) = p
            .integration
            .split_once('/')
            .and_then(|(k, i)| Some((k, i.parse::<usize>().ok()?)))
            .ok_or_else(|| {
                PrepareError::Gone(format!("unknown integration {:?}", p.integration))
            })?;
        let x = RenderCtx {
            global: &st.global,
            base_dir: &st.base_dir,
            templates: &st.templates,
            data: &p.data,
            value: p.data.to_value(),
            route_labels: &p.route_labels,
            now,
            render_only: false,
            template_errors: Default::default(),
            log_store: st
                .nflog
                .get(&p.group_key, &p.receiver, &p.integration)
                .map(|e| e.store.clone())
                .unwrap_or_default(),
        };
        let gone = || {
            PrepareError::Gone(format!(
                "integration {} of receiver {:?} is no longer configured",
                p.integration, p.receiver
            ))
        };
        let prepared = super::send::prepare(r, kind, idx, &x)
            .ok_or_else(gone)?
            .map_err(PrepareError::Retry);
        let errors = x.template_errors.take();
        if !errors.is_empty() {
            self.metrics
                .notification_template_errors
                .get_or_create(&vec![
                    ("receiver".to_string(), p.receiver.clone()),
                    ("integration".to_string(), p.integration.clone()),
                ])
                .inc_by(errors.len() as u64);
            tracing::warn!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, errors = ?errors, "notification templates failed; sending with the errors in their place");
        }
        prepared
    }

    /// Records an attempt: the outbox moves on, the notification log
    /// learns what was delivered, metrics count it.
    fn finish(&self, key: &str, p: &Pending, outcome: Outcome, note: Note) {
        let now = self.clock.now_millis();
        let labels = vec![
            ("receiver".to_string(), p.receiver.clone()),
            ("integration".to_string(), p.integration.clone()),
        ];
        let len = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.outbox.complete(key, p, &outcome, now);
            // The log records what was sent: `p`, even when newer content
            // replaced it in the queue meanwhile.
            if matches!(outcome, Outcome::Delivered) {
                // The store carries over, with what this answer added.
                let mut store = st
                    .nflog
                    .get(&p.group_key, &p.receiver, &p.integration)
                    .map(|e| e.store.clone())
                    .unwrap_or_default();
                store.extend(note);
                st.nflog.log(
                    &p.group_key,
                    &p.receiver,
                    &p.integration,
                    LogEntry {
                        firing: p.firing.iter().copied().collect(),
                        resolved: p.resolved.iter().copied().collect(),
                        at: now,
                        store,
                    },
                );
                st.nflog_version += 1;
                self.delivered.notify_one();
            }
            st.outbox.len(key)
        };
        match &outcome {
            Outcome::Delivered => {
                self.metrics.receiver_sent.get_or_create(&labels).inc();
                self.metrics
                    .receiver_latency
                    .get_or_create(&labels)
                    .observe((now - p.enqueued_at).max(0) as f64 / 1000.0);
            }
            Outcome::Retry { reason, after } => {
                self.metrics.receiver_retried.get_or_create(&labels).inc();
                tracing::warn!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, attempt = p.attempts + 1, retry_after = ?after, error = %reason, "notification failed; will retry");
            }
            Outcome::Failed(reason) => {
                self.metrics.receiver_failed.get_or_create(&labels).inc();
                tracing::error!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, error = %reason, "notification failed permanently; dropped");
            }
            Outcome::Superseded => {
                self.metrics
                    .receiver_superseded
                    .get_or_create(&labels)
                    .inc();
                tracing::debug!(receiver = %p.receiver, integration = %p.integration, group = %p.group_key, "a peer delivered this notification; not sent");
            }
        }
        self.metrics
            .receiver_queue_length
            .get_or_create(&labels)
            .set(len as i64);
        self.save_state();
    }

    /// Turns a flush into notifications: for each integration of the
    /// receiver whose last notification (delivered, or still queued)
    /// differs from what the group says now, queue a new one.
    fn enqueue_flush(&self, f: &Flush) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A route muted now sends nothing and logs nothing: the group's
        // first flush after the interval sends what is new then.
        let muted = any_contains(&st.intervals, &f.mute_time_intervals, f.now)
            || (!f.active_time_intervals.is_empty()
                && !any_contains(&st.intervals, &f.active_time_intervals, f.now));
        if muted {
            tracing::debug!(receiver = %f.receiver, group = %f.group_key, "notification muted by a time interval");
            return;
        }
        // Inhibited and silenced alerts are left out before anything is
        // decided, as Alertmanager's mute stages do: they neither notify
        // nor enter the notification log.
        let mut f = f.clone();
        f.alerts.retain(|a| {
            !st.inhibitor.is_inhibited(a.fp, &a.alert.labels, f.now)
                && st.silences.mutes(&a.alert.labels, f.now).is_empty()
        });
        let Some(r) = st.receivers.get(&f.receiver).cloned() else {
            return;
        };
        let (firing, resolved) = f.sets();
        for i in integrations(&r) {
            let key = queue_key(&f.receiver, &i.name);
            let queued = st.outbox.pending_for(&key, &f.group_key).map(|p| LogEntry {
                firing: p.firing.iter().copied().collect(),
                resolved: p.resolved.iter().copied().collect(),
                at: p.enqueued_at,
                store: Default::default(),
            });
            let last = queued
                .as_ref()
                .or_else(|| st.nflog.get(&f.group_key, &f.receiver, &i.name));
            if !NotificationLog::needs_update(
                last,
                &firing,
                &resolved,
                i.send_resolved,
                f.repeat_interval_ms,
                f.now,
            ) {
                continue;
            }
            let kept = last.map(|e| e.store.clone()).unwrap_or_default();
            let alerts = alerts_to_send(&f, i.send_resolved);
            if alerts.is_empty() {
                // Nothing to say (resolves this integration does not
                // send): record it, and take back what was still queued.
                st.outbox.withdraw(&key, &f.group_key);
                st.nflog.log(
                    &f.group_key,
                    &f.receiver,
                    &i.name,
                    LogEntry {
                        firing: firing.clone(),
                        resolved: resolved.clone(),
                        at: f.now,
                        store: kept,
                    },
                );
                st.nflog_version += 1;
                continue;
            }
            let data = webhook_data(&f, &alerts, i.max_alerts, &self.external_url);
            let hold = self.peer_hold(f.now);
            tracing::debug!(receiver = %f.receiver, integration = %i.name, group = %f.group_key, firing = firing.len(), resolved = resolved.len(), hold_ms = hold, last_logged_at = ?last.map(|e| e.at), "notification queued");
            let dropped = st.outbox.enqueue(Pending {
                seq: 0,
                receiver: f.receiver.clone(),
                integration: i.name.clone(),
                group_key: f.group_key.clone(),
                firing: firing.iter().copied().collect(),
                resolved: resolved.iter().copied().collect(),
                data,
                route_labels: f.route_labels.clone(),
                enqueued_at: f.now,
                attempts: 0,
                next_attempt: f.now + hold,
                peer_check: (hold > 0).then_some(PeerCheck {
                    send_resolved: i.send_resolved,
                    repeat_ms: f.repeat_interval_ms,
                }),
                revision: 0,
            });
            let labels = vec![
                ("receiver".to_string(), f.receiver.clone()),
                ("integration".to_string(), i.name.clone()),
            ];
            if let Some(d) = dropped {
                tracing::error!(receiver = %d.receiver, integration = %d.integration, group = %d.group_key, "queue full: oldest notification dropped");
                self.metrics.receiver_dropped.get_or_create(&labels).inc();
            }
            self.metrics
                .receiver_queue_length
                .get_or_create(&labels)
                .set(st.outbox.len(&key) as i64);
        }
    }
}

impl AlertSink for Notifier {
    fn send(&self, alerts: Vec<Alert>) {
        let now = self.clock.now_millis();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.enabled {
            return;
        }
        // A resend that only pushes a firing alert's end further changes
        // nothing a restart needs (the saved life left still applies), so
        // it does not make the routed alerts file be written again.
        let mut changed = false;
        let shared: Vec<Arc<Alert>> = alerts.iter().cloned().map(Arc::new).collect();
        for a in &shared {
            let fp = fingerprint(&a.labels);
            st.inhibitor.observe(fp, a);
            changed |= st.alerts.get(&fp).is_none_or(|prev| {
                prev.annotations != a.annotations
                    || prev.starts_at != a.starts_at
                    || prev.generator_url != a.generator_url
                    || (prev.ends_at > now) != (a.ends_at > now)
            });
            st.alerts.insert(fp, Arc::clone(a));
            st.updated.insert(fp, now);
        }
        st.dispatcher.ingest_shared(&shared, now);
        if changed {
            st.alerts_version += 1;
        }
        {
            let mut w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            let routed = !w.0.is_empty()
                && alerts.iter().any(|a| {
                    a.ends_at > now
                        && a.labels.get("alertname") == Some(w.0.as_str())
                        && !st.dispatcher.receivers_of(&a.labels).is_empty()
                });
            if routed {
                w.1 = Some(now);
            }
        }
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
                alert: (**a).clone(),
                updated_at: st.updated.get(fp).copied().unwrap_or(now),
                receivers: st.dispatcher.receivers_of(&a.labels),
                inhibited: st.inhibitor.is_inhibited(*fp, &a.labels, now),
                silenced_by: st.silences.mutes(&a.labels, now),
            })
            .collect()
    }

    /// The aggregation groups with their labels, receiver and the
    /// fingerprints of their alerts.
    pub fn groups(&self) -> Vec<(crate::model::Labels, String, Vec<u64>)> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.dispatcher.groups()
    }

    /// The receivers' names, in file order.
    pub fn receiver_names(&self) -> Vec<String> {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.receiver_order.clone()
    }

    /// Saves the silences after an API change; if they cannot be saved,
    /// the change is undone and refused, so the caller never hears "done"
    /// for a silence a restart would forget.
    fn save_or_undo(&self, before: Silences) -> Result<(), SilenceError> {
        if let Err(e) = self.save_silences() {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.silences = before;
            st.silences_saved = UNSAVED;
            return Err(SilenceError::Storage(e.to_string()));
        }
        Ok(())
    }

    /// Creates or updates a silence (see [`Silences::set`]), saved before
    /// the answer; returns its ID.
    pub fn set_silence(&self, s: Silence) -> Result<String, SilenceError> {
        let (id, before) = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = st.silences.clone();
            (st.silences.set(s, self.clock.now_millis())?, before)
        };
        self.save_or_undo(before)?;
        self.delivered.notify_one();
        // A silence that ended may release alerts held back.
        self.wake.notify_one();
        Ok(id)
    }

    /// Expires a silence now, saved before the answer.
    pub fn expire_silence(&self, id: &str) -> Result<(), SilenceError> {
        let before = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let before = st.silences.clone();
            st.silences.expire(id, self.clock.now_millis())?;
            before
        };
        self.save_or_undo(before)?;
        self.delivered.notify_one();
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

/// What peers exchange in heartbeats: notification log entries and
/// silences.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct PeerSync {
    /// Notification log entries.
    #[serde(default)]
    pub nflog: Vec<super::dispatch::StoredEntry>,
    /// Silences.
    #[serde(default)]
    pub silences: Vec<super::silence::StoredSilence>,
}

impl Notifier {
    /// Sets how long new notifications are held for the peers that
    /// deliver before this instance (`hold_ms`), and a time until which
    /// they are held anyway (this instance has not yet heard from its
    /// peers since it started). Held notifications are sent only if the
    /// notification log, which peers share, does not show them sent.
    pub fn set_peer_hold(&self, hold_ms: i64, settle_until: i64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.peer_hold_ms.store(hold_ms.max(0), SeqCst);
        self.peer_settle_until.store(settle_until, SeqCst);
    }

    /// The hold for a notification queued at `now` (ms).
    fn peer_hold(&self, now: i64) -> i64 {
        use std::sync::atomic::Ordering::SeqCst;
        let settle = self.peer_settle_until.load(SeqCst).saturating_sub(now);
        self.peer_hold_ms.load(SeqCst).max(settle).max(0)
    }

    /// Whether a held notification was delivered by a peer meanwhile:
    /// the shared log shows what it would say, as Alertmanager's
    /// deduplication decides.
    fn delivered_by_peer(&self, p: &Pending, now: i64) -> bool {
        let Some(c) = p.peer_check else {
            return false;
        };
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        !NotificationLog::needs_update(
            st.nflog.get(&p.group_key, &p.receiver, &p.integration),
            &p.firing.iter().copied().collect(),
            &p.resolved.iter().copied().collect(),
            c.send_resolved,
            c.repeat_ms,
            now,
        )
    }

    /// Log entries and silences changed after `since` (ms; everything
    /// for `None`), for a heartbeat.
    pub fn peer_sync(&self, since: Option<i64>) -> PeerSync {
        let t = since.unwrap_or(i64::MIN);
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        PeerSync {
            nflog: st.nflog.entries_since(t),
            silences: st
                .silences
                .changed_since(t)
                .iter()
                .map(super::silence::StoredSilence::from)
                .collect(),
        }
    }

    /// Takes what a peer sent: newer log entries and silences win.
    /// `apart_since`: when the two were last known to be in contact, if
    /// they were apart (a partition or an outage); entries both logged
    /// for the same alerts since then are duplicates, and counted.
    /// Returns (entries taken, silences taken, duplicates).
    pub fn merge_peer_sync(&self, sync: PeerSync, apart_since: Option<i64>) -> (usize, usize, u64) {
        let (mut entries, mut silences, mut dups) = (0, 0, 0);
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for e in sync.nflog {
                let theirs = e.entry.clone();
                if let Some(mine) = st.nflog.merge(e) {
                    entries += 1;
                    if let (Some(m), Some(t)) = (mine, apart_since) {
                        if m.at > t && theirs.at > t && m.firing == theirs.firing {
                            dups += 1;
                        }
                    }
                }
            }
            for s in sync.silences {
                if let Ok(s) = s.into_silence() {
                    silences += usize::from(st.silences.merge(s));
                }
            }
            if entries > 0 {
                st.nflog_version += 1;
            }
        }
        if dups > 0 {
            self.metrics.peer_duplicates.inc_by(dups);
        }
        if entries > 0 || silences > 0 {
            self.save_state();
            if silences > 0 {
                // A failure is counted, shown and retried by the saver.
                let _ = self.save_silences();
            }
        }
        (entries, silences, dups)
    }

    /// The receiver integrations whose circuit breaker is open now, and
    /// how many integrations have queues.
    pub fn failing_integrations(&self) -> (Vec<String>, usize) {
        let now = self.clock.now_millis();
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let keys = st.outbox.keys();
        let failing = keys
            .iter()
            .filter(|k| st.outbox.breaker_open(k, now))
            .cloned()
            .collect();
        (failing, keys.len())
    }

    /// Woken after each delivery the notification log records and each
    /// silence change.
    pub fn delivered(&self) -> Arc<Notify> {
        self.delivered.clone()
    }

    /// Watches routing of alerts named `alertname` (the dead-man's
    /// switch's Watchdog); see [`last_routed`](Self::last_routed).
    pub fn watch_alertname(&self, alertname: &str) {
        let mut w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        if w.0 != alertname {
            *w = (alertname.to_string(), None);
        }
    }

    /// When a firing alert with the watched name last went through the
    /// route tree into a group (ms).
    pub fn last_routed(&self) -> Option<i64> {
        self.watched.lock().unwrap_or_else(|e| e.into_inner()).1
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
