//! The in-memory head: series index, postings and per-series chunks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::chunk::{FrozenChunk, SAMPLES_PER_CHUNK, XorChunk};
use super::postings;
use super::{AppendOutcome, Appender, Queryable, SeriesRef, SeriesSamples, StorageError};
use crate::model::{Label, Labels, MatchOp, Matcher, Sample, Timestamp};

/// Counters the head keeps about itself, read by telemetry.
#[derive(Debug, Default)]
pub struct HeadStats {
    /// Samples committed.
    pub samples_appended: AtomicU64,
    /// Samples rejected as out of order.
    pub out_of_order: AtomicU64,
    /// Samples rejected as duplicates with another value.
    pub duplicate: AtomicU64,
    /// Samples rejected as older than retention.
    pub out_of_bounds: AtomicU64,
    /// Series ever created.
    pub series_created: AtomicU64,
    /// Series removed by retention.
    pub series_removed: AtomicU64,
}

/// Chunks of one series. The head chunk takes appends; full chunks are frozen.
#[derive(Debug)]
pub(crate) struct SeriesData {
    pub(crate) frozen: Vec<FrozenChunk>,
    pub(crate) head: XorChunk,
    /// Set when retention removed the series from the index, so appenders
    /// holding its handle re-resolve instead of writing into the void.
    pub(crate) removed: bool,
}

impl SeriesData {
    fn last(&self) -> Option<(i64, u64)> {
        if self.head.is_empty() {
            let f = self.frozen.last()?;
            let (t, v) = f.iter().last()?;
            Some((t, v.to_bits()))
        } else {
            let t = self.head.max_t();
            let v = self.head.iter().last().map(|s| s.1.to_bits())?;
            Some((t, v))
        }
    }

    fn min_t(&self) -> Option<i64> {
        self.frozen
            .first()
            .map(|c| c.min_t)
            .or_else(|| (!self.head.is_empty()).then(|| self.head.min_t()))
    }

    fn max_t(&self) -> Option<i64> {
        if !self.head.is_empty() {
            Some(self.head.max_t())
        } else {
            self.frozen.last().map(|c| c.max_t)
        }
    }

    fn samples(&self, mint: i64, maxt: i64, out: &mut Vec<Sample>) {
        for c in &self.frozen {
            if c.max_t < mint || c.min_t > maxt {
                continue;
            }
            out.extend(
                c.iter()
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .map(|(t, v)| Sample { t, v }),
            );
        }
        if !self.head.is_empty() && self.head.max_t() >= mint && self.head.min_t() <= maxt {
            out.extend(
                self.head
                    .iter()
                    .filter(|(t, _)| *t >= mint && *t <= maxt)
                    .map(|(t, v)| Sample { t, v }),
            );
        }
    }
}

/// One series in the head.
#[derive(Debug)]
pub struct MemSeries {
    pub(crate) id: u32,
    pub(crate) labels: Labels,
    pub(crate) data: Mutex<SeriesData>,
    /// Newest timestamp, readable without the lock for cheap range checks.
    last_t: AtomicI64,
    /// Bits of the newest value, for duplicate detection without decoding.
    last_v: AtomicU64,
}

impl MemSeries {
    fn new(id: u32, labels: Labels) -> Self {
        MemSeries {
            id,
            labels,
            data: Mutex::new(SeriesData {
                frozen: Vec::new(),
                head: XorChunk::new(),
                removed: false,
            }),
            last_t: AtomicI64::new(i64::MIN),
            last_v: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesData> {
        // A panic while holding the lock cannot leave chunks half-written in
        // a way later appends would misread, so poisoning is ignored.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one sample with Prometheus's ordering rules.
    fn append(&self, t: i64, v: f64, min_valid: i64) -> Result<bool, StorageError> {
        let mut d = self.lock();
        if d.removed {
            return Err(StorageError::UnknownRef);
        }
        if t < min_valid {
            return Err(StorageError::OutOfBounds);
        }
        let last_t = self.last_t.load(Ordering::Relaxed);
        if t < last_t {
            return Err(StorageError::OutOfOrder);
        }
        if t == last_t {
            if self.last_v.load(Ordering::Relaxed) == v.to_bits() {
                return Ok(false);
            }
            return Err(StorageError::DuplicateTimestamp);
        }
        if d.head.len() >= SAMPLES_PER_CHUNK {
            let full = std::mem::replace(&mut d.head, XorChunk::new());
            d.frozen.push(full.freeze());
        }
        d.head.append(t, v);
        self.last_t.store(t, Ordering::Relaxed);
        self.last_v.store(v.to_bits(), Ordering::Relaxed);
        Ok(true)
    }

    pub(crate) fn restore(&self, frozen: Vec<FrozenChunk>, head: XorChunk) {
        let mut d = self.lock();
        d.frozen = frozen;
        d.head = head;
        if let Some((t, v)) = d.last() {
            self.last_t.store(t, Ordering::Relaxed);
            self.last_v.store(v, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Index {
    series: HashMap<u32, Arc<MemSeries>>,
    /// Label-set hash to series; collisions spill into `collisions`.
    by_hash: HashMap<u64, u32>,
    collisions: HashMap<u64, Vec<u32>>,
    /// name → value → sorted series ids. Keys double as the string intern table.
    postings: HashMap<Arc<str>, HashMap<Arc<str>, Vec<u32>>>,
    /// Every live id, sorted.
    all: Vec<u32>,
    next_id: u32,
}

impl Index {
    fn lookup(&self, labels: &Labels, hash: u64) -> Option<&Arc<MemSeries>> {
        if let Some(id) = self.by_hash.get(&hash) {
            let s = self.series.get(id)?;
            if &s.labels == labels {
                return Some(s);
            }
        }
        self.collisions
            .get(&hash)?
            .iter()
            .filter_map(|id| self.series.get(id))
            .find(|s| &s.labels == labels)
    }

    fn intern(&mut self, l: &Label) -> Label {
        let name = match self.postings.get_key_value(&l.name) {
            Some((k, _)) => k.clone(),
            None => {
                self.postings.insert(l.name.clone(), HashMap::new());
                l.name.clone()
            }
        };
        let value = self
            .postings
            .get(&name)
            .and_then(|m| m.get_key_value(&l.value))
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| l.value.clone());
        Label { name, value }
    }

    fn create(&mut self, labels: &Labels, hash: u64) -> Arc<MemSeries> {
        let interned: Vec<Label> = labels.iter().map(|l| self.intern(l)).collect();
        let labels = Labels::from_sorted(interned);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let s = Arc::new(MemSeries::new(id, labels));
        for l in s.labels.iter() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(id);
        }
        self.all.push(id);
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.entry(hash).or_default().push(id);
            }
        }
        self.series.insert(id, s.clone());
        s
    }

    /// Ids of series matching every matcher, sorted.
    fn matching(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut result: Option<Vec<u32>> = None;
        let mut subtract: Vec<Vec<u32>> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                // Series lacking the label match; exclude those whose value fails.
                let Some(values) = self.postings.get(m.name.as_str()) else {
                    continue;
                };
                let lists: Vec<&[u32]> = values
                    .iter()
                    .filter(|(v, _)| !m.matches(v))
                    .map(|(_, ids)| ids.as_slice())
                    .collect();
                subtract.push(postings::union(lists));
            } else {
                let list = match (m.op, self.postings.get(m.name.as_str())) {
                    (_, None) => Vec::new(),
                    (MatchOp::Equal, Some(values)) => {
                        values.get(m.value.as_str()).cloned().unwrap_or_default()
                    }
                    (_, Some(values)) => postings::union(
                        values
                            .iter()
                            .filter(|(v, _)| m.matches(v))
                            .map(|(_, ids)| ids.as_slice())
                            .collect(),
                    ),
                };
                result = Some(match result {
                    None => list,
                    Some(r) => postings::intersect(&r, &list),
                });
            }
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Vec::new();
            }
        }
        let mut ids = result.unwrap_or_else(|| self.all.clone());
        for s in &subtract {
            ids = postings::subtract(&ids, s);
        }
        ids
    }

    fn remove(&mut self, ids: &[u32]) {
        if ids.is_empty() {
            return;
        }
        let mut gone = ids.to_vec();
        gone.sort_unstable();
        for id in &gone {
            if let Some(s) = self.series.remove(id) {
                let h = s.labels.stable_hash();
                if self.by_hash.get(&h) == Some(id) {
                    self.by_hash.remove(&h);
                    // Promote a colliding series, if any, to the primary slot.
                    if let Some(c) = self.collisions.get_mut(&h) {
                        if let Some(next) = c.pop() {
                            self.by_hash.insert(h, next);
                        }
                        if c.is_empty() {
                            self.collisions.remove(&h);
                        }
                    }
                } else if let Some(c) = self.collisions.get_mut(&h) {
                    c.retain(|x| x != id);
                    if c.is_empty() {
                        self.collisions.remove(&h);
                    }
                }
            }
        }
        self.all = postings::subtract(&self.all, &gone);
        for values in self.postings.values_mut() {
            for ids in values.values_mut() {
                if ids.iter().any(|i| gone.binary_search(i).is_ok()) {
                    *ids = postings::subtract(ids, &gone);
                }
            }
            values.retain(|_, ids| !ids.is_empty());
        }
        self.postings.retain(|_, v| !v.is_empty());
    }
}

/// The in-memory head block.
pub struct Head {
    index: RwLock<Index>,
    /// Samples older than this are refused (retention boundary).
    min_valid_t: AtomicI64,
    /// Counters for telemetry.
    pub stats: HeadStats,
}

impl Default for Head {
    fn default() -> Self {
        Head::new()
    }
}

impl Head {
    /// An empty head.
    pub fn new() -> Self {
        Head {
            index: RwLock::new(Index::default()),
            min_valid_t: AtomicI64::new(i64::MIN),
            stats: HeadStats::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of live series.
    pub fn num_series(&self) -> usize {
        self.read().series.len()
    }

    /// A transactional appender.
    pub fn appender(self: &Arc<Self>) -> HeadAppender {
        HeadAppender {
            head: self.clone(),
            pending: Vec::new(),
        }
    }

    /// The series for `labels`, created if new.
    pub(crate) fn get_or_create(&self, labels: &Labels) -> Result<Arc<MemSeries>, StorageError> {
        if labels.is_empty() {
            return Err(StorageError::InvalidSeries {
                labels: labels.clone(),
                reason: "empty label set",
            });
        }
        let hash = labels.stable_hash();
        if let Some(s) = self.read().lookup(labels, hash) {
            return Ok(s.clone());
        }
        let mut idx = self.write();
        if let Some(s) = idx.lookup(labels, hash) {
            return Ok(s.clone());
        }
        self.stats.series_created.fetch_add(1, Ordering::Relaxed);
        Ok(idx.create(labels, hash))
    }

    fn by_id(&self, id: u64) -> Option<Arc<MemSeries>> {
        u32::try_from(id)
            .ok()
            .and_then(|id| self.read().series.get(&id).cloned())
    }

    /// All live series handles, for snapshots.
    pub(crate) fn all_series(&self) -> Vec<Arc<MemSeries>> {
        let idx = self.read();
        idx.all
            .iter()
            .filter_map(|id| idx.series.get(id).cloned())
            .collect()
    }

    fn matching_series(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let idx = self.read();
        idx.matching(matchers)
            .iter()
            .filter_map(|id| idx.series.get(id).cloned())
            .collect()
    }

    /// Drops samples before `min_t` and series left with none; returns the
    /// number of series removed. Later appends before `min_t` are refused.
    pub fn truncate(&self, min_t: Timestamp) -> usize {
        self.min_valid_t.fetch_max(min_t, Ordering::Relaxed);
        let mut empty = Vec::new();
        for s in self.all_series() {
            let mut d = s.lock();
            d.frozen.retain(|c| c.max_t >= min_t);
            if !d.head.is_empty() && d.head.max_t() < min_t {
                d.head = XorChunk::new();
            }
            if d.frozen.is_empty() && d.head.is_empty() {
                d.removed = true;
                empty.push(s.id);
            }
        }
        let n = empty.len();
        if n > 0 {
            self.write().remove(&empty);
            self.stats
                .series_removed
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        n
    }

    /// Approximate heap bytes held by chunk data (encoded samples).
    pub fn chunk_bytes(&self) -> usize {
        self.all_series()
            .iter()
            .map(|s| {
                let d = s.lock();
                d.head.heap_size() + d.frozen.iter().map(|c| c.bytes.len()).sum::<usize>()
            })
            .sum()
    }

    /// Total samples held.
    pub fn num_samples(&self) -> usize {
        self.all_series()
            .iter()
            .map(|s| {
                let d = s.lock();
                d.head.len() as usize + d.frozen.iter().map(|c| c.count as usize).sum::<usize>()
            })
            .sum()
    }

    fn in_range(s: &MemSeries, mint: i64, maxt: i64) -> bool {
        let d = s.lock();
        matches!((d.min_t(), d.max_t()), (Some(a), Some(b)) if a <= maxt && b >= mint)
    }
}

impl Queryable for Head {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        for s in self.matching_series(matchers) {
            let mut samples = Vec::new();
            s.lock().samples(mint, maxt, &mut samples);
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: s.labels.clone(),
                    samples,
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .matching_series(matchers)
            .into_iter()
            .filter(|s| Head::in_range(s, mint, maxt))
            .map(|s| s.labels.clone())
            .collect();
        out.sort();
        out
    }

    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String> {
        let mut names = std::collections::BTreeSet::new();
        for l in self.series(matchers, mint, maxt) {
            for x in l.iter() {
                if !names.contains(&*x.name) {
                    names.insert(x.name.to_string());
                }
            }
        }
        names.into_iter().collect()
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String> {
        let mut values = std::collections::BTreeSet::new();
        for l in self.series(matchers, mint, maxt) {
            if let Some(v) = l.get(name) {
                if !values.contains(v) {
                    values.insert(v.to_string());
                }
            }
        }
        values.into_iter().collect()
    }
}

/// The head's [`Appender`].
pub struct HeadAppender {
    head: Arc<Head>,
    pending: Vec<(Arc<MemSeries>, Timestamp, f64)>,
}

impl Appender for HeadAppender {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, StorageError> {
        let s = self.head.get_or_create(labels)?;
        let r = SeriesRef(u64::from(s.id));
        self.pending.push((s, t, v));
        Ok(r)
    }

    fn append_ref(&mut self, r: SeriesRef, t: Timestamp, v: f64) -> Result<(), StorageError> {
        let s = self.head.by_id(r.0).ok_or(StorageError::UnknownRef)?;
        self.pending.push((s, t, v));
        Ok(())
    }

    fn commit(&mut self) -> AppendOutcome {
        let mut out = AppendOutcome::default();
        let min_valid = self.head.min_valid_t.load(Ordering::Relaxed);
        for (s, t, v) in self.pending.drain(..) {
            let res = match s.append(t, v, min_valid) {
                // Retention removed the series between append and commit:
                // recreate it so the sample is not lost.
                Err(StorageError::UnknownRef) => self
                    .head
                    .get_or_create(&s.labels)
                    .and_then(|s2| s2.append(t, v, min_valid)),
                r => r,
            };
            match res {
                Ok(true) => out.appended += 1,
                Ok(false) => {}
                Err(StorageError::OutOfOrder) => out.out_of_order += 1,
                Err(StorageError::DuplicateTimestamp) => out.duplicate += 1,
                Err(_) => out.out_of_bounds += 1,
            }
        }
        let st = &self.head.stats;
        st.samples_appended
            .fetch_add(out.appended, Ordering::Relaxed);
        st.out_of_order
            .fetch_add(out.out_of_order, Ordering::Relaxed);
        st.duplicate.fetch_add(out.duplicate, Ordering::Relaxed);
        st.out_of_bounds
            .fetch_add(out.out_of_bounds, Ordering::Relaxed);
        out
    }

    fn rollback(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    fn head_with(series: &[Labels]) -> Arc<Head> {
        let h = Arc::new(Head::new());
        let mut a = h.appender();
        for (i, s) in series.iter().enumerate() {
            a.append(s, 1000, i as f64).unwrap();
        }
        a.commit();
        h
    }

    #[test]
    fn matchers_use_postings_with_prometheus_semantics() {
        let s = [
            l(&[("__name__", "up"), ("job", "a"), ("env", "prod")]),
            l(&[("__name__", "up"), ("job", "b")]),
            l(&[("__name__", "x"), ("job", "a"), ("env", "dev")]),
        ];
        let h = head_with(&s);
        let names = |ms: &[Matcher]| -> Vec<String> {
            h.series(ms, 0, 2000)
                .iter()
                .map(|x| x.to_string())
                .collect()
        };
        assert_eq!(names(&[m(MatchOp::Equal, "__name__", "up")]).len(), 2);
        // `env=""` selects the series without env.
        assert_eq!(
            names(&[m(MatchOp::Equal, "env", "")]),
            vec!["up{job=\"b\"}"]
        );
        assert_eq!(names(&[m(MatchOp::NotEqual, "env", "prod")]).len(), 2);
        assert_eq!(names(&[m(MatchOp::Regex, "env", "p.*")]).len(), 1);
        assert_eq!(names(&[m(MatchOp::NotRegex, "job", "a|b")]).len(), 0);
        assert_eq!(
            names(&[
                m(MatchOp::Regex, "job", ".*"),
                m(MatchOp::NotEqual, "__name__", "up")
            ])
            .len(),
            1
        );
        assert_eq!(h.label_values("env", &[], 0, 2000), vec!["dev", "prod"]);
        assert_eq!(
            h.label_names(&[m(MatchOp::Equal, "job", "b")], 0, 2000),
            vec!["__name__", "job"]
        );
        // Out of range.
        assert!(h.series(&[], 5000, 6000).is_empty());
    }

    #[test]
    fn ordering_rules() {
        let h = Arc::new(Head::new());
        let s = l(&[("__name__", "a")]);
        let mut a = h.appender();
        let r = a.append(&s, 10, 1.0).unwrap();
        a.append_ref(r, 20, 2.0).unwrap();
        a.append_ref(r, 20, 2.0).unwrap(); // identical duplicate: ignored
        a.append_ref(r, 20, 3.0).unwrap(); // different value: rejected
        a.append_ref(r, 15, 3.0).unwrap(); // out of order
        let o = a.commit();
        assert_eq!(
            o,
            AppendOutcome {
                appended: 2,
                out_of_order: 1,
                duplicate: 1,
                out_of_bounds: 0
            }
        );
        let mut a = h.appender();
        a.append_ref(r, 30, 9.0).unwrap();
        a.rollback();
        assert_eq!(a.commit(), AppendOutcome::default());
        let got = h.select(&[m(MatchOp::Equal, "__name__", "a")], 0, 100);
        assert_eq!(
            got[0].samples,
            vec![Sample { t: 10, v: 1.0 }, Sample { t: 20, v: 2.0 }]
        );
    }

    #[test]
    fn chunks_cut_and_retention_frees_series() {
        let h = Arc::new(Head::new());
        let a_l = l(&[("__name__", "a")]);
        let b_l = l(&[("__name__", "b")]);
        let mut a = h.appender();
        for i in 0..500 {
            a.append(&a_l, i * 1000, i as f64).unwrap();
        }
        a.append(&b_l, 10, 1.0).unwrap();
        a.commit();
        assert_eq!(h.num_series(), 2);
        assert_eq!(h.num_samples(), 501);
        let removed = h.truncate(250_000);
        assert_eq!(removed, 1);
        assert_eq!(h.num_series(), 1);
        let got = h.select(&[], 0, i64::MAX);
        assert_eq!(got.len(), 1);
        // Whole chunks before the boundary go; the one straddling it stays.
        assert!(got[0].samples[0].t <= 250_000);
        assert_eq!(got[0].samples.last().unwrap().t, 499_000);
        // Appends before the boundary are refused; the removed series comes back new.
        let mut a = h.appender();
        a.append(&b_l, 100, 1.0).unwrap();
        assert_eq!(a.commit().out_of_bounds, 1);
        let mut a = h.appender();
        a.append(&b_l, 600_000, 1.0).unwrap();
        assert_eq!(a.commit().appended, 1);
        assert_eq!(h.num_series(), 2);
    }
}
