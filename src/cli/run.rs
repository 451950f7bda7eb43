//! The daemon: wires config, store, scraping and the HTTP server together,
//! and handles reload, snapshots, retention and graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::api::{ApiState, LoadedConfig, ReloadFn, router};
use crate::config::{Config, ConfigSource};
use crate::model::{Clock, SystemClock};
use crate::net::init_tls;
use crate::scrape::{Context, ScrapeManager};
use crate::storage::{Store, StoreOptions};
use crate::telemetry::Metrics;

/// Options of `argus run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Config file; `None` runs the embedded default.
    pub config: Option<PathBuf>,
    /// HTTP listen address.
    pub listen: String,
    /// Directory for snapshots and state.
    pub storage_path: PathBuf,
    /// How long samples are kept.
    pub retention: Duration,
    /// Most bytes the store may take on disk; `None`: no limit.
    pub retention_size: Option<u64>,
    /// How often the head is checkpointed (snapshot written, log truncated).
    pub snapshot_interval: Duration,
    /// How often the write-ahead log is fsynced.
    pub wal_sync_interval: Duration,
    /// How far scrape timestamps may be moved onto their schedule (zero:
    /// not at all).
    pub timestamp_tolerance: Duration,
    /// PromQL engine settings.
    pub engine: crate::promql::EngineOptions,
    /// How often firing alerts are re-sent.
    pub resend_delay: Duration,
    /// The URL argus is reached at; `None` derives it from the listen
    /// address.
    pub external_url: Option<String>,
    /// Where the web endpoints are served: `/` or `/prefix` (no trailing
    /// slash), see [`route_prefix`].
    pub route_prefix: String,
    /// Render and log notifications instead of sending them.
    pub dry_run: bool,
    /// This instance's peer id, overriding `peers.self`.
    pub peer_self: Option<String>,
    /// `--web.config.file`: TLS, basic auth users and response headers.
    pub web_config_file: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigErrors),
    /// The listen address is unusable.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        error: std::io::Error,
    },
    /// A job could not start.
    #[error(transparent)]
    Scrape(#[from] crate::scrape::manager::ManagerError),
    /// An Alertmanager's client settings are unusable.
    #[error("{0}")]
    Alerting(String),
    /// Rule files are invalid.
    #[error(transparent)]
    Rules(crate::rules::RulesError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
    /// The peers' settings are unusable (the secret file).
    #[error("{0}")]
    Peers(String),
    /// The storage directory cannot be created or read.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// `--web.config.file` does not load.
    #[error("--web.config.file: {0}")]
    WebConfig(String),
}

/// The route prefix `argus run` serves under, as Prometheus derives it:
/// `--web.route-prefix` if given, else the path of `--web.external-url`,
/// else `/`; with a leading slash and without a trailing one. A prefix
/// that is not a plain path is refused.
pub fn route_prefix(flag: Option<&str>, external_url: Option<&str>) -> Result<String, String> {
    let (raw, from) = match (flag, external_url) {
        (Some(p), _) => (p.to_string(), "--web.route-prefix"),
        (None, Some(u)) => {
            let path = reqwest::Url::parse(u)
                .map_err(|e| format!("--web.external-url {u:?}: {e}"))?
                .path()
                .to_string();
            (path, "the path of --web.external-url")
        }
        (None, None) => return Ok("/".into()),
    };
    let p = format!("/{}", raw.trim().trim_matches('/'));
    if p.len() > 1
        && !p[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        })
    {
        return Err(format!(
            "{from} {raw:?}: a route prefix is a path of letters, digits and -._~ segments"
        ));
    }
    Ok(p)
}

/// `app` served under `prefix`, with `/` redirecting there (as Prometheus
/// does); every other path outside it is not found.
fn with_prefix(app: axum::Router, prefix: &str) -> axum::Router {
    if prefix == "/" {
        return app;
    }
    let to = format!("{prefix}/");
    axum::Router::new().nest(prefix, app).route(
        "/",
        axum::routing::get(move || async move {
            // 302, as Prometheus answers.
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, to)],
            )
        }),
    )
}

struct Reloader {
    source: ConfigSource,
    peer_self: Option<String>,
    manager: Arc<ScrapeManager>,
    probes: Arc<crate::probe::ProbeManager>,
    slo_engine: Arc<crate::slo::SloEngine>,
    rules: Arc<crate::rules::RuleManager>,
    forwarder: Arc<crate::notify::Forwarder>,
    notifier: Arc<crate::notify::Notifier>,
    peers: Arc<crate::ha::Peers>,
    deadman: tokio::sync::watch::Sender<Option<crate::config::DeadmanConfig>>,
    config: Arc<RwLock<LoadedConfig>>,
    metrics: Arc<Metrics>,
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Reloads in a task of its own, so that even a bug that panics while
    /// applying a config is a refused reload (counted, logged) and the
    /// signal loop that called it keeps serving the next SIGHUP.
    async fn reload(self: &Arc<Self>) -> Result<(), String> {
        let me = self.clone();
        match tokio::spawn(async move { me.reload_now().await }).await {
            Ok(res) => res,
            Err(e) => {
                self.metrics.config_last_reload_successful.set(0);
                let msg = format!("the reload failed unexpectedly: {e}");
                tracing::error!(error = %msg, "configuration reload refused");
                Err(msg)
            }
        }
    }

    async fn reload_now(&self) -> Result<(), String> {
        let _g = self.lock.lock().await;
        let res =
            match load_config(&self.source, self.peer_self.as_deref()).map_err(|e| e.to_string()) {
                // Rules first: a bad rule file refuses the whole reload before
                // anything changed.
                Ok(cfg) => (|| {
                    // What can be refused is checked before anything changes.
                    let routing = load_routing(&cfg)?;
                    self.forwarder.apply(&cfg.alerting)?;
                    self.notifier
                        .apply(routing.as_ref(), &cfg.alerting.delivery)?;
                    self.rules.apply(&cfg).map_err(|e| e.to_string())?;
                    self.manager.apply(&cfg).map_err(|e| e.to_string())?;
                    self.probes.apply(&cfg)?;
                    self.slo_engine.apply(&cfg);
                    self.peers
                        .apply(cfg.peers.as_ref(), crate::ha::config_hash(&cfg))?;
                    self.deadman.send_if_modified(|d| {
                        let changed = *d != cfg.deadman;
                        d.clone_from(&cfg.deadman);
                        changed
                    });
                    Ok(cfg)
                })(),
                Err(e) => Err(e),
            };
        match res {
            Ok(cfg) => {
                let jobs = cfg.scrape_configs.len();
                self.config
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .config = cfg;
                self.metrics.config_last_reload_successful.set(1);
                self.metrics
                    .config_last_reload_success_timestamp
                    .set(crate::model::now_millis() / 1000);
                tracing::info!(jobs, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics.config_last_reload_successful.set(0);
                tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps running");
                Err(e)
            }
        }
    }
}

/// The config from `source`, with `peers.self` replaced by `peer_self`.
fn load_config(source: &ConfigSource, peer_self: Option<&str>) -> Result<Config, RunError> {
    let mut cfg = source.load()?;
    if let Some(id) = peer_self {
        cfg.peers
            .as_mut()
            .ok_or_else(|| {
                RunError::Peers("--peers.self is given but the config has no peers section".into())
            })?
            .set_self(id)
            .map_err(RunError::Peers)?;
    }
    Ok(cfg)
}

/// The Alertmanager configuration `alerting.routing_file` names, if any.
fn load_routing(cfg: &Config) -> Result<Option<crate::notify::AmConfig>, String> {
    let routing = crate::notify::routing_of(cfg).map_err(|e| e.to_string())?;
    // The file may appear later (a secret mounted after start): warn now,
    // and deliveries that need it are retried until it is there.
    for e in routing.iter().flat_map(|r| r.unreadable_files()) {
        tracing::warn!(error = %e, "a file the routing configuration names cannot be read; notifications that need it will be retried");
    }
    Ok(routing)
}

fn describe(cfg: &Config) -> String {
    let targets: usize = cfg
        .scrape_configs
        .iter()
        .map(|s| {
            s.static_configs
                .iter()
                .map(|g| g.targets.len())
                .sum::<usize>()
        })
        .sum();
    let jobs: Vec<&str> = cfg
        .scrape_configs
        .iter()
        .map(|s| s.job_name.as_str())
        .collect();
    let file_sd = cfg
        .scrape_configs
        .iter()
        .any(|s| !s.file_sd_configs.is_empty());
    let http_sd = cfg
        .scrape_configs
        .iter()
        .any(|s| !s.http_sd_configs.is_empty());
    let discovered = match (file_sd, http_sd) {
        (true, true) => " plus file_sd and http_sd targets",
        (true, false) => " plus file_sd targets",
        (false, true) => " plus http_sd targets",
        (false, false) => "",
    };
    format!(
        "{} static target(s){} in {} job(s): {}",
        targets,
        discovered,
        jobs.len(),
        jobs.join(", ")
    )
}

/// Checkpoints the store off the async threads: the snapshot is written,
/// the log segments it covers removed.
async fn checkpoint(store: Arc<Store>, metrics: Arc<Metrics>) {
    let start = std::time::Instant::now();
    let res = tokio::task::spawn_blocking(move || store.checkpoint()).await;
    match res {
        Ok(Ok(info)) => {
            metrics
                .snapshot_duration
                .observe(start.elapsed().as_secs_f64());
            metrics.snapshot_bytes.set(info.bytes as i64);
            tracing::debug!(
                series = info.series,
                bytes = info.bytes,
                wal_from = info.wal_from,
                "checkpoint written"
            );
        }
        Ok(Err(e)) => {
            metrics.snapshot_failures.inc();
            tracing::error!(error = %e, "checkpoint failed");
        }
        Err(e) => {
            metrics.snapshot_failures.inc();
            tracing::error!(error = %e, "checkpoint task failed");
        }
    }
}

/// Logs what opening the store found: what was restored, and every piece
/// of damage with its file and offset.
fn report_open(rep: &crate::storage::OpenReport) {
    if let Some((e, aside)) = &rep.quarantined {
        tracing::error!(error = %e, moved_to = %aside.display(), "snapshot is damaged; restoring from the write-ahead log alone");
    }
    for d in &rep.snapshot.damage {
        tracing::error!(damage = %d, "checkpoint damaged; the series in damaged records are skipped, the rest restored");
    }
    for d in &rep.replay.damage {
        tracing::error!(damage = %d, "write-ahead log damaged; the segment was cut at the damage, everything before it restored");
    }
    for d in &rep.chunks.damage {
        tracing::error!(damage = %d, "chunk file or index damaged; a damaged file was cut at the damage (everything before it restored, and what the write-ahead log still holds), a damaged index rebuilt from its file");
    }
    if rep.snapshot.series > 0 || rep.replay.records > 0 || rep.chunks.files > 0 {
        tracing::info!(
            series = rep.series,
            chunk_files = rep.chunks.files,
            chunk_indexes_reused = rep.chunks.indexes_reused,
            orphan_chunks = rep.orphan_chunks,
            orphan_sealed_series = rep.orphan_sealed_series,
            snapshot_series = rep.snapshot.series,
            wal_segments = rep.replay.segments,
            wal_records = rep.replay.records,
            wal_samples = rep.replayed.appended,
            wal_samples_refused = rep.replayed.rejected(),
            seconds = rep.elapsed.as_secs_f64(),
            "store restored"
        );
    }
}

/// Runs the daemon until SIGTERM/SIGINT (or `shutdown` resolves).
pub async fn run(
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    init_tls();
    // A file size limit (RLIMIT_FSIZE) reached while writing the store must
    // be a failed write (EFBIG: counted and retried as on a full disk), not
    // the end of the daemon, which SIGXFSZ's default action would be.
    // Catching it is enough; 25 is SIGXFSZ on Linux's x86 and Arm.
    let _xfsz = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(25)).ok();
    let source = match &opts.config {
        Some(p) => ConfigSource::File(p.clone()),
        None => ConfigSource::Embedded {
            listen: opts.listen.clone(),
            route_prefix: opts.route_prefix.clone(),
        },
    };
    let cfg = load_config(&source, opts.peer_self.as_deref())?;
    let web = match &opts.web_config_file {
        Some(p) => Some(crate::api::web_file::WebServer::open(p).map_err(RunError::WebConfig)?),
        None => None,
    };
    let tls = match &web {
        Some(w) => w.current().map_err(RunError::WebConfig)?.tls.is_some(),
        None => false,
    };
    let scheme = if tls { "https" } else { "http" };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let (store, rep) = Store::open(
        &opts.storage_path,
        StoreOptions {
            wal: crate::storage::wal::WalOptions {
                sync_interval: opts.wal_sync_interval,
                ..Default::default()
            },
            min_valid_t: Some(clock.now_millis() - opts.retention.as_millis() as i64),
            log: true,
        },
    )?;
    report_open(&rep);
    let store = Arc::new(store);
    let head = store.head().clone();
    let metrics = Arc::new(Metrics::new());
    let manager = Arc::new(ScrapeManager::new(Context {
        timestamp_tolerance: opts.timestamp_tolerance,
        ..Context::new(Arc::new(head.clone()), clock.clone(), metrics.clone())
    }));
    let listener = tokio::net::TcpListener::bind(&opts.listen)
        .await
        .map_err(|error| RunError::Listen {
            addr: opts.listen.clone(),
            error,
        })?;
    let local: SocketAddr = listener.local_addr().map_err(RunError::Serve)?;
    let engine = Arc::new(crate::promql::Engine::new(opts.engine.clone()));
    let forwarder = Arc::new(crate::notify::Forwarder::new(metrics.clone()));
    forwarder.apply(&cfg.alerting).map_err(RunError::Alerting)?;
    let external_url = opts
        .external_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    let notifier = Arc::new(
        crate::notify::Notifier::new(clock.clone(), &external_url, metrics.clone())
            .map_err(RunError::Alerting)?
            .with_dry_run(opts.dry_run)
            .with_state_dir(opts.storage_path.clone()),
    );
    notifier
        .apply(
            load_routing(&cfg).map_err(RunError::Alerting)?.as_ref(),
            &cfg.alerting.delivery,
        )
        .map_err(RunError::Alerting)?;
    let sink: Arc<dyn crate::model::AlertSink> = Arc::new(crate::notify::Fanout(vec![
        notifier.clone(),
        forwarder.clone(),
    ]));
    let peers = Arc::new(crate::ha::Peers::new(
        notifier.clone(),
        sink.clone(),
        metrics.clone(),
        clock.clone(),
        &external_url,
        Some(&opts.storage_path),
    ));
    peers
        .apply(cfg.peers.as_ref(), crate::ha::config_hash(&cfg))
        .map_err(RunError::Peers)?;
    let (deadman_tx, deadman_rx) = tokio::sync::watch::channel(cfg.deadman.clone());
    let rules = Arc::new(
        crate::rules::RuleManager::new(engine.clone(), head.clone(), clock.clone())
            .with_state_dir(opts.storage_path.clone())
            .with_sink(sink, opts.resend_delay.as_millis() as i64)
            .with_external_url(&external_url)
            .with_metrics(metrics.clone()),
    );
    rules.apply(&cfg).map_err(RunError::Rules)?;
    manager.apply(&cfg)?;
    let probes = Arc::new(
        crate::probe::ProbeManager::new(head.clone(), clock.clone())
            .with_state_dir(opts.storage_path.clone()),
    );
    probes.apply(&cfg).map_err(RunError::Alerting)?;
    let slo_engine = Arc::new(
        crate::slo::SloEngine::new(engine.clone(), head.clone(), clock.clone())
            .with_state_dir(opts.storage_path.clone()),
    );
    slo_engine.apply(&cfg);
    let cfg_eval_ms = cfg.global.evaluation_interval.as_millis();
    metrics.config_last_reload_successful.set(1);
    metrics
        .config_last_reload_success_timestamp
        .set(clock.now_millis() / 1000);
    tracing::info!(
        "argus {} listening on {scheme}://{local}{}, scraping {}; data in {}",
        crate::build_info::VERSION,
        opts.route_prefix.trim_end_matches('/'),
        describe(&cfg),
        opts.storage_path.display()
    );
    if matches!(source, ConfigSource::Embedded { .. }) {
        let base = format!(
            "{scheme}://{local}{}",
            opts.route_prefix.trim_end_matches('/')
        );
        tracing::info!(
            "no --config given: the embedded default scrapes argus itself. Its API is at {base}/api/v1/ (Prometheus's) and {base}/api/v2/ (Alertmanager's), its own metrics at {base}/metrics; next, write a prometheus.yml with scrape_configs, rule_files and alerting (docs/configuration.md) and pass it with --config"
        );
    }
    let config = Arc::new(RwLock::new(LoadedConfig { config: cfg }));
    let reloader = Arc::new(Reloader {
        source,
        peer_self: opts.peer_self.clone(),
        manager: manager.clone(),
        probes: probes.clone(),
        slo_engine: slo_engine.clone(),
        rules: rules.clone(),
        forwarder: forwarder.clone(),
        notifier: notifier.clone(),
        peers: peers.clone(),
        deadman: deadman_tx,
        config: config.clone(),
        metrics: metrics.clone(),
        lock: tokio::sync::Mutex::new(()),
    });
    let r2 = reloader.clone();
    let reload: ReloadFn = Arc::new(move || {
        let r = r2.clone();
        Box::pin(async move { r.reload().await })
    });
    let ready = Arc::new(AtomicBool::new(false));
    let app = router(ApiState {
        head: head.clone(),
        scrape: manager.clone(),
        metrics: metrics.clone(),
        config,
        reload,
        ready: ready.clone(),
        engine,
        rules: rules.clone(),
        forwarder: forwarder.clone(),
        notifier: notifier.clone(),
        started_at: clock.now_millis(),
        peers: peers.clone(),
        query_slots: Arc::new(tokio::sync::Semaphore::new(
            opts.engine.max_concurrency.max(1),
        )),
    });

    let app = with_prefix(app, &opts.route_prefix);
    // Outermost: basic auth and headers cover every path, the prefix's
    // redirect included, as in Prometheus.
    let app = match &web {
        Some(w) => app.layer(axum::middleware::from_fn_with_state(
            w.clone(),
            crate::api::web_file::guard,
        )),
        None => app,
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Signals: SIGHUP reloads; SIGTERM/SIGINT (or the caller's future) stop.
    {
        let stop_tx = stop_tx.clone();
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let mut hup =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot install SIGHUP handler");
                        None
                    }
                };
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => {
                        let _ = reloader.reload().await;
                    }
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
                    _ = tokio::signal::ctrl_c() => break,
                    _ = &mut shutdown => break,
                }
            }
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
    }
    // SLO windows accumulate at the rules' evaluation interval.
    {
        let slo_engine = slo_engine.clone();
        let every = Duration::from_millis(cfg_eval_ms.max(1000) as u64);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let e = slo_engine.clone();
                let _ = tokio::task::spawn_blocking(move || e.evaluate()).await;
            }
        });
    }
    // Periodic checkpoint and retention.
    {
        let head = head.clone();
        let store = store.clone();
        let metrics = metrics.clone();
        let every = opts.snapshot_interval;
        let retention = opts.retention.as_millis() as i64;
        let retention_size = opts.retention_size;
        let clock = clock.clone();
        let probes = probes.clone();
        let slo_engine = slo_engine.clone();
        tokio::spawn(async move {
            let mut snap = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let mut gc = tokio::time::interval(Duration::from_secs(60));
            // Log writes that failed (a full disk) left holes only a
            // checkpoint fills: take one as soon as writing works again.
            let mut mend = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = mend.tick() => {
                        let w = store.wal();
                        if w.needs_checkpoint() && !w.failing() {
                            checkpoint(store.clone(), metrics.clone()).await;
                        }
                        // The probe and SLO windows, written when they
                        // changed: a crash loses at most a second of them.
                        let (p, e) = (probes.clone(), slo_engine.clone());
                        let _ = tokio::task::spawn_blocking(move || {
                            p.save(false);
                            e.save(false);
                        })
                        .await;
                    }
                    _ = snap.tick() => {
                        checkpoint(store.clone(), metrics.clone()).await;
                    }
                    _ = gc.tick() => {
                        let mut min_t = clock.now_millis() - retention;
                        if let Some(budget) = retention_size {
                            let s = store.clone();
                            let cut = tokio::task::spawn_blocking(move || s.size_cutoff(budget))
                                .await
                                .ok()
                                .flatten();
                            if let Some(cut) = cut.filter(|c| *c > min_t) {
                                tracing::info!(
                                    budget_bytes = budget,
                                    keep_from = %crate::model::format_rfc3339(cut),
                                    "the store is over --storage.retention-size: removing its oldest chunk files"
                                );
                                metrics.size_retentions.inc();
                                min_t = cut;
                            }
                        }
                        let n = head.truncate(min_t);
                        if n > 0 { tracing::debug!(removed = n, "retention removed series"); }
                    }
                }
            }
        });
    }
    let notifier_task = tokio::spawn(notifier.clone().run(stop_rx.clone()));
    tokio::spawn(peers.clone().run(stop_rx.clone()));
    tokio::spawn(crate::ha::run_deadman(
        deadman_rx,
        opts.resend_delay,
        notifier.clone(),
        metrics.clone(),
        clock.clone(),
        stop_rx.clone(),
    ));
    ready.store(true, Ordering::Relaxed);
    let mut stop_rx2 = stop_rx.clone();
    let stopped = async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
    };
    let served = match web.filter(|_| tls) {
        Some(w) => {
            let listener =
                crate::api::web_file::TlsListener::new(listener, w).map_err(RunError::Serve)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    };
    ready.store(false, Ordering::Relaxed);
    // Stop rule groups and in-flight scrapes, then persist what we have.
    rules.stop();
    probes.stop();
    probes.save(true);
    slo_engine.save(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), manager.stop()).await;
    // Alerts already queued get one last attempt each.
    forwarder.stop(Duration::from_secs(3)).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), notifier_task).await;
    {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.close()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "final checkpoint failed; the write-ahead log is replayed at the next start")
            }
            Err(e) => tracing::error!(error = %e, "final checkpoint task failed"),
        }
    }
    tracing::info!("stopped");
    served.map_err(RunError::Serve)
}
