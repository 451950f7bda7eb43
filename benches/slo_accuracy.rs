//! Latency quantile accuracy: 10^6 latencies drawn from a log-normal, a
//! bimodal and a spike distribution; p50/p95/p99 from argus's HDR SLI
//! windows and from `histogram_quantile` (the engine's own code) over the
//! same values bucketed into Prometheus's default buckets, each against
//! the exact quantile of the sorted values. Prints a table; not a timing
//! benchmark. Also prints the memory of one latency SLI holding 30 days.

use argus::promql::classic_histogram_quantile;
use argus::slo::SliWindows;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A named latency distribution.
type Dist = (&'static str, Box<dyn Fn(&mut Rng) -> f64>);

const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn main() {
    let n = 1_000_000;
    let dists: [Dist; 3] = [
        // Median 120 ms, a long tail.
        (
            "log-normal",
            Box::new(|r: &mut Rng| (0.12f64.ln() + 0.6 * r.normal()).exp()),
        ),
        // Cache hits around 15 ms, misses around 320 ms.
        (
            "bimodal",
            Box::new(|r: &mut Rng| {
                if r.uniform() < 0.8 {
                    (0.015f64.ln() + 0.2 * r.normal()).exp()
                } else {
                    (0.32f64.ln() + 0.15 * r.normal()).exp()
                }
            }),
        ),
        // 97% fast, 3% stuck on a 2 s timeout.
        (
            "spike",
            Box::new(|r: &mut Rng| {
                if r.uniform() < 0.97 {
                    (0.04f64.ln() + 0.3 * r.normal()).exp()
                } else {
                    2.0 + 0.01 * r.uniform()
                }
            }),
        ),
    ];
    println!(
        "{:<11} {:>4} {:>11} {:>11} {:>8} {:>11} {:>9}",
        "dist", "q", "exact", "hdr", "hdr err", "buckets", "bkt err"
    );
    let mut worst_hdr = 0.0f64;
    for (name, draw) in dists.iter() {
        let mut rng = Rng(42);
        let t0: i64 = 1_800_000_000_000;
        let mut w = SliWindows::new(true, 30, t0);
        let mut values = Vec::with_capacity(n);
        let mut counts = [0u64; 12];
        for i in 0..n {
            let v = draw(&mut rng);
            values.push(v);
            // Spread over one hour, as a scraped service would see them.
            w.observe_latency(t0 + (i as i64 * 3_600_000 / n as i64), v);
            let b = DEFAULT_BUCKETS.iter().position(|&u| v <= u).unwrap_or(11);
            counts[b] += 1;
        }
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut cum = 0.0;
        let buckets: Vec<(f64, f64)> = DEFAULT_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(counts)
            .map(|(u, c)| {
                cum += c as f64;
                (u, cum)
            })
            .collect();
        let stats = w.window(t0 + 3_600_000, 3_600_000);
        for q in [0.5, 0.95, 0.99] {
            let exact = values[((n as f64 * q).ceil() as usize).min(n) - 1];
            let hdr = stats.latency_quantile(q).unwrap_or(f64::NAN);
            let bkt = classic_histogram_quantile(q, &buckets);
            let (e1, e2) = ((hdr - exact).abs() / exact, (bkt - exact).abs() / exact);
            worst_hdr = worst_hdr.max(e1);
            println!(
                "{name:<11} {:>4} {:>9.2}ms {:>9.2}ms {:>7.2}% {:>9.2}ms {:>8.1}%",
                format!("p{}", (q * 100.0) as u32),
                exact * 1e3,
                hdr * 1e3,
                e1 * 100.0,
                bkt * 1e3,
                e2 * 100.0
            );
        }
    }
    println!(
        "worst HDR relative error: {:.2}% (target <= 1%)",
        worst_hdr * 100.0
    );

    // Memory: a latency SLI with traffic every second for 31 days.
    let t0: i64 = 1_800_000_000_000;
    let mut w = SliWindows::new(true, 30, t0);
    let mut rng = Rng(7);
    for s in 0..(31 * 86_400i64) {
        let v = (0.12f64.ln() + 0.6 * rng.normal()).exp();
        w.observe_latency(t0 + s * 1000, v);
        w.observe_events(t0 + s * 1000, u64::from(s % 1000 == 0), 1);
    }
    let _ = w.window(t0 + 31 * 86_400_000, 30 * 86_400_000);
    println!(
        "memory of one latency SLI after 31 days of 1/s observations: {:.1} KiB (target <= 256 KiB)",
        w.memory_bytes() as f64 / 1024.0
    );
}
