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
