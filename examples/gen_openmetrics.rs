//! Writes the deterministic data set of the differential test and the
//! side-by-side query benchmark as OpenMetrics text on stdout.
//!
//! `gen_openmetrics END SPAN STEP COUNTERS HISTOGRAMS GAUGES SLO_DAYS SLO_SERIES`
//! (times in seconds).

#[path = "../tests/common/om_data.rs"]
mod om_data;

use std::io::Write;

fn main() -> std::process::ExitCode {
    let a: Vec<i64> = std::env::args()
        .skip(1)
        .map(|x| x.parse::<i64>().unwrap_or(-1))
        .collect();
    if a.len() != 8 || a.iter().any(|x| *x < 0) {
        eprintln!(
            "usage: gen_openmetrics END SPAN STEP COUNTERS HISTOGRAMS GAUGES SLO_DAYS SLO_SERIES"
        );
        return std::process::ExitCode::from(2);
    }
    let spec = om_data::Spec {
        end: a[0],
        span: a[1],
        step: a[2].max(1),
        counters: a[3] as usize,
        histograms: a[4] as usize,
        gauges: a[5] as usize,
        slo_days: a[6],
        slo_series: a[7] as usize,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Err(e) = om_data::generate(&spec, &mut out).and_then(|_| out.flush()) {
        eprintln!("gen_openmetrics: {e}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
