//! One scrape loop per target: fetch with a deadline and size limit, parse,
//! relabel, append with staleness, and report the synthetic series.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::cache::SeriesCache;
use super::client::{Connection, FetchError, ScrapeClient};
use super::parse::{Entry, Format, ParseError, Parser};
use super::proto::{ProtoError, ProtoValue};
use super::relabel::{Relabel, process};
use super::target::Target;
use crate::config::ScrapeConfig;

/// Above this, a target's body buffer is freed after each scrape rather
/// than kept for the next.
const KEPT_BODY_CAPACITY: usize = 16 << 20;
use crate::model::histogram::FloatHistogram;
use crate::model::{Clock, Labels, LabelsBuilder, METRIC_NAME, Timestamp, stale_nan};
use crate::storage::{Appender, SeriesRef, StorageError};
use crate::telemetry::Metrics;

/// Something that hands out appenders (the head, later a remote writer).
pub trait Appendable: Send + Sync {
    /// A new transaction expecting about `size_hint` samples.
    fn appender(&self, size_hint: usize) -> Box<dyn Appender>;
}

impl Appendable for Arc<crate::storage::Head> {
    fn appender(&self, size_hint: usize) -> Box<dyn Appender> {
        Box::new(crate::storage::Head::appender_with_capacity(
            self, size_hint,
        ))
    }
}

/// A sample's value as it goes to storage.
enum Val {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

/// Why a scrape failed; the text is what `lastError` shows.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScrapeError {
    /// Transport-level failure.
    #[error("{0}")]
    Http(String),
    /// Non-2xx status.
    #[error("server returned HTTP status {0}")]
    Status(String),
    /// The deadline passed.
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    /// The answer is not an exposition format.
    #[error("{0}")]
    ContentType(String),
    /// The body exceeded `body_size_limit` (or argus's default ceiling).
    #[error("body size limit exceeded ({0} bytes)")]
    BodyTooLarge(u64),
    /// Exposition syntax error.
    #[error("parse error: {0}")]
    Parse(#[from] ParseError),
    /// The protobuf body does not decode.
    #[error("{0}")]
    Proto(#[from] ProtoError),
    /// More samples than `sample_limit`.
    #[error("sample limit exceeded: {got} > {limit}")]
    SampleLimit {
        /// Samples after relabeling.
        got: u64,
        /// Configured limit.
        limit: u64,
    },
    /// A label limit was exceeded.
    #[error("{0}")]
    LabelLimit(String),
    /// The same series appeared twice in one scrape.
    #[error("duplicate series in one scrape: {0}")]
    DuplicateSeries(String),
    /// A sample lost its metric name in relabeling.
    #[error("metric relabeling removed __name__ from {0}")]
    NoName(String),
    /// Storage refused a series.
    #[error("storage: {0}")]
    Storage(String),
    /// Credentials could not be read.
    #[error("{0}")]
    Auth(String),
}

/// Health of a target as the targets API shows it.
#[derive(Clone, Debug, Default)]
pub struct TargetHealth {
    /// `up`, `down` or `unknown` before the first scrape.
    pub health: &'static str,
    /// Error of the last scrape, empty if it succeeded.
    pub last_error: String,
    /// Start of the last scrape (ms).
    pub last_scrape: Option<Timestamp>,
    /// Duration of the last scrape.
    pub last_duration: Duration,
}

/// Body buffers shared by all loops. Scrapes rarely overlap, so a few
/// buffers serve every target and their memory does not grow with the
/// number of targets.
#[derive(Default)]
pub struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    const KEEP: usize = 8;
    const MAX_CAPACITY: usize = 16 << 20;

    /// A buffer, empty, possibly with capacity from an earlier scrape.
    pub fn get(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Returns a buffer; one of unusual size is dropped instead.
    pub fn put(&self, mut v: Vec<u8>) {
        if v.capacity() > Self::MAX_CAPACITY {
            return;
        }
        v.clear();
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < Self::KEEP {
            p.push(v);
        }
    }
}

/// Per-job settings every loop of the job shares.
pub struct JobSettings {
    /// The job's config.
    pub cfg: ScrapeConfig,
    /// Compiled metric_relabel_configs.
    pub metric_relabel: Vec<Relabel>,
    /// The `Accept` header of its `scrape_protocols`.
    pub accept: String,
}

/// What the loop remembers about one series line of the exposition:
/// 24 bytes, one cached line of every target's every series.
struct CacheEntry {
    /// The series' reference, or [`DROPPED`] when metric relabeling
    /// dropped it (a bare `u64`: `Option` would double it).
    r: u64,
    /// Iteration that last saw the line, and the one before that (0:
    /// none). 32 bits, compared only for equality: an entry unseen in a
    /// pass is forgotten, so a wrapped counter never meets its old value.
    seen: u32,
    prev_seen: u32,
    /// The last sample carried its own timestamp (no staleness for those).
    explicit: bool,
}

/// Loop state that lives across scrapes.
struct State {
    /// Raw series bytes → entry. Keys are the exposition's own bytes, so a
    /// steady-state scrape never decodes or relabels a label set.
    cache: SeriesCache<CacheEntry>,
    iter: u32,
    /// Iteration of the last successful scrape; its series are the ones a
    /// stale marker is owed to when they vanish.
    prev_ok: Option<u32>,
    report_refs: HashMap<&'static str, SeriesRef>,
    /// Samples of this scrape refused for a timestamp too far ahead.
    refused_ahead: u64,
    /// The last scrape had refused samples (so a change is logged once,
    /// not every scrape).
    refusing: bool,
    /// The cache's heap bytes as last added to `argus_scrape_cache_bytes`.
    cache_bytes: i64,
}

/// How far ahead of the scrape an explicit timestamp may be, as
/// Prometheus allows: one bad clock must not poison a series (every later
/// sample would be out of order).
const MAX_AHEAD_MS: i64 = 10 * 60 * 1000;

/// [`CacheEntry::r`] of a dropped line: no series reference is this
/// large (they are 32-bit ids).
const DROPPED: u64 = u64::MAX;

impl CacheEntry {
    /// The series, unless metric relabeling dropped the line.
    fn series(&self) -> Option<SeriesRef> {
        (self.r != DROPPED).then_some(SeriesRef(self.r))
    }
}

impl State {
    /// Is this entry owed a stale marker if it is not seen again?
    fn was_live(&self, e: &CacheEntry) -> bool {
        e.series().is_some()
            && !e.explicit
            && self
                .prev_ok
                .is_some_and(|p| e.seen == p || (e.seen == self.iter && e.prev_seen == p))
    }
}

/// A running scrape loop's inputs.
pub struct ScrapeLoop {
    /// What to scrape.
    pub target: Target,
    /// Job settings.
    pub job: Arc<JobSettings>,
    /// Where samples go.
    pub sink: Arc<dyn Appendable>,
    /// Timestamp source.
    pub clock: Arc<dyn Clock>,
    /// Self metrics.
    pub metrics: Arc<Metrics>,
    /// Shared status for the API.
    pub health: Arc<Mutex<TargetHealth>>,
    /// How the job's targets are reached.
    pub client: Arc<ScrapeClient>,
    /// Shared body buffers.
    pub buffers: Arc<BufferPool>,
    /// How far a scrape's timestamp may be moved onto the loop's schedule
    /// (zero: never). See [`Aligner`].
    pub timestamp_tolerance: Duration,
}

/// Default of `--scrape.timestamp-tolerance`, Prometheus's.
pub const DEFAULT_TIMESTAMP_TOLERANCE: Duration = Duration::from_millis(2);

/// Snaps scrape timestamps onto the loop's schedule when a tick comes
/// within a tolerance of it, as Prometheus does (its
/// `--scrape.timestamp-tolerance`). Timer ticks are a millisecond or two
/// late at random; with the raw time every sample of a series pays a
/// delta-of-delta of 16 bits in its chunk instead of one bit, which is
/// most of an open chunk's size when values do not change.
///
/// The schedule is anchored at the first scrape and steps by the
/// interval. A single late tick keeps its real time and leaves the anchor
/// where it was; two misses in a row mean the timer and the wall clock
/// drifted apart (a clock step or slew), and the schedule is re-anchored
/// at the real time.
#[derive(Clone, Debug)]
pub struct Aligner {
    interval: i64,
    tolerance: i64,
    anchor: Option<i64>,
    last: Timestamp,
    missed: bool,
}

impl Aligner {
    /// An aligner for a loop of `interval`; the tolerance is at most 1% of
    /// the interval, so a timestamp never moves by a noticeable share of
    /// it.
    pub fn new(interval: Duration, tolerance: Duration) -> Self {
        let interval = interval.as_millis().max(1) as i64;
        Aligner {
            interval,
            tolerance: (tolerance.as_millis() as i64).min(interval / 100),
            anchor: None,
            last: Timestamp::MIN,
            missed: false,
        }
    }

    /// The timestamp for a scrape started at `now`: the nearest slot of
    /// the schedule if `now` is within the tolerance of it and after the
    /// last timestamp given, else `now`.
    pub fn align(&mut self, now: Timestamp) -> Timestamp {
        let ts = match self.anchor {
            Some(a) if self.tolerance > 0 => {
                let k = (now - a + self.interval / 2).div_euclid(self.interval);
                let slot = a.saturating_add(k.saturating_mul(self.interval));
                if (now - slot).abs() <= self.tolerance && slot > self.last {
                    self.missed = false;
                    slot
                } else {
                    if self.missed {
                        self.anchor = Some(now);
                    }
                    self.missed = !self.missed;
                    now
                }
            }
            _ => {
                self.anchor = Some(now);
                now
            }
        };
        self.last = ts;
        ts
    }
}

/// How a loop should end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    Run,
    /// Stop and mark every series stale (target went away).
    Stale,
    /// Stop quietly (shutdown or reload: the series live on).
    Quiet,
}

const REPORT: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    /// Runs until `stop` says otherwise. The first scrape waits for the
    /// target's slot: a deterministic offset within the interval derived
    /// from the target hash, so targets spread out and keep their phase
    /// across restarts.
    pub async fn run(self, mut stop: watch::Receiver<Stop>) {
        let interval = self.target.interval;
        let ims = interval.as_millis().max(1) as i64;
        let phase = (self.target.hash() % ims as u64) as i64;
        let wait = (phase - self.clock.now_millis().rem_euclid(ims)).rem_euclid(ims);
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + Duration::from_millis(wait as u64),
            interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut st = State {
            cache: SeriesCache::default(),
            iter: 0,
            prev_ok: None,
            report_refs: HashMap::new(),
            refused_ahead: 0,
            refusing: false,
            cache_bytes: 0,
        };
        // Parsed once, not at every request.
        let mut url: Option<reqwest::Url> = None;
        let mut aligner = Aligner::new(interval, self.timestamp_tolerance);
        let mut conn = Connection::default();
        let mode = loop {
            tokio::select! {
                _ = ticker.tick() => {}
                r = stop.changed() => {
                    if r.is_err() { break Stop::Quiet; }
                    let m = *stop.borrow();
                    if m != Stop::Run { break m; }
                    continue;
                }
            }
            let ts = aligner.align(self.clock.now_millis());
            let started = Instant::now();
            let u = match &mut url {
                Some(u) => &*u,
                None => match reqwest::Url::parse(&self.target.url) {
                    Ok(u) => &*url.insert(u),
                    Err(e) => {
                        let e = format!("invalid target URL {:?}: {e}", self.target.url);
                        self.process(&mut st, Err(ScrapeError::Http(e)), ts, started);
                        continue;
                    }
                },
            };
            let mut body = self.buffers.get();
            let fetched = tokio::select! {
                r = tokio::time::timeout(self.target.timeout, self.fetch(u, &mut body, &mut conn)) => {
                    r.unwrap_or(Err(ScrapeError::Timeout(self.target.timeout)))
                }
                r = stop.changed() => {
                    let m = if r.is_err() { Stop::Quiet } else { *stop.borrow() };
                    if m != Stop::Run { break m; }
                    continue;
                }
            };
            self.process(&mut st, fetched.map(|f| (&body[..], f)), ts, started);
            self.buffers.put(body);
        };
        if mode == Stop::Stale {
            let ts = self.clock.now_millis();
            let mut app = self.sink.appender(st.cache.len());
            self.stale_all(&mut st, &mut *app, ts);
            for name in REPORT {
                if let Some(r) = st.report_refs.get(name) {
                    let _ = app.append_ref(*r, ts, stale_nan());
                }
            }
            app.commit();
        }
        self.metrics.scrape_cache_bytes.dec_by(st.cache_bytes);
    }

    fn process(
        &self,
        st: &mut State,
        fetched: Result<(&[u8], Format), ScrapeError>,
        ts: Timestamp,
        started: Instant,
    ) {
        // Zero stands for "never" in `prev_seen`.
        st.iter = st.iter.wrapping_add(1).max(1);
        let job = vec![("scrape_job".to_string(), self.job.cfg.job_name.clone())];
        self.metrics.scrapes.get_or_create(&job).inc();
        let mut app = self.sink.appender(st.cache.len() + REPORT.len());
        let result =
            fetched.and_then(|(body, format)| self.append_body(st, &mut *app, body, format, ts));
        let (scraped, post, added, err) = match result {
            Ok((a, b, c)) => (a, b, c, None),
            Err(e) => {
                app.rollback();
                if matches!(e, ScrapeError::SampleLimit { .. }) {
                    self.metrics.scrape_sample_limit_exceeded.inc();
                }
                self.stale_all(st, &mut *app, ts);
                // Lines first met in the failed pass were never committed.
                let k = st.iter;
                st.cache.retain(|e| !(e.seen == k && e.prev_seen == 0));
                (0, 0, 0, Some(e))
            }
        };
        let dur = started.elapsed();
        let up = if err.is_none() { 1.0 } else { 0.0 };
        let values = [
            up,
            dur.as_secs_f64(),
            scraped as f64,
            post as f64,
            added as f64,
        ];
        for (name, v) in REPORT.iter().zip(values) {
            self.append_report(st, &mut *app, name, ts, v);
        }
        let outcome = app.commit();
        self.count_refused(st, &outcome);
        if outcome.unknown_ref > 0 {
            // Retention removed series this loop still referenced (possible
            // only for series whose samples were all refused). Start over
            // from labels on the next scrape; the loss is counted.
            tracing::warn!(target_url = %self.target.url, samples = outcome.unknown_ref, "series references expired; rebuilding the scrape cache");
            st.cache.clear();
            st.report_refs.clear();
            st.prev_ok = None;
        }
        self.metrics
            .scrape_duration
            .get_or_create(&job)
            .observe(dur.as_secs_f64());
        if err.is_some() {
            self.metrics.scrape_failures.get_or_create(&job).inc();
        }
        let bytes = st.cache.heap_size() as i64;
        self.metrics
            .scrape_cache_bytes
            .inc_by(bytes - st.cache_bytes);
        st.cache_bytes = bytes;
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.health = if err.is_none() { "up" } else { "down" };
        h.last_error = err.as_ref().map(|e| e.to_string()).unwrap_or_default();
        h.last_scrape = Some(ts);
        h.last_duration = dur;
        if let Some(e) = err {
            tracing::debug!(target_url = %self.target.url, error = %e, "scrape failed");
        }
    }

    /// Counts the samples of a scrape the store refused (as Prometheus's
    /// `prometheus_target_scrapes_sample_*` counters do) and logs when a
    /// target starts or stops sending them; the scrape itself stays up.
    fn count_refused(&self, st: &mut State, outcome: &crate::storage::AppendOutcome) {
        let bounds = outcome.out_of_bounds + std::mem::take(&mut st.refused_ahead);
        let job = || vec![("scrape_job".to_string(), self.job.cfg.job_name.clone())];
        for (family, n) in [
            (&self.metrics.scrape_out_of_bounds, bounds),
            (&self.metrics.scrape_out_of_order, outcome.out_of_order),
            (&self.metrics.scrape_duplicate_timestamp, outcome.duplicate),
        ] {
            if n > 0 {
                family.get_or_create(&job()).inc_by(n);
            }
        }
        let refusing = bounds + outcome.out_of_order + outcome.duplicate > 0;
        if refusing && !st.refusing {
            tracing::warn!(
                target_url = %self.target.url,
                out_of_bounds = bounds,
                out_of_order = outcome.out_of_order,
                duplicate_timestamp = outcome.duplicate,
                "samples refused: timestamps too old, too far ahead (over 10m), out of order or repeated with another value"
            );
        } else if !refusing && st.refusing {
            tracing::info!(target_url = %self.target.url, "samples accepted again");
        }
        st.refusing = refusing;
    }

    fn append_report(
        &self,
        st: &mut State,
        app: &mut dyn Appender,
        name: &'static str,
        ts: Timestamp,
        v: f64,
    ) {
        if let Some(r) = st.report_refs.get(name) {
            if app.append_ref(*r, ts, v).is_ok() {
                return;
            }
        }
        let mut b = self.target.labels.builder();
        b.set_str(METRIC_NAME, name);
        if let Ok(r) = app.append(&b.build(), ts, v) {
            st.report_refs.insert(name, r);
        }
    }

    /// Marks every series of the last good scrape stale (scrape failed or
    /// the target went away).
    fn stale_all(&self, st: &mut State, app: &mut dyn Appender, ts: Timestamp) {
        for e in st.cache.values() {
            if let (true, Some(r)) = (st.was_live(e), e.series()) {
                let _ = app.append_ref(r, ts, stale_nan());
            }
        }
        st.prev_ok = None;
    }

    /// Fetches the body into `body` (cleared first, capacity reused).
    async fn fetch(
        &self,
        url: &reqwest::Url,
        body: &mut Vec<u8>,
        conn: &mut Connection,
    ) -> Result<Format, ScrapeError> {
        body.clear();
        // One large (or refused) body must not pin its memory for the
        // target's lifetime.
        if body.capacity() > KEPT_BODY_CAPACITY {
            *body = Vec::new();
        }
        let cfg = &self.job.cfg;
        let auth = crate::credentials_of!(cfg)
            .authorization()
            .map_err(ScrapeError::Auth)?;
        let timeout = format!("{}", self.target.timeout.as_secs_f64());
        let headers = [
            ("Accept", self.job.accept.as_str()),
            ("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION"))),
            ("X-Prometheus-Scrape-Timeout-Seconds", timeout.as_str()),
        ];
        let limit = crate::config::effective_body_size_limit(cfg.body_size_limit);
        let answer = self
            .client
            .get(conn, url, &headers, auth.as_deref(), body, limit)
            .await
            .map_err(|e| match e {
                FetchError::Http(m) => ScrapeError::Http(m),
                FetchError::TooLarge(l) => ScrapeError::BodyTooLarge(l),
            })?;
        if !answer.status.is_success() {
            return Err(ScrapeError::Status(answer.status.to_string()));
        }
        Format::from_content_type(answer.content_type.as_deref()).map_err(ScrapeError::ContentType)
    }

    /// Parses `body` into `app`. Returns (scraped, post-relabel, added).
    fn append_body(
        &self,
        st: &mut State,
        app: &mut dyn Appender,
        body: &[u8],
        format: Format,
        ts: Timestamp,
    ) -> Result<(u64, u64, u64), ScrapeError> {
        let mut counts = (0u64, 0u64, 0u64);
        let mut lb = LabelsBuilder::new();
        st.cache.start_pass();
        if format == Format::Protobuf {
            let samples = super::proto::parse(body, self.job.cfg.always_scrape_classic_histograms)?;
            for s in samples {
                let v = match s.value {
                    ProtoValue::Float(v) => Val::Float(v),
                    ProtoValue::Histogram(h) => Val::Histogram(Arc::new(h)),
                };
                self.append_sample(
                    st,
                    app,
                    &mut counts,
                    (&s.series, v, s.timestamp),
                    ts,
                    |lb| {
                        for (k, v) in &s.labels {
                            if lb.get(k).is_some() {
                                return Err(ScrapeError::Proto(ProtoError {
                                    offset: 0,
                                    msg: format!("duplicate label {k:?} in {}", s.labels[0].1),
                                }));
                            }
                            lb.set(Arc::from(k.as_str()), Arc::from(v.as_str()));
                        }
                        Ok(())
                    },
                    &mut lb,
                )?;
            }
        } else {
            let mut p = Parser::new(body, format);
            while let Some(e) = p.next()? {
                let Entry::Sample(s) = e else { continue };
                let sample = (s.series, Val::Float(s.value), s.timestamp);
                self.append_sample(
                    st,
                    app,
                    &mut counts,
                    sample,
                    ts,
                    |lb| Ok(p.labels(lb)?),
                    &mut lb,
                )?;
            }
        }
        // Series of the last good scrape that are gone now get a stale
        // marker; entries not seen this time are forgotten.
        let (k, prev_ok) = (st.iter, st.prev_ok);
        st.cache.retain(|e| {
            if e.seen == k {
                return true;
            }
            if let (Some(p), Some(r), false) = (prev_ok, e.series(), e.explicit) {
                if e.seen == p {
                    let _ = app.append_ref(r, ts, stale_nan());
                }
            }
            false
        });
        st.prev_ok = Some(k);
        Ok(counts)
    }

    /// One exposed sample: (series key, value, own timestamp). `labels`
    /// decodes the series' labels, only when the cache misses. Counts go
    /// to (scraped, post-relabel, added).
    #[allow(clippy::too_many_arguments)]
    fn append_sample(
        &self,
        st: &mut State,
        app: &mut dyn Appender,
        counts: &mut (u64, u64, u64),
        (series, value, timestamp): (&[u8], Val, Option<i64>),
        ts: Timestamp,
        labels: impl FnOnce(&mut LabelsBuilder) -> Result<(), ScrapeError>,
        lb: &mut LabelsBuilder,
    ) -> Result<(), ScrapeError> {
        let cfg = &self.job.cfg;
        let k = st.iter;
        counts.0 += 1;
        let explicit = timestamp.is_some() && cfg.honor_timestamps;
        let t = if explicit {
            timestamp.unwrap_or(ts)
        } else {
            ts
        };
        let ahead = t > ts.saturating_add(MAX_AHEAD_MS);
        match st.cache.get_mut(series) {
            Some(e) => {
                if e.seen == k {
                    return Err(ScrapeError::DuplicateSeries(
                        String::from_utf8_lossy(series).replace('\0', " "),
                    ));
                }
                e.prev_seen = e.seen;
                e.seen = k;
                e.explicit = explicit;
                let Some(r) = e.series() else { return Ok(()) };
                if ahead {
                    st.refused_ahead += 1;
                    return Ok(());
                }
                match value {
                    Val::Float(v) => app.append_ref(r, t, v),
                    Val::Histogram(h) => app.append_histogram_ref(r, t, h),
                }
                .map_err(|e| ScrapeError::Storage(e.to_string()))?;
            }
            None => {
                labels(lb)?;
                let r = match self.sample_labels(lb)? {
                    None => None,
                    // Not cached: the series' next sample may be fine.
                    Some(_) if ahead => {
                        st.refused_ahead += 1;
                        return Ok(());
                    }
                    Some(l) => {
                        counts.2 += 1;
                        let r = match value {
                            Val::Float(v) => app.append(&l, t, v),
                            Val::Histogram(h) => app.append_histogram(&l, t, h),
                        };
                        Some(r.map_err(|e| storage_err(e, &l))?)
                    }
                };
                st.cache.insert(
                    series,
                    CacheEntry {
                        r: r.map_or(DROPPED, |x| x.0),
                        seen: k,
                        prev_seen: 0,
                        explicit,
                    },
                );
                if r.is_none() {
                    return Ok(());
                }
            }
        }
        counts.1 += 1;
        let sample_limit = cfg.sample_limit.unwrap_or(0);
        if sample_limit > 0 && counts.1 > sample_limit {
            return Err(ScrapeError::SampleLimit {
                got: counts.1,
                limit: sample_limit,
            });
        }
        Ok(())
    }

    /// Target labels, honor_labels, metric relabeling and label limits.
    /// `None` means metric relabeling dropped the sample.
    fn sample_labels(&self, lb: &mut LabelsBuilder) -> Result<Option<Labels>, ScrapeError> {
        let cfg = &self.job.cfg;
        for tl in self.target.labels.iter() {
            match lb.get(&tl.name) {
                Some(_) if cfg.honor_labels => {}
                Some(existing) => {
                    // Move the scraped value aside, as exported_<name>,
                    // prefixing again while that name is taken too.
                    let existing: Arc<str> = Arc::from(existing);
                    let mut name = format!("exported_{}", tl.name);
                    while lb.get(&name).is_some() {
                        name = format!("exported_{name}");
                    }
                    lb.set(Arc::from(name), existing);
                    lb.set(tl.name.clone(), tl.value.clone());
                }
                None => lb.set(tl.name.clone(), tl.value.clone()),
            }
        }
        if !process(lb, &self.job.metric_relabel) {
            return Ok(None);
        }
        let labels = std::mem::take(lb).build();
        if labels.metric_name().is_none() {
            return Err(ScrapeError::NoName(labels.to_string()));
        }
        // One check for all three limits; the detail is only formatted on failure.
        let metric = labels.metric_name().unwrap_or("");
        let check =
            |limit: Option<u64>, got: usize, what: &str, detail: &dyn Fn() -> String| match limit {
                Some(l) if l > 0 && got as u64 > l => Err(ScrapeError::LabelLimit(format!(
                    "{what} exceeded (metric: {metric}, {}, limit: {l})",
                    detail()
                ))),
                _ => Ok(()),
            };
        check(cfg.label_limit, labels.len(), "label_limit", &|| {
            format!("number of labels: {}", labels.len())
        })?;
        for x in labels.iter() {
            check(
                cfg.label_name_length_limit,
                x.name.len(),
                "label_name_length_limit",
                &|| format!("label name: {}, length: {}", x.name, x.name.len()),
            )?;
            check(
                cfg.label_value_length_limit,
                x.value.len(),
                "label_value_length_limit",
                &|| format!("label name: {}, value length: {}", x.name, x.value.len()),
            )?;
        }
        Ok(Some(labels))
    }
}

fn storage_err(e: StorageError, l: &Labels) -> ScrapeError {
    ScrapeError::Storage(format!("{e} for {l}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cached line costs its key, 16 bytes of slot and this entry: one
    /// of them for every series of every target.
    #[test]
    fn a_cache_entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<CacheEntry>(), 24);
        let e = CacheEntry {
            r: DROPPED,
            seen: 1,
            prev_seen: 0,
            explicit: false,
        };
        assert_eq!(e.series(), None);
        let e = CacheEntry { r: 7, ..e };
        assert_eq!(e.series(), Some(SeriesRef(7)));
    }

    /// Ticks a little late land on the schedule; a single late tick keeps
    /// its own time and the schedule; a drift re-anchors it; a clock step
    /// back never repeats or reorders a timestamp.
    #[test]
    fn aligner_snaps_to_the_schedule_within_the_tolerance() {
        let mut a = Aligner::new(Duration::from_secs(1), DEFAULT_TIMESTAMP_TOLERANCE);
        assert_eq!(a.align(10_000), 10_000);
        assert_eq!(a.align(11_001), 11_000);
        assert_eq!(a.align(12_002), 12_000);
        assert_eq!(a.align(12_999), 13_000, "early by a millisecond");
        assert_eq!(a.align(14_007), 14_007, "late beyond the tolerance");
        assert_eq!(a.align(15_001), 15_000, "the schedule is kept");
        // Drift: the timer now runs 5 ms after the schedule.
        assert_eq!(a.align(16_005), 16_005);
        assert_eq!(a.align(17_005), 17_005);
        assert_eq!(a.align(18_006), 18_005, "re-anchored after two misses");
        assert_eq!(a.align(19_005), 19_005);
        // The wall clock steps back by a second: the slot would repeat
        // 19_005, so the real time is used; the next ticks are on the
        // schedule again.
        assert_eq!(a.align(19_006), 19_006);
        assert_eq!(a.align(20_006), 20_005);
        assert_eq!(a.align(21_007), 21_005);
        // 1% of a 100 ms interval is 1 ms; off means the real time.
        let mut a = Aligner::new(Duration::from_millis(100), DEFAULT_TIMESTAMP_TOLERANCE);
        assert_eq!(a.align(0), 0);
        assert_eq!(a.align(102), 102);
        let mut a = Aligner::new(Duration::from_secs(15), Duration::ZERO);
        assert_eq!(a.align(0), 0);
        assert_eq!(a.align(15_001), 15_001);
    }
}
