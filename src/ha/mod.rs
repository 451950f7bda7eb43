//! Monitoring of monitoring: peers that watch each other, and an outside
//! dead-man's switch.
//!
//! Every peer scrapes and evaluates everything (hot standby) and routes
//! its own alerts. Peers send each other signed heartbeats carrying what
//! their notification logs and silences learned since the last one, so
//! they converge on what was delivered and what is silenced. The live
//! peer earliest in `members` delivers at once; each other peer holds
//! its notifications for (live peers before it) × `timeout` and then
//! sends only what the shared log does not show as delivered. A peer
//! that stops sending valid heartbeats is down: it raises
//! `ArgusPeerDown` through the surviving peers' routing, and the next
//! peer in line stops waiting for it. When peers cannot reach each other
//! both deliver: duplicates, never silence (fail open); they are counted
//! when the peers meet again.
//!
//! `deadman` pings an outside URL while the always-firing Watchdog alert
//! keeps going through evaluation and routing.

mod deadman;
mod heartbeat;

pub use deadman::run_deadman;
pub use heartbeat::{
    HEADER_SIGNATURE, HEADER_TIMESTAMP, Heartbeat, PeerStatus, Peers, Reject, read_secret, sign,
};

use sha2::{Digest, Sha256};

use crate::config::Config;

/// A digest of what decides which alerts fire and where they go: the
/// config (secrets hidden, as it serializes) and the routing, rule and
/// SLO files it names. Peers compare it and raise
/// `ArgusPeerConfigMismatch` when theirs differs.
pub fn config_hash(cfg: &Config) -> String {
    let mut h = Sha256::new();
    let mut c = cfg.clone();
    // The own id differs by design, and so may the directory the files
    // are in: paths count relative to the config file.
    if let Some(p) = &mut c.peers {
        p.self_id.clear();
    }
    let mut text = serde_json::to_string(&c).unwrap_or_default();
    if let Some(base) = cfg.source_file.as_ref().and_then(|f| f.parent()) {
        let prefix = format!("\"{}/", base.display());
        text = text.replace(&prefix, "\"");
    }
    h.update(text.as_bytes());
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    files.extend(cfg.alerting.routing_file.iter().map(Into::into));
    for pattern in cfg.rule_files.iter().chain(&cfg.slo_files) {
        if let Ok(paths) = glob::glob(pattern) {
            files.extend(paths.filter_map(Result::ok));
        }
    }
    files.sort();
    for f in files {
        // Only the contents count: peers keep the files in different
        // directories.
        h.update(std::fs::read(&f).unwrap_or_default());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
