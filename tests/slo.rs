//! `argus slo generate` against Sloth's own outputs: for every spec in
//! ../shared/conformance/sloth/examples that argus accepts, the generated
//! rules are Sloth's committed rules — same groups, same series and alert
//! names, same labels and annotations, same expressions once parsed —
//! so they record and fire on exactly the same inputs. Specs that need
//! Sloth plugins are refused with the plugin's position.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::argus_bin;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sloth/examples")
}

/// Rules of every group of every YAML document, keyed by group name, with
/// expressions normalised through the PromQL parser and the generator's
/// version label dropped.
fn rules(text: &str) -> BTreeMap<String, Vec<(String, String, String, String)>> {
    let mut out = BTreeMap::new();
    for doc in text.split("\n---\n") {
        let v: Value = match serde_saphyr::from_str(doc) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let groups = if v["spec"]["groups"].is_array() {
            v["spec"]["groups"].clone()
        } else {
            v["groups"].clone()
        };
        for g in groups.as_array().into_iter().flatten() {
            let mut rs = Vec::new();
            for r in g["rules"].as_array().into_iter().flatten() {
                let name = r["record"]
                    .as_str()
                    .or(r["alert"].as_str())
                    .unwrap()
                    .to_string();
                let expr = r["expr"].as_str().unwrap();
                let ast = promql_parser::parser::parse(expr)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{expr}"));
                let mut labels = r["labels"].clone();
                if let Some(m) = labels.as_object_mut() {
                    m.remove("sloth_version");
                }
                rs.push((
                    name,
                    ast.to_string(),
                    labels.to_string(),
                    r["annotations"].to_string(),
                ));
            }
            out.insert(g["name"].as_str().unwrap().to_string(), rs);
        }
    }
    out
}

fn generate(spec: &Path) -> std::process::Output {
    Command::new(argus_bin())
        .args(["slo", "generate", "--label", "cmd=examplesgen.sh"])
        .arg(spec)
        .output()
        .unwrap()
}

#[test]
fn generated_rules_are_sloths_on_every_supported_example() {
    let dir = examples();
    let mut compared = 0;
    let mut refused = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    for spec in names {
        let file = spec.file_name().unwrap().to_str().unwrap().to_string();
        let out = generate(&spec);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            assert!(
                err.contains("Sloth plugins are not supported") || err.contains("invalid query"),
                "{file}: {err}"
            );
            // The error points at the spec's line.
            assert!(err.contains(&format!("{file}:")), "{file}: {err}");
            refused.push(file);
            continue;
        }
        let ours = rules(&String::from_utf8_lossy(&out.stdout));
        let sloths = rules(&std::fs::read_to_string(dir.join("_gen").join(&file)).unwrap());
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            sloths.keys().collect::<Vec<_>>(),
            "{file}: groups"
        );
        for (g, theirs) in &sloths {
            let mine = &ours[g];
            assert_eq!(mine.len(), theirs.len(), "{file} {g}: rule count");
            for (a, b) in mine.iter().zip(theirs) {
                assert_eq!(a, b, "{file} {g}");
            }
        }
        // The rule file loads as Prometheus rules (argus's checker is
        // promtool's; the compatibility suite runs promtool itself).
        if !String::from_utf8_lossy(&out.stdout).contains("PrometheusRule") {
            let rf = std::env::temp_dir().join(format!("argus-slo-{}-{file}", std::process::id()));
            std::fs::write(&rf, &out.stdout).unwrap();
            let chk = Command::new(argus_bin())
                .args(["check", "rules"])
                .arg(&rf)
                .output()
                .unwrap();
            let _ = std::fs::remove_file(&rf);
            assert!(
                chk.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&chk.stderr)
            );
        }
        compared += 1;
    }
    // 18 spec files: 11 equal to Sloth's output, 7 need Sloth plugins or
    // MetricsQL.
    assert_eq!(compared, 11, "refused: {refused:?}");
    assert_eq!(refused.len(), 7, "{refused:?}");
}

#[test]
fn check_slo_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.yml");
    std::fs::write(
        &f,
        "version: prometheus/v1\nservice: api\nslos:\n  - name: availability\n    objective: 120\n    sli:\n      events:\n        error_query: sum(rate(errors[{{.window}}]))\n        total_query: sum(rate(requests{{.window}}))\n    alerting:\n      name: ApiErrors\n",
    )
    .unwrap();
    let out = Command::new(argus_bin())
        .args(["check", "slo"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE");
    assert!(!out.status.success());
    assert!(
        err.contains("FILE:5:5: slos[0].objective: objective must be in (0, 100], got 120"),
        "{err}"
    );
    assert!(
        err.contains("FILE:9:9: slos[0].sli.events.total_query: invalid query"),
        "{err}"
    );
}
