//! The outbox: one queue per receiver integration, so a slow or dead
//! receiver never delays another. A queue delivers in order; its head is
//! retried with exponential backoff and jitter (never sooner than a
//! `Retry-After` the receiver asked for), a run of failures opens a
//! circuit breaker for a cooldown, and a rate limit (governor's GCRA over
//! argus's clock) spaces deliveries. A newer notification for a group
//! replaces one still waiting in the same queue, so an outage ends with
//! one message per group carrying the latest state, not a burst of stale
//! ones. The outbox is a state machine driven by explicit time and is
//! persisted by its owner, so a restart delivers what was not yet
//! delivered.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as GovClock;
use governor::nanos::Nanos;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use super::tmpl::NotificationData;
use crate::model::Clock;

/// One notification waiting for delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Position in the outbox (order of first enqueue).
    pub seq: u64,
    /// Receiver name.
    pub receiver: String,
    /// Integration within the receiver: `slack/0`, `webhook/1`, …
    pub integration: String,
    /// The group it is about.
    pub group_key: String,
    /// Firing fingerprints, for the notification log.
    pub firing: Vec<u64>,
    /// Resolved fingerprints, for the notification log.
    pub resolved: Vec<u64>,
    /// What the templates render.
    pub data: NotificationData,
    /// The route's labels (`routeLabels` in templates).
    #[serde(default)]
    pub route_labels: BTreeMap<String, String>,
    /// When it was first queued (ms), for the delivery latency.
    pub enqueued_at: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before (ms). A new entry keeps what the caller set (a peer's
    /// hold); a replaced one keeps its predecessor's.
    pub next_attempt: i64,
    /// Held for a peer that delivers first: at its turn, send only if
    /// the (shared) notification log does not show it delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_check: Option<PeerCheck>,
    /// Bumped each time newer content replaces the entry, so an attempt
    /// that was under way with the older content does not complete the
    /// newer one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub revision: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What deciding "already delivered by a peer" needs besides the log.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerCheck {
    /// The integration sends resolved notifications.
    pub send_resolved: bool,
    /// The route's repeat interval (ms).
    pub repeat_ms: i64,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Accepted by the receiver.
    Delivered,
    /// Failed in a way that may pass (connection error, timeout, 5xx,
    /// 429); `after` is the receiver's `Retry-After`, if it sent one.
    Retry {
        /// Why.
        reason: String,
        /// The receiver's requested wait.
        after: Option<Duration>,
    },
    /// Refused for good (a 4xx other than 429, an integration no longer
    /// configured): dropped.
    Failed(String),
    /// Not sent: a peer delivered it while it was held.
    Superseded,
}

/// Outbox settings.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxSettings {
    /// Most notifications waiting per integration; the oldest is dropped
    /// beyond it.
    pub capacity: usize,
    /// First retry delay.
    pub retry_initial_ms: i64,
    /// Longest retry delay.
    pub retry_max_ms: i64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open.
    pub breaker_cooldown_ms: i64,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        OutboxSettings {
            capacity: 1000,
            retry_initial_ms: 1_000,
            retry_max_ms: 5 * 60_000,
            breaker_failures: 5,
            breaker_cooldown_ms: 60_000,
        }
    }
}

/// governor's view of argus's clock, so rate limits follow injected time.
#[derive(Clone, Debug)]
pub struct LimiterClock(pub Arc<dyn Clock>);

impl GovClock for LimiterClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::new(self.0.now_millis().max(0) as u64 * 1_000_000)
    }
}

type Limiter = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    LimiterClock,
    governor::middleware::NoOpMiddleware<Nanos>,
>;

/// A rate: `n` deliveries per `per_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Deliveries…
    pub n: u32,
    /// …per this many milliseconds.
    pub per_ms: u64,
}

impl Rate {
    /// Parses `1/s`, `30/m`, `100/h`.
    pub fn parse(s: &str) -> Result<Rate, String> {
        crate::config::parse_rate(s).map(|(n, per_ms)| Rate { n, per_ms })
    }

    fn quota(&self) -> Option<Quota> {
        let period = Duration::from_millis(self.per_ms) / self.n;
        let burst = NonZeroU32::new(self.n.min(10))?;
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

struct Queue {
    entries: VecDeque<Pending>,
    consecutive_failures: u32,
    breaker_open_until: i64,
    limiter: Option<Limiter>,
    rate: Option<Rate>,
}

/// Counts of what happened, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Delivered.
    pub sent: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Dropped after a permanent failure.
    pub failed: u64,
    /// Dropped because the queue was full or the integration went away.
    pub dropped: u64,
    /// Not sent because a peer delivered them first.
    pub superseded: u64,
}

/// What [`Outbox::next`] found for a queue.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Deliver this now.
    Send(Box<Pending>),
    /// Nothing before this time (ms).
    At(i64),
    /// The queue is empty.
    Idle,
}

/// The queues.
pub struct Outbox {
    settings: OutboxSettings,
    clock: Arc<dyn Clock>,
    queues: BTreeMap<String, Queue>,
    counts: BTreeMap<String, QueueCounts>,
    seq: u64,
    version: u64,
}

/// The key of an integration's queue: `receiver/integration`.
pub fn queue_key(receiver: &str, integration: &str) -> String {
    format!("{receiver}/{integration}")
}

/// Deterministic jitter in [0.8, 1.2) from the entry and attempt, so that
/// many queues retrying after one outage spread out.
fn jitter(seq: u64, attempt: u32) -> f64 {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (attempt as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 29;
    0.8 + (x % 4000) as f64 / 10_000.0
}

impl Outbox {
    /// An empty outbox.
    pub fn new(settings: OutboxSettings, clock: Arc<dyn Clock>) -> Outbox {
        Outbox {
            settings,
            clock,
            queues: BTreeMap::new(),
            counts: BTreeMap::new(),
            seq: 0,
            version: 0,
        }
    }

    /// Changes the settings (reload); queues and their entries stay.
    pub fn set_settings(&mut self, s: OutboxSettings) {
        self.settings = s;
    }

    fn queue(&mut self, key: &str) -> &mut Queue {
        self.queues.entry(key.to_string()).or_insert_with(|| Queue {
            entries: VecDeque::new(),
            consecutive_failures: 0,
            breaker_open_until: i64::MIN,
            limiter: None,
            rate: None,
        })
    }

    /// Sets the rate limit of a queue (`None`: unlimited).
    pub fn set_rate(&mut self, key: &str, rate: Option<Rate>) {
        let clock = self.clock.clone();
        let q = self.queue(key);
        if q.rate == rate {
            return;
        }
        q.rate = rate;
        q.limiter = rate
            .and_then(|r| r.quota())
            .map(|quota| RateLimiter::direct_with_clock(quota, LimiterClock(clock)));
    }

    /// Queues `p` (its `seq`, `attempts` and `next_attempt` are set here).
    /// A notification for the same group waiting in the same queue is
    /// replaced in place, keeping its position and backoff. Returns the
    /// entry dropped to make room, if the queue was full.
    pub fn enqueue(&mut self, mut p: Pending) -> Option<Pending> {
        let key = queue_key(&p.receiver, &p.integration);
        self.version += 1;
        let cap = self.settings.capacity.max(1);
        let seq = self.seq + 1;
        let q = self.queue(&key);
        if let Some(e) = q.entries.iter_mut().find(|e| e.group_key == p.group_key) {
            p.seq = e.seq;
            p.attempts = e.attempts;
            p.next_attempt = e.next_attempt;
            p.enqueued_at = e.enqueued_at;
            p.revision = e.revision.wrapping_add(1);
            *e = p;
            return None;
        }
        p.seq = seq;
        p.attempts = 0;
        q.entries.push_back(p);
        let dropped = if q.entries.len() > cap {
            q.entries.pop_front()
        } else {
            None
        };
        self.seq = seq;
        if dropped.is_some() {
            self.counts.entry(key).or_default().dropped += 1;
        }
        dropped
    }

    /// What queue `key` should do at `now`. Taking a `Send` uses a rate
    /// limit token; the caller must report the attempt with
    /// [`complete`](Self::complete).
    pub fn next(&mut self, key: &str, now: i64) -> Next {
        let Some(q) = self.queues.get_mut(key) else {
            return Next::Idle;
        };
        let Some(head) = q.entries.front() else {
            return Next::Idle;
        };
        let not_before = head.next_attempt.max(q.breaker_open_until);
        if now < not_before {
            return Next::At(not_before);
        }
        if let Some(l) = &q.limiter {
            if let Err(nu) = l.check() {
                let wait = nu.wait_time_from(LimiterClock(self.clock.clone()).now());
                return Next::At(now + (wait.as_millis() as i64).max(1));
            }
        }
        Next::Send(Box::new(head.clone()))
    }

    /// Records the result of delivering entry `seq` of queue `key` at
    /// `now`; returns the entry when it left the queue (delivered or
    /// failed for good).
    pub fn complete(
        &mut self,
        key: &str,
        attempted: &Pending,
        outcome: &Outcome,
        now: i64,
    ) -> Option<Pending> {
        let settings = self.settings.clone();
        let q = self.queues.get_mut(key)?;
        let pos = q.entries.iter().position(|e| e.seq == attempted.seq)?;
        self.version += 1;
        let counts = self.counts.entry(key.to_string()).or_default();
        // Newer content took the entry's place while the attempt was under
        // way: what the attempt sent is done with, the newer content still
        // has to go.
        let replaced = q.entries[pos].revision != attempted.revision;
        let take = |q: &mut Queue| {
            if replaced {
                None
            } else {
                q.entries.remove(pos)
            }
        };
        match outcome {
            Outcome::Delivered => {
                q.consecutive_failures = 0;
                counts.sent += 1;
                take(q)
            }
            Outcome::Failed(_) => {
                counts.failed += 1;
                take(q)
            }
            Outcome::Superseded => {
                counts.superseded += 1;
                take(q)
            }
            Outcome::Retry { after, .. } => {
                counts.retried += 1;
                q.consecutive_failures += 1;
                let e = &mut q.entries[pos];
                e.attempts += 1;
                let exp = settings
                    .retry_initial_ms
                    .saturating_mul(1i64 << (e.attempts - 1).min(30))
                    .min(settings.retry_max_ms);
                let backoff = (exp as f64 * jitter(e.seq, e.attempts)) as i64;
                let asked = after.map_or(0, |d| d.as_millis() as i64);
                e.next_attempt = now + backoff.max(asked);
                if q.consecutive_failures >= settings.breaker_failures.max(1) {
                    q.breaker_open_until = (now + settings.breaker_cooldown_ms).max(e.next_attempt);
                    // Half-open after the cooldown: one success closes it.
                    q.consecutive_failures = settings.breaker_failures.max(1) - 1;
                }
                None
            }
        }
    }

    /// Drops the queues (and their entries) not in `keep`; returns what
    /// was dropped.
    pub fn retain_queues(&mut self, keep: &dyn Fn(&str) -> bool) -> Vec<Pending> {
        let gone: Vec<String> = self.queues.keys().filter(|k| !keep(k)).cloned().collect();
        let mut out = Vec::new();
        for k in gone {
            if let Some(q) = self.queues.remove(&k) {
                if !q.entries.is_empty() {
                    self.version += 1;
                    self.counts.entry(k).or_default().dropped += q.entries.len() as u64;
                }
                out.extend(q.entries);
            }
        }
        out
    }

    /// The notification waiting in queue `key` for `group_key`.
    pub fn pending_for(&self, key: &str, group_key: &str) -> Option<&Pending> {
        self.queues
            .get(key)?
            .entries
            .iter()
            .find(|e| e.group_key == group_key)
    }

    /// Takes back the notification waiting in queue `key` for
    /// `group_key` (it no longer has anything to say).
    pub fn withdraw(&mut self, key: &str, group_key: &str) -> Option<Pending> {
        let q = self.queues.get_mut(key)?;
        let pos = q.entries.iter().position(|e| e.group_key == group_key)?;
        self.version += 1;
        q.entries.remove(pos)
    }

    /// Keys of the queues.
    pub fn keys(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// Entries waiting in queue `key`.
    pub fn len(&self, key: &str) -> usize {
        self.queues.get(key).map_or(0, |q| q.entries.len())
    }

    /// True when nothing waits anywhere.
    pub fn is_empty(&self) -> bool {
        self.queues.values().all(|q| q.entries.is_empty())
    }

    /// Whether the breaker of queue `key` is open at `now`.
    pub fn breaker_open(&self, key: &str, now: i64) -> bool {
        self.queues
            .get(key)
            .is_some_and(|q| now < q.breaker_open_until)
    }

    /// Counts per queue.
    pub fn counts(&self) -> &BTreeMap<String, QueueCounts> {
        &self.counts
    }

    /// The change counter (the owner saves when it moved).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every waiting entry, for the state file.
    pub fn to_json(&self) -> Vec<u8> {
        crate::model::records::to_json_records(self.queues.values().flat_map(|q| q.entries.iter()))
    }

    /// Queues the entries of a state file (or its older one-document
    /// form), in their original order; damaged records are skipped and
    /// returned.
    pub fn restore(
        &mut self,
        b: &[u8],
    ) -> Result<(usize, Vec<crate::model::RecordDamage>), String> {
        #[derive(Deserialize)]
        struct File {
            version: u32,
            pending: Vec<Pending>,
        }
        let (mut all, damage) = match crate::model::records::json_records::<Pending>(b) {
            Some(r) => r,
            None => {
                let f: File = serde_json::from_slice(b).map_err(|e| e.to_string())?;
                if f.version != 1 {
                    return Err(format!("unknown outbox file version {}", f.version));
                }
                (f.pending, Vec::new())
            }
        };
        all.sort_by_key(|p| p.seq);
        let n = all.len();
        for p in all {
            let key = queue_key(&p.receiver, &p.integration);
            self.seq = self.seq.max(p.seq);
            self.queue(&key).entries.push_back(p);
        }
        self.version += 1;
        Ok((n, damage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ManualClock;

    fn pending(group: &str) -> Pending {
        Pending {
            seq: 0,
            receiver: "r".into(),
            integration: "slack/0".into(),
            group_key: group.into(),
            firing: vec![1],
            resolved: vec![],
            data: NotificationData::default(),
            route_labels: BTreeMap::new(),
            enqueued_at: 0,
            attempts: 0,
            next_attempt: 0,
            peer_check: None,
            revision: 0,
        }
    }

    /// A group's newer notification queued while its older one is being
    /// sent replaces it in the queue; the older attempt succeeding must
    /// not take the newer one out (it would never be sent).
    #[test]
    fn content_replaced_during_an_attempt_is_still_sent() {
        let clock = Arc::new(ManualClock::new(0));
        let mut o = Outbox::new(OutboxSettings::default(), clock);
        o.enqueue(pending("g"));
        let k = "r/slack/0";
        let Next::Send(sent) = o.next(k, 0) else {
            panic!("not sent")
        };
        let mut newer = pending("g");
        newer.firing = vec![];
        newer.resolved = vec![1];
        o.enqueue(newer);
        assert!(o.complete(k, &sent, &Outcome::Delivered, 10).is_none());
        let Next::Send(next) = o.next(k, 10) else {
            panic!("the newer content was dropped")
        };
        assert_eq!(next.resolved, vec![1]);
        assert_eq!(next.seq, sent.seq);
        assert!(o.complete(k, &next, &Outcome::Delivered, 20).is_some());
        assert!(matches!(o.next(k, 20), Next::Idle));
    }

    fn retry() -> Outcome {
        Outcome::Retry {
            reason: "503".into(),
            after: None,
        }
    }

    #[test]
    fn retries_back_off_honour_retry_after_and_open_the_breaker() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut o = Outbox::new(OutboxSettings::default(), clock.clone());
        o.enqueue(pending("g1"));
        o.enqueue(pending("g2"));
        let k = "r/slack/0";
        let Next::Send(p) = o.next(k, 1_000_000) else {
            panic!()
        };
        assert_eq!(p.group_key, "g1");
        o.complete(k, &p, &retry(), 1_000_000);
        // Head-of-line: g2 waits behind g1's backoff (order is kept).
        let Next::At(t) = o.next(k, 1_000_000) else {
            panic!()
        };
        assert!((1_000_800..1_001_200).contains(&t), "{t}");
        // Retry-After longer than the backoff wins.
        let Next::Send(p) = o.next(k, t) else {
            panic!()
        };
        o.complete(
            k,
            &p,
            &Outcome::Retry {
                reason: "429".into(),
                after: Some(Duration::from_secs(30)),
            },
            t,
        );
        assert_eq!(o.next(k, t), Next::At(t + 30_000));
        // A newer notification for g1 replaces the waiting one in place.
        let mut newer = pending("g1");
        newer.firing = vec![1, 2];
        o.enqueue(newer);
        assert_eq!(o.len(k), 2);
        // Five failures in a row open the breaker for the cooldown.
        let mut now = t + 30_000;
        for _ in 0..3 {
            let Next::Send(p) = o.next(k, now) else {
                panic!()
            };
            assert_eq!(p.firing, vec![1, 2]);
            o.complete(k, &p, &retry(), now);
            let Next::At(n) = o.next(k, now) else {
                panic!()
            };
            now = n;
        }
        assert!(o.breaker_open(k, now - 1));
        let Next::Send(p) = o.next(k, now) else {
            panic!()
        };
        assert_eq!(
            o.complete(k, &p, &Outcome::Delivered, now)
                .unwrap()
                .group_key,
            "g1"
        );
        let Next::Send(p) = o.next(k, now) else {
            panic!()
        };
        assert_eq!(p.group_key, "g2");
        assert_eq!(o.counts()[k].retried, 5);
        assert_eq!(o.counts()[k].sent, 1);
    }

    #[test]
    fn rate_limit_spaces_deliveries_and_state_survives() {
        let clock = Arc::new(ManualClock::new(5_000_000));
        let mut o = Outbox::new(OutboxSettings::default(), clock.clone());
        let k = "r/slack/0";
        o.set_rate(k, Some(Rate::parse("1/s").unwrap()));
        for g in ["a", "b", "c"] {
            o.enqueue(pending(g));
        }
        let restored_from = o.to_json();
        let now = clock.now_millis();
        let Next::Send(p) = o.next(k, now) else {
            panic!()
        };
        o.complete(k, &p, &Outcome::Delivered, now);
        assert_eq!(o.next(k, now), Next::At(now + 1000));
        clock.set(now + 1000);
        assert!(matches!(o.next(k, now + 1000), Next::Send(_)));

        let mut back = Outbox::new(OutboxSettings::default(), clock.clone());
        assert_eq!(back.restore(&restored_from).unwrap(), (3, Vec::new()));
        let Next::Send(p) = back.next(k, now) else {
            panic!()
        };
        assert_eq!(p.group_key, "a");
        assert!(Rate::parse("0/s").is_err());
        assert!(Rate::parse("3/d").is_err());
        assert_eq!(
            Rate::parse("30/m").unwrap(),
            Rate {
                n: 30,
                per_ms: 60_000
            }
        );
    }

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let clock = Arc::new(ManualClock::new(0));
        let mut o = Outbox::new(
            OutboxSettings {
                capacity: 2,
                ..OutboxSettings::default()
            },
            clock,
        );
        assert!(o.enqueue(pending("a")).is_none());
        assert!(o.enqueue(pending("b")).is_none());
        assert_eq!(o.enqueue(pending("c")).unwrap().group_key, "a");
        assert_eq!(o.counts()["r/slack/0"].dropped, 1);
    }
}
