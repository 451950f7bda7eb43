//! Writing state files so that a crash leaves the old file or the new
//! one, never a torn one: temporary file, fsync, rename, directory fsync.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `dir/name` atomically, creating `dir` if needed.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &path)?;
    sync_dir(dir);
    Ok(())
}

/// Fsyncs directory `dir`, so a file created, renamed or removed in it
/// stays so after a crash; best effort (some file systems refuse it).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A state file rewritten whole as it changes (the probe and SLO windows):
/// written when its bytes changed, at most once a second, and less often
/// when writing it is slow, so that rewriting costs at most 1% of a core
/// (the pause after a write is 100 times what the write took).
#[derive(Debug, Default)]
pub struct PacedFile {
    inner: std::sync::Mutex<Paced>,
}

#[derive(Debug, Default)]
struct Paced {
    /// Checksum of what the last write put there.
    sum: Option<u32>,
    /// Not before this, unless forced.
    next: Option<std::time::Instant>,
}

impl PacedFile {
    /// Whether a write now would be on time (callers check before
    /// encoding, which costs as much as writing).
    pub fn due(&self) -> bool {
        let p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        p.next.is_none_or(|n| std::time::Instant::now() >= n)
    }

    /// Writes `bytes` to `dir/name` atomically if they changed since the
    /// last write; returns whether it wrote.
    pub fn write(&self, dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<bool> {
        let sum = crc32fast::hash(bytes);
        let mut p = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if p.sum == Some(sum) {
            return Ok(false);
        }
        let start = std::time::Instant::now();
        write_atomic(dir, name, bytes)?;
        let took = start.elapsed();
        p.sum = Some(sum);
        p.next = Some(start + (took * 100).max(std::time::Duration::from_secs(1)));
        Ok(true)
    }
}
