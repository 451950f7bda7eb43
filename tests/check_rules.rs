//! `argus check rules` gives promtool's verdicts on Prometheus's rule file
//! fixtures, with errors that name file, position, group and rule.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const DIRS: [&str; 2] = [
    "../shared/conformance/prometheus/rules/fixtures",
    "../shared/conformance/prometheus/model/rulefmt/testdata",
];

fn check(file: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(common::argus_bin())
        .args(["check", "rules"])
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verdicts_match_promtool_on_the_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = Vec::new();
    for d in DIRS {
        let dir = root.join(d);
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 30, "fixtures missing: {}", files.len());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // `legacy_validation_*` files are judged under Prometheus 2's
        // name rules, as Prometheus's own tests judge them.
        let extra: &[&str] = if name.starts_with("legacy_validation") {
            &["--validation-scheme", "legacy"]
        } else {
            &[]
        };
        let want_ok = !(name.contains(".bad.") || name == "invalid_rules.yaml");
        let (ok, err) = check(f, extra);
        assert_eq!(ok, want_ok, "{name}: {err}");
        if !ok {
            // Every error names the file and a line:column.
            let first = err.lines().next().unwrap_or("");
            let rest = first
                .strip_prefix(&format!("{}:", f.display()))
                .unwrap_or("");
            let mut parts = rest.splitn(3, ':');
            let (l, c) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            assert!(
                l.parse::<usize>().is_ok() && c.parse::<usize>().is_ok(),
                "{name}: no position in {first:?}"
            );
        }
    }
}

#[test]
fn errors_name_group_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.yml");
    std::fs::write(
        &f,
        "groups:\n  - name: api\n    rules:\n      - alert: Ok\n        expr: up == 0\n      - alert: HighErrors\n        expr: sum(rate(x[5m])\n        annotations:\n          summary: '{{ $value | nosuchfunc }}'\n",
    )
    .unwrap();
    let (ok, err) = check(&f, &[]);
    assert!(!ok);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:7:9: group \"api\", rule 2, \"HighErrors\": could not parse expression:",
            f.display()
        )),
        "{err}"
    );
    assert!(
        lines[1].ends_with("annotation \"summary\": template: __annotation_summary:1: function \"nosuchfunc\" not defined"),
        "{err}"
    );
}

const DUPLICATES: &str = "groups:\n  - name: g\n    rules:\n      - record: job:up:sum\n        expr: sum by (job) (up)\n        labels:\n          team: sre\n      - record: job:up:sum\n        expr: sum by (job) (up)\n        labels:\n          team: sre\n      - alert: A\n        expr: up == 0\n      - alert: A\n        expr: up == 1\n      - alert: A\n        expr: up == 2\n        labels: {x: y}\n";

/// Runs `argus check rules ARGS`, the file on standard input when `file`
/// is None; (exit code, stdout, stderr).
fn check_with(args: &[&str], file: Option<&Path>, stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(common::argus_bin())
        .args(["check", "rules"])
        .args(args)
        .args(file)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// promtool's lint flags, exit codes and message (recorded from promtool
/// 2.42; the compatibility suite compares with it directly), and standard
/// input when no file is named, as in Prometheus 3.
#[test]
fn lint_flags_and_standard_input_as_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dup.yml");
    std::fs::write(&f, DUPLICATES).unwrap();
    let finding = "  FAILED:\nlint error 2 duplicate rule(s) found.\nMetric: A\nLabel(s):\nMetric: job:up:sum\nLabel(s):\n\tteam: sre\nMight cause inconsistency while recording expressions\n";
    let (code, out, err) = check_with(&[], Some(&f), "");
    assert_eq!((code, err.as_str()), (0, finding), "{out}");
    let (code, _, err) = check_with(&["--lint-fatal"], Some(&f), "");
    assert_eq!((code, err.as_str()), (3, finding));
    let (code, _, err) = check_with(&["--lint=all", "--lint-fatal"], Some(&f), "");
    assert_eq!((code, err.as_str()), (3, finding));
    let (code, out, err) = check_with(&["--lint=none", "--lint-fatal"], Some(&f), "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SUCCESS: 5 rules found"), "{out}");
    // An invalid file is exit 1 even with lint findings beside it.
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: g\n    rules:\n      - record: r\n",
    )
    .unwrap();
    let o = Command::new(common::argus_bin())
        .args(["check", "rules", "--lint-fatal"])
        .arg(&f)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));

    // The same lint on the rule files of `argus check config`.
    let cfg = dir.path().join("p.yml");
    std::fs::write(&cfg, "rule_files: [dup.yml]\n").unwrap();
    let config = |args: &[&str]| {
        let o = Command::new(common::argus_bin())
            .args(["check", "config"])
            .args(args)
            .arg(&cfg)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(config(&[]), (Some(0), finding.to_string()));
    assert_eq!(config(&["--lint-fatal"]), (Some(3), finding.to_string()));
    assert_eq!(
        config(&["--lint=none", "--lint-fatal"]),
        (Some(0), String::new())
    );

    let (code, out, err) = check_with(
        &[],
        None,
        "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "Checking standard input\n  SUCCESS: 1 rules found\n\n");
    let (code, _, err) = check_with(&[], None, "groups:\n  - name: g\n    rulez: []\n");
    assert_eq!(code, 1);
    assert!(err.starts_with("standard input:3:5: "), "{err}");
    let (code, out, err) = check_with(
        &["--ignore-unknown-fields"],
        None,
        "groups:\n  - name: g\n    rulez: []\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SUCCESS: 0 rules found"), "{out}");
    let (code, out, err) = check_with(
        &["--ignore-unknown-fields"],
        None,
        "groups:\n  - name: g\n    extra: 1\n    rules:\n  - name: h\n    rules:\n      - record: r\n        expr: up\n        labels:\n        bogus:\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SUCCESS: 1 rules found"), "{out}");
}
