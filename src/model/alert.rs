//! Alerts as they leave rule evaluation for routing and delivery: the
//! fields Prometheus hands its notifier, with its `startsAt`/`endsAt`
//! meaning.

use std::collections::BTreeMap;

use super::{Labels, Timestamp};

/// One alert on its way out.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Identifying labels, `alertname` included.
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it started firing (ms).
    pub starts_at: Timestamp,
    /// When it resolved, or — while firing — when a receiver may consider
    /// it resolved if no resend arrives: the send time plus four times the
    /// larger of the resend delay and the group interval.
    pub ends_at: Timestamp,
    /// Link back to the expression that produced it.
    pub generator_url: String,
}

/// Where rule evaluation hands its alerts. Implementations queue and must
/// not block: `send` is called from the evaluation path.
pub trait AlertSink: Send + Sync {
    /// Takes a batch of alerts from one rule group's evaluation.
    fn send(&self, alerts: Vec<Alert>);
}
