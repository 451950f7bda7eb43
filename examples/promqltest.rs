//! Runs Prometheus promqltest scripts against argus's PromQL engine.
//!
//! `cargo run --release --example promqltest -- [--verbose] FILE...`
//! prints `FILE: N passed, M failed` per file and a total line, and exits 1
//! if any case failed. `--verbose` shows each failing case;
//! `--list-failures` prints them in the known-failures file format.

use std::process::ExitCode;

use argus::promql::promqltest::Runner;

fn main() -> ExitCode {
    let mut verbose = false;
    // Prints failing cases in the format of tests/promqltest-known-failures.txt.
    let mut list = false;
    let mut files = Vec::new();
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--verbose" | "-v" => verbose = true,
            "--list-failures" => list = true,
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        eprintln!("usage: promqltest [--verbose] FILE...");
        return ExitCode::from(2);
    }
    let runner = Runner::default();
    let (mut passed, mut failed) = (0, 0);
    for f in &files {
        let text = match std::fs::read_to_string(f) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{f}: {e}");
                failed += 1;
                continue;
            }
        };
        let report = runner.run(&text);
        passed += report.passed();
        failed += report.failed();
        if list {
            let base = std::path::Path::new(f)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for c in &report.cases {
                if let Some(why) = &c.failure {
                    println!(
                        "{base}:{} {}",
                        c.line,
                        argus::promql::promqltest::reason(why)
                    );
                }
            }
            continue;
        }
        println!(
            "{f}: {} passed, {} failed",
            report.passed(),
            report.failed()
        );
        if verbose {
            for c in report.cases.iter().filter(|c| c.failure.is_some()) {
                println!(
                    "  {f}:{}: {}\n    {}",
                    c.line,
                    c.expr,
                    c.failure.as_deref().unwrap_or("")
                );
            }
        }
    }
    if !list {
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
