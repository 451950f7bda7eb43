//! The write-ahead log against real processes: kill -9 at random moments
//! loses nothing older than a second, and a damaged log is reported with
//! its file and offset while everything before the damage is served.

mod common;

use std::time::Duration;

use common::*;

fn config(target: &Target, interval_ms: u64) -> String {
    format!(
        "global:\n  scrape_interval: {interval_ms}ms\n  scrape_timeout: {interval_ms}ms\nscrape_configs:\n  - job_name: seq\n    static_configs: [{{targets: ['{}']}}]\n",
        target.addr()
    )
}

/// A small deterministic generator (the seed is printed, so a failure can
/// be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kill9_at_random_moments_loses_nothing_older_than_a_second() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("seed {seed}");
    let mut rng = Lcg(seed);
    // 2,000 series scraped every 100 ms and a checkpoint every second, so
    // kills land during log writes, fsyncs, segment cuts, snapshot writes
    // and truncations alike.
    let t = Target::start(Reply::Sequence {
        name: "wal_seq".into(),
        extra: 2000,
    });
    let d = tempfile::tempdir().unwrap();
    let cfg = config(&t, 100);
    let extra = ["--storage.snapshot-interval", "1s"];
    let mut must_have: std::collections::BTreeSet<u64> = Default::default();
    for life in 0..20 {
        let mut a = Argus::start_in(d.path(), &cfg, &extra);
        // A kill in the middle of a log write may tear its last record
        // (reported and cut); the snapshot is renamed into place whole.
        assert!(
            !a.log().contains("snapshot is damaged"),
            "life {life}:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(rng.below(2500)));
        // What this life has stored now must all be there after a kill a
        // little more than a second later.
        let seen = stored_wal_seq(&a);
        std::thread::sleep(Duration::from_millis(1000 + rng.below(200)));
        a.kill9();
        assert!(!seen.is_empty() || life == 0, "life {life}: nothing stored");
        must_have.extend(seen);
    }
    // The last life, stopped cleanly, answers for all twenty kills.
    let mut a = Argus::start_in(d.path(), &cfg, &extra);
    assert!(!a.log().contains("snapshot is damaged"), "{}", a.log());
    a.stop();
    let t_hits = t.hit_count();
    drop(t);
    let b = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
    let got = stored_wal_seq(&b);
    // Every stored value is one the target served, once.
    let served = t_hits as u64;
    assert!(got.windows(2).all(|w| w[0] < w[1]), "a value stored twice");
    assert!(got.iter().all(|v| (1..=served).contains(v)), "{got:?}");
    let missing = missing_from(&must_have, &got);
    assert!(
        missing.is_empty(),
        "seed {seed}: {} of {} samples lost, first {:?}",
        missing.len(),
        must_have.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(must_have.len() > 100, "{}", must_have.len());
    // The load series came back too (each scrape's samples are one record).
    let load = b.query_value("count(wal_seq_load)").unwrap();
    assert_eq!(load, 2000.0);
}

/// Damage to the newest segment, as a torn write, a flipped bit or a
/// zeroed tail would leave it: argus starts, names the file and offset,
/// serves everything before the damage and keeps scraping.
#[test]
fn damaged_log_segments_are_cut_reported_and_what_precedes_is_served() {
    for damage in ["truncate", "flip", "zero"] {
        let t = Target::start(Reply::Sequence {
            name: "wal_seq".into(),
            extra: 0,
        });
        let d = tempfile::tempdir().unwrap();
        let cfg = config(&t, 100);
        let mut a = Argus::start_in(d.path(), &cfg, &[]);
        wait_for(10, "twenty scrapes", || (t.hit_count() >= 20).then_some(()));
        // What it stored (a scrape that timed out under load stored
        // nothing), then, once that reached the log, a crash: no final
        // checkpoint.
        let seen = stored_wal_seq(&a);
        std::thread::sleep(Duration::from_millis(300));
        a.kill9();
        drop(t);
        let wal = d.path().join("data/wal");
        let mut segs: Vec<_> = std::fs::read_dir(&wal)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        let seg = segs.last().unwrap().clone();
        let mut bytes = std::fs::read(&seg).unwrap();
        let len = bytes.len();
        assert!(len > 200, "{damage}: {len}");
        // Damage the last ~100 bytes: the last few records.
        let at = len - 100;
        match damage {
            "truncate" => bytes.truncate(at + 3),
            "flip" => bytes[at + 20] ^= 0x08,
            _ => bytes[at..].iter_mut().for_each(|b| *b = 0),
        }
        std::fs::write(&seg, &bytes).unwrap();
        let b = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
        let log = b.log();
        let line = log
            .lines()
            .find(|l| l.contains("write-ahead log damaged"))
            .unwrap_or_else(|| panic!("{damage}: no damage reported:\n{log}"));
        assert!(
            line.contains(&seg.display().to_string()) && line.contains("at offset"),
            "{damage}: {line}"
        );
        let got = stored_wal_seq(&b);
        // A scrape is one record of about 80 bytes here (its sample and
        // the synthetic series): the damage costs the last few scrapes;
        // everything stored before them is back.
        let newest = *seen.last().unwrap();
        let lost: Vec<u64> = seen
            .iter()
            .filter(|v| **v + 8 <= newest && got.binary_search(v).is_err())
            .copied()
            .collect();
        assert!(lost.is_empty(), "{damage}: lost {lost:?} of {seen:?}");
        assert!(got.len() >= 10, "{damage}: {got:?}");
        let m = http_get(&format!("{}/metrics", b.url())).unwrap().1;
        assert!(
            m.lines()
                .any(|l| l.starts_with("argus_wal_corruptions_total 1")),
            "{damage}: {m}"
        );
        // The repair is done once: the next start reports nothing.
        drop(b);
        let c = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
        assert!(!c.log().contains("damaged"), "{damage}: {}", c.log());
        assert_eq!(stored_wal_seq(&c), got, "{damage}");
    }
}

/// Damage to a chunk file, as a torn write, a flipped bit or a zeroed
/// tail would leave it: argus starts, names the file and offset, and what
/// the file lost is still in the write-ahead log (no checkpoint has
/// truncated it yet), so every sample comes back.
#[test]
fn damaged_chunk_files_are_cut_reported_and_the_log_fills_the_gap() {
    for damage in ["truncate", "flip", "zero"] {
        let t = Target::start(Reply::Sequence {
            name: "wal_seq".into(),
            extra: 0,
        });
        let d = tempfile::tempdir().unwrap();
        // 10 ms scrapes: a full chunk of 120 samples every 1.2 s.
        let cfg = config(&t, 10);
        let mut a = Argus::start_in(d.path(), &cfg, &[]);
        a.wait_for(30, "three chunks written", || {
            (metric(&a, "argus_chunks_written_total", "") >= 3.0).then_some(())
        });
        let seen = stored_wal_seq(&a);
        std::thread::sleep(Duration::from_millis(300));
        a.kill9();
        drop(t);
        let dir = d.path().join("data/chunks");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let f = files.last().unwrap().clone();
        let mut bytes = std::fs::read(&f).unwrap();
        let len = bytes.len();
        let at = len - 100;
        match damage {
            "truncate" => bytes.truncate(at + 3),
            "flip" => bytes[at + 20] ^= 0x08,
            _ => bytes[at..].iter_mut().for_each(|b| *b = 0),
        }
        std::fs::write(&f, &bytes).unwrap();
        let mut b = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
        let log = b.log();
        let line = log
            .lines()
            .find(|l| l.contains("chunk file or index damaged"))
            .unwrap_or_else(|| panic!("{damage}: no damage reported:\n{log}"));
        assert!(
            line.contains(&f.display().to_string()) && line.contains("at offset"),
            "{damage}: {line}"
        );
        // Everything stored before the kill is back: what the chunk file
        // lost, the log still held.
        let got = stored_wal_seq(&b);
        let lost = missing_from(&seen, &got);
        assert!(lost.is_empty(), "{damage}: lost {lost:?}");
        assert!(
            metric(&b, "argus_chunks_corruptions_total", "") >= 1.0,
            "{damage}"
        );
        // At that start every file was complete and got its index; the
        // same damage to an index: reported, rebuilt from its file.
        b.kill9();
        let ix = index_of(&f);
        let mut bytes = std::fs::read(&ix).unwrap();
        let at = bytes.len() / 2;
        match damage {
            "truncate" => bytes.truncate(at),
            "flip" => bytes[at] ^= 0x08,
            _ => bytes[at..].iter_mut().for_each(|b| *b = 0),
        }
        std::fs::write(&ix, &bytes).unwrap();
        let c = Argus::start_in(d.path(), "scrape_configs: []\n", &[]);
        let log = c.log();
        let line = log
            .lines()
            .find(|l| l.contains("chunk file or index damaged"))
            .unwrap_or_else(|| panic!("{damage}: no index damage reported:\n{log}"));
        assert!(
            line.contains(&ix.display().to_string()) && line.contains("rebuilt"),
            "{damage}: {line}"
        );
        assert_eq!(stored_wal_seq(&c), got, "{damage}: index rebuilt");
    }
}

/// The index file beside chunk file `f`.
fn index_of(f: &std::path::Path) -> std::path::PathBuf {
    let ix = argus::storage::sealed::index_path(f);
    assert!(ix.exists(), "{} has no index", f.display());
    ix
}

/// A full disk, stood in for by a file size limit (each file argus writes
/// may grow to 300 KB; a write past that fails with EFBIG as one on a full
/// disk fails with ENOSPC); the compatibility suite runs the same scenario
/// on a real, small tmpfs (`tests/compat.rs`).
#[test]
fn a_full_disk_degrades_to_memory_alerts_and_recovers_without_loss() {
    let d = tempfile::tempdir().unwrap();
    disk_full_scenario(
        d.path(),
        |dir, cfg| Argus::start_with_file_size_limit(dir, cfg, &[], 300_000),
        |a| a.lift_file_size_limit(),
    );
}
