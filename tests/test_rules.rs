//! `argus test rules` gives promtool's exit code on every unit-test file
//! of Prometheus's promtool testdata (expected outcomes from the
//! conformance README), names the same failing cases, and adds partial
//! label matching, JUnit XML and the coverage list.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const TESTDATA: &str = "../shared/conformance/prometheus/cmd/promtool/testdata";

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(TESTDATA)
}

/// Runs `argus test rules ARGS…`; returns (success, stdout, stderr).
fn test_rules(args: &[&str], files: &[&Path]) -> (bool, String, String) {
    let out = Command::new(common::argus_bin())
        .args(["test", "rules"])
        .args(args)
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn exit_codes_match_promtool_on_every_unit_test_file() {
    let dir = testdata();
    let must_fail = [
        "bad-input-series.yml",
        "bad-promql.yml",
        "bad-rules-error-test.yml",
        "bad-rules-syntax-test.yml",
        "failing.yml",
        "rules_run_no_fuzzy.yml",
        "rules_run.yml",
        "rules_run_fuzzy.yml",
        "rules_run_extrafields.yml",
    ];
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        if !name.ends_with(".yml") || !text.lines().any(|l| l.starts_with("tests:")) {
            continue;
        }
        n += 1;
        let (ok, out, err) = test_rules(&[], &[&p]);
        assert_eq!(
            ok,
            !must_fail.contains(&name.as_str()),
            "{name}:\n{out}\n{err}"
        );
        assert!(
            out.starts_with(&format!("Unit Testing:  {}", p.display())),
            "{out}"
        );
    }
    assert_eq!(n, 15, "unit-test files in {}", dir.display());
    // --run selects groups; --ignore-unknown-fields accepts extra keys.
    let f = |n: &str| dir.join(n);
    assert!(test_rules(&["--run", "correct"], &[&f("rules_run.yml")]).0);
    assert!(!test_rules(&["--run", "wrong"], &[&f("rules_run.yml")]).0);
    assert!(test_rules(&["--run", "correct"], &[&f("rules_run_fuzzy.yml")]).0);
    assert!(!test_rules(&["--run", "wrong"], &[&f("rules_run_fuzzy.yml")]).0);
    assert!(
        test_rules(
            &["--ignore-unknown-fields"],
            &[&f("rules_run_extrafields.yml")]
        )
        .0
    );
}

#[test]
fn failures_read_as_promtool_prints_them() {
    let (ok, _, err) = test_rules(&[], &[&testdata().join("failing.yml")]);
    assert!(!ok);
    // promtool 2.42's output on the same file, byte for byte.
    let want = concat!(
        "  FAILED:\n",
        "    name: Failing test,\n",
        "    alertname: Test, time: 0s, \n",
        "        exp:[\n",
        "            0:\n",
        "              Labels:{alertname=\"Test\"}\n",
        "              Annotations:{}\n",
        "            ], \n",
        "        got:[]\n",
        "    expr: \"test\", time: 0s,\n",
        "        exp: {__name__=\"test\"} 1E+00\n",
        "        got: {__name__=\"test\"} 0E+00\n",
        "    name: Failing alert test,\n",
        "    alertname: InstanceDown, time: 5m, \n",
        "        exp:[], \n",
        "        got:[\n",
        "            0:\n",
        "              Labels:{alertname=\"InstanceDown\", job=\"test\", severity=\"page\"}\n",
        "              Annotations:{description=\" of job test has been down for more than 5 minutes.\", summary=\"Instance  down\"}\n",
        "            ]\n",
        "    name: Failing alert test,\n",
        "    alertname: AlwaysFiring, time: 5m, \n",
        "        exp:[], \n",
        "        got:[\n",
        "            0:\n",
        "              Labels:{alertname=\"AlwaysFiring\"}\n",
        "              Annotations:{}\n",
        "            ]\n",
    );
    assert_eq!(err, want);
}

#[test]
fn partial_matching_junit_and_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 2m\n        labels: {severity: page, team: core}\n        annotations: {summary: '{{ $labels.instance }} down', runbook: 'https://r/down'}\n      - alert: Untested\n        expr: vector(1)\n",
    )
    .unwrap();
    let test = |partial: bool, exp_labels: &str| {
        format!(
            "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - name: down\n    interval: 1m\n    input_series:\n      - series: 'up{{instance=\"a\", job=\"api\"}}'\n        values: 1 0 0 0 0\n    alert_rule_test:\n      - eval_time: 1m\n        alertname: Down\n        exp_alerts: []\n      - eval_time: 3m\n        alertname: Down\n        partial_match: {partial}\n        exp_alerts:\n          - exp_labels: {exp_labels}\n            exp_annotations: {{summary: a down}}\n"
        )
    };
    let file = tmp.path().join("t.yml");
    // Without partial matching every label and annotation must be given.
    std::fs::write(&file, test(false, "{severity: page}")).unwrap();
    let (ok, _, err) = test_rules(&[], &[&file]);
    assert!(!ok);
    assert!(err.contains("alertname: Down, time: 3m"), "{err}");
    // With it, a subset is enough…
    std::fs::write(&file, test(true, "{severity: page}")).unwrap();
    let junit = tmp.path().join("junit.xml");
    let (ok, out, err) = test_rules(
        &["--junit", junit.to_str().unwrap(), "--coverage"],
        &[&file],
    );
    assert!(ok, "{out}\n{err}");
    // …and the coverage list names the rule no test checks.
    assert!(
        out.contains("Alerting rule coverage: 1 of 2 alerting rules have an alert_rule_test"),
        "{out}"
    );
    assert!(out.contains("not tested: Untested (group \"g\""), "{out}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.starts_with("<testsuites><testsuite name=\"")
            && xml.contains("tests=\"1\" failures=\"0\""),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"down\""), "{xml}");
    // …but a wrong value still fails, and JUnit records the failure.
    std::fs::write(&file, test(true, "{severity: ticket}")).unwrap();
    let (ok, _, _) = test_rules(&["--junit", junit.to_str().unwrap()], &[&file]);
    assert!(!ok);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("failures=\"1\"") && xml.contains("<failure>"),
        "{xml}"
    );
    assert!(xml.contains("alertname: Down, time: 3m"), "{xml}");
}
