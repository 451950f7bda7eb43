//! The dead-man's switch: an outside service (healthchecks.io, Dead
//! Man's Snitch, a PagerDuty heartbeat URL) expects a ping every
//! interval and pages when pings stop. argus pings only while its own
//! chain works end to end — the always-firing Watchdog alert went through
//! evaluation and routing within the last interval — so a stuck rule
//! loop or a broken routing config stops the pings just as a dead
//! process does.

use std::sync::Arc;
use std::time::Duration;

use crate::config::DeadmanConfig;
use crate::model::Clock;
use crate::notify::Notifier;
use crate::telemetry::Metrics;

/// Runs the switch until `stop`, with the settings `cfg` holds (none:
/// idle); a reload that changes them restarts it. The first check comes
/// one interval after a (re)start. Rules resend a firing alert every
/// `resend_delay`, so the Watchdog counts as routed if it was within
/// the interval plus that delay.
pub async fn run_deadman(
    mut cfg: tokio::sync::watch::Receiver<Option<DeadmanConfig>>,
    resend_delay: Duration,
    notifier: Arc<Notifier>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = crate::net::build_client(None).unwrap_or_default();
    loop {
        let current = cfg.borrow_and_update().clone();
        let Some(d) = current else {
            tokio::select! {
                r = cfg.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
            }
            continue;
        };
        notifier.watch_alertname(&d.alertname);
        tokio::select! {
            _ = switch(&d, resend_delay, &client, &notifier, &metrics, &clock) => {}
            r = cfg.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// One configuration's pings, forever.
async fn switch(
    cfg: &DeadmanConfig,
    resend_delay: Duration,
    client: &reqwest::Client,
    notifier: &Notifier,
    metrics: &Metrics,
    clock: &Arc<dyn Clock>,
) {
    let every = cfg.interval.0.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticker.tick().await;
        let now = clock.now_millis();
        let window = (every + resend_delay).as_millis() as i64;
        let healthy = notifier.last_routed().is_some_and(|t| now - t <= window);
        let (url, result) = if healthy {
            (Some(&cfg.url), "ok")
        } else {
            tracing::error!(alertname = %cfg.alertname, "the dead-man's switch alert was not routed within the interval; not pinging");
            (cfg.fail_url.as_ref(), "fail_url")
        };
        let Some(url) = url else {
            metrics
                .deadman_pings
                .get_or_create(&vec![("result".to_string(), "skipped".to_string())])
                .inc();
            continue;
        };
        let res = client.get(url).timeout(every).send().await;
        let result = match res {
            Ok(r) if r.status().is_success() => result,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "dead-man's switch call refused");
                "failed"
            }
            Err(e) => {
                tracing::warn!(error = %crate::net::error_chain(&e), "dead-man's switch call failed");
                "failed"
            }
        };
        metrics
            .deadman_pings
            .get_or_create(&vec![("result".to_string(), result.to_string())])
            .inc();
    }
}
