//! Deterministic OpenMetrics data sets with timestamps, loaded identically
//! into argus (`argus import openmetrics`) and Prometheus
//! (`promtool tsdb create-blocks-from openmetrics`) for the differential
//! test and the side-by-side query benchmark.
#![allow(dead_code)]

use std::fmt::Write;

/// What to generate.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Last sample time, Unix seconds.
    pub end: i64,
    /// Time covered, seconds.
    pub span: i64,
    /// Seconds between samples of the request counters and histograms.
    pub step: i64,
    /// Request counter series (`http_requests_total`).
    pub counters: usize,
    /// Histograms of `http_request_duration_seconds` (20 buckets each).
    pub histograms: usize,
    /// Gauges (`node_temperature_celsius`).
    pub gauges: usize,
    /// Also write `slo_requests_total`/`slo_errors_total` at 60 s
    /// resolution over this many days (0 = none).
    pub slo_days: i64,
    /// Series of each SLO counter.
    pub slo_series: usize,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fixed seed, same data on every run.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const BUCKETS: [&str; 20] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.15", "0.2", "0.25",
    "0.35", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "+Inf",
];

/// Writes the data set as OpenMetrics text (series by series, samples in
/// time order, `# EOF` at the end).
pub fn generate(spec: &Spec, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let start = spec.end - spec.span;
    let times: Vec<i64> = (0..)
        .map(|k| start + k * spec.step)
        .take_while(|t| *t <= spec.end)
        .collect();
    let mut buf = String::with_capacity(1 << 20);
    let flush = |buf: &mut String, out: &mut dyn std::io::Write| -> std::io::Result<()> {
        out.write_all(buf.as_bytes())?;
        buf.clear();
        Ok(())
    };

    buf.push_str("# TYPE http_requests counter\n");
    let codes = ["200", "200", "200", "404", "500"];
    let methods = ["GET", "POST"];
    for i in 0..spec.counters {
        let labels = format!(
            "job=\"api-{}\",instance=\"10.0.{}.{}:8080\",code=\"{}\",method=\"{}\"",
            i % 10,
            i / 250,
            i % 250,
            codes[i % codes.len()],
            methods[(i / 5) % 2]
        );
        let mut v = rng.below(1000) as f64;
        for (k, t) in times.iter().enumerate() {
            // An occasional restart resets the counter.
            if k > 0 && rng.below(500) == 0 {
                v = 0.0;
            }
            v += rng.below(50) as f64;
            let _ = writeln!(buf, "http_requests_total{{{labels}}} {v} {t}");
        }
        flush(&mut buf, out)?;
    }

    buf.push_str("# TYPE http_request_duration_seconds histogram\n");
    for i in 0..spec.histograms {
        let labels = format!("job=\"api-{}\",instance=\"10.0.0.{}:8080\"", i % 10, i);
        let mut counts = [0f64; 20];
        let mut sum = 0.0;
        // OpenMetrics wants each point's buckets, sum and count together.
        for t in &times {
            let n = rng.below(100);
            for _ in 0..n {
                let b = (rng.below(20) as usize).min(rng.below(20) as usize);
                counts[b] += 1.0;
                sum += 0.001 * (1 + rng.below(5000)) as f64;
            }
            let mut cum = 0.0;
            for (b, le) in BUCKETS.iter().enumerate() {
                cum += counts[b];
                let _ = writeln!(
                    buf,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cum} {t}"
                );
            }
            let _ = writeln!(
                buf,
                "http_request_duration_seconds_sum{{{labels}}} {sum} {t}"
            );
            let _ = writeln!(
                buf,
                "http_request_duration_seconds_count{{{labels}}} {cum} {t}"
            );
        }
        flush(&mut buf, out)?;
    }

    buf.push_str("# TYPE node_temperature_celsius gauge\n");
    for i in 0..spec.gauges {
        let labels = format!("instance=\"node-{i}\",zone=\"z{}\"", i % 3);
        let mut v = 40.0 + rng.below(20) as f64;
        for t in &times {
            v += (rng.below(21) as f64 - 10.0) / 4.0;
            let _ = writeln!(buf, "node_temperature_celsius{{{labels}}} {v} {t}");
        }
        flush(&mut buf, out)?;
    }

    if spec.slo_days > 0 {
        let slo_start = spec.end - spec.slo_days * 86_400;
        for name in ["slo_requests", "slo_errors"] {
            let _ = writeln!(buf, "# TYPE {name} counter");
            for i in 0..spec.slo_series {
                let labels = format!("service=\"checkout\",instance=\"{i}\"");
                let mut v = 0.0;
                let mut t = slo_start;
                while t <= spec.end {
                    v += if name == "slo_errors" {
                        rng.below(3) as f64
                    } else {
                        100.0 + rng.below(100) as f64
                    };
                    let _ = writeln!(buf, "{name}_total{{{labels}}} {v} {t}");
                    t += 60;
                    if buf.len() > 1 << 20 {
                        flush(&mut buf, out)?;
                    }
                }
                flush(&mut buf, out)?;
            }
        }
    }
    buf.push_str("# EOF\n");
    flush(&mut buf, out)
}
