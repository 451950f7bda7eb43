//! `argus config routes show|test` on Alertmanager's own routing fixtures:
//! the tree and the receivers as amtool prints them (the differential
//! test against the real amtool is in tests/compat.rs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/alertmanager")
        .join(p)
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(common::argus_bin())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn routes_resolve_as_alertmanager_routes_them() {
    let routing = fixture("cli/testdata/conf.routing.yml");
    let cfg = routing.to_str().unwrap();
    let test = |labels: &[&str]| {
        let mut a = vec!["config", "routes", "test", "--config", cfg];
        a.extend_from_slice(labels);
        run(&a)
    };
    assert_eq!(test(&["test=1"]).1, "test1\n");
    assert_eq!(test(&["test=2"]).1, "test1,test2\n");
    assert_eq!(test(&["test=3", "other=x"]).1, "default\n");
    // --verify.receivers fails on a mismatch, as amtool does.
    let (ok, out, _) = test(&["--verify.receivers=test1,test2", "test=2"]);
    assert!(ok, "{out}");
    let (ok, out, _) = test(&["--verify.receivers=test2", "test=2"]);
    assert!(!ok);
    assert!(out.ends_with("WARNING: Expected receivers did not match resolved receivers.\n"));
    // Only name=value labels.
    let (ok, _, err) = test(&["test=~2"]);
    assert!(
        !ok && err.contains("Labels must be specified as key=value pairs"),
        "{err}"
    );
    // The matching tree and the whole tree, byte for byte as amtool 0.25
    // prints them (treeprint's layout, anchored match_re values).
    let (ok, out, _) = test(&["--tree", "test=2"]);
    assert!(ok);
    assert_eq!(
        out,
        "Matching routes:\n.\n└── default-route\n    ├── {test=~\"^(?:^[12]$)$\"}  receiver: test1\n    └── {test=\"2\"}  receiver: test2\n\n\ntest1,test2\n"
    );
    let (ok, out, _) = run(&["config", "routes", "show", "--config", cfg]);
    assert!(ok);
    assert_eq!(
        out,
        "Routing tree:\n.\n└── default-route  receiver: default\n    ├── {test=~\"^(?:^[12]$)$\"}  continue: true  receiver: test1\n    └── {test=\"2\"}  receiver: test2\n\n"
    );
    // A tree with nesting, continue and inherited receivers.
    let simple = fixture("doc/examples/simple.yml");
    let s = simple.to_str().unwrap();
    let t = |labels: &[&str]| {
        let mut a = vec!["config", "routes", "test", "--config", s];
        a.extend_from_slice(labels);
        run(&a).1
    };
    assert_eq!(t(&["service=files", "severity=critical"]), "team-Y-pager\n");
    assert_eq!(t(&["service=files"]), "team-Y-mails\n");
    assert_eq!(t(&["service=nothing"]), "team-X-mails\n");
    // A bad file is refused with its position.
    let (ok, _, err) = run(&[
        "config",
        "routes",
        "test",
        "--config",
        fixture("cli/testdata/conf.bad.yml").to_str().unwrap(),
        "a=b",
    ]);
    assert!(!ok && err.contains("conf.bad.yml:"), "{err}");
}
