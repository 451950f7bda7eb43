//! argus: a Prometheus-compatible SLO alert evaluation daemon.
//!
//! Data flows scrape → store → evaluate → route → deliver; see
//! ARCHITECTURE.md for what each module owns.
// One exception, allowed where it is: mapping chunk files for reading
// (storage::chunks), sound because argus never changes a mapped file.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod build_info;
pub mod cli;
pub mod config;
pub mod ha;
pub mod model;
pub mod net;
pub mod notify;
pub mod probe;
pub mod promql;
pub mod rules;
pub mod scrape;
pub mod slo;
pub mod storage;
pub mod telemetry;
pub mod template;
