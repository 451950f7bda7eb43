//! The in-memory head: a symbol table, series index, postings and
//! per-series chunks.
//!
//! Series keep their labels as pairs of symbol ids (8 bytes a label rather
//! than two shared-string handles), and postings are keyed by symbol ids;
//! `Labels` are rebuilt from the symbol table when a query returns them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::chunk::{Freezer, FrozenChunk, SAMPLES_PER_CHUNK, XorChunk};
use super::chunks::{ChunkFiles, ChunkMeta, Maps};
use super::postings;
use super::rarevec::RareVec;
use super::sealed::SeriesSpan;
use super::wal::{HistogramsRecord, SamplesRecord, SeriesRecord, Wal};
use super::{AppendOutcome, Appender, Queryable, SeriesRef, SeriesSamples, StorageError};
use crate::model::histogram::FloatHistogram;
use crate::model::{FastMap, Label, Labels, MatchOp, Matcher, Sample, Timestamp};

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
    /// Samples dropped because their series reference was no longer valid.
    pub unknown_ref: AtomicU64,
    /// Bytes held by each part of the head, as of the last retention pass
    /// (every minute): see [`HeadMemory`].
    pub memory: [AtomicU64; HeadMemory::PARTS.len()],
}

/// Estimated bytes held by each part of the head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadMemory {
    /// Interned label names and values, with the table's entries.
    pub symbols: u64,
    /// Postings lists and their maps.
    pub postings: u64,
    /// Series structures: handles, label symbol pairs, the by-hash index
    /// and the slab's slots.
    pub series: u64,
    /// Open chunks and full chunks not yet written out.
    pub open_chunks: u64,
    /// Where each full chunk in a chunk file is (24 bytes a chunk).
    pub chunk_refs: u64,
    /// Native histogram samples (kept uncompressed).
    pub histograms: u64,
}

impl HeadMemory {
    /// The parts' names, as `argus_head_memory_bytes{part}` labels them.
    pub const PARTS: [&'static str; 6] = [
        "symbols",
        "postings",
        "series",
        "open_chunks",
        "chunk_refs",
        "histograms",
    ];

    /// The parts in [`HeadMemory::PARTS`] order.
    pub fn values(&self) -> [u64; 6] {
        [
            self.symbols,
            self.postings,
            self.series,
            self.open_chunks,
            self.chunk_refs,
            self.histograms,
        ]
    }
}

/// Chunks of one series. The head chunk takes appends; full chunks are
/// frozen, and with chunk files attached they wait in `frozen` only until
/// the storage thread writes them, then are read from `disk`.
#[derive(Debug)]
pub(crate) struct SeriesData {
    /// What the series has in sealed chunk files (found through their
    /// indexes), all older than `disk`.
    pub(crate) sealed: Sealed,
    /// Full chunks in chunk files not yet indexed, oldest first, all older
    /// than `frozen`.
    pub(crate) disk: RareVec<ChunkMeta>,
    /// Set while the series waits in the chunk files' queue.
    pub(crate) queued: bool,
    pub(crate) frozen: RareVec<FrozenChunk>,
    pub(crate) head: XorChunk,
    /// Set when retention removed the series from the index, so appenders
    /// holding its handle re-resolve instead of writing into the void.
    pub(crate) removed: bool,
    /// Native histogram samples, uncompressed and in time order. Only
    /// recording rules and tests produce them today, so they are few.
    pub(crate) hists: RareVec<(i64, Arc<FloatHistogram>)>,
}

/// The span of time a series' chunks in sealed files cover (retention
/// raises its start), and the generation of the last index that took
/// chunk places from the series: a reader whose maps are older must take
/// newer ones to find them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sealed {
    min_t: i64,
    max_t: i64,
    generation: u32,
}

impl Sealed {
    const NONE: Sealed = Sealed {
        min_t: i64::MAX,
        max_t: i64::MIN,
        generation: 0,
    };

    fn is_empty(&self) -> bool {
        self.min_t > self.max_t
    }

    fn add(&mut self, min_t: i64, max_t: i64, generation: u32) {
        self.min_t = self.min_t.min(min_t);
        self.max_t = self.max_t.max(max_t);
        self.generation = self.generation.max(generation);
    }
}

/// The chunk files' maps as one read holds them, taking newer ones when a
/// series was sealed after they were taken.
pub(crate) struct MapsView<'a> {
    maps: Maps,
    src: Option<&'a Arc<ChunkFiles>>,
}

impl MapsView<'_> {
    fn fresh_for(&mut self, generation: u32) -> &Maps {
        if generation > self.maps.sealed_gen {
            if let Some(c) = self.src {
                self.maps = c.maps();
            }
        }
        &self.maps
    }
}

impl SeriesData {
    /// Newest timestamp and value bits. Chunks are cut lazily on the next
    /// append, so a series with samples always has a non-empty head chunk.
    fn last(&self) -> Option<(i64, u64)> {
        (!self.head.is_empty()).then(|| (self.head.max_t(), self.head.last_value_bits()))
    }

    fn min_t(&self) -> Option<i64> {
        let f = (!self.sealed.is_empty())
            .then_some(self.sealed.min_t)
            .or_else(|| self.disk.first().map(|c| c.min_t))
            .or_else(|| self.frozen.first().map(|c| c.min_t()))
            .or_else(|| (!self.head.is_empty()).then(|| self.head.min_t()));
        let h = self.hists.first().map(|x| x.0);
        match (f, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Newest float timestamp, also when the head chunk is empty (after a
    /// restart whose checkpointed open chunk the chunk files superseded).
    fn max_float_t(&self) -> Option<i64> {
        self.last().map(|l| l.0).or_else(|| {
            let f = self.frozen.last().map(|c| c.max_t());
            f.or_else(|| self.disk.last().map(|c| c.max_t()))
                .or_else(|| (!self.sealed.is_empty()).then_some(self.sealed.max_t))
        })
    }

    fn max_t(&self) -> Option<i64> {
        let f = self.max_float_t();
        let h = self.hists.last().map(|x| x.0);
        f.max(h)
    }

    fn histograms(&self, mint: i64, maxt: i64, out: &mut Vec<(i64, Arc<FloatHistogram>)>) {
        let start = self.hists.partition_point(|x| x.0 < mint);
        out.extend(
            self.hists[start..]
                .iter()
                .take_while(|x| x.0 <= maxt)
                .cloned(),
        );
    }

    /// Appends a histogram sample; a series may mix floats and histograms
    /// but never two samples at one timestamp.
    fn append_histogram(
        &mut self,
        t: i64,
        h: Arc<FloatHistogram>,
        min_valid: i64,
    ) -> Result<bool, StorageError> {
        if self.removed {
            return Err(StorageError::UnknownRef);
        }
        if t < min_valid {
            return Err(StorageError::OutOfBounds);
        }
        if let Some(last_t) = self.max_t() {
            if t < last_t {
                return Err(StorageError::OutOfOrder);
            }
            if t == last_t {
                return match self.hists.last() {
                    Some((lt, lh)) if *lt == t && **lh == *h => Ok(false),
                    _ => Err(StorageError::DuplicateTimestamp),
                };
            }
        }
        let h = self.with_stored_hint(h);
        self.hists.push((t, h));
        Ok(true)
    }

    /// The reset hint a histogram reads back with, as from Prometheus's
    /// TSDB: gauges stay gauges; a histogram that continues a run of
    /// counter histograms without a reset reads `NotReset`; the first of a
    /// run, and one after a reset, read `Unknown` (the TSDB starts a new
    /// chunk there and does not return the chunk's reset hint,
    /// prometheus/prometheus#15346).
    fn with_stored_hint(&self, h: Arc<FloatHistogram>) -> Arc<FloatHistogram> {
        use crate::model::histogram::CounterResetHint as Hint;
        if h.counter_reset_hint == Hint::Gauge {
            return h;
        }
        let prev = self
            .hists
            .last()
            .filter(|(t, p)| {
                p.counter_reset_hint != Hint::Gauge && self.last().is_none_or(|(ft, _)| ft < *t)
            })
            .map(|(_, p)| p);
        let hint = match prev {
            Some(p) if h.counter_reset_hint != Hint::Reset && !h.detect_reset(p) => Hint::NotReset,
            _ => Hint::Unknown,
        };
        if hint == h.counter_reset_hint {
            return h;
        }
        let mut x = (*h).clone();
        x.counter_reset_hint = hint;
        Arc::new(x)
    }

    /// The latest sample in `[mint, maxt]` into `floats` or `hists`: what
    /// an instant selector needs. When `maxt` is at or past the newest
    /// float sample (rule evaluation at "now"), nothing is decoded.
    fn latest(
        &self,
        id: u32,
        maps: &mut MapsView<'_>,
        mint: i64,
        maxt: i64,
        floats: &mut Vec<Sample>,
        hists: &mut Vec<(i64, Arc<FloatHistogram>)>,
    ) {
        let f = match self.last() {
            Some((t, bits)) if t <= maxt => (t >= mint).then(|| Sample {
                t,
                v: f64::from_bits(bits),
            }),
            _ => {
                let mut v = Vec::new();
                self.samples(id, maps, mint, maxt, &mut v);
                v.pop()
            }
        };
        let end = self.hists.partition_point(|x| x.0 <= maxt);
        let h = end
            .checked_sub(1)
            .map(|i| &self.hists[i])
            .filter(|x| x.0 >= mint);
        match (f, h) {
            (Some(f), Some(h)) if h.0 > f.t => hists.push(h.clone()),
            (Some(f), _) => floats.push(f),
            (None, Some(h)) => hists.push(h.clone()),
            (None, None) => {}
        }
    }

    fn samples(
        &self,
        id: u32,
        view: &mut MapsView<'_>,
        mint: i64,
        maxt: i64,
        out: &mut Vec<Sample>,
    ) {
        // Chunks decode from their start; stop at the first sample past
        // `maxt` rather than decoding the rest.
        let mut take = |it: super::chunk::ChunkIter<'_>, n: usize, cmin: i64, cmax: i64| {
            // Room for the part of the chunk inside the range, assuming
            // evenly spaced samples, rather than the whole chunk.
            let span = (cmax - cmin).max(1) as f64;
            let inside = (maxt.min(cmax) - mint.max(cmin)).max(0) as f64;
            out.reserve(((n as f64 * inside / span) as usize + 2).min(n));
            it.for_each_while(|t, v| {
                if t >= mint && t <= maxt {
                    out.push(Sample { t, v });
                }
                t <= maxt
            });
        };
        let sealed = self.sealed;
        if !sealed.is_empty() && sealed.max_t >= mint && sealed.min_t <= maxt {
            let lo = mint.max(sealed.min_t);
            let maps = view.fresh_for(sealed.generation).clone();
            for (n, f) in &maps.files {
                let Some(ix) = &f.index else { continue };
                // A file whose places the series still holds (sealed
                // after these maps were taken) is read through them below.
                if ix.max_t < lo || ix.min_t > maxt || self.disk.iter().any(|m| m.file == *n) {
                    continue;
                }
                for m in ix.chunks_of(id) {
                    if m.max_t() >= lo && m.min_t <= maxt {
                        if let Some(b) = f.stream(&m) {
                            take(
                                super::chunk::iter_stream(b, m.word),
                                m.samples() as usize,
                                m.min_t,
                                m.max_t(),
                            );
                        }
                    }
                }
            }
        }
        let maps = &view.maps;
        for m in &self.disk {
            if m.max_t() >= mint && m.min_t <= maxt {
                // A chunk whose file is gone (removed by retention while
                // this series still named it) reads as empty.
                if let Some(b) = maps.files.get(&m.file).and_then(|f| f.stream(m)) {
                    take(
                        super::chunk::iter_stream(b, m.word),
                        m.samples() as usize,
                        m.min_t,
                        m.max_t(),
                    );
                }
            }
        }
        for c in &self.frozen {
            if c.max_t() >= mint && c.min_t() <= maxt {
                take(c.iter(), c.count() as usize, c.min_t(), c.max_t());
            }
        }
        if !self.head.is_empty() && self.head.max_t() >= mint && self.head.min_t() <= maxt {
            take(
                super::chunk::ChunkIter::Xor(self.head.iter()),
                self.head.len() as usize,
                self.head.min_t(),
                self.head.max_t(),
            );
        }
    }

    /// Appends one sample with Prometheus's ordering rules.
    fn append(
        &mut self,
        t: i64,
        v: f64,
        min_valid: i64,
        freezer: &Freezer,
    ) -> Result<bool, StorageError> {
        if self.removed {
            return Err(StorageError::UnknownRef);
        }
        if t < min_valid {
            return Err(StorageError::OutOfBounds);
        }
        if self.hists.last().is_some_and(|h| h.0 >= t) {
            return Err(if self.hists.last().is_some_and(|h| h.0 == t) {
                StorageError::DuplicateTimestamp
            } else {
                StorageError::OutOfOrder
            });
        }
        if let Some((last_t, last_v)) = self.last() {
            if t < last_t {
                return Err(StorageError::OutOfOrder);
            }
            if t == last_t {
                return if last_v == v.to_bits() {
                    Ok(false)
                } else {
                    Err(StorageError::DuplicateTimestamp)
                };
            }
        } else if let Some(last_t) = self.max_float_t() {
            // The newest samples are in a full chunk (frozen by
            // `freeze_open_chunks`, or written out and the open chunk
            // superseded at a restart).
            if t < last_t {
                return Err(StorageError::OutOfOrder);
            }
            if t == last_t {
                // A chunk still in memory tells the value; one in a file is
                // what the log replays up to its end: already stored.
                let last_v = self.frozen.last().and_then(|c| c.iter().last());
                return match last_v {
                    Some((_, lv)) if lv.to_bits() != v.to_bits() => {
                        Err(StorageError::DuplicateTimestamp)
                    }
                    _ => Ok(false),
                };
            }
        }
        // A chunk file keeps a chunk's time span in 32 bits of
        // milliseconds (49 days): a series sampled that rarely gets a new
        // chunk before that.
        if self.head.len() >= SAMPLES_PER_CHUNK
            || (!self.head.is_empty() && t - self.head.min_t() > i64::from(u32::MAX))
        {
            let full = freezer.cut(&mut self.head);
            // Grow by one: a doubling Vec of chunk handles would cost more
            // per sample than the handles themselves.
            self.frozen.reserve_exact(1);
            self.frozen.push(full);
        }
        self.head.append(t, v);
        Ok(true)
    }
}

/// One series in the head.
#[derive(Debug)]
pub struct MemSeries {
    pub(crate) id: u32,
    /// (name, value) symbol ids, in label-name order.
    syms: Box<[(u32, u32)]>,
    pub(crate) data: Mutex<SeriesData>,
}

impl MemSeries {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SeriesData> {
        // A panic while holding the lock cannot leave chunks half-written in
        // a way later appends would misread, so poisoning is ignored.
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prefetches where the next sample goes, unless another thread
    /// holds the series (then it is in some cache already).
    fn prefetch_open_chunk(&self) {
        if let Ok(d) = self.data.try_lock() {
            crate::model::prefetch(d.head.tail(), 1);
        }
    }

    pub(crate) fn restore(
        &self,
        frozen: Vec<FrozenChunk>,
        head: XorChunk,
        hists: Vec<(i64, Arc<FloatHistogram>)>,
    ) {
        let mut d = self.lock();
        d.frozen = frozen.into();
        d.head = head;
        d.hists = hists.into();
    }
}

/// Interned strings with ids that are recycled once nothing uses them.
#[derive(Default)]
struct Symbols {
    strings: Vec<Arc<str>>,
    ids: FastMap<Arc<str>, u32>,
    free: Vec<u32>,
}

impl Symbols {
    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn intern(&mut self, s: &Arc<str>) -> u32 {
        if let Some(id) = self.ids.get(&**s) {
            return *id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.strings[id as usize] = s.clone();
                id
            }
            None => {
                self.strings.push(s.clone());
                (self.strings.len() - 1) as u32
            }
        };
        self.ids.insert(s.clone(), id);
        id
    }

    fn str(&self, id: u32) -> &Arc<str> {
        &self.strings[id as usize]
    }
}

/// Series by id in pages of 4096 slots. Lookups are an index, and ids
/// that are close (series created together, as one target's are) sit next
/// to each other, so the commit path walks memory nearly in order. Pages
/// whose series are all gone are freed, so id churn does not grow memory.
/// Ids are never reused; at one million new series a day the u32 space
/// lasts for millennia.
#[derive(Default)]
struct Slab {
    pages: Vec<Option<Box<Page>>>,
    len: usize,
}

struct Page {
    items: Vec<Option<Arc<MemSeries>>>,
    live: usize,
}

const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;

impl Slab {
    fn get(&self, id: &u32) -> Option<&Arc<MemSeries>> {
        let p = self.pages.get((*id >> PAGE_BITS) as usize)?.as_ref()?;
        p.items[*id as usize & (PAGE - 1)].as_ref()
    }

    /// Prefetches the slot of `id` (not the series it points to): series
    /// created by concurrent scrapes get interleaved ids, so a target's
    /// slots are scattered and each is a miss of its own, which would
    /// stall the prefetch of the series itself were it not loaded early.
    fn prefetch_slot(&self, id: u32) {
        if let Some(Some(p)) = self.pages.get((id >> PAGE_BITS) as usize) {
            crate::model::prefetch(p.items.as_ptr().wrapping_add(id as usize & (PAGE - 1)), 1);
        }
    }

    fn insert(&mut self, id: u32, s: Arc<MemSeries>) {
        let pi = (id >> PAGE_BITS) as usize;
        if self.pages.len() <= pi {
            self.pages.resize_with(pi + 1, || None);
        }
        let page = self.pages[pi].get_or_insert_with(|| {
            Box::new(Page {
                items: vec![None; PAGE],
                live: 0,
            })
        });
        if page.items[id as usize & (PAGE - 1)].replace(s).is_none() {
            page.live += 1;
            self.len += 1;
        }
    }

    fn remove(&mut self, id: &u32) -> Option<Arc<MemSeries>> {
        let pi = (*id >> PAGE_BITS) as usize;
        let page = self.pages.get_mut(pi)?.as_mut()?;
        let s = page.items[*id as usize & (PAGE - 1)].take()?;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages[pi] = None;
        }
        Some(s)
    }

    /// Live series in id order.
    fn values(&self) -> impl Iterator<Item = &Arc<MemSeries>> {
        self.pages
            .iter()
            .flatten()
            .flat_map(|p| p.items.iter().flatten())
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[derive(Default)]
struct Index {
    symbols: Symbols,
    series: Slab,
    /// Label-set hash to series; collisions spill into `collisions`.
    by_hash: FastMap<u64, u32>,
    collisions: HashMap<u64, Vec<u32>>,
    /// name id → value id → sorted series ids.
    postings: FastMap<u32, FastMap<u32, Vec<u32>>>,
    next_id: u32,
}

impl Index {
    fn labels_of(&self, s: &MemSeries) -> Labels {
        Labels::from_sorted(
            s.syms
                .iter()
                .map(|(n, v)| Label {
                    name: self.symbols.str(*n).clone(),
                    value: self.symbols.str(*v).clone(),
                })
                .collect(),
        )
    }

    fn hash_of(&self, s: &MemSeries) -> u64 {
        self.labels_of(s).stable_hash()
    }

    fn same(&self, s: &MemSeries, labels: &Labels) -> bool {
        s.syms.len() == labels.len()
            && s.syms.iter().zip(labels.iter()).all(|((n, v), l)| {
                **self.symbols.str(*n) == *l.name && **self.symbols.str(*v) == *l.value
            })
    }

    fn lookup(&self, labels: &Labels, hash: u64) -> Option<&Arc<MemSeries>> {
        if let Some(s) = self.by_hash.get(&hash).and_then(|id| self.series.get(id)) {
            if self.same(s, labels) {
                return Some(s);
            }
        }
        self.collisions
            .get(&hash)?
            .iter()
            .filter_map(|id| self.series.get(id))
            .find(|s| self.same(s, labels))
    }

    fn create(&mut self, labels: &Labels, hash: u64) -> Arc<MemSeries> {
        let id = self.next_id;
        self.create_as(labels, hash, id)
    }

    /// Creates the series with id `id`, which the caller knows is free;
    /// later series are numbered after it.
    fn create_as(&mut self, labels: &Labels, hash: u64, id: u32) -> Arc<MemSeries> {
        let syms: Box<[(u32, u32)]> = labels
            .iter()
            .map(|l| (self.symbols.intern(&l.name), self.symbols.intern(&l.value)))
            .collect();
        self.next_id = self.next_id.max(id.wrapping_add(1));
        for (n, v) in syms.iter() {
            self.postings
                .entry(*n)
                .or_default()
                .entry(*v)
                .or_default()
                .push(id);
        }
        let s = Arc::new(MemSeries {
            id,
            syms,
            data: Mutex::new(SeriesData {
                sealed: Sealed::NONE,
                disk: RareVec::default(),
                queued: false,
                frozen: RareVec::default(),
                head: XorChunk::new(),
                removed: false,
                hists: RareVec::default(),
            }),
        });
        if let std::collections::hash_map::Entry::Vacant(e) = self.by_hash.entry(hash) {
            e.insert(id);
        } else {
            self.collisions.entry(hash).or_default().push(id);
        }
        self.series.insert(id, s.clone());
        s
    }

    /// Adds the index's parts to `m`: estimates from lengths and
    /// capacities, with a hash map entry counted as its key and value plus
    /// one control byte.
    fn measure(&self, m: &mut HeadMemory) {
        use std::mem::size_of;
        let arc_str = |s: &Arc<str>| 16 + s.len();
        m.symbols = (self.symbols.strings.iter().map(arc_str).sum::<usize>()
            + self.symbols.strings.capacity() * size_of::<Arc<str>>()
            + self.symbols.ids.capacity() * (size_of::<Arc<str>>() + 4 + 1)
            + self.symbols.free.capacity() * 4) as u64;
        let mut p = self.postings.capacity() * (4 + size_of::<FastMap<u32, Vec<u32>>>() + 1);
        for values in self.postings.values() {
            p += values.capacity() * (4 + size_of::<Vec<u32>>() + 1);
            p += values.values().map(|ids| ids.capacity() * 4).sum::<usize>();
        }
        m.postings = p as u64;
        let per_series = size_of::<MemSeries>() + 16 + size_of::<Arc<MemSeries>>();
        m.series = (self
            .series
            .values()
            .map(|s| per_series + s.syms.len() * 8)
            .sum::<usize>()
            + self.series.pages.iter().flatten().count()
                * PAGE
                * size_of::<Option<Arc<MemSeries>>>()
            + self.by_hash.capacity() * (8 + 4 + 1)
            + self.collisions.len() * (8 + 24)) as u64;
    }

    /// Ids of series matching every matcher, sorted.
    fn matching(&self, matchers: &[Matcher]) -> Vec<u32> {
        let mut result: Option<Vec<u32>> = None;
        let mut subtract: Vec<Vec<u32>> = Vec::new();
        for m in matchers {
            let values = self
                .symbols
                .get(&m.name)
                .and_then(|n| self.postings.get(&n));
            if m.matches_empty() {
                // Series lacking the label match; exclude those whose value fails.
                let Some(values) = values else { continue };
                let lists = values
                    .iter()
                    .filter(|(v, _)| !m.matches(self.symbols.str(**v)))
                    .map(|(_, ids)| ids.as_slice())
                    .collect();
                subtract.push(postings::union(lists));
            } else {
                let list = match (m.op, values) {
                    (_, None) => Vec::new(),
                    (MatchOp::Equal, Some(values)) => self
                        .symbols
                        .get(&m.value)
                        .and_then(|v| values.get(&v))
                        .cloned()
                        .unwrap_or_default(),
                    (_, Some(values)) => postings::union(
                        values
                            .iter()
                            .filter(|(v, _)| m.matches(self.symbols.str(**v)))
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
        let mut ids = result.unwrap_or_else(|| self.series.values().map(|s| s.id).collect());
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
            let Some(s) = self.series.remove(id) else {
                continue;
            };
            let h = self.hash_of(&s);
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
        for values in self.postings.values_mut() {
            for ids in values.values_mut() {
                if ids.iter().any(|i| gone.binary_search(i).is_ok()) {
                    *ids = postings::subtract(ids, &gone);
                }
            }
            values.retain(|_, ids| !ids.is_empty());
        }
        self.postings.retain(|_, v| !v.is_empty());
        // Recycle symbols no live series uses, so label churn (pod names,
        // deploy hashes) does not grow the table forever.
        let mut used = vec![false; self.symbols.strings.len()];
        for s in self.series.values() {
            for (n, v) in s.syms.iter() {
                used[*n as usize] = true;
                used[*v as usize] = true;
            }
        }
        let free: std::collections::HashSet<u32> = self.symbols.free.iter().copied().collect();
        for (i, u) in used.iter().enumerate() {
            let i = i as u32;
            if !u && !free.contains(&i) {
                let s = std::mem::replace(&mut self.symbols.strings[i as usize], Arc::from(""));
                self.symbols.ids.remove(&s);
                self.symbols.free.push(i);
            }
        }
    }
}

/// The in-memory head block.
pub struct Head {
    index: RwLock<Index>,
    /// The log new series and committed samples go to, once attached.
    wal: std::sync::OnceLock<Arc<Wal>>,
    /// The files full chunks are written to, once attached.
    chunks: std::sync::OnceLock<Arc<ChunkFiles>>,
    /// Samples older than this are refused (retention boundary).
    min_valid_t: AtomicI64,
    /// Where cut chunks wait for the chunk files.
    freezer: Freezer,
    /// Appenders' sample buffers between uses. A scrape's buffer is about
    /// 50 bytes a sample, often past the allocator's threshold for mapping
    /// memory: allocated and freed at every scrape of every target, such
    /// buffers leave the allocator's arenas fragmented (and cost a map and
    /// unmap each where the threshold is fixed).
    pending_pool: Mutex<Vec<PendingBuf>>,
    /// Counters for telemetry.
    pub stats: HeadStats,
}

type PendingBuf = Vec<(Pending, Timestamp, PendingValue)>;

/// Buffers the pool keeps: about as many as commits run at once.
const PENDING_POOL: usize = 8;
/// A buffer larger than this many samples is freed, not kept.
const PENDING_KEEP: usize = 1 << 16;

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
            wal: std::sync::OnceLock::new(),
            chunks: std::sync::OnceLock::new(),
            min_valid_t: AtomicI64::new(i64::MIN),
            freezer: Freezer::default(),
            pending_pool: Mutex::new(Vec::new()),
            stats: HeadStats::default(),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The id the next new series gets.
    pub fn next_id(&self) -> u32 {
        self.read().next_id
    }

    /// Makes sure new series get ids from `next` on (ids named by files
    /// written earlier are never given to another series).
    pub fn reserve_ids(&self, next: u32) {
        let mut idx = self.write();
        idx.next_id = idx.next_id.max(next);
    }

    /// Number of live series.
    pub fn num_series(&self) -> usize {
        self.read().series.len()
    }

    /// A transactional appender.
    pub fn appender(self: &Arc<Self>) -> HeadAppender {
        self.appender_with_capacity(0)
    }

    /// A transactional appender with room for `n` samples.
    pub fn appender_with_capacity(self: &Arc<Self>, n: usize) -> HeadAppender {
        let mut pending = self
            .pending_pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        pending.reserve(n);
        HeadAppender {
            head: self.clone(),
            pending,
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
        let s = idx.create(labels, hash);
        // Logged under the index lock, so the series record is in the log
        // before any sample another appender commits for it.
        if let Some(w) = self.wal.get() {
            let mut r = SeriesRecord::default();
            r.push(s.id, labels);
            w.log_series(&r);
        }
        Ok(s)
    }

    /// Sends new series and committed samples to `wal` from now on. What
    /// the head already holds is the caller's to checkpoint. Returns false
    /// (and changes nothing) if a log was attached before.
    pub fn attach_wal(&self, wal: Arc<Wal>) -> bool {
        self.wal.set(wal).is_ok()
    }

    /// The attached log, if any.
    pub fn wal(&self) -> Option<&Arc<Wal>> {
        self.wal.get()
    }

    /// Sends full chunks to `files` from now on, and queues the ones the
    /// head already holds. Returns false (and changes nothing) if files
    /// were attached before.
    pub fn attach_chunks(&self, files: Arc<ChunkFiles>) -> bool {
        if self.chunks.set(files.clone()).is_err() {
            return false;
        }
        for s in self.all_series() {
            let mut d = s.lock();
            if !d.frozen.is_empty() && !d.queued {
                d.queued = true;
                drop(d);
                files.enqueue(s);
            }
        }
        true
    }

    /// The attached chunk files, if any.
    pub fn chunk_files(&self) -> Option<&Arc<ChunkFiles>> {
        self.chunks.get()
    }

    /// The chunk files' maps, for one read.
    fn maps(&self) -> MapsView<'_> {
        MapsView {
            maps: self.chunks.get().map(|c| c.maps()).unwrap_or_default(),
            src: self.chunks.get(),
        }
    }

    /// Queues `s` for the chunk files if it has full chunks waiting.
    fn queue_full_chunks(&self, s: &Arc<MemSeries>, d: &mut SeriesData) {
        if let Some(c) = self.chunks.get() {
            if !d.queued && !d.frozen.is_empty() {
                d.queued = true;
                c.enqueue(s.clone());
            }
        }
    }

    /// Closes every series' open chunk, so all that is stored goes to the
    /// chunk files (when attached): what `argus import` does before its
    /// checkpoint, and how tests read everything from disk.
    pub fn freeze_open_chunks(&self) {
        for s in self.all_series() {
            let mut d = s.lock();
            if d.head.is_empty() {
                continue;
            }
            let full = self.freezer.cut(&mut d.head);
            // The series may stay idle: its buffer is not kept.
            d.head = XorChunk::new();
            d.frozen.push(full);
            self.queue_full_chunks(&s, &mut d);
        }
    }

    /// Gives a restored series what the chunk files hold for it: the span
    /// its chunks in indexed files cover, and the places of its chunks in
    /// files not indexed (in the order written). In-memory chunks those
    /// files already cover (a checkpoint taken before they were written
    /// out) are dropped.
    pub(crate) fn attach_disk(
        &self,
        s: &MemSeries,
        sealed: Option<SeriesSpan>,
        metas: Vec<ChunkMeta>,
    ) {
        let mut d = s.lock();
        if let Some(span) = sealed {
            d.sealed.add(span.min_t, span.max_t, 0);
        }
        d.disk = metas.into();
        let end = d.disk.last().map(|m| m.max_t());
        let end = match (end, (!d.sealed.is_empty()).then_some(d.sealed.max_t)) {
            (Some(a), Some(b)) => a.max(b),
            (a, b) => match a.or(b) {
                Some(e) => e,
                None => return,
            },
        };
        d.frozen.retain(|c| c.min_t() > end);
        if !d.head.is_empty() && d.head.min_t() <= end {
            d.head = XorChunk::new();
        }
    }

    /// Indexes the oldest complete chunk file not indexed yet, if any, and
    /// moves its chunk places out of the series: written whole and put in
    /// readers' way first, then taken from each series under its lock, so
    /// a reader finds every chunk exactly once. Returns whether a file was
    /// indexed.
    pub(crate) fn seal_next(&self) -> std::io::Result<bool> {
        let Some(files) = self.chunks.get() else {
            return Ok(false);
        };
        let _one = files.indexing();
        let Some(n) = files.next_to_seal() else {
            return Ok(false);
        };
        let mut w = files.begin_index(n)?;
        // Series in id order: the index's order.
        let series = self.all_series();
        for s in &series {
            let d = s.lock();
            for m in d.disk.iter().filter(|m| m.file == n) {
                w.push(s.id, m)?;
            }
        }
        let generation = files.install_index(n, w)?;
        for s in &series {
            let mut d = s.lock();
            let mut span: Option<(i64, i64)> = None;
            for m in d.disk.iter().filter(|m| m.file == n) {
                let (lo, hi) = span.unwrap_or((m.min_t, m.max_t()));
                span = Some((lo.min(m.min_t), hi.max(m.max_t())));
            }
            if let Some((lo, hi)) = span {
                d.disk.retain(|m| m.file != n);
                d.sealed.add(lo, hi, generation);
            }
        }
        Ok(true)
    }

    /// Recreates a logged or snapshotted series under its id `id`. When the
    /// labels already have a series (a series retention removed and a
    /// later one recreated, both logged), or the id is taken by other
    /// labels, `remap` records where samples for `id` go instead.
    pub(crate) fn restore_series(
        &self,
        id: u32,
        labels: &Labels,
        remap: &mut FastMap<u32, u32>,
    ) -> Result<Arc<MemSeries>, StorageError> {
        if labels.is_empty() {
            return Err(StorageError::InvalidSeries {
                labels: labels.clone(),
                reason: "empty label set",
            });
        }
        let hash = labels.stable_hash();
        let mut idx = self.write();
        let s = if let Some(s) = idx.lookup(labels, hash) {
            s.clone()
        } else if idx.series.get(&id).is_none() {
            self.stats.series_created.fetch_add(1, Ordering::Relaxed);
            idx.create_as(labels, hash, id)
        } else {
            self.stats.series_created.fetch_add(1, Ordering::Relaxed);
            idx.create(labels, hash)
        };
        if s.id == id {
            remap.remove(&id);
        } else {
            remap.insert(id, s.id);
        }
        Ok(s)
    }

    /// Appends samples read back from the log to the series they name
    /// (through `remap`), with the usual ordering and retention rules and
    /// without logging them again.
    pub(crate) fn replay_samples(
        &self,
        floats: &[(u32, i64, f64)],
        hists: &[(u32, i64, Arc<FloatHistogram>)],
        remap: &FastMap<u32, u32>,
    ) -> AppendOutcome {
        let mut out = AppendOutcome::default();
        let min_valid = self.min_valid_t.load(Ordering::Relaxed);
        let idx = self.read();
        let find = |id: &u32| idx.series.get(remap.get(id).unwrap_or(id));
        let values = floats
            .iter()
            .map(|(id, t, v)| (id, *t, PendingValue::Float(*v)))
            .chain(
                hists
                    .iter()
                    .map(|(id, t, h)| (id, *t, PendingValue::Histogram(h.clone()))),
            );
        for (id, t, v) in values {
            match find(id) {
                Some(s) => {
                    let mut d = s.lock();
                    out.count(d.append_value(t, &v, min_valid, &self.freezer));
                    self.queue_full_chunks(s, &mut d);
                }
                None => out.unknown_ref += 1,
            }
        }
        drop(idx);
        self.stats
            .samples_appended
            .fetch_add(out.appended, Ordering::Relaxed);
        out
    }

    /// Refuses samples before `t` from now on, as retention will.
    pub fn set_min_valid(&self, t: Timestamp) {
        self.min_valid_t.fetch_max(t, Ordering::Relaxed);
    }

    /// Handles of every live series, in id order. Labels are looked up
    /// one at a time with [`Head::labels_of`], so walking a large head
    /// does not hold every label set in memory at once.
    pub(crate) fn all_series(&self) -> Vec<Arc<MemSeries>> {
        self.read().series.values().cloned().collect()
    }

    /// The labels of one series.
    pub(crate) fn labels_of(&self, s: &MemSeries) -> Labels {
        self.read().labels_of(s)
    }

    fn matching_series(&self, matchers: &[Matcher]) -> Vec<(Labels, Arc<MemSeries>)> {
        let idx = self.read();
        idx.matching(matchers)
            .iter()
            .filter_map(|id| idx.series.get(id))
            .map(|s| (idx.labels_of(s), s.clone()))
            .collect()
    }

    /// Drops samples before `min_t` and series left with none; returns the
    /// number of series removed. Later appends before `min_t` are refused.
    /// Also takes the memory figures ([`HeadStats::memory`]).
    pub fn truncate(&self, min_t: Timestamp) -> usize {
        self.min_valid_t.fetch_max(min_t, Ordering::Relaxed);
        let mut empty = Vec::new();
        let mut mem = HeadMemory::default();
        for s in self.all_series() {
            let mut d = s.lock();
            mem.open_chunks += (d.head.heap_size()
                + d.frozen.iter().map(|c| c.heap_size()).sum::<usize>()
                + d.frozen.heap_size()) as u64;
            mem.chunk_refs += d.disk.heap_size() as u64;
            mem.histograms += d
                .hists
                .iter()
                .map(|(_, h)| {
                    std::mem::size_of::<FloatHistogram>()
                        + 12 * (h.positive.len() + h.negative.len())
                        + 8 * h.custom_values.len()
                        + 24
                })
                .sum::<usize>() as u64;
            let keep = d.disk.partition_point(|c| c.max_t() < min_t);
            if keep > 0 {
                d.disk.drain_front(keep);
                // Only a list well past its size gives memory back: retention
                // drops about as many places as new chunks add.
                if d.disk.capacity() > d.disk.len() + d.disk.len() / 4 + 4 {
                    d.disk.shrink_to_fit();
                }
            }
            if d.sealed.max_t < min_t {
                d.sealed = Sealed::NONE;
            } else if d.sealed.min_t < min_t {
                d.sealed.min_t = min_t;
            }
            d.frozen.retain(|c| c.max_t() >= min_t);
            if !d.head.is_empty() && d.head.max_t() < min_t {
                d.head = XorChunk::new();
            }
            let keep_from = d.hists.partition_point(|x| x.0 < min_t);
            d.hists.drain_front(keep_from);
            if d.sealed.is_empty()
                && d.disk.is_empty()
                && d.frozen.is_empty()
                && d.head.is_empty()
                && d.hists.is_empty()
            {
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
        if let Some(c) = self.chunks.get() {
            c.remove_before(min_t);
        }
        self.read().measure(&mut mem);
        for (a, v) in self.stats.memory.iter().zip(mem.values()) {
            a.store(v, Ordering::Relaxed);
        }
        n
    }

    fn fold_series<T>(&self, init: T, f: impl Fn(T, &SeriesData) -> T) -> T {
        self.all_series()
            .iter()
            .fold(init, |acc, s| f(acc, &s.lock()))
    }

    /// Heap bytes held by encoded samples.
    pub fn chunk_bytes(&self) -> usize {
        self.fold_series(0, |acc, d| {
            acc + d.head.heap_size() + d.frozen.iter().map(|c| c.heap_size()).sum::<usize>()
        })
    }

    /// Total samples held, in memory and in chunk files.
    pub fn num_samples(&self) -> usize {
        self.fold_series(0, |acc, d| {
            acc + d.head.len() as usize
                + d.disk.iter().map(|c| c.samples() as usize).sum::<usize>()
                + d.hists.len()
                + d.frozen.iter().map(|c| c.count() as usize).sum::<usize>()
        })
    }
}

impl Queryable for Head {
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        let mut maps = self.maps();
        for (labels, s) in self.matching_series(matchers) {
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            {
                let d = s.lock();
                d.samples(s.id, &mut maps, mint, maxt, &mut samples);
                d.histograms(mint, maxt, &mut histograms);
            }
            if !samples.is_empty() || !histograms.is_empty() {
                out.push(SeriesSamples {
                    labels,
                    samples,
                    histograms,
                });
            }
        }
        out
    }

    fn select_latest(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<SeriesSamples> {
        let mut out = Vec::new();
        let mut maps = self.maps();
        for (labels, s) in self.matching_series(matchers) {
            let mut samples = Vec::new();
            let mut histograms = Vec::new();
            s.lock()
                .latest(s.id, &mut maps, mint, maxt, &mut samples, &mut histograms);
            if !samples.is_empty() || !histograms.is_empty() {
                out.push(SeriesSamples {
                    labels,
                    samples,
                    histograms,
                });
            }
        }
        out
    }

    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels> {
        let mut out: Vec<Labels> = self
            .matching_series(matchers)
            .into_iter()
            .filter(|(_, s)| {
                let d = s.lock();
                matches!((d.min_t(), d.max_t()), (Some(a), Some(b)) if a <= maxt && b >= mint)
            })
            .map(|(l, _)| l)
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

enum Pending {
    /// A series this appender created or looked up, with its labels:
    /// retention may remove it (it has no samples yet) before the commit,
    /// and then its symbols may be gone too, so it is recreated from these.
    Series(Arc<MemSeries>, Labels),
    Id(u32),
}

/// How many samples ahead the commit asks for a series' memory.
const PREFETCH_AHEAD: usize = 16;
/// Cache lines a series may span (its lock and chunk handles).
const SERIES_LINES: usize = 4;

/// The head's [`Appender`]. References are resolved at commit, under one
/// read lock of the index, so the per-sample cost of the scrape path is a
/// push onto a vector.
pub struct HeadAppender {
    head: Arc<Head>,
    pending: Vec<(Pending, Timestamp, PendingValue)>,
}

impl Drop for HeadAppender {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.pending);
        if buf.capacity() == 0 || buf.capacity() > PENDING_KEEP {
            return;
        }
        buf.clear();
        let mut pool = self
            .head
            .pending_pool
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if pool.len() < PENDING_POOL {
            pool.push(buf);
        }
    }
}

#[derive(Clone)]
enum PendingValue {
    Float(f64),
    Histogram(Arc<FloatHistogram>),
}

/// One commit's stored samples, encoded for the log.
#[derive(Default)]
struct LogBatch {
    floats: SamplesRecord,
    hists: HistogramsRecord,
}

impl LogBatch {
    fn push(&mut self, id: u32, t: i64, v: &PendingValue) {
        match v {
            PendingValue::Float(f) => self.floats.push(id, t, *f),
            PendingValue::Histogram(h) => self.hists.push(id, t, h),
        }
    }

    fn write_to(&self, w: &Wal) {
        if !self.floats.is_empty() {
            w.log_samples(&self.floats);
        }
        if !self.hists.is_empty() {
            w.log_histograms(&self.hists);
        }
    }
}

impl SeriesData {
    fn append_value(
        &mut self,
        t: i64,
        v: &PendingValue,
        min_valid: i64,
        freezer: &Freezer,
    ) -> Result<bool, StorageError> {
        match v {
            PendingValue::Float(f) => self.append(t, *f, min_valid, freezer),
            PendingValue::Histogram(h) => self.append_histogram(t, h.clone(), min_valid),
        }
    }
}

impl Appender for HeadAppender {
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, StorageError> {
        let s = self.head.get_or_create(labels)?;
        let r = SeriesRef(u64::from(s.id));
        self.pending.push((
            Pending::Series(s, labels.clone()),
            t,
            PendingValue::Float(v),
        ));
        Ok(r)
    }

    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: Timestamp,
        h: Arc<FloatHistogram>,
    ) -> Result<SeriesRef, StorageError> {
        let s = self.head.get_or_create(labels)?;
        let r = SeriesRef(u64::from(s.id));
        self.pending.push((
            Pending::Series(s, labels.clone()),
            t,
            PendingValue::Histogram(h),
        ));
        Ok(r)
    }

    fn append_ref(&mut self, r: SeriesRef, t: Timestamp, v: f64) -> Result<(), StorageError> {
        let id = u32::try_from(r.0).map_err(|_| StorageError::UnknownRef)?;
        self.pending
            .push((Pending::Id(id), t, PendingValue::Float(v)));
        Ok(())
    }

    fn append_histogram_ref(
        &mut self,
        r: SeriesRef,
        t: Timestamp,
        h: Arc<FloatHistogram>,
    ) -> Result<(), StorageError> {
        let id = u32::try_from(r.0).map_err(|_| StorageError::UnknownRef)?;
        self.pending
            .push((Pending::Id(id), t, PendingValue::Histogram(h)));
        Ok(())
    }

    fn commit(&mut self) -> AppendOutcome {
        let mut out = AppendOutcome::default();
        let min_valid = self.head.min_valid_t.load(Ordering::Relaxed);
        // What was stored is logged after it is stored, so the log holds
        // exactly the samples the head took (refused ones never replay).
        let mut log = self.head.wal.get().map(|w| (w, LogBatch::default()));
        let mut stored = |id: u32, t: i64, v: &PendingValue, res: Result<bool, StorageError>| {
            if let (Ok(true), Some((_, b))) = (&res, log.as_mut()) {
                b.push(id, t, v);
            }
            out.count(res);
        };
        let mut removed = Vec::new();
        let mut pending = std::mem::take(&mut self.pending);
        {
            let idx = self.head.read();
            fn series<'a>(idx: &'a Index, p: &'a Pending) -> Option<&'a Arc<MemSeries>> {
                match p {
                    Pending::Series(s, _) => Some(s),
                    Pending::Id(id) => idx.series.get(id),
                }
            }
            for i in 0..pending.len() {
                // Each sample is for another series, usually one not in any
                // cache: asking for the one a few samples ahead overlaps
                // those misses instead of waiting for each in turn.
                // The slot pointing to the series first, then the series
                // (once its slot is in cache), then the end of its open
                // chunk, where the sample will be written.
                if let Some((Pending::Id(id), _, _)) = pending.get(i + 2 * PREFETCH_AHEAD) {
                    idx.series.prefetch_slot(*id);
                }
                if let Some(s) = pending
                    .get(i + PREFETCH_AHEAD)
                    .and_then(|x| series(&idx, &x.0))
                {
                    crate::model::prefetch(std::ptr::from_ref(&**s), SERIES_LINES);
                }
                if let Some(s) = pending
                    .get(i + PREFETCH_AHEAD / 2)
                    .and_then(|x| series(&idx, &x.0))
                {
                    s.prefetch_open_chunk();
                }
                let (p, t, v) = &pending[i];
                let t = *t;
                let Some(s) = series(&idx, p) else {
                    if let Pending::Id(id) = p {
                        stored(*id, t, v, Err(StorageError::UnknownRef));
                    }
                    continue;
                };
                let res = {
                    let mut d = s.lock();
                    let r = d.append_value(t, v, min_valid, &self.head.freezer);
                    self.head.queue_full_chunks(s, &mut d);
                    r
                };
                match res {
                    // Retention removed a series created by this appender
                    // before the commit: recreate it below, outside the lock.
                    Err(StorageError::UnknownRef) => match p {
                        Pending::Series(_, labels) => removed.push((labels.clone(), t, v.clone())),
                        Pending::Id(_) => stored(s.id, t, v, Err(StorageError::UnknownRef)),
                    },
                    r => stored(s.id, t, v, r),
                }
            }
        }
        // The buffer keeps its capacity for this appender's next use.
        pending.clear();
        self.pending = pending;
        for (labels, t, v) in removed {
            match self.head.get_or_create(&labels) {
                Ok(s) => {
                    let r = {
                        let mut d = s.lock();
                        let r = d.append_value(t, &v, min_valid, &self.head.freezer);
                        self.head.queue_full_chunks(&s, &mut d);
                        r
                    };
                    stored(s.id, t, &v, r);
                }
                Err(e) => stored(0, t, &v, Err(e)),
            }
        }
        if let Some((w, b)) = log {
            b.write_to(w);
        }
        let st = &self.head.stats;
        st.samples_appended
            .fetch_add(out.appended, Ordering::Relaxed);
        st.out_of_order
            .fetch_add(out.out_of_order, Ordering::Relaxed);
        st.duplicate.fetch_add(out.duplicate, Ordering::Relaxed);
        st.out_of_bounds
            .fetch_add(out.out_of_bounds, Ordering::Relaxed);
        st.unknown_ref.fetch_add(out.unknown_ref, Ordering::Relaxed);
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

    /// Retention may remove a series an appender has just created (it has
    /// no samples yet) and free its symbols before the commit; the
    /// commit recreates it with its own labels, not from freed symbols.
    #[test]
    fn a_series_removed_before_its_commit_is_recreated_with_its_labels() {
        let h = Arc::new(Head::new());
        let mut a = h.appender();
        let probe = l(&[("__name__", "probe_success"), ("probe", "site")]);
        a.append(&probe, 10_000, 1.0).unwrap();
        assert_eq!(h.truncate(5_000), 1, "the empty new series is removed");
        // Other series take the freed symbols meanwhile.
        let mut b = h.appender();
        b.append(&l(&[("__name__", "zz"), ("aa", "b")]), 10_000, 2.0)
            .unwrap();
        b.commit();
        let out = a.commit();
        assert_eq!(out.appended, 1, "{out:?}");
        let got = h.select(&[m(MatchOp::Equal, "probe", "site")], 0, 20_000);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].labels, probe);
        assert_eq!(got[0].samples.len(), 1);
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
                out_of_bounds: 0,
                unknown_ref: 0,
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
        // A reference to a series retention removed is counted, not lost silently.
        let gone = l(&[("__name__", "gone")]);
        let mut a = h.appender();
        let gr = a.append(&gone, 10, 1.0).unwrap();
        a.commit();
        h.truncate(25);
        let mut a = h.appender();
        a.append_ref(gr, 40, 1.0).unwrap();
        assert_eq!(a.commit().unknown_ref, 1);
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

    #[test]
    fn symbols_of_removed_series_are_recycled() {
        let h = Arc::new(Head::new());
        for round in 0..5i64 {
            let mut a = h.appender();
            for p in 0..100 {
                let l = l(&[("__name__", "up"), ("pod", &format!("pod-{round}-{p}"))]);
                a.append(&l, round * 1000, 1.0).unwrap();
            }
            a.commit();
            h.truncate(round * 1000);
        }
        let idx = h.read();
        // Live: 100 pods + "__name__", "up", "pod"; the table did not grow 5×.
        assert_eq!(idx.symbols.ids.len(), 103);
        assert!(
            idx.symbols.strings.len() <= 203,
            "{}",
            idx.symbols.strings.len()
        );
        drop(idx);
        let got = h.series(&[m(MatchOp::Regex, "pod", "pod-4-.*")], 0, i64::MAX);
        assert_eq!(got.len(), 100);
        assert!(
            h.series(&[m(MatchOp::Regex, "pod", "pod-3-.*")], 0, i64::MAX)
                .is_empty()
        );
    }
}
