//! The YAML configuration: structure, defaults, validation with
//! `FILE:LINE:COL: key.path: message` errors, and secrets read from files.

mod positions;
mod types;
pub mod web_file;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use positions::{Pos, Positions};
pub use types::{ByteSize, PromDuration, Secret, parse_bytes, parse_duration};

/// One config error with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// File the error is in (`<embedded>` for the built-in default).
    pub file: String,
    /// Position, when known.
    pub pos: Option<Pos>,
    /// Key path such as `scrape_configs[2].relabel_configs[0].action`.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: ", self.file, p.line, p.col)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.msg)
    }
}

/// All errors found in one config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The whole config file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Settings shared by every section.
    #[serde(default)]
    pub global: GlobalConfig,
    /// What to scrape.
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
    /// Rule files (globs, relative to the config file's directory).
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// SLO spec files (globs, relative to the config file's directory) in
    /// Sloth's formats, evaluated as the rules they generate (an argus
    /// extension; see docs/slo.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slo_files: Vec<String>,
    /// Blackbox-style HTTP probes argus runs itself (an argus extension).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probe_configs: Vec<ProbeConfig>,
    /// Where alerts go besides argus's own routing.
    #[serde(default, skip_serializing_if = "AlertingConfig::is_empty")]
    pub alerting: AlertingConfig,
    /// argus's HTTP server settings (an argus extension).
    #[serde(default, skip_serializing_if = "WebConfig::is_empty")]
    pub web: WebConfig,
    /// Redundant peers watching each other (an argus extension; see
    /// docs/ha.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<PeersConfig>,
    /// An outside dead-man's switch pinged while the alerting chain works
    /// (an argus extension; see docs/ha.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadman: Option<DeadmanConfig>,
    /// The file this was read from, if any (for positions in errors
    /// found after loading).
    #[serde(skip)]
    pub source_file: Option<std::path::PathBuf>,
}

/// `peers:` — this instance and the others it runs with.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeersConfig {
    /// This instance's id (one of `members`).
    #[serde(rename = "self")]
    pub self_id: String,
    /// Every instance, this one included, in delivery order.
    pub members: Vec<PeerMember>,
    /// How often heartbeats are sent.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: PromDuration,
    /// A peer is down after this long without a valid heartbeat.
    #[serde(default = "default_peer_timeout")]
    pub timeout: PromDuration,
    /// File holding the shared secret that signs heartbeats.
    pub secret_file: String,
}

/// The most a scrape body may unpack to when `body_size_limit` is unset
/// or 0 (Prometheus's "no limit"): one target must not be able to take
/// the memory alerting needs.
pub const DEFAULT_BODY_SIZE_LIMIT: u64 = 100 << 20;

/// The body limit a scrape config asks for, with 0 and unset meaning
/// [`DEFAULT_BODY_SIZE_LIMIT`].
pub fn effective_body_size_limit(configured: Option<ByteSize>) -> u64 {
    match configured {
        Some(ByteSize(n)) if n > 0 => n,
        _ => DEFAULT_BODY_SIZE_LIMIT,
    }
}

/// The longest peer id (a DNS name is at most 253 characters).
pub const MAX_PEER_ID_LEN: usize = 253;

/// Whether `id` can be a peer id: short, and made of characters that are
/// safe in a label value, a log line and a URL (host and pod names are).
pub fn is_peer_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_PEER_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// One `peers.members` entry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeerMember {
    /// Its id.
    pub id: String,
    /// Where its HTTP server is reached (`http://10.0.0.2:9095`).
    pub url: String,
}

fn default_heartbeat_interval() -> PromDuration {
    PromDuration::secs(5)
}
fn default_peer_timeout() -> PromDuration {
    PromDuration::secs(15)
}

/// `deadman:` — an outside dead-man's switch.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadmanConfig {
    /// Pinged (GET) every interval while the chain works.
    pub url: String,
    /// How often.
    #[serde(default = "default_deadman_interval")]
    pub interval: PromDuration,
    /// Called (GET) when the chain did not work within an interval.
    #[serde(default)]
    pub fail_url: Option<String>,
    /// The always-firing alert whose passage through evaluation and
    /// routing proves the chain works.
    #[serde(default = "default_deadman_alert")]
    pub alertname: String,
}

fn default_deadman_interval() -> PromDuration {
    PromDuration::secs(60)
}
fn default_deadman_alert() -> String {
    "Watchdog".into()
}

/// `alerting:`
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Existing Alertmanagers that receive every alert, as Prometheus
    /// sends them.
    #[serde(default)]
    pub alertmanagers: Vec<AlertmanagerConfig>,
    /// An Alertmanager configuration file (relative to this file) by which
    /// argus routes and delivers alerts itself.
    #[serde(default)]
    pub routing_file: Option<String>,
    /// An Alertmanager configuration written inline, instead of
    /// `routing_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<InlineRouting>,
    /// How argus's own receivers deliver: queues, retries, rate limits.
    #[serde(default, skip_serializing_if = "DeliveryConfig::is_default")]
    pub delivery: DeliveryConfig,
}

impl AlertingConfig {
    fn is_empty(&self) -> bool {
        self.alertmanagers.is_empty()
            && self.routing_file.is_none()
            && self.routing.is_none()
            && self.delivery.is_default()
    }
}

/// `alerting.routing:` — Alertmanager's format inside argus's config,
/// kept as written and read by the notify module; shown with its secrets
/// hidden.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct InlineRouting(pub serde_json::Value);

impl Serialize for InlineRouting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = self.0.clone();
        redact_secrets(&mut v);
        v.serialize(s)
    }
}

/// Keys whose values Alertmanager's configuration holds as secrets.
pub const SECRET_KEYS: &[&str] = &[
    "api_url",
    "slack_api_url",
    "slack_app_token",
    "app_token",
    "service_key",
    "routing_key",
    "auth_password",
    "auth_secret",
    "smtp_auth_password",
    "smtp_auth_secret",
    "password",
    "credentials",
    "bearer_token",
    "url",
    "api_key",
    "opsgenie_api_key",
    "victorops_api_key",
    "wechat_api_secret",
    "api_secret",
    "bot_token",
    "telegram_bot_token",
    "user_key",
    "token",
    "token_id",
    "rocketchat_token",
    "rocketchat_token_id",
    "webhook_url",
    "mattermost_webhook_url",
    "client_secret",
];

/// Replaces the values of [`SECRET_KEYS`] anywhere in `v` with
/// `<secret>`.
pub fn redact_secrets(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && x.is_string() {
                    *x = serde_json::Value::String("<secret>".into());
                } else {
                    redact_secrets(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

/// Parses a rate `N/s`, `N/m` or `N/h` into (N, period in ms).
pub fn parse_rate(s: &str) -> Result<(u32, u64), String> {
    let (n, unit) = s
        .split_once('/')
        .ok_or_else(|| format!("invalid rate {s:?}: want N/s, N/m or N/h"))?;
    let n: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid rate {s:?}: N must be a positive integer"))?;
    let per_ms = match unit.trim() {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("invalid rate {s:?}: the unit must be s, m or h")),
    };
    Ok((n, per_ms))
}

/// `probe_configs[]`: an HTTP check argus runs every `interval`,
/// recording `probe_success`, `probe_duration_seconds` and
/// `probe_http_status_code` (labels `job="probe"`, `probe`, `instance`)
/// and exact latencies for SLOs.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Unique name (`probe` label).
    pub name: String,
    /// The URL.
    pub url: String,
    /// HTTP method.
    #[serde(default = "default_probe_method")]
    pub method: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body.
    #[serde(default)]
    pub body: String,
    /// Status codes that count as success (any 2xx when empty).
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// The body must match this regular expression.
    #[serde(default)]
    pub body_regex: Option<String>,
    /// Fail unless the final connection used TLS.
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    /// Whole-probe timeout.
    #[serde(default = "default_probe_timeout")]
    pub timeout: PromDuration,
    /// The most of the answer's body read (unset or 0: the scrape
    /// default, [`DEFAULT_BODY_SIZE_LIMIT`]); a longer body fails the
    /// check, as blackbox_exporter's `body_size_limit` does.
    #[serde(default)]
    pub body_size_limit: Option<ByteSize>,
    /// How often to probe.
    #[serde(default = "default_probe_interval")]
    pub interval: PromDuration,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Extra labels on the probe's series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Upper bounds (seconds) of the `probe_check_duration_seconds`
    /// histogram; a probe latency SLI's threshold must be one of them.
    #[serde(default = "default_probe_buckets")]
    pub buckets: Vec<f64>,
}

/// Prometheus's default buckets with the usual latency objectives
/// (200 ms, 300 ms, 750 ms, 2 s) added.
fn default_probe_buckets() -> Vec<f64> {
    vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5, 0.75, 1.0, 2.0, 2.5, 5.0, 10.0,
    ]
}

fn default_probe_method() -> String {
    "GET".into()
}
fn default_probe_timeout() -> PromDuration {
    PromDuration::secs(5)
}
fn default_probe_interval() -> PromDuration {
    PromDuration::secs(15)
}

/// `web:` — argus's HTTP server.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Credentials the write endpoints (posting alerts, silences,
    /// reload) require; read endpoints stay open.
    #[serde(default)]
    pub auth: Option<WebAuth>,
}

impl WebConfig {
    fn is_empty(&self) -> bool {
        self.auth.is_none()
    }
}

/// `web.auth:` — a bearer token, basic auth, or both (either is then
/// accepted). Secrets in files are read per request, so rotating them
/// needs no reload.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebAuth {
    /// The token of `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// File holding the token.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// User and password of `Authorization: Basic`.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
}

/// `alerting.delivery:` — the outbox of argus's own receivers. Every
/// receiver integration has its own queue with these settings.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Most notifications waiting per integration (the oldest is dropped,
    /// and counted, beyond it).
    pub queue_capacity: usize,
    /// First retry delay; doubled per failure, with jitter.
    pub retry_initial: PromDuration,
    /// Longest retry delay (a receiver's `Retry-After` may ask for more).
    pub retry_max: PromDuration,
    /// Consecutive failures that open an integration's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker holds deliveries back.
    pub breaker_cooldown: PromDuration,
    /// Rate limit per integration type (`slack`, `pagerduty`, `email`,
    /// `webhook`), as `N/s`, `N/m` or `N/h`, for each integration's queue.
    pub rate_limits: BTreeMap<String, String>,
    /// Rate limit for the integrations of one receiver, by receiver name;
    /// wins over `rate_limits`.
    pub receiver_rate_limits: BTreeMap<String, String>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            queue_capacity: 1000,
            retry_initial: PromDuration::secs(1),
            retry_max: PromDuration::secs(300),
            breaker_failures: 5,
            breaker_cooldown: PromDuration::secs(60),
            // Slack accepts about one message per second per webhook.
            rate_limits: BTreeMap::from([("slack".to_string(), "1/s".to_string())]),
            receiver_rate_limits: BTreeMap::new(),
        }
    }
}

impl DeliveryConfig {
    fn is_default(&self) -> bool {
        *self == DeliveryConfig::default()
    }
}

/// `alerting.alertmanagers[]`: a set of Alertmanagers sharing settings.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    /// `host:port` of each Alertmanager.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Prefix of the API path (`/` by default).
    #[serde(default)]
    pub path_prefix: String,
    /// Per-request timeout (10s).
    #[serde(default = "default_am_timeout")]
    pub timeout: PromDuration,
    /// Only `v2`, the one API Prometheus 3 and Alertmanager 0.16+ speak.
    #[serde(default = "default_am_api")]
    pub api_version: String,
    /// Basic authentication.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// Authorization header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// TLS settings for https.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
}

fn default_am_timeout() -> PromDuration {
    PromDuration::secs(10)
}
fn default_am_api() -> String {
    "v2".into()
}

impl AlertmanagerConfig {
    /// The alerts endpoint of each Alertmanager.
    pub fn urls(&self) -> Vec<String> {
        let prefix = self.path_prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() || prefix.starts_with('/') {
            prefix.to_string()
        } else {
            format!("/{prefix}")
        };
        self.static_configs
            .iter()
            .flat_map(|s| s.targets.iter())
            .map(|t| format!("{}://{t}{prefix}/api/v2/alerts", self.scheme))
            .collect()
    }
}

/// `global:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlobalConfig {
    /// Default scrape interval (1m).
    pub scrape_interval: PromDuration,
    /// Default scrape timeout: 10s, or the interval if that is shorter.
    pub scrape_timeout: Option<PromDuration>,
    /// Default rule evaluation interval (1m).
    pub evaluation_interval: PromDuration,
    /// Labels added to alerts and federation output.
    pub external_labels: BTreeMap<String, String>,
    /// Default for every scrape config's `body_size_limit` (0 = argus's
    /// ceiling, [`DEFAULT_BODY_SIZE_LIMIT`]).
    pub body_size_limit: ByteSize,
    /// Default `sample_limit`.
    pub sample_limit: u64,
    /// Default `label_limit`.
    pub label_limit: u64,
    /// Default `label_name_length_limit`.
    pub label_name_length_limit: u64,
    /// Default `label_value_length_limit`.
    pub label_value_length_limit: u64,
    /// Default `scrape_protocols`: the text formats, OpenMetrics first
    /// (Prometheus 3's default).
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// Default `scrape_native_histograms`.
    pub scrape_native_histograms: bool,
    /// Default `keep_dropped_targets` (0: keep all).
    pub keep_dropped_targets: u32,
}

/// An exposition format a scrape may ask for (`scrape_protocols`), with
/// Prometheus's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum ScrapeProtocol {
    /// Delimited protobuf `MetricFamily` messages (native histograms).
    #[serde(rename = "PrometheusProto")]
    PrometheusProto,
    /// OpenMetrics 1.0.
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText100,
    /// OpenMetrics 0.0.1.
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText001,
    /// Prometheus text 1.0.0.
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText100,
    /// Prometheus text 0.0.4.
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText004,
}

impl ScrapeProtocol {
    /// The media type the `Accept` header names for it.
    pub fn media_type(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => crate::scrape::proto::CONTENT_TYPE,
            ScrapeProtocol::OpenMetricsText100 => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
            ScrapeProtocol::OpenMetricsText001 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::PrometheusText100 => "text/plain;version=1.0.0;escaping=allow-utf-8",
            ScrapeProtocol::PrometheusText004 => "text/plain;version=0.0.4",
        }
    }

    /// The `Accept` header for `protocols` in order of preference, as
    /// Prometheus weighs them (0.n+1 down to 0.2, then `*/*;q=0.1`).
    pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
        let mut parts: Vec<String> = protocols
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{};q=0.{}", p.media_type(), protocols.len() + 1 - i))
            .collect();
        parts.push("*/*;q=0.1".into());
        parts.join(",")
    }
}

/// Prometheus 3's default protocols: text only, OpenMetrics first.
pub const DEFAULT_SCRAPE_PROTOCOLS: [ScrapeProtocol; 4] = [
    ScrapeProtocol::OpenMetricsText100,
    ScrapeProtocol::OpenMetricsText001,
    ScrapeProtocol::PrometheusText100,
    ScrapeProtocol::PrometheusText004,
];

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: PromDuration::secs(60),
            scrape_timeout: None,
            evaluation_interval: PromDuration::secs(60),
            external_labels: BTreeMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            scrape_protocols: DEFAULT_SCRAPE_PROTOCOLS.to_vec(),
            scrape_native_histograms: false,
            keep_dropped_targets: 0,
        }
    }
}

/// One `scrape_configs` entry. Inheritable fields are `Option` as written
/// and filled from `global` by [`Config::load_str`].
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Job name, unique in the file; becomes the `job` label.
    pub job_name: String,
    /// How often to scrape.
    #[serde(default)]
    pub scrape_interval: Option<PromDuration>,
    /// Per-scrape timeout, at most the interval.
    #[serde(default)]
    pub scrape_timeout: Option<PromDuration>,
    /// HTTP path (`/metrics`).
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    /// `http` or `https`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// URL query parameters.
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    /// Keep the target's own labels on conflict.
    #[serde(default)]
    pub honor_labels: bool,
    /// Use timestamps the target exposes.
    #[serde(default = "default_true")]
    pub honor_timestamps: bool,
    /// Fixed targets.
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    /// Targets from JSON/YAML files.
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Targets from HTTP endpoints.
    #[serde(default)]
    pub http_sd_configs: Vec<HttpSdConfig>,
    /// Targets from Consul's catalog.
    #[serde(default)]
    pub consul_sd_configs: Vec<ConsulSdConfig>,
    /// Targets from DNS records.
    #[serde(default)]
    pub dns_sd_configs: Vec<DnsSdConfig>,
    /// Targets from a Kubernetes API server.
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    /// Follow redirects (up to 10), as Prometheus does by default; when
    /// false a 3xx answer fails the scrape with its status.
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// Prometheus's switch for HTTP/2 over TLS. Read and kept for the
    /// config API; argus speaks HTTP/1.1 to targets either way.
    #[serde(default = "default_true")]
    pub enable_http2: bool,
    /// Scrapes with more samples fail (0 = no limit).
    #[serde(default)]
    pub sample_limit: Option<u64>,
    /// Series with more labels fail the scrape.
    #[serde(default)]
    pub label_limit: Option<u64>,
    /// Longer label names fail the scrape.
    #[serde(default)]
    pub label_name_length_limit: Option<u64>,
    /// Longer label values fail the scrape.
    #[serde(default)]
    pub label_value_length_limit: Option<u64>,
    /// Larger (uncompressed) bodies fail the scrape.
    #[serde(default)]
    pub body_size_limit: Option<ByteSize>,
    /// Relabeling of targets.
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    /// Relabeling of scraped samples.
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
    /// Formats to ask for, preferred first (default: `global`'s). List
    /// `PrometheusProto` to scrape native histograms.
    #[serde(default)]
    pub scrape_protocols: Option<Vec<ScrapeProtocol>>,
    /// Keep the classic buckets of histograms a target also exposes as
    /// native ones (protobuf only; Prometheus 2's name
    /// `scrape_classic_histograms` is read too).
    #[serde(default, alias = "scrape_classic_histograms")]
    pub always_scrape_classic_histograms: bool,
    /// Ask for protobuf first when `scrape_protocols` is not given, so
    /// targets that expose native histograms send them (Prometheus 3.8's
    /// setting; default: `global`'s).
    #[serde(default)]
    pub scrape_native_histograms: Option<bool>,
    /// How many targets dropped by relabeling `/api/v1/targets` lists for
    /// this job (0: all; default: `global`'s); all are counted.
    #[serde(default)]
    pub keep_dropped_targets: Option<u32>,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}
fn default_scheme() -> String {
    "http".into()
}
fn default_true() -> bool {
    true
}

impl ScrapeConfig {
    /// The effective interval (filled from `global` at load).
    pub fn interval(&self) -> PromDuration {
        self.scrape_interval.unwrap_or(PromDuration::secs(60))
    }
    /// The effective timeout (filled from `global` at load).
    pub fn timeout(&self) -> PromDuration {
        self.scrape_timeout.unwrap_or(PromDuration::secs(10))
    }
}

/// `static_configs` entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    /// `host:port` addresses.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Labels for every target of the group.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    /// Globs of `.json`, `.yml` or `.yaml` files.
    pub files: Vec<String>,
    /// How often files are re-read (5m when unset or null).
    #[serde(default)]
    pub refresh_interval: Option<PromDuration>,
}

impl FileSdConfig {
    /// The refresh interval in effect.
    pub fn refresh(&self) -> PromDuration {
        self.refresh_interval.unwrap_or(PromDuration::secs(300))
    }
}

/// `http_sd_configs` entry: target groups fetched from a URL every
/// `refresh_interval`, as Prometheus's HTTP service discovery does.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSdConfig {
    /// The endpoint (http or https), answering a JSON list of groups.
    #[serde(default)]
    pub url: String,
    /// How often it is asked, and how long an answer may take (1m when
    /// unset or null).
    #[serde(default)]
    pub refresh_interval: Option<PromDuration>,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
}

impl HttpSdConfig {
    /// The refresh interval in effect.
    pub fn refresh(&self) -> PromDuration {
        self.refresh_interval.unwrap_or(PromDuration::secs(60))
    }
}

/// `dns_sd_configs` entry: targets from SRV, A, AAAA or MX records,
/// looked up every `refresh_interval` as Prometheus's DNS discovery does.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DnsSdConfig {
    /// Names to look up (at least one).
    #[serde(default)]
    pub names: Vec<String>,
    /// How often (30s when unset or null).
    #[serde(default)]
    pub refresh_interval: Option<PromDuration>,
    /// `SRV` (when missing), `A`, `AAAA` or `MX`, in any case.
    #[serde(default, rename = "type", deserialize_with = "yaml::present")]
    pub record_type: Option<String>,
    /// The port of A, AAAA and MX targets (required for them).
    #[serde(default)]
    pub port: i64,
}

impl DnsSdConfig {
    /// The refresh interval in effect.
    pub fn refresh(&self) -> PromDuration {
        self.refresh_interval.unwrap_or(PromDuration::secs(30))
    }

    /// The record type, upper case.
    pub fn record_type(&self) -> String {
        self.record_type
            .as_deref()
            .unwrap_or("SRV")
            .to_ascii_uppercase()
    }
}

/// `kubernetes_sd_configs` entry: pods, services, nodes, endpoints,
/// endpoint slices or ingresses listed and watched through the Kubernetes
/// API, as Prometheus's Kubernetes discovery finds them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// The API server's URL; without it (and without
    /// `kubeconfig_file`) argus uses the pod's service account.
    #[serde(default)]
    pub api_server: Option<String>,
    /// `pod`, `service`, `node`, `endpoints`, `endpointslice` or
    /// `ingress` (required).
    #[serde(default)]
    pub role: String,
    /// A kubeconfig file to connect with, instead of `api_server`.
    #[serde(default)]
    pub kubeconfig_file: String,
    /// Which namespaces to watch (all when empty).
    #[serde(default)]
    pub namespaces: KubernetesNamespaces,
    /// Label and field selectors sent to the API server, per role.
    #[serde(default)]
    pub selectors: Vec<KubernetesSelector>,
    /// Node labels on pod and endpoint targets.
    #[serde(default)]
    pub attach_metadata: KubernetesAttachMetadata,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
}

/// The roles of `kubernetes_sd_configs`, in Prometheus's order.
pub const KUBERNETES_ROLES: &[&str] = &[
    "pod",
    "service",
    "endpoints",
    "endpointslice",
    "node",
    "ingress",
];

/// `kubernetes_sd_configs[].namespaces`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesNamespaces {
    /// Also watch the namespace argus runs in (in-cluster only).
    #[serde(default)]
    pub own_namespace: bool,
    /// Namespaces to watch.
    #[serde(default)]
    pub names: Vec<String>,
}

/// `kubernetes_sd_configs[].selectors[]`: what the API server is asked
/// to filter by, for one kind of object.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    /// The kind of object it filters (a role name).
    #[serde(default)]
    pub role: String,
    /// A label selector (`app=web,tier!=db`).
    #[serde(default)]
    pub label: String,
    /// A field selector (`spec.nodeName=n1`).
    #[serde(default)]
    pub field: String,
}

/// `kubernetes_sd_configs[].attach_metadata`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAttachMetadata {
    /// Add the labels of the node a target runs on.
    #[serde(default)]
    pub node: bool,
}

impl KubernetesSdConfig {
    fn client(&self) -> ClientSettings<'_> {
        ClientSettings {
            basic_auth: &self.basic_auth,
            authorization: &self.authorization,
            bearer_token: &self.bearer_token,
            bearer_token_file: &self.bearer_token_file,
            tls_config: &self.tls_config,
        }
    }

    /// True when any HTTP client setting is given (Prometheus allows them
    /// only with `api_server`). An empty `tls_config` is the default.
    pub fn custom_client(&self) -> bool {
        self.basic_auth.is_some()
            || self.authorization.is_some()
            || self.bearer_token.as_ref().is_some_and(|t| !t.is_empty())
            || self
                .bearer_token_file
                .as_ref()
                .is_some_and(|t| !t.is_empty())
            || self
                .tls_config
                .as_ref()
                .is_some_and(|t| *t != TlsConfig::default())
    }

    /// The label and field selectors for objects of `role`.
    pub fn selector(&self, role: &str) -> (&str, &str) {
        self.selectors
            .iter()
            .find(|s| s.role == role)
            .map_or(("", ""), |s| (s.label.as_str(), s.field.as_str()))
    }

    /// Checks the entry as Prometheus 2.42 does, in its order.
    fn validate(&self, p: &str, err: &mut dyn FnMut(String, String)) {
        if self.role.is_empty() {
            err(
                format!("{p}.role"),
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)"
                    .into(),
            );
            return;
        }
        if !KUBERNETES_ROLES.contains(&self.role.as_str()) {
            err(
                format!("{p}.role"),
                format!("unknown Kubernetes SD role {:?}", self.role),
            );
            return;
        }
        let before = std::cell::Cell::new(false);
        self.client().validate(p, &mut |k, m| {
            before.set(true);
            err(k, m)
        });
        if before.get() {
            return;
        }
        let api = self.api_server.as_deref().filter(|a| !a.is_empty());
        if let Some(a) = api {
            if !(a.starts_with("http://") || a.starts_with("https://")) {
                err(
                    format!("{p}.api_server"),
                    format!("api_server {a:?} is not an http or https URL"),
                );
                return;
            }
        }
        let kube = !self.kubeconfig_file.is_empty();
        let own = self.namespaces.own_namespace;
        let conflict = if api.is_some() && kube {
            Some("cannot use 'kubeconfig_file' and 'api_server' simultaneously")
        } else if kube && self.custom_client() {
            Some("cannot use a custom HTTP client configuration together with 'kubeconfig_file'")
        } else if api.is_none() && self.custom_client() {
            Some(
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly",
            )
        } else if api.is_some() && own {
            Some("cannot use 'api_server' and 'namespaces.own_namespace' simultaneously")
        } else if kube && own {
            Some("cannot use 'kubeconfig_file' and 'namespaces.own_namespace' simultaneously")
        } else {
            None
        };
        if let Some(m) = conflict {
            err(p.to_string(), m.into());
            return;
        }
        let allowed: &[&str] = match self.role.as_str() {
            "endpoints" => &["pod", "service", "endpoints"],
            "endpointslice" => &["pod", "service", "endpointslice"],
            r => KUBERNETES_ROLES
                .iter()
                .find(|x| **x == r)
                .map(std::slice::from_ref)
                .unwrap_or_default(),
        };
        let mut seen = Vec::new();
        for (i, s) in self.selectors.iter().enumerate() {
            let sp = format!("{p}.selectors[{i}]");
            if !KUBERNETES_ROLES.contains(&s.role.as_str()) {
                err(
                    format!("{sp}.role"),
                    format!("unknown Kubernetes SD role {:?}", s.role),
                );
                return;
            }
            if seen.contains(&s.role.as_str()) {
                err(sp, format!("duplicated selector role: {}", s.role));
                return;
            }
            seen.push(s.role.as_str());
            if !allowed.contains(&s.role.as_str()) {
                err(
                    format!("{sp}.role"),
                    format!(
                        "{} role supports only {} selectors",
                        self.role,
                        allowed.join(", ")
                    ),
                );
                return;
            }
            if let Err(m) = crate::scrape::kubernetes::check_field_selector(&s.field) {
                err(format!("{sp}.field"), m);
                return;
            }
            if let Err(m) = crate::scrape::kubernetes::check_label_selector(&s.label) {
                err(format!("{sp}.label"), m);
                return;
            }
        }
    }
}

/// `consul_sd_configs` entry: the instances of Consul services, found
/// through its catalog and health API with blocking queries, as
/// Prometheus's Consul discovery finds them.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulSdConfig {
    /// `host:port` of the Consul agent (`localhost:8500` when the key is
    /// missing; a null or blank one is refused, as in Prometheus).
    #[serde(default, deserialize_with = "yaml::present")]
    pub server: Option<String>,
    /// ACL token, sent as `X-Consul-Token`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Datacenter to ask; empty asks the agent which it is in.
    #[serde(default)]
    pub datacenter: String,
    /// Namespace (Consul Enterprise).
    #[serde(default)]
    pub namespace: String,
    /// Admin partition (Consul Enterprise).
    #[serde(default)]
    pub partition: String,
    /// Joins the tags in `__meta_consul_tags` (`,` when missing).
    #[serde(default, deserialize_with = "yaml::present")]
    pub tag_separator: Option<String>,
    /// `http` (when missing) or `https`.
    #[serde(default, deserialize_with = "yaml::present")]
    pub scheme: Option<String>,
    /// Basic auth user (the older form of `basic_auth`).
    #[serde(default)]
    pub username: String,
    /// Basic auth password (the older form of `basic_auth`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Whether any server may answer, not only the leader (true when
    /// missing).
    #[serde(default = "default_true")]
    pub allow_stale: bool,
    /// The least time between two asks of the same list (30s when unset).
    #[serde(default)]
    pub refresh_interval: Option<PromDuration>,
    /// Services to find; all when empty.
    #[serde(default)]
    pub services: Vec<String>,
    /// Tags an instance must all have.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Node metadata the nodes must have.
    #[serde(default)]
    pub node_meta: BTreeMap<String, String>,
    /// HTTP basic auth.
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    /// `Authorization` header.
    #[serde(default)]
    pub authorization: Option<Authorization>,
    /// Legacy bearer token.
    #[serde(default)]
    pub bearer_token: Option<Secret>,
    /// Legacy bearer token file.
    #[serde(default)]
    pub bearer_token_file: Option<String>,
    /// TLS settings.
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
}

impl ConsulSdConfig {
    /// The refresh interval in effect.
    pub fn refresh(&self) -> PromDuration {
        self.refresh_interval
            .filter(|d| !d.0.is_zero())
            .unwrap_or(PromDuration::secs(30))
    }

    /// The agent's `host:port`.
    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or("localhost:8500")
    }

    /// The separator of `__meta_consul_tags`.
    pub fn tag_separator(&self) -> &str {
        self.tag_separator.as_deref().unwrap_or(",")
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        self.scheme.as_deref().unwrap_or("http")
    }

    /// The basic auth in effect: `basic_auth`, or `username`/`password`.
    pub fn effective_basic_auth(&self) -> Option<BasicAuth> {
        if self.basic_auth.is_some() {
            return self.basic_auth.clone();
        }
        (!self.username.is_empty() || self.password.as_ref().is_some_and(|p| !p.is_empty())).then(
            || BasicAuth {
                username: self.username.clone(),
                password: self.password.clone(),
                password_file: None,
            },
        )
    }

    fn client(&self) -> ClientSettings<'_> {
        ClientSettings {
            basic_auth: &self.basic_auth,
            authorization: &self.authorization,
            bearer_token: &self.bearer_token,
            bearer_token_file: &self.bearer_token_file,
            tls_config: &self.tls_config,
        }
    }
}

/// The client settings a scrape config and an HTTP discovery share, for
/// the one check both get.
struct ClientSettings<'a> {
    basic_auth: &'a Option<BasicAuth>,
    authorization: &'a Option<Authorization>,
    bearer_token: &'a Option<Secret>,
    bearer_token_file: &'a Option<String>,
    tls_config: &'a Option<TlsConfig>,
}

/// Makes the relative secret and certificate paths of client settings
/// relative to the config file's directory.
fn fix_client_paths(
    basic_auth: &mut Option<BasicAuth>,
    authorization: &mut Option<Authorization>,
    bearer_token_file: &mut Option<String>,
    tls_config: &mut Option<TlsConfig>,
    fix: impl FnMut(&mut String) + Copy,
) {
    if let Some(b) = basic_auth.as_mut() {
        b.password_file.iter_mut().for_each(fix);
    }
    if let Some(a) = authorization.as_mut() {
        a.credentials_file.iter_mut().for_each(fix);
    }
    bearer_token_file.iter_mut().for_each(fix);
    if let Some(t) = tls_config.as_mut() {
        t.ca_file.iter_mut().for_each(fix);
        t.cert_file.iter_mut().for_each(fix);
        t.key_file.iter_mut().for_each(fix);
    }
}

impl ClientSettings<'_> {
    /// Prometheus's checks of the settings under key path `p`.
    fn validate(&self, p: &str, err: &mut dyn FnMut(String, String)) {
        let mut auths = 0;
        if let Some(b) = self.basic_auth.as_ref() {
            auths += 1;
            if b.password.is_some() && b.password_file.is_some() {
                err(
                    format!("{p}.basic_auth"),
                    "at most one of basic_auth password & password_file must be configured".into(),
                );
            }
        }
        if let Some(a) = self.authorization.as_ref() {
            auths += 1;
            if a.credentials.is_some() && a.credentials_file.is_some() {
                err(format!("{p}.authorization"), "at most one of authorization credentials & credentials_file must be configured".into());
            }
            if a.auth_type.eq_ignore_ascii_case("basic") {
                err(
                    format!("{p}.authorization.type"),
                    "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                        .into(),
                );
            }
        }
        if self.bearer_token.is_some() && self.bearer_token_file.is_some() {
            err(
                format!("{p}.bearer_token"),
                "at most one of bearer_token & bearer_token_file must be configured".into(),
            );
        }
        if self.bearer_token.is_some() || self.bearer_token_file.is_some() {
            auths += 1;
        }
        if auths > 1 {
            err(p.to_string(), "at most one of basic_auth, authorization, bearer_token & bearer_token_file must be configured".into());
        }
        if let Some(t) = self.tls_config.as_ref() {
            if t.cert_file.is_some() != t.key_file.is_some() {
                err(format!("{p}.tls_config"), "exactly one of cert_file and key_file is configured: both or neither are needed".into());
            }
        }
    }
}

impl ScrapeConfig {
    fn client(&self) -> ClientSettings<'_> {
        ClientSettings {
            basic_auth: &self.basic_auth,
            authorization: &self.authorization,
            bearer_token: &self.bearer_token,
            bearer_token_file: &self.bearer_token_file,
            tls_config: &self.tls_config,
        }
    }
}

impl HttpSdConfig {
    fn client(&self) -> ClientSettings<'_> {
        ClientSettings {
            basic_auth: &self.basic_auth,
            authorization: &self.authorization,
            bearer_token: &self.bearer_token,
            bearer_token_file: &self.bearer_token_file,
            tls_config: &self.tls_config,
        }
    }
}

/// `basic_auth`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password, read at every scrape.
    #[serde(default)]
    pub password_file: Option<String>,
}

/// `authorization`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// Scheme (`Bearer`).
    #[serde(default = "default_auth_type", rename = "type")]
    pub auth_type: String,
    /// Credentials.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// File holding the credentials, read at every scrape.
    #[serde(default)]
    pub credentials_file: Option<String>,
}

fn default_auth_type() -> String {
    "Bearer".into()
}

/// `tls_config`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle (PEM) to verify the server with.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<String>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Name to verify and send as SNI.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// One relabel step as written; [`crate::scrape::relabel::Relabel`] is
/// the compiled form with Prometheus's defaults applied.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    /// Join separator (`;`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    /// Regex, fully anchored (`(.*)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Modulus for `hashmod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modulus: Option<u64>,
    /// Label written by replace-like actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// Replacement with `$1`/`${name}` references (`$1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Action (`replace`); a null one is empty, and refused, as in
    /// Prometheus.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "yaml::present"
    )]
    pub action: Option<String>,
}

/// Relabel actions argus implements (all of Prometheus's).
pub const RELABEL_ACTIONS: &[&str] = &[
    "replace",
    "keep",
    "drop",
    "keepequal",
    "dropequal",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
];

/// Keys Prometheus accepts that argus refuses, by section, so the error can
/// say "not supported" rather than "unknown".
const PROM_TOP_LEVEL: &[&str] = &[
    "scrape_config_files",
    "remote_write",
    "remote_read",
    "storage",
    "tracing",
    "otlp",
    "runtime",
];
const PROM_GLOBAL: &[&str] = &[
    "query_log_file",
    "scrape_failure_log_file",
    "rule_query_offset",
    "target_limit",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "convert_classic_histograms_to_nhcb",
];
const PROM_SCRAPE: &[&str] = &[
    "fallback_scrape_protocol",
    "convert_classic_histograms_to_nhcb",
    "track_timestamps_staleness",
    "enable_compression",
    "target_limit",
    "native_histogram_bucket_limit",
    "native_histogram_min_bucket_factor",
    "metric_name_validation_scheme",
    "metric_name_escaping_scheme",
    "scrape_failure_log_file",
    "scrape_config_files",
];

/// Prometheus's HTTP client settings argus does not take (it connects
/// directly, with the TLS and credentials settings it does take).
const PROM_HTTP_CLIENT: &[&str] = &[
    "oauth2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
];

const PROM_ALERTING: &[&str] = &["alert_relabel_configs"];
const PROM_ALERTMANAGER: &[&str] = &[
    "relabel_configs",
    "alert_relabel_configs",
    "oauth2",
    "sigv4",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "follow_redirects",
    "enable_http2",
    "http_headers",
    "bearer_token",
    "bearer_token_file",
];

fn unsupported_message(path: &str, field: &str) -> Option<String> {
    let in_am = path.starts_with("alerting.alertmanagers[") && path.matches('.').count() == 2;
    let in_alerting = path.starts_with("alerting.") && path.matches('.').count() == 1;
    if (in_alerting && PROM_ALERTING.contains(&field))
        || (in_am && (PROM_ALERTMANAGER.contains(&field) || field.ends_with("_sd_configs")))
    {
        return Some(format!(
            "{field:?} is a Prometheus setting that argus does not support"
        ));
    }
    let in_scrape = path.starts_with("scrape_configs[") && path.matches('.').count() == 1;
    let in_http_sd = path.starts_with("scrape_configs[")
        && (path.contains(".http_sd_configs[")
            || path.contains(".consul_sd_configs[")
            || path.contains(".kubernetes_sd_configs["))
        && path.matches('.').count() == 2;
    let in_global = path.starts_with("global.") && path.matches('.').count() == 1;
    let top = !path.contains(['.', '[']);
    let known = (top && PROM_TOP_LEVEL.contains(&field))
        || (in_global && PROM_GLOBAL.contains(&field))
        || (in_scrape
            && (PROM_SCRAPE.contains(&field)
                || PROM_HTTP_CLIENT.contains(&field)
                || field.ends_with("_sd_configs")))
        || (in_http_sd && PROM_HTTP_CLIENT.contains(&field));
    known.then(|| format!("{field:?} is a Prometheus setting that argus does not support"))
}

/// Splits a YAML deserialization error into its position, the key path
/// there, and the message without the library's source snippet.
pub fn yaml_error_parts(
    e: &serde_saphyr::Error,
    positions: &Positions,
) -> (Option<Pos>, String, String) {
    let pos = e.location().map(|l| Pos {
        line: l.line() as usize,
        col: l.column() as usize,
    });
    let msg = yaml::message(e);
    let key = msg
        .strip_prefix("field \"")
        .and_then(|r| r.split_once('"'))
        .map(|(k, _)| k);
    let path = pos
        .and_then(|p| {
            key.and_then(|k| positions.key_path_at(p, k))
                .or(positions.path_at(p))
        })
        .unwrap_or("")
        .to_string();
    (pos, path, msg)
}

/// The built-in config used when `argus run` has no `--config`: scrape
/// argus's own /metrics every 15 s, under its route prefix (`/` or
/// `/prefix`).
pub fn embedded_default(listen: &str, route_prefix: &str) -> String {
    let path = format!("{}/metrics", route_prefix.trim_end_matches('/'));
    format!(
        "# argus embedded default config\nglobal:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nscrape_configs:\n  - job_name: argus\n    metrics_path: '{path}'\n    static_configs:\n      - targets: ['{listen}']\n"
    )
}

/// Reads a config file of any kind: its name as errors give it, and its
/// text; a file that cannot be read is an error naming it.
pub fn read_config_file(path: &Path) -> Result<(String, String), ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => Ok((name, src)),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            pos: None,
            path: String::new(),
            msg: format!("cannot read: {e}"),
        }])),
    }
}

impl Config {
    /// Reads and validates a file. Relative paths inside it (file_sd,
    /// `*_file` secrets, TLS files) are resolved against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let (name, src) = read_config_file(path)?;
        let mut c = Config::load_str(&src, &name)?;
        c.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        c.source_file = Some(path.to_path_buf());
        Ok(c)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn load_str(src: &str, file: &str) -> Result<Config, ConfigErrors> {
        let positions = Positions::index(src);
        let err_at = |path: &str, msg: String, pos: Option<Pos>| ConfigError {
            file: file.to_string(),
            pos: pos.or_else(|| positions.of_path(path)),
            path: path.to_string(),
            msg,
        };
        let mut cfg: Config = yaml::from_str(src).map_err(|e| {
            let (pos, path, msg) = yaml_error_parts(&e, &positions);
            let msg = match msg
                .strip_prefix("field \"")
                .filter(|_| msg.contains("is not allowed here"))
                .and_then(|r| r.split_once('"'))
            {
                Some((field, _)) => {
                    // The error points at the key, or at the mapping
                    // that holds it.
                    let parent = if path == field {
                        ""
                    } else {
                        path.strip_suffix(field)
                            .and_then(|p| p.strip_suffix('.'))
                            .unwrap_or(&path)
                    };
                    let probe = if parent.is_empty() {
                        field.to_string()
                    } else {
                        format!("{parent}.{field}")
                    };
                    unsupported_message(&probe, field).unwrap_or(msg)
                }
                None => msg,
            };
            ConfigErrors(vec![err_at(&path, msg, pos)])
        })?;
        let mut errs = Vec::new();
        cfg.fill_defaults();
        cfg.validate(&mut |path: String, msg: String| errs.push(err_at(&path, msg, None)));
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errs))
        }
    }

    fn fill_defaults(&mut self) {
        // Prometheus reads a zero interval or timeout (as a null one
        // decodes to) as one not given.
        let zero = |d: &mut Option<PromDuration>| {
            if d.is_some_and(|d| d.0.is_zero()) {
                *d = None;
            }
        };
        let defaults = GlobalConfig::default();
        if self.global.scrape_interval.0.is_zero() {
            self.global.scrape_interval = defaults.scrape_interval;
        }
        if self.global.evaluation_interval.0.is_zero() {
            self.global.evaluation_interval = defaults.evaluation_interval;
        }
        zero(&mut self.global.scrape_timeout);
        for sc in &mut self.scrape_configs {
            zero(&mut sc.scrape_interval);
            zero(&mut sc.scrape_timeout);
        }
        let gi = self.global.scrape_interval;
        self.global
            .scrape_timeout
            .get_or_insert(PromDuration::secs(10).min(gi));
        let g = &self.global;
        let g_timeout = g.scrape_timeout.unwrap_or(gi);
        for sc in &mut self.scrape_configs {
            let interval = *sc.scrape_interval.get_or_insert(g.scrape_interval);
            sc.scrape_timeout.get_or_insert(g_timeout.min(interval));
            sc.sample_limit.get_or_insert(g.sample_limit);
            sc.label_limit.get_or_insert(g.label_limit);
            sc.label_name_length_limit
                .get_or_insert(g.label_name_length_limit);
            sc.label_value_length_limit
                .get_or_insert(g.label_value_length_limit);
            sc.body_size_limit.get_or_insert(g.body_size_limit);
            let native = *sc
                .scrape_native_histograms
                .get_or_insert(g.scrape_native_histograms);
            sc.keep_dropped_targets
                .get_or_insert(g.keep_dropped_targets);
            sc.scrape_protocols.get_or_insert_with(|| {
                let mut p = g.scrape_protocols.clone();
                if native && !p.contains(&ScrapeProtocol::PrometheusProto) {
                    p.insert(0, ScrapeProtocol::PrometheusProto);
                }
                p
            });
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut String| {
            if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                *p = base.join(&*p).display().to_string();
            }
        };
        self.rule_files.iter_mut().for_each(fix);
        self.slo_files.iter_mut().for_each(fix);
        self.alerting.routing_file.iter_mut().for_each(fix);
        if let Some(p) = &mut self.peers {
            fix(&mut p.secret_file);
        }
        for p in &mut self.probe_configs {
            if let Some(t) = &mut p.tls_config {
                t.ca_file.iter_mut().for_each(fix);
                t.cert_file.iter_mut().for_each(fix);
                t.key_file.iter_mut().for_each(fix);
            }
        }
        if let Some(a) = &mut self.web.auth {
            a.bearer_token_file.iter_mut().for_each(fix);
            if let Some(b) = &mut a.basic_auth {
                b.password_file.iter_mut().for_each(fix);
            }
        }
        for am in &mut self.alerting.alertmanagers {
            if let Some(b) = &mut am.basic_auth {
                b.password_file.iter_mut().for_each(fix);
            }
            if let Some(a) = &mut am.authorization {
                a.credentials_file.iter_mut().for_each(fix);
            }
            if let Some(t) = &mut am.tls_config {
                t.ca_file.iter_mut().for_each(fix);
                t.cert_file.iter_mut().for_each(fix);
                t.key_file.iter_mut().for_each(fix);
            }
        }
        for sc in &mut self.scrape_configs {
            for f in &mut sc.file_sd_configs {
                f.files.iter_mut().for_each(fix);
            }
            fix_client_paths(
                &mut sc.basic_auth,
                &mut sc.authorization,
                &mut sc.bearer_token_file,
                &mut sc.tls_config,
                fix,
            );
            for h in &mut sc.http_sd_configs {
                fix_client_paths(
                    &mut h.basic_auth,
                    &mut h.authorization,
                    &mut h.bearer_token_file,
                    &mut h.tls_config,
                    fix,
                );
            }
            for k in &mut sc.kubernetes_sd_configs {
                fix_client_paths(
                    &mut k.basic_auth,
                    &mut k.authorization,
                    &mut k.bearer_token_file,
                    &mut k.tls_config,
                    fix,
                );
                if !k.kubeconfig_file.is_empty() {
                    fix(&mut k.kubeconfig_file);
                }
            }
            for c in &mut sc.consul_sd_configs {
                fix_client_paths(
                    &mut c.basic_auth,
                    &mut c.authorization,
                    &mut c.bearer_token_file,
                    &mut c.tls_config,
                    fix,
                );
            }
        }
    }

    fn validate(&self, err: &mut dyn FnMut(String, String)) {
        let g = &self.global;
        if g.scrape_timeout.is_some_and(|t| t > g.scrape_interval) {
            err(
                "global.scrape_timeout".into(),
                "global scrape timeout greater than scrape interval".into(),
            );
        }
        for k in g.external_labels.keys() {
            if k.is_empty() || k.starts_with("__") {
                err(
                    "global.external_labels".into(),
                    format!("{k:?} is not a valid external label name"),
                );
            }
        }
        for (i, am) in self.alerting.alertmanagers.iter().enumerate() {
            let p = format!("alerting.alertmanagers[{i}]");
            if am.scheme != "http" && am.scheme != "https" {
                err(
                    format!("{p}.scheme"),
                    format!("invalid scheme {:?}: must be http or https", am.scheme),
                );
            }
            if am.api_version != "v2" {
                err(
                    format!("{p}.api_version"),
                    format!(
                        "unsupported Alertmanager API version {:?}: argus speaks v2",
                        am.api_version
                    ),
                );
            }
            if am.timeout.0.is_zero() {
                err(
                    format!("{p}.timeout"),
                    "timeout must be greater than zero".into(),
                );
            }
            validate_targets(&p, &am.static_configs, err);
        }
        if let Some(p) = &self.peers {
            let mut ids = std::collections::BTreeSet::new();
            for (i, m) in p.members.iter().enumerate() {
                if m.id.is_empty() || !ids.insert(m.id.as_str()) {
                    err(
                        format!("peers.members[{i}].id"),
                        "member ids must be set and unique".into(),
                    );
                } else if !is_peer_id(&m.id) {
                    err(
                        format!("peers.members[{i}].id"),
                        format!(
                            "{:?}: a member id is at most {MAX_PEER_ID_LEN} letters, digits, '.', '_', ':' or '-'",
                            m.id
                        ),
                    );
                }
                match reqwest::Url::parse(&m.url) {
                    Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                    _ => err(
                        format!("peers.members[{i}].url"),
                        format!("invalid http(s) URL {:?}", m.url),
                    ),
                }
            }
            if !ids.contains(p.self_id.as_str()) {
                err(
                    "peers.self".into(),
                    format!("{:?} is not one of peers.members", p.self_id),
                );
            }
            if p.heartbeat_interval.0.is_zero() || p.timeout.0 <= p.heartbeat_interval.0 {
                err(
                    "peers.timeout".into(),
                    "the heartbeat interval must be above zero and the timeout longer than it"
                        .into(),
                );
            }
            if p.secret_file.is_empty() {
                err(
                    "peers.secret_file".into(),
                    "peers need a shared secret file".into(),
                );
            }
        }
        if let Some(d) = &self.deadman {
            for (k, u) in [("url", Some(&d.url)), ("fail_url", d.fail_url.as_ref())] {
                let Some(u) = u else { continue };
                match reqwest::Url::parse(u) {
                    Ok(x) if x.scheme() == "http" || x.scheme() == "https" => {}
                    _ => err(format!("deadman.{k}"), format!("invalid http(s) URL {u:?}")),
                }
            }
            if d.interval.0.is_zero() {
                err(
                    "deadman.interval".into(),
                    "the interval must be above zero".into(),
                );
            }
        }
        let mut probe_names = std::collections::BTreeSet::new();
        for (i, p) in self.probe_configs.iter().enumerate() {
            let at = format!("probe_configs[{i}]");
            if p.name.is_empty() || !probe_names.insert(p.name.as_str()) {
                err(
                    format!("{at}.name"),
                    "probe names must be set and unique".into(),
                );
            }
            match reqwest::Url::parse(&p.url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => err(
                    format!("{at}.url"),
                    format!("invalid http(s) URL {:?}", p.url),
                ),
            }
            if reqwest::Method::from_bytes(p.method.as_bytes()).is_err() {
                err(
                    format!("{at}.method"),
                    format!("invalid method {:?}", p.method),
                );
            }
            if let Some(r) = &p.body_regex {
                if let Err(e) = regex::Regex::new(r) {
                    err(format!("{at}.body_regex"), e.to_string());
                }
            }
            if p.buckets.is_empty()
                || p.buckets.windows(2).any(|w| w[0] >= w[1])
                || p.buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
            {
                err(
                    format!("{at}.buckets"),
                    "buckets must be finite, above zero and strictly ascending".into(),
                );
            }
            if p.timeout.0.is_zero() || p.interval.0.is_zero() || p.timeout.0 > p.interval.0 {
                err(
                    format!("{at}.timeout"),
                    "timeout and interval must be above zero, the timeout at most the interval"
                        .into(),
                );
            }
        }
        if self.alerting.routing.is_some() && self.alerting.routing_file.is_some() {
            err(
                "alerting.routing".into(),
                "at most one of routing & routing_file must be configured".into(),
            );
        }
        if let Some(a) = &self.web.auth {
            let token = a.bearer_token.is_some() || a.bearer_token_file.is_some();
            if a.bearer_token.is_some() && a.bearer_token_file.is_some() {
                err(
                    "web.auth".into(),
                    "at most one of bearer_token & bearer_token_file must be configured".into(),
                );
            }
            if let Some(b) = &a.basic_auth {
                if b.username.is_empty() {
                    err(
                        "web.auth.basic_auth.username".into(),
                        "username is empty".into(),
                    );
                }
                if b.password.is_some() == b.password_file.is_some() {
                    err(
                        "web.auth.basic_auth".into(),
                        "exactly one of password & password_file must be configured".into(),
                    );
                }
            } else if !token {
                err(
                    "web.auth".into(),
                    "set bearer_token, bearer_token_file or basic_auth".into(),
                );
            }
        }
        let d = &self.alerting.delivery;
        if d.queue_capacity == 0 {
            err(
                "alerting.delivery.queue_capacity".into(),
                "must be at least 1".into(),
            );
        }
        if d.retry_initial.0.is_zero() || d.retry_max.0 < d.retry_initial.0 {
            err(
                "alerting.delivery.retry_max".into(),
                "retry_initial must be above zero and retry_max at least retry_initial".into(),
            );
        }
        for (k, v) in &d.rate_limits {
            if !["slack", "pagerduty", "email", "webhook"].contains(&k.as_str()) {
                err(
                    format!("alerting.delivery.rate_limits.{k}"),
                    format!("unknown integration type {k:?}: slack, pagerduty, email or webhook"),
                );
            }
            if let Err(e) = parse_rate(v) {
                err(format!("alerting.delivery.rate_limits.{k}"), e);
            }
        }
        for (k, v) in &d.receiver_rate_limits {
            if let Err(e) = parse_rate(v) {
                err(format!("alerting.delivery.receiver_rate_limits.{k}"), e);
            }
        }
        let protocols =
            |p: String, list: &[ScrapeProtocol], err: &mut dyn FnMut(String, String)| {
                if list.is_empty() {
                    err(p.clone(), "scrape_protocols cannot be empty".into());
                }
                for (i, x) in list.iter().enumerate() {
                    if list[..i].contains(x) {
                        err(format!("{p}[{i}]"), format!("duplicated protocol {x:?}"));
                    }
                }
            };
        protocols(
            "global.scrape_protocols".into(),
            &self.global.scrape_protocols,
            err,
        );
        let mut seen = std::collections::HashMap::new();
        for (i, sc) in self.scrape_configs.iter().enumerate() {
            let p = format!("scrape_configs[{i}]");
            if let Some(list) = &sc.scrape_protocols {
                protocols(format!("{p}.scrape_protocols"), list, err);
            }
            if sc.job_name.is_empty() {
                err(format!("{p}.job_name"), "job_name is empty".into());
            }
            if let Some(first) = seen.insert(sc.job_name.as_str(), i) {
                err(
                    format!("{p}.job_name"),
                    format!(
                        "found multiple scrape configs with job name {:?} (first at scrape_configs[{first}])",
                        sc.job_name
                    ),
                );
            }
            if sc.interval().0.is_zero() {
                err(
                    format!("{p}.scrape_interval"),
                    "scrape interval must be greater than zero".into(),
                );
            }
            if sc.timeout() > sc.interval() {
                err(
                    format!("{p}.scrape_timeout"),
                    format!(
                        "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                        sc.job_name
                    ),
                );
            }
            if sc.scheme != "http" && sc.scheme != "https" {
                err(
                    format!("{p}.scheme"),
                    format!("invalid scheme {:?}: must be http or https", sc.scheme),
                );
            }
            validate_targets(&p, &sc.static_configs, err);
            for (j, st) in sc.static_configs.iter().enumerate() {
                for k in st.labels.keys() {
                    if k.is_empty() {
                        err(
                            format!("{p}.static_configs[{j}].labels"),
                            "empty label name".into(),
                        );
                    }
                }
            }
            for (j, f) in sc.file_sd_configs.iter().enumerate() {
                if f.files.is_empty() {
                    err(
                        format!("{p}.file_sd_configs[{j}].files"),
                        "no files given".into(),
                    );
                }
                for (k, file) in f.files.iter().enumerate() {
                    let base = Path::new(file)
                        .file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let ext_ok = [".json", ".yml", ".yaml"].iter().any(|e| base.ends_with(e));
                    let dir_glob = Path::new(file)
                        .parent()
                        .is_some_and(|d| d.to_string_lossy().contains(['*', '?', '[']));
                    if !ext_ok || dir_glob {
                        err(
                            format!("{p}.file_sd_configs[{j}].files[{k}]"),
                            format!(
                                "path name {file:?} is not valid for file discovery: it must end in .json, .yml or .yaml and only the file name may contain wildcards"
                            ),
                        );
                    }
                }
                // Null is unset; an explicit zero would make Prometheus's
                // discovery ticker panic, so it is refused.
                if f.refresh_interval.is_some_and(|d| d.0.is_zero()) {
                    err(
                        format!("{p}.file_sd_configs[{j}].refresh_interval"),
                        "refresh_interval must be greater than zero".into(),
                    );
                }
            }
            sc.client().validate(&p, err);
            for (j, h) in sc.http_sd_configs.iter().enumerate() {
                let hp = format!("{p}.http_sd_configs[{j}]");
                if h.url.is_empty() {
                    err(format!("{hp}.url"), "URL is missing".into());
                } else {
                    match h.url.split_once("://") {
                        Some((scheme, _)) if scheme == "http" || scheme == "https" => {}
                        _ => err(
                            format!("{hp}.url"),
                            "URL scheme must be 'http' or 'https'".into(),
                        ),
                    }
                    let host = h
                        .url
                        .split_once("://")
                        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
                        .unwrap_or("");
                    if host.rsplit('@').next().unwrap_or("").is_empty() {
                        err(format!("{hp}.url"), "host is missing in URL".into());
                    }
                }
                if h.refresh_interval.is_some_and(|d| d.0.is_zero()) {
                    err(
                        format!("{hp}.refresh_interval"),
                        "refresh_interval must be greater than zero".into(),
                    );
                }
                h.client().validate(&hp, err);
            }
            for (j, d) in sc.dns_sd_configs.iter().enumerate() {
                let dp = format!("{p}.dns_sd_configs[{j}]");
                if d.names.is_empty() {
                    err(
                        format!("{dp}.names"),
                        "DNS-SD config must contain at least one SRV record name".into(),
                    );
                }
                match d.record_type().as_str() {
                    "SRV" => {}
                    "A" | "AAAA" | "MX" if d.port == 0 => err(
                        format!("{dp}.port"),
                        "a port is required in DNS-SD configs for all record types except SRV"
                            .into(),
                    ),
                    "A" | "AAAA" | "MX" => {}
                    t => err(
                        format!("{dp}.type"),
                        format!("invalid DNS-SD records type {t:?} (SRV, A, AAAA or MX)"),
                    ),
                }
                if d.refresh_interval.is_some_and(|r| r.0.is_zero()) {
                    err(
                        format!("{dp}.refresh_interval"),
                        "refresh_interval must be greater than zero".into(),
                    );
                }
            }
            for (j, c) in sc.consul_sd_configs.iter().enumerate() {
                let cp = format!("{p}.consul_sd_configs[{j}]");
                if c.server().trim().is_empty() {
                    err(
                        format!("{cp}.server"),
                        "consul SD configuration requires a server address".into(),
                    );
                }
                if (!c.username.is_empty() || c.password.as_ref().is_some_and(|p| !p.is_empty()))
                    && c.basic_auth.is_some()
                {
                    err(
                        cp.clone(),
                        "at most one of consul SD configuration username and password and basic auth can be configured".into(),
                    );
                }
                if c.token.as_ref().is_some_and(|t| !t.is_empty()) && c.authorization.is_some() {
                    err(
                        cp.clone(),
                        "at most one of consul SD token, authorization, or oauth2 can be configured"
                            .into(),
                    );
                }
                c.client().validate(&cp, err);
            }
            for (j, k) in sc.kubernetes_sd_configs.iter().enumerate() {
                k.validate(&format!("{p}.kubernetes_sd_configs[{j}]"), err);
            }
            for (j, r) in sc.relabel_configs.iter().enumerate() {
                validate_relabel(r, &format!("{p}.relabel_configs[{j}]"), err);
            }
            for (j, r) in sc.metric_relabel_configs.iter().enumerate() {
                validate_relabel(r, &format!("{p}.metric_relabel_configs[{j}]"), err);
            }
        }
    }
}

/// Checks `static_configs` targets are `host:port`, not URLs.
fn validate_targets(p: &str, static_configs: &[StaticConfig], err: &mut dyn FnMut(String, String)) {
    for (j, st) in static_configs.iter().enumerate() {
        for (k, t) in st.targets.iter().enumerate() {
            if t.contains('/') || t.is_empty() {
                err(
                    format!("{p}.static_configs[{j}].targets[{k}]"),
                    format!("{t:?} is not a valid hostname"),
                );
            }
        }
    }
}

/// Checks one relabel step with Prometheus's rules.
pub fn validate_relabel(r: &RelabelConfig, p: &str, err: &mut dyn FnMut(String, String)) {
    let action = r.action.as_deref().unwrap_or("replace");
    if action.is_empty() {
        err(
            format!("{p}.action"),
            "relabel action cannot be empty".into(),
        );
    } else if !RELABEL_ACTIONS.contains(&action) {
        err(
            format!("{p}.action"),
            format!(
                "unknown relabel action {action:?} (one of {})",
                RELABEL_ACTIONS.join(", ")
            ),
        );
        return;
    }
    if let Some(re) = &r.regex {
        if let Err(e) = crate::model::Matcher::new(crate::model::MatchOp::Regex, "", re.as_str()) {
            err(format!("{p}.regex"), e.to_string());
        }
    }
    let needs_target = matches!(
        action,
        "replace" | "hashmod" | "lowercase" | "uppercase" | "keepequal" | "dropequal"
    );
    if needs_target && r.target_label.as_deref().unwrap_or("").is_empty() {
        err(
            p.to_string(),
            format!("relabel configuration for {action} action requires 'target_label' value"),
        );
    }
    if action == "hashmod" && r.modulus.unwrap_or(0) == 0 {
        err(
            format!("{p}.modulus"),
            "relabel configuration for hashmod requires non-zero modulus".into(),
        );
    }
    if matches!(
        action,
        "lowercase" | "uppercase" | "hashmod" | "keepequal" | "dropequal"
    ) {
        if let Some(t) = &r.target_label {
            if t.contains('$') {
                err(
                    format!("{p}.target_label"),
                    format!("{t:?} is invalid 'target_label' for {action} action"),
                );
            }
        }
    }
    if matches!(action, "keepequal" | "dropequal")
        && (r.regex.as_deref().is_some_and(|x| x != "(.*)")
            || r.modulus.is_some()
            || r.separator.as_deref().is_some_and(|x| x != ";")
            || r.replacement.as_deref().is_some_and(|x| x != "$1"))
    {
        err(
            p.to_string(),
            format!(
                "{action} action requires only 'source_labels' and 'target_label', and no other fields"
            ),
        );
    }
    if matches!(action, "labeldrop" | "labelkeep")
        && (!r.source_labels.is_empty()
            || r.target_label.is_some()
            || r.modulus.is_some()
            || r.separator.as_deref().is_some_and(|x| x != ";")
            || r.replacement.as_deref().is_some_and(|x| x != "$1"))
    {
        err(
            p.to_string(),
            format!("{action} action requires only 'regex', and no other fields"),
        );
    }
    if action == "labelmap" && r.target_label.is_some() {
        err(
            format!("{p}.target_label"),
            "labelmap action does not use 'target_label'".into(),
        );
    }
}

/// Reads a `*_file` secret, trimming surrounding whitespace as Prometheus does.
pub fn read_secret_file(path: &str) -> Result<Secret, String> {
    std::fs::read_to_string(path)
        .map(|s| Secret::new(s.trim()))
        .map_err(|e| format!("unable to read {path}: {e}"))
}

/// Where a loaded config came from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// The embedded default, for argus at this listen address and route
    /// prefix.
    Embedded {
        /// `--web.listen-address`.
        listen: String,
        /// `/` or `/prefix`.
        route_prefix: String,
    },
    /// A file.
    File(PathBuf),
}

impl PeersConfig {
    /// Sets this instance's id from outside the file (`--peers.self`, a
    /// pod name in a StatefulSet); it must be one of the members.
    pub fn set_self(&mut self, id: &str) -> Result<(), String> {
        if !self.members.iter().any(|m| m.id == id) {
            return Err(format!(
                "--peers.self {id:?} is not one of peers.members ({})",
                self.members
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.self_id = id.to_string();
        Ok(())
    }
}

impl ConfigSource {
    /// Loads the config from its source.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::Embedded {
                listen,
                route_prefix,
            } => Config::load_str(&embedded_default(listen, route_prefix), "<embedded>"),
            ConfigSource::File(p) => Config::load(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_weigh_protocols_as_prometheus_does() {
        assert_eq!(
            ScrapeProtocol::accept_header(&DEFAULT_SCRAPE_PROTOCOLS),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        let cfg = Config::load_str(
            "scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusProto, PrometheusText0.0.4]\n    always_scrape_classic_histograms: true\n",
            "c.yml",
        )
        .expect("valid");
        let sc = &cfg.scrape_configs[0];
        assert_eq!(
            ScrapeProtocol::accept_header(sc.scrape_protocols.as_deref().unwrap_or(&[])),
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
        );
        assert!(sc.always_scrape_classic_histograms);
        let e = Config::load_str(
            "scrape_configs:\n  - job_name: a\n    scrape_protocols: [PrometheusProto, PrometheusProto]\n",
            "c.yml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("scrape_configs[0].scrape_protocols[1]") && e.contains("duplicated"),
            "{e}"
        );
        let e = Config::load_str("global:\n  scrape_protocols: [Protobuf]\n", "c.yml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Protobuf") && e.contains("2:"), "{e}");
    }

    fn errs(src: &str) -> Vec<String> {
        match Config::load_str(src, "c.yml") {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn kubernetes_sd_is_checked_as_prometheus_checks_it() {
        let k = |body: &str| {
            errs(&format!(
                "scrape_configs:\n  - job_name: k\n    kubernetes_sd_configs:\n      - {body}\n"
            ))
        };
        assert!(k("role: pod").is_empty());
        assert!(k("role: endpoints\n        api_server: https://k8s:6443\n        bearer_token: t\n        selectors:\n          - role: pod\n            label: app=web\n          - role: service\n            field: metadata.name=web").is_empty());
        for (body, want) in [
            (
                "namespaces: {names: [a]}",
                "role missing (one of: pod, service, endpoints, endpointslice, node, ingress)",
            ),
            ("role: pods", "unknown Kubernetes SD role \"pods\""),
            (
                "role: pod\n        api_server: https://k\n        kubeconfig_file: kc",
                "cannot use 'kubeconfig_file' and 'api_server' simultaneously",
            ),
            (
                "role: pod\n        kubeconfig_file: kc\n        bearer_token: t",
                "cannot use a custom HTTP client configuration together with 'kubeconfig_file'",
            ),
            (
                "role: pod\n        tls_config: {insecure_skip_verify: true}",
                "to use custom HTTP client configuration please provide the 'api_server' URL explicitly",
            ),
            (
                "role: pod\n        api_server: https://k\n        namespaces: {own_namespace: true}",
                "cannot use 'api_server' and 'namespaces.own_namespace' simultaneously",
            ),
            (
                "role: pod\n        selectors:\n          - role: node",
                "pod role supports only pod selectors",
            ),
            (
                "role: endpoints\n        selectors:\n          - role: pod\n          - role: pod",
                "duplicated selector role: pod",
            ),
            (
                "role: pod\n        selectors:\n          - role: pod\n            label: 'app in web'",
                "label selector",
            ),
            (
                "role: pod\n        selectors:\n          - role: pod\n            field: spec.nodeName",
                "field selector",
            ),
            (
                "role: pod\n        proxy_url: http://p",
                "\"proxy_url\" is a Prometheus setting that argus does not support",
            ),
        ] {
            let e = k(body);
            assert!(e.len() == 1 && e[0].contains(want), "{body}: {e:?}");
        }
        // An empty tls_config is Prometheus's default, not a custom client.
        assert!(k("role: pod\n        tls_config: {}").is_empty());
    }

    #[test]
    fn defaults_inherit_from_global() {
        let c = Config::load_str(
            "global:\n  scrape_interval: 10s\n  scrape_timeout: 20s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 1m\n",
            "c.yml",
        );
        // global timeout > interval is an error
        assert!(c.is_err());
        let c = Config::load_str(
            "global:\n  scrape_interval: 10s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    scrape_interval: 1m\n",
            "c.yml",
        )
        .unwrap();
        assert_eq!(c.scrape_configs[0].interval(), PromDuration::secs(10));
        assert_eq!(c.scrape_configs[0].timeout(), PromDuration::secs(10));
        assert_eq!(c.scrape_configs[1].timeout(), PromDuration::secs(10));
        assert_eq!(c.scrape_configs[0].metrics_path, "/metrics");
        assert!(c.scrape_configs[0].honor_timestamps);
    }

    #[test]
    fn errors_name_file_line_column_and_path() {
        let e = errs(
            "scrape_configs:\n  - job_name: a\n  - job_name: b\n    relabel_configs:\n      - action: bogus\n",
        );
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("c.yml:5:9: scrape_configs[1].relabel_configs[0].action: unknown relabel action \"bogus\""), "{e:?}");
        let e = errs("scrape_configs:\n  - job_name: a\n    scrape_intervall: 5s\n");
        assert!(
            e[0].starts_with("c.yml:3:5: ")
                && e[0].contains("field \"scrape_intervall\" is not allowed here"),
            "{e:?}"
        );
        let e = errs("scrape_configs:\n  - job_name: a\n    ec2_sd_configs: []\n");
        assert!(
            e[0].contains("\"ec2_sd_configs\" is a Prometheus setting that argus does not support"),
            "{e:?}"
        );
        let e = errs("remote_write:\n  - url: http://x\n");
        assert!(
            e[0].starts_with("c.yml:1:1: ")
                && e[0].contains("\"remote_write\" is a Prometheus setting"),
            "{e:?}"
        );
        let e = errs("scrape_configs:\n  - job_name: a\n    scrape_interval: 5x\n");
        assert!(
            e[0].starts_with("c.yml:3:") && e[0].contains("unknown unit \"x\" in duration \"5x\""),
            "{e:?}"
        );
        let e = errs("scrape_configs:\n  - job_name: a\n  - job_name: a\n");
        assert!(
            e[0].starts_with("c.yml:3:5: scrape_configs[1].job_name: found multiple"),
            "{e:?}"
        );
        let e = errs(
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
        );
        assert!(
            e[0].contains("scrape timeout greater than scrape interval"),
            "{e:?}"
        );
        let e = errs(
            "scrape_configs:\n  - job_name: a\n    relabel_configs:\n      - action: hashmod\n        target_label: x\n      - action: labeldrop\n        source_labels: [a]\n      - regex: '('\n        target_label: y\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[1].contains("labeldrop action requires only 'regex'"));
        assert!(e[2].contains("relabel_configs[2].regex"));
        let e = errs(
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['x/*/a.json', 'b.txt']\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        let e = errs(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: p}\n    bearer_token: t\n",
        );
        assert!(e[0].contains("at most one of"), "{e:?}");
        let e = errs("scrape_configs:\n  - job_name: a\n   x: : y\n");
        assert!(e[0].starts_with("c.yml:3:"), "{e:?}");
    }

    #[test]
    fn secrets_never_serialize() {
        let c = Config::load_str(
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u, password: hunter2}\n",
            "c.yml",
        )
        .unwrap();
        let y = serde_saphyr::to_string(&c).unwrap();
        assert!(!y.contains("hunter2"));
        assert!(y.contains("<secret>"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::load_str(&embedded_default("127.0.0.1:9095", "/"), "<embedded>").unwrap();
        assert_eq!(
            c.scrape_configs[0].static_configs[0].targets[0],
            "127.0.0.1:9095"
        );
    }
}
