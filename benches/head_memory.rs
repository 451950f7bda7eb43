//! Head memory: bytes per active series and per sample, measured as the
//! growth of this process's resident set while filling a head. Prints one
//! line per figure (not a criterion benchmark: memory is not a timing).
//!
//! Workload: 100,000 series of 5 labels (node_exporter-like), then 720
//! samples each at a 15 s interval (3 hours): 50% counters growing by small
//! integers, 40% constant gauges, 10% gauges with three significant digits.

use std::sync::Arc;

use argus::model::Labels;
use argus::storage::chunk::XorChunk;
use argus::storage::{Appender, Head, SeriesRef};

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("rss");
    pages * 4096
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    const N: usize = 100_000;
    const SAMPLES: i64 = 720;
    // Label strings are built inside the measurement: the head owns them
    // in production (the scrape cache drops its copies).
    let make = |i: usize| {
        Labels::from_pairs([
            ("__name__".to_string(), format!("node_metric_{}", i % 200)),
            (
                "instance".to_string(),
                format!("10.1.{}.{}:9100", i / 500 % 250, i % 250),
            ),
            ("job".to_string(), "node".to_string()),
            ("device".to_string(), format!("dev{}", i % 8)),
            (
                "mode".to_string(),
                ["user", "system", "idle", "iowait"][i % 4].to_string(),
            ),
        ])
    };
    let head = Arc::new(Head::new());
    let base = rss_bytes();
    // Created in commits of 2,000 as a scrape creates them: an appender
    // keeps each new series' labels until its commit, and one commit of
    // all 100,000 would leave their freed copies in the resident set.
    let mut refs: Vec<SeriesRef> = Vec::with_capacity(N);
    for batch in (0..N).collect::<Vec<_>>().chunks(2_000) {
        let mut a = head.appender();
        refs.extend(
            batch
                .iter()
                .map(|&i| a.append(&make(i), 0, 0.0).expect("append")),
        );
        a.commit();
    }
    let after_series = rss_bytes();
    let mut counters = vec![0f64; N];
    for s in 1..SAMPLES {
        let t = s * 15_000;
        let mut a = head.appender();
        for (i, r) in refs.iter().enumerate() {
            let v = match i % 10 {
                0..=4 => {
                    counters[i] += ((i as i64 * 7 + s * 13) % 5) as f64;
                    counters[i]
                }
                5..=8 => 1.0,
                _ => ((i as i64 * 31 + s * 17) % 1000) as f64 / 10.0,
            };
            a.append_ref(*r, t, v).expect("ref");
        }
        a.commit();
    }
    let after_samples = rss_bytes();
    let per_series = (after_series - base) as f64 / N as f64;
    let total_samples = (N as i64 * SAMPLES) as f64;
    let per_sample = (after_samples - after_series) as f64 / (total_samples - N as f64);
    let encoded = head.chunk_bytes() as f64 / total_samples;
    println!("head_memory series={N} samples_per_series={SAMPLES}");
    println!("head_memory bytes_per_series={per_series:.1}");
    println!("head_memory bytes_per_sample_rss={per_sample:.3}");
    println!("head_memory bytes_per_sample_encoded={encoded:.3}");
    assert_eq!(head.num_samples() as i64, N as i64 * SAMPLES);

    // Encoded size per kind of series, so other mixes can be estimated.
    type Kind = (&'static str, fn(i64) -> f64);
    let kinds: [Kind; 4] = [
        ("constant", |_| 1.0),
        ("counter_small_int_steps", |s| (s * 2 + s % 3) as f64),
        ("counter_fractional", |s| {
            s as f64 * 0.37 + (s % 7) as f64 * 0.011
        }),
        ("gauge_3_significant_digits", |s| {
            ((s * 17 + 31) % 1000) as f64 / 10.0
        }),
    ];
    for (name, f) in kinds {
        let mut bytes = 0usize;
        let mut c = XorChunk::new();
        for s in 0..SAMPLES {
            if c.len() == argus::storage::chunk::SAMPLES_PER_CHUNK {
                bytes += c.bytes().len();
                c = XorChunk::new();
            }
            c.append(s * 15_000, f(s));
        }
        bytes += c.bytes().len();
        println!(
            "head_memory encoded_bytes_per_sample[{name}]={:.3}",
            bytes as f64 / SAMPLES as f64
        );
    }
}
