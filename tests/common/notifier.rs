//! A notifier driven by a manual clock, for delivery tests: minutes of
//! group intervals and retries take milliseconds; the HTTP is real.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::config::DeliveryConfig;
use argus::model::{Alert, AlertSink, Labels, ManualClock};
use argus::notify::{Notifier, Strictness, parse_am_config};
use argus::telemetry::Metrics;

/// The clock's start (ms).
pub const T0: i64 = 1_800_000_000_000;

/// A running notifier and its clock.
pub struct Harness {
    pub clock: Arc<ManualClock>,
    pub notifier: Arc<Notifier>,
    pub stop: tokio::sync::watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts a notifier on the routing file `am` (relative files in `dir`,
/// state in `dir/data`).
pub fn start(
    dir: &std::path::Path,
    clock: Arc<ManualClock>,
    am: &str,
    delivery: &DeliveryConfig,
) -> Harness {
    let mut cfg = parse_am_config(am, "alertmanager.yml", Strictness::Deliver).unwrap();
    cfg.base_dir = dir.to_path_buf();
    let notifier = Arc::new(
        Notifier::new(
            clock.clone(),
            "http://argus.test:9095",
            Arc::new(Metrics::new()),
        )
        .unwrap()
        .with_state_dir(dir.join("data")),
    );
    notifier.apply(Some(&cfg), delivery).unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(notifier.clone().run(rx));
    Harness {
        clock,
        notifier,
        stop,
        task,
    }
}

/// [`start`] at `T0` with the default delivery settings.
pub fn start_t0(dir: &std::path::Path, am: &str) -> Harness {
    start(
        dir,
        Arc::new(ManualClock::new(T0)),
        am,
        &DeliveryConfig::default(),
    )
}

impl Harness {
    /// Moves the clock and lets the notifier and its workers act.
    pub async fn advance(&self, ms: i64) {
        self.clock.advance(ms);
        self.notifier.poke();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }

    /// Stops the notifier (its state saved).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    /// Waits until `n` deliveries are in the notification log.
    pub async fn logged(&self, n: usize) {
        until("the deliveries logged", || {
            (self.notifier.peer_sync(None).nflog.len() >= n).then_some(())
        })
        .await;
    }

    /// Sends one alert, firing from `T0` until `ends_at`.
    pub fn fire(&self, name: &str, labels: &[(&str, &str)], ends_at: i64) {
        let mut l: Vec<(String, String)> = vec![("alertname".into(), name.into())];
        l.extend(labels.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        self.notifier.send(vec![Alert {
            labels: Labels::from_pairs(l),
            annotations: BTreeMap::from([("summary".to_string(), format!("{name} is bad"))]),
            starts_at: T0,
            ends_at,
            generator_url: "http://argus.test:9095/graph?g0.expr=up".into(),
        }]);
    }
}

/// Polls `f` every 20 ms for up to 10 s.
pub async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
