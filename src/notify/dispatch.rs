//! Alertmanager's dispatching as a state machine driven by explicit time:
//! alerts are routed, grouped into aggregation groups per route and
//! grouping labels, and each group flushes `group_wait` after it was
//! created and then every `group_interval`. What a flush delivers is
//! decided against the notification log (`NotificationLog::needs_update`,
//! Alertmanager's dedup rules), so repeats wait for `repeat_interval` and
//! resolves are sent once. Time is an argument everywhere, so tests cover
//! hours of timers in microseconds; the async runner feeds it the clock.

use std::collections::{BTreeMap, BTreeSet};

use super::route::Route;
use crate::model::{Alert, Labels};

/// Alertmanager's fingerprint of a label set (FNV-1a over sorted names
/// and values with separators), as `%016x` in payloads.
pub fn fingerprint(l: &Labels) -> u64 {
    l.stable_hash()
}

/// An alert in a group, with its fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupedAlert {
    /// Fingerprint of the labels.
    pub fp: u64,
    /// The alert as last received (shared with the notifier's table).
    pub alert: std::sync::Arc<Alert>,
}

impl GroupedAlert {
    /// True when the alert has ended as of `now`.
    pub fn resolved_at(&self, now: i64) -> bool {
        self.alert.ends_at <= now
    }
}

struct AggGroup {
    /// Alertmanager's group key (not unique: sibling routes with equal
    /// matchers share it, as in Alertmanager).
    group_key: String,
    receiver: String,
    group_labels: Labels,
    route_labels: BTreeMap<String, String>,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    mute_time_intervals: Vec<String>,
    active_time_intervals: Vec<String>,
    alerts: BTreeMap<u64, GroupedAlert>,
    next_flush: i64,
    has_flushed: bool,
}

/// What one group flush hands to the notification pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Flush {
    /// The aggregation group's identity in the dispatcher (the route's
    /// position in the tree and the group key).
    pub slot: String,
    /// Alertmanager's group key: route key, `:`, group labels.
    pub group_key: String,
    /// The receiver's name.
    pub receiver: String,
    /// The labels the group is grouped by.
    pub group_labels: Labels,
    /// Labels of the route (`route.labels`).
    pub route_labels: BTreeMap<String, String>,
    /// `repeat_interval` of the route.
    pub repeat_interval_ms: i64,
    /// Time intervals during which the route sends nothing.
    pub mute_time_intervals: Vec<String>,
    /// Time intervals outside which the route sends nothing (none: always
    /// active).
    pub active_time_intervals: Vec<String>,
    /// The group's alerts at flush time, in fingerprint order.
    pub alerts: Vec<GroupedAlert>,
    /// The flush time.
    pub now: i64,
}

impl Flush {
    /// Fingerprints of the firing and of the resolved alerts.
    pub fn sets(&self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        let mut firing = BTreeSet::new();
        let mut resolved = BTreeSet::new();
        for a in &self.alerts {
            if a.resolved_at(self.now) {
                resolved.insert(a.fp);
            } else {
                firing.insert(a.fp);
            }
        }
        (firing, resolved)
    }
}

/// Routes alerts into aggregation groups and flushes them on time.
pub struct Dispatcher {
    root: Route,
    groups: BTreeMap<String, AggGroup>,
    /// (next flush, slot) of every group, so finding what is due costs
    /// the due groups, not all groups.
    schedule: BTreeSet<(i64, String)>,
}

/// `{}` for the root, then each node's matchers, joined by `/`.
fn route_key(path: &[&Route]) -> String {
    path.iter()
        .map(|r| super::matchers::matchers_string(&r.matchers))
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes `labels` reach, each with the path of nodes from the root
/// and the child indexes that lead there (which tell sibling routes with
/// equal matchers apart).
fn route_paths<'a>(
    r: &'a Route,
    labels: &Labels,
    path: &mut Vec<&'a Route>,
    idx: &mut Vec<usize>,
    out: &mut Vec<(Vec<&'a Route>, Vec<usize>)>,
) -> bool {
    if !r.matches_here(labels) {
        return false;
    }
    path.push(r);
    let mut any = false;
    for (i, c) in r.routes.iter().enumerate() {
        idx.push(i);
        let m = route_paths(c, labels, path, idx, out);
        idx.pop();
        any |= m;
        if m && !c.continue_matching {
            break;
        }
    }
    if !any {
        out.push((path.clone(), idx.clone()));
    }
    path.pop();
    true
}

/// Alertmanager's order of alerts in a notification: by `job`, then
/// `instance` (alerts with the label first), then by label set (fewer
/// labels first).
fn alert_order(a: &Labels, b: &Labels) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for key in ["job", "instance"] {
        match (a.get(key), b.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Prometheus's `LabelSet.String()`: `{a="1", b="2"}`.
pub fn label_set_string(l: &Labels) -> String {
    let parts: Vec<String> = l
        .iter()
        .map(|x| format!("{}={:?}", x.name, &*x.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

impl Dispatcher {
    /// A dispatcher for a route tree.
    pub fn new(root: Route) -> Self {
        Dispatcher {
            root,
            groups: BTreeMap::new(),
            schedule: BTreeSet::new(),
        }
    }

    /// Takes alerts in at `now`: each goes to the group of every route it
    /// reaches, replacing an earlier version of itself.
    pub fn ingest(&mut self, alerts: &[Alert], now: i64) {
        let shared: Vec<std::sync::Arc<Alert>> =
            alerts.iter().cloned().map(std::sync::Arc::new).collect();
        self.ingest_shared(&shared, now);
    }

    /// [`ingest`](Self::ingest) for alerts the caller keeps too: the
    /// groups hold the same allocation.
    pub fn ingest_shared(&mut self, alerts: &[std::sync::Arc<Alert>], now: i64) {
        for a in alerts {
            let fp = fingerprint(&a.labels);
            let mut paths = Vec::new();
            route_paths(
                &self.root,
                &a.labels,
                &mut Vec::new(),
                &mut Vec::new(),
                &mut paths,
            );
            for (path, idx) in paths {
                let Some(r) = path.last().copied() else {
                    continue;
                };
                let group_labels = if r.group_by_all {
                    a.labels.clone()
                } else {
                    Labels::from_pairs(
                        a.labels
                            .iter()
                            .filter(|l| r.group_by.iter().any(|g| *g == *l.name))
                            .map(|l| (l.name.to_string(), l.value.to_string())),
                    )
                };
                let key = format!("{}:{}", route_key(&path), label_set_string(&group_labels));
                let slot = format!("{idx:?}{key}");
                let schedule = &mut self.schedule;
                let g = self.groups.entry(slot.clone()).or_insert_with(|| {
                    schedule.insert((now + r.group_wait_ms, slot.clone()));
                    AggGroup {
                        group_key: key,
                        receiver: r.receiver.clone(),
                        group_labels,
                        route_labels: r.labels.clone(),
                        group_interval_ms: r.group_interval_ms,
                        repeat_interval_ms: r.repeat_interval_ms,
                        mute_time_intervals: r.mute_time_intervals.clone(),
                        active_time_intervals: r.active_time_intervals.clone(),
                        alerts: BTreeMap::new(),
                        next_flush: now + r.group_wait_ms,
                        has_flushed: false,
                    }
                });
                // An alert that has been firing longer than group_wait
                // needs no waiting for company: flush now.
                if !g.has_flushed && a.starts_at + r.group_wait_ms < now && g.next_flush > now {
                    self.schedule.remove(&(g.next_flush, slot.clone()));
                    g.next_flush = now;
                    self.schedule.insert((now, slot));
                }
                g.alerts.insert(
                    fp,
                    GroupedAlert {
                        fp,
                        alert: std::sync::Arc::clone(a),
                    },
                );
            }
        }
    }

    /// The receivers `labels` route to, in tree order.
    pub fn receivers_of(&self, labels: &Labels) -> Vec<String> {
        self.root
            .route(labels)
            .iter()
            .map(|r| r.receiver.clone())
            .collect()
    }

    /// When the next group is due, if any.
    pub fn next_flush(&self) -> Option<i64> {
        self.schedule.first().map(|(t, _)| *t)
    }

    /// Number of aggregation groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Every aggregation group: its labels, receiver and alerts'
    /// fingerprints.
    pub fn groups(&self) -> Vec<(Labels, String, Vec<u64>)> {
        self.groups
            .values()
            .map(|g| {
                (
                    g.group_labels.clone(),
                    g.receiver.clone(),
                    g.alerts.keys().copied().collect(),
                )
            })
            .collect()
    }

    /// The groups due at `now`, snapshotted; each is rescheduled one
    /// `group_interval` ahead.
    pub fn flush_due(&mut self, now: i64) -> Vec<Flush> {
        let mut out = Vec::new();
        while let Some((t, key)) = self.schedule.first().cloned() {
            if t > now {
                break;
            }
            self.schedule.pop_first();
            let Some(g) = self.groups.get_mut(&key) else {
                continue;
            };
            g.next_flush = now + g.group_interval_ms;
            self.schedule.insert((g.next_flush, key.clone()));
            if g.alerts.is_empty() {
                continue;
            }
            g.has_flushed = true;
            let mut alerts: Vec<GroupedAlert> = g.alerts.values().cloned().collect();
            alerts.sort_by(|a, b| alert_order(&a.alert.labels, &b.alert.labels));
            out.push(Flush {
                slot: key.clone(),
                group_key: g.group_key.clone(),
                receiver: g.receiver.clone(),
                group_labels: g.group_labels.clone(),
                route_labels: g.route_labels.clone(),
                repeat_interval_ms: g.repeat_interval_ms,
                mute_time_intervals: g.mute_time_intervals.clone(),
                active_time_intervals: g.active_time_intervals.clone(),
                alerts,
                now,
            });
        }
        out
    }

    /// After a flush was delivered: resolved alerts that have not changed
    /// since are dropped from the group, and empty groups go away. A
    /// failed delivery keeps them, so the next flush tries again.
    pub fn flushed(&mut self, f: &Flush, delivered: bool) {
        if !delivered {
            return;
        }
        let Some(g) = self.groups.get_mut(&f.slot) else {
            return;
        };
        for a in f.alerts.iter().filter(|a| a.resolved_at(f.now)) {
            if g.alerts.get(&a.fp) == Some(a) {
                g.alerts.remove(&a.fp);
            }
        }
        if g.alerts.is_empty() {
            self.schedule.remove(&(g.next_flush, f.slot.clone()));
            self.groups.remove(&f.slot);
        }
    }
}

/// One receiver integration's record of what it last sent for a group.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// Fingerprints that were firing.
    pub firing: BTreeSet<u64>,
    /// Fingerprints that were resolved.
    pub resolved: BTreeSet<u64>,
    /// When it was sent.
    pub at: i64,
    /// What an integration keeps about the group between notifications
    /// (Alertmanager's notification log store): Slack's `threadTs` and
    /// `channelId` of the message `update_message` edits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub store: BTreeMap<String, String>,
}

/// The notification log: per (group key, receiver, integration), what was
/// last sent.
#[derive(Clone, Debug, Default)]
pub struct NotificationLog {
    entries: BTreeMap<(String, String, String), LogEntry>,
    /// Entries logged since the last [`take_changes`](Self::take_changes),
    /// as JSON lines for the write-ahead file.
    changes: Vec<u8>,
}

/// One entry as stored on disk and as peers exchange it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEntry {
    /// The group.
    pub group_key: String,
    /// The receiver.
    pub receiver: String,
    /// The integration (`webhook/0`).
    pub integration: String,
    /// What was sent, and when.
    #[serde(flatten)]
    pub entry: LogEntry,
}

impl NotificationLog {
    /// The log as JSON, without entries older than `keep_after` (ms).
    pub fn to_json(&self, keep_after: i64) -> Vec<u8> {
        crate::model::records::to_json_records(
            self.entries
                .iter()
                .filter(|(_, e)| e.at >= keep_after)
                .map(|((g, r, i), e)| StoredEntry {
                    group_key: g.clone(),
                    receiver: r.clone(),
                    integration: i.clone(),
                    entry: e.clone(),
                }),
        )
    }

    /// Reads a log written by [`to_json`](Self::to_json) (or the older
    /// one-document form); damaged records are skipped and returned, so
    /// what the intact ones say was delivered is never sent again.
    pub fn from_json(b: &[u8]) -> Result<(Self, Vec<crate::model::RecordDamage>), String> {
        let (v, damage) = match crate::model::records::json_records::<StoredEntry>(b) {
            Some(r) => r,
            None => (
                serde_json::from_slice::<Vec<StoredEntry>>(b).map_err(|e| e.to_string())?,
                Vec::new(),
            ),
        };
        Ok((
            NotificationLog {
                entries: v
                    .into_iter()
                    .map(|s| ((s.group_key, s.receiver, s.integration), s.entry))
                    .collect(),
                changes: Vec::new(),
            },
            damage,
        ))
    }

    /// Applies the JSON lines of a write-ahead file (later lines win); a
    /// torn last line, from a crash in the middle of a write, is skipped.
    /// Returns how many lines applied.
    pub fn apply_changes(&mut self, b: &[u8]) -> (usize, Vec<crate::model::RecordDamage>) {
        let mut n = 0;
        let mut damage = Vec::new();
        let mut offset = 0;
        for line in b.split_inclusive(|&c| c == b'\n') {
            let at = offset;
            offset += line.len();
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            // Zeroed blocks (a crash on some file systems) read as NULs.
            if line.iter().all(|&c| c == 0 || c == b' ') {
                if !line.is_empty() {
                    damage.push(crate::model::RecordDamage {
                        offset: at,
                        reason: "zeroed".into(),
                    });
                }
                continue;
            }
            match serde_json::from_slice::<StoredEntry>(line) {
                Ok(s) => {
                    self.entries
                        .insert((s.group_key, s.receiver, s.integration), s.entry);
                    n += 1;
                }
                Err(e) => damage.push(crate::model::RecordDamage {
                    offset: at,
                    reason: e.to_string(),
                }),
            }
        }
        (n, damage)
    }

    /// The entries logged since the last call, as JSON lines.
    pub fn take_changes(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.changes)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for a group and integration.
    pub fn get(&self, group_key: &str, receiver: &str, integration: &str) -> Option<&LogEntry> {
        self.entries.get(&(
            group_key.to_string(),
            receiver.to_string(),
            integration.to_string(),
        ))
    }

    /// Entries logged after `t` (ms), for a peer.
    pub fn entries_since(&self, t: i64) -> Vec<StoredEntry> {
        self.entries
            .iter()
            .filter(|(_, e)| e.at > t)
            .map(|((g, r, i), e)| StoredEntry {
                group_key: g.clone(),
                receiver: r.clone(),
                integration: i.clone(),
                entry: e.clone(),
            })
            .collect()
    }

    /// Takes a peer's entry when it is newer than ours (the later
    /// delivery wins, as in Alertmanager's gossip); returns ours as it
    /// was before when it was replaced, or `None` if nothing changed.
    pub fn merge(&mut self, s: StoredEntry) -> Option<Option<LogEntry>> {
        let mine = self.get(&s.group_key, &s.receiver, &s.integration).cloned();
        if mine.as_ref().is_some_and(|m| m.at >= s.entry.at) {
            return None;
        }
        self.log(&s.group_key, &s.receiver, &s.integration, s.entry);
        Some(mine)
    }

    /// Records a delivery.
    pub fn log(&mut self, group_key: &str, receiver: &str, integration: &str, e: LogEntry) {
        let stored = StoredEntry {
            group_key: group_key.to_string(),
            receiver: receiver.to_string(),
            integration: integration.to_string(),
            entry: e.clone(),
        };
        if serde_json::to_writer(&mut self.changes, &stored).is_ok() {
            self.changes.push(b'\n');
        }
        self.entries.insert(
            (
                group_key.to_string(),
                receiver.to_string(),
                integration.to_string(),
            ),
            e,
        );
    }

    /// Alertmanager's rule for whether an integration must be notified:
    /// new firing alerts always; all resolved only if something had been
    /// sent firing; new resolved alerts when the integration sends
    /// resolves; otherwise once `repeat_interval` has passed.
    pub fn needs_update(
        entry: Option<&LogEntry>,
        firing: &BTreeSet<u64>,
        resolved: &BTreeSet<u64>,
        send_resolved: bool,
        repeat_ms: i64,
        now: i64,
    ) -> bool {
        let Some(e) = entry else {
            return !firing.is_empty();
        };
        if !firing.is_subset(&e.firing) {
            return true;
        }
        if firing.is_empty() {
            return !e.firing.is_empty();
        }
        if send_resolved && !resolved.is_subset(&e.resolved) {
            return true;
        }
        e.at < now - repeat_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::amconfig::{Strictness, parse_am_config};

    fn dispatcher(src: &str) -> Dispatcher {
        let cfg = parse_am_config(src, "am.yml", Strictness::Routing).unwrap();
        Dispatcher::new(Route::from_config(cfg.route.as_ref().unwrap()))
    }

    fn alert(name: &str, inst: &str, starts: i64, ends: i64) -> Alert {
        Alert {
            labels: Labels::from_pairs([("alertname", name), ("instance", inst)]),
            annotations: BTreeMap::new(),
            starts_at: starts,
            ends_at: ends,
            generator_url: String::new(),
        }
    }

    const MIN: i64 = 60_000;

    #[test]
    fn groups_wait_then_flush_every_interval_and_dedup_by_the_log() {
        let mut d = dispatcher(
            "route:\n  receiver: team\n  group_by: [alertname]\n  group_wait: 30s\n  group_interval: 5m\n  repeat_interval: 1h\nreceivers: [{name: team}]\n",
        );
        let mut log = NotificationLog::default();
        let far = i64::MAX;
        // Two alerts of one name arrive 10 s apart: one group.
        d.ingest(&[alert("Down", "a", 0, far)], 0);
        d.ingest(&[alert("Down", "b", 10_000, far)], 10_000);
        assert_eq!(d.group_count(), 1);
        assert!(d.flush_due(29_999).is_empty());
        assert_eq!(d.next_flush(), Some(30_000));
        let f = d.flush_due(30_000);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].group_key, "{}:{alertname=\"Down\"}");
        assert_eq!(f[0].alerts.len(), 2);
        let (firing, resolved) = f[0].sets();
        assert!(NotificationLog::needs_update(
            None,
            &firing,
            &resolved,
            true,
            f[0].repeat_interval_ms,
            f[0].now
        ));
        log.log(
            &f[0].group_key,
            "team",
            "webhook/0",
            LogEntry {
                firing,
                resolved,
                at: 30_000,
                store: Default::default(),
            },
        );
        d.flushed(&f[0], true);
        // Next flush one group_interval later; nothing new: no notification
        // until the repeat interval has passed.
        assert_eq!(d.next_flush(), Some(30_000 + 5 * MIN));
        for k in 1..=12 {
            let now = 30_000 + k * 5 * MIN;
            let f = d.flush_due(now);
            assert_eq!(f.len(), 1);
            let (firing, resolved) = f[0].sets();
            let e = log.get(&f[0].group_key, "team", "webhook/0");
            let need = NotificationLog::needs_update(e, &firing, &resolved, true, MIN * 60, now);
            assert_eq!(need, now - 30_000 > 60 * MIN, "at {k}×5m");
            if need {
                log.log(
                    &f[0].group_key,
                    "team",
                    "webhook/0",
                    LogEntry {
                        firing,
                        resolved,
                        at: now,
                        store: Default::default(),
                    },
                );
            }
            d.flushed(&f[0], true);
        }
        // One resolves: sent at the next flush (send_resolved), then the
        // resolved alert leaves the group.
        let t = 30_000 + 13 * 5 * MIN;
        d.ingest(&[alert("Down", "a", 0, t - 1)], t - 1);
        let f = d.flush_due(t);
        let (firing, resolved) = f[0].sets();
        assert_eq!((firing.len(), resolved.len()), (1, 1));
        let e = log.get(&f[0].group_key, "team", "webhook/0");
        assert!(NotificationLog::needs_update(
            e,
            &firing,
            &resolved,
            true,
            60 * MIN,
            t
        ));
        // Without send_resolved the resolve alone is no reason to notify.
        assert!(!NotificationLog::needs_update(
            e,
            &firing,
            &resolved,
            false,
            24 * 60 * MIN,
            t
        ));
        d.flushed(&f[0], true);
        assert_eq!(d.flush_due(t + 5 * MIN)[0].alerts.len(), 1);
    }

    #[test]
    fn old_alerts_flush_at_once_and_routes_key_groups() {
        let mut d = dispatcher(
            "route:\n  receiver: team\n  group_by: ['...']\n  routes:\n    - matchers: ['severity=\"page\"']\n      receiver: pager\n      group_by: [alertname]\n      continue: true\nreceivers: [{name: team}, {name: pager}]\n",
        );
        let mut a = alert("Down", "a", 0, i64::MAX);
        a.labels = Labels::from_pairs([("alertname", "Down"), ("severity", "page")]);
        // Started 10 minutes before it arrived: no group_wait.
        d.ingest(&[a], 10 * MIN);
        let f = d.flush_due(10 * MIN);
        let keys: Vec<&str> = f.iter().map(|x| x.group_key.as_str()).collect();
        assert_eq!(keys, ["{}/{severity=\"page\"}:{alertname=\"Down\"}"]);
        assert_eq!(f[0].receiver, "pager");
    }

    #[test]
    fn all_resolved_is_sent_only_when_something_was_sent_firing() {
        let firing = BTreeSet::new();
        let resolved: BTreeSet<u64> = [1].into();
        assert!(!NotificationLog::needs_update(
            None, &firing, &resolved, true, 0, 0
        ));
        let e = LogEntry {
            firing: [1].into(),
            resolved: BTreeSet::new(),
            at: 0,
            store: Default::default(),
        };
        assert!(NotificationLog::needs_update(
            Some(&e),
            &firing,
            &resolved,
            false,
            MIN,
            1
        ));
    }
}
