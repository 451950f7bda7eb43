//! `argus template render`: what a receiver would send for sample alerts,
//! rendered with the routing file's templates exactly as delivery renders
//! it, without sending anything (Alertmanager #584). Secrets are shown as
//! `<secret>` and URLs only up to their host.

use std::collections::BTreeMap;
use std::path::Path;

use crate::model::{Alert, Labels};
use crate::notify::{
    Flush, GroupedAlert, RenderCtx, Route, Strictness, Templates, fingerprint, integrations,
    label_set_string, load_am_config, prepare, webhook_data,
};

/// Why nothing could be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateRenderError {
    /// The routing file is invalid.
    #[error("{0}")]
    Config(String),
    /// No receiver has the name.
    #[error("no receiver named {0:?} (receivers: {1})")]
    NoReceiver(String, String),
    /// The alerts file is unreadable or malformed.
    #[error("{file}: {msg}")]
    Alerts {
        /// The file.
        file: String,
        /// What is wrong.
        msg: String,
    },
}

/// Two firing alerts and a resolved one of a made-up service.
fn default_alerts(now: i64) -> Vec<Alert> {
    let one = |inst: &str, ends: i64| Alert {
        labels: Labels::from_pairs([
            ("alertname", "ExampleAlert"),
            ("severity", "critical"),
            ("service", "api"),
            ("job", "api"),
            ("instance", inst),
        ]),
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!("{inst} answers 7% of requests with errors"),
            ),
            (
                "runbook".to_string(),
                "https://runbooks.example/ExampleAlert".to_string(),
            ),
        ]),
        starts_at: now - 600_000,
        ends_at: ends,
        generator_url: "http://argus.example:9095/graph?g0.expr=example".into(),
    };
    vec![
        one("api-1:8080", now + 300_000),
        one("api-2:8080", now + 300_000),
        one("api-3:8080", now - 60_000),
    ]
}

fn read_alerts(file: &Path, now: i64) -> Result<Vec<Alert>, TemplateRenderError> {
    let err = |msg: String| TemplateRenderError::Alerts {
        file: file.display().to_string(),
        msg,
    };
    let text = std::fs::read_to_string(file).map_err(|e| err(e.to_string()))?;
    // Either a list of alerts or a webhook payload with `alerts`.
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
    let list = match v {
        serde_json::Value::Object(mut m) if m.contains_key("alerts") => {
            m.remove("alerts").unwrap_or_default()
        }
        other => other,
    };
    let posted: Vec<crate::notify::PostableAlert> =
        serde_json::from_value(list).map_err(|e| err(e.to_string()))?;
    posted
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            // Completed as Alertmanager completes posted alerts.
            let mut a = p.check().map_err(|e| err(format!("alert {i}: {e}")))?;
            if !a.has_start {
                a.alert.starts_at = now;
            }
            if !a.has_end {
                a.alert.ends_at = now + 300_000;
            }
            Ok(a.alert)
        })
        .collect()
}

/// The first route (depth first) that delivers to `receiver`.
fn route_of<'a>(r: &'a Route, receiver: &str) -> Option<&'a Route> {
    if r.receiver == receiver {
        return Some(r);
    }
    r.routes.iter().find_map(|c| route_of(c, receiver))
}

/// Renders every integration of `receiver` for the alerts in `alerts`
/// (or built-in samples) at `now`.
pub fn template_render(
    config: &Path,
    receiver: &str,
    alerts: Option<&Path>,
    now: i64,
) -> Result<String, TemplateRenderError> {
    let cfg = load_am_config(config, Strictness::Deliver)
        .map_err(|e| TemplateRenderError::Config(e.to_string()))?;
    let templates = Templates::load(&cfg.templates, &cfg.base_dir)
        .map_err(|e| TemplateRenderError::Config(e.to_string()))?;
    let r = cfg
        .receivers
        .iter()
        .find(|r| r.name == receiver)
        .ok_or_else(|| {
            TemplateRenderError::NoReceiver(
                receiver.to_string(),
                cfg.receivers
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
    let alerts = match alerts {
        Some(f) => read_alerts(f, now)?,
        None => default_alerts(now),
    };
    let root = cfg.route.as_ref().map(Route::from_config);
    let route = root.as_ref().and_then(|r| route_of(r, receiver));
    let mut group_labels: Vec<(String, String)> = Vec::new();
    if let Some(first) = alerts.first() {
        for l in first.labels.iter() {
            let grouped =
                route.is_some_and(|r| r.group_by_all || r.group_by.iter().any(|g| *g == *l.name));
            let shared = alerts
                .iter()
                .all(|a| a.labels.get(&l.name) == Some(&*l.value));
            if grouped && shared {
                group_labels.push((l.name.to_string(), l.value.to_string()));
            }
        }
    }
    let group_labels = Labels::from_pairs(group_labels);
    let grouped: Vec<GroupedAlert> = alerts
        .iter()
        .map(|a| GroupedAlert {
            fp: fingerprint(&a.labels),
            alert: std::sync::Arc::new(a.clone()),
        })
        .collect();
    let flush = Flush {
        slot: String::new(),
        group_key: format!("{{}}:{}", label_set_string(&group_labels)),
        receiver: receiver.to_string(),
        group_labels,
        route_labels: route.map(|r| r.labels.clone()).unwrap_or_default(),
        repeat_interval_ms: 0,
        mute_time_intervals: Vec::new(),
        active_time_intervals: Vec::new(),
        alerts: grouped,
        now,
    };
    let mut out = String::new();
    let global = cfg.global.clone().unwrap_or_default();
    for i in integrations(r) {
        let sent: Vec<&GroupedAlert> = flush
            .alerts
            .iter()
            .filter(|a| i.send_resolved || !a.resolved_at(now))
            .collect();
        out.push_str(&format!("== {} ==\n", i.name));
        if sent.is_empty() {
            out.push_str("(nothing: every alert is resolved and resolves are not sent)\n\n");
            continue;
        }
        let data = webhook_data(&flush, &sent, i.max_alerts, "http://argus.example:9095");
        let x = RenderCtx {
            global: &global,
            base_dir: &cfg.base_dir,
            templates: &templates,
            value: data.to_value(),
            data: &data,
            route_labels: &flush.route_labels,
            now,
            render_only: true,
            template_errors: Default::default(),
            log_store: Default::default(),
        };
        let (kind, idx) = i.name.split_once('/').unwrap_or((&i.name, "0"));
        match prepare(r, kind, idx.parse().unwrap_or(0), &x) {
            Some(Ok(p)) => out.push_str(&format!("{p:?}\n\n")),
            Some(Err(e)) => out.push_str(&format!("error: {e}\n\n")),
            None => out.push_str(&format!("error: no integration {}\n\n", i.name)),
        }
    }
    if out.is_empty() {
        out.push_str("(the receiver has no integrations)\n");
    }
    Ok(out)
}
