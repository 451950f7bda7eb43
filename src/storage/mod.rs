//! The embedded series store: an in-memory head with an inverted index and
//! compressed chunks, retention, a write-ahead log and crash-safe
//! snapshots that checkpoint it; plus the
//! [`Appender`] and [`Queryable`] traits every producer and consumer of
//! samples goes through.

pub mod chunk;
pub mod chunks;
mod head;
mod postings;
mod rarevec;
pub mod sealed;
pub mod snapshot;
mod store;
pub mod wal;

pub use head::{Head, HeadAppender, HeadMemory, HeadStats};
pub use store::{OpenReport, Store, StoreOptions};

use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, Matcher, Sample, Timestamp};

/// Errors from the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A sample older than the newest one of its series.
    #[error("out of order sample")]
    OutOfOrder,
    /// A different value for a timestamp the series already has.
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    /// A sample older than the retention window.
    #[error("out of bounds")]
    OutOfBounds,
    /// A series reference that the store no longer knows.
    #[error("unknown series reference")]
    UnknownRef,
    /// A label set that cannot be stored.
    #[error("invalid series {labels}: {reason}")]
    InvalidSeries {
        /// The labels.
        labels: Labels,
        /// Why.
        reason: &'static str,
    },
    /// Write-ahead log I/O error.
    #[error("write-ahead log {path}: {msg}")]
    Wal {
        /// File or directory involved.
        path: String,
        /// What went wrong.
        msg: String,
    },
    /// Snapshot I/O or format error.
    #[error("snapshot {path}: {msg}")]
    Snapshot {
        /// File involved.
        path: String,
        /// What went wrong.
        msg: String,
    },
}

/// The name of numbered file `n` (log segments, chunk files): eight digits.
pub fn numbered_name(n: u32) -> String {
    format!("{n:08}")
}

/// Numbers of the files in `dir` named as [`numbered_name`] names them,
/// ascending; other files are left alone, a missing `dir` has none.
pub fn numbered_files(dir: &std::path::Path) -> std::io::Result<Vec<u32>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = name.parse() {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The file being appended to of a numbered series (log segments, chunk
/// files): the one place that cuts off partial writes, fsyncs what was
/// written, moves on to the next number, and remembers the cause of the
/// last failure so that a full disk is logged once, not at every write.
#[derive(Debug)]
pub(crate) struct NumberedWriter {
    /// Number of the current (or next) file.
    pub(crate) n: u32,
    /// The open file, if one was begun.
    pub(crate) file: Option<std::fs::File>,
    /// Bytes in the file that hold whole records.
    pub(crate) len: u64,
    /// Written since the last fsync.
    dirty: bool,
    failing: Option<std::io::ErrorKind>,
    /// The cause of the last failure and when it began, and whether that
    /// failure was logged: a disk at the edge of full lets a small write
    /// through now and then, and each such flap must not log twice.
    last_failure: Option<(std::io::ErrorKind, std::time::Instant)>,
    announced: bool,
}

/// A failure of the cause of one that ended less than this ago is the
/// same episode: not logged again (it is still counted).
const FLAP_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// How a write changed the writer's health, for its owner to log.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteChange {
    /// Writes work again after failing.
    Resumed,
    /// A write failed for a cause not logged yet.
    NewFailure,
}

impl NumberedWriter {
    /// A writer that begins file `n` when first written to.
    pub(crate) fn new(n: u32) -> Self {
        NumberedWriter {
            n,
            file: None,
            len: 0,
            dirty: false,
            failing: None,
            last_failure: None,
            announced: false,
        }
    }

    /// Uses `file`, which holds `len` bytes, as the current file.
    pub(crate) fn begin(&mut self, file: std::fs::File, len: u64) {
        self.file = Some(file);
        self.len = len;
        self.dirty = true;
    }

    /// Appends `bytes` to the current file; a partial write is cut off, so
    /// the file stays a sequence of whole records.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let Some(f) = self.file.as_mut() else {
            return Ok(());
        };
        if let Err(e) = f.write_all(bytes) {
            let _ = f.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Cuts the current file back to `len` bytes (records written after
    /// it that must not stay).
    pub(crate) fn cut_back(&mut self, len: u64) {
        if let Some(f) = self.file.as_ref() {
            let _ = f.set_len(len);
        }
        self.len = len;
    }

    /// True while the last write failed (until one succeeds).
    pub(crate) fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// True when something was written since the last fsync.
    pub(crate) fn dirty(&self) -> bool {
        self.dirty
    }

    /// Fsyncs what was written since the last fsync. Returns whether a
    /// file was fsynced.
    pub(crate) fn sync(&mut self) -> std::io::Result<bool> {
        let mut synced = false;
        if self.dirty {
            if let Some(f) = self.file.as_ref() {
                f.sync_data()?;
                synced = true;
            }
            self.dirty = false;
        }
        Ok(synced)
    }

    /// Closes the current file (fsynced) and moves on to the next number.
    pub(crate) fn close_and_advance(&mut self) -> std::io::Result<()> {
        if let Some(f) = self.file.take() {
            if self.dirty {
                f.sync_data()?;
                self.dirty = false;
            }
        }
        self.n = self.n.saturating_add(1);
        self.len = 0;
        Ok(())
    }

    /// Notes how a flush went (`wrote`: it wrote something, so a success
    /// shows the cause is gone); says what the owner should log. A failure
    /// of the same cause within a minute of the last one ending (a nearly
    /// full disk letting small writes through) continues that episode:
    /// neither it nor the success after it is logged.
    pub(crate) fn note(&mut self, res: &std::io::Result<()>, wrote: bool) -> Option<WriteChange> {
        match res {
            Ok(()) if !wrote => None,
            Ok(()) => {
                self.failing.take()?;
                if let Some((_, at)) = &mut self.last_failure {
                    // The window runs from when writes last worked.
                    *at = std::time::Instant::now();
                }
                std::mem::take(&mut self.announced).then_some(WriteChange::Resumed)
            }
            Err(e) if self.failing == Some(e.kind()) => None,
            Err(e) => {
                let kind = e.kind();
                self.failing = Some(kind);
                let flap = self
                    .last_failure
                    .is_some_and(|(k, at)| k == kind && at.elapsed() < FLAP_WINDOW);
                self.last_failure = Some((kind, std::time::Instant::now()));
                if flap {
                    return None;
                }
                self.announced = true;
                Some(WriteChange::NewFailure)
            }
        }
    }
}

/// Where and how a file of the store was damaged, as opening reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Damage {
    /// The file.
    pub file: std::path::PathBuf,
    /// Offset of the first bad byte.
    pub offset: u64,
    /// Bytes from there to the end of the file that were not read.
    pub dropped_bytes: u64,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} at offset {}: {} ({} bytes after it not read)",
            self.file.display(),
            self.offset,
            self.reason,
            self.dropped_bytes
        )
    }
}

/// An opaque handle to a stored series, valid until the series is removed
/// by retention; callers cache it to skip label lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeriesRef(pub u64);

/// What a commit did with the samples it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Samples stored.
    pub appended: u64,
    /// Samples older than their series' newest sample.
    pub out_of_order: u64,
    /// Samples repeating a timestamp with a different value.
    pub duplicate: u64,
    /// Samples older than the retention window.
    pub out_of_bounds: u64,
    /// Samples whose series reference was no longer valid (retention
    /// removed the series); the caller should resolve by labels again.
    pub unknown_ref: u64,
}

impl AppendOutcome {
    /// Counts one append's result.
    pub(crate) fn count(&mut self, res: Result<bool, StorageError>) {
        match res {
            Ok(true) => self.appended += 1,
            Ok(false) => {}
            Err(StorageError::OutOfOrder) => self.out_of_order += 1,
            Err(StorageError::DuplicateTimestamp) => self.duplicate += 1,
            Err(StorageError::UnknownRef) => self.unknown_ref += 1,
            Err(_) => self.out_of_bounds += 1,
        }
    }

    /// Samples rejected for any reason.
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.duplicate + self.out_of_bounds + self.unknown_ref
    }
}

/// Writes samples in a transaction: nothing is visible until
/// [`Appender::commit`]; dropping without commit discards the samples
/// (series created on the way may remain, as in Prometheus).
pub trait Appender: Send {
    /// Queues a sample for `labels`, creating the series if needed.
    fn append(&mut self, labels: &Labels, t: Timestamp, v: f64) -> Result<SeriesRef, StorageError>;
    /// Queues a sample for a series obtained from an earlier `append`.
    /// A reference that is no longer valid (the series was removed by
    /// retention) is counted in [`AppendOutcome::unknown_ref`] at commit.
    fn append_ref(&mut self, r: SeriesRef, t: Timestamp, v: f64) -> Result<(), StorageError>;
    /// Appends one native histogram sample.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        t: Timestamp,
        h: std::sync::Arc<FloatHistogram>,
    ) -> Result<SeriesRef, StorageError>;
    /// Appends one native histogram sample to a series obtained from an
    /// earlier append, as [`Appender::append_ref`].
    fn append_histogram_ref(
        &mut self,
        r: SeriesRef,
        t: Timestamp,
        h: std::sync::Arc<FloatHistogram>,
    ) -> Result<(), StorageError>;
    /// Makes the queued samples visible.
    fn commit(&mut self) -> AppendOutcome;
    /// Drops the queued samples.
    fn rollback(&mut self);
}

/// One series with its samples in a time range.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Labels,
    /// Samples in time order.
    pub samples: Vec<Sample>,
    /// Native histogram samples in `[mint, maxt]`, in time order.
    pub histograms: Vec<(Timestamp, std::sync::Arc<FloatHistogram>)>,
}

/// Read access to series, the interface the PromQL engine and the API use.
pub trait Queryable: Send + Sync {
    /// Series matching all `matchers` with their samples in `[mint, maxt]`,
    /// in storage order (as Prometheus's engine also sees series; results
    /// that must be ordered are sorted by their consumers). Series without
    /// samples in the range are left out.
    fn select(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<SeriesSamples>;
    /// Like [`select`](Self::select), but only each series' latest sample
    /// in `[mint, maxt]`: what an instant selector at one time needs.
    /// Stores that can answer it without reading the range should.
    fn select_latest(
        &self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<SeriesSamples> {
        let mut all = self.select(matchers, mint, maxt);
        for s in all.iter_mut() {
            let tf = s.samples.last().map(|x| x.t);
            let th = s.histograms.last().map(|x| x.0);
            if th > tf {
                s.samples.clear();
                let keep = s.histograms.len() - 1;
                s.histograms.drain(..keep);
            } else {
                s.histograms.clear();
                let keep = s.samples.len().saturating_sub(1);
                s.samples.drain(..keep);
            }
        }
        all
    }
    /// Labels of series matching `matchers` that have samples in the range.
    fn series(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<Labels>;
    /// Sorted label names of matching series (all series if `matchers` is empty).
    fn label_names(&self, matchers: &[Matcher], mint: Timestamp, maxt: Timestamp) -> Vec<String>;
    /// Sorted values of label `name` among matching series.
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
    ) -> Vec<String>;
}

#[cfg(test)]
mod writer_tests {
    use super::*;

    #[test]
    fn a_flapping_failure_is_logged_once() {
        let full = || Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        let mut w = NumberedWriter::new(1);
        assert_eq!(w.note(&Ok(()), true), None);
        assert_eq!(w.note(&full(), false), Some(WriteChange::NewFailure));
        assert_eq!(w.note(&full(), false), None);
        assert_eq!(w.note(&Ok(()), true), Some(WriteChange::Resumed));
        // The disk fills again at once: the same episode.
        assert_eq!(w.note(&full(), false), None);
        assert!(w.failing());
        assert_eq!(w.note(&Ok(()), true), None);
        assert!(!w.failing());
        // Another cause is news.
        let denied = Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert_eq!(w.note(&denied, false), Some(WriteChange::NewFailure));
        assert_eq!(w.note(&Ok(()), true), Some(WriteChange::Resumed));
    }
}
