//! Getting alerts to people. Today: forwarding to existing Alertmanagers
//! (`forward`), one queue per Alertmanager. Routing, grouping, silences
//! and receivers come with the delivery issue.

mod forward;

pub use forward::{Forwarder, MAX_BATCH, QUEUE_CAPACITY, alerts_body};
