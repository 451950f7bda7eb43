//! Crash-safe snapshots of the head.
//!
//! Layout: magic `ARGUSSNP`, format version (u32 LE), then series records
//! (labels, frozen chunks, the open chunk, and since version 2 the native
//! histogram samples), then a CRC-32 of everything before it. Written to a temporary file,
//! fsynced, renamed over the old snapshot and the directory fsynced, so a
//! crash at any point leaves either the old or the new snapshot, whole.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StorageError;
use super::chunk::{FrozenChunk, XorChunk};
use super::head::Head;
use crate::model::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{ByteReader, Label, Labels};

const MAGIC: &[u8; 8] = b"ARGUSSNP";
const VERSION: u32 = 2;
/// File name of the snapshot inside the storage directory.
pub const FILE_NAME: &str = "head.snapshot";

fn err(path: &Path, msg: impl Into<String>) -> StorageError {
    StorageError::Snapshot {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

struct CrcWriter<W: Write> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn put_bytes(w: &mut impl Write, b: &[u8]) -> std::io::Result<()> {
    w.write_all(&(b.len() as u32).to_le_bytes())?;
    w.write_all(b)
}

fn put_histogram(w: &mut impl Write, h: &FloatHistogram) -> std::io::Result<()> {
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
#[derive(Clone, Copy, Debug, Default)]
pub struct SnapshotInfo {
    /// Series in the snapshot.
    pub series: usize,
    /// File size in bytes.
    pub bytes: u64,
}

/// Writes `head` to `dir/head.snapshot` atomically.
pub fn write(head: &Head, dir: &Path) -> Result<SnapshotInfo, StorageError> {
    fs::create_dir_all(dir).map_err(|e| err(dir, format!("create directory: {e}")))?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let file = File::create(&tmp).map_err(|e| err(&tmp, format!("create: {e}")))?;
    let mut w = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        crc: crc32fast::Hasher::new(),
    };
    let io = |e: std::io::Error| err(&tmp, format!("write: {e}"));
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
    let series = head.all_series();
    w.write_all(&(series.len() as u64).to_le_bytes())
        .map_err(io)?;
    for s in &series {
        let labels = head.labels_of(s);
        w.write_all(&(labels.len() as u32).to_le_bytes())
            .map_err(io)?;
        for l in labels.iter() {
            put_bytes(&mut w, l.name.as_bytes()).map_err(io)?;
            put_bytes(&mut w, l.value.as_bytes()).map_err(io)?;
        }
        let d = s.lock();
        w.write_all(&(d.frozen.len() as u32).to_le_bytes())
            .map_err(io)?;
        for c in &d.frozen {
            w.write_all(&c.count().to_le_bytes()).map_err(io)?;
            w.write_all(&c.min_t().to_le_bytes()).map_err(io)?;
            w.write_all(&c.max_t().to_le_bytes()).map_err(io)?;
            put_bytes(&mut w, c.stream()).map_err(io)?;
        }
        w.write_all(&d.head.len().to_le_bytes()).map_err(io)?;
        put_bytes(&mut w, d.head.bytes()).map_err(io)?;
        w.write_all(&(d.hists.len() as u32).to_le_bytes())
            .map_err(io)?;
        for (t, h) in &d.hists {
            w.write_all(&t.to_le_bytes()).map_err(io)?;
            put_histogram(&mut w, h).map_err(io)?;
        }
    }
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = inner
        .into_inner()
        .map_err(|e| err(&tmp, format!("flush: {}", e.error())))?;
    file.sync_all()
        .map_err(|e| err(&tmp, format!("fsync: {e}")))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| err(&path, format!("rename: {e}")))?;
    // Persist the rename itself.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(SnapshotInfo {
        series: series.len(),
        bytes,
    })
}

/// A native histogram record.
fn read_histogram(r: &mut ByteReader) -> Option<FloatHistogram> {
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
    let path = dir.join(FILE_NAME);
    let data = match fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Arc::new(Head::new()), SnapshotInfo::default()));
        }
        Err(e) => return Err(err(&path, format!("read: {e}"))),
    };
    if data.len() < MAGIC.len() + 4 + 8 + 4 || &data[..8] != MAGIC {
        return Err(err(&path, "not an argus snapshot (bad magic or too short)"));
    }
    let (body, tail) = data.split_at(data.len() - 4);
    let want = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if crc32fast::hash(body) != want {
        return Err(err(
            &path,
            "checksum mismatch: file is truncated or corrupted",
        ));
    }
    let mut r = ByteReader::new(body, 8);
    let version = r.u32().ok_or_else(|| err(&path, "truncated header"))?;
    if version != VERSION && version != 1 {
        return Err(err(
            &path,
            format!("unsupported snapshot version {version}"),
        ));
    }
    let head = Arc::new(Head::new());
    let n = r.u64().ok_or_else(|| err(&path, "truncated header"))?;
    for i in 0..n {
        let bad = || err(&path, format!("series record {i} is malformed"));
        let nl = r.u32().ok_or_else(bad)?;
        let mut labels = Vec::with_capacity(nl.min(1024) as usize);
        for _ in 0..nl {
            let name = read_str(&mut r).ok_or_else(bad)?;
            let value = read_str(&mut r).ok_or_else(bad)?;
            labels.push(Label::new(name, value));
        }
        let labels = Labels::from_pairs(labels.into_iter().map(|l| (l.name, l.value)));
        let nf = r.u32().ok_or_else(bad)?;
        let mut frozen = Vec::with_capacity(nf.min(4096) as usize);
        for _ in 0..nf {
            let count = r.u16().ok_or_else(bad)?;
            let min_t = r.i64().ok_or_else(bad)?;
            let max_t = r.i64().ok_or_else(bad)?;
            let bytes = r.sized().ok_or_else(bad)?;
            let c = FrozenChunk::from_parts(bytes, count, max_t).ok_or_else(bad)?;
            if c.min_t() != min_t {
                return Err(bad());
            }
            frozen.push(c);
        }
        let hc = r.u16().ok_or_else(bad)?;
        let hb = r.sized().ok_or_else(bad)?;
        let open = if hc == 0 {
            XorChunk::new()
        } else {
            XorChunk::from_bytes(hb, hc).ok_or_else(bad)?
        };
        let mut hists = Vec::new();
        if version >= 2 {
            let nh = r.u32().ok_or_else(bad)?;
            for _ in 0..nh {
                let t = r.i64().ok_or_else(bad)?;
                hists.push((t, Arc::new(read_histogram(&mut r).ok_or_else(bad)?)));
            }
        }
        let s = head.get_or_create(&labels).map_err(|_| bad())?;
        s.restore(frozen, open, hists);
    }
    if r.pos() != body.len() {
        return Err(err(&path, "trailing bytes after the last series"));
    }
    Ok((
        head,
        SnapshotInfo {
            series: n as usize,
            bytes: data.len() as u64,
        },
    ))
}

/// Loads the snapshot; if it is damaged, moves it aside to
/// `head.snapshot.corrupt-<unix seconds>` and starts empty. The error, if
/// any, is returned for the caller to report.
pub fn load_or_quarantine(
    dir: &Path,
) -> (Arc<Head>, SnapshotInfo, Option<(StorageError, PathBuf)>) {
    match load(dir) {
        Ok((h, i)) => (h, i, None),
        Err(e) => {
            let path = dir.join(FILE_NAME);
            let aside = dir.join(format!(
                "{FILE_NAME}.corrupt-{}",
                crate::model::now_millis() / 1000
            ));
            let _ = fs::rename(&path, &aside);
            (
                Arc::new(Head::new()),
                SnapshotInfo::default(),
                Some((e, aside)),
            )
        }
    }
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
        let info = write(&head, dir.path()).unwrap();
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

        let path = dir.path().join(FILE_NAME);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let e = load(dir.path()).err().unwrap();
        assert!(e.to_string().contains("checksum mismatch"), "{e}");
        fs::write(&path, &bytes[..mid]).unwrap();
        assert!(load(dir.path()).is_err());
        let (h, _, e) = load_or_quarantine(dir.path());
        assert!(e.is_some());
        assert_eq!(h.num_series(), 0);
        assert!(!path.exists());
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
        write(&head, dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        let orig = fs::read(&path).unwrap();
        let body_len = orig.len() - 4;
        for pos in 8..body_len {
            for val in [0u8, 0xff, orig[pos].wrapping_add(1)] {
                let mut b = orig[..body_len].to_vec();
                b[pos] = val;
                let crc = crc32fast::hash(&b);
                b.extend_from_slice(&crc.to_le_bytes());
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
