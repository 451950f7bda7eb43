//! Crash-safe snapshots of the head: the checkpoint the store writes.
//!
//! Format 4: magic `ARGUSSNP`, the version (u32 LE), a header of the first
//! write-ahead log segment the checkpoint does not cover (u32), the next
//! series id (u32: ids are never reused, as chunk files name series by id)
//! and the number of series (u64), with the header's CRC-32 (u32); then
//! one record a series, `[length u32][CRC-32 u32][body]`, the body being
//! the series id, its labels, the full chunks not yet in chunk files, the
//! open chunk and the native histogram samples. A damaged record costs
//! that series only, and the file is read as a stream, never whole.
//!
//! Formats 1 to 3 (before chunk files; every chunk inside) were one block
//! with a CRC-32 at the end; they still load (1 and 2 without ids, 1
//! without histograms). Written to a temporary file, fsynced, renamed over
//! the old one and the directory fsynced, so a crash at any point leaves
//! either the old or the new snapshot, whole.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::Arc;

use super::Damage;
use super::StorageError;
use super::chunk::{FrozenChunk, XorChunk};
use super::head::Head;
use crate::model::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{ByteReader, FastMap, Label, Labels};

const MAGIC: &[u8; 8] = b"ARGUSSNP";
const VERSION: u32 = 4;
/// File name of the snapshot inside the storage directory.
pub const FILE_NAME: &str = "head.snapshot";

fn err(path: &Path, msg: impl Into<String>) -> StorageError {
    StorageError::Snapshot {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(b)
}

pub(super) fn put_histogram(w: &mut impl Write, h: &FloatHistogram) -> std::io::Result<()> {
    w.write_all(&h.schema.to_le_bytes())?;
    for f in [h.zero_threshold, h.zero_count, h.count, h.sum] {
        w.write_all(&f.to_le_bytes())?;
    }
    let hint: u8 = match h.counter_reset_hint {
        CounterResetHint::Unknown => 0,
        CounterResetHint::Reset => 1,
        CounterResetHint::NotReset => 2,
        CounterResetHint::Gauge => 3,
    };
    w.write_all(&[hint])?;
    for side in [&h.positive, &h.negative] {
        w.write_all(&(side.len() as u32).to_le_bytes())?;
        for (i, c) in side {
            w.write_all(&i.to_le_bytes())?;
            w.write_all(&c.to_le_bytes())?;
        }
    }
    w.write_all(&(h.custom_values.len() as u32).to_le_bytes())?;
    for v in &h.custom_values {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Summary of a written or loaded snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotInfo {
    /// Series in the snapshot.
    pub series: usize,
    /// File size in bytes.
    pub bytes: u64,
    /// The first write-ahead log segment not covered: replay starts there.
    pub wal_from: u32,
    /// Damaged series records skipped, or where the file ended early.
    pub damage: Vec<Damage>,
}

/// A series record longer than this is damage, not data.
const MAX_RECORD: usize = 256 << 20;

/// Writes `head` to `dir/head.snapshot` atomically, recording that log
/// segments before `wal_from` are covered by it.
pub fn write(head: &Head, dir: &Path, wal_from: u32) -> Result<SnapshotInfo, StorageError> {
    let info = write_tmp(head, dir, wal_from)?;
    install(dir)?;
    Ok(info)
}

/// Writes `head` to a temporary file beside the snapshot and fsyncs it;
/// [`install`] then puts it in place. Between the two a checkpoint makes
/// sure everything the file leaves out (chunks written to chunk files) is
/// on disk.
pub fn write_tmp(head: &Head, dir: &Path, wal_from: u32) -> Result<SnapshotInfo, StorageError> {
    fs::create_dir_all(dir).map_err(|e| err(dir, format!("create directory: {e}")))?;
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let file = File::create(&tmp).map_err(|e| err(&tmp, format!("create: {e}")))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| err(&tmp, format!("write: {e}"));
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
    let series = head.all_series();
    let mut header = Vec::with_capacity(16);
    header.extend_from_slice(&wal_from.to_le_bytes());
    // Taken before the walk: every series in the file has a smaller id.
    header.extend_from_slice(&head.next_id().to_le_bytes());
    header.extend_from_slice(&(series.len() as u64).to_le_bytes());
    w.write_all(&header).map_err(io)?;
    w.write_all(&crc32fast::hash(&header).to_le_bytes())
        .map_err(io)?;
    let mut body = Vec::new();
    for s in &series {
        body.clear();
        let labels = head.labels_of(s);
        // Writing to a Vec cannot fail.
        let _ = encode_series(&mut body, s.id, &labels, &s.lock());
        w.write_all(&(body.len() as u32).to_le_bytes())
            .map_err(io)?;
        w.write_all(&crc32fast::hash(&body).to_le_bytes())
            .map_err(io)?;
        w.write_all(&body).map_err(io)?;
    }
    let file = w
        .into_inner()
        .map_err(|e| err(&tmp, format!("flush: {}", e.error())))?;
    file.sync_all()
        .map_err(|e| err(&tmp, format!("fsync: {e}")))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(SnapshotInfo {
        series: series.len(),
        bytes,
        wal_from,
        damage: Vec::new(),
    })
}

/// One series record's body.
fn encode_series(
    w: &mut Vec<u8>,
    id: u32,
    labels: &Labels,
    d: &super::head::SeriesData,
) -> std::io::Result<()> {
    w.write_all(&id.to_le_bytes())?;
    w.write_all(&(labels.len() as u32).to_le_bytes())?;
    for l in labels.iter() {
        put_bytes(w, l.name.as_bytes())?;
        put_bytes(w, l.value.as_bytes())?;
    }
    w.write_all(&(d.frozen.len() as u32).to_le_bytes())?;
    for c in &d.frozen {
        w.write_all(&c.word().to_le_bytes())?;
        w.write_all(&c.min_t().to_le_bytes())?;
        w.write_all(&c.max_t().to_le_bytes())?;
        put_bytes(w, c.stream())?;
    }
    w.write_all(&d.head.len().to_le_bytes())?;
    put_bytes(w, d.head.bytes())?;
    w.write_all(&(d.hists.len() as u32).to_le_bytes())?;
    for (t, h) in &d.hists {
        w.write_all(&t.to_le_bytes())?;
        put_histogram(w, h)?;
    }
    Ok(())
}

/// What one series record holds.
struct SeriesParts {
    id: Option<u32>,
    labels: Labels,
    frozen: Vec<FrozenChunk>,
    open: XorChunk,
    hists: Vec<(i64, Arc<FloatHistogram>)>,
}

/// Reads one series as format `version` writes it.
fn parse_series(r: &mut ByteReader, version: u32) -> Option<SeriesParts> {
    let id = if version >= 3 { Some(r.u32()?) } else { None };
    let nl = r.u32()?;
    let mut labels = Vec::with_capacity(nl.min(1024) as usize);
    for _ in 0..nl {
        let name = read_str(r)?;
        let value = read_str(r)?;
        labels.push(Label::new(name, value));
    }
    let labels = Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)));
    let nf = r.u32()?;
    let mut frozen = Vec::with_capacity(nf.min(4096) as usize);
    for _ in 0..nf {
        let word = r.u16()?;
        let min_t = r.i64()?;
        let max_t = r.i64()?;
        let bytes = r.sized()?;
        let c = FrozenChunk::from_parts(bytes, word, max_t)?;
        if c.min_t() != min_t {
            return None;
        }
        frozen.push(c);
    }
    let hc = r.u16()?;
    let hb = r.sized()?;
    let open = if hc == 0 {
        XorChunk::new()
    } else {
        XorChunk::from_bytes(hb, hc)?
    };
    let mut hists = Vec::new();
    if version >= 2 {
        let nh = r.u32()?;
        for _ in 0..nh {
            let t = r.i64()?;
            hists.push((t, Arc::new(read_histogram(r)?)));
        }
    }
    Some(SeriesParts {
        id,
        labels,
        frozen,
        open,
        hists,
    })
}

/// Puts one parsed series into `head`.
fn restore(head: &Head, p: SeriesParts, remap: &mut FastMap<u32, u32>) -> Result<(), StorageError> {
    let s = match p.id {
        Some(id) => head.restore_series(id, &p.labels, remap),
        None => head.get_or_create(&p.labels),
    }?;
    s.restore(p.frozen, p.open, p.hists);
    Ok(())
}

/// Renames the file [`write_tmp`] wrote over the snapshot, and fsyncs the
/// directory so the rename itself persists.
pub fn install(dir: &Path) -> Result<(), StorageError> {
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    fs::rename(&tmp, &path).map_err(|e| err(&path, format!("rename: {e}")))?;
    crate::model::sync_dir(dir);
    Ok(())
}

/// A native histogram record.
pub(super) fn read_histogram(r: &mut ByteReader) -> Option<FloatHistogram> {
    let schema = r.i32()?;
    let (zero_threshold, zero_count, count, sum) = (r.f64()?, r.f64()?, r.f64()?, r.f64()?);
    let counter_reset_hint = match r.take(1)?[0] {
        0 => CounterResetHint::Unknown,
        1 => CounterResetHint::Reset,
        2 => CounterResetHint::NotReset,
        3 => CounterResetHint::Gauge,
        _ => return None,
    };
    let mut sides = [Vec::new(), Vec::new()];
    for side in sides.iter_mut() {
        let n = r.u32()? as usize;
        // Each bucket takes 12 bytes; a count past the data is damage.
        if n > r.remaining() / 12 {
            return None;
        }
        for _ in 0..n {
            let i = r.i32()?;
            side.push((i, r.f64()?));
        }
    }
    let n = r.u32()? as usize;
    if n > r.remaining() / 8 {
        return None;
    }
    let custom_values = (0..n).map(|_| r.f64()).collect::<Option<Vec<_>>>()?;
    let [positive, negative] = sides;
    Some(FloatHistogram {
        schema,
        zero_threshold,
        zero_count,
        count,
        sum,
        positive,
        negative,
        custom_values,
        counter_reset_hint,
    })
}

/// A length-prefixed UTF-8 string.
fn read_str<'a>(r: &mut ByteReader<'a>) -> Option<&'a str> {
    std::str::from_utf8(r.sized()?).ok()
}

/// Loads `dir/head.snapshot` into a new head. A missing file gives an empty
/// head. A damaged file is an error; see [`load_or_quarantine`].
pub fn load(dir: &Path) -> Result<(Arc<Head>, SnapshotInfo), StorageError> {
    let head = Arc::new(Head::new());
    let info = load_into(&head, dir, &mut FastMap::default())?;
    Ok((head, info))
}

/// Loads `dir/head.snapshot` into `head`, which should be empty; series
/// keep their ids, and `remap` says where an id had to change (see
/// `Head::restore_series`). A missing file loads nothing. A file whose
/// header cannot be read (or, before format 4, that fails its checksum) is
/// an error, and `head` may then hold part of it; in format 4 a damaged
/// series record is skipped and a file that ends early stops the load,
/// each reported in [`SnapshotInfo::damage`] with its offset.
pub fn load_into(
    head: &Head,
    dir: &Path,
    remap: &mut FastMap<u32, u32>,
) -> Result<SnapshotInfo, StorageError> {
    let path = dir.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SnapshotInfo::default());
        }
        Err(e) => return Err(err(&path, format!("read: {e}"))),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head12 = [0u8; 12];
    if r.read_exact(&mut head12).is_err() || &head12[..8] != MAGIC {
        return Err(err(&path, "not an argus snapshot (bad magic or too short)"));
    }
    let version = u32::from_le_bytes([head12[8], head12[9], head12[10], head12[11]]);
    match version {
        1..=3 => {
            let mut data = head12.to_vec();
            r.read_to_end(&mut data)
                .map_err(|e| err(&path, format!("read: {e}")))?;
            load_whole(head, &path, &data, version, remap)
        }
        4 => load_records(head, &path, r, len, remap),
        _ => Err(err(
            &path,
            format!("unsupported snapshot version {version}"),
        )),
    }
}

/// Format 4: a checked header, then one checksummed record a series.
fn load_records(
    head: &Head,
    path: &Path,
    mut r: BufReader<File>,
    len: u64,
    remap: &mut FastMap<u32, u32>,
) -> Result<SnapshotInfo, StorageError> {
    let mut h = [0u8; 20];
    r.read_exact(&mut h)
        .map_err(|_| err(path, "truncated header"))?;
    let want = u32::from_le_bytes([h[16], h[17], h[18], h[19]]);
    if crc32fast::hash(&h[..16]) != want {
        return Err(err(path, "header checksum mismatch"));
    }
    let wal_from = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
    head.reserve_ids(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
    let mut nb = [0u8; 8];
    nb.copy_from_slice(&h[8..16]);
    let n = u64::from_le_bytes(nb);
    let mut info = SnapshotInfo {
        bytes: len,
        wal_from,
        ..Default::default()
    };
    let mut pos = 32u64;
    let mut damage = |offset: u64, reason: String, rest: bool| {
        info.damage.push(Damage {
            file: path.to_path_buf(),
            offset,
            dropped_bytes: if rest { len.saturating_sub(offset) } else { 0 },
            reason,
        });
    };
    let mut body = Vec::new();
    let mut restored = 0usize;
    for i in 0..n {
        let mut rh = [0u8; 8];
        if r.read_exact(&mut rh).is_err() {
            damage(pos, format!("file ends after {i} of {n} series"), true);
            break;
        }
        let blen = u32::from_le_bytes([rh[0], rh[1], rh[2], rh[3]]) as usize;
        let crc = u32::from_le_bytes([rh[4], rh[5], rh[6], rh[7]]);
        if blen == 0 || blen > MAX_RECORD {
            damage(
                pos,
                format!("series record {i}: length {blen} out of bounds"),
                true,
            );
            break;
        }
        body.resize(blen, 0);
        if r.read_exact(&mut body).is_err() {
            damage(
                pos,
                format!("file ends inside series record {i} of {n}"),
                true,
            );
            break;
        }
        let at = pos;
        pos += 8 + blen as u64;
        if crc32fast::hash(&body) != crc {
            damage(
                at,
                format!("series record {i}: checksum mismatch (series skipped)"),
                false,
            );
            continue;
        }
        match parse_series(&mut ByteReader::new(&body, 0), 4) {
            Some(p) => match restore(head, p, remap) {
                Ok(()) => restored += 1,
                Err(e) => damage(
                    at,
                    format!("series record {i}: {e} (series skipped)"),
                    false,
                ),
            },
            None => damage(
                at,
                format!("series record {i} is malformed (series skipped)"),
                false,
            ),
        }
    }
    info.series = restored;
    Ok(info)
}

/// Formats 1 to 3: the whole file, checked by the CRC-32 at its end.
fn load_whole(
    head: &Head,
    path: &Path,
    data: &[u8],
    version: u32,
    remap: &mut FastMap<u32, u32>,
) -> Result<SnapshotInfo, StorageError> {
    if data.len() < MAGIC.len() + 4 + 8 + 4 {
        return Err(err(path, "not an argus snapshot (too short)"));
    }
    let (body, tail) = data.split_at(data.len() - 4);
    let want = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32fast::hash(body) != want {
        return Err(err(
            path,
            "checksum mismatch: file is truncated or corrupted",
        ));
    }
    let mut r = ByteReader::new(body, 12);
    let wal_from = if version >= 3 {
        r.u32().ok_or_else(|| err(path, "truncated header"))?
    } else {
        0
    };
    let n = r.u64().ok_or_else(|| err(path, "truncated header"))?;
    for i in 0..n {
        let bad = || err(path, format!("series record {i} is malformed"));
        let p = parse_series(&mut r, version).ok_or_else(bad)?;
        restore(head, p, remap).map_err(|_| bad())?;
    }
    if r.pos() != body.len() {
        return Err(err(path, "trailing bytes after the last series"));
    }
    Ok(SnapshotInfo {
        series: n as usize,
        bytes: data.len() as u64,
        wal_from,
        damage: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Appender, Queryable};

    #[test]
    fn roundtrip_and_corruption_detection() {
        let dir = tempfile::tempdir().unwrap();
        let head = Arc::new(Head::new());
        let mut a = head.appender();
        for s in 0..20 {
            let l = Labels::from_pairs([("__name__", "m".to_string()), ("s", s.to_string())]);
            for i in 0..300 {
                a.append(&l, i * 1000, (i * s) as f64).unwrap();
            }
        }
        // A series of native histograms, with a custom-bucket one last.
        let hl = Labels::from_pairs([("__name__", "h")]);
        let exp = FloatHistogram {
            schema: 1,
            zero_threshold: 0.001,
            zero_count: 2.0,
            count: 9.0,
            sum: -3.5,
            positive: vec![(0, 1.0), (3, 2.0)],
            negative: vec![(-2, 4.0)],
            ..Default::default()
        };
        let nhcb = FloatHistogram {
            schema: crate::model::histogram::CUSTOM_BUCKETS_SCHEMA,
            count: 3.0,
            sum: 7.0,
            positive: vec![(0, 1.0), (1, 2.0)],
            custom_values: vec![0.5],
            counter_reset_hint: CounterResetHint::Gauge,
            ..Default::default()
        };
        a.append_histogram(&hl, 1_000, Arc::new(exp)).unwrap();
        a.append_histogram(&hl, 2_000, Arc::new(nhcb)).unwrap();
        a.commit();
        let info = write(&head, dir.path(), 1).unwrap();
        assert_eq!(info.series, 21);
        let (back, _) = load(dir.path()).unwrap();
        assert_eq!(back.select(&[], 0, i64::MAX), head.select(&[], 0, i64::MAX));
        let h = crate::model::Matcher::new(crate::model::MatchOp::Equal, "__name__", "h").unwrap();
        let got = back.select(&[h], 0, i64::MAX);
        assert_eq!(got[0].histograms.len(), 2);
        assert_eq!(got[0].histograms[1].1.custom_values, vec![0.5]);
        // The restored open chunk keeps taking appends.
        let mut a = back.appender();
        let l = Labels::from_pairs([("__name__", "m"), ("s", "3")]);
        a.append(&l, 300_000, 1.0).unwrap();
        assert_eq!(a.commit().appended, 1);

        // A flipped byte costs the series whose record holds it, and is
        // reported with the record's offset; a cut-off file stops the load
        // where it ends. Either way the rest is read.
        let path = dir.path().join(FILE_NAME);
        let good = fs::read(&path).unwrap();
        let mut bytes = good.clone();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (back, info) = load(dir.path()).unwrap();
        assert_eq!(info.damage.len(), 1, "{:?}", info.damage);
        assert!(info.damage[0].reason.contains("checksum mismatch"));
        assert!(info.damage[0].offset <= mid as u64);
        assert_eq!(info.series, 20);
        assert_eq!(back.num_series(), 20);
        fs::write(&path, &good[..mid]).unwrap();
        let (back, info) = load(dir.path()).unwrap();
        assert!(info.damage[0].reason.contains("ends"), "{:?}", info.damage);
        assert!(back.num_series() > 0 && back.num_series() < 21);
        // A damaged header is an error: where the log starts is unknown.
        let mut bytes = good.clone();
        bytes[14] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let e = load(dir.path()).err().unwrap();
        assert!(e.to_string().contains("header checksum"), "{e}");
    }

    #[test]
    fn crafted_snapshots_with_valid_checksums_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let head = Arc::new(Head::new());
        let mut a = head.appender();
        for s in 0..2 {
            let l = Labels::from_pairs([("__name__", "m".to_string()), ("s", s.to_string())]);
            for i in 0..130 {
                a.append(&l, i * 1000, (i * s) as f64 * 0.5).unwrap();
            }
        }
        a.commit();
        write(&head, dir.path(), 1).unwrap();
        let path = dir.path().join(FILE_NAME);
        let orig = fs::read(&path).unwrap();
        // The first series record: its body, changed byte by byte with its
        // checksum fixed up, must load or be refused, never panic.
        let blen = u32::from_le_bytes(orig[32..36].try_into().unwrap()) as usize;
        for pos in 40..40 + blen {
            for val in [0u8, 0xff, orig[pos].wrapping_add(1)] {
                let mut b = orig.clone();
                b[pos] = val;
                let crc = crc32fast::hash(&b[40..40 + blen]);
                b[36..40].copy_from_slice(&crc.to_le_bytes());
                fs::write(&path, &b).unwrap();
                let _ = load(dir.path());
            }
        }
    }

    #[test]
    fn version_one_snapshots_still_load() {
        // A version 1 file: one series `{__name__="old"}` with one sample
        // in its open chunk and no histogram section.
        let mut c = XorChunk::new();
        c.append(5_000, 2.5);
        let mut body = Vec::new();
        body.extend_from_slice(MAGIC);
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&1u64.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        put_bytes(&mut body, b"__name__").unwrap();
        put_bytes(&mut body, b"old").unwrap();
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&c.len().to_le_bytes());
        put_bytes(&mut body, c.bytes()).unwrap();
        let crc = crc32fast::hash(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), &body).unwrap();
        let (h, info) = load(dir.path()).unwrap();
        assert_eq!(info.series, 1);
        let got = h.select(&[], 0, i64::MAX);
        assert_eq!(
            got[0].samples,
            vec![crate::model::Sample { t: 5_000, v: 2.5 }]
        );
    }
}
