//! Prometheus's own PromQL test scripts, run against argus's engine.
//!
//! Every case outside `tests/promqltest-known-failures.txt` must pass, and
//! every listed case must still fail, so the list stays true and shrinks
//! as the engine improves.

use std::collections::BTreeMap;
use std::path::Path;

use argus::promql::promqltest::Runner;

const TESTDATA: &str = "../shared/conformance/prometheus/promql/promqltest/testdata";

#[test]
fn promqltest_conformance() {
    check(&Runner::default(), "in memory");
}

/// The same cases with every full chunk written to chunk files and read
/// back from them.
#[test]
fn promqltest_conformance_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    check(&Runner::on_disk(dir.path()), "on disk");
    // The data really was in chunk files.
    let mut bytes = 0;
    for store in std::fs::read_dir(dir.path()).unwrap() {
        let chunks = store.unwrap().path().join("chunks");
        for f in std::fs::read_dir(chunks).into_iter().flatten() {
            bytes += f.unwrap().metadata().unwrap().len();
        }
    }
    eprintln!("promqltest (on disk): {bytes} bytes of chunk files");
    // About 62 KB (110 KB before decimal chunks).
    assert!(bytes > 50_000, "{bytes}");
}

fn check(runner: &Runner, how: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(TESTDATA);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());

    let known_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promqltest-known-failures.txt"),
    )
    .expect("known-failures list");
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    for line in known_text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, why) = line.split_once(' ').unwrap_or((line, ""));
        assert!(!why.trim().is_empty(), "known failure {key} has no reason");
        known.insert(key.to_string(), why.to_string());
    }

    let (mut passed, mut total) = (0usize, 0usize);
    let mut unexpected_failures = Vec::new();
    let mut unexpected_passes = Vec::new();
    for f in &files {
        let base = f.file_name().unwrap().to_string_lossy().into_owned();
        let report = runner.run(&std::fs::read_to_string(f).unwrap());
        for c in &report.cases {
            total += 1;
            let key = format!("{base}:{}", c.line);
            match (&c.failure, known.contains_key(&key)) {
                (None, false) => passed += 1,
                (None, true) => {
                    passed += 1;
                    unexpected_passes.push(key);
                }
                (Some(why), false) => {
                    unexpected_failures.push(format!("{key}: {}\n    {why}", c.expr))
                }
                (Some(_), true) => {}
            }
        }
    }
    eprintln!("promqltest ({how}): {passed} of {total} eval cases pass");
    assert!(
        unexpected_failures.is_empty() && unexpected_passes.is_empty(),
        "{} cases failed that are not in the known-failures list:\n{}\n\n{} listed cases now pass (remove them from the list):\n{}",
        unexpected_failures.len(),
        unexpected_failures.join("\n"),
        unexpected_passes.len(),
        unexpected_passes.join("\n"),
    );
}
