//! Chunk files: full chunks leave the head for numbered files under
//! `chunks/`, and are read back through memory maps, so the head's memory
//! grows with the active series and not with retention.
//!
//! A file is `ARGUSCHK`, a format version (u32 LE), then chunk records:
//! `[crc32 u32 LE][body length u32 LE]` and a body of `[series id u32 LE]
//! [sample count u16 LE][max_t − min_t u32 LE]` plus the chunk's stream
//! (whose first 64 bits are min_t; the count's top bit says the stream is
//! in the decimal encoding rather than XOR, see `chunk`). The checksum covers the body.
//! A new file is begun at 256 MiB, at [`MAX_FILE_CHUNKS`] chunks, or when
//! the current one has been written to for two hours, so retention deletes
//! whole files.
//!
//! Full chunks wait in the head (as today) until the storage thread writes
//! them, every 100 ms: each series is then given the chunks' places in the
//! file, and its in-memory copies are dropped. The files are fsynced by
//! each checkpoint before it is installed, so a checkpoint never relies
//! on chunk data that is not on disk. At start the files are scanned
//! (sequentially, without mapping them) to give each series its chunks
//! back; a damaged record ends its file's scan, is reported with the file
//! and offset, and the file is cut there.
//!
//! Files are mapped read-only and never written in place or shortened
//! while mapped (they are only appended to and deleted), which is what
//! makes reading them through the maps sound.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::head::MemSeries;
use super::sealed::{IndexWriter, SealedIndex, SeriesSpan};
use super::{Damage, NumberedWriter, WriteChange};
use crate::model::FastMap;

/// Directory of the chunk files inside the storage path.
pub const DIR: &str = "chunks";
const MAGIC: &[u8; 8] = b"ARGUSCHK";
const VERSION: u32 = 1;
const FILE_HEADER: u64 = 12;
const RECORD_HEADER: usize = 8;
const BODY_HEADER: usize = 10;
/// A new file is begun once the current one is this long.
pub const MAX_FILE_BYTES: u64 = 256 << 20;
/// A new file is begun once the current one holds this many chunks. The
/// places of the current file's chunks are held by their series (24 bytes
/// each, and a list per series) until the file is complete and indexed, so
/// this bounds that memory whatever the retention and the number of series
/// (about 3 MiB of places, a tenth of what the series themselves take at
/// 100,000); at 100,000 series scraped every second a file completes
/// every two and a half minutes, at a million every 15 s every four.
pub const MAX_FILE_CHUNKS: u32 = 1 << 17;
/// A new file is begun once the current one was first written this long
/// ago, so a file's chunks cover a bounded time and retention can delete
/// it soon after its data expires.
pub const MAX_FILE_AGE_MS: i64 = 2 * 3_600_000;
/// Bytes of chunks written in one go: a burst of cuts (every series of
/// targets that started together fills its chunk in the same scrape) is
/// written in several, so its encoded copy is never a large transient
/// allocation beside the chunks themselves.
const BATCH_BYTES: usize = 1 << 20;
/// The longest stream a chunk of 120 samples can have (each sample at most
/// 145 bits), with room to spare; a longer record is damage.
const MAX_STREAM: usize = 4096;

/// Where a chunk that left the head is, and what it covers: 24 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkMeta {
    /// First timestamp.
    pub min_t: i64,
    /// File number.
    pub file: u32,
    /// Offset of the stream in the file.
    pub offset: u32,
    /// Last timestamp minus the first.
    pub span: u32,
    /// Stream length in bytes.
    pub len: u16,
    /// Number of samples and the encoding (see [`super::chunk::DECIMAL`]).
    pub word: u16,
}

impl ChunkMeta {
    /// Last timestamp.
    pub fn max_t(&self) -> i64 {
        self.min_t.saturating_add(i64::from(self.span))
    }

    /// Number of samples.
    pub fn samples(&self) -> u16 {
        super::chunk::samples_in(self.word)
    }
}

/// A read-only map of one chunk file, with its index once it is sealed.
pub struct Mapped {
    map: memmap2::Mmap,
    /// Where each series' chunks are, once the file is complete.
    pub(crate) index: Option<SealedIndex>,
    stats: Arc<ChunkStats>,
}

impl Mapped {
    /// The stream of `m`, if the file holds it and its record's checksum
    /// holds (a sealed file is not scanned again at start, so a chunk
    /// damaged on disk since is caught here: counted, read as empty).
    pub fn stream(&self, m: &ChunkMeta) -> Option<&[u8]> {
        let start = m.offset as usize;
        let end = start.checked_add(usize::from(m.len))?;
        let rec = start.checked_sub(RECORD_HEADER + BODY_HEADER)?;
        let ok = self.map.get(rec..end).is_some_and(|r| {
            let crc = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
            let blen = u32::from_le_bytes([r[4], r[5], r[6], r[7]]) as usize;
            blen == BODY_HEADER + usize::from(m.len) && crc32fast::hash(&r[RECORD_HEADER..]) == crc
        });
        if !ok {
            self.stats.corruptions.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.map.get(start..end)
    }
}

fn map_file(path: &Path, stats: &Arc<ChunkStats>) -> std::io::Result<Mapped> {
    Ok(Mapped {
        map: map_readonly(&File::open(path)?)?,
        index: None,
        stats: stats.clone(),
    })
}

/// Maps a chunk file or a sealed file's index for reading.
#[allow(unsafe_code)]
pub(super) fn map_readonly(f: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: chunk files are only ever appended to (by this process's
    // writer, behind the already mapped length) and deleted, never
    // truncated or rewritten while argus runs (the cut of a damaged tail
    // happens at start, before any map exists); an index is written whole
    // under a temporary name, renamed into place and never modified. So
    // the mapped bytes never change or vanish under a reader. A deleted
    // file stays mapped until the last reader drops it.
    unsafe { memmap2::Mmap::map(f) }
}

/// The maps of every chunk file, by number: what a query holds while it
/// reads, so files deleted meanwhile stay readable to it.
#[derive(Default)]
pub struct FileMaps {
    /// Maps by file number.
    pub files: BTreeMap<u32, Arc<Mapped>>,
    /// How many indexes were installed before this set was taken: a
    /// series sealed by a later one needs a newer set.
    pub sealed_gen: u32,
}

/// The current [`FileMaps`], shared.
pub type Maps = Arc<FileMaps>;

/// Counters the chunk files keep, read by telemetry.
#[derive(Debug, Default)]
pub struct ChunkStats {
    /// Chunks written.
    pub chunks_written: AtomicU64,
    /// Bytes written.
    pub bytes_written: AtomicU64,
    /// Writes or fsyncs that failed (the chunks stay in memory and are
    /// written later).
    pub write_failures: AtomicU64,
    /// Damaged records found at start, damaged indexes, and chunks whose
    /// checksum failed when read.
    pub corruptions: AtomicU64,
    /// Files removed by retention.
    pub files_removed: AtomicU64,
    /// Files on disk.
    pub files: AtomicU64,
    /// Bytes in the files on disk.
    pub disk_bytes: AtomicU64,
}

struct Writer {
    out: NumberedWriter,
    /// When the current file was first written (Unix ms).
    opened_ms: i64,
    /// Chunks written to the current file.
    chunks: u32,
    /// [`MAX_FILE_CHUNKS`], lowered by tests.
    max_chunks: u32,
    /// The records of one batch, and where each series' chunks landed
    /// (index into the batch's series, place): kept between batches.
    buf: Vec<u8>,
    placed: Vec<(usize, ChunkMeta)>,
}

/// The chunk files of one store.
pub struct ChunkFiles {
    dir: PathBuf,
    maps: RwLock<Maps>,
    /// Newest chunk end per file, for retention.
    ends: Mutex<BTreeMap<u32, i64>>,
    w: Mutex<Writer>,
    queue: Mutex<Vec<Arc<MemSeries>>>,
    /// Complete files whose index is still to be written, oldest first.
    closed: Mutex<Vec<u32>>,
    /// Held while a file is being indexed: two indexers of one file would
    /// write the same temporary file.
    indexing: Mutex<()>,
    /// Counters.
    pub stats: Arc<ChunkStats>,
}

/// What the scan at start found.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Files read.
    pub files: usize,
    /// Chunks of files that could not be indexed (their index could not
    /// be written), with the id of the series each belongs to, in the
    /// order written (so each series' chunks are in time order).
    pub chunks: Vec<(u32, ChunkMeta)>,
    /// For each series with chunks in indexed files, the span they cover.
    pub sealed: FastMap<u32, SeriesSpan>,
    /// Indexes opened as they were (the others were rebuilt from their
    /// chunk files).
    pub indexes_reused: usize,
    /// Damage found; each damaged file is cut at its first bad record.
    pub damage: Vec<Damage>,
}

use super::numbered_name as name;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values (a queue, offsets updated after each successful
    // write, a map of file ends) stay consistent across a panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one file's records; returns them and the damage, if any.
fn scan_file(path: &Path, n: u32, out: &mut Vec<(u32, ChunkMeta)>) -> Option<Damage> {
    let damage = |offset: u64, len: u64, reason: String| {
        Some(Damage {
            file: path.to_path_buf(),
            offset,
            dropped_bytes: len.saturating_sub(offset),
            reason,
        })
    };
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return damage(0, 0, format!("unreadable: {e}")),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut head = [0u8; FILE_HEADER as usize];
    if r.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
        return damage(
            0,
            len,
            "not an argus chunk file (bad magic or too short)".into(),
        );
    }
    let mut pos = FILE_HEADER;
    let mut body = Vec::with_capacity(MAX_STREAM + BODY_HEADER);
    loop {
        if pos == len {
            return None;
        }
        let mut h = [0u8; RECORD_HEADER];
        if r.read_exact(&mut h).is_err() {
            return damage(pos, len, "torn record header".into());
        }
        let crc = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let blen = u32::from_le_bytes([h[4], h[5], h[6], h[7]]) as usize;
        if crc == 0 && blen == 0 {
            return damage(pos, len, "zeroed".into());
        }
        if !(BODY_HEADER + 8..=BODY_HEADER + MAX_STREAM).contains(&blen) {
            return damage(pos, len, format!("record length {blen} out of bounds"));
        }
        body.resize(blen, 0);
        if r.read_exact(&mut body).is_err() {
            return damage(pos, len, "torn record (file ends inside it)".into());
        }
        if crc32fast::hash(&body) != crc {
            return damage(pos, len, "checksum mismatch".into());
        }
        let id = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        let word = u16::from_le_bytes([body[4], body[5]]);
        let span = u32::from_le_bytes([body[6], body[7], body[8], body[9]]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&body[BODY_HEADER..BODY_HEADER + 8]);
        let Ok(offset) = u32::try_from(pos + (RECORD_HEADER + BODY_HEADER) as u64) else {
            return damage(pos, len, "file longer than 4 GiB".into());
        };
        if super::chunk::samples_in(word) == 0 {
            return damage(pos, len, "chunk without samples".into());
        }
        out.push((
            id,
            ChunkMeta {
                min_t: i64::from_be_bytes(t),
                file: n,
                offset,
                span,
                len: (blen - BODY_HEADER) as u16,
                word,
            },
        ));
        pos += (RECORD_HEADER + blen) as u64;
    }
}

/// Writes the index of chunk file `path` from its chunks, sorted by
/// series id and time.
fn write_index(path: &Path, chunks: &[(u32, ChunkMeta)]) -> std::io::Result<()> {
    let mut w = IndexWriter::create(path)?;
    for (id, m) in chunks {
        w.push(*id, m)?;
    }
    w.finish().map(|_| ())
}

/// Opens the index of chunk file `path` (number `n`) and maps both, adding
/// each series' span to `spans`. Returns the map, the file's newest chunk
/// end and its length on disk (both files).
fn open_index(
    path: &Path,
    n: u32,
    stats: &Arc<ChunkStats>,
    spans: Option<&mut FastMap<u32, SeriesSpan>>,
) -> Result<(Mapped, i64, u64), super::sealed::IndexDamage> {
    let unreadable = |e: std::io::Error| super::sealed::IndexDamage {
        offset: 0,
        reason: format!("chunk file unreadable: {e}"),
    };
    let chunk_len = fs::metadata(path).map_err(unreadable)?.len();
    let ipath = super::sealed::index_path(path);
    // Spans go in only once the whole index checks out.
    let mut here: Vec<(u32, SeriesSpan)> = Vec::new();
    let want = spans.is_some();
    let index = SealedIndex::open(&ipath, n, chunk_len, |id, m| match here.last_mut() {
        _ if !want => {}
        Some((last, span)) if *last == id => span.max_t = span.max_t.max(m.max_t()),
        _ => here.push((
            id,
            SeriesSpan {
                min_t: m.min_t,
                max_t: m.max_t(),
            },
        )),
    })?;
    let Some(spans) = spans else {
        return finish_open(path, stats, index, chunk_len, &ipath);
    };
    for (id, span) in here {
        spans
            .entry(id)
            .and_modify(|s| {
                s.min_t = s.min_t.min(span.min_t);
                s.max_t = s.max_t.max(span.max_t);
            })
            .or_insert(span);
    }
    finish_open(path, stats, index, chunk_len, &ipath)
}

fn finish_open(
    path: &Path,
    stats: &Arc<ChunkStats>,
    index: SealedIndex,
    chunk_len: u64,
    ipath: &Path,
) -> Result<(Mapped, i64, u64), super::sealed::IndexDamage> {
    let end = index.max_t;
    let ilen = fs::metadata(ipath).map(|m| m.len()).unwrap_or(0);
    let map = map_file(path, stats).map_err(|e| super::sealed::IndexDamage {
        offset: 0,
        reason: format!("chunk file unreadable: {e}"),
    })?;
    Ok((
        Mapped {
            index: Some(index),
            ..map
        },
        end,
        chunk_len + ilen,
    ))
}

/// Removes index files (and temporary ones) without their chunk file.
fn remove_stray_indexes(dir: &Path, numbers: &[u32]) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let fname = e.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some(stem) = fname.split_once('.').map(|(a, _)| a) else {
            continue;
        };
        let has_chunks = stem.parse::<u32>().is_ok_and(|n| numbers.contains(&n));
        if fname.ends_with(".tmp") || (fname.ends_with(super::sealed::SUFFIX) && !has_chunks) {
            let _ = fs::remove_file(e.path());
        }
    }
}

impl ChunkFiles {
    /// Opens the chunk files under `dir` (created if missing). Every file
    /// there is complete (writing goes on in a new one), so each is read
    /// through its index; a file without a sound index is scanned, cut at
    /// its first bad record, and indexed. Files are mapped for reading.
    pub fn open(dir: &Path) -> std::io::Result<(ChunkFiles, ScanReport)> {
        fs::create_dir_all(dir)?;
        let stats = Arc::new(ChunkStats::default());
        let mut rep = ScanReport::default();
        let mut maps = BTreeMap::new();
        let mut ends = BTreeMap::new();
        let mut closed = Vec::new();
        let mut disk = 0u64;
        let numbers = super::numbered_files(dir)?;
        remove_stray_indexes(dir, &numbers);
        for &n in &numbers {
            let path = dir.join(name(n));
            rep.files += 1;
            let ipath = super::sealed::index_path(&path);
            if ipath.exists() {
                match open_index(&path, n, &stats, Some(&mut rep.sealed)) {
                    Ok((m, end, len)) => {
                        maps.insert(n, Arc::new(m));
                        ends.insert(n, end);
                        disk += len;
                        rep.indexes_reused += 1;
                        continue;
                    }
                    Err(d) => {
                        rep.damage.push(Damage {
                            file: ipath.clone(),
                            offset: d.offset,
                            dropped_bytes: 0,
                            reason: format!("{}; rebuilt from its chunk file", d.reason),
                        });
                        let _ = fs::remove_file(&ipath);
                    }
                }
            }
            let mut found = Vec::new();
            if let Some(d) = scan_file(&path, n, &mut found) {
                // Cut at the damage, so it is reported once and the good
                // part stays readable; a file without one good record goes.
                let keep = if d.offset <= FILE_HEADER { 0 } else { d.offset };
                let cut = fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(keep).and_then(|_| f.sync_all()));
                rep.damage.push(d);
                if let Err(e) = cut {
                    rep.damage.push(Damage {
                        file: path.clone(),
                        offset: keep,
                        dropped_bytes: 0,
                        reason: format!("could not cut the damaged tail: {e}"),
                    });
                }
            }
            if found.is_empty() {
                // Nothing readable: nothing for retention to wait for.
                let _ = fs::remove_file(&path);
                continue;
            }
            // Each series' chunks stay in the order written (time order).
            found.sort_by_key(|(id, _)| *id);
            let indexed = write_index(&path, &found)
                .map_err(|e| super::sealed::IndexDamage {
                    offset: 0,
                    reason: e.to_string(),
                })
                .and_then(|()| open_index(&path, n, &stats, Some(&mut rep.sealed)));
            match indexed {
                Ok((m, end, len)) => {
                    maps.insert(n, Arc::new(m));
                    ends.insert(n, end);
                    disk += len;
                }
                Err(e) => {
                    // Served from memory as the file being written is;
                    // indexed again once writes work.
                    tracing::warn!(file = %path.display(), error = %e.reason, "could not index a chunk file; its chunk places stay in memory until it can be");
                    let end = found.iter().map(|(_, m)| m.max_t()).max();
                    ends.insert(n, end.unwrap_or(i64::MIN));
                    maps.insert(n, Arc::new(map_file(&path, &stats)?));
                    disk += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    rep.chunks.extend(found);
                    closed.push(n);
                }
            }
        }
        stats
            .corruptions
            .store(rep.damage.len() as u64, Ordering::Relaxed);
        stats.files.store(maps.len() as u64, Ordering::Relaxed);
        stats.disk_bytes.store(disk, Ordering::Relaxed);
        let next = numbers.last().map_or(1, |n| n.saturating_add(1));
        Ok((
            ChunkFiles {
                dir: dir.to_path_buf(),
                maps: RwLock::new(Arc::new(FileMaps {
                    files: maps,
                    sealed_gen: 0,
                })),
                ends: Mutex::new(ends),
                w: Mutex::new(Writer {
                    out: NumberedWriter::new(next),
                    opened_ms: 0,
                    chunks: 0,
                    max_chunks: MAX_FILE_CHUNKS,
                    buf: Vec::new(),
                    placed: Vec::new(),
                }),
                queue: Mutex::new(Vec::new()),
                closed: Mutex::new(closed),
                indexing: Mutex::new(()),
                stats,
            },
            rep,
        ))
    }

    /// The current maps, for a reader to hold while it reads.
    pub fn maps(&self) -> Maps {
        self.maps.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues a series whose full chunks wait to be written.
    pub(crate) fn enqueue(&self, s: Arc<MemSeries>) {
        lock(&self.queue).push(s);
    }

    /// Writes the full chunks of the queued series to the current file,
    /// then gives each series its chunks' places and drops the in-memory
    /// copies. On a failed write nothing moves: the chunks stay in memory,
    /// the series are queued again, and the failure is counted and logged
    /// once per cause.
    pub fn flush(&self, now_ms: i64) -> std::io::Result<()> {
        let mut w = lock(&self.w);
        let series = std::mem::take(&mut *lock(&self.queue));
        if series.is_empty() {
            return Ok(());
        }
        // In batches, so converting a large old snapshot (every chunk
        // queued at once) neither builds one huge buffer nor overfills a file.
        let mut done = 0;
        let written = self.stats.bytes_written.load(Ordering::Relaxed);
        let res = loop {
            if done == series.len() {
                break Ok(());
            }
            match self.write(&mut w, &series[done..], now_ms) {
                Ok(n) => done += n,
                Err(e) => break Err(e),
            }
        };
        let wrote = self.stats.bytes_written.load(Ordering::Relaxed) != written;
        match (w.out.note(&res, wrote), &res) {
            (Some(WriteChange::Resumed), _) => {
                tracing::info!(dir = %self.dir.display(), "chunk file writes succeed again");
            }
            (Some(WriteChange::NewFailure), Err(e)) => {
                tracing::error!(error = %e, dir = %self.dir.display(), "chunk file write failed; the chunks stay in memory and are written when it works again (logged once per cause)");
            }
            _ => {}
        }
        if res.is_err() {
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            // Each series is marked under its own lock and only then put
            // back under the queue's: a commit holds a series' lock while
            // it takes the queue's, so taking them the other way round
            // here would deadlock the two (it did, with the disk full).
            let again: Vec<Arc<MemSeries>> = series.into_iter().skip(done).collect();
            for s in &again {
                s.lock().queued = true;
            }
            lock(&self.queue).extend(again);
        }
        res
    }

    /// Writes the chunks of a prefix of `series` (about [`BATCH_BYTES`]);
    /// returns how many series it took.
    fn write(
        &self,
        w: &mut Writer,
        series: &[Arc<MemSeries>],
        now_ms: i64,
    ) -> std::io::Result<usize> {
        if w.out.file.is_some()
            && (w.out.len >= MAX_FILE_BYTES
                || w.chunks >= w.max_chunks
                || now_ms - w.opened_ms >= MAX_FILE_AGE_MS)
        {
            let n = w.out.n;
            w.out.close_and_advance()?;
            lock(&self.closed).push(n);
        }
        // A new file is created only when there is something to put in it.
        let base = if w.out.file.is_none() {
            FILE_HEADER
        } else {
            w.out.len
        };
        // Encode every waiting chunk, noting where each lands.
        let mut buf = std::mem::take(&mut w.buf);
        let mut placed = std::mem::take(&mut w.placed);
        buf.clear();
        placed.clear();
        let taken = self.encode(w.out.n, base, series, &mut buf, &mut placed);
        let res = self.write_batch(w, series, &buf, &placed, now_ms);
        // One series' chunks may overfill a batch (a snapshot being
        // converted queues all at once): such a buffer is not kept.
        if buf.capacity() <= 4 * BATCH_BYTES {
            w.buf = buf;
            w.placed = placed;
        }
        res.map(|()| taken)
    }

    /// Encodes the chunks of a prefix of `series` as records to append at
    /// `base` of file `n`; returns how many series it took.
    fn encode(
        &self,
        n: u32,
        base: u64,
        series: &[Arc<MemSeries>],
        buf: &mut Vec<u8>,
        placed: &mut Vec<(usize, ChunkMeta)>,
    ) -> usize {
        let mut taken = 0;
        for (i, s) in series.iter().enumerate() {
            if buf.len() >= BATCH_BYTES {
                break;
            }
            taken = i + 1;
            let mut d = s.lock();
            d.queued = false;
            if d.removed || d.frozen.is_empty() {
                continue;
            }
            for c in &d.frozen {
                let stream = c.stream();
                let span = c.max_t().saturating_sub(c.min_t());
                // The head cuts chunks before these limits; a chunk past
                // them stays in memory (and every later one of its series,
                // so the written ones remain a prefix).
                let (Ok(len), Ok(span), true) = (
                    u16::try_from(stream.len()),
                    u32::try_from(span),
                    stream.len() >= 8,
                ) else {
                    break;
                };
                let start = buf.len();
                buf.extend_from_slice(&[0; RECORD_HEADER]);
                buf.extend_from_slice(&s.id.to_le_bytes());
                buf.extend_from_slice(&c.word().to_le_bytes());
                buf.extend_from_slice(&span.to_le_bytes());
                buf.extend_from_slice(stream);
                let body = &buf[start + RECORD_HEADER..];
                let crc = crc32fast::hash(body);
                let blen = body.len() as u32;
                buf[start..start + 4].copy_from_slice(&crc.to_le_bytes());
                buf[start + 4..start + 8].copy_from_slice(&blen.to_le_bytes());
                let offset = base + (start + RECORD_HEADER + BODY_HEADER) as u64;
                let Ok(offset) = u32::try_from(offset) else {
                    buf.truncate(start);
                    break;
                };
                placed.push((
                    i,
                    ChunkMeta {
                        min_t: c.min_t(),
                        file: n,
                        offset,
                        span,
                        len,
                        word: c.word(),
                    },
                ));
            }
        }
        taken
    }

    /// Appends an encoded batch to the current file (begun if need be),
    /// maps it, then gives each series its chunks' places and drops the
    /// copies in memory.
    fn write_batch(
        &self,
        w: &mut Writer,
        series: &[Arc<MemSeries>],
        buf: &[u8],
        placed: &[(usize, ChunkMeta)],
        now_ms: i64,
    ) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let path = self.dir.join(name(w.out.n));
        if w.out.file.is_none() {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)?;
            f.write_all(MAGIC)?;
            f.write_all(&VERSION.to_le_bytes())?;
            w.opened_ms = now_ms;
            w.chunks = 0;
            crate::model::sync_dir(&self.dir);
            w.out.begin(f, FILE_HEADER);
        }
        let start = w.out.len;
        w.out.append(buf)?;
        // Readable before anything points at it; if the map fails, the
        // records are cut off again so the retry does not write them twice.
        let mapped = match map_file(&path, &self.stats) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                w.out.cut_back(start);
                return Err(e);
            }
        };
        self.update_maps(|m| {
            m.files.insert(w.out.n, mapped);
        });
        w.chunks = w.chunks.saturating_add(placed.len() as u32);
        let mut end = i64::MIN;
        let mut written = 0u64;
        for group in placed.chunk_by(|a, b| a.0 == b.0) {
            let i = group[0].0;
            let last = group[group.len() - 1].1.min_t;
            let mut d = series[i].lock();
            // Retention may have dropped some of these chunks meanwhile
            // (and new ones may have been cut): drop the copies written.
            let gone = d.frozen.partition_point(|c| c.min_t() <= last);
            d.frozen.drain_front(gone);
            if d.removed {
                continue;
            }
            end = end.max(
                group
                    .iter()
                    .map(|(_, m)| m.max_t())
                    .max()
                    .unwrap_or(i64::MIN),
            );
            written += group.len() as u64;
            // Grow by an eighth: a chunk place is added every 120 samples,
            // and reallocating for each would copy a long list each time.
            // A file completes after a few chunks of each series (see
            // `MAX_FILE_CHUNKS`), so most lists stay short and are sized
            // exactly: room for four places would be 72 bytes unused.
            let (len, cap) = (d.disk.len(), d.disk.capacity());
            if cap - len < group.len() {
                d.disk.reserve_exact(group.len().max(len / 8));
            }
            d.disk.extend(group.iter().map(|(_, m)| *m));
        }
        lock(&self.ends)
            .entry(w.out.n)
            .and_modify(|e| *e = (*e).max(end))
            .or_insert(end);
        self.stats
            .chunks_written
            .fetch_add(written, Ordering::Relaxed);
        self.stats
            .bytes_written
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.stats
            .disk_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Fsyncs what was written, so a checkpoint that no longer holds those
    /// chunks can be installed.
    pub fn sync(&self) -> std::io::Result<()> {
        lock(&self.w).out.sync().map(|_| ())
    }

    /// For a size budget: the oldest time to keep so that the complete
    /// chunk files left (with their indexes), and `other` bytes the store
    /// holds besides (its log and checkpoint), fit in `budget`. The files
    /// that end first go first; the one being written never does. `None`
    /// when everything fits. Retention at the returned time then removes
    /// the files through [`ChunkFiles::remove_before`], and the series'
    /// places in them, as time retention does.
    pub fn size_cutoff(&self, budget: u64, other: u64) -> Option<i64> {
        let mut total = self.stats.disk_bytes.load(Ordering::Relaxed) + other;
        if total <= budget {
            return None;
        }
        let current = lock(&self.w).out.n;
        let mut files: Vec<(i64, u32)> = lock(&self.ends)
            .iter()
            .filter(|(n, _)| **n != current)
            .map(|(n, end)| (*end, *n))
            .collect();
        files.sort_unstable();
        let mut cutoff = None;
        for (end, n) in files {
            if total <= budget {
                break;
            }
            let path = self.dir.join(name(n));
            let size = fs::metadata(&path).map_or(0, |m| m.len())
                + fs::metadata(super::sealed::index_path(&path)).map_or(0, |m| m.len());
            total = total.saturating_sub(size);
            cutoff = Some(end.saturating_add(1));
        }
        cutoff
    }

    /// Deletes the files whose chunks all end before `min_t`, except the
    /// one being written. Returns how many.
    pub fn remove_before(&self, min_t: i64) -> usize {
        let current = lock(&self.w).out.n;
        let gone: Vec<u32> = lock(&self.ends)
            .iter()
            .filter(|(n, end)| **n != current && **end < min_t)
            .map(|(n, _)| *n)
            .collect();
        if gone.is_empty() {
            return 0;
        }
        let mut removed = 0;
        for n in &gone {
            let path = self.dir.join(name(*n));
            // The index first: an index without its chunk file is removed
            // at start, a chunk file without its index is indexed again.
            let ipath = super::sealed::index_path(&path);
            let isize = fs::metadata(&ipath).map(|m| m.len()).unwrap_or(0);
            if isize > 0 && fs::remove_file(&ipath).is_err() {
                continue;
            }
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0) + isize;
            match fs::remove_file(&path) {
                Ok(()) => {
                    removed += 1;
                    self.stats.disk_bytes.fetch_sub(
                        size.min(self.stats.disk_bytes.load(Ordering::Relaxed)),
                        Ordering::Relaxed,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "could not remove an expired chunk file");
                    continue;
                }
            }
            lock(&self.ends).remove(n);
            lock(&self.closed).retain(|c| c != n);
        }
        self.update_maps(|m| {
            for n in &gone {
                m.files.remove(n);
            }
        });
        self.stats
            .files_removed
            .fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }

    /// Series waiting for their chunks to be written.
    pub fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    /// Replaces the shared maps with `f` applied to a copy of them.
    fn update_maps(&self, f: impl FnOnce(&mut FileMaps)) {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        let mut next = FileMaps {
            files: maps.files.clone(),
            sealed_gen: maps.sealed_gen,
        };
        f(&mut next);
        self.stats
            .files
            .store(next.files.len() as u64, Ordering::Relaxed);
        *maps = Arc::new(next);
    }

    /// Completes the file being written, as its size or age would.
    #[cfg(test)]
    pub(crate) fn complete_current(&self) {
        let mut w = lock(&self.w);
        if w.out.file.is_some() {
            let n = w.out.n;
            w.out.close_and_advance().unwrap();
            lock(&self.closed).push(n);
        }
    }

    /// Lowers the chunks a file takes, so tests see files complete.
    #[cfg(test)]
    pub(crate) fn set_max_file_chunks(&self, n: u32) {
        lock(&self.w).max_chunks = n;
    }

    /// One indexer at a time: hold this from [`Self::next_to_seal`] until
    /// the index is installed.
    pub(crate) fn indexing(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.indexing)
    }

    /// The oldest complete file still to be indexed.
    pub(crate) fn next_to_seal(&self) -> Option<u32> {
        lock(&self.closed).first().copied()
    }

    /// Begins the index of complete file `n`.
    pub(crate) fn begin_index(&self, n: u32) -> std::io::Result<IndexWriter> {
        IndexWriter::create(&self.dir.join(name(n)))
    }

    /// Puts the index of file `n`, written whole, in readers' way: from
    /// the returned generation on, readers look chunks of `n` up in it,
    /// for every series whose own places for `n` are gone.
    pub(crate) fn install_index(&self, n: u32, w: IndexWriter) -> std::io::Result<u32> {
        let path = self.dir.join(name(n));
        w.finish()?;
        let (m, _, _) =
            open_index(&path, n, &self.stats, None).map_err(|d| std::io::Error::other(d.reason))?;
        let mapped = Arc::new(m);
        let mut generation = 0;
        self.update_maps(|maps| {
            maps.files.insert(n, mapped);
            maps.sealed_gen = maps.sealed_gen.wrapping_add(1);
            generation = maps.sealed_gen;
        });
        lock(&self.closed).retain(|c| *c != n);
        Ok(generation)
    }
}

/// Groups scanned chunks by series id, each list in the order written.
pub fn by_series(chunks: Vec<(u32, ChunkMeta)>) -> FastMap<u32, Vec<ChunkMeta>> {
    let mut out: FastMap<u32, Vec<ChunkMeta>> = FastMap::default();
    for (id, m) in chunks {
        out.entry(id).or_default().push(m);
    }
    out
}
