//! `argus import openmetrics FILE`: backfills the store from an
//! OpenMetrics text file with timestamped samples (the input format of
//! `promtool tsdb create-blocks-from openmetrics`), so argus and Prometheus
//! can hold identical data.

use std::path::{Path, PathBuf};

use crate::model::LabelsBuilder;
use crate::scrape::parse::{Entry, Format, Parser};
use crate::storage::{Appender, StorageError, Store, StoreOptions};

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Samples stored.
    pub samples: u64,
    /// Samples refused (out of order or duplicate timestamps).
    pub rejected: u64,
    /// Series in the store afterwards.
    pub series: usize,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid OpenMetrics, or a sample lacks a timestamp.
    #[error("{path}:{line}: {msg}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The existing or new snapshot could not be read or written.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Imports `file` into the snapshot under `storage`, adding to what is
/// already there.
pub fn import_openmetrics(file: &Path, storage: &Path) -> Result<ImportSummary, ImportError> {
    let text = std::fs::read(file).map_err(|source| ImportError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    // What a stopped daemon left (snapshot and log) is restored first; the
    // import is not logged, the checkpoint at the end covers it all.
    let (store, _) = Store::open(storage, StoreOptions::default())?;
    let head = store.head();
    let perr = |line: usize, msg: String| ImportError::Parse {
        path: file.to_path_buf(),
        line,
        msg,
    };
    let mut p = Parser::new(&text, Format::OpenMetrics);
    let mut app = head.appender_with_capacity(1 << 16);
    let mut summary = ImportSummary::default();
    let mut pending = 0usize;
    loop {
        let entry = p.next().map_err(|e| perr(e.line, e.msg))?;
        let Some(entry) = entry else { break };
        let Entry::Sample(s) = entry else { continue };
        let Some(t) = s.timestamp else {
            return Err(perr(p.line(), "sample has no timestamp".into()));
        };
        let mut lb = LabelsBuilder::new();
        p.labels(&mut lb).map_err(|e| perr(e.line, e.msg))?;
        let labels = lb.build();
        app.append(&labels, t, s.value)?;
        pending += 1;
        // Commit in batches so memory stays bounded on large files.
        if pending >= 1 << 16 {
            let o = app.commit();
            summary.samples += o.appended;
            summary.rejected += o.rejected();
            pending = 0;
        }
    }
    let o = app.commit();
    summary.samples += o.appended;
    summary.rejected += o.rejected();
    // Everything imported goes to chunk files, so the checkpoint holds
    // only the series' labels.
    head.freeze_open_chunks();
    store.close()?;
    summary.series = head.num_series();
    Ok(summary)
}
