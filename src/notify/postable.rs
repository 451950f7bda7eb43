//! Alerts as Alertmanager's API takes them (`POST /api/v2/alerts`), read
//! and checked in one place for the API and for `argus template render`.
//! Fields Alertmanager does not read (a webhook payload's `status`,
//! `fingerprint`) are ignored, as Alertmanager ignores them.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Alert, Labels, parse_rfc3339};

/// An alert as clients post it.
#[derive(Deserialize)]
pub struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
}

/// A checked alert: its times are 0 where the client gave none, and the
/// flags say which it gave (Alertmanager completes the others).
pub struct Posted {
    /// The alert.
    pub alert: Alert,
    /// `startsAt` was given.
    pub has_start: bool,
    /// `endsAt` was given.
    pub has_end: bool,
}

impl PostableAlert {
    /// Checks the alert as Alertmanager does: at least one non-empty
    /// label, valid label names, RFC 3339 times (Go's zero time counts as
    /// none), start not after end.
    pub fn check(self) -> Result<Posted, String> {
        let labels: Vec<(String, String)> = self
            .labels
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if labels.is_empty() {
            return Err("at least one label pair required".into());
        }
        if let Some((n, _)) = labels
            .iter()
            .find(|(n, _)| !crate::model::is_legacy_label_name(n))
        {
            return Err(format!("invalid label name {n:?}"));
        }
        let time = |s: &Option<String>| -> Result<Option<i64>, String> {
            match s
                .as_deref()
                .filter(|s| !s.is_empty() && !s.starts_with("0001-01-01"))
            {
                None => Ok(None),
                Some(t) => parse_rfc3339(t)
                    .map(Some)
                    .ok_or_else(|| format!("invalid time {t:?}")),
            }
        };
        let (s, e) = (time(&self.starts_at)?, time(&self.ends_at)?);
        if let (Some(s), Some(e)) = (s, e) {
            if e < s {
                return Err("start time must be before end time".into());
            }
        }
        Ok(Posted {
            alert: Alert {
                labels: Labels::from_pairs(labels),
                annotations: self.annotations,
                starts_at: s.unwrap_or(0),
                ends_at: e.unwrap_or(0),
                generator_url: self.generator_url.unwrap_or_default(),
            },
            has_start: s.is_some(),
            has_end: e.is_some(),
        })
    }
}
