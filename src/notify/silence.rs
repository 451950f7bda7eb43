//! Silences with Alertmanager's semantics: a silence mutes every alert
//! all of its matchers match while it is active (`startsAt <= now <
//! endsAt`). Changing what a silence matches or when it started leaves the
//! old one expired and creates a new one, so that the record of what was
//! silenced when stays true; expired silences are kept for a retention
//! and then dropped. The set is persisted as JSON under the storage
//! directory by its owner (the notifier).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Labels, MatchOp, Matcher};

/// Alertmanager's default `--data.retention`: how long expired silences
/// are kept.
pub const SILENCE_RETENTION_MS: i64 = 120 * 3_600_000;

/// Where a silence is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SilenceState {
    /// Muting now.
    Active,
    /// Starts later.
    Pending,
    /// Ended.
    Expired,
}

impl SilenceState {
    /// The API's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Active => "active",
            SilenceState::Pending => "pending",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence.
#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    /// UUID; empty in a request that creates one.
    pub id: String,
    /// All must match for an alert to be muted.
    pub matchers: Vec<Matcher>,
    /// Start (ms).
    pub starts_at: i64,
    /// End (ms).
    pub ends_at: i64,
    /// Last change (ms).
    pub updated_at: i64,
    /// Who created it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// The state at `now`.
    pub fn state(&self, now: i64) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now >= self.ends_at {
            SilenceState::Expired
        } else {
            SilenceState::Active
        }
    }

    /// True when every matcher matches `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches_labels(labels))
    }
}

/// Why a silence operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No silence has the ID.
    #[error("silence {0} not found")]
    NotFound(String),
    /// The silence is malformed.
    #[error("invalid silence: {0}")]
    Invalid(String),
    /// The change could not be saved (disk full, …) and was undone.
    #[error("cannot save the silences: {0}")]
    Storage(String),
}

/// The silence set.
#[derive(Clone, Default)]
pub struct Silences {
    by_id: BTreeMap<String, Silence>,
    /// Bumped on every change, so the owner knows when to save.
    version: u64,
}

/// A fresh random UUID (version 4 layout). The randomness comes from the
/// standard library's per-process hash keys mixed with the time and a
/// counter: IDs need to be unique, not secret.
pub fn new_uuid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u64(t);
        h.write_u32(std::process::id());
        h.finish()
    };
    let (a, b) = (half(0x9e37_79b9), half(0x7f4a_7c15));
    let a = (a & !0xf000) | 0x4000; // version 4
    let b = (b & !(0xc000 << 48)) | (0x8000 << 48); // RFC 4122 variant
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

fn validate(s: &Silence) -> Result<(), SilenceError> {
    if s.matchers.is_empty() {
        return Err(SilenceError::Invalid(
            "at least one matcher required".into(),
        ));
    }
    for (i, m) in s.matchers.iter().enumerate() {
        if !crate::model::is_legacy_label_name(&m.name) {
            return Err(SilenceError::Invalid(format!(
                "invalid label matcher {i}: invalid label name {:?}",
                m.name
            )));
        }
    }
    if s.matchers.iter().all(|m| m.matches_empty()) {
        return Err(SilenceError::Invalid(
            "at least one matcher must not match the empty string".into(),
        ));
    }
    if s.ends_at < s.starts_at {
        return Err(SilenceError::Invalid(
            "end time must not be before start time".into(),
        ));
    }
    Ok(())
}

/// Whether `old` may be changed into `new` in place: same matchers, and
/// only the times that do not rewrite history.
fn can_update(old: &Silence, new: &Silence, now: i64) -> bool {
    if old.matchers != new.matchers {
        return false;
    }
    match old.state(now) {
        SilenceState::Active => old.starts_at / 1000 == new.starts_at / 1000 && new.ends_at >= now,
        SilenceState::Pending => new.starts_at >= now,
        SilenceState::Expired => false,
    }
}

impl Silences {
    /// Creates or updates a silence at `now`; returns its ID (a new one
    /// when the change could not be made in place). A start in the past is
    /// moved to now for new silences, as Alertmanager does.
    pub fn set(&mut self, mut s: Silence, now: i64) -> Result<String, SilenceError> {
        if s.starts_at == 0 {
            s.starts_at = now;
        }
        validate(&s)?;
        let prev = if s.id.is_empty() {
            None
        } else {
            Some(
                self.by_id
                    .get(&s.id)
                    .cloned()
                    .ok_or_else(|| SilenceError::NotFound(s.id.clone()))?,
            )
        };
        if let Some(p) = &prev {
            if can_update(p, &s, now) {
                s.updated_at = now;
                let id = s.id.clone();
                self.by_id.insert(id.clone(), s);
                self.version += 1;
                return Ok(id);
            }
            if p.state(now) != SilenceState::Expired {
                self.expire(&p.id, now)?;
            }
        }
        s.id = new_uuid();
        s.starts_at = s.starts_at.max(now);
        s.updated_at = now;
        let id = s.id.clone();
        self.by_id.insert(id.clone(), s);
        self.version += 1;
        Ok(id)
    }

    /// Ends a silence now (a pending one never starts). Expiring an
    /// expired silence does nothing.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let s = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        match s.state(now) {
            SilenceState::Expired => return Ok(()),
            SilenceState::Active => s.ends_at = now,
            SilenceState::Pending => {
                s.starts_at = now;
                s.ends_at = now;
            }
        }
        s.updated_at = now;
        self.version += 1;
        Ok(())
    }

    /// The silence with this ID.
    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// All silences, in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &Silence> {
        self.by_id.values()
    }

    /// Number of silences kept.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when no silences are kept.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The change counter.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// IDs of the active silences that mute `labels`, sorted.
    pub fn mutes(&self, labels: &Labels, now: i64) -> Vec<String> {
        self.by_id
            .values()
            .filter(|s| s.state(now) == SilenceState::Active && s.matches(labels))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Drops silences expired for longer than the retention.
    pub fn gc(&mut self, now: i64, retention_ms: i64) -> usize {
        let before = self.by_id.len();
        self.by_id.retain(|_, s| s.ends_at + retention_ms > now);
        let n = before - self.by_id.len();
        if n > 0 {
            self.version += 1;
        }
        n
    }

    /// Silences changed after `t` (ms), for a peer.
    pub fn changed_since(&self, t: i64) -> Vec<Silence> {
        self.by_id
            .values()
            .filter(|s| s.updated_at > t)
            .cloned()
            .collect()
    }

    /// Takes a peer's version of a silence when it is new here or
    /// changed later than ours (peers converge on the latest change).
    /// Returns whether it was taken.
    pub fn merge(&mut self, s: Silence) -> bool {
        if self
            .by_id
            .get(&s.id)
            .is_some_and(|mine| mine.updated_at >= s.updated_at)
            || s.id.is_empty()
        {
            return false;
        }
        self.by_id.insert(s.id.clone(), s);
        self.version += 1;
        true
    }

    /// The set as the state file keeps it: one record per silence.
    pub fn to_json(&self) -> Vec<u8> {
        crate::model::records::to_json_records(self.by_id.values().map(StoredSilence::from))
    }

    /// Reads a state file written by [`to_json`](Self::to_json) (or the
    /// older one-document form); damaged records are skipped and
    /// returned.
    pub fn from_json(b: &[u8]) -> Result<(Silences, Vec<crate::model::RecordDamage>), String> {
        let (stored, mut damage) = match crate::model::records::json_records::<StoredSilence>(b) {
            Some(r) => r,
            None => {
                let f: SilenceFile = serde_json::from_slice(b).map_err(|e| e.to_string())?;
                if f.version != 1 {
                    return Err(format!("unknown silence file version {}", f.version));
                }
                (f.silences, Vec::new())
            }
        };
        let mut by_id = BTreeMap::new();
        for s in stored {
            match s.into_silence() {
                Ok(s) => {
                    by_id.insert(s.id.clone(), s);
                }
                Err(e) => damage.push(crate::model::RecordDamage {
                    offset: 0,
                    reason: e,
                }),
            }
        }
        Ok((Silences { by_id, version: 0 }, damage))
    }
}

/// A matcher as the API and the state file write it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ApiMatcher {
    /// `=`/`=~` (true) or `!=`/`!~` (false); absent means true.
    #[serde(rename = "isEqual", default = "yes")]
    pub is_equal: bool,
    /// Regex match.
    #[serde(rename = "isRegex")]
    pub is_regex: bool,
    /// Label name.
    pub name: String,
    /// Value or pattern.
    pub value: String,
}

fn yes() -> bool {
    true
}

impl ApiMatcher {
    /// The matcher, with its regex compiled.
    pub fn to_matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_equal, self.is_regex) {
            (true, false) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (false, true) => MatchOp::NotRegex,
        };
        Matcher::new(op, &self.name, &self.value).map_err(|e| e.to_string())
    }
}

impl From<&Matcher> for ApiMatcher {
    fn from(m: &Matcher) -> Self {
        ApiMatcher {
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            name: m.name.clone(),
            value: m.value.clone(),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct SilenceFile {
    version: u32,
    silences: Vec<StoredSilence>,
}

/// A silence as state files and peer heartbeats carry it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredSilence {
    id: String,
    matchers: Vec<ApiMatcher>,
    starts_at: i64,
    ends_at: i64,
    updated_at: i64,
    created_by: String,
    comment: String,
}

impl From<&Silence> for StoredSilence {
    fn from(s: &Silence) -> Self {
        StoredSilence {
            id: s.id.clone(),
            matchers: s.matchers.iter().map(ApiMatcher::from).collect(),
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            updated_at: s.updated_at,
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
        }
    }
}

impl StoredSilence {
    /// The silence, or why its matchers are invalid.
    pub fn into_silence(self) -> Result<Silence, String> {
        Ok(Silence {
            matchers: self
                .matchers
                .iter()
                .map(ApiMatcher::to_matcher)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("silence {}: {e}", self.id))?,
            id: self.id,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            updated_at: self.updated_at,
            created_by: self.created_by,
            comment: self.comment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sil(m: &str, start: i64, end: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: crate::notify::parse_matchers(m).unwrap(),
            starts_at: start,
            ends_at: end,
            updated_at: 0,
            created_by: "me".into(),
            comment: "c".into(),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())))
    }

    #[test]
    fn states_muting_and_history_preserving_updates() {
        let mut s = Silences::default();
        let id = s.set(sil("alertname=A", 0, 10_000), 1_000).unwrap();
        // A start in the past moves to now.
        assert_eq!(s.get(&id).unwrap().starts_at, 1_000);
        let a = labels(&[("alertname", "A"), ("x", "1")]);
        assert_eq!(s.mutes(&a, 5_000), vec![id.clone()]);
        assert!(s.mutes(&labels(&[("alertname", "B")]), 5_000).is_empty());
        assert!(s.mutes(&a, 10_000).is_empty(), "ends_at is exclusive");

        // Extending an active silence updates it in place.
        let mut ext = s.get(&id).unwrap().clone();
        ext.ends_at = 20_000;
        assert_eq!(s.set(ext, 5_000).unwrap(), id);
        // Changing its matchers expires it and creates another.
        let mut changed = s.get(&id).unwrap().clone();
        changed.matchers = crate::notify::parse_matchers("alertname=~A|B").unwrap();
        let id2 = s.set(changed, 6_000).unwrap();
        assert_ne!(id2, id);
        assert_eq!(s.get(&id).unwrap().state(6_000), SilenceState::Expired);
        assert_eq!(s.get(&id2).unwrap().state(6_000), SilenceState::Active);

        // Expiring a pending silence ends it before it starts.
        let p = s.set(sil("alertname=C", 50_000, 60_000), 6_000).unwrap();
        assert_eq!(s.get(&p).unwrap().state(6_000), SilenceState::Pending);
        s.expire(&p, 7_000).unwrap();
        assert_eq!(s.get(&p).unwrap().state(7_000), SilenceState::Expired);
        assert_eq!(
            s.expire("nope", 7_000),
            Err(SilenceError::NotFound("nope".into()))
        );

        // Kept through the retention, then collected.
        assert_eq!(s.gc(7_000 + SILENCE_RETENTION_MS, SILENCE_RETENTION_MS), 2);
        assert_eq!(s.len(), 1);

        let (back, damage) = Silences::from_json(&s.to_json()).unwrap();
        assert!(damage.is_empty());
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            s.iter().collect::<Vec<_>>()
        );
        // The older one-document form still reads.
        let legacy = br#"{"version":1,"silences":[]}"#;
        assert_eq!(Silences::from_json(legacy).unwrap().0.len(), 0);
    }

    #[test]
    fn invalid_silences_are_refused_with_the_reason() {
        let mut s = Silences::default();
        let e = s.set(sil("a=~.*", 0, 10), 0).unwrap_err();
        assert!(
            e.to_string().contains("must not match the empty string"),
            "{e}"
        );
        let e = s.set(sil("a=b", 10, 5), 0).unwrap_err();
        assert!(e.to_string().contains("end time"), "{e}");
        let mut unknown = sil("a=b", 0, 10);
        unknown.id = "x".into();
        assert_eq!(s.set(unknown, 0), Err(SilenceError::NotFound("x".into())));
        let id = new_uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_uuid(), id);
    }
}
