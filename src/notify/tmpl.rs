//! What a notification says: the data Alertmanager hands its templates
//! (`Receiver`, `Status`, `Alerts`, `GroupLabels`, `CommonLabels`,
//! `CommonAnnotations`, `ExternalURL`), built once per notification and
//! used both by the webhook payload and by the Slack, PagerDuty and email
//! templates; and the template set (argus's defaults plus the files the
//! routing config names under `templates:`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::dispatch::{Flush, GroupedAlert};
use crate::model::Labels;
use crate::template::{Funcs, GoTime, Limits, Template, TemplateError, Value};

/// argus's default notification templates, under Alertmanager's template
/// names so that configs calling them (`{{ template "slack.default.title"
/// . }}`) work unchanged.
pub const DEFAULT_TEMPLATES: &str = include_str!("default.tmpl");

/// One alert of a notification.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertData {
    /// `firing` or `resolved`.
    pub status: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms), for resolved alerts only (firing alerts carry Go's zero
    /// time, as in Alertmanager's data).
    pub ends_at: Option<i64>,
    /// Link to the expression.
    pub generator_url: String,
    /// Fingerprint, `%016x`.
    pub fingerprint: String,
}

/// A notification's data.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NotificationData {
    /// The receiver's name, regex-quoted as Alertmanager quotes it.
    pub receiver: String,
    /// `firing` when any alert fires, else `resolved`.
    pub status: String,
    /// The alerts, in notification order.
    pub alerts: Vec<AlertData>,
    /// The labels the group is grouped by.
    pub group_labels: BTreeMap<String, String>,
    /// Labels all alerts share with the same value.
    pub common_labels: BTreeMap<String, String>,
    /// Annotations all alerts share with the same value.
    pub common_annotations: BTreeMap<String, String>,
    /// argus's external URL.
    pub external_url: String,
    /// The group key.
    pub group_key: String,
    /// Alerts left out by `max_alerts`.
    pub truncated_alerts: u64,
}

/// Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver
/// name in template data.
pub fn quote_meta(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

fn map(l: &Labels) -> BTreeMap<String, String> {
    l.iter()
        .map(|x| (x.name.to_string(), x.value.to_string()))
        .collect()
}

impl NotificationData {
    /// The data for `alerts` of flush `f`.
    pub fn new(f: &Flush, alerts: &[&GroupedAlert], external_url: &str) -> NotificationData {
        let mut common_labels = alerts
            .first()
            .map(|a| map(&a.alert.labels))
            .unwrap_or_default();
        let mut common_annotations = alerts
            .first()
            .map(|a| a.alert.annotations.clone())
            .unwrap_or_default();
        for a in alerts.iter().skip(1) {
            common_labels.retain(|k, v| a.alert.labels.get(k) == Some(v.as_str()));
            common_annotations.retain(|k, v| a.alert.annotations.get(k) == Some(v));
        }
        let firing = alerts.iter().any(|a| !a.resolved_at(f.now));
        NotificationData {
            receiver: quote_meta(&f.receiver),
            status: if firing { "firing" } else { "resolved" }.to_string(),
            alerts: alerts
                .iter()
                .map(|a| {
                    let resolved = a.resolved_at(f.now);
                    AlertData {
                        status: if resolved { "resolved" } else { "firing" }.to_string(),
                        labels: map(&a.alert.labels),
                        annotations: a.alert.annotations.clone(),
                        starts_at: a.alert.starts_at,
                        ends_at: resolved.then_some(a.alert.ends_at),
                        generator_url: a.alert.generator_url.clone(),
                        fingerprint: format!("{:016x}", a.fp),
                    }
                })
                .collect(),
            group_labels: map(&f.group_labels),
            common_labels,
            common_annotations,
            external_url: external_url.to_string(),
            group_key: f.group_key.clone(),
            truncated_alerts: 0,
        }
    }

    /// The data as templates see it.
    pub fn to_value(&self) -> Value {
        let alerts = self
            .alerts
            .iter()
            .map(|a| {
                let mut m = BTreeMap::new();
                m.insert("Status".into(), Value::Str(a.status.clone()));
                m.insert("Labels".into(), Value::Kv(a.labels.clone()));
                m.insert("Annotations".into(), Value::Kv(a.annotations.clone()));
                m.insert("StartsAt".into(), Value::Time(GoTime::utc(a.starts_at)));
                m.insert(
                    "EndsAt".into(),
                    Value::Time(GoTime::utc(
                        a.ends_at.unwrap_or(crate::template::GO_ZERO_TIME_MS),
                    )),
                );
                m.insert("GeneratorURL".into(), Value::Str(a.generator_url.clone()));
                m.insert("Fingerprint".into(), Value::Str(a.fingerprint.clone()));
                Value::Map(m)
            })
            .collect();
        let mut m = BTreeMap::new();
        m.insert("Receiver".into(), Value::Str(self.receiver.clone()));
        m.insert("Status".into(), Value::Str(self.status.clone()));
        m.insert("Alerts".into(), Value::Alerts(alerts));
        m.insert("GroupLabels".into(), Value::Kv(self.group_labels.clone()));
        m.insert("CommonLabels".into(), Value::Kv(self.common_labels.clone()));
        m.insert(
            "CommonAnnotations".into(),
            Value::Kv(self.common_annotations.clone()),
        );
        m.insert("ExternalURL".into(), Value::Str(self.external_url.clone()));
        m.insert("GroupKey".into(), Value::Str(self.group_key.clone()));
        Value::Map(m)
    }
}

/// Go's and Alertmanager's template functions, `now` being `now_ms`.
fn funcs_at(now_ms: i64) -> Funcs {
    let mut f = Funcs::builtin();
    crate::template::alertmanager::add_alertmanager_funcs(&mut f, now_ms);
    f
}

fn funcs() -> Funcs {
    funcs_at(0)
}

/// Why the notification templates could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplatesError {
    /// A `templates:` pattern is not a valid glob.
    #[error("templates: invalid pattern {pattern:?}: {msg}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        msg: String,
    },
    /// A file could not be read.
    #[error("templates: cannot read {file}: {msg}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        msg: String,
    },
    /// A file does not parse.
    #[error("{0}")]
    Parse(#[from] TemplateError),
}

/// The notification template set.
#[derive(Clone, Debug)]
pub struct Templates {
    base: Arc<Template>,
}

impl Templates {
    /// argus's defaults plus the files matched by `patterns` (relative to
    /// `dir`), later definitions replacing earlier ones as in Alertmanager.
    pub fn load(patterns: &[String], dir: &Path) -> Result<Templates, TemplatesError> {
        let mut base = Template::parse("default.tmpl", DEFAULT_TEMPLATES)?;
        for p in patterns {
            let full = if Path::new(p).is_absolute() {
                p.clone()
            } else {
                dir.join(p).display().to_string()
            };
            let paths = glob::glob(&full).map_err(|e| TemplatesError::Pattern {
                pattern: p.clone(),
                msg: e.to_string(),
            })?;
            for path in paths {
                let path = path.map_err(|e| TemplatesError::Read {
                    file: p.clone(),
                    msg: e.to_string(),
                })?;
                let text = std::fs::read_to_string(&path).map_err(|e| TemplatesError::Read {
                    file: path.display().to_string(),
                    msg: e.to_string(),
                })?;
                let name = path
                    .file_name()
                    .map_or_else(|| p.clone(), |n| n.to_string_lossy().into_owned());
                let t = Template::parse(&name, &text)?;
                t.check_funcs(&funcs())?;
                base.merge_defines(t);
            }
        }
        Ok(Templates {
            base: Arc::new(base),
        })
    }

    /// The defaults alone.
    pub fn defaults() -> Templates {
        Templates::load(&[], Path::new(".")).unwrap_or_else(|e| {
            // The defaults are compiled in and covered by tests.
            unreachable!("default templates do not parse: {e}")
        })
    }

    /// Renders a config field's template text over `data` (HTML-escaping
    /// when `html`). `route_labels` answers the `routeLabels` function.
    pub fn render(
        &self,
        text: &str,
        data: &Value,
        html: bool,
        now_ms: i64,
        route_labels: &BTreeMap<String, String>,
    ) -> Result<String, TemplateError> {
        if !text.contains("{{") {
            return Ok(text.to_string());
        }
        let t = Template::parse_in("", text, &self.base)?;
        let mut f = funcs_at(now_ms);
        let rl = route_labels.clone();
        f.add("routeLabels", move |a| {
            let name = a.first().map(|v| v.to_string()).unwrap_or_default();
            Ok(Value::Str(rl.get(&name).cloned().unwrap_or_default()))
        });
        t.execute(
            data,
            &f,
            Limits {
                html,
                ..Limits::default()
            },
        )
    }

    /// Names of the templates defined.
    pub fn names(&self) -> Vec<String> {
        self.base.defined_names()
    }
}
