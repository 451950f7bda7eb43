//! The write-ahead log: every series and sample the head takes is logged,
//! so a crash costs at most the last flush.
//!
//! Segments are files `wal/00000001`, `wal/00000002`, … holding records
//! framed as `[len u32 LE][crc32 u32 LE][kind u8][payload]`, where `len`
//! counts the kind byte and the payload and the checksum covers both. A
//! record is written whole by one `write`, so a crash can only tear the
//! last one; replay cuts a segment at its first bad record (torn, zeroed,
//! checksum mismatch), reports the file and offset, and goes on with the
//! next segment.
//!
//! Appends only copy the encoded record into a buffer under a mutex. The
//! store's storage thread hands the buffer to the kernel every
//! [`FLUSH_INTERVAL`] (so a killed process loses at most that much) and
//! fsyncs every `sync_interval` (so a machine that loses power loses at
//! most that much); the scrape and evaluation paths never wait for disk.
//!
//! Series records carry the head's series id, and samples refer to it, so
//! ids are kept across restarts: replay recreates series with their ids and
//! the head goes on numbering after the largest.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::snapshot::{put_histogram, read_histogram};
use super::{Damage, NumberedWriter, WriteChange};
use crate::model::histogram::FloatHistogram;
use crate::model::{ByteReader, Labels, put_signed_varint, put_varint};

/// Directory of the segments inside the storage path.
pub const DIR: &str = "wal";
/// How often buffered records are handed to the kernel. A process that is
/// killed loses what was appended since; the page cache keeps the rest.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// A record longer than this is damage, not data: the largest real ones
/// are a scrape's samples (about 11 bytes each under `sample_limit`).
pub const MAX_RECORD: usize = 256 << 20;

const HEADER: usize = 9;
const KIND_SERIES: u8 = 1;
const KIND_SAMPLES: u8 = 2;
const KIND_HISTOGRAMS: u8 = 3;

/// How the log is written.
#[derive(Clone, Debug)]
pub struct WalOptions {
    /// How often written records are fsynced.
    pub sync_interval: Duration,
    /// A segment is closed and the next begun once it is this long.
    pub segment_bytes: u64,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            sync_interval: Duration::from_secs(1),
            segment_bytes: 64 << 20,
        }
    }
}

/// Counters the log keeps about itself, read by telemetry.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Bytes handed to segment files.
    pub bytes_written: AtomicU64,
    /// Completed fsyncs.
    pub fsyncs: AtomicU64,
    /// Time spent in fsync, in microseconds.
    pub fsync_micros: AtomicU64,
    /// Writes or fsyncs that failed (records in them are not on disk).
    pub write_failures: AtomicU64,
    /// Damaged records found by replay.
    pub corruptions: AtomicU64,
    /// Segments removed because a checkpoint covers them.
    pub truncations: AtomicU64,
    /// Number of the segment being written.
    pub segment: AtomicU64,
    /// Bytes appended but not yet handed to the kernel.
    pub pending_bytes: AtomicU64,
    /// Capacity of the append buffer, for memory accounting.
    pub buffer_capacity: AtomicU64,
}

struct Segment {
    out: NumberedWriter,
    last_sync: Instant,
}

/// The log writer.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    buf: Mutex<Vec<u8>>,
    seg: Mutex<Segment>,
    /// Bumped by every failed write: records were lost from the log (still
    /// in memory), so only a checkpoint taken after it makes the disk
    /// whole again.
    failed_epoch: AtomicU64,
    covered_epoch: AtomicU64,
    closed: AtomicBool,
    /// Counters.
    pub stats: WalStats,
}

/// Appends the record `kind` with `payload` to `out`, framed and
/// checksummed as a segment holds it.
pub fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    let crc = crc.finalize();
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Segment file name for number `n`.
pub fn segment_name(n: u32) -> String {
    super::numbered_name(n)
}

/// Numbers of the segment files in `dir`, ascending. Other files are left
/// alone.
pub fn segments(dir: &Path) -> std::io::Result<Vec<u32>> {
    super::numbered_files(dir)
}

impl Wal {
    /// A writer that starts a new segment after the last one in `dir`
    /// (created if missing); nothing is written until something is logged
    /// and [`Wal::flush`] runs (the store's storage thread calls it every
    /// [`FLUSH_INTERVAL`]).
    pub fn open(dir: &Path, opts: WalOptions) -> std::io::Result<Arc<Wal>> {
        fs::create_dir_all(dir)?;
        let next = segments(dir)?.last().map_or(1, |n| n.saturating_add(1));
        let wal = Arc::new(Wal {
            dir: dir.to_path_buf(),
            opts,
            buf: Mutex::new(Vec::new()),
            seg: Mutex::new(Segment {
                out: NumberedWriter::new(next),
                last_sync: Instant::now(),
            }),
            failed_epoch: AtomicU64::new(0),
            covered_epoch: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            stats: WalStats::default(),
        });
        wal.stats.segment.store(u64::from(next), Ordering::Relaxed);
        Ok(wal)
    }

    /// The directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one framed record of `kind` to the buffer.
    fn append(&self, kind: u8, payload: &[u8]) {
        if payload.is_empty() || self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut b = lock(&self.buf);
        frame(kind, payload, &mut b);
        self.stats
            .pending_bytes
            .store(b.len() as u64, Ordering::Relaxed);
    }

    /// Logs new series.
    pub fn log_series(&self, rec: &SeriesRecord) {
        self.append(KIND_SERIES, &rec.0);
    }

    /// Logs float samples.
    pub fn log_samples(&self, rec: &SamplesRecord) {
        self.append(KIND_SAMPLES, &rec.out);
    }

    /// Logs native histogram samples.
    pub fn log_histograms(&self, rec: &HistogramsRecord) {
        self.append(KIND_HISTOGRAMS, &rec.0);
    }

    /// Hands buffered records to the kernel, and fsyncs when `sync` is set
    /// or the sync interval has passed. Failures are counted and logged
    /// once per cause; the records are dropped from the log (the head still
    /// has them) and [`Wal::needs_checkpoint`] turns true.
    pub fn flush(&self, sync: bool) -> std::io::Result<()> {
        let mut seg = lock(&self.seg);
        let written = self.stats.bytes_written.load(Ordering::Relaxed);
        let res = self.flush_locked(&mut seg, sync);
        if res.is_err() {
            self.stats.write_failures.fetch_add(1, Ordering::Relaxed);
            self.failed_epoch.fetch_add(1, Ordering::Relaxed);
        }
        let wrote = self.stats.bytes_written.load(Ordering::Relaxed) != written;
        let segment = self.dir.join(segment_name(seg.out.n));
        match (seg.out.note(&res, wrote), &res) {
            (Some(WriteChange::Resumed), _) => {
                tracing::info!(segment = %segment.display(), "write-ahead log writes succeed again");
            }
            (Some(WriteChange::NewFailure), Err(e)) => {
                tracing::error!(error = %e, segment = %segment.display(), "write-ahead log write failed; samples stay in memory and are written by the next checkpoint (logged once per cause)");
            }
            _ => {}
        }
        res
    }

    fn flush_locked(&self, seg: &mut Segment, sync: bool) -> std::io::Result<()> {
        // Taken under the segment lock, so buffers reach the file in the
        // order they were filled even with a cut or close racing.
        let bytes = {
            let mut b = lock(&self.buf);
            // The next buffer is sized for what this interval logged, so a
            // burst (the first scrape's series, an import) is not kept.
            let keep = b.len().clamp(64 << 10, 16 << 20);
            let out = std::mem::replace(&mut *b, Vec::with_capacity(keep));
            self.stats.pending_bytes.store(0, Ordering::Relaxed);
            self.stats
                .buffer_capacity
                .store(keep as u64, Ordering::Relaxed);
            out
        };
        if !bytes.is_empty() {
            if seg.out.file.is_none() {
                let path = self.dir.join(segment_name(seg.out.n));
                let f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                let len = f.metadata()?.len();
                crate::model::sync_dir(&self.dir);
                seg.out.begin(f, len);
            }
            seg.out.append(&bytes)?;
            self.stats
                .bytes_written
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        if seg.out.dirty() && (sync || seg.last_sync.elapsed() >= self.opts.sync_interval) {
            let start = Instant::now();
            if seg.out.sync()? {
                self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .fsync_micros
                    .fetch_add(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            seg.last_sync = Instant::now();
        }
        if seg.out.len >= self.opts.segment_bytes {
            self.next_segment(seg)?;
        }
        Ok(())
    }

    fn next_segment(&self, seg: &mut Segment) -> std::io::Result<()> {
        seg.out.close_and_advance()?;
        self.stats
            .segment
            .store(u64::from(seg.out.n), Ordering::Relaxed);
        Ok(())
    }

    /// Writes and fsyncs everything logged so far and starts a new segment;
    /// returns its number and the failure epoch at the cut. Everything
    /// logged before the call is in segments before the returned one, so a
    /// checkpoint of the head taken after this covers them.
    pub fn cut(&self) -> std::io::Result<(u32, u64)> {
        let mut seg = lock(&self.seg);
        let epoch = self.failed_epoch.load(Ordering::Relaxed);
        self.flush_locked(&mut seg, true)?;
        if seg.out.file.is_some() || seg.out.len > 0 {
            self.next_segment(&mut seg)?;
        }
        Ok((seg.out.n, epoch))
    }

    /// Removes the segments before `n` (a checkpoint covers them) and
    /// records that the failures up to `epoch` are covered. Returns the
    /// number removed.
    pub fn truncate_before(&self, n: u32, epoch: u64) -> std::io::Result<usize> {
        self.covered_epoch.fetch_max(epoch, Ordering::Relaxed);
        remove_segments_before(&self.dir, n, &self.stats)
    }

    /// True when writes failed since the last checkpoint: the log misses
    /// records, and a checkpoint should be taken as soon as one succeeds.
    pub fn needs_checkpoint(&self) -> bool {
        self.failed_epoch.load(Ordering::Relaxed) > self.covered_epoch.load(Ordering::Relaxed)
    }

    /// True while writes are failing.
    pub fn failing(&self) -> bool {
        lock(&self.seg).out.failing()
    }

    /// Writes and fsyncs what is buffered; later appends are ignored.
    pub fn close(&self) -> std::io::Result<()> {
        let res = self.flush(true);
        self.closed.store(true, Ordering::Relaxed);
        res
    }
}

/// Removes the segment files before `n` from `dir`.
pub fn remove_segments_before(dir: &Path, n: u32, stats: &WalStats) -> std::io::Result<usize> {
    let mut removed = 0;
    for s in segments(dir)?.into_iter().filter(|s| *s < n) {
        fs::remove_file(dir.join(segment_name(s)))?;
        removed += 1;
    }
    if removed > 0 {
        crate::model::sync_dir(dir);
        stats
            .truncations
            .fetch_add(removed as u64, Ordering::Relaxed);
    }
    Ok(removed)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values stay consistent across a panic (a byte buffer, a
    // file handle and offsets updated after each successful write).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// New series, encoded for the log: `[id varint][label count varint]` then
/// each name and value as a varint length and bytes.
#[derive(Default)]
pub struct SeriesRecord(Vec<u8>);

impl SeriesRecord {
    /// The encoded payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Adds one series.
    pub fn push(&mut self, id: u32, labels: &Labels) {
        put_varint(&mut self.0, u64::from(id));
        put_varint(&mut self.0, labels.len() as u64);
        for l in labels.iter() {
            put_varint(&mut self.0, l.name.len() as u64);
            self.0.extend_from_slice(l.name.as_bytes());
            put_varint(&mut self.0, l.value.len() as u64);
            self.0.extend_from_slice(l.value.as_bytes());
        }
    }
}

/// Float samples, encoded for the log: the first as `[id varint][t zigzag]
/// [value u64 LE]`, the rest with id and time as deltas from the previous
/// sample, so a scrape's samples take about 11 bytes each.
#[derive(Default)]
pub struct SamplesRecord {
    out: Vec<u8>,
    prev_id: i64,
    prev_t: i64,
}

impl SamplesRecord {
    /// Adds one sample.
    pub fn push(&mut self, id: u32, t: i64, v: f64) {
        put_signed_varint(&mut self.out, i64::from(id) - self.prev_id);
        put_signed_varint(&mut self.out, t.wrapping_sub(self.prev_t));
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        self.prev_id = i64::from(id);
        self.prev_t = t;
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

/// Native histogram samples: `[id varint][t zigzag]` then the histogram
/// as the snapshot encodes it.
#[derive(Default)]
pub struct HistogramsRecord(Vec<u8>);

impl HistogramsRecord {
    /// Adds one sample.
    pub fn push(&mut self, id: u32, t: i64, h: &FloatHistogram) {
        put_varint(&mut self.0, u64::from(id));
        put_signed_varint(&mut self.0, t);
        // Writing to a Vec cannot fail.
        let _ = put_histogram(&mut self.0, h);
    }

    /// True if nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One decoded record.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// New series with their ids.
    Series(Vec<(u32, Labels)>),
    /// Float samples: series id, time, value.
    Samples(Vec<(u32, i64, f64)>),
    /// Native histogram samples.
    Histograms(Vec<(u32, i64, Arc<FloatHistogram>)>),
}

fn decode(kind: u8, payload: &[u8]) -> Option<Record> {
    let mut r = ByteReader::new(payload, 0);
    let id = |r: &mut ByteReader| u32::try_from(r.varint()?).ok();
    match kind {
        KIND_SERIES => {
            let mut out = Vec::new();
            while r.remaining() > 0 {
                let id = id(&mut r)?;
                let n = r.varint()?;
                // Each label takes at least two bytes.
                if n > r.remaining() as u64 / 2 {
                    return None;
                }
                let mut pairs = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let name = std::str::from_utf8(r.varint_sized()?).ok()?;
                    let value = std::str::from_utf8(r.varint_sized()?).ok()?;
                    pairs.push((name.to_string(), value.to_string()));
                }
                out.push((id, Labels::from_pairs(pairs)));
            }
            Some(Record::Series(out))
        }
        KIND_SAMPLES => {
            let mut out = Vec::with_capacity(payload.len() / 10);
            let (mut pid, mut pt) = (0i64, 0i64);
            while r.remaining() > 0 {
                pid = pid.checked_add(r.signed_varint()?)?;
                pt = pt.wrapping_add(r.signed_varint()?);
                let v = f64::from_bits(r.u64()?);
                out.push((u32::try_from(pid).ok()?, pt, v));
            }
            Some(Record::Samples(out))
        }
        KIND_HISTOGRAMS => {
            let mut out = Vec::new();
            while r.remaining() > 0 {
                let id = id(&mut r)?;
                let t = r.signed_varint()?;
                out.push((id, t, Arc::new(read_histogram(&mut r)?)));
            }
            Some(Record::Histograms(out))
        }
        _ => None,
    }
}

/// What a replay read.
#[derive(Debug, Default)]
pub struct ReplayReport {
    /// Segments read.
    pub segments: usize,
    /// Records read.
    pub records: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Damage found; each damaged segment is cut at its first bad record.
    pub damage: Vec<Damage>,
}

/// Reads the segments numbered `from` and later, in order, handing each
/// record to `visit`. A segment is read up to its first damaged record;
/// with `repair`, the file is then cut there, so the damage is reported
/// once and new segments are never written after garbage.
pub fn replay(
    dir: &Path,
    from: u32,
    repair: bool,
    mut visit: impl FnMut(Record),
) -> std::io::Result<ReplayReport> {
    let mut rep = ReplayReport::default();
    // One buffer for every record: replay holds one record at a time, not
    // a segment.
    let mut body = Vec::new();
    for n in segments(dir)?.into_iter().filter(|n| *n >= from) {
        let path = dir.join(segment_name(n));
        let file = File::open(&path)?;
        let size = file.metadata()?.len();
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        rep.segments += 1;
        let mut pos = 0u64;
        let bad = loop {
            if pos == size {
                break None;
            }
            let mut h = [0u8; 8];
            if size - pos < HEADER as u64 {
                break Some("torn record header");
            }
            r.read_exact(&mut h)?;
            let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if len == 0 {
                break Some(if h.iter().all(|b| *b == 0) && rest_is_zero(&mut r)? {
                    "zeroed"
                } else {
                    "record of length 0"
                });
            }
            if len > MAX_RECORD {
                break Some("record length out of bounds");
            }
            // Checked against the file before anything is allocated, so a
            // damaged length costs no memory.
            if len as u64 > size - pos - 8 {
                break Some("torn record (file ends inside it)");
            }
            body.clear();
            body.resize(len, 0);
            r.read_exact(&mut body)?;
            if crc32fast::hash(&body) != crc {
                break Some("checksum mismatch");
            }
            match decode(body[0], &body[1..]) {
                Some(rec) => visit(rec),
                None => break Some("malformed record with a valid checksum"),
            }
            rep.records += 1;
            pos += 8 + len as u64;
        };
        rep.bytes += pos;
        if let Some(reason) = bad {
            rep.damage.push(Damage {
                file: path.clone(),
                offset: pos,
                dropped_bytes: size - pos,
                reason: reason.to_string(),
            });
            if repair {
                let f = fs::OpenOptions::new().write(true).open(&path)?;
                f.set_len(pos)?;
                f.sync_all()?;
            }
        }
    }
    Ok(rep)
}

/// True when everything left to read is zero bytes (a preallocated or
/// zeroed tail rather than a damaged record).
fn rest_is_zero(r: &mut impl Read) -> std::io::Result<bool> {
    let mut buf = [0u8; 64 << 10];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", v)])
    }

    fn read_all(dir: &Path, repair: bool) -> (Vec<Record>, ReplayReport) {
        let mut got = Vec::new();
        let rep = replay(dir, 0, repair, |r| got.push(r)).unwrap();
        (got, rep)
    }

    fn write_some(dir: &Path) -> Arc<Wal> {
        let w = Wal::open(dir, WalOptions::default()).unwrap();
        let mut s = SeriesRecord::default();
        s.push(7, &labels("a"));
        s.push(8, &labels("é"));
        w.log_series(&s);
        let mut x = SamplesRecord::default();
        x.push(7, 1_000, 1.5);
        x.push(8, 999, f64::from_bits(0x7ff0_0000_0000_0002));
        x.push(7, -5, -0.0);
        w.log_samples(&x);
        let mut h = HistogramsRecord::default();
        let hist = FloatHistogram {
            count: 3.0,
            sum: 1.0,
            positive: vec![(1, 3.0)],
            ..Default::default()
        };
        h.push(8, 2_000, &hist);
        w.log_histograms(&h);
        w.flush(true).unwrap();
        w
    }

    #[test]
    fn records_round_trip_through_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_some(dir.path());
        let (got, rep) = read_all(dir.path(), false);
        assert!(rep.damage.is_empty());
        assert_eq!(rep.records, 3);
        assert_eq!(
            got[0],
            Record::Series(vec![(7, labels("a")), (8, labels("é"))])
        );
        let Record::Samples(s) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(s[0], (7, 1_000, 1.5));
        assert_eq!(
            (s[1].0, s[1].1, s[1].2.to_bits()),
            (8, 999, 0x7ff0_0000_0000_0002)
        );
        assert_eq!(
            (s[2].0, s[2].1, s[2].2.to_bits()),
            (7, -5, (-0.0f64).to_bits())
        );
        let Record::Histograms(h) = &got[2] else {
            panic!("{:?}", got[2])
        };
        assert_eq!(h[0].2.positive, vec![(1, 3.0)]);
        // A cut starts a new file; truncation removes what it covers.
        let (n, epoch) = w.cut().unwrap();
        assert_eq!(n, 2);
        write_one_sample(&w, 9);
        w.flush(true).unwrap();
        assert_eq!(segments(dir.path()).unwrap(), vec![1, 2]);
        assert_eq!(w.truncate_before(n, epoch).unwrap(), 1);
        let (got, _) = read_all(dir.path(), false);
        assert_eq!(got, vec![Record::Samples(vec![(9, 10, 1.0)])]);
        w.close().unwrap();
        // A reopened log continues after the last segment.
        let w = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(w.stats.segment.load(Ordering::Relaxed), 3);
    }

    fn write_one_sample(w: &Wal, id: u32) {
        let mut x = SamplesRecord::default();
        x.push(id, 10, 1.0);
        w.log_samples(&x);
    }

    #[test]
    fn damage_is_cut_at_the_first_bad_record_and_reported_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let w = write_some(dir.path());
        w.close().unwrap();
        let path = dir.path().join(segment_name(1));
        let good = fs::read(&path).unwrap();
        // The offset of the third record: the first two are whole.
        let (_, rep) = read_all(dir.path(), false);
        assert_eq!(rep.bytes, good.len() as u64);
        let first_len = u32::from_le_bytes(good[0..4].try_into().unwrap()) as usize + 8;
        let second_len =
            u32::from_le_bytes(good[first_len..first_len + 4].try_into().unwrap()) as usize + 8;
        let third = first_len + second_len;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("torn record", good[..good.len() - 3].to_vec()),
            ("torn record header", good[..third + 4].to_vec()),
            ("checksum mismatch", {
                let mut b = good.clone();
                b[third + 12] ^= 1;
                b
            }),
            ("zeroed", {
                let mut b = good.clone();
                b[third..].iter_mut().for_each(|x| *x = 0);
                b
            }),
        ];
        for (want, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            let (got, rep) = read_all(dir.path(), true);
            assert_eq!(got.len(), 2, "{want}: everything before the damage is read");
            assert_eq!(rep.damage.len(), 1, "{want}");
            let d = &rep.damage[0];
            assert!(d.reason.starts_with(want), "{want}: {d}");
            assert_eq!(d.offset, third as u64, "{want}");
            assert_eq!(d.file, path);
            // Repaired: a second replay finds no damage and the same records.
            let (again, rep) = read_all(dir.path(), true);
            assert_eq!(again.len(), 2);
            assert!(rep.damage.is_empty(), "{want}: {:?}", rep.damage);
        }
    }

    /// The encoding is a file format: these bytes (also the fuzz seed in
    /// fuzz/seed.sh) must keep meaning the same series and samples.
    #[test]
    fn the_record_encoding_is_stable() {
        let mut s = SeriesRecord::default();
        s.push(1, &Labels::from_pairs([("__name__", "up"), ("job", "a")]));
        assert_eq!(s.0, b"\x01\x02\x08__name__\x02up\x03job\x01a");
        let mut x = SamplesRecord::default();
        x.push(1, 1000, 1.0);
        x.push(1, 2000, 2.0);
        let mut want = vec![0x02, 0xd0, 0x0f];
        want.extend_from_slice(&1.0f64.to_bits().to_le_bytes());
        want.extend_from_slice(&[0x00, 0xd0, 0x0f]);
        want.extend_from_slice(&2.0f64.to_bits().to_le_bytes());
        assert_eq!(x.out, want);
        assert_eq!(
            decode(KIND_SAMPLES, &want),
            Some(Record::Samples(vec![(1, 1000, 1.0), (1, 2000, 2.0)]))
        );
        let mut framed = Vec::new();
        frame(KIND_SERIES, &s.0, &mut framed);
        assert_eq!(&framed[..4], &21u32.to_le_bytes());
        assert_eq!(framed[8], KIND_SERIES);
    }

    #[test]
    fn crafted_records_with_valid_checksums_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        write_some(dir.path()).close().unwrap();
        let path = dir.path().join(segment_name(1));
        let good = fs::read(&path).unwrap();
        let mut pos = 0;
        while pos < good.len() {
            let len = u32::from_le_bytes(good[pos..pos + 4].try_into().unwrap()) as usize;
            for i in 0..len {
                for val in [0u8, 0xff, 0x80, good[pos + 8 + i].wrapping_add(1)] {
                    let mut body = good[pos + 8..pos + 8 + len].to_vec();
                    body[i] = val;
                    let _ = decode(body[0], &body[1..]);
                }
            }
            pos += 8 + len;
        }
    }
}
