//! The index of a sealed chunk file: once a chunk file is complete (no
//! more chunks will be appended to it), where each series' chunks are in
//! it goes to `NNNNNNNN.index` beside it and leaves the series, which then
//! only remember the span of time their sealed chunks cover. So the head's
//! memory holds chunk places for the file being written only, whatever the
//! retention; sealed places are read through a memory map, page by page,
//! as queries need them.
//!
//! The file is `ARGUSIDX`, a format version (u32 LE), the number of
//! entries (u32 LE), the entries sorted by series id and then time, and a
//! CRC-32 (u32 LE) of everything before it. An entry is 24 bytes: series
//! id u32, stream offset in the chunk file u32, first timestamp i64,
//! last timestamp minus the first u32, stream length u16, sample count
//! u16 (all LE; the count's top bit is the encoding). An index is written whole to a temporary name, fsynced
//! and renamed into place; one that is missing or damaged is rebuilt
//! from its chunk file at start.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::chunks::ChunkMeta;

/// Suffix of an index file, after the chunk file's name.
pub const SUFFIX: &str = ".index";
const MAGIC: &[u8; 8] = b"ARGUSIDX";
const VERSION: u32 = 1;
const HEADER: usize = 16;
const ENTRY: usize = 24;

/// What one series has in one sealed file: the span of its chunks there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesSpan {
    /// First timestamp of its first chunk.
    pub min_t: i64,
    /// Last timestamp of its last chunk.
    pub max_t: i64,
}

/// Writes an index, entry by entry in (series id, time) order.
pub struct IndexWriter {
    tmp: PathBuf,
    path: PathBuf,
    out: Option<BufWriter<File>>,
    count: u32,
    last: Option<(u32, i64)>,
}

fn encode_entry(id: u32, m: &ChunkMeta) -> [u8; ENTRY] {
    let mut b = [0u8; ENTRY];
    b[0..4].copy_from_slice(&id.to_le_bytes());
    b[4..8].copy_from_slice(&m.offset.to_le_bytes());
    b[8..16].copy_from_slice(&m.min_t.to_le_bytes());
    b[16..20].copy_from_slice(&m.span.to_le_bytes());
    b[20..22].copy_from_slice(&m.len.to_le_bytes());
    b[22..24].copy_from_slice(&m.word.to_le_bytes());
    b
}

fn decode_entry(b: &[u8], file: u32) -> (u32, ChunkMeta) {
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut t = [0u8; 8];
    t.copy_from_slice(&b[8..16]);
    (
        u32_at(0),
        ChunkMeta {
            min_t: i64::from_le_bytes(t),
            file,
            offset: u32_at(4),
            span: u32_at(16),
            len: u16::from_le_bytes([b[20], b[21]]),
            word: u16::from_le_bytes([b[22], b[23]]),
        },
    )
}

/// The index file of chunk file `path`.
pub fn index_path(chunk_file: &Path) -> PathBuf {
    let mut s = chunk_file.as_os_str().to_owned();
    s.push(SUFFIX);
    PathBuf::from(s)
}

impl IndexWriter {
    /// Begins the index of chunk file `chunk_file` under a temporary name.
    pub fn create(chunk_file: &Path) -> std::io::Result<IndexWriter> {
        let path = index_path(chunk_file);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        // Read as well: the checksum is computed from the written bytes.
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let mut out = BufWriter::with_capacity(1 << 16, f);
        // The count is not known yet: written as zero, patched at the end
        // (and the checksum computed over the final bytes then).
        let mut head = [0u8; HEADER];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out.write_all(&head)?;
        Ok(IndexWriter {
            tmp,
            path,
            out: Some(out),
            count: 0,
            last: None,
        })
    }

    /// Adds the chunk `m` of series `id`; entries must come in (id, time)
    /// order, which the caller's walk over series in id order gives.
    pub fn push(&mut self, id: u32, m: &ChunkMeta) -> std::io::Result<()> {
        if self.last.is_some_and(|l| l > (id, m.min_t)) {
            return Err(std::io::Error::other(
                "index entries out of order (series id, time)",
            ));
        }
        self.last = Some((id, m.min_t));
        let e = encode_entry(id, m);
        match &mut self.out {
            Some(out) => out.write_all(&e)?,
            None => return Err(std::io::Error::other("index already finished")),
        }
        self.count = self
            .count
            .checked_add(1)
            .ok_or_else(|| std::io::Error::other("more than 2^32 chunks in one file"))?;
        Ok(())
    }

    /// Writes the count and checksum, fsyncs, and renames the index into
    /// place. Returns its path.
    pub fn finish(mut self) -> std::io::Result<PathBuf> {
        let out = self
            .out
            .take()
            .ok_or_else(|| std::io::Error::other("index already finished"))?;
        let mut f = out.into_inner().map_err(|e| e.into_error())?;
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(12))?;
        f.write_all(&self.count.to_le_bytes())?;
        // The checksum covers the final bytes: read back through the page
        // cache rather than kept in memory while the entries were written.
        f.seek(SeekFrom::Start(0))?;
        let mut crc = crc32fast::Hasher::new();
        let mut r = BufReader::with_capacity(1 << 16, &f);
        let mut buf = [0u8; 1 << 14];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            crc.update(&buf[..n]);
        }
        drop(r);
        f.seek(SeekFrom::End(0))?;
        f.write_all(&crc.finalize().to_le_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            crate::model::sync_dir(dir);
        }
        Ok(self.path.clone())
    }
}

impl Drop for IndexWriter {
    /// An index not finished (a failed write) leaves no temporary file.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// A sealed file's index, mapped for reading.
pub struct SealedIndex {
    map: memmap2::Mmap,
    file: u32,
    count: usize,
    /// Earliest and latest timestamp of any chunk in the file.
    pub min_t: i64,
    /// See `min_t`.
    pub max_t: i64,
}

impl std::fmt::Debug for SealedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedIndex")
            .field("file", &self.file)
            .field("count", &self.count)
            .finish()
    }
}

/// Where an index is damaged and why.
#[derive(Debug)]
pub struct IndexDamage {
    /// Byte offset of the damage.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

fn damage(offset: u64, reason: impl Into<String>) -> IndexDamage {
    IndexDamage {
        offset,
        reason: reason.into(),
    }
}

/// Checks an index read from `r` (its bytes, `len` long) against chunk
/// file `file` of `chunk_len` bytes, calling `each` for every entry in
/// order. Streams: memory stays small whatever the index's size.
pub fn check(
    r: &mut impl Read,
    len: u64,
    file: u32,
    chunk_len: u64,
    mut each: impl FnMut(u32, &ChunkMeta),
) -> Result<usize, IndexDamage> {
    let mut head = [0u8; HEADER];
    r.read_exact(&mut head)
        .map_err(|_| damage(0, "shorter than its header"))?;
    if &head[..8] != MAGIC {
        return Err(damage(0, "not an argus chunk index (bad magic)"));
    }
    let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if version != VERSION {
        return Err(damage(8, format!("unknown index version {version}")));
    }
    let count = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as u64;
    let want = HEADER as u64 + count * ENTRY as u64 + 4;
    if len != want {
        return Err(damage(
            12,
            format!("{count} entries need {want} bytes, the file has {len}"),
        ));
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    let mut last: Option<(u32, i64)> = None;
    let mut e = [0u8; ENTRY];
    for i in 0..count {
        let at = HEADER as u64 + i * ENTRY as u64;
        r.read_exact(&mut e)
            .map_err(|err| damage(at, format!("unreadable: {err}")))?;
        crc.update(&e);
        let (id, m) = decode_entry(&e, file);
        if last.is_some_and(|l| l > (id, m.min_t)) {
            return Err(damage(at, "entries out of order"));
        }
        last = Some((id, m.min_t));
        let end = u64::from(m.offset) + u64::from(m.len);
        if m.samples() == 0 || m.len < 8 || end > chunk_len {
            return Err(damage(
                at,
                format!(
                    "entry for series {id} points outside its chunk file ({} bytes at {} of {chunk_len})",
                    m.len, m.offset
                ),
            ));
        }
        each(id, &m);
    }
    let mut tail = [0u8; 4];
    let at = HEADER as u64 + count * ENTRY as u64;
    r.read_exact(&mut tail)
        .map_err(|_| damage(at, "checksum missing"))?;
    if crc.finalize() != u32::from_le_bytes(tail) {
        return Err(damage(at, "checksum mismatch"));
    }
    Ok(count as usize)
}

impl SealedIndex {
    /// Opens the index of chunk file `file` (`chunk_len` bytes) at `path`,
    /// checking it whole (read through the page cache, not the map) and
    /// calling `each` for every entry.
    pub fn open(
        path: &Path,
        file: u32,
        chunk_len: u64,
        mut each: impl FnMut(u32, &ChunkMeta),
    ) -> Result<SealedIndex, IndexDamage> {
        let f = File::open(path).map_err(|e| damage(0, format!("unreadable: {e}")))?;
        let len = f
            .metadata()
            .map_err(|e| damage(0, format!("unreadable: {e}")))?
            .len();
        let (mut min_t, mut max_t) = (i64::MAX, i64::MIN);
        let count = check(
            &mut BufReader::with_capacity(1 << 16, &f),
            len,
            file,
            chunk_len,
            |id, m| {
                min_t = min_t.min(m.min_t);
                max_t = max_t.max(m.max_t());
                each(id, m);
            },
        )?;
        let map =
            super::chunks::map_readonly(&f).map_err(|e| damage(0, format!("cannot map: {e}")))?;
        if map.len() as u64 != len {
            return Err(damage(0, "changed while being opened"));
        }
        Ok(SealedIndex {
            map,
            file,
            count,
            min_t,
            max_t,
        })
    }

    fn entry(&self, i: usize) -> (u32, ChunkMeta) {
        let at = HEADER + i * ENTRY;
        decode_entry(&self.map[at..at + ENTRY], self.file)
    }

    /// The chunks of series `id` in this file, in time order.
    pub fn chunks_of(&self, id: u32) -> impl Iterator<Item = ChunkMeta> + '_ {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo..self.count)
            .map(|i| self.entry(i))
            .take_while(move |(x, _)| *x == id)
            .map(|(_, m)| m)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(offset: u32, min_t: i64) -> ChunkMeta {
        ChunkMeta {
            min_t,
            file: 7,
            offset,
            span: 1000,
            len: 20,
            word: 3,
        }
    }

    /// Writes an index of 3 series to `dir/00000007.index`.
    fn write(dir: &Path) -> (PathBuf, u64) {
        let chunk = dir.join("00000007");
        fs::write(&chunk, vec![0u8; 4096]).unwrap();
        let mut w = IndexWriter::create(&chunk).unwrap();
        for (id, off, t) in [(1, 40, 0), (1, 100, 2000), (5, 200, 0), (9, 300, 50)] {
            w.push(id, &meta(off, t)).unwrap();
        }
        assert!(w.push(2, &meta(0, 0)).is_err(), "out of order refused");
        let p = w.finish().unwrap();
        (p, 4096)
    }

    #[test]
    fn an_index_finds_each_series_chunks_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let (p, chunk_len) = write(dir.path());
        assert_eq!(p, index_path(&dir.path().join("00000007")));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        let mut seen = Vec::new();
        let ix = SealedIndex::open(&p, 7, chunk_len, |id, m| seen.push((id, m.offset))).unwrap();
        assert_eq!(seen, [(1, 40), (1, 100), (5, 200), (9, 300)]);
        assert_eq!((ix.len(), ix.min_t, ix.max_t), (4, 0, 3000));
        let offs = |id| ix.chunks_of(id).map(|m| m.offset).collect::<Vec<_>>();
        assert_eq!(offs(1), [40, 100]);
        assert_eq!(offs(5), [200]);
        assert_eq!(offs(9), [300]);
        for absent in [0, 2, 6, 10, u32::MAX] {
            assert!(offs(absent).is_empty(), "{absent}");
        }
        assert_eq!(ix.chunks_of(1).next().unwrap(), meta(40, 0));
    }

    #[test]
    fn damage_is_found_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (p, chunk_len) = write(dir.path());
        let good = fs::read(&p).unwrap();
        let open = |bytes: &[u8], chunk_len: u64| {
            fs::write(&p, bytes).unwrap();
            SealedIndex::open(&p, 7, chunk_len, |_, _| {}).map(|_| ())
        };
        assert!(open(&good, chunk_len).is_ok());
        let cases: Vec<(Vec<u8>, u64, &str)> = vec![
            (good[..10].to_vec(), 0, "shorter than its header"),
            (vec![0; good.len()], 0, "bad magic"),
            (good[..good.len() - 1].to_vec(), 12, "the file has"),
            (
                {
                    let mut b = good.clone();
                    b[HEADER + 8] ^= 1;
                    b
                },
                (HEADER + 4 * ENTRY) as u64,
                "checksum mismatch",
            ),
            (
                {
                    let mut b = good.clone();
                    b[8] = 9;
                    b
                },
                8,
                "unknown index version",
            ),
        ];
        for (bytes, offset, why) in cases {
            let d = open(&bytes, chunk_len).unwrap_err();
            assert_eq!(d.offset, offset, "{why}: {}", d.reason);
            assert!(d.reason.contains(why), "{why}: {}", d.reason);
        }
        // Entries past the end of a chunk file that was cut shorter.
        let d = open(&good, 250).unwrap_err();
        assert_eq!(d.offset, (HEADER + 3 * ENTRY) as u64);
        assert!(d.reason.contains("outside its chunk file"), "{}", d.reason);
    }
}
