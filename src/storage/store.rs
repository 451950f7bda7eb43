//! The store on disk: the head, its write-ahead log, its chunk files and
//! its checkpoints, opened, replayed and truncated together, and the
//! storage thread that writes the log and the chunk files every 100 ms.
//!
//! A checkpoint cuts the log (everything logged so far is then in earlier
//! segments), writes the head's series with what is not in chunk files
//! (open chunks, full chunks still waiting) to a temporary file, fsyncs the
//! chunk files (so everything the checkpoint leaves out is on disk), puts
//! the checkpoint in place as `head.snapshot` recording the first segment
//! it does not cover, and removes the segments it does. Opening scans the
//! chunk files, loads the checkpoint, gives each series its chunks (the
//! files supersede checkpointed chunks they cover), replays the segments
//! after it, and starts a new segment. Each order is safe against a crash
//! at any point: the checkpoint is renamed into place whole, segments are
//! removed only after it is, and a sample stored twice (in the checkpoint
//! or a chunk file, and in the log) replays as one the head already has.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::chunks::{self, ChunkFiles, ScanReport};
use super::snapshot::{self, SnapshotInfo};
use super::wal::{self, FLUSH_INTERVAL, Record, ReplayReport, Wal, WalOptions};
use super::{AppendOutcome, Head, StorageError};
use crate::model::{FastMap, Timestamp};

/// How a store is opened.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// How the log is written.
    pub wal: WalOptions,
    /// Samples older than this are not restored (retention).
    pub min_valid_t: Option<Timestamp>,
    /// Whether new series and samples are logged. `argus import`, which
    /// checkpoints once at the end, does not log.
    pub log: bool,
}

/// What opening found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// The snapshot loaded.
    pub snapshot: SnapshotInfo,
    /// A damaged snapshot, and where it was moved.
    pub quarantined: Option<(StorageError, PathBuf)>,
    /// What the log replay read, with any damage.
    pub replay: ReplayReport,
    /// What the replayed samples did (samples a chunk file or the
    /// checkpoint already held count as out of order or duplicate).
    pub replayed: AppendOutcome,
    /// What the chunk file scan found, with any damage (its chunk list is
    /// handed to the series and left empty).
    pub chunks: ScanReport,
    /// Chunks in files whose series no longer exists (removed by retention
    /// before the checkpoint); they go with their files.
    pub orphan_chunks: usize,
    /// Series with chunks in indexed files that no longer exist (removed
    /// by retention before the checkpoint); their chunks go with their
    /// files.
    pub orphan_sealed_series: usize,
    /// Series after replay and retention.
    pub series: usize,
    /// Time taken.
    pub elapsed: Duration,
}

/// The head with its log, chunk files and checkpoints under one directory.
pub struct Store {
    dir: PathBuf,
    head: Arc<Head>,
    wal: Arc<Wal>,
    chunks: Arc<ChunkFiles>,
    checkpointing: Mutex<()>,
    wake: Arc<Wake>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Wake {
    stop: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.cv.notify_all();
    }
}

/// Every [`FLUSH_INTERVAL`]: the log's buffer to its segment, waiting full
/// chunks to the chunk files. Holds the store's parts only while working,
/// so a store dropped without [`Store::close`] (as a crash would) stops it.
fn storage_thread(wal: Weak<Wal>, chunks: Weak<ChunkFiles>, head: Weak<Head>, wake: Arc<Wake>) {
    let mut seal_failing: Option<std::io::ErrorKind> = None;
    loop {
        {
            let stop = wake.stop.lock().unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
            let (stop, _) = wake
                .cv
                .wait_timeout(stop, FLUSH_INTERVAL)
                .unwrap_or_else(|e| e.into_inner());
            if *stop {
                return;
            }
        }
        let (Some(w), Some(c)) = (wal.upgrade(), chunks.upgrade()) else {
            return;
        };
        // Failures are counted and logged (once per cause) by each.
        let _ = w.flush(false);
        let _ = c.flush(crate::model::now_millis());
        drop((w, c));
        let Some(h) = head.upgrade() else { return };
        // Complete chunk files get their index, oldest first; a failure
        // (a full disk) leaves the places in memory and is tried again.
        loop {
            match h.seal_next() {
                Ok(true) => {
                    if seal_failing.take().is_some() {
                        tracing::info!("chunk file indexes are written again");
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    if seal_failing != Some(e.kind()) {
                        tracing::error!(error = %e, "could not write a chunk file's index; its chunk places stay in memory until it can be (logged once per cause)");
                        seal_failing = Some(e.kind());
                    }
                    break;
                }
            }
        }
    }
}

fn wal_err(path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Wal {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

impl Store {
    /// Opens the store under `dir` (created if missing): loads the
    /// snapshot, replays the log after it and repairs a damaged tail. A
    /// damaged snapshot is moved aside and the log replayed from its start;
    /// damage is reported, never a reason to refuse to start. Errors are
    /// only for a directory that cannot be created or listed.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<(Store, OpenReport), StorageError> {
        let start = Instant::now();
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Snapshot {
            path: dir.display().to_string(),
            msg: format!("create directory: {e}"),
        })?;
        let fresh = || {
            let h = Arc::new(Head::new());
            if let Some(t) = opts.min_valid_t {
                h.set_min_valid(t);
            }
            h
        };
        let mut rep = OpenReport::default();
        let chunk_dir = dir.join(chunks::DIR);
        let (files, mut scan) =
            ChunkFiles::open(&chunk_dir).map_err(|e| StorageError::Snapshot {
                path: chunk_dir.display().to_string(),
                msg: format!("chunk files: {e}"),
            })?;
        let files = Arc::new(files);
        let max_id = scan
            .chunks
            .iter()
            .map(|(id, _)| *id)
            .chain(scan.sealed.keys().copied())
            .max();
        let mut on_disk = chunks::by_series(std::mem::take(&mut scan.chunks));
        let mut sealed = std::mem::take(&mut scan.sealed);
        rep.chunks = scan;
        let mut head = fresh();
        let mut remap = FastMap::default();
        match snapshot::load_into(&head, dir, &mut remap) {
            Ok(info) => rep.snapshot = info,
            Err(e) => {
                let path = dir.join(snapshot::FILE_NAME);
                let aside = dir.join(format!(
                    "{}.corrupt-{}",
                    snapshot::FILE_NAME,
                    crate::model::now_millis() / 1000
                ));
                let _ = std::fs::rename(&path, &aside);
                rep.quarantined = Some((e, aside));
                head = fresh();
                remap.clear();
            }
        }
        if let Some(max) = max_id {
            head.reserve_ids(max.saturating_add(1));
        }
        // Chunks go to their series before the log replays, so samples the
        // files hold are recognised as stored.
        let attach = |head: &Head,
                      s: &super::head::MemSeries,
                      on_disk: &mut FastMap<_, Vec<_>>,
                      sealed: &mut FastMap<u32, _>| {
            let metas = on_disk.remove(&s.id);
            let span = sealed.remove(&s.id);
            if metas.is_some() || span.is_some() {
                head.attach_disk(s, span, metas.unwrap_or_default());
            }
        };
        for s in head.all_series() {
            attach(&head, &s, &mut on_disk, &mut sealed);
        }
        // Attached before the replay, so chunks the replay fills are
        // written out as it goes instead of all waiting in memory; and
        // before retention, so it drops the expired ones and deletes files
        // nothing needs any more.
        head.attach_chunks(files.clone());
        let wal_dir = dir.join(wal::DIR);
        let mut replayed = AppendOutcome::default();
        let mut records = 0u64;
        rep.replay = wal::replay(&wal_dir, rep.snapshot.wal_from, true, |r| {
            records += 1;
            if records % 64 == 0 {
                // A failure leaves the chunks queued for the storage thread.
                let _ = files.flush(crate::model::now_millis());
            }
            match r {
                Record::Series(v) => {
                    for (id, labels) in v {
                        // An empty label set cannot be logged; skip it if crafted.
                        if let Ok(s) = head.restore_series(id, &labels, &mut remap) {
                            attach(&head, &s, &mut on_disk, &mut sealed);
                        }
                    }
                }
                Record::Samples(v) => replayed.add(head.replay_samples(&v, &[], &remap)),
                Record::Histograms(v) => replayed.add(head.replay_samples(&[], &v, &remap)),
            }
        })
        .map_err(|e| wal_err(&wal_dir, e))?;
        rep.replayed = replayed;
        rep.orphan_chunks = on_disk.values().map(Vec::len).sum();
        rep.orphan_sealed_series = sealed.len();
        if let Some(t) = opts.min_valid_t {
            head.truncate(t);
        }
        let wal = Wal::open(&wal_dir, opts.wal.clone()).map_err(|e| wal_err(&wal_dir, e))?;
        wal.stats.corruptions.fetch_add(
            rep.replay.damage.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if opts.log {
            head.attach_wal(wal.clone());
        }
        let wake = Arc::new(Wake::default());
        let (w, c, k) = (Arc::downgrade(&wal), Arc::downgrade(&files), wake.clone());
        let h = Arc::downgrade(&head);
        let thread = std::thread::Builder::new()
            .name("argus-storage".into())
            .spawn(move || storage_thread(w, c, h, k))
            .map_err(|e| wal_err(&wal_dir, e))?;
        rep.series = head.num_series();
        rep.elapsed = start.elapsed();
        Ok((
            Store {
                dir: dir.to_path_buf(),
                head,
                wal,
                chunks: files,
                checkpointing: Mutex::new(()),
                wake,
                thread: Mutex::new(Some(thread)),
            },
            rep,
        ))
    }

    /// The head.
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// The log.
    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// The storage directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The chunk files.
    pub fn chunk_files(&self) -> &Arc<ChunkFiles> {
        &self.chunks
    }

    /// Writes a checkpoint of the head and removes the log segments it
    /// covers. One at a time; a second caller waits for the first.
    pub fn checkpoint(&self) -> Result<SnapshotInfo, StorageError> {
        let _one = self.checkpointing.lock().unwrap_or_else(|e| e.into_inner());
        let (n, epoch) = self.wal.cut().map_err(|e| wal_err(self.wal.dir(), e))?;
        let info = snapshot::write_tmp(&self.head, &self.dir, n)?;
        // Chunks written out before or during the walk are not in the
        // checkpoint: they must be on disk before it replaces the old one.
        self.chunks.sync().map_err(|e| StorageError::Snapshot {
            path: self.chunks_dir().display().to_string(),
            msg: format!("fsync chunk file: {e}"),
        })?;
        snapshot::install(&self.dir)?;
        self.wal
            .truncate_before(n, epoch)
            .map_err(|e| wal_err(self.wal.dir(), e))?;
        Ok(info)
    }

    /// The retention bound a size budget (`--storage.tsdb.retention.size`)
    /// asks for: the chunk files, their indexes, the log segments and the
    /// checkpoint all count, as Prometheus counts its blocks, WAL and head
    /// chunks; the oldest complete chunk files go first. `None` when the
    /// store fits.
    pub fn size_cutoff(&self, budget: u64) -> Option<i64> {
        let file = |p: PathBuf| fs::metadata(p).map_or(0, |m| m.len());
        let log: u64 = fs::read_dir(self.wal.dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.metadata().map_or(0, |m| m.len()))
                    .sum()
            })
            .unwrap_or(0);
        let other = log + file(self.dir.join(snapshot::FILE_NAME));
        self.chunks.size_cutoff(budget, other)
    }

    fn chunks_dir(&self) -> PathBuf {
        self.dir.join(chunks::DIR)
    }

    /// Stops the storage thread, writes and fsyncs the log and the waiting
    /// chunks, then takes a last checkpoint so the next start replays
    /// nothing.
    pub fn close(&self) -> Result<SnapshotInfo, StorageError> {
        self.wake.stop();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        self.wal.close().map_err(|e| wal_err(self.wal.dir(), e))?;
        // A chunk that cannot be written stays in the checkpoint instead.
        let _ = self.chunks.flush(crate::model::now_millis());
        self.checkpoint()
    }
}

impl Drop for Store {
    /// A store dropped without [`Store::close`] (in tests, as a crash
    /// would) stops its thread and waits for it (it wakes at once); what
    /// was buffered is lost.
    fn drop(&mut self) {
        self.wake.stop();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl AppendOutcome {
    /// Adds another outcome's counts.
    pub fn add(&mut self, o: AppendOutcome) {
        self.appended += o.appended;
        self.out_of_order += o.out_of_order;
        self.duplicate += o.duplicate;
        self.out_of_bounds += o.out_of_bounds;
        self.unknown_ref += o.unknown_ref;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Labels, MatchOp, Matcher};
    use crate::storage::{Appender, Queryable};

    fn opts() -> StoreOptions {
        StoreOptions {
            log: true,
            ..Default::default()
        }
    }

    fn series(i: u32) -> Labels {
        Labels::from_pairs([("__name__", "m".to_string()), ("i", i.to_string())])
    }

    fn all(h: &Head) -> Vec<crate::storage::SeriesSamples> {
        let mut v = h.select(&[], i64::MIN, i64::MAX);
        v.sort_by(|a, b| a.labels.cmp(&b.labels));
        v
    }

    /// What was committed comes back after a "crash" (the store dropped
    /// without close), from the snapshot plus the log after it, and the
    /// series keep their ids for later log records.
    #[test]
    fn a_crash_loses_nothing_flushed_and_ids_survive_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.series, 0);
        let mut a = s.head().appender();
        for i in 0..50 {
            for t in 0..130 {
                a.append(&series(i), t * 1000, f64::from(i) + t as f64)
                    .unwrap();
            }
        }
        a.commit();
        s.checkpoint().unwrap();
        // After the checkpoint: more samples, and a new series.
        let mut a = s.head().appender();
        for i in 0..51 {
            a.append(&series(i), 200_000, 7.0).unwrap();
        }
        a.commit();
        s.wal().flush(false).unwrap();
        let want = all(s.head());
        drop(s);

        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert!(rep.replay.damage.is_empty());
        assert_eq!(rep.snapshot.series, 50);
        assert_eq!(rep.replayed.appended, 51);
        assert_eq!(all(s.head()), want);
        // Samples logged in this second life refer to ids from the first.
        let mut a = s.head().appender();
        a.append(&series(50), 300_000, 8.0).unwrap();
        a.append(&series(51), 300_000, 9.0).unwrap();
        a.commit();
        s.wal().flush(false).unwrap();
        let want = all(s.head());
        drop(s);
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.series, 52);
        assert_eq!(all(s.head()), want);
        // A clean close leaves nothing to replay.
        s.close().unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.replay.records, 0);
        assert_eq!(all(s.head()), want);
    }

    /// With chunk writes failing (the chunk directory gone, as a full
    /// disk fails them), the storage thread puts the series back in the
    /// queue while commits cut and queue more chunks: neither waits for
    /// the other forever (the put-back once took the two locks in the
    /// opposite order to a commit, and both hung).
    #[test]
    fn failing_chunk_writes_and_commits_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let chunks = dir.path().join(crate::storage::chunks::DIR);
        std::fs::remove_dir_all(&chunks).unwrap();
        std::fs::write(&chunks, b"not a directory").unwrap();
        let s = Arc::new(s);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = {
            let (s, tx) = (s.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    let _ = s.chunk_files().flush(0);
                    std::thread::yield_now();
                }
                let _ = tx.send("flush");
            })
        };
        let committer = {
            let (s, tx) = (s.clone(), done_tx);
            std::thread::spawn(move || {
                // Eight series cut a chunk every 120 samples each.
                for t in 0..24_000i64 {
                    let mut a = s.head().appender();
                    for i in 0..8 {
                        a.append(&series(i), t * 1000, t as f64).unwrap();
                    }
                    a.commit();
                }
                let _ = tx.send("commit");
            })
        };
        for _ in 0..2 {
            let who = done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("the storage thread and a commit deadlocked");
            assert!(who == "flush" || who == "commit");
        }
        writer.join().unwrap();
        committer.join().unwrap();
        let failures = s
            .chunk_files()
            .stats
            .write_failures
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(failures > 0, "the chunk writes never failed");
        // Nothing was lost: every sample is still in memory.
        let all = all(s.head());
        assert_eq!(all.len(), 8);
        assert!(all.iter().all(|x| x.samples.len() == 24_000));
    }

    /// A series retention removed and the same labels created again are
    /// two ids in the log; replay puts both ids' samples in one series.
    #[test]
    fn a_series_recreated_under_a_new_id_replays_into_one() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let mut a = s.head().appender();
        a.append(&series(1), 1_000, 1.0).unwrap();
        a.append(&series(2), 1_000, 1.0).unwrap();
        a.commit();
        s.head().truncate(5_000);
        let mut a = s.head().appender();
        a.append(&series(1), 6_000, 2.0).unwrap();
        a.commit();
        s.wal().flush(false).unwrap();
        drop(s);
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        // Without a retention bound the old sample replays too.
        assert_eq!(rep.replayed.appended, 3);
        let m = Matcher::new(MatchOp::Equal, "i", "1").unwrap();
        let got = s.head().select(&[m], 0, i64::MAX);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].samples.len(), 2);
        drop(s);
        let (s, rep) = Store::open(
            dir.path(),
            StoreOptions {
                min_valid_t: Some(5_000),
                ..opts()
            },
        )
        .unwrap();
        assert_eq!(rep.series, 1, "series with nothing in retention are gone");
        assert_eq!(rep.replayed.out_of_bounds, 2);
        assert_eq!(all(s.head())[0].samples.len(), 1);
    }

    fn flush(s: &Store) {
        s.wal().flush(false).unwrap();
        s.chunk_files().flush(0).unwrap();
    }

    fn memory_chunks(h: &Head) -> usize {
        h.all_series().iter().map(|s| s.lock().frozen.len()).sum()
    }

    /// Full chunks leave memory for chunk files and read back the same,
    /// across a crash (the open chunks from the log) and a clean restart
    /// (from the checkpoint), with no sample stored twice.
    #[test]
    fn full_chunks_move_to_files_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let mut a = s.head().appender();
        for t in 0..500i64 {
            for i in 0..20 {
                a.append(&series(i), t * 15_000, (t * i64::from(i)) as f64 * 0.25)
                    .unwrap();
            }
            a.commit();
        }
        let want = all(s.head());
        assert_eq!(memory_chunks(s.head()), 20 * 4);
        flush(&s);
        assert_eq!(memory_chunks(s.head()), 0, "written out");
        assert_eq!(all(s.head()), want);
        let disk: usize = s
            .head()
            .all_series()
            .iter()
            .map(|x| x.lock().disk.len())
            .sum();
        assert_eq!(disk, 80);
        // A crash: chunks in the files, open chunks only in the log.
        drop(s);
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert!(rep.chunks.damage.is_empty());
        assert_eq!(rep.chunks.files, 1);
        assert_eq!(all(s.head()), want);
        assert_eq!(memory_chunks(s.head()), 0);
        // More samples, a checkpoint, more, a crash, a clean close.
        let mut a = s.head().appender();
        for t in 500..700i64 {
            a.append(&series(3), t * 15_000, 1.0).unwrap();
            a.commit();
        }
        s.checkpoint().unwrap();
        let mut a = s.head().appender();
        for t in 700..800i64 {
            a.append(&series(3), t * 15_000, 2.0).unwrap();
            a.commit();
        }
        flush(&s);
        let want = all(s.head());
        drop(s);
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(all(s.head()), want);
        s.close().unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.replay.records, 0);
        assert_eq!(all(s.head()), want);
        // Retention drops expired chunks and, once nothing in a file is
        // needed, the file (not the one being written).
        s.chunk_files().flush(0).unwrap();
        s.head().truncate(i64::MAX - 1);
        assert_eq!(s.head().num_series(), 0);
        let names: Vec<String> = std::fs::read_dir(dir.path().join(chunks::DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let indexes = names.iter().filter(|n| n.ends_with(".index")).count();
        assert!(names.len() - indexes <= 1, "chunk files left: {names:?}");
        assert_eq!(indexes, 0, "indexes go with their files: {names:?}");
    }

    /// A chunk file is complete once it holds its budget of chunks, so
    /// the places series hold for the file being written stay bounded
    /// however long the store runs.
    #[test]
    fn a_file_completes_at_its_chunk_budget_and_places_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        s.chunk_files().set_max_file_chunks(100);
        let mut t = 0i64;
        for _ in 0..6 {
            let mut a = s.head().appender();
            // 120 samples: each of the 50 series cuts one chunk (from the
            // second round on), 50 chunks a flush.
            for _ in 0..120 {
                for i in 0..50u32 {
                    a.append(&series(i), t * 15_000, (t + i64::from(i)) as f64)
                        .unwrap();
                }
                t += 1;
            }
            a.commit();
            flush(&s);
            while s.head().seal_next().unwrap() {}
            let places: usize = s
                .head()
                .all_series()
                .iter()
                .map(|x| x.lock().disk.len())
                .sum();
            assert!(places <= 100 + 2 * 50, "{places} places held");
        }
        let indexes = std::fs::read_dir(dir.path().join(chunks::DIR))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".index")
            })
            .count();
        assert!(indexes >= 2, "{indexes} files completed and indexed");
        let got = all(s.head());
        assert_eq!(got.len(), 50);
        assert!(got.iter().all(|x| x.samples.len() == 720));
    }

    /// A complete chunk file is indexed and its chunk places leave the
    /// series; queries read through the index, across a crash and a clean
    /// restart, and a damaged index is reported and rebuilt.
    #[test]
    fn complete_files_are_indexed_and_their_places_leave_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let fill = |s: &Store, from: i64, to: i64| {
            let mut a = s.head().appender();
            for t in from..to {
                for i in 0..50u32 {
                    a.append(&series(i), t * 15_000, (t * i64::from(i)) as f64)
                        .unwrap();
                }
                a.commit();
            }
        };
        fill(&s, 0, 500);
        flush(&s);
        s.chunk_files().complete_current();
        fill(&s, 500, 800);
        flush(&s);
        let want = all(s.head());
        assert_eq!(want.len(), 50);
        assert!(want.iter().all(|x| x.samples.len() == 800));
        // (The storage thread may have indexed it already.)
        while s.head().seal_next().unwrap() {}
        let places = |s: &Store, n: u32| -> usize {
            s.head()
                .all_series()
                .iter()
                .map(|x| x.lock().disk.iter().filter(|m| m.file == n).count())
                .sum()
        };
        assert_eq!(places(&s, 1), 0, "file 1's places left the series");
        assert!(places(&s, 2) > 0, "file 2 is still being written");
        let chunk_dir = dir.path().join(chunks::DIR);
        assert!(chunk_dir.join("00000001.index").exists());
        assert_eq!(all(s.head()), want);
        // A range inside the indexed file alone.
        let m = Matcher::new(MatchOp::Equal, "i", "7").unwrap();
        let got = s.head().select(&[m], 100 * 15_000, 200 * 15_000);
        let expect: Vec<_> = (100..=200i64)
            .map(|t| (t * 15_000, (t * 7) as f64))
            .collect();
        let got: Vec<_> = got[0].samples.iter().map(|x| (x.t, x.v)).collect();
        assert_eq!(got, expect);
        // A crash: the index is reused, file 2 is indexed at start.
        drop(s);
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert!(rep.chunks.damage.is_empty(), "{:?}", rep.chunks.damage);
        assert_eq!((rep.chunks.files, rep.chunks.indexes_reused), (2, 1));
        assert_eq!(all(s.head()), want);
        assert_eq!(places(&s, 1) + places(&s, 2), 0);
        s.close().unwrap();
        drop(s);
        // A flipped byte in an index: reported with the file, rebuilt.
        let ix = chunk_dir.join("00000001.index");
        let mut b = std::fs::read(&ix).unwrap();
        b[40] ^= 0x10;
        std::fs::write(&ix, b).unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.chunks.damage.len(), 1, "{:?}", rep.chunks.damage);
        let d = rep.chunks.damage[0].to_string();
        assert!(d.contains("00000001.index") && d.contains("rebuilt"), "{d}");
        assert_eq!(all(s.head()), want);
        // Retention past everything removes files and indexes together.
        s.head().truncate(i64::MAX - 1);
        let left: Vec<String> = std::fs::read_dir(&chunk_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// The memory figures follow chunks out of memory: after the write,
    /// full chunks cost 24 bytes each and only open chunks hold samples.
    #[test]
    fn memory_figures_follow_chunks_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let mut a = s.head().appender();
        for t in 0..490i64 {
            for i in 0..1000 {
                a.append(&series(i), t * 15_000, (t % 7) as f64).unwrap();
            }
        }
        a.commit();
        let part = |h: &Head, p: &str| {
            let i = crate::storage::HeadMemory::PARTS
                .iter()
                .position(|x| *x == p)
                .unwrap();
            h.stats.memory[i].load(std::sync::atomic::Ordering::Relaxed)
        };
        // (The storage thread may have written some chunks already.)
        flush(&s);
        s.head().truncate(0);
        // 10 samples left in each open chunk, in a buffer sized like the
        // last full chunk and an eighth (so it rarely regrows).
        let open = part(s.head(), "open_chunks");
        assert!(open < 1000 * 400, "{open}");
        // Four chunks of each series written (490 samples), their places
        // in a list of exactly four.
        assert_eq!(part(s.head(), "chunk_refs"), 1000 * (24 + 4 * 24));
        assert!(part(s.head(), "symbols") > 1000 * 16);
        assert!(part(s.head(), "postings") > 1000 * 4 * 2);
        assert!(part(s.head(), "series") > 1000 * 40);
    }

    /// A damaged chunk file is cut at its first bad record and reported
    /// with its offset; the chunks before it are served.
    #[test]
    fn a_damaged_chunk_file_is_cut_and_the_rest_served() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let mut a = s.head().appender();
        for t in 0..250i64 {
            a.append(&series(1), t * 1000, t as f64).unwrap();
            a.commit();
        }
        flush(&s);
        s.close().unwrap();
        drop(s);
        let f = dir.path().join(chunks::DIR).join("00000001");
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len();
        bytes[n - 5] ^= 0x20;
        std::fs::write(&f, &bytes).unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.chunks.damage.len(), 1, "{:?}", rep.chunks.damage);
        let d = rep.chunks.damage[0].to_string();
        assert!(
            d.contains("00000001 at offset") && d.contains("checksum"),
            "{d}"
        );
        // The first chunk (120 samples) and the open one (10) are back.
        assert_eq!(all(s.head())[0].samples.len(), 130);
        drop(s);
        let (_, rep) = Store::open(dir.path(), opts()).unwrap();
        assert!(rep.chunks.damage.is_empty(), "cut once, reported once");
    }

    /// A snapshot from before chunk files (all chunks in it) is loaded
    /// once and its chunks written out: nothing is lost by upgrading.
    #[test]
    fn an_old_snapshot_is_converted_to_chunk_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = Arc::new(Head::new());
        let mut a = old.appender();
        for t in 0..300i64 {
            a.append(&series(9), t * 1000, t as f64).unwrap();
        }
        a.commit();
        snapshot::write(&old, dir.path(), 0).unwrap();
        let want = all(&old);
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.snapshot.series, 1);
        assert_eq!(all(s.head()), want);
        flush(&s);
        assert_eq!(memory_chunks(s.head()), 0);
        s.close().unwrap();
        drop(s);
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(all(s.head()), want);
    }

    /// A damaged snapshot is set aside and everything still in the log
    /// is served; a damaged log tail is cut and what precedes it served.
    #[test]
    fn damage_is_reported_and_what_precedes_it_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _) = Store::open(dir.path(), opts()).unwrap();
        let mut a = s.head().appender();
        for t in 0..10 {
            a.append(&series(1), t * 1000, t as f64).unwrap();
            a.commit();
        }
        s.wal().flush(false).unwrap();
        drop(s);
        let seg = dir.path().join(wal::DIR).join(wal::segment_name(1));
        let mut bytes = std::fs::read(&seg).unwrap();
        let len = bytes.len();
        bytes[len - 2] ^= 0x10;
        std::fs::write(&seg, &bytes).unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert_eq!(rep.replay.damage.len(), 1, "{:?}", rep.replay.damage);
        assert!(
            rep.replay.damage[0]
                .to_string()
                .contains("00000001 at offset")
        );
        assert_eq!(
            all(s.head())[0].samples.len(),
            9,
            "all but the damaged last"
        );
        s.checkpoint().unwrap();
        drop(s);
        let snap = dir.path().join(snapshot::FILE_NAME);
        let mut bytes = std::fs::read(&snap).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&snap, &bytes).unwrap();
        let (s, rep) = Store::open(dir.path(), opts()).unwrap();
        assert!(rep.quarantined.is_some());
        // The checkpoint removed the segments it covered: nothing is left.
        assert_eq!(rep.series, 0);
        drop(s);
    }
}
