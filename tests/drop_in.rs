//! Files that Prometheus, promtool and Alertmanager accept load in argus:
//! null and empty values read as Go's YAML decoder reads them, the example
//! configs that ship with Prometheus load (or are refused only for a
//! feature argus does not have, named), and Prometheus 3's
//! `keep_dropped_targets` limits what `/api/v1/targets` lists; self
//! metrics have the documented names.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `argus ARGS… FILE` on `text` written to a file; returns (exit
/// code, stdout and stderr with the file's path replaced by `FILE`).
fn run_on(args: &[&str], name: &str, text: &str) -> (i32, String) {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join(name);
    std::fs::write(&f, text).unwrap();
    run_file(args, &f)
}

fn run_file(args: &[&str], f: &Path) -> (i32, String) {
    let o = Command::new(argus_bin())
        .args(args)
        .arg(f)
        .current_dir(f.parent().unwrap())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        o.status.code().unwrap_or(-1),
        text.replace(&f.display().to_string(), "FILE"),
    )
}

#[test]
fn null_and_empty_values_are_go_zero_values_in_rule_files() {
    // The forms from the issue, with promtool 2.42's rule counts.
    let cases = [
        ("groups:\n", 0),
        ("groups: ~\n", 0),
        ("null\n", 0),
        ("", 0),
        ("groups:\n  - name: g\n    rules:\n", 0),
        (
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        labels:\n        annotations:\n",
            1,
        ),
        (
            "groups:\n  - name: g\n    interval:\n    rules:\n      - record: r\n        expr: up\n        labels: {a: }\n",
            1,
        ),
    ];
    for (text, n) in cases {
        let (code, out) = run_on(&["check", "rules"], "r.yml", text);
        assert_eq!(code, 0, "{text:?}: {out}");
        assert!(
            out.contains(&format!("SUCCESS: {n} rules found")),
            "{text:?}: {out}"
        );
    }
    // Still refused: a key Prometheus does not know, with or without a
    // value, and a list where a mapping belongs, in plain words.
    let (code, out) = run_on(
        &["check", "rules"],
        "r.yml",
        "groups:\n  - name: g\n    rulez:\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FILE:3:5: "), "{out}");
    assert!(
        out.contains("field \"rulez\" is not allowed here (did you mean \"rules\"?)"),
        "{out}"
    );
    let (code, out) = run_on(&["check", "rules"], "r.yml", "groups:\n  name: g\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("expected a list"), "{out}");
    for rust in ["sequence start", "mapping start", "Option<", "struct "] {
        assert!(!out.contains(rust), "{out}");
    }
}

#[test]
fn null_values_in_prometheus_and_alertmanager_configs() {
    for text in [
        "global:\n  scrape_interval:\n",
        "global:\n",
        "null\n",
        "rule_files:\nscrape_configs:\n",
        "global:\n  scrape_interval: 0s\nscrape_configs:\n  - job_name: a\n    scrape_interval:\n    scrape_timeout: 0s\n    static_configs:\n      - targets:\n",
    ] {
        let (code, out) = run_on(&["check", "config"], "p.yml", text);
        assert_eq!(code, 0, "{text:?}: {out}");
        assert!(out.contains("SUCCESS"), "{text:?}: {out}");
    }
    let (code, out) = run_on(
        &["check", "alertmanager"],
        "am.yml",
        "route:\n  receiver: a\n  routes:\nreceivers:\n  - name: a\n    webhook_configs:\ninhibit_rules:\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("SUCCESS: 1 receiver(s)"), "{out}");
    let (code, out) = run_on(
        &["check", "config"],
        "p.yml",
        "global:\n  scrape_intervall:\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FILE:2:3: global.scrape_intervall: field \"scrape_intervall\" is not allowed here (did you mean \"scrape_interval\"?)"),
        "{out}"
    );
}

#[test]
fn an_empty_exp_alerts_asserts_that_nothing_fires() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n",
    )
    .unwrap();
    let test = |value: &str| {
        let f = d.path().join("t.yml");
        std::fs::write(
            &f,
            format!(
                "rule_files: [r.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: up{{job=\"a\"}}\n        values: {value}\n    alert_rule_test:\n      - eval_time: 5m\n        alertname: Down\n        exp_alerts:\n"
            ),
        )
        .unwrap();
        run_file(&["test", "rules"], &f)
    };
    let (code, out) = test("'1x10'");
    assert_eq!(code, 0, "nothing fires and nothing is expected: {out}");
    let (code, out) = test("'0x10'");
    assert_eq!(code, 1, "Down fires but nothing is expected: {out}");
    assert!(out.contains("Down"), "{out}");
}

#[test]
fn prometheus_example_configs_load_or_name_what_argus_lacks() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/prometheus/documentation/examples");
    // What each example needs that argus does not have (issue 12's
    // remote write and OTLP receiver; Docker SD is not planned), or how
    // many scrape configs promtool 2.42 counts in it.
    let cases = [
        ("prometheus.yml", Ok(1)),
        ("prometheus-kubernetes.yml", Ok(7)),
        ("prometheus-docker.yml", Err("docker_sd_configs")),
        ("prometheus-otlp.yml", Err("otlp")),
        ("prometheus-agent.yml", Err("remote_write")),
    ];
    // The Kubernetes example names the in-cluster service account's token,
    // which only a pod has: the files are left out of the check, as
    // `promtool check config --syntax-only` leaves them out.
    for (name, want) in cases {
        let (code, out) = run_file(&["check", "config", "--syntax-only"], &dir.join(name));
        match want {
            Ok(n) => {
                assert_eq!(code, 0, "{name}: {out}");
                assert!(
                    out.contains(&format!("SUCCESS: {n} scrape config(s)")),
                    "{name}: {out}"
                );
            }
            Err(feature) => {
                assert_eq!(code, 1, "{name}: {out}");
                assert!(
                    out.contains(&format!(
                        "\"{feature}\" is a Prometheus setting that argus does not support"
                    )),
                    "{name}: {out}"
                );
                assert_eq!(out.lines().count(), 1, "{name}: one error: {out}");
            }
        }
    }
    // Without --syntax-only the missing token is refused, as promtool
    // refuses it.
    let (code, out) = run_file(&["check", "config"], &dir.join("prometheus-kubernetes.yml"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error checking authorization credentials or bearer token file \"/var/run/secrets/kubernetes.io/serviceaccount/token\""),
        "{out}"
    );
}

#[test]
fn keep_dropped_targets_limits_the_listed_dropped_targets() {
    let argus = Argus::start(
        "global:\n  scrape_interval: 1h\n  keep_dropped_targets: 2\nscrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: ['127.0.0.1:1', '127.0.0.1:2', '127.0.0.1:3', '127.0.0.1:4']\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: '127.0.0.1:1'\n        action: keep\n  - job_name: b\n    keep_dropped_targets: 0\n    static_configs:\n      - targets: ['127.0.0.1:5', '127.0.0.1:6']\n    relabel_configs:\n      - action: drop\n        source_labels: [__address__]\n        regex: '.*'\n",
        &[],
    );
    let data = argus.wait_for(20, "targets synced", || {
        let d = argus.api("/api/v1/targets?state=dropped");
        (d["droppedTargetCounts"]["a"] == 3 && d["droppedTargetCounts"]["b"] == 2).then_some(d)
    });
    let listed = |job: &str| {
        data["droppedTargets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["scrapePool"] == job)
            .count()
    };
    assert_eq!(listed("a"), 2, "{data}");
    assert_eq!(listed("b"), 2, "{data}");
    // Self metrics carry the names docs/api.md gives (a counter's
    // `_total` once).
    let (_, metrics) = http_get(&format!("{}/metrics", argus.url())).unwrap();
    assert!(!metrics.contains("_total_total"), "{metrics}");
    assert!(
        metrics.contains("\nargus_head_samples_appended_total "),
        "{metrics}"
    );
}

/// `argus run` with no config and Prometheus's flag names: it starts on
/// its embedded default, says where its API is and what to configure, and
/// scrapes itself; a misspelt flag gets the nearest one.
#[test]
fn run_takes_prometheus_flag_names_and_guides_a_newcomer() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("argus.log")).unwrap();
    let mut child = Command::new(argus_bin())
        .args(["run", "--web.listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storage.tsdb.path")
        .arg(dir.path().join("data"))
        .args([
            "--storage.tsdb.retention.time",
            "2h",
            "--web.enable-lifecycle",
            "--log.format",
            "logfmt",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let up = wait_for(30, "argus scrapes itself", || {
        let (code, body) = http_get(&format!("{url}/api/v1/query?query=up")).ok()?;
        (code == 200 && body.contains("\"job\":\"argus\"") && body.contains("\"1\""))
            .then_some(body)
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("argus.log")).unwrap();
    assert!(log.contains("no --config given"), "{log}");
    assert!(
        log.contains(&format!("http://127.0.0.1:{port}/api/v1/")),
        "{log}"
    );
    assert!(
        dir.path().join("data").is_dir(),
        "--storage.tsdb.path is --storage.path"
    );
    assert!(up.contains("argus"), "{up}");

    let o = Command::new(argus_bin())
        .args(["run", "--config.fil", "x.yml"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--config.file"), "{err}");
}

/// Prometheus's flags that Helm charts and systemd units pass are taken:
/// each feature named by `--enable-feature` is logged with what argus does
/// about it, console and admin flags are ignored with a note, and a route
/// prefix other than `/` is refused with the reason.
#[test]
fn prometheus_feature_and_web_flags_are_taken_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("argus.log")).unwrap();
    let mut child = Command::new(argus_bin())
        .args(["run", "--web.listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storage.tsdb.path")
        .arg(dir.path().join("data"))
        .args([
            "--enable-feature=native-histograms,auto-gomemlimit",
            "--enable-feature",
            "exemplar-storage,no-such-feature",
            "--web.enable-admin-api",
            "--web.enable-remote-write-receiver",
            "--web.console.templates=/etc/prometheus/consoles",
            "--web.console.libraries=/etc/prometheus/console_libraries",
            "--web.route-prefix=/",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for(30, "argus ready", || {
        let (code, _) = http_get(&format!("{url}/-/ready")).ok()?;
        (code == 200).then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("argus.log")).unwrap();
    for want in [
        "feature=\"native-histograms\"",
        "set scrape_native_histograms: true",
        "feature=\"auto-gomemlimit\"",
        "feature=\"exemplar-storage\"",
        "not supported by argus; ignored",
        "feature=\"no-such-feature\"",
        "unknown feature; ignored",
        "argus has no TSDB admin API",
        "argus has no console pages",
        "argus does not receive pushed samples yet",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }

    let o = Command::new(argus_bin())
        .args(["run", "--web.route-prefix=/a b", "--storage.path"])
        .arg(dir.path().join("data2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--web.route-prefix \"/a b\": a route prefix is a path"),
        "{err}"
    );
}

/// `--web.route-prefix` serves every endpoint under the prefix and
/// redirects `/` there; without it, the path of `--web.external-url` is
/// the prefix, as in Prometheus.
#[test]
fn a_route_prefix_serves_everything_under_it() {
    let a = Argus::start(
        "scrape_configs: []\n",
        &["--web.route-prefix", "/monitoring/argus/"],
    );
    assert!(a.url().ends_with("/monitoring/argus"));
    let base = format!("http://127.0.0.1:{}", a.port);
    for path in [
        "/-/ready",
        "/-/healthy",
        "/metrics",
        "/api/v1/query?query=1",
        "/api/v2/status",
    ] {
        let (code, _) = http_get(&format!("{}{path}", a.url())).unwrap();
        assert_eq!(code, 200, "{path}");
        let (code, _) = http_get(&format!("{base}{path}")).unwrap();
        assert_eq!(code, 404, "{path} outside the prefix");
    }
    assert_eq!(a.query_value("vector(1) + 1"), Some(2.0));
    let raw = raw_get(a.port, "/");
    assert!(raw.starts_with("HTTP/1.1 302"), "{raw}");
    assert!(
        raw.to_ascii_lowercase()
            .contains("location: /monitoring/argus/"),
        "{raw}"
    );

    let b = Argus::start(
        "scrape_configs: []\n",
        &["--web.external-url", "https://example.test/prom/"],
    );
    let base = format!("http://127.0.0.1:{}", b.port);
    assert_eq!(http_get(&format!("{base}/prom/-/ready")).unwrap().0, 200);
    assert_eq!(http_get(&format!("{base}/-/ready")).unwrap().0, 404);

    // Without a config file, the embedded default scrapes argus's own
    // metrics under the prefix.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(argus_bin())
        .args(["run", "--web.route-prefix", "/p", "--web.listen-address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storage.path")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/p/api/v1/query?query=up");
    let up = std::panic::catch_unwind(|| {
        wait_for(40, "the embedded self-scrape under the prefix", || {
            let (code, body) = http_get(&url).ok()?;
            (code == 200 && body.contains(r#""value":["#) && body.contains(r#","1"]"#))
                .then_some(body)
        })
    });
    let _ = child.kill();
    let _ = child.wait();
    let body = up.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(body.contains(r#""job":"argus""#), "{body}");
}

/// The head of the answer to a bare GET (redirects are not followed).
fn raw_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
