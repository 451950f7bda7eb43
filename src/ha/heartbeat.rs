//! Peer heartbeats: signing, checking, the peers' state, and what it
//! decides (the delivery hold, `ArgusPeerDown`, the `argus_peer_*`
//! series).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::PeersConfig;
use crate::model::{Alert, AlertSink, Clock, Labels};
use crate::notify::{Notifier, PeerSync};
use crate::telemetry::Metrics;

/// Header with the sender's time (Unix ms) the signature covers.
pub const HEADER_TIMESTAMP: &str = "x-argus-peer-timestamp";
/// Header with `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
pub const HEADER_SIGNATURE: &str = "x-argus-peer-signature";
/// The shortest gap between heartbeats sent early, after deliveries.
const EARLY_GAP: Duration = Duration::from_millis(20);
/// Every this many heartbeat intervals a peer sends its whole state,
/// not only what changed: what a lost heartbeat missed is repaired.
const FULL_SYNC_EVERY: i64 = 12;

/// One heartbeat's body.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Heartbeat {
    /// The sender's id.
    pub id: String,
    /// When the sender started (Unix ms): a change means it restarted.
    pub start_time: i64,
    /// The sender's [`config_hash`](super::config_hash).
    pub config_hash: String,
    /// The sender's clock when it sent this (Unix ms); equal to the
    /// signed timestamp header.
    pub time: i64,
    /// `sync` holds the sender's whole state, not only changes.
    pub full: bool,
    /// Notification log entries and silences.
    pub sync: PeerSync,
}

/// Why a heartbeat was refused (the `reason` of
/// `argus_peer_heartbeat_failures_total`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// No peers are configured here.
    #[error("peers are not configured")]
    NotConfigured,
    /// Timestamp or signature header missing.
    #[error("unsigned heartbeat")]
    Unsigned,
    /// The signature does not match the body and timestamp.
    #[error("bad signature")]
    BadSignature,
    /// The body is not a heartbeat, or its time is not the signed one.
    #[error("malformed heartbeat: {0}")]
    Malformed(String),
    /// The sender is not a member (or is this instance).
    #[error("unknown peer {0:?}")]
    UnknownPeer(String),
    /// The timestamp is further from this instance's clock than the
    /// peer timeout: too old to be live, or from a badly skewed clock.
    #[error("timestamp outside the accepted window")]
    Stale,
    /// Not newer than the last heartbeat accepted from the sender.
    #[error("replayed heartbeat")]
    Replayed,
}

impl Reject {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Reject::NotConfigured => "not_configured",
            Reject::Unsigned => "unsigned",
            Reject::BadSignature => "bad_signature",
            Reject::Malformed(_) => "malformed",
            Reject::UnknownPeer(_) => "unknown_peer",
            Reject::Stale => "stale",
            Reject::Replayed => "replayed",
        }
    }
}

/// The peers' shared secret from `secret_file`, surrounding whitespace
/// removed; an unreadable or empty file is an error naming the key.
pub fn read_secret(p: &PeersConfig) -> Result<Vec<u8>, String> {
    let s = std::fs::read(&p.secret_file)
        .map_err(|e| format!("peers.secret_file {:?}: cannot read: {e}", p.secret_file))?;
    let s = s.trim_ascii().to_vec();
    if s.is_empty() {
        return Err(format!("peers.secret_file {:?} is empty", p.secret_file));
    }
    Ok(s)
}

/// The signature header value for `body` sent at `ts`.
pub fn sign(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(ts.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    let hex: String = m
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// Reads [`PEERS_FILE`]; a missing file is no state, a damaged one is
/// logged and ignored (it costs at most one repeated ArgusPeerDown).
fn load_saved_peers(dir: &std::path::Path) -> SavedPeers {
    let path = dir.join(PEERS_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "the peers' state is damaged; starting without it");
            SavedPeers::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SavedPeers::default(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the peers' state; starting without it");
            SavedPeers::default()
        }
    }
}

/// How often a refused heartbeat is logged at most.
const REFUSAL_LOG_INTERVAL_MS: i64 = 1000;

/// The `id` a heartbeat body claims, read without building the rest of
/// the document.
fn claimed_id(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Claim<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Claim<'_>>(body).ok().map(|c| c.id)
}

/// Checks a signature header in constant time.
fn verify(secret: &[u8], ts: i64, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(sig) = decode_hex(hex) else {
        return false;
    };
    let mut m = mac(secret);
    m.update(ts.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What this instance knows of one other peer.
#[derive(Clone, Debug, Default)]
struct PeerState {
    url: String,
    position: usize,
    /// Our clock when its last valid heartbeat arrived.
    last_seen: Option<i64>,
    /// Its clock in that heartbeat (replay guard: must increase).
    last_ts: i64,
    start_time: Option<i64>,
    config_hash: Option<String>,
    skew_ms: i64,
    up: bool,
    /// When it went down (it was up before, or never came up).
    down_since: Option<i64>,
    /// It has sent its whole state since we started.
    synced: bool,
    /// The `ArgusPeerDown` raised for it: its start, and until when its
    /// resolve is sent (`i64::MAX` while firing).
    down_alert: Option<(i64, i64)>,
    /// Sending: the build time of the last heartbeat it accepted (what
    /// the next one covers changes since), whether the next must be
    /// full, and when the last full one was accepted.
    sent_ok_at: Option<i64>,
    send_full: bool,
    full_ok_at: Option<i64>,
}

/// A peer as `/api/v1/peers` shows it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// Its place in delivery order (0 first).
    pub position: usize,
    /// Heartbeats arrive within the timeout.
    pub up: bool,
    /// This instance.
    pub is_self: bool,
    /// When its last valid heartbeat arrived (Unix ms).
    pub last_heartbeat: Option<i64>,
    /// Its clock minus ours (ms).
    pub clock_skew_ms: i64,
    /// Its config hash differs from ours.
    pub config_mismatch: bool,
}

struct Inner {
    /// Peers down when this instance last ran, taken by `apply` for
    /// members it has not seen yet.
    restored_down: BTreeMap<String, i64>,
    /// What [`PEERS_FILE`] holds now.
    saved: SavedPeers,
    /// When a refused heartbeat was last logged, and how many have been
    /// refused since without a line.
    refusal_logged_at: Option<i64>,
    refusals_suppressed: u64,
    cfg: Option<PeersConfig>,
    secret: Vec<u8>,
    config_hash: String,
    self_position: usize,
    peers: BTreeMap<String, PeerState>,
}

/// This instance's view of its peers.
pub struct Peers {
    inner: Mutex<Inner>,
    notifier: Arc<Notifier>,
    /// Where `ArgusPeerDown` and `ArgusPeerConfigMismatch` go (argus's
    /// own routing, and forwarding).
    sink: Arc<dyn AlertSink>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    client: reqwest::Client,
    started_at: i64,
    external_url: String,
    /// Where [`PEERS_FILE`] lives, if anywhere.
    state_dir: Option<std::path::PathBuf>,
}

/// File under the storage directory with the peers that were down when it
/// was written, and since when: a restarted instance keeps their
/// `ArgusPeerDown` firing with its original start instead of resolving it
/// and paging again once the timeout has passed.
pub const PEERS_FILE: &str = "peers.json";

/// What [`PEERS_FILE`] holds.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct SavedPeers {
    /// Peer id → when it went down (ms).
    down: BTreeMap<String, i64>,
}

impl Peers {
    /// No peers yet; [`apply`](Self::apply) configures them. With a
    /// `state_dir`, peers that were down when this instance last ran start
    /// down (see [`PEERS_FILE`]).
    pub fn new(
        notifier: Arc<Notifier>,
        sink: Arc<dyn AlertSink>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
        external_url: &str,
        state_dir: Option<&std::path::Path>,
    ) -> Peers {
        let started_at = clock.now_millis();
        let saved = state_dir.map(load_saved_peers).unwrap_or_default();
        Peers {
            state_dir: state_dir.map(std::path::Path::to_path_buf),
            inner: Mutex::new(Inner {
                restored_down: saved.down.clone(),
                saved,
                refusal_logged_at: None,
                refusals_suppressed: 0,
                cfg: None,
                secret: Vec::new(),
                config_hash: String::new(),
                self_position: 0,
                peers: BTreeMap::new(),
            }),
            notifier,
            sink,
            metrics,
            clock,
            client: crate::net::build_client(None).unwrap_or_default(),
            started_at,
            external_url: external_url.to_string(),
        }
    }

    /// Takes `peers` (and the config hash to announce); reads the secret
    /// file now. Peers that stay keep their state. Without peers the
    /// hold is lifted.
    pub fn apply(&self, peers: Option<&PeersConfig>, config_hash: String) -> Result<(), String> {
        let secret = match peers {
            Some(p) => read_secret(p)?,
            None => Vec::new(),
        };
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        st.secret = secret;
        st.config_hash = config_hash;
        st.cfg = peers.cloned();
        let Some(p) = peers else {
            st.peers.clear();
            drop(st);
            self.notifier.set_peer_hold(0, i64::MIN);
            return Ok(());
        };
        st.self_position = p
            .members
            .iter()
            .position(|m| m.id == p.self_id)
            .unwrap_or(0);
        let mut peers = BTreeMap::new();
        for (i, m) in p.members.iter().enumerate() {
            if m.id == p.self_id {
                continue;
            }
            let restored = st.restored_down.remove(&m.id);
            let mut ps = st.peers.remove(&m.id).unwrap_or_else(|| PeerState {
                send_full: true,
                // Down when we stopped: down now, with the same alert,
                // until a heartbeat says otherwise.
                down_since: restored,
                down_alert: restored.map(|t| (t, i64::MAX)),
                ..Default::default()
            });
            ps.url = m.url.trim_end_matches('/').to_string();
            ps.position = i;
            peers.insert(m.id.clone(), ps);
        }
        st.peers = peers;
        drop(st);
        self.tick();
        Ok(())
    }

    /// Whether peers are configured.
    pub fn enabled(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cfg
            .is_some()
    }

    /// Checks and takes a heartbeat (`ts` and `signature`: the headers).
    pub fn receive(
        &self,
        ts: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Reject> {
        let res = self.check_and_take(ts, signature, body);
        if let Err(e) = &res {
            // Whatever the request claims is only a label or a log field
            // when it names a configured member: an unauthenticated caller
            // must not create series or write into the log.
            let claimed = claimed_id(body);
            let (peer, log_now, suppressed) = {
                let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                let peer = match claimed {
                    Some(id) if st.peers.contains_key(id.as_ref()) => id.into_owned(),
                    _ => "unknown".to_string(),
                };
                let now = self.clock.now_millis();
                let due = st
                    .refusal_logged_at
                    .is_none_or(|t| now - t >= REFUSAL_LOG_INTERVAL_MS);
                let suppressed = std::mem::take(&mut st.refusals_suppressed);
                if due {
                    st.refusal_logged_at = Some(now);
                } else {
                    st.refusals_suppressed = suppressed + 1;
                }
                (peer, due, suppressed)
            };
            self.metrics
                .peer_heartbeat_failures
                .get_or_create(&vec![
                    ("peer".to_string(), peer.clone()),
                    ("reason".to_string(), e.reason().to_string()),
                ])
                .inc();
            // The body and its signature are never logged; at most one
            // line a second, with the count of those left out.
            if log_now {
                let reason: String = e.to_string().chars().take(200).collect();
                tracing::warn!(
                    claimed_peer = %peer,
                    reason = ?reason,
                    refusals_not_logged = suppressed,
                    "heartbeat refused"
                );
            }
        }
        res
    }

    fn check_and_take(
        &self,
        ts: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Reject> {
        let now = self.clock.now_millis();
        let (sync, full, apart_since) = {
            let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Some(cfg) = st.cfg.clone() else {
                return Err(Reject::NotConfigured);
            };
            let (Some(ts), Some(sig)) = (ts, signature) else {
                return Err(Reject::Unsigned);
            };
            let ts: i64 = ts.trim().parse().map_err(|_| Reject::Unsigned)?;
            if !verify(&st.secret, ts, body, sig) {
                return Err(Reject::BadSignature);
            }
            let hb: Heartbeat =
                serde_json::from_slice(body).map_err(|e| Reject::Malformed(e.to_string()))?;
            if hb.time != ts {
                return Err(Reject::Malformed(
                    "the body's time is not the signed timestamp".into(),
                ));
            }
            if (now - ts).abs() > cfg.timeout.as_millis() {
                return Err(Reject::Stale);
            }
            let hash = st.config_hash.clone();
            let Some(p) = st.peers.get_mut(&hb.id) else {
                return Err(Reject::UnknownPeer(hb.id));
            };
            if ts <= p.last_ts {
                return Err(Reject::Replayed);
            }
            let apart_since = if p.up { None } else { p.last_seen };
            if p.start_time.is_some_and(|s| s != hb.start_time) {
                // It restarted: it needs everything we know.
                p.send_full = true;
                p.synced = false;
            }
            p.last_ts = ts;
            p.last_seen = Some(now);
            p.start_time = Some(hb.start_time);
            p.skew_ms = ts - now;
            if p.config_hash.as_deref() != Some(hb.config_hash.as_str()) {
                if hb.config_hash != hash {
                    tracing::warn!(peer = %hb.id, "the peer runs a different configuration");
                }
                p.config_hash = Some(hb.config_hash);
            }
            if hb.full {
                p.synced = true;
            }
            (hb.sync, hb.full, apart_since)
        };
        let (entries, silences, dups) = self.notifier.merge_peer_sync(sync, apart_since);
        if entries + silences > 0 || dups > 0 {
            tracing::debug!(
                entries,
                silences,
                duplicates = dups,
                full,
                "peer state merged"
            );
        }
        self.tick();
        Ok(())
    }

    /// Recomputes who is up, the delivery hold, the `argus_peer_*`
    /// series and the peer alerts. Runs every heartbeat interval and
    /// after every heartbeat received.
    pub fn tick(&self) {
        let now = self.clock.now_millis();
        let mut alerts = Vec::new();
        let (hold, settle_until) = {
            let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Some(cfg) = st.cfg.clone() else {
                return;
            };
            let timeout = cfg.timeout.as_millis();
            let self_pos = st.self_position;
            let own_hash = st.config_hash.clone();
            let settle_deadline = self.started_at + timeout;
            let mut live_before = 0i64;
            let mut all_synced = true;
            for (id, p) in st.peers.iter_mut() {
                let was_up = p.up;
                p.up = p.last_seen.is_some_and(|t| now - t <= timeout);
                if was_up && !p.up {
                    p.down_since = Some(now);
                    p.send_full = true;
                    tracing::error!(peer = %id, url = %p.url, "peer is down: no valid heartbeat within the timeout");
                } else if !was_up && p.up {
                    if p.down_since.is_some() {
                        tracing::info!(peer = %id, "peer is up again");
                    }
                    p.down_since = None;
                } else if !p.up && p.down_since.is_none() && now >= settle_deadline {
                    // Never heard from since we started.
                    p.down_since = Some(self.started_at);
                    tracing::error!(peer = %id, url = %p.url, "peer is down: no heartbeat since this instance started");
                }
                if p.up && p.position < self_pos {
                    live_before += 1;
                }
                all_synced &= p.synced || !p.up && now >= settle_deadline;
                let l = vec![("peer".to_string(), id.clone())];
                self.metrics.peer_up.get_or_create(&l).set(i64::from(p.up));
                if let Some(t) = p.last_seen {
                    self.metrics
                        .peer_last_heartbeat
                        .get_or_create(&l)
                        .set(t as f64 / 1000.0);
                    self.metrics
                        .peer_clock_skew
                        .get_or_create(&l)
                        .set(p.skew_ms as f64 / 1000.0);
                }
                let mismatch = p.up && p.config_hash.as_ref().is_some_and(|h| h != &own_hash);
                alerts.extend(self.peer_alerts(&cfg, id, p, mismatch, now));
            }
            // Until every peer has sent its whole state (or turned out to
            // be down), this instance may not know what they delivered.
            let settle_until = if all_synced {
                i64::MIN
            } else {
                settle_deadline
            };
            (live_before * timeout, settle_until)
        };
        self.notifier.set_peer_hold(hold, settle_until);
        if !alerts.is_empty() {
            self.sink.send(alerts);
        }
        self.save_if_changed();
    }

    /// Writes [`PEERS_FILE`] when the set of down peers changed.
    fn save_if_changed(&self) {
        let Some(dir) = &self.state_dir else {
            return;
        };
        let body = {
            let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let now = SavedPeers {
                down: st
                    .peers
                    .iter()
                    .filter_map(|(id, p)| Some((id.clone(), p.down_since?)))
                    .collect(),
            };
            if now == st.saved {
                return;
            }
            let body = serde_json::to_vec(&now).unwrap_or_default();
            st.saved = now;
            body
        };
        if let Err(e) = crate::model::write_atomic(dir, PEERS_FILE, &body) {
            self.metrics
                .state_write_failures
                .get_or_create(&vec![("file".to_string(), PEERS_FILE.to_string())])
                .inc();
            tracing::error!(file = PEERS_FILE, error = %e, "cannot write the peers' state; a restart may page ArgusPeerDown again");
        }
    }

    /// `ArgusPeerDown` while the peer is down (then resolved for a
    /// timeout, so the resolve reaches routing even if a tick is
    /// missed), `ArgusPeerConfigMismatch` while its config hash differs.
    fn peer_alerts(
        &self,
        cfg: &PeersConfig,
        id: &str,
        p: &mut PeerState,
        mismatch: bool,
        now: i64,
    ) -> Vec<Alert> {
        // Firing alerts are resent every tick; like rule alerts they
        // carry an end a few intervals ahead.
        let live_end = now + 4 * cfg.heartbeat_interval.as_millis().max(1000);
        let alert = |name: &str, severity: &str, summary: String, description: String| Alert {
            // Every survivor raises the same alert (no label names the
            // reporter), so the shared log deduplicates their copies.
            labels: Labels::from_pairs([("alertname", name), ("severity", severity), ("peer", id)]),
            annotations: BTreeMap::from([
                ("summary".to_string(), summary),
                ("description".to_string(), description),
                (
                    "runbook".to_string(),
                    format!("docs/runbooks.md#{}", name.to_ascii_lowercase()),
                ),
                ("reported_by".to_string(), cfg.self_id.clone()),
            ]),
            starts_at: now,
            ends_at: live_end,
            generator_url: format!("{}/api/v1/peers", self.external_url),
        };
        let mut out = Vec::new();
        let mut down = alert(
            "ArgusPeerDown",
            "critical",
            format!("argus peer {id} is down"),
            format!(
                "No valid heartbeat from {id} ({}) for more than {}; {} delivers in its place.",
                p.url, cfg.timeout, cfg.self_id
            ),
        );
        match (p.down_since, p.down_alert) {
            (Some(since), _) => {
                down.starts_at = since;
                p.down_alert = Some((since, i64::MAX));
                out.push(down);
            }
            (None, Some((since, until))) => {
                let until = if until == i64::MAX {
                    now + cfg.timeout.as_millis()
                } else {
                    until
                };
                down.starts_at = since;
                down.ends_at = now;
                p.down_alert = (now < until).then_some((since, until));
                out.push(down);
            }
            (None, None) => {}
        }
        if mismatch {
            out.push(alert(
                "ArgusPeerConfigMismatch",
                "warning",
                format!("argus peer {id} runs a different configuration"),
                format!(
                    "The configuration hash of {id} differs from {}'s: the peers may fire and route differently.",
                    cfg.self_id
                ),
            ));
        }
        out
    }

    /// Sends one round of heartbeats, to every other member at once.
    pub async fn send_heartbeats(self: &Arc<Self>) {
        let now = self.clock.now_millis();
        let targets: Vec<(String, String, bool, Option<i64>)> = {
            let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Some(cfg) = &st.cfg else {
                return;
            };
            let full_every = FULL_SYNC_EVERY * cfg.heartbeat_interval.as_millis();
            st.peers
                .iter()
                .map(|(id, p)| {
                    let full = p.send_full || p.full_ok_at.is_none_or(|t| now - t >= full_every);
                    (id.clone(), p.url.clone(), full, p.sent_ok_at)
                })
                .collect()
        };
        let sends = targets
            .into_iter()
            .map(|(id, url, full, since)| self.send_one(id, url, full, since));
        futures_util::future::join_all(sends).await;
        self.tick();
    }

    async fn send_one(&self, id: String, url: String, full: bool, since: Option<i64>) {
        let built_at = self.clock.now_millis();
        let (body, secret, timeout) = {
            let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let Some(cfg) = &st.cfg else { return };
            // Entries logged in the same millisecond as the last build
            // are sent again rather than missed.
            let sync = self
                .notifier
                .peer_sync(if full { None } else { since.map(|t| t - 1) });
            let hb = Heartbeat {
                id: cfg.self_id.clone(),
                start_time: self.started_at,
                config_hash: st.config_hash.clone(),
                time: built_at,
                full,
                sync,
            };
            (
                serde_json::to_vec(&hb).unwrap_or_default(),
                st.secret.clone(),
                cfg.heartbeat_interval.0.max(Duration::from_secs(1)),
            )
        };
        let res = self
            .client
            .post(format!("{url}/api/v1/peers/heartbeat"))
            .header("content-type", "application/json")
            .header(HEADER_TIMESTAMP, built_at.to_string())
            .header(HEADER_SIGNATURE, sign(&secret, built_at, &body))
            .timeout(timeout)
            .body(body)
            .send()
            .await;
        let failure = match res {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(("refused", format!("HTTP {}", r.status()))),
            Err(e) => Some(("unreachable", crate::net::error_chain(&e))),
        };
        let mut st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = st.peers.get_mut(&id) else {
            return;
        };
        match failure {
            None => {
                p.sent_ok_at = Some(built_at);
                if full {
                    p.send_full = false;
                    p.full_ok_at = Some(built_at);
                }
            }
            Some((reason, detail)) => {
                // What it missed goes in the next successful one.
                p.send_full = true;
                self.metrics
                    .peer_heartbeat_failures
                    .get_or_create(&vec![
                        ("peer".to_string(), id.clone()),
                        ("reason".to_string(), reason.to_string()),
                    ])
                    .inc();
                tracing::debug!(peer = %id, error = %detail, "heartbeat not delivered");
            }
        }
    }

    /// Sends heartbeats every `heartbeat_interval` until `stop`, and soon
    /// after each delivery (at most every [`EARLY_GAP`]): a peer learns
    /// of a delivery within milliseconds, not an interval, so a peer
    /// killed right after delivering leaves almost nothing for its
    /// partner to repeat.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let delivered = self.notifier.delivered();
        loop {
            let every = {
                let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                st.cfg
                    .as_ref()
                    .map_or(Duration::from_secs(1), |c| c.heartbeat_interval.0)
            };
            self.send_heartbeats().await;
            let next = tokio::time::sleep(every);
            tokio::pin!(next);
            tokio::select! {
                _ = &mut next => {}
                _ = delivered.notified() => {
                    // Gather what else is delivered meanwhile.
                    tokio::time::sleep(EARLY_GAP).await;
                }
                _ = stop.changed() => return,
            }
        }
    }

    /// Every member with what this instance knows of it.
    pub fn status(&self) -> Vec<PeerStatus> {
        let st = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(cfg) = &st.cfg else {
            return Vec::new();
        };
        cfg.members
            .iter()
            .enumerate()
            .map(|(i, m)| match st.peers.get(&m.id) {
                Some(p) => PeerStatus {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    position: i,
                    up: p.up,
                    is_self: false,
                    last_heartbeat: p.last_seen,
                    clock_skew_ms: p.skew_ms,
                    config_mismatch: p.config_hash.as_ref().is_some_and(|h| h != &st.config_hash),
                },
                None => PeerStatus {
                    id: m.id.clone(),
                    url: m.url.clone(),
                    position: i,
                    up: true,
                    is_self: true,
                    last_heartbeat: None,
                    clock_skew_ms: 0,
                    config_mismatch: false,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_time_and_body() {
        let s = sign(b"k", 1000, b"{}");
        assert!(s.starts_with("sha256=") && s.len() == 7 + 64, "{s}");
        assert!(verify(b"k", 1000, b"{}", &s));
        assert!(!verify(b"k", 1001, b"{}", &s), "another time");
        assert!(!verify(b"k", 1000, b"{ }", &s), "another body");
        assert!(!verify(b"j", 1000, b"{}", &s), "another secret");
        assert!(!verify(b"k", 1000, b"{}", "sha256=zz"));
        assert!(!verify(b"k", 1000, b"{}", &s[..s.len() - 2]));
    }
}
