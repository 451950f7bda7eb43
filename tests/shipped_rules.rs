//! The rule files shipped in rules/ are valid and pass the unit-test file
//! beside each, with every alerting rule covered by a test.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn files(suffix: &str, exclude: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(rules_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.ends_with(suffix) && !n.ends_with(exclude)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn shipped_rules_check_and_pass_their_tests() {
    let rule_files = files(".yml", ".test.yml");
    let tests = files(".test.yml", "\0");
    assert!(
        rule_files.len() >= 2 && tests.len() >= 2,
        "{rule_files:?} {tests:?}"
    );
    let out = Command::new(common::argus_bin())
        .args(["check", "rules"])
        .args(&rule_files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every rule file has a test file beside it that loads it.
    for rf in &rule_files {
        let name = rf.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            tests.iter().any(|t| std::fs::read_to_string(t)
                .unwrap()
                .contains(&format!("rule_files: [{name}]"))),
            "no unit-test file loads {name}"
        );
    }
    let out = Command::new(common::argus_bin())
        .args(["test", "rules", "--coverage"])
        .args(&tests)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cov = stdout
        .lines()
        .find(|l| l.starts_with("Alerting rule coverage:"))
        .unwrap_or_default();
    let nums: Vec<usize> = cov
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        nums.len() == 2 && nums[0] == nums[1] && nums[0] >= 19,
        "{stdout}"
    );
}
