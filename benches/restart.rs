//! The store on disk at scale: fills a store (write-ahead log and chunk
//! files on) with SERIES series × HOURS of samples at a 15 s interval, a
//! checkpoint five minutes before the end as the periodic one would be,
//! then measures, each in a fresh process: opening it after a crash (the
//! log since the checkpoint replayed) and after a clean close; with the
//! resident memory after each open and the bytes on disk per sample.
//! After the clean open, a one-hour `rate` over every series is timed on
//! the store (its chunks read from the chunk files) and on a bare
//! in-memory head holding the same last hour.
//! Prints one line per figure (not a criterion benchmark).
//!
//! `SERIES=1000000 HOURS=2 cargo bench --bench restart` (defaults: 200,000
//! series, 2 hours).

use std::path::Path;
use std::time::Instant;

use argus::model::Labels;
use argus::storage::{Appender, Queryable, SeriesRef, Store, StoreOptions};

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("field")
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

fn opts() -> StoreOptions {
    StoreOptions {
        log: true,
        ..Default::default()
    }
}

/// The child: opens the store, reports time and memory, then closes it
/// (a checkpoint) or not.
fn open(dir: &Path, close: bool, query_at: Option<i64>) {
    let start = Instant::now();
    let (store, rep) = Store::open(dir, opts()).expect("open");
    let secs = start.elapsed().as_secs_f64();
    // What a running argus would hold: the head, not the scan's garbage.
    println!(
        "open_seconds={secs:.2} series={} wal_records={} wal_samples={} chunk_files={} rss_mib={:.0} hwm_mib={:.0}",
        rep.series,
        rep.replay.records,
        rep.replayed.appended,
        rep.chunks.files,
        status_kb("VmRSS:") as f64 / 1024.0,
        status_kb("VmHWM:") as f64 / 1024.0,
    );
    if close {
        let start = Instant::now();
        store.close().expect("close");
        println!("close_seconds={:.2}", start.elapsed().as_secs_f64());
    }
    if let Some(at) = query_at {
        rate_over_everything(&store, at);
    }
}

/// Times `sum(rate({job="node"}[1h]))` at `at` on the store and on an
/// in-memory copy of its last hour; best of three each.
fn rate_over_everything(store: &Store, at: i64) {
    use argus::promql::{Engine, Query, QueryOptions};
    // At a million series the hour holds 240 M samples, past the API's
    // default budget: the bench times the work, not the limit.
    let engine = Engine::new(argus::promql::EngineOptions {
        max_samples: usize::MAX,
        timeout: std::time::Duration::from_secs(600),
        ..Default::default()
    });
    let q = Query::parse(r#"sum(rate({job="node"}[1h]))"#).expect("query");
    let time = |head: &argus::storage::Head| {
        let mut best = f64::MAX;
        let mut value = String::new();
        for _ in 0..3 {
            let start = Instant::now();
            let v = engine
                .instant(head, &q, at, &QueryOptions::default())
                .expect("eval");
            best = best.min(start.elapsed().as_secs_f64());
            value = format!("{v:?}").chars().take(80).collect();
        }
        (best, value)
    };
    let (disk, dv) = time(store.head());
    let memory = std::sync::Arc::new(argus::storage::Head::new());
    let mut a = memory.appender();
    for s in store.head().select(&[], at - 3_900_000, at) {
        for x in &s.samples {
            a.append(&s.labels, x.t, x.v).expect("append");
        }
    }
    a.commit();
    let (mem, mv) = time(&memory);
    assert_eq!(dv, mv, "the same answer from both");
    println!(
        "rate_1h_all_series: store {:.0} ms, in-memory head {:.0} ms, ratio {:.2}",
        disk * 1000.0,
        mem * 1000.0,
        disk / mem
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--open") {
        let at = args
            .iter()
            .position(|a| a == "--query-at")
            .and_then(|i| args.get(i + 1)?.parse().ok());
        open(
            Path::new(&args[i + 1]),
            args.iter().any(|a| a == "--close"),
            at,
        );
        return;
    }
    let n: usize = std::env::var("SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let hours: i64 = std::env::var("HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let steps = hours * 240;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let (store, _) = Store::open(&dir, opts()).expect("open");
    let head = store.head().clone();
    let make = |i: usize| {
        Labels::from_pairs([
            ("__name__".to_string(), format!("node_metric_{}", i % 200)),
            (
                "instance".to_string(),
                format!("10.1.{}.{}:9100", i / 500 % 250, i % 250),
            ),
            ("job".to_string(), "node".to_string()),
            ("device".to_string(), format!("dev{}", i % 8)),
            ("series".to_string(), i.to_string()),
        ])
    };
    let mut a = head.appender_with_capacity(n);
    let refs: Vec<SeriesRef> = (0..n)
        .map(|i| a.append(&make(i), 0, 0.0).expect("append"))
        .collect();
    a.commit();
    // Half counters with small steps, 40% constant, 10% three-digit gauges.
    let start = Instant::now();
    let mut counters = vec![0f64; n];
    for s in 1..steps {
        let t = s * 15_000;
        let mut a = head.appender_with_capacity(n);
        for (i, r) in refs.iter().enumerate() {
            let v = match i % 10 {
                0..=4 => {
                    counters[i] += ((i + s as usize) % 5) as f64;
                    counters[i]
                }
                5..=8 => 1.0,
                _ => ((s as usize * 7 + i) % 1000) as f64 / 10.0,
            };
            a.append_ref(*r, t, v).expect("append");
        }
        a.commit();
        if s == steps - 20 {
            store.checkpoint().expect("checkpoint");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let samples = n as u64 * steps as u64;
    store.wal().flush(false).expect("flush");
    store.chunk_files().flush(0).expect("flush");
    println!(
        "filled series={n} hours={hours} samples={samples} append_seconds={secs:.1} samples_per_second={:.0} rss_mib={:.0}",
        samples as f64 / secs,
        status_kb("VmRSS:") as f64 / 1024.0
    );
    // A crash: nothing closed, nothing checkpointed since five minutes.
    drop(head);
    drop(store);
    let me = std::env::current_exe().expect("exe");
    let run = |close: bool| {
        let mut c = std::process::Command::new(&me);
        c.arg("--open").arg(&dir);
        if close {
            c.arg("--close");
        } else {
            c.arg("--query-at").arg(((steps - 1) * 15_000).to_string());
        }
        let out = c.output().expect("child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    print!("after a crash: ");
    run(true);
    let disk = dir_bytes(&dir);
    println!(
        "on disk after the close: {disk} bytes, {:.2} bytes per sample (chunks {}, checkpoint {}, log {})",
        disk as f64 / samples as f64,
        dir_bytes(&dir.join("chunks")),
        std::fs::metadata(dir.join("head.snapshot")).map_or(0, |m| m.len()),
        dir_bytes(&dir.join("wal")),
    );
    print!("after a clean close: ");
    run(false);
}
