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
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// Config file (Prometheus-compatible YAML). Without it argus runs an
        /// embedded default that scrapes itself.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address the HTTP server listens on.
        #[arg(long = "web.listen-address", default_value = "127.0.0.1:9095")]
        listen: String,
        /// Directory for snapshots and state.
        #[arg(long = "storage.path", default_value = "./data")]
        storage_path: PathBuf,
        /// How long samples are kept (Prometheus duration).
        #[arg(long = "storage.retention", default_value = "24h")]
        retention: String,
        /// How often the in-memory store is snapshotted to disk.
        #[arg(long = "storage.snapshot-interval", default_value = "5m")]
        snapshot_interval: String,
        /// Log level or filter directive (error, warn, info, debug, trace).
        #[arg(long = "log.level", default_value = "info")]
        log_level: String,
        /// Log format.
        #[arg(long = "log.format", value_enum, default_value = "text")]
        log_format: Fmt,
    },
    /// Validate files.
    Check {
        #[command(subcommand)]
        what: CheckCmd,
    },
}

#[derive(Subcommand)]
enum CheckCmd {
    /// Validate config files; errors are printed as FILE:LINE:COL: key.path: message.
    Config {
        /// Files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check {
            what: CheckCmd::Config { files },
        } => {
            if cli::check_config(&files) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Cmd::Run {
            config,
            listen,
            storage_path,
            retention,
            snapshot_interval,
            log_level,
            log_format,
        } => match run(
            config,
            listen,
            storage_path,
            &retention,
            &snapshot_interval,
            &log_level,
            log_format,
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("argus: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(
    config: Option<PathBuf>,
    listen: String,
    storage_path: PathBuf,
    retention: &str,
    snapshot_interval: &str,
    log_level: &str,
    log_format: Fmt,
) -> anyhow::Result<()> {
    let fmt = match log_format {
        Fmt::Text => LogFormat::Text,
        Fmt::Json => LogFormat::Json,
    };
    init_logging(log_level, fmt).map_err(anyhow::Error::msg)?;
    let retention = parse_duration(retention)
        .map_err(anyhow::Error::msg)
        .context("--storage.retention")?;
    let snapshot_interval = parse_duration(snapshot_interval)
        .map_err(anyhow::Error::msg)
        .context("--storage.snapshot-interval")?;
    anyhow::ensure!(
        !snapshot_interval.is_zero(),
        "--storage.snapshot-interval must be greater than zero"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(cli::run(
        cli::RunOptions {
            config,
            listen,
            storage_path,
            retention,
            snapshot_interval,
        },
        std::future::pending(),
    ))?;
    Ok(())
}
