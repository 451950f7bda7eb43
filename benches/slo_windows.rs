//! Cost of SLI windows at scale: 1,000 latency SLIs with 30 days of
//! history (filled first, one observation per 5 minutes, not measured),
//! then one simulated hour measured: each SLI observes one request per
//! second (an event count and a latency) and has its 5m/1h/1d/30d
//! windows read (error ratio and p50/p90/p95/p99/p99.9) every 15
//! simulated seconds, as the probe and SLO series are written. Prints the
//! CPU time per simulated second as a share of one core (target < 5%)
//! and the memory per SLI; then what writing the windows file costs (it
//! is rewritten every second when the windows changed): its size and the
//! time to encode and write it.

use std::collections::BTreeMap;
use std::time::Instant;

use argus::slo::{SliWindows, windows_to_bytes};

fn main() {
    let slis = 1_000;
    let seconds = 3_600i64;
    let history = 30 * 86_400i64;
    let start: i64 = 1_800_000_000_000;
    let mut ws: Vec<SliWindows> = (0..slis)
        .map(|_| SliWindows::new(true, 30, start))
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for s in (0..history).step_by(300) {
        for w in ws.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.observe_events(start + s * 1000, u64::from(x % 1000 == 0), 1);
            w.observe_latency(start + s * 1000, 0.05 + (x % 200) as f64 / 1000.0);
        }
    }
    let t0 = start + history * 1000;
    let started = Instant::now();
    let mut reads = 0u64;
    for s in 0..seconds {
        let now = t0 + s * 1000;
        for w in ws.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let latency = 0.05 + (x % 200) as f64 / 1000.0;
            w.observe_events(now, u64::from(x % 1000 == 0), 1);
            w.observe_latency(now, latency);
        }
        if s % 15 == 0 {
            for w in ws.iter_mut() {
                for win in [300_000, 3_600_000, 86_400_000, 30 * 86_400_000] {
                    let st = w.window(now, win);
                    let _ = st.error_ratio();
                    for q in [0.5, 0.9, 0.95, 0.99, 0.999] {
                        let _ = st.latency_quantile(q);
                    }
                    reads += 1;
                }
            }
        }
    }
    let cpu = started.elapsed().as_secs_f64();
    let mem: usize = ws.iter().map(|w| w.memory_bytes()).sum();
    println!(
        "{slis} SLIs with 30 days of history, {seconds} simulated seconds, {reads} window reads: {cpu:.2} s of CPU = {:.3}% of one core (target < 5%); memory {:.1} MiB ({:.1} KiB per SLI)",
        cpu / seconds as f64 * 100.0,
        mem as f64 / 1048576.0,
        mem as f64 / 1024.0 / slis as f64
    );
    let all: BTreeMap<String, SliWindows> = ws
        .into_iter()
        .enumerate()
        .map(|(i, w)| (format!("svc-{i}/latency"), w))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let rounds = 10;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..rounds {
        let b = windows_to_bytes(&all);
        bytes = b.len();
        // A fresh pacer, so each round writes, as when the windows change.
        argus::model::PacedFile::default()
            .write(dir.path(), "slo_windows.bin", &b)
            .expect("write");
    }
    let per = started.elapsed().as_secs_f64() / f64::from(rounds);
    println!(
        "windows file: {:.1} MiB, encoded and written (fsynced) in {:.0} ms: rewritten every {:.1} s (at most 1% of a core)",
        bytes as f64 / 1048576.0,
        per * 1000.0,
        (per * 100.0).max(1.0)
    );
}
