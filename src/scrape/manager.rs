//! The target manager: one pool per job, discovery feeding target sync,
//! loops started and stopped as targets come and go, and config reload
//! that leaves unchanged jobs running.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::ScrapeClient;
use super::discovery::{TargetGroup, run_file_sd, run_http_sd, static_groups};
use super::relabel::Relabel;
use super::scrape_loop::{Appendable, BufferPool, JobSettings, ScrapeLoop, Stop, TargetHealth};
use super::target::{Built, Target, build_targets};
use crate::config::{Config, ScrapeConfig};
use crate::model::{Clock, Labels};
use crate::telemetry::Metrics;

/// Errors building a job.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// TLS files could not be read or used.
    #[error("job {job:?}: tls_config: {msg}")]
    Tls {
        /// Job name.
        job: String,
        /// What failed.
        msg: String,
    },
    /// A regex failed to compile (validation should have caught it).
    #[error("job {job:?}: {msg}")]
    Relabel {
        /// Job name.
        job: String,
        /// What failed.
        msg: String,
    },
}

struct LoopHandle {
    target: Target,
    health: Arc<Mutex<TargetHealth>>,
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct PoolState {
    active: HashMap<u64, LoopHandle>,
    /// Targets dropped by relabeling, at most `keep_dropped_targets`.
    dropped: Vec<Labels>,
    /// All targets dropped by relabeling, kept or not.
    dropped_count: usize,
    invalid: Vec<(Labels, String)>,
}

struct Pool {
    cfg: ScrapeConfig,
    state: Arc<Mutex<PoolState>>,
    /// Discovery and target-sync tasks.
    tasks: Vec<JoinHandle<()>>,
    job: Arc<JobSettings>,
    relabel: Arc<Vec<Relabel>>,
    client: Arc<ScrapeClient>,
}

/// Starts a discovery that asks over HTTP (http_sd, Consul): its client
/// from `tls`, then `run`. A client that cannot be built (a CA or key
/// file unreadable now) is the same failure at every refresh: reported
/// once, and no targets.
fn spawn_http_discovery<R, F>(
    tls: Option<&crate::config::TlsConfig>,
    what: &str,
    tx: watch::Sender<Vec<TargetGroup>>,
    report: R,
    run: impl FnOnce(reqwest::Client, watch::Sender<Vec<TargetGroup>>, R) -> F,
) -> JoinHandle<()>
where
    R: Fn(String) + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match crate::net::build_client(tls) {
        Ok(c) => tokio::spawn(run(c, tx, report)),
        Err(e) => {
            report(format!("{what}: client: {e}"));
            let _ = tx.send(Vec::new());
            tokio::spawn(async move { tx.closed().await })
        }
    }
}

/// The parts of a scrape config that decide how targets are scraped, as
/// opposed to which targets there are: when only discovery changes, the
/// job's loops for targets that remain keep running.
fn scrape_part(sc: &ScrapeConfig) -> ScrapeConfig {
    ScrapeConfig {
        static_configs: Vec::new(),
        file_sd_configs: Vec::new(),
        http_sd_configs: Vec::new(),
        consul_sd_configs: Vec::new(),
        dns_sd_configs: Vec::new(),
        kubernetes_sd_configs: Vec::new(),
        ..sc.clone()
    }
}

/// The targets of every pool, for the API.
#[derive(Debug, Default)]
pub struct Targets {
    /// Targets being scraped, sorted by job and URL.
    pub active: Vec<TargetInfo>,
    /// Targets dropped by relabeling (job, discovered labels): at most
    /// `keep_dropped_targets` a job.
    pub dropped: Vec<(String, Labels)>,
    /// Every job's count of all the targets it dropped.
    pub dropped_counts: BTreeMap<String, usize>,
}

/// A target as the API reports it.
#[derive(Clone, Debug)]
pub struct TargetInfo {
    /// Job name (scrape pool).
    pub job: String,
    /// Final labels.
    pub labels: Labels,
    /// Labels before relabeling.
    pub discovered: Labels,
    /// Scrape URL.
    pub url: String,
    /// Interval.
    pub interval: std::time::Duration,
    /// Timeout.
    pub timeout: std::time::Duration,
    /// Health.
    pub health: TargetHealth,
}

/// Shared context for every pool.
#[derive(Clone)]
pub struct Context {
    /// Where samples go.
    pub sink: Arc<dyn Appendable>,
    /// Timestamp source.
    pub clock: Arc<dyn Clock>,
    /// Self metrics.
    pub metrics: Arc<Metrics>,
    /// Body buffers shared by every loop.
    pub buffers: Arc<BufferPool>,
    /// How far scrape timestamps may be moved onto their loop's schedule
    /// (`--scrape.timestamp-tolerance`; zero turns alignment off).
    pub timestamp_tolerance: std::time::Duration,
}

impl Context {
    /// A context with a fresh buffer pool.
    pub fn new(sink: Arc<dyn Appendable>, clock: Arc<dyn Clock>, metrics: Arc<Metrics>) -> Self {
        Context {
            sink,
            clock,
            metrics,
            buffers: Arc::default(),
            timestamp_tolerance: super::scrape_loop::DEFAULT_TIMESTAMP_TOLERANCE,
        }
    }
}

/// Owns every scrape pool.
pub struct ScrapeManager {
    ctx: Context,
    pools: Mutex<HashMap<String, Pool>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ScrapeManager {
    /// A manager with no jobs.
    pub fn new(ctx: Context) -> Self {
        ScrapeManager {
            ctx,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// Brings the running jobs in line with `cfg`. Jobs whose config did not
    /// change keep their loops (and their staleness tracking); jobs whose
    /// discovery alone changed keep the loops of targets that remain;
    /// otherwise changed jobs restart; removed jobs stop and mark their
    /// series stale. Must be called inside a tokio runtime.
    pub fn apply(&self, cfg: &Config) -> Result<(), ManagerError> {
        // Build everything first so a failure leaves the old jobs running.
        let mut fresh = Vec::new();
        let mut rediscover = Vec::new();
        {
            let pools = lock(&self.pools);
            for sc in &cfg.scrape_configs {
                match pools.get(&sc.job_name) {
                    Some(p) if p.cfg == *sc => continue,
                    Some(p) if scrape_part(&p.cfg) == scrape_part(sc) => {
                        rediscover.push(sc.clone());
                        continue;
                    }
                    _ => {}
                }
                let client = build_client(sc)?;
                let relabel = Relabel::compile_all(&sc.relabel_configs).map_err(|e| {
                    ManagerError::Relabel {
                        job: sc.job_name.clone(),
                        msg: e.to_string(),
                    }
                })?;
                let metric_relabel =
                    Relabel::compile_all(&sc.metric_relabel_configs).map_err(|e| {
                        ManagerError::Relabel {
                            job: sc.job_name.clone(),
                            msg: e.to_string(),
                        }
                    })?;
                fresh.push((sc.clone(), client, relabel, metric_relabel));
            }
        }
        let mut pools = lock(&self.pools);
        let keep: std::collections::HashSet<&str> = cfg
            .scrape_configs
            .iter()
            .map(|s| s.job_name.as_str())
            .collect();
        let gone: Vec<String> = pools
            .keys()
            .filter(|k| !keep.contains(k.as_str()))
            .cloned()
            .collect();
        for job in gone {
            if let Some(p) = pools.remove(&job) {
                p.shutdown(Stop::Stale);
            }
        }
        for (sc, client, relabel, metric_relabel) in fresh {
            if let Some(old) = pools.remove(&sc.job_name) {
                old.shutdown(Stop::Quiet);
            }
            let pool = self.start_pool(sc.clone(), client, relabel, metric_relabel);
            pools.insert(sc.job_name.clone(), pool);
        }
        for sc in rediscover {
            if let Some(p) = pools.get_mut(&sc.job_name) {
                for t in p.tasks.drain(..) {
                    t.abort();
                }
                p.tasks = self.start_discovery(&sc, &p.state, &p.job, &p.relabel, &p.client);
                p.cfg = sc;
            }
        }
        Ok(())
    }

    fn start_pool(
        &self,
        sc: ScrapeConfig,
        client: Arc<ScrapeClient>,
        relabel: Vec<Relabel>,
        metric_relabel: Vec<Relabel>,
    ) -> Pool {
        let state = Arc::new(Mutex::new(PoolState::default()));
        let accept = crate::config::ScrapeProtocol::accept_header(
            sc.scrape_protocols
                .as_deref()
                .unwrap_or(&crate::config::DEFAULT_SCRAPE_PROTOCOLS),
        );
        let job = Arc::new(JobSettings {
            cfg: sc.clone(),
            metric_relabel,
            accept,
        });
        let relabel = Arc::new(relabel);
        let tasks = self.start_discovery(&sc, &state, &job, &relabel, &client);
        Pool {
            cfg: sc,
            state,
            tasks,
            job,
            relabel,
            client,
        }
    }

    /// Starts the job's discovery (static groups and file_sd watchers) and
    /// the task that syncs its loops with what discovery reports.
    fn start_discovery(
        &self,
        sc: &ScrapeConfig,
        state: &Arc<Mutex<PoolState>>,
        job: &Arc<JobSettings>,
        relabel: &Arc<Vec<Relabel>>,
        client: &Arc<ScrapeClient>,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        let mut receivers = Vec::new();
        for f in &sc.file_sd_configs {
            let (tx, rx) = watch::channel(Vec::new());
            let metrics = self.ctx.metrics.clone();
            let job_name = sc.job_name.clone();
            tasks.push(tokio::spawn(run_file_sd(f.clone(), tx, move |e| {
                metrics.sd_file_read_errors.inc();
                tracing::warn!(job = %job_name, error = %e, "file_sd: cannot read target file");
            })));
            receivers.push(rx);
        }
        for h in &sc.http_sd_configs {
            let (tx, rx) = watch::channel(Vec::new());
            let metrics = self.ctx.metrics.clone();
            let job_name = sc.job_name.clone();
            let report = move |e: String| {
                metrics.sd_http_failures.inc();
                tracing::warn!(job = %job_name, error = %e, "http_sd: refresh failed; the last targets it gave stay");
            };
            let h2 = h.clone();
            tasks.push(spawn_http_discovery(
                h.tls_config.as_ref(),
                &h.url,
                tx,
                report,
                |c, tx, report| run_http_sd(h2, c, tx, report),
            ));
            receivers.push(rx);
        }
        for c in &sc.consul_sd_configs {
            let (tx, rx) = watch::channel(Vec::new());
            let metrics = self.ctx.metrics.clone();
            let job_name = sc.job_name.clone();
            let report = move |e: String| {
                metrics.sd_consul_failures.inc();
                tracing::warn!(job = %job_name, error = %e, "consul_sd: request failed; the last targets it gave stay");
            };
            let c2 = c.clone();
            tasks.push(spawn_http_discovery(
                c.tls_config.as_ref(),
                c.server(),
                tx,
                report,
                |cl, tx, report| super::consul::run_consul_sd(c2, cl, tx, report),
            ));
            receivers.push(rx);
        }
        for k in &sc.kubernetes_sd_configs {
            let (tx, rx) = watch::channel(Vec::new());
            let (m1, m2) = (self.ctx.metrics.clone(), self.ctx.metrics.clone());
            let job_name = sc.job_name.clone();
            let report: super::kubernetes::Report = Arc::new(move |e: String| {
                m1.sd_kubernetes_failures.inc();
                tracing::warn!(job = %job_name, error = %e, "kubernetes_sd: request failed; the last targets it gave stay");
            });
            let events: super::kubernetes::EventCount = Arc::new(move |role, event| {
                m2.sd_kubernetes_events
                    .get_or_create(&vec![
                        ("role".to_string(), role.to_string()),
                        ("event".to_string(), event.to_string()),
                    ])
                    .inc();
            });
            tasks.push(tokio::spawn(super::kubernetes::run_kubernetes_sd(
                k.clone(),
                tx,
                report,
                events,
            )));
            receivers.push(rx);
        }
        for d in &sc.dns_sd_configs {
            let (tx, rx) = watch::channel(Vec::new());
            let m1 = self.ctx.metrics.clone();
            let job_name = sc.job_name.clone();
            tasks.push(tokio::spawn(super::dns::run_dns_sd(
                d.clone(),
                tx,
                move |failed| {
                    m1.sd_dns_lookups.inc();
                    if failed {
                        m1.sd_dns_lookup_failures.inc();
                    }
                },
                move |e: String| {
                    tracing::warn!(job = %job_name, error = %e, "dns_sd: lookup failed; the last targets it gave stay");
                },
            )));
            receivers.push(rx);
        }
        let statics = static_groups(sc);
        let (ctx, st, job, relabel, client) = (
            self.ctx.clone(),
            state.clone(),
            job.clone(),
            relabel.clone(),
            client.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let sync = |groups: Vec<TargetGroup>| {
                sync_pool(&ctx, &st, &job, &relabel, &client, &groups);
            };
            let gather = |rx: &[watch::Receiver<Vec<TargetGroup>>]| {
                let mut g = statics.clone();
                for r in rx {
                    g.extend(r.borrow().iter().cloned());
                }
                g
            };
            // Each file_sd watcher and http_sd refresher reports once at
            // start; syncing before that would drop (and mark stale) every
            // target they found before a reload.
            for r in receivers.iter_mut() {
                let _ = r.changed().await;
            }
            sync(gather(&receivers));
            if receivers.is_empty() {
                return;
            }
            loop {
                let (changed, _, rest) = futures_util::future::select_all(
                    receivers.iter_mut().map(|r| Box::pin(r.changed())),
                )
                .await;
                drop(rest);
                if changed.is_err() {
                    return;
                }
                sync(gather(&receivers));
            }
        }));
        tasks
    }

    /// Every target, for the API.
    pub fn targets(&self) -> Targets {
        let pools = lock(&self.pools);
        let mut active = Vec::new();
        let mut dropped = Vec::new();
        let mut counts = BTreeMap::new();
        for (job, p) in pools.iter() {
            let st = lock(&p.state);
            for h in st.active.values() {
                active.push(TargetInfo {
                    job: job.clone(),
                    labels: h.target.labels.clone(),
                    discovered: h.target.discovered.clone(),
                    url: h.target.url.clone(),
                    interval: h.target.interval,
                    timeout: h.target.timeout,
                    health: lock(&h.health).clone(),
                });
            }
            dropped.extend(st.dropped.iter().map(|l| (job.clone(), l.clone())));
            dropped.extend(st.invalid.iter().map(|(l, _)| (job.clone(), l.clone())));
            counts.insert(job.clone(), st.dropped_count + st.invalid.len());
        }
        active.sort_by(|a, b| (&a.job, &a.url).cmp(&(&b.job, &b.url)));
        Targets {
            active,
            dropped,
            dropped_counts: counts,
        }
    }

    /// Stops every loop without stale markers (shutdown) and waits for them.
    pub async fn stop(&self) {
        let pools: Vec<Pool> = lock(&self.pools).drain().map(|(_, p)| p).collect();
        let mut waits = Vec::new();
        for p in pools {
            waits.extend(p.shutdown(Stop::Quiet));
        }
        for w in waits {
            let _ = w.await;
        }
    }
}

impl Pool {
    fn shutdown(self, mode: Stop) -> Vec<JoinHandle<()>> {
        for t in &self.tasks {
            t.abort();
        }
        let mut st = lock(&self.state);
        st.active
            .drain()
            .map(|(_, h)| {
                let _ = h.stop.send(mode);
                h.task
            })
            .collect()
    }
}

fn sync_pool(
    ctx: &Context,
    state: &Arc<Mutex<PoolState>>,
    job: &Arc<JobSettings>,
    relabel: &[Relabel],
    client: &Arc<ScrapeClient>,
    groups: &[TargetGroup],
) {
    let mut want: HashMap<u64, Target> = HashMap::new();
    let mut dropped = Vec::new();
    let mut dropped_count = 0;
    let mut invalid = Vec::new();
    for b in build_targets(&job.cfg, relabel, groups) {
        match b {
            Built::Active(t) => {
                want.insert(t.hash(), t);
            }
            Built::Dropped(l) => {
                dropped_count += 1;
                let keep = job.cfg.keep_dropped_targets.unwrap_or(0) as usize;
                if keep == 0 || dropped.len() < keep {
                    dropped.push(l);
                }
            }
            Built::Invalid(l, e) => {
                tracing::warn!(job = %job.cfg.job_name, labels = %l, error = %e, "invalid target");
                invalid.push((l, e));
            }
        }
    }
    let mut st = lock(state);
    st.dropped = dropped;
    st.dropped_count = dropped_count;
    st.invalid = invalid;
    let gone: Vec<u64> = st
        .active
        .keys()
        .filter(|k| !want.contains_key(k))
        .copied()
        .collect();
    for k in gone {
        if let Some(h) = st.active.remove(&k) {
            let _ = h.stop.send(Stop::Stale);
        }
    }
    for (k, t) in want {
        if let Some(h) = st.active.get_mut(&k) {
            // The loop keeps running; what discovery says of the target
            // now is what the API shows (as Prometheus 3 does; 2.42 kept
            // the labels of when the target first appeared).
            h.target.discovered = t.discovered;
            continue;
        }
        let health = Arc::new(Mutex::new(TargetHealth {
            health: "unknown",
            ..Default::default()
        }));
        let (tx, rx) = watch::channel(Stop::Run);
        let lp = ScrapeLoop {
            target: t.clone(),
            job: job.clone(),
            sink: ctx.sink.clone(),
            clock: ctx.clock.clone(),
            metrics: ctx.metrics.clone(),
            health: health.clone(),
            client: client.clone(),
            buffers: ctx.buffers.clone(),
            timestamp_tolerance: ctx.timestamp_tolerance,
        };
        let task = tokio::spawn(lp.run(rx));
        st.active.insert(
            k,
            LoopHandle {
                target: t,
                health,
                stop: tx,
                task,
            },
        );
    }
}

fn build_client(sc: &ScrapeConfig) -> Result<Arc<ScrapeClient>, ManagerError> {
    ScrapeClient::new(sc)
        .map(Arc::new)
        .map_err(|msg| ManagerError::Tls {
            job: sc.job_name.clone(),
            msg,
        })
}
