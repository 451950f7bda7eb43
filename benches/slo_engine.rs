//! Cost of the SLO engine's evaluation (slo_files inside argus): 1,000
//! latency SLOs over classic histograms (6 buckets each) in the store,
//! samples every 15 simulated seconds for 10 minutes (warm-up, not
//! measured), then 30 minutes measured: at each 15 s evaluation the
//! engine queries each SLI's 5-minute rates and its buckets, adds the
//! increases to its HDR windows, and writes the 3d / period ratios, the
//! events-weighted budget and 20 latency quantiles per SLO. Prints the
//! time per evaluation and the share of one core at a 15 s interval.

use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::config::Config;
use argus::model::{Labels, ManualClock};
use argus::promql::{Engine, EngineOptions};
use argus::slo::SloEngine;
use argus::storage::{Appender, Head};

const BOUNDS: [&str; 6] = ["0.05", "0.1", "0.2", "0.5", "1.0", "+Inf"];

fn main() {
    let slos = 1_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = String::from("version: prometheus/v1\nservice: bench\nslos:\n");
    for i in 0..slos {
        spec.push_str(&format!(
            "  - name: svc-{i}\n    objective: 95\n    sli:\n      latency: {{histogram: http_request_duration_seconds, threshold: 200ms, selector: '{{job=\"svc-{i}\"}}'}}\n    alerting: {{name: Slow}}\n"
        ));
    }
    let path = dir.path().join("bench.slo.yml");
    std::fs::write(&path, spec).expect("write");
    let cfg = Config {
        slo_files: vec![path.display().to_string()],
        ..Default::default()
    };
    let start = 1_800_000_000_000i64;
    let clock = Arc::new(ManualClock::new(start));
    let head = Arc::new(Head::new());
    let engine = Arc::new(Engine::new(EngineOptions::default()));
    let slo = SloEngine::new(engine, head.clone(), clock.clone());
    slo.apply(&cfg);
    let labels: Vec<Vec<Labels>> = (0..slos)
        .map(|i| {
            let job = format!("svc-{i}");
            let mut v: Vec<Labels> = BOUNDS
                .iter()
                .map(|le| {
                    Labels::from_pairs([
                        ("__name__", "http_request_duration_seconds_bucket"),
                        ("job", job.as_str()),
                        ("le", le),
                    ])
                })
                .collect();
            v.push(Labels::from_pairs([
                ("__name__", "http_request_duration_seconds_count"),
                ("job", job.as_str()),
            ]));
            v
        })
        .collect();
    // Per 15 s: 1,500 requests, cumulative per bucket.
    let per_step = [300.0, 900.0, 1_300.0, 1_450.0, 1_490.0, 1_500.0, 1_500.0];
    let mut measured = Duration::ZERO;
    let (warm, total) = (40, 160);
    for step in 0..total {
        let t = start + step * 15_000;
        clock.set(t);
        let mut app = head.appender();
        for series in &labels {
            for (l, per) in series.iter().zip(per_step) {
                let _ = app.append(l, t, per * (step + 1) as f64);
            }
        }
        app.commit();
        let began = Instant::now();
        slo.evaluate();
        if step >= warm {
            measured += began.elapsed();
        }
    }
    let evals = (total - warm) as f64;
    let per_eval = measured.as_secs_f64() / evals;
    println!(
        "slo_engine: {slos} latency SLOs, {evals} evaluations measured: {:.1} ms per evaluation, {:.2}% of one core at a 15 s interval",
        per_eval * 1000.0,
        per_eval / 15.0 * 100.0
    );
}
