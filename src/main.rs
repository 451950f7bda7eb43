//! The `argus` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use argus::cli;
use argus::config::parse_duration;
use argus::telemetry::{LogFormat, init_logging};

const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ARGUS_GIT_COMMIT"),
    ", built ",
    env!("ARGUS_BUILD_DATE"),
    ")"
);

#[derive(Parser)]
#[command(name = "argus", version = LONG_VERSION, about = "Prometheus-compatible SLO alert evaluation daemon")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fmt {
    /// Prometheus calls it `logfmt`.
    #[value(alias = "logfmt")]
    Text,
    Json,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Config file (Prometheus-compatible YAML). Without it argus runs an
    /// embedded default that scrapes itself. Prometheus's flag names are
    /// taken too where they mean the same (`--config.file`,
    /// `--storage.tsdb.path`, `--storage.tsdb.retention.time`).
    #[arg(long, visible_alias = "config.file")]
    config: Option<PathBuf>,
    /// Address the HTTP server listens on.
    #[arg(long = "web.listen-address", default_value = "127.0.0.1:9095")]
    listen: String,
    /// Directory for snapshots and state.
    #[arg(
        long = "storage.path",
        visible_alias = "storage.tsdb.path",
        default_value = "./data"
    )]
    storage_path: PathBuf,
    /// How long samples are kept (Prometheus duration).
    #[arg(
        long = "storage.retention",
        visible_alias = "storage.tsdb.retention.time",
        default_value = "24h"
    )]
    retention: String,
    /// Most bytes the store may take on disk (`512MB`, `10GB`: base 2, as
    /// Prometheus reads it); the oldest chunk files are deleted to stay
    /// within it. Unset: no limit but `--storage.retention`.
    #[arg(
        long = "storage.retention-size",
        visible_alias = "storage.tsdb.retention.size"
    )]
    retention_size: Option<String>,
    /// How often the store is checkpointed: the in-memory head written to
    /// head.snapshot and the write-ahead log segments it covers removed.
    #[arg(long = "storage.snapshot-interval", default_value = "5m")]
    snapshot_interval: String,
    /// How often the write-ahead log is fsynced (records reach the kernel
    /// every 100 ms regardless).
    #[arg(long = "storage.wal-sync-interval", default_value = "1s")]
    wal_sync_interval: String,
    /// Move a scrape's timestamp onto its target's schedule when the
    /// scrape started within `--scrape.timestamp-tolerance` of it
    /// (Prometheus's flag and default): timer jitter otherwise costs every
    /// sample two bytes in memory and on disk.
    #[arg(
        long = "scrape.adjust-timestamps",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    adjust_timestamps: bool,
    /// How far a scrape's timestamp may be moved (at most 1% of the
    /// target's interval is used).
    #[arg(long = "scrape.timestamp-tolerance", default_value = "2ms")]
    timestamp_tolerance: String,
    /// How far back an instant selector looks for a sample.
    #[arg(long = "query.lookback-delta", default_value = "5m")]
    lookback_delta: String,
    /// Longest a query may run.
    #[arg(long = "query.timeout", default_value = "2m")]
    query_timeout: String,
    /// Most samples a single query may hold in memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    max_samples: usize,
    /// Most API queries evaluated at once; the others wait for a slot.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    max_concurrency: usize,
    /// How long to wait before re-sending a firing alert.
    #[arg(long = "rules.alert.resend-delay", default_value = "1m")]
    resend_delay: String,
    /// The URL argus is reached at (for $externalURL and alerts' links);
    /// defaults to http:// and the listen address.
    #[arg(long = "web.external-url")]
    external_url: Option<String>,
    /// Log level or filter directive (error, warn, info, debug, trace).
    #[arg(long = "log.level", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    log_format: Fmt,
    /// Evaluate, route and render everything, log each notification in
    /// full, send nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Accepted for Prometheus's command lines: reload over HTTP
    /// (`/-/reload`, behind `web.auth`) is always on in argus.
    #[arg(long = "web.enable-lifecycle")]
    enable_lifecycle: bool,
    /// Accepted for Prometheus's command lines (comma-separated, may be
    /// repeated): each feature named is logged with what argus does about
    /// it; none changes argus's behaviour.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    enable_feature: Vec<String>,
    /// Accepted for Prometheus's command lines: argus has no TSDB admin
    /// API (delete series, snapshots).
    #[arg(long = "web.enable-admin-api")]
    enable_admin_api: bool,
    /// Accepted for Prometheus's command lines: argus does not receive
    /// remote write (or OTLP) pushes yet; a warning says so.
    #[arg(long = "web.enable-remote-write-receiver")]
    enable_remote_write_receiver: bool,
    /// Prometheus 3's OTLP receiver flag, taken as above.
    #[arg(long = "web.enable-otlp-receiver")]
    enable_otlp_receiver: bool,
    /// Accepted for Prometheus's command lines: argus has no console
    /// templates.
    #[arg(long = "web.console.templates")]
    console_templates: Option<String>,
    /// Accepted for Prometheus's command lines: argus has no console
    /// libraries.
    #[arg(long = "web.console.libraries")]
    console_libraries: Option<String>,
    /// Where the web endpoints are served (`/prefix/api/v1/…`,
    /// `/prefix/-/ready`); `/` then redirects there. Defaults to the path
    /// of `--web.external-url`, as in Prometheus.
    #[arg(long = "web.route-prefix")]
    route_prefix: Option<String>,
    /// Prometheus's web configuration file: TLS, basic auth users and
    /// response headers (docs/configuration.md). Read again while argus
    /// runs, so certificates and users change without a restart.
    #[arg(long = "web.config.file")]
    web_config_file: Option<PathBuf>,
    /// This instance's peer id, overriding `peers.self` (e.g. the pod
    /// name in a StatefulSet); must be one of `peers.members`.
    #[arg(long = "peers.self")]
    peer_self: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run(Box<RunArgs>),
    /// Validate files.
    Check {
        #[command(subcommand)]
        what: CheckCmd,
    },
    /// Inspect configurations.
    Config {
        #[command(subcommand)]
        what: ConfigCmd,
    },
    /// Run unit tests.
    Test {
        #[command(subcommand)]
        what: TestCmd,
    },
    /// SLO specs (Sloth's formats).
    Slo {
        #[command(subcommand)]
        what: SloCmd,
    },
    /// Notification templates.
    Template {
        #[command(subcommand)]
        what: TemplateCmd,
    },
    /// Backfill the store from files.
    Import {
        #[command(subcommand)]
        what: ImportCmd,
    },
}

#[derive(Subcommand)]
enum SloCmd {
    /// Print (or write to -o) the Prometheus rules for SLO specs: Sloth's
    /// series, labels and burn-rate alerts, for argus or a vanilla
    /// Prometheus.
    Generate {
        /// Spec files (Sloth prometheus/v1, its Kubernetes CRD, OpenSLO
        /// v1alpha).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Output file instead of standard output.
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// Extra label on every rule, name=value (repeatable).
        #[arg(short = 'l', long = "label")]
        labels: Vec<String>,
        /// Add argus's series to Sloth's: the events-weighted error ratio
        /// and budget over the period, and latency quantiles per window
        /// for latency and probe SLIs.
        #[arg(long = "extensions", alias = "events-budget")]
        extensions: bool,
        /// The period of SLOs whose spec gives none (Sloth's flag; 30d).
        #[arg(long = "default-slo-period")]
        default_slo_period: Option<String>,
        /// A directory of Sloth `AlertWindows` files: the burn-rate windows
        /// of the SLO periods they name (Sloth's flag).
        #[arg(short = 'w', long = "slo-period-windows-path")]
        windows_path: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TemplateCmd {
    /// Print what each integration of a receiver would send for sample
    /// alerts (secrets hidden); nothing is sent.
    Render {
        /// Alertmanager configuration file (argus's routing file).
        #[arg(long, visible_alias = "config.file")]
        config: PathBuf,
        /// The receiver.
        #[arg(long)]
        receiver: String,
        /// Alerts as JSON: a list of {labels, annotations, startsAt,
        /// endsAt, generatorURL}, or a webhook payload. Without it, two
        /// firing alerts and a resolved one of an example service.
        #[arg(long)]
        alerts: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportCmd {
    /// Import an OpenMetrics text file with timestamped samples (the format
    /// `promtool tsdb create-blocks-from openmetrics` reads) into the
    /// snapshot under --storage.path.
    Openmetrics {
        /// The file.
        file: PathBuf,
        /// Directory for snapshots and state.
        #[arg(
            long = "storage.path",
            visible_alias = "storage.tsdb.path",
            default_value = "./data"
        )]
        storage_path: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The alert route tree, as `amtool config routes` shows it.
    Routes {
        #[command(subcommand)]
        what: Option<RoutesCmd>,
        /// Alertmanager configuration file.
        #[arg(long, visible_alias = "config.file", global = true)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RoutesCmd {
    /// Print the route tree.
    Show,
    /// Print the receivers a label set is routed to, as `amtool config
    /// routes test` does.
    Test {
        /// Print the routes the labels pass through.
        #[arg(long)]
        tree: bool,
        /// Fail unless the labels route to exactly these receivers
        /// (comma-separated, in order).
        #[arg(long = "verify.receivers")]
        verify_receivers: Option<String>,
        /// Labels as name=value.
        labels: Vec<String>,
    },
}

#[derive(Subcommand)]
enum TestCmd {
    /// Rule unit tests in promtool's format, with promtool's output and
    /// exit codes.
    Rules {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Only run test groups whose name matches this regular
        /// expression; may be given several times.
        #[arg(long)]
        run: Vec<String>,
        /// Ignore keys Prometheus does not read in the rule files.
        #[arg(long = "ignore-unknown-fields")]
        ignore_unknown_fields: bool,
        /// Write JUnit XML results to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// List the alerting rules that no alert_rule_test checks.
        #[arg(long)]
        coverage: bool,
    },
}

#[derive(Subcommand)]
enum CheckCmd {
    /// Validate Alertmanager configuration files (alertmanager.yml) as argus
    /// reads them; errors are printed as FILE:LINE:COL: key.path: message.
    Alertmanager {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Exit 0 when a running argus is ready (config loaded, rules
    /// evaluating, receivers not all failing), else 1 with the reasons.
    Health {
        /// The instance's URL.
        #[arg(long, default_value = "http://127.0.0.1:9095")]
        url: String,
        /// How long to wait for the answer.
        #[arg(long, default_value = "5s")]
        timeout: String,
    },
    /// Validate web configuration files (`--web.config.file`: TLS, basic
    /// auth users, headers), loading the certificates they name.
    #[command(name = "web-config")]
    WebConfig {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate SLO spec files; errors are printed as FILE:LINE:COL: field: message.
    Slo {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate config files; errors are printed as FILE:LINE:COL: key.path: message.
    Config {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Lint checks on the rule files the config names:
        /// `duplicate-rules`, `all` or `none`.
        #[arg(long, value_enum, default_value = "duplicate-rules")]
        lint: LintArg,
        /// Lint findings fail the check with exit code 3.
        #[arg(long = "lint-fatal")]
        lint_fatal: bool,
        /// Check the syntax only: not that the credentials and client
        /// certificate files the config names exist (as promtool's flag).
        #[arg(long = "syntax-only")]
        syntax_only: bool,
    },
    /// Validate rule files as `promtool check rules` does; errors are
    /// printed as FILE:LINE:COL: group "g", rule N, "name": message.
    Rules {
        /// Files to check; standard input when none is given.
        files: Vec<PathBuf>,
        /// Metric and label name rules: `utf8` (Prometheus 3) or `legacy`.
        #[arg(long = "validation-scheme", value_enum, default_value = "utf8")]
        scheme: Scheme,
        /// Lint checks: `duplicate-rules` (rules with the same name and
        /// labels), `all` or `none`.
        #[arg(long, value_enum, default_value = "duplicate-rules")]
        lint: LintArg,
        /// Lint findings fail the check with exit code 3.
        #[arg(long = "lint-fatal")]
        lint_fatal: bool,
        /// Ignore keys Prometheus does not read instead of refusing them.
        #[arg(long = "ignore-unknown-fields")]
        ignore_unknown_fields: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LintArg {
    All,
    DuplicateRules,
    None,
}

impl From<LintArg> for cli::Lint {
    fn from(l: LintArg) -> cli::Lint {
        match l {
            LintArg::All => cli::Lint::All,
            LintArg::DuplicateRules => cli::Lint::DuplicateRules,
            LintArg::None => cli::Lint::None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Scheme {
    Utf8,
    Legacy,
}

/// Stack of each runtime thread, as the main thread's default.
const RUNTIME_STACK_BYTES: usize = 8 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check {
            what:
                CheckCmd::Rules {
                    files,
                    scheme,
                    lint,
                    lint_fatal,
                    ignore_unknown_fields,
                },
        } => {
            let names = match scheme {
                Scheme::Utf8 => argus::rules::NameValidation::Utf8,
                Scheme::Legacy => argus::rules::NameValidation::Legacy,
            };
            ExitCode::from(cli::check_rules(
                &files,
                cli::CheckRulesOptions {
                    names,
                    lint: lint.into(),
                    lint_fatal,
                    ignore_unknown_fields,
                },
            ))
        }
        Cmd::Check {
            what: CheckCmd::Alertmanager { files },
        } => {
            if cli::check_alertmanager(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Check {
            what: CheckCmd::Health { url, timeout },
        } => {
            let timeout = match argus::config::parse_duration(&timeout) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("--timeout: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let (ok, msg) = cli::check_health(&url, timeout);
            if ok {
                println!("{msg}");
                ExitCode::SUCCESS
            } else {
                eprintln!("{msg}");
                ExitCode::FAILURE
            }
        }
        Cmd::Check {
            what: CheckCmd::WebConfig { files },
        } => {
            if cli::check_web_config(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Check {
            what: CheckCmd::Slo { files },
        } => {
            if cli::check_slo(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Slo {
            what:
                SloCmd::Generate {
                    specs,
                    out,
                    labels,
                    extensions,
                    default_slo_period,
                    windows_path,
                },
        } => match cli::slo_generate(
            &specs,
            &cli::SloGenerateArgs {
                labels,
                extensions,
                default_period: default_slo_period,
                windows_dir: windows_path,
            },
        ) {
            Ok(text) => match out {
                None => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Some(f) => match std::fs::write(&f, text) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("argus: cannot write {}: {e}", f.display());
                        ExitCode::FAILURE
                    }
                },
            },
            Err(e) => {
                eprintln!("argus: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Check {
            what:
                CheckCmd::Config {
                    files,
                    lint,
                    lint_fatal,
                    syntax_only,
                },
        } => ExitCode::from(cli::check_config(
            &files,
            lint.into(),
            lint_fatal,
            syntax_only,
        )),
        Cmd::Config {
            what: ConfigCmd::Routes { what, config },
        } => {
            let Some(config) = config else {
                eprintln!("argus: --config FILE is required");
                return ExitCode::FAILURE;
            };
            let r = match what.unwrap_or(RoutesCmd::Show) {
                RoutesCmd::Show => cli::routes_show(&config).map(|s| (s, true)),
                RoutesCmd::Test {
                    tree,
                    verify_receivers,
                    labels,
                } => cli::routes_test(&config, &labels, tree, verify_receivers.as_deref()),
            };
            match r {
                Ok((out, ok)) => {
                    print!("{out}");
                    if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("argus: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Test {
            what:
                TestCmd::Rules {
                    files,
                    run,
                    ignore_unknown_fields,
                    junit,
                    coverage,
                },
        } => match cli::test_rules(&cli::TestRulesArgs {
            files,
            run,
            ignore_unknown_fields,
            junit,
            coverage,
        }) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("argus: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Template {
            what:
                TemplateCmd::Render {
                    config,
                    receiver,
                    alerts,
                },
        } => match cli::template_render(
            &config,
            &receiver,
            alerts.as_deref(),
            argus::model::now_millis(),
        ) {
            Ok(out) => {
                print!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("argus: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Import {
            what: ImportCmd::Openmetrics { file, storage_path },
        } => match cli::import_openmetrics(&file, &storage_path) {
            Ok(s) => {
                println!(
                    "imported {} samples ({} rejected); {} series in {}",
                    s.samples,
                    s.rejected,
                    s.series,
                    storage_path.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("argus: {e}");
                ExitCode::FAILURE
            }
        },
        Cmd::Run(args) => match run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("argus: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// What argus does about a Prometheus feature flag, and whether that
/// deserves a warning (a behaviour the user asked for that argus lacks).
fn feature_note(name: &str) -> (bool, &'static str) {
    match name {
        "native-histograms" => (
            false,
            "argus stores native histograms whenever a target sends them; to ask targets for protobuf first, set scrape_native_histograms: true in the config (Prometheus 3.8's setting)",
        ),
        "memory-snapshot-on-shutdown" => (
            false,
            "always on: a clean stop writes a checkpoint, and the write-ahead log covers a crash",
        ),
        "promql-experimental-functions"
        | "promql-duration-expr"
        | "utf8-names"
        | "created-timestamp-zero-ingestion"
        | "new-service-discovery-manager"
        | "no-default-scrape-port"
        | "promql-delayed-name-removal" => (
            false,
            "already how argus behaves, or has no effect in argus",
        ),
        "auto-gomaxprocs"
        | "auto-gomemlimit"
        | "old-ui"
        | "promql-per-step-stats"
        | "extra-scrape-metrics"
        | "delayed-compaction"
        | "use-uncached-io"
        | "metadata-wal-records"
        | "concurrent-rule-eval" => (
            false,
            "a Prometheus implementation detail with no counterpart in argus; ignored",
        ),
        "exemplar-storage"
        | "expand-external-labels"
        | "agent"
        | "otlp-write-receiver"
        | "remote-write-receiver"
        | "otlp-deltatocumulative"
        | "type-and-unit-labels" => (true, "not supported by argus; ignored"),
        _ => (true, "unknown feature; ignored"),
    }
}

fn run(a: RunArgs) -> anyhow::Result<()> {
    let fmt = match a.log_format {
        Fmt::Text => LogFormat::Text,
        Fmt::Json => LogFormat::Json,
    };
    init_logging(&a.log_level, fmt).map_err(anyhow::Error::msg)?;
    if a.enable_lifecycle {
        tracing::debug!("--web.enable-lifecycle given: reload over HTTP is always on in argus");
    }
    let route_prefix =
        argus::cli::route_prefix(a.route_prefix.as_deref(), a.external_url.as_deref())
            .map_err(anyhow::Error::msg)?;
    if a.enable_admin_api {
        tracing::warn!(
            "--web.enable-admin-api given: argus has no TSDB admin API (deleting series, snapshots); the flag is ignored"
        );
    }
    if a.enable_remote_write_receiver || a.enable_otlp_receiver {
        tracing::warn!(
            "--web.enable-remote-write-receiver / --web.enable-otlp-receiver given: argus does not receive pushed samples yet; POST /api/v1/write and /api/v1/otlp/v1/metrics answer 404, and only scraped targets are stored"
        );
    }
    if a.console_templates.is_some() || a.console_libraries.is_some() {
        tracing::info!(
            "--web.console.templates / --web.console.libraries given: argus has no console pages; ignored"
        );
    }
    for f in a
        .enable_feature
        .iter()
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    {
        let (warn, what) = feature_note(f);
        if warn {
            tracing::warn!(feature = f, "--enable-feature: {what}");
        } else {
            tracing::info!(feature = f, "--enable-feature: {what}");
        }
    }
    let duration = |v: &str, flag: &str| {
        parse_duration(v)
            .map_err(anyhow::Error::msg)
            .with_context(|| flag.to_string())
    };
    let retention = duration(&a.retention, "--storage.retention")?;
    let retention_size = match a.retention_size.as_deref().map(str::trim) {
        None | Some("" | "0") => None,
        Some(v) => Some(
            argus::config::parse_bytes(v)
                .map_err(anyhow::Error::msg)
                .context("--storage.retention-size")?,
        )
        .filter(|b| *b > 0),
    };
    let snapshot_interval = duration(&a.snapshot_interval, "--storage.snapshot-interval")?;
    anyhow::ensure!(
        !snapshot_interval.is_zero(),
        "--storage.snapshot-interval must be greater than zero"
    );
    let wal_sync_interval = duration(&a.wal_sync_interval, "--storage.wal-sync-interval")?;
    anyhow::ensure!(
        !wal_sync_interval.is_zero(),
        "--storage.wal-sync-interval must be greater than zero"
    );
    let timestamp_tolerance = if a.adjust_timestamps {
        duration(&a.timestamp_tolerance, "--scrape.timestamp-tolerance")?
    } else {
        std::time::Duration::ZERO
    };
    let lookback_delta = duration(&a.lookback_delta, "--query.lookback-delta")?;
    anyhow::ensure!(
        !lookback_delta.is_zero(),
        "--query.lookback-delta must be greater than zero"
    );
    let timeout = duration(&a.query_timeout, "--query.timeout")?;
    let resend_delay = duration(&a.resend_delay, "--rules.alert.resend-delay")?;
    let engine = argus::promql::EngineOptions {
        lookback_delta,
        timeout,
        max_samples: a.max_samples,
        max_concurrency: a.max_concurrency,
        ..Default::default()
    };
    let (config, listen, storage_path) = (a.config, a.listen, a.storage_path);
    // Queries and rules may nest up to promql::limits::MAX_DEPTH deep;
    // their recursive evaluation needs more than tokio's default 2 MiB of
    // stack (this is address space: only touched pages use memory).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(RUNTIME_STACK_BYTES)
        .build()
        .context("starting the runtime")?;
    rt.block_on(cli::run(
        cli::RunOptions {
            config,
            listen,
            storage_path,
            retention,
            retention_size,
            snapshot_interval,
            wal_sync_interval,
            timestamp_tolerance,
            engine,
            resend_delay,
            external_url: a.external_url,
            route_prefix,
            dry_run: a.dry_run,
            peer_self: a.peer_self,
            web_config_file: a.web_config_file,
        },
        std::future::pending(),
    ))?;
    Ok(())
}
