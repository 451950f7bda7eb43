//! Alert state that survives restarts: every alert of every alerting rule
//! written to `<storage.path>/alerts.json` (atomically: temporary file,
//! fsync, rename, directory fsync) and read back before the first
//! evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::group::{Alert, AlertState, Group, Rule};
use crate::model::Labels;

/// File name of the alert state inside the storage directory.
pub const ALERTS_FILE: &str = "alerts.json";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct SavedAlert {
    /// `file;group`
    group: String,
    rule: String,
    /// Which of the group's rules with this name (0 for the first): groups
    /// often hold several rules of one name with different thresholds.
    #[serde(default)]
    nth: usize,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    state: String,
    value: f64,
    active_at: i64,
    fired_at: Option<i64>,
    resolved_at: Option<i64>,
    last_sent_at: Option<i64>,
    keep_firing_since: Option<i64>,
}

/// One record of the state file: the header first, then each alert.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Record {
    Header(Header),
    Alert(SavedAlert),
}

/// The first record: when the state was written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    saved_at: i64,
}

/// The alerts of one group, taken under its lock so the write can
/// happen without it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SavedState {
    /// When the state was written (ms).
    saved_at: i64,
    alerts: Vec<SavedAlert>,
}

/// Alerts read from disk, waiting to be put back into their rules.
#[derive(Debug, Default)]
pub struct Restored {
    saved_at: i64,
    by_rule: BTreeMap<(String, String, usize), Vec<SavedAlert>>,
}

fn group_key(g: &Group) -> String {
    format!("{};{}", g.file, g.name)
}

/// Why alert state could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct PersistError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub msg: String,
}

impl SavedState {
    /// An empty state stamped with the save time (ms).
    pub fn new(now: i64) -> Self {
        SavedState {
            saved_at: now,
            alerts: Vec::new(),
        }
    }

    /// Adds the alerts of `g`.
    pub fn add_group(&mut self, g: &Group) {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &g.rules {
            let Rule::Alerting(a) = r else { continue };
            let nth = seen.entry(a.name.as_str()).or_default();
            for al in a.active.values() {
                self.alerts.push(SavedAlert {
                    group: group_key(g),
                    rule: a.name.clone(),
                    nth: *nth,
                    labels: al
                        .labels
                        .iter()
                        .map(|l| (l.name.to_string(), l.value.to_string()))
                        .collect(),
                    annotations: al.annotations.clone(),
                    state: al.state.as_str().to_string(),
                    value: al.value,
                    active_at: al.active_at,
                    fired_at: al.fired_at,
                    resolved_at: al.resolved_at,
                    last_sent_at: al.last_sent_at,
                    keep_firing_since: al.keep_firing_since,
                });
            }
            *nth += 1;
        }
    }

    /// Number of alerts.
    pub fn len(&self) -> usize {
        self.alerts.len()
    }

    /// True when there are no alerts.
    pub fn is_empty(&self) -> bool {
        self.alerts.is_empty()
    }

    /// Writes the state to `dir` atomically: temporary file, fsync,
    /// rename, directory fsync — a crash leaves the old file or the new
    /// one, never a torn one.
    pub fn write(&self, dir: &Path) -> Result<(), PersistError> {
        let path = dir.join(ALERTS_FILE);
        let err = |m: String| PersistError {
            path: path.display().to_string(),
            msg: m,
        };
        // One record per alert after a header, so a damaged byte costs
        // one alert's state, not every rule's.
        let header = std::iter::once(Record::Header(Header {
            saved_at: self.saved_at,
        }));
        let body = crate::model::records::to_json_records(
            header.chain(self.alerts.iter().cloned().map(Record::Alert)),
        );
        crate::model::write_atomic(dir, ALERTS_FILE, &body).map_err(|e| err(e.to_string()))
    }
}

/// Reads saved alerts; a missing file is an empty state. A damaged file
/// is an error (the caller logs it and starts without the state).
pub fn load(dir: &Path) -> Result<Restored, PersistError> {
    let path: PathBuf = dir.join(ALERTS_FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::default()),
        Err(e) => {
            return Err(PersistError {
                path: path.display().to_string(),
                msg: e.to_string(),
            });
        }
    };
    let st = match crate::model::records::json_records::<Record>(&data) {
        Some((records, damage)) => {
            for d in &damage {
                tracing::error!(file = %path.display(), offset = d.offset, reason = %d.reason, "a damaged record of a state file was skipped; the rest of the file was read");
            }
            let mut st = SavedState::default();
            let mut header = false;
            for r in records {
                match r {
                    Record::Header(h) => {
                        st.saved_at = h.saved_at;
                        header = true;
                    }
                    Record::Alert(a) => st.alerts.push(a),
                }
            }
            if !header {
                // The header was the damaged record: the file's time is
                // when it was written, near enough for the downtime.
                st.saved_at = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_millis() as i64);
            }
            st
        }
        None => serde_json::from_slice(&data).map_err(|e| PersistError {
            path: path.display().to_string(),
            msg: format!("cannot parse: {e}"),
        })?,
    };
    let mut by_rule: BTreeMap<(String, String, usize), Vec<SavedAlert>> = BTreeMap::new();
    for a in st.alerts {
        by_rule
            .entry((a.group.clone(), a.rule.clone(), a.nth))
            .or_default()
            .push(a);
    }
    Ok(Restored {
        saved_at: st.saved_at,
        by_rule,
    })
}

impl Restored {
    /// True when nothing is waiting to be restored.
    pub fn is_empty(&self) -> bool {
        self.by_rule.is_empty()
    }

    /// Puts saved alerts back into `g`'s rules. Firing and resolved alerts
    /// come back as they were (no second page, and their resolve is still
    /// sent). Pending alerts keep their progress towards `for`, but the
    /// time argus was down does not count: `active_at` moves forward by the
    /// downtime.
    pub fn restore_into(&mut self, g: &mut Group, now: i64) -> usize {
        let key = group_key(g);
        let downtime = (now - self.saved_at).max(0);
        let mut n = 0;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for r in g.rules.iter_mut() {
            let Rule::Alerting(a) = r else { continue };
            let nth = seen.entry(a.name.clone()).or_default();
            let k = (key.clone(), a.name.clone(), *nth);
            *nth += 1;
            let Some(saved) = self.by_rule.remove(&k) else {
                continue;
            };
            for s in saved {
                let state = match s.state.as_str() {
                    "firing" => AlertState::Firing,
                    "pending" => AlertState::Pending,
                    _ => AlertState::Inactive,
                };
                let active_at = if state == AlertState::Pending {
                    s.active_at + downtime
                } else {
                    s.active_at
                };
                let labels = Labels::from_pairs(s.labels);
                a.active.insert(
                    labels.clone(),
                    Alert {
                        labels,
                        annotations: s.annotations,
                        state,
                        value: s.value,
                        active_at,
                        fired_at: s.fired_at,
                        resolved_at: s.resolved_at,
                        last_sent_at: s.last_sent_at,
                        keep_firing_since: s.keep_firing_since,
                    },
                );
                n += 1;
            }
        }
        n
    }
}

/// A fingerprint of a group's alert states, to write only when something
/// changed. While an alert is pending the evaluation time `ts` counts as a
/// change too: the save time is what restore measures downtime from, so
/// it must stay fresh while `for` progress is at stake.
pub fn fingerprint(g: &Group, ts: i64) -> u64 {
    let mut h = crate::model::Fnv64::new();
    let mut rows: Vec<String> = Vec::new();
    let pending = g.rules.iter().any(|r| match r {
        Rule::Alerting(a) => a.active.values().any(|x| x.state == AlertState::Pending),
        Rule::Recording(_) => false,
    });
    if pending {
        h.write(&ts.to_le_bytes());
    }
    for r in &g.rules {
        let Rule::Alerting(a) = r else { continue };
        for al in a.active.values() {
            rows.push(format!(
                "{}|{}|{}|{:?}|{:?}|{:?}|{:?}",
                al.labels,
                al.state.as_str(),
                al.active_at,
                al.fired_at,
                al.resolved_at,
                al.keep_firing_since,
                al.last_sent_at
            ));
        }
    }
    rows.sort();
    for r in rows {
        h.write(r.as_bytes());
    }
    h.finish()
}
