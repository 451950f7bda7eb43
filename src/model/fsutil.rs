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
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
