//! Forwarding alerts to existing Alertmanagers with `POST /api/v2/alerts`,
//! the body Prometheus sends. Each Alertmanager has its own bounded queue
//! and task, so a dead or slow one never holds back the others
//! (Prometheus #7676, where one shared queue waits on every Alertmanager).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, watch};

use crate::config::{AlertingConfig, AlertmanagerConfig};
use crate::model::{Alert, AlertSink, format_rfc3339_millis, go_json_escape};
use crate::net::{Credentials, build_client, error_chain};
use crate::telemetry::Metrics;

/// Alerts a queue holds before dropping the oldest (Prometheus's default
/// `--alertmanager.notification-queue-capacity`).
pub const QUEUE_CAPACITY: usize = 10_000;
/// Alerts per request, as Prometheus batches them.
pub const MAX_BATCH: usize = 256;
/// Attempts per batch before it is given up (and counted as errors);
/// firing alerts are re-sent every resend delay anyway.
const ATTEMPTS: u32 = 3;

#[derive(Serialize)]
struct PostableAlert<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
    labels: BTreeMap<&'a str, &'a str>,
}

/// The JSON body of `POST /api/v2/alerts`, field for field as Prometheus
/// writes it (Alertmanager's OpenAPI client: annotations, endsAt,
/// startsAt, generatorURL, labels; times with milliseconds; Go's escaping
/// of `&`, `<`, `>`).
pub fn alerts_body(alerts: &[Alert]) -> Vec<u8> {
    let rows: Vec<PostableAlert<'_>> = alerts
        .iter()
        .map(|a| PostableAlert {
            annotations: &a.annotations,
            ends_at: format_rfc3339_millis(a.ends_at),
            starts_at: format_rfc3339_millis(a.starts_at),
            generator_url: &a.generator_url,
            labels: a.labels.iter().map(|l| (&*l.name, &*l.value)).collect(),
        })
        .collect();
    go_json_escape(serde_json::to_vec(&rows).unwrap_or_default())
}

/// One Alertmanager: its queue and the task that drains it.
struct Queue {
    url: String,
    cfg: AlertmanagerConfig,
    client: reqwest::Client,
    buf: Mutex<VecDeque<Alert>>,
    wake: Notify,
    stop: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Queue {
    fn label(&self) -> Vec<(String, String)> {
        vec![("alertmanager".to_string(), self.url.clone())]
    }

    fn push(&self, alerts: &[Alert]) {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        buf.extend(alerts.iter().cloned());
        let over = buf.len().saturating_sub(QUEUE_CAPACITY);
        if over > 0 {
            buf.drain(..over);
            self.metrics
                .notifications_dropped
                .get_or_create(&self.label())
                .inc_by(over as u64);
            tracing::warn!(alertmanager = %self.url, dropped = over, "alert queue full, dropped the oldest alerts");
        }
        self.metrics
            .notifications_queue_length
            .get_or_create(&self.label())
            .set(buf.len() as i64);
        drop(buf);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<Alert> {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let n = buf.len().min(MAX_BATCH);
        let batch: Vec<Alert> = buf.drain(..n).collect();
        self.metrics
            .notifications_queue_length
            .get_or_create(&self.label())
            .set(buf.len() as i64);
        batch
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let req = self
            .client
            .post(&self.url)
            .timeout(self.cfg.timeout.0)
            .header("Content-Type", "application/json")
            .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")))
            .body(body);
        let req = Credentials {
            basic_auth: self.cfg.basic_auth.as_ref(),
            authorization: self.cfg.authorization.as_ref(),
            ..Default::default()
        }
        .apply(req)?;
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = crate::net::read_reply(resp).await;
            let text: String = String::from_utf8_lossy(&text).chars().take(200).collect();
            return Err(format!("bad response status {status}: {}", text.trim()));
        }
        Ok(())
    }

    /// Sends one batch, retrying with backoff unless stopping.
    async fn send(&self, batch: Vec<Alert>, rx: &mut watch::Receiver<bool>) {
        let body = alerts_body(&batch);
        let n = batch.len() as u64;
        for attempt in 1..=ATTEMPTS {
            match self.post(body.clone()).await {
                Ok(()) => {
                    self.metrics
                        .notifications_sent
                        .get_or_create(&self.label())
                        .inc_by(n);
                    return;
                }
                Err(e) => {
                    tracing::warn!(alertmanager = %self.url, alerts = n, attempt, error = %e, "cannot send alerts");
                    let stopping = *rx.borrow();
                    if attempt == ATTEMPTS || stopping {
                        break;
                    }
                    let backoff = Duration::from_millis(500 << (attempt - 1));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = rx.changed() => {}
                    }
                }
            }
        }
        self.metrics
            .notifications_errors
            .get_or_create(&self.label())
            .inc_by(n);
    }

    async fn run(self: Arc<Self>, mut rx: watch::Receiver<bool>) {
        loop {
            let batch = self.take();
            if batch.is_empty() {
                if *rx.borrow() {
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = rx.changed() => {}
                }
                continue;
            }
            self.send(batch, &mut rx).await;
        }
    }
}

/// Forwards every alert to each configured Alertmanager.
pub struct Forwarder {
    queues: Mutex<Vec<Arc<Queue>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    /// A forwarder with no Alertmanagers.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Forwarder {
            queues: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// Sets the Alertmanagers from the config. Alertmanagers whose URL and
    /// settings are unchanged keep their queue; removed ones drain what
    /// they hold and stop. On error (a TLS file that cannot be read)
    /// nothing changes; the message names the Alertmanager.
    pub fn apply(&self, cfg: &AlertingConfig) -> Result<(), String> {
        let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let mut next: Vec<Arc<Queue>> = Vec::new();
        let mut fresh: Vec<Arc<Queue>> = Vec::new();
        for (i, am) in cfg.alertmanagers.iter().enumerate() {
            for url in am.urls() {
                if next.iter().any(|q| q.url == url) {
                    continue;
                }
                if let Some(q) = queues.iter().find(|q| q.url == url && q.cfg == *am) {
                    next.push(q.clone());
                    continue;
                }
                let client = build_client(am.tls_config.as_ref())
                    .map_err(|e| format!("alerting.alertmanagers[{i}] ({url}): {e}"))?;
                let (stop, _) = watch::channel(false);
                let q = Arc::new(Queue {
                    url,
                    cfg: am.clone(),
                    client,
                    buf: Mutex::new(VecDeque::new()),
                    wake: Notify::new(),
                    stop,
                    metrics: self.metrics.clone(),
                });
                next.push(q.clone());
                fresh.push(q);
            }
        }
        for old in queues.iter() {
            if !next.iter().any(|q| Arc::ptr_eq(q, old)) {
                let _ = old.stop.send(true);
            }
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        for q in fresh {
            let rx = q.stop.subscribe();
            tasks.push(tokio::spawn(q.run(rx)));
        }
        *queues = next;
        Ok(())
    }

    /// The alerts endpoints alerts currently go to.
    pub fn alertmanagers(&self) -> Vec<String> {
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.iter().map(|q| q.url.clone()).collect()
    }

    /// Stops every queue after one last attempt to send what it holds,
    /// waiting at most `grace`.
    pub async fn stop(&self, grace: Duration) {
        {
            let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            for q in queues.iter() {
                let _ = q.stop.send(true);
            }
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = tokio::time::timeout(grace, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

impl AlertSink for Forwarder {
    fn send(&self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for q in queues.iter() {
            q.push(&alerts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn body_is_what_prometheus_sends() {
        let a = Alert {
            labels: Labels::from_pairs([("alertname", "Down"), ("job", "api")]),
            annotations: BTreeMap::from([("summary".to_string(), "api down".to_string())]),
            starts_at: 1_700_000_000_000,
            ends_at: 1_700_000_240_500,
            generator_url: "http://argus:9095/graph?g0.expr=up+%3D%3D+0&g0.tab=1".into(),
        };
        let mut bare = a.clone();
        bare.annotations.clear();
        bare.generator_url.clear();
        let body = String::from_utf8(alerts_body(&[a, bare])).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"[{"annotations":{"summary":"api down"},"endsAt":"2023-11-14T22:17:20.500Z","#,
                r#""startsAt":"2023-11-14T22:13:20.000Z","#,
                r#""generatorURL":"http://argus:9095/graph?g0.expr=up+%3D%3D+0\u0026g0.tab=1","#,
                r#""labels":{"alertname":"Down","job":"api"}},"#,
                r#"{"endsAt":"2023-11-14T22:17:20.500Z","startsAt":"2023-11-14T22:13:20.000Z","#,
                r#""labels":{"alertname":"Down","job":"api"}}]"#
            )
        );
    }
}
