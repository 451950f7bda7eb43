//! argus's own metrics (served on /metrics) and tracing setup.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type L = Vec<(String, String)>;

fn hist_family() -> Family<L, Histogram, fn() -> Histogram> {
    Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 9)))
}

/// The store's own counts, read when /metrics is rendered.
#[derive(Clone, Debug, Default)]
pub struct StoreFigures {
    /// Live series.
    pub series: usize,
    /// Samples committed.
    pub samples_appended: u64,
    /// Samples refused as out of order.
    pub out_of_order: u64,
    /// Samples refused as duplicates.
    pub duplicate: u64,
    /// Series removed by retention.
    pub series_removed: u64,
    /// Samples dropped for expired series references.
    pub unknown_ref: u64,
    /// Bytes held by each part of the head, by part name.
    pub memory: Vec<(&'static str, u64)>,
    /// The write-ahead log's counts, when there is one.
    pub wal: Option<WalFigures>,
    /// The chunk files' counts, when there are any.
    pub chunks: Option<ChunkFigures>,
}

/// The chunk files' own counts, read when /metrics is rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkFigures {
    /// Chunks written.
    pub chunks_written: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Writes that failed.
    pub write_failures: u64,
    /// Damaged records found at start.
    pub corruptions: u64,
    /// Files removed by retention.
    pub files_removed: u64,
    /// Files on disk.
    pub files: u64,
    /// Bytes in the files on disk.
    pub disk_bytes: u64,
}

/// The write-ahead log's own counts, read when /metrics is rendered.
#[derive(Clone, Copy, Debug, Default)]
pub struct WalFigures {
    /// Bytes handed to segment files.
    pub bytes_written: u64,
    /// Completed fsyncs.
    pub fsyncs: u64,
    /// Seconds spent in fsync.
    pub fsync_seconds: f64,
    /// Writes or fsyncs that failed.
    pub write_failures: u64,
    /// Damaged records found at replay.
    pub corruptions: u64,
    /// Segments removed after a checkpoint.
    pub truncations: u64,
    /// Number of the segment being written.
    pub segment: u64,
    /// Bytes held by the append buffer.
    pub buffer_bytes: u64,
}

/// Every self metric argus exposes.
pub struct Metrics {
    registry: Registry,
    /// Scrapes attempted, by job.
    pub scrapes: Family<L, Counter>,
    /// Scrapes that failed, by job.
    pub scrape_failures: Family<L, Counter>,
    /// Scraped samples refused as too old or too far ahead, by job.
    pub scrape_out_of_bounds: Family<L, Counter>,
    /// Scraped samples refused as out of order, by job.
    pub scrape_out_of_order: Family<L, Counter>,
    /// Scraped samples refused as a repeated timestamp with another value.
    pub scrape_duplicate_timestamp: Family<L, Counter>,
    /// Scrape duration, by job.
    pub scrape_duration: Family<L, Histogram, fn() -> Histogram>,
    /// Scrapes that exceeded `sample_limit`.
    pub scrape_sample_limit_exceeded: Counter,
    /// file_sd read errors.
    pub sd_file_read_errors: Counter,
    /// http_sd refreshes that failed.
    pub sd_http_failures: Counter,
    /// Consul API requests of consul_sd that failed.
    pub sd_consul_failures: Counter,
    /// dns_sd lookups.
    pub sd_dns_lookups: Counter,
    /// kubernetes_sd requests (list or watch) that failed.
    pub sd_kubernetes_failures: Counter,
    /// kubernetes_sd watch events handled, by role and event.
    pub sd_kubernetes_events: Family<L, Counter>,
    /// dns_sd lookups that failed.
    pub sd_dns_lookup_failures: Counter,
    /// Live series in the head.
    pub head_series: Gauge,
    /// Samples committed to the head.
    pub head_samples_appended: Counter,
    /// Samples refused as out of order.
    pub head_out_of_order: Counter,
    /// Samples refused as duplicates.
    pub head_duplicate: Counter,
    /// Series removed by retention.
    pub head_series_removed: Counter,
    /// Samples dropped because their series reference had expired.
    pub head_unknown_ref: Counter,
    /// Bytes held by each part of the head.
    pub head_memory: Family<L, Gauge>,
    /// Bytes written to the write-ahead log.
    pub wal_bytes_written: Counter,
    /// Write-ahead log fsyncs.
    pub wal_fsyncs: Counter,
    /// Seconds spent in write-ahead log fsyncs.
    pub wal_fsync_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Write-ahead log writes that failed.
    pub wal_write_failures: Counter,
    /// Damaged write-ahead log records found at start.
    pub wal_corruptions: Counter,
    /// Write-ahead log segments removed after a checkpoint.
    pub wal_truncations: Counter,
    /// Write-ahead log segment being written.
    pub wal_segment_current: Gauge,
    /// Bytes held by the write-ahead log's append buffer.
    pub wal_buffer_bytes: Gauge,
    /// Bytes held by the scrape loops' series caches.
    pub scrape_cache_bytes: Gauge,
    /// Retention passes that removed chunk files for the size budget.
    pub size_retentions: Counter,
    /// Chunks written to chunk files.
    pub chunks_written: Counter,
    /// Bytes written to chunk files.
    pub chunks_bytes_written: Counter,
    /// Chunk file writes that failed.
    pub chunks_write_failures: Counter,
    /// Damaged chunk records found at start.
    pub chunks_corruptions: Counter,
    /// Chunk files removed by retention.
    pub chunks_files_removed: Counter,
    /// Chunk files on disk.
    pub chunks_files: Gauge,
    /// Bytes of chunk files on disk.
    pub chunks_disk_bytes: Gauge,
    /// Snapshot duration.
    pub snapshot_duration: Histogram,
    /// Snapshot failures.
    pub snapshot_failures: Counter,
    /// Writes of a state file under the storage path that failed, by file.
    pub state_write_failures: Family<L, Counter>,
    /// Size of the last snapshot in bytes.
    pub snapshot_bytes: Gauge,
    /// HTTP requests by handler and code.
    pub http_requests: Family<L, Counter>,
    /// HTTP request duration by handler.
    pub http_duration: Family<L, Histogram, fn() -> Histogram>,
    /// 1 if the last reload succeeded.
    pub config_last_reload_successful: Gauge,
    /// Time of the last successful reload.
    pub config_last_reload_success_timestamp: Gauge,
    /// Rule evaluations, by rule group (`file;group`).
    pub rule_evaluations: Family<L, Counter>,
    /// Rule evaluations that failed, by rule group.
    pub rule_evaluation_failures: Family<L, Counter>,
    /// Duration of the last evaluation of each rule group.
    pub rule_group_last_duration: Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Configured interval of each rule group.
    pub rule_group_interval: Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Evaluation slots skipped because the previous one overran.
    pub rule_group_iterations_missed: Family<L, Counter>,
    /// Alerts sent to each Alertmanager.
    pub notifications_sent: Family<L, Counter>,
    /// Alerts whose sending to an Alertmanager failed.
    pub notifications_errors: Family<L, Counter>,
    /// Alerts dropped from a full queue.
    pub notifications_dropped: Family<L, Counter>,
    /// Alerts waiting in each Alertmanager's queue.
    pub notifications_queue_length: Family<L, Gauge>,
    /// Notifications delivered, by receiver and integration.
    pub receiver_sent: Family<L, Counter>,
    /// Notifications dropped after a permanent failure.
    pub receiver_failed: Family<L, Counter>,
    /// Notification templates that failed and were sent as their error.
    pub notification_template_errors: Family<L, Counter>,
    /// Delivery workers restarted after failing, by queue.
    pub notifier_worker_restarts: Family<L, Counter>,
    /// Delivery attempts that failed and are retried.
    pub receiver_retried: Family<L, Counter>,
    /// Notifications dropped from a full queue or a removed integration.
    pub receiver_dropped: Family<L, Counter>,
    /// Notifications waiting per integration.
    pub receiver_queue_length: Family<L, Gauge>,
    /// From queueing to delivery.
    pub receiver_latency: Family<L, Histogram, fn() -> Histogram>,
    /// Held notifications not sent because a peer delivered them.
    pub receiver_superseded: Family<L, Counter>,
    /// 1 while a peer's heartbeats arrive, by peer.
    pub peer_up: Family<L, Gauge>,
    /// When a peer's last valid heartbeat arrived (Unix seconds).
    pub peer_last_heartbeat: Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// A peer's clock minus ours, from its last heartbeat (seconds).
    pub peer_clock_skew: Family<L, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Heartbeats that failed, by peer and reason (sending or refused).
    pub peer_heartbeat_failures: Family<L, Counter>,
    /// Notifications both this instance and a peer delivered (found when
    /// a partition heals).
    pub peer_duplicates: Counter,
    /// Dead-man's switch calls, by outcome.
    pub deadman_pings: Family<L, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::default();
        let m = Metrics {
            scrapes: Family::default(),
            scrape_failures: Family::default(),
            scrape_out_of_bounds: Family::default(),
            scrape_out_of_order: Family::default(),
            scrape_duplicate_timestamp: Family::default(),
            scrape_duration: hist_family(),
            scrape_sample_limit_exceeded: Counter::default(),
            sd_file_read_errors: Counter::default(),
            sd_http_failures: Counter::default(),
            sd_consul_failures: Counter::default(),
            sd_dns_lookups: Counter::default(),
            sd_kubernetes_failures: Counter::default(),
            sd_kubernetes_events: Family::default(),
            sd_dns_lookup_failures: Counter::default(),
            head_series: Gauge::default(),
            head_samples_appended: Counter::default(),
            head_out_of_order: Counter::default(),
            head_duplicate: Counter::default(),
            head_series_removed: Counter::default(),
            head_unknown_ref: Counter::default(),
            head_memory: Family::default(),
            wal_bytes_written: Counter::default(),
            wal_fsyncs: Counter::default(),
            wal_fsync_seconds: Counter::default(),
            wal_write_failures: Counter::default(),
            wal_corruptions: Counter::default(),
            wal_truncations: Counter::default(),
            wal_segment_current: Gauge::default(),
            wal_buffer_bytes: Gauge::default(),
            scrape_cache_bytes: Gauge::default(),
            size_retentions: Counter::default(),
            chunks_written: Counter::default(),
            chunks_bytes_written: Counter::default(),
            chunks_write_failures: Counter::default(),
            chunks_corruptions: Counter::default(),
            chunks_files_removed: Counter::default(),
            chunks_files: Gauge::default(),
            chunks_disk_bytes: Gauge::default(),
            snapshot_duration: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
            snapshot_failures: Counter::default(),
            state_write_failures: Family::default(),
            snapshot_bytes: Gauge::default(),
            http_requests: Family::default(),
            http_duration: hist_family(),
            config_last_reload_successful: Gauge::default(),
            config_last_reload_success_timestamp: Gauge::default(),
            rule_evaluations: Family::default(),
            rule_evaluation_failures: Family::default(),
            rule_group_last_duration: Family::default(),
            rule_group_interval: Family::default(),
            rule_group_iterations_missed: Family::default(),
            notifications_sent: Family::default(),
            notifications_errors: Family::default(),
            notifications_dropped: Family::default(),
            notifications_queue_length: Family::default(),
            receiver_sent: Family::default(),
            receiver_failed: Family::default(),
            notification_template_errors: Family::default(),
            notifier_worker_restarts: Family::default(),
            receiver_retried: Family::default(),
            receiver_dropped: Family::default(),
            receiver_queue_length: Family::default(),
            receiver_latency: hist_family(),
            receiver_superseded: Family::default(),
            peer_up: Family::default(),
            peer_last_heartbeat: Family::default(),
            peer_clock_skew: Family::default(),
            peer_heartbeat_failures: Family::default(),
            peer_duplicates: Counter::default(),
            deadman_pings: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "argus_receiver_notifications_superseded",
            "Held notifications not sent because a peer delivered them first",
            m.receiver_superseded.clone(),
        );
        r.register(
            "argus_peer_up",
            "1 while the peer's heartbeats arrive within the timeout",
            m.peer_up.clone(),
        );
        r.register(
            "argus_peer_last_heartbeat_timestamp_seconds",
            "When the peer's last valid heartbeat arrived",
            m.peer_last_heartbeat.clone(),
        );
        r.register(
            "argus_peer_clock_skew_seconds",
            "The peer's clock minus this instance's, from its last heartbeat",
            m.peer_clock_skew.clone(),
        );
        r.register(
            "argus_peer_heartbeat_failures",
            "Heartbeats that could not be sent or were refused, by peer and reason",
            m.peer_heartbeat_failures.clone(),
        );
        r.register(
            "argus_peer_duplicate_notifications",
            "Notifications this instance and a peer both delivered (seen when a partition heals)",
            m.peer_duplicates.clone(),
        );
        r.register(
            "argus_deadman_pings",
            "Dead-man's switch calls, by result (ok, failed, fail_url)",
            m.deadman_pings.clone(),
        );
        r.register(
            "argus_receiver_notifications",
            "Notifications delivered, by receiver and integration",
            m.receiver_sent.clone(),
        );
        r.register(
            "argus_notification_template_errors",
            "Notification templates that failed; the notification went out with the error in their place",
            m.notification_template_errors.clone(),
        );
        r.register(
            "argus_notifier_worker_restarts",
            "Delivery workers that failed unexpectedly and were restarted, by queue",
            m.notifier_worker_restarts.clone(),
        );
        r.register(
            "argus_receiver_notifications_failed",
            "Notifications dropped after a permanent failure",
            m.receiver_failed.clone(),
        );
        r.register(
            "argus_receiver_notifications_retried",
            "Delivery attempts that failed and will be retried",
            m.receiver_retried.clone(),
        );
        r.register(
            "argus_receiver_notifications_dropped",
            "Notifications dropped from a full queue or a removed integration",
            m.receiver_dropped.clone(),
        );
        r.register(
            "argus_receiver_queue_length",
            "Notifications waiting, by receiver and integration",
            m.receiver_queue_length.clone(),
        );
        r.register(
            "argus_receiver_delivery_latency_seconds",
            "Time from queueing a notification to its delivery",
            m.receiver_latency.clone(),
        );
        r.register(
            "argus_scrapes",
            "Scrapes attempted, by job",
            m.scrapes.clone(),
        );
        r.register(
            "argus_target_scrapes_sample_out_of_bounds",
            "Scraped samples refused as too old or more than 10m ahead, by job",
            m.scrape_out_of_bounds.clone(),
        );
        r.register(
            "argus_target_scrapes_sample_out_of_order",
            "Scraped samples refused as out of order, by job",
            m.scrape_out_of_order.clone(),
        );
        r.register(
            "argus_target_scrapes_sample_duplicate_timestamp",
            "Scraped samples refused for repeating a timestamp with another value, by job",
            m.scrape_duplicate_timestamp.clone(),
        );
        r.register(
            "argus_scrape_failures",
            "Scrapes that failed, by job",
            m.scrape_failures.clone(),
        );
        r.register(
            "argus_scrape_duration_seconds",
            "Scrape duration, by job",
            m.scrape_duration.clone(),
        );
        r.register(
            "argus_scrape_exceeded_sample_limit",
            "Scrapes that hit sample_limit",
            m.scrape_sample_limit_exceeded.clone(),
        );
        r.register(
            "argus_sd_file_read_errors",
            "file_sd files that failed to read or parse",
            m.sd_file_read_errors.clone(),
        );
        r.register(
            "argus_sd_http_failures",
            "http_sd refreshes that failed (the endpoint unreachable, a status other than 200, a body that is not a JSON list of target groups)",
            m.sd_http_failures.clone(),
        );
        r.register(
            "argus_sd_consul_rpc_failures",
            "Consul API requests of consul_sd that failed (as Prometheus's prometheus_sd_consul_rpc_failures_total)",
            m.sd_consul_failures.clone(),
        );
        r.register(
            "argus_sd_kubernetes_failures",
            "kubernetes_sd lists and watches that failed (the API server unreachable, an error status, an answer that does not decode)",
            m.sd_kubernetes_failures.clone(),
        );
        r.register(
            "argus_sd_kubernetes_events",
            "Kubernetes watch events kubernetes_sd handled, by role and event (as Prometheus's prometheus_sd_kubernetes_events_total)",
            m.sd_kubernetes_events.clone(),
        );
        r.register(
            "argus_sd_dns_lookups",
            "dns_sd lookups of a name (as Prometheus's prometheus_sd_dns_lookups_total)",
            m.sd_dns_lookups.clone(),
        );
        r.register(
            "argus_sd_dns_lookup_failures",
            "dns_sd lookups of a name that failed (as Prometheus's prometheus_sd_dns_lookup_failures_total)",
            m.sd_dns_lookup_failures.clone(),
        );
        r.register(
            "argus_head_series",
            "Series in the in-memory head",
            m.head_series.clone(),
        );
        r.register(
            "argus_head_samples_appended",
            "Samples committed to the head",
            m.head_samples_appended.clone(),
        );
        r.register(
            "argus_head_out_of_order_samples",
            "Samples refused as out of order",
            m.head_out_of_order.clone(),
        );
        r.register(
            "argus_head_duplicate_samples",
            "Samples refused as duplicates with another value",
            m.head_duplicate.clone(),
        );
        r.register(
            "argus_head_series_removed",
            "Series removed by retention",
            m.head_series_removed.clone(),
        );
        r.register(
            "argus_head_memory_bytes",
            "Estimated bytes held by each part of the head (symbols, postings, series, open_chunks, chunk_refs, histograms), as of the last retention pass",
            m.head_memory.clone(),
        );
        r.register(
            "argus_wal_bytes_written",
            "Bytes written to write-ahead log segments",
            m.wal_bytes_written.clone(),
        );
        r.register(
            "argus_wal_fsyncs",
            "Write-ahead log fsyncs",
            m.wal_fsyncs.clone(),
        );
        r.register(
            "argus_wal_fsync_duration_seconds",
            "Time spent in write-ahead log fsyncs (divide by argus_wal_fsyncs_total for the mean)",
            m.wal_fsync_seconds.clone(),
        );
        r.register(
            "argus_wal_write_failures",
            "Write-ahead log writes or fsyncs that failed (the samples stay in memory until the next checkpoint)",
            m.wal_write_failures.clone(),
        );
        r.register(
            "argus_wal_corruptions",
            "Damaged write-ahead log records found at start (each segment is cut at its first)",
            m.wal_corruptions.clone(),
        );
        r.register(
            "argus_wal_truncations",
            "Write-ahead log segments removed because a checkpoint covers them",
            m.wal_truncations.clone(),
        );
        r.register(
            "argus_wal_segment_current",
            "Number of the write-ahead log segment being written",
            m.wal_segment_current.clone(),
        );
        r.register(
            "argus_wal_buffer_bytes",
            "Bytes held by the write-ahead log's append buffer",
            m.wal_buffer_bytes.clone(),
        );
        r.register(
            "argus_storage_size_retentions",
            "Retention passes that removed the oldest chunk files to keep the store within --storage.retention-size",
            m.size_retentions.clone(),
        );
        r.register(
            "argus_scrape_cache_bytes",
            "Bytes held by the scrape loops' series caches (each target's exposition lines and what they map to)",
            m.scrape_cache_bytes.clone(),
        );
        r.register(
            "argus_chunks_written",
            "Full chunks written to chunk files",
            m.chunks_written.clone(),
        );
        r.register(
            "argus_chunks_bytes_written",
            "Bytes written to chunk files",
            m.chunks_bytes_written.clone(),
        );
        r.register(
            "argus_chunks_write_failures",
            "Chunk file writes that failed (the chunks stay in memory and are written when it works again)",
            m.chunks_write_failures.clone(),
        );
        r.register(
            "argus_chunks_corruptions",
            "Damaged chunk records found at start (each file is cut at its first)",
            m.chunks_corruptions.clone(),
        );
        r.register(
            "argus_chunks_files_removed",
            "Chunk files removed by retention",
            m.chunks_files_removed.clone(),
        );
        r.register(
            "argus_chunks_files",
            "Chunk files on disk",
            m.chunks_files.clone(),
        );
        r.register(
            "argus_chunks_disk_bytes",
            "Bytes of chunk files on disk",
            m.chunks_disk_bytes.clone(),
        );
        r.register(
            "argus_snapshot_duration_seconds",
            "Time to write a head snapshot",
            m.snapshot_duration.clone(),
        );
        r.register(
            "argus_state_write_failures",
            "Writes of state files under the storage path that failed, by file",
            m.state_write_failures.clone(),
        );
        r.register(
            "argus_snapshot_failures",
            "Snapshots that failed to write",
            m.snapshot_failures.clone(),
        );
        r.register(
            "argus_snapshot_size_bytes",
            "Size of the last snapshot",
            m.snapshot_bytes.clone(),
        );
        r.register(
            "argus_http_requests",
            "HTTP requests, by handler and code",
            m.http_requests.clone(),
        );
        r.register(
            "argus_http_request_duration_seconds",
            "HTTP request duration, by handler",
            m.http_duration.clone(),
        );
        r.register(
            "argus_config_last_reload_successful",
            "Whether the last configuration reload succeeded",
            m.config_last_reload_successful.clone(),
        );
        r.register(
            "argus_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration reload",
            m.config_last_reload_success_timestamp.clone(),
        );
        r.register(
            "argus_rule_evaluations",
            "Rule evaluations, by rule group",
            m.rule_evaluations.clone(),
        );
        r.register(
            "argus_rule_evaluation_failures",
            "Rule evaluations that failed, by rule group",
            m.rule_evaluation_failures.clone(),
        );
        r.register(
            "argus_rule_group_last_duration_seconds",
            "Duration of the last evaluation of the rule group",
            m.rule_group_last_duration.clone(),
        );
        r.register(
            "argus_rule_group_interval_seconds",
            "Configured evaluation interval of the rule group",
            m.rule_group_interval.clone(),
        );
        r.register(
            "argus_rule_group_iterations_missed",
            "Evaluation slots skipped because the previous evaluation overran",
            m.rule_group_iterations_missed.clone(),
        );
        r.register(
            "argus_notifications_sent",
            "Alerts sent, by Alertmanager",
            m.notifications_sent.clone(),
        );
        r.register(
            "argus_notifications_errors",
            "Alerts that could not be sent, by Alertmanager",
            m.notifications_errors.clone(),
        );
        r.register(
            "argus_notifications_dropped",
            "Alerts dropped because a queue was full, by Alertmanager",
            m.notifications_dropped.clone(),
        );
        r.register(
            "argus_notifications_queue_length",
            "Alerts waiting to be sent, by Alertmanager",
            m.notifications_queue_length.clone(),
        );
        let info: Family<L, Gauge> = Family::default();
        info.get_or_create(&vec![
            ("version".into(), env!("CARGO_PKG_VERSION").into()),
            ("revision".into(), crate::build_info::REVISION.into()),
        ])
        .set(1);
        r.register("argus_build_info", "Build information", info);
        Metrics { registry: r, ..m }
    }

    /// Renders OpenMetrics text, refreshing the store's figures first.
    pub fn render(&self, store: &StoreFigures) -> String {
        self.head_series.set(store.series as i64);
        // The store counts with its own atomics; carry them over as counters.
        let sync = |c: &Counter, v: u64| {
            c.inc_by(v.saturating_sub(c.get()));
        };
        sync(&self.head_samples_appended, store.samples_appended);
        sync(&self.head_out_of_order, store.out_of_order);
        sync(&self.head_duplicate, store.duplicate);
        sync(&self.head_series_removed, store.series_removed);
        sync(&self.head_unknown_ref, store.unknown_ref);
        for (part, bytes) in &store.memory {
            self.head_memory
                .get_or_create(&vec![("part".to_string(), part.to_string())])
                .set(*bytes as i64);
        }
        if let Some(w) = &store.wal {
            sync(&self.wal_bytes_written, w.bytes_written);
            sync(&self.wal_fsyncs, w.fsyncs);
            let secs = w.fsync_seconds - self.wal_fsync_seconds.get();
            if secs > 0.0 {
                self.wal_fsync_seconds.inc_by(secs);
            }
            sync(&self.wal_write_failures, w.write_failures);
            sync(&self.wal_corruptions, w.corruptions);
            sync(&self.wal_truncations, w.truncations);
            self.wal_segment_current.set(w.segment as i64);
            self.wal_buffer_bytes.set(w.buffer_bytes as i64);
        }
        if let Some(c) = &store.chunks {
            sync(&self.chunks_written, c.chunks_written);
            sync(&self.chunks_bytes_written, c.bytes_written);
            sync(&self.chunks_write_failures, c.write_failures);
            sync(&self.chunks_corruptions, c.corruptions);
            sync(&self.chunks_files_removed, c.files_removed);
            self.chunks_files.set(c.files as i64);
            self.chunks_disk_bytes.set(c.disk_bytes as i64);
        }
        let mut s = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = encode(&mut s, &self.registry);
        s
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global tracing subscriber. `level` is an env-filter
/// directive (`info`, `argus=debug,warn`); `RUST_LOG` overrides it.
pub fn init_logging(level: &str, format: LogFormat) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::try_new(v),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|e| format!("invalid log level {level:?}: {e}"))?;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let r = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.with_ansi(false).try_init(),
    };
    r.map_err(|e| e.to_string())
}
