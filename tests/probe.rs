//! `probe_configs`: blackbox-style HTTP checks run by a real argus against
//! HTTP servers on 127.0.0.1, their series, and the exact latency windows
//! they feed.

mod common;

use common::*;

#[test]
fn probes_record_success_status_duration_and_exact_latency_windows() {
    let ok = Target::text("status: ok\n");
    let wrong = Target::text("status: degraded\n");
    let closed = free_port();
    let cfg = format!(
        r#"global:
  scrape_interval: 1h
probe_configs:
  - name: health
    url: http://{ok}/health
    body_regex: 'status: ok'
    interval: 1s
    timeout: 1s
    labels: {{team: web}}
  - name: degraded
    url: http://{wrong}/health
    body_regex: 'status: ok'
    interval: 1s
    timeout: 1s
  - name: down
    url: http://127.0.0.1:{closed}/
    interval: 1s
    timeout: 1s
  - name: wants-tls
    url: http://{ok}/
    fail_if_not_ssl: true
    interval: 1s
    timeout: 1s
  - name: post
    url: http://{ok}/submit
    method: POST
    body: '{{"a": 1}}'
    headers: {{Content-Type: application/json}}
    valid_status_codes: [201]
    interval: 1s
    timeout: 1s
"#,
        ok = ok.addr(),
        wrong = wrong.addr()
    );
    let a = Argus::start(&cfg, &[]);
    let q = |e: &str| a.query(e);
    let val = |v: &serde_json::Value| -> f64 { v["value"][1].as_str().unwrap().parse().unwrap() };
    wait_for(20, "three rounds of probes", || {
        (q("count_over_time(probe_success{probe=\"health\"}[1m])")
            .first()
            .map(val)
            .unwrap_or(0.0)
            >= 3.0)
            .then_some(())
    });
    let success: std::collections::BTreeMap<String, f64> = q("probe_success")
        .iter()
        .map(|s| (s["metric"]["probe"].as_str().unwrap().to_string(), val(s)))
        .collect();
    assert_eq!(success["health"], 1.0);
    assert_eq!(success["degraded"], 0.0, "body regex");
    assert_eq!(success["down"], 0.0, "connection refused");
    assert_eq!(success["wants-tls"], 0.0, "fail_if_not_ssl");
    assert_eq!(success["post"], 0.0, "200 is not in valid_status_codes");
    let health = &q("probe_success{probe=\"health\"}")[0]["metric"];
    assert_eq!(health["job"], "probe");
    assert_eq!(health["team"], "web");
    assert_eq!(health["instance"], format!("http://{}/health", ok.addr()));
    assert_eq!(val(&q("probe_http_status_code{probe=\"down\"}")[0]), 0.0);
    assert_eq!(
        val(&q("probe_http_status_code{probe=\"health\"}")[0]),
        200.0
    );
    let d = val(&q("probe_duration_seconds{probe=\"health\"}")[0]);
    assert!(d > 0.0 && d < 1.0, "{d}");
    // The POST went out with its method, header and body.
    let reqs = ok.requests.lock().unwrap().clone();
    assert!(
        reqs.iter().any(|r| r.starts_with("POST /submit ")
            && r.to_ascii_lowercase()
                .contains("content-type: application/json")),
        "{reqs:?}"
    );
    // Exact windows: every health probe succeeded; its p95 is a latency
    // the probe measured (between the fastest and slowest seen).
    assert_eq!(
        val(&q("probe_success_ratio{probe=\"health\",window=\"5m\"}")[0]),
        1.0
    );
    assert_eq!(
        val(&q("probe_success_ratio{probe=\"down\",window=\"1h\"}")[0]),
        0.0
    );
    let p95 = val(&q("probe_latency_seconds{probe=\"health\",window=\"5m\",quantile=\"0.95\"}")[0]);
    let max = val(&q("max_over_time(probe_duration_seconds{probe=\"health\"}[5m])")[0]);
    let min = val(&q("min_over_time(probe_duration_seconds{probe=\"health\"}[5m])")[0]);
    assert!(
        p95 >= min * 0.99 && p95 <= max * 1.01,
        "p95 {p95} outside [{min}, {max}]"
    );
    assert_eq!(
        q("probe_latency_seconds{probe=\"health\",window=\"30d\"}").len(),
        5
    );
}

#[test]
fn probe_configs_are_checked_with_positions() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("p.yml");
    std::fs::write(
        &f,
        "probe_configs:\n  - name: a\n    url: ftp://x\n    body_regex: '('\n    timeout: 20s\n    interval: 10s\n",
    )
    .unwrap();
    let out = std::process::Command::new(argus_bin())
        .args(["check", "config"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE");
    assert!(!out.status.success());
    assert!(
        err.contains("FILE:3:5: probe_configs[0].url: invalid http(s) URL \"ftp://x\""),
        "{err}"
    );
    assert!(
        err.contains("FILE:4:5: probe_configs[0].body_regex:"),
        "{err}"
    );
    assert!(
        err.contains("probe_configs[0].timeout: timeout and interval must be above zero"),
        "{err}"
    );
}

/// The probes' windows survive a restart, clean or kill -9 (they are
/// written every second when they change): failures before it still count.
#[test]
fn probe_windows_continue_after_a_restart() {
    for how in ["stop", "kill -9"] {
        let t = Target::text("ok\n");
        t.set(Reply::CloseMidBody {
            prefix: b"ok".to_vec(),
        });
        let tmp = tempfile::tempdir().unwrap();
        let cfg = format!(
            "global:\n  scrape_interval: 1h\nprobe_configs:\n  - name: flaky\n    url: http://{}/\n    interval: 1s\n    timeout: 1s\n",
            t.addr()
        );
        let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
        let q = |a: &Argus, e: &str| a.query_value(e);
        wait_for(20, "three failed probes", || {
            (q(&a, "count_over_time(probe_success{probe=\"flaky\"}[1m])")? >= 3.0).then_some(())
        });
        if how == "stop" {
            a.stop();
        } else {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            a.kill9();
        }
        assert!(tmp.path().join("data/probe_windows.bin").exists(), "{how}");
        t.set_text("ok\n");
        let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
        let ratio = wait_for(20, "a successful probe after the restart", || {
            (q(&a, "probe_success{probe=\"flaky\"}")? == 1.0)
                .then(|| q(&a, "probe_success_ratio{probe=\"flaky\",window=\"1h\"}"))
                .flatten()
        });
        assert!(
            ratio > 0.0 && ratio < 1.0,
            "{how}: the failures before the restart were forgotten: {ratio}"
        );
    }
}

/// An SLO on a probe (`sli.probe`): failing checks burn the budget and
/// page through argus's routing.
#[test]
fn a_probe_slo_pages_when_the_probe_fails() {
    let t = Target::text("ok\n");
    t.set(Reply::CloseMidBody {
        prefix: b"ok".to_vec(),
    });
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("site.slo.yml"),
        "version: prometheus/v1\nservice: site\nslos:\n  - name: health\n    objective: 99\n    sli:\n      probe: {name: site-health}\n    alerting:\n      name: SiteHealthBudgetBurn\n      page_alert: {labels: {severity: critical}}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\ninhibit_rules:\n  - source_matchers: ['sloth_severity=\"page\"']\n    target_matchers: ['sloth_severity=\"ticket\"']\n    equal: [sloth_id]\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  evaluation_interval: 1s\nslo_files: [site.slo.yml]\nalerting:\n  routing_file: alertmanager.yml\nprobe_configs:\n  - name: site-health\n    url: http://{}/\n    interval: 1s\n    timeout: 1s\n",
        t.addr()
    );
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    let ratio = a.wait_for(30, "the probe SLI", || {
        a.query_value("slo:sli_error:ratio_rate5m{sloth_slo=\"health\"}")
    });
    assert_eq!(ratio, 1.0);
    let page = wait_for(30, "the page", || {
        hook.json_bodies().into_iter().find_map(|b| {
            b["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["labels"]["sloth_severity"] == "page")
                .cloned()
        })
    });
    assert_eq!(page["labels"]["alertname"], "SiteHealthBudgetBurn");
    assert_eq!(page["labels"]["severity"], "critical");
    // The slow-burn ticket fires too, but the page inhibits it.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let tickets = hook
        .json_bodies()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["sloth_severity"] == "ticket")
        .count();
    assert_eq!(tickets, 0, "{:?}", hook.json_bodies());
    let listed = a.get_json("/api/v2/alerts?filter=sloth_severity%3Dticket");
    assert_eq!(listed[0]["status"]["state"], "suppressed", "{listed}");
}

/// A probe latency SLI (`sli.probe` with a threshold): checks slower
/// than 200 ms count as errors, from the probe's histogram of check
/// durations; a threshold that is not one of the probe's buckets, or a
/// probe that does not exist, is refused with the spec's field.
#[test]
fn a_probe_latency_slo_counts_slow_checks() {
    let slow = Target::start(Reply::Slow {
        delay: std::time::Duration::from_millis(300),
        body: b"ok\n".to_vec(),
    });
    let fast = Target::text("ok\n");
    let tmp = tempfile::tempdir().unwrap();
    let spec = |threshold: &str, probe: &str| {
        format!(
            "version: prometheus/v1\nservice: site\nslos:\n  - name: slow\n    sli:\n      probe: {{name: {probe}, threshold: {threshold}, percentile: 95}}\n    alerting: {{name: SlowSite}}\n  - name: fast\n    sli:\n      probe: {{name: fast, threshold: {threshold}, percentile: 95}}\n    alerting: {{name: FastSite}}\n"
        )
    };
    let cfg = format!(
        "global:\n  evaluation_interval: 1s\nslo_files: [site.slo.yml]\nprobe_configs:\n  - name: slow\n    url: http://{}/\n    interval: 1s\n    timeout: 1s\n  - name: fast\n    url: http://{}/\n    interval: 1s\n    timeout: 1s\n",
        slow.addr(),
        fast.addr()
    );
    std::fs::write(tmp.path().join("argus.yml"), &cfg).unwrap();
    // Refused: a threshold between buckets, and an unknown probe.
    for (threshold, probe, want) in [
        ("220ms", "slow", "slos[0].sli.probe.threshold"),
        ("200ms", "nope", "slos[0].sli.probe.name"),
    ] {
        std::fs::write(tmp.path().join("site.slo.yml"), spec(threshold, probe)).unwrap();
        let cfg_path = tmp.path().join("argus.yml");
        let (code, err) = argus_cli([
            std::ffi::OsStr::new("check"),
            "config".as_ref(),
            cfg_path.as_os_str(),
        ]);
        assert_ne!(code, Some(0), "{err}");
        assert!(err.contains("site.slo.yml") && err.contains(want), "{err}");
    }
    std::fs::write(tmp.path().join("site.slo.yml"), spec("200ms", "slow")).unwrap();
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    let ratio = |slo: &str| {
        a.wait_for(30, "the probe latency SLI", || {
            a.query_value(&format!(
                "slo:sli_error:ratio_rate5m{{sloth_slo=\"{slo}\"}}"
            ))
        })
    };
    assert_eq!(ratio("slow"), 1.0, "every check took 300 ms");
    assert_eq!(ratio("fast"), 0.0);
    let objective = a.wait_for(30, "the objective", || {
        a.query_value("slo:objective:ratio{sloth_slo=\"slow\"}")
    });
    assert_eq!(objective, 0.95);
    // The quantiles are the probe's exact ones.
    let p50 = a.wait_for(30, "the probe's p50", || {
        a.query_value("slo:sli_latency_seconds:rate5m{sloth_slo=\"slow\", quantile=\"0.5\"}")
    });
    assert!((0.3..0.5).contains(&p50), "{p50}");
}
