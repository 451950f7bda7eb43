//! Rule evaluation in a real argus: recording rules, the alert lifecycle,
//! the rules and alerts API, reloads that keep alert state, and rule file
//! errors at start.

mod common;

use common::*;
use serde_json::Value;

fn setup(dir: &std::path::Path, target: &Target) -> String {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: api\n    interval: 1s\n    rules:\n      - record: job:queue_depth:max\n        expr: max by (job) (queue_depth)\n      - alert: QueueBacklog\n        expr: job:queue_depth:max > 10\n        for: 2s\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.job }} backlog {{ $value }}'}\n",
    )
    .unwrap();
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        target.addr()
    )
}

fn alerts(a: &Argus) -> Vec<Value> {
    a.api("/api/v1/alerts")["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn alerts_go_pending_then_firing_and_survive_a_reload() {
    let t = Target::text("queue_depth{queue=\"a\"} 3\n");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = setup(tmp.path(), &t);
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    // The recording rule writes its series.
    wait_for(15, "recording rule output", || {
        let d = a.api(&format!(
            "/api/v1/query?query={}",
            urlencode("job:queue_depth:max")
        ));
        (d["result"][0]["value"][1] == "3").then_some(())
    });
    assert!(alerts(&a).is_empty());
    t.set_text("queue_depth{queue=\"a\"} 42\n");
    let pending = wait_for(15, "pending alert", || {
        alerts(&a).into_iter().find(|x| x["state"] == "pending")
    });
    assert_eq!(pending["labels"]["alertname"], "QueueBacklog");
    assert_eq!(pending["labels"]["severity"], "page");
    assert_eq!(pending["labels"]["job"], "worker");
    assert_eq!(pending["annotations"]["summary"], "worker backlog 42");
    assert_eq!(pending["value"], "4.2e+01");
    let firing = wait_for(15, "firing alert", || {
        alerts(&a).into_iter().find(|x| x["state"] == "firing")
    });
    // ALERTS is queryable.
    let d = a.api(&format!(
        "/api/v1/query?query={}",
        urlencode("ALERTS{alertstate=\"firing\"}")
    ));
    assert_eq!(d["result"][0]["metric"]["alertname"], "QueueBacklog");
    // The rules API in Prometheus's shape.
    let r = a.api("/api/v1/rules");
    let g = &r["groups"][0];
    assert_eq!(g["name"], "api");
    assert_eq!(g["interval"], 1.0);
    assert_eq!(g["rules"][0]["type"], "recording");
    assert_eq!(g["rules"][1]["type"], "alerting");
    assert_eq!(g["rules"][1]["state"], "firing");
    assert_eq!(g["rules"][1]["duration"], 2.0);
    assert_eq!(g["rules"][1]["health"], "ok");
    let only_alerts = a.api("/api/v1/rules?type=alert&exclude_alerts=true");
    assert_eq!(
        only_alerts["groups"][0]["rules"].as_array().unwrap().len(),
        1
    );
    assert!(only_alerts["groups"][0]["rules"][0].get("alerts").is_none());
    // match[] selects rules by their configured labels.
    let paged = a.api(&format!(
        "/api/v1/rules?match[]={}",
        urlencode("{severity=\"page\"}")
    ));
    let rules = paged["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["name"], "QueueBacklog");
    let none = a.api(&format!(
        "/api/v1/rules?match[]={}",
        urlencode("{severity=\"ticket\"}")
    ));
    assert_eq!(none["groups"].as_array().unwrap().len(), 0);
    let (code, _) = http_get(&format!(
        "{}/api/v1/rules?match[]={}",
        a.url(),
        urlencode("{severity=~\".*\"}")
    ))
    .unwrap();
    assert_eq!(code, 400);
    // A reload with the same rules keeps the alert firing since the same time.
    a.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let after = alerts(&a);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["state"], "firing");
    assert_eq!(after[0]["activeAt"], firing["activeAt"]);
    // Resolving: the alert leaves the API once the condition clears.
    t.set_text("queue_depth{queue=\"a\"} 1\n");
    wait_for(15, "alert resolved", || alerts(&a).is_empty().then_some(()));
}

#[test]
fn a_bad_rule_file_stops_startup_with_its_position() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n",
    )
    .unwrap();
    let cfg = tmp.path().join("argus.yml");
    std::fs::write(&cfg, "rule_files: ['rules.yml']\nscrape_configs: []\n").unwrap();
    let run = || {
        std::process::Command::new(argus_bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .args([
                "--web.listen-address",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .arg("--storage.path")
            .arg(tmp.path().join("data"))
            .output()
            .unwrap()
    };
    // Another test may take the free port first: take another.
    let mut out = run();
    for _ in 0..3 {
        if !String::from_utf8_lossy(&out.stderr).contains("cannot listen") {
            break;
        }
        out = run();
    }
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.yml:5:9: group \"g\", rule 1, \"A\": could not parse expression"),
        "{err}"
    );
    // `argus check config` checks the rule files the config names.
    let out = std::process::Command::new(argus_bin())
        .args(["check", "config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.yml:5:9: group \"g\", rule 1"), "{err}");
}

/// Milliseconds of an alert's `activeAt`.
fn active_at(a: &Value) -> i64 {
    argus::model::parse_rfc3339(a["activeAt"].as_str().unwrap_or("")).unwrap()
}

fn restart_config(dir: &std::path::Path, target: &Target, rule: &str) -> String {
    std::fs::write(
        dir.join("rules.yml"),
        format!("groups:\n  - name: restart\n    interval: 1s\n    rules:\n{rule}"),
    )
    .unwrap();
    format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        target.addr()
    )
}

/// Prometheus #15175: an alert with a `for` shorter than its restore grace
/// period comes back pending after a restart and pages again. In argus it
/// comes back firing, since the same time, before the first evaluation.
#[test]
fn a_firing_alert_comes_back_firing_after_a_restart() {
    let t = Target::text("queue_depth 42\n");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = restart_config(
        tmp.path(),
        &t,
        "      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n",
    );
    let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
    let firing = wait_for(15, "firing alert", || {
        alerts(&a).into_iter().find(|x| x["state"] == "firing")
    });
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));
    assert!(tmp.path().join("data/alerts.json").exists());
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    // Right after start, and over the next evaluations: firing, never
    // pending, since the original time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        let now = alerts(&a);
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0]["state"], "firing", "{now:?}");
        assert_eq!(now[0]["activeAt"], firing["activeAt"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Prometheus #16883: restoring alerts whose labels are templates. argus
/// saves the expanded labels, so the restored alert is the one the next
/// evaluation produces — also after a crash (SIGKILL), from the state
/// written within a second of the change.
#[test]
fn alerts_with_templated_labels_survive_a_crash() {
    let t = Target::text("queue_depth{queue=\"billing\"} 42\n");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = restart_config(
        tmp.path(),
        &t,
        "      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n        labels:\n          severity: '{{ if gt $value 20.0 }}critical{{ else }}warning{{ end }}'\n          queue_upper: '{{ $labels.queue | toUpper }}'\n",
    );
    let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
    let firing = wait_for(15, "firing alert", || {
        alerts(&a).into_iter().find(|x| x["state"] == "firing")
    });
    assert_eq!(firing["labels"]["severity"], "critical");
    assert_eq!(firing["labels"]["queue_upper"], "BILLING");
    // The state is on disk within the batching second.
    wait_for(5, "alert state written", || {
        let s = std::fs::read_to_string(tmp.path().join("data/alerts.json")).ok()?;
        s.contains("\"state\":\"firing\"").then_some(())
    });
    a.kill9();
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    for _ in 0..25 {
        let now = alerts(&a);
        assert_eq!(now.len(), 1, "{now:?}");
        assert_eq!(now[0]["state"], "firing");
        assert_eq!(now[0]["labels"], firing["labels"]);
        assert_eq!(now[0]["activeAt"], firing["activeAt"]);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// A pending alert keeps its progress towards `for`, but the time argus was
/// down does not count: `activeAt` moves forward by the downtime.
#[test]
fn a_pending_alert_keeps_its_progress_minus_the_downtime() {
    let t = Target::text("queue_depth 42\n");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = restart_config(
        tmp.path(),
        &t,
        "      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1h\n",
    );
    let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
    let pending = wait_for(15, "pending alert", || {
        alerts(&a).into_iter().find(|x| x["state"] == "pending")
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.stop();
    let down_from = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    let down = down_from.elapsed().as_millis() as i64;
    let now = alerts(&a);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(now[0]["state"], "pending");
    let shift = active_at(&now[0]) - active_at(&pending);
    // At least the 3 s it was stopped; at most the whole downtime plus the
    // evaluation interval between the last save and the stop.
    assert!(shift >= 3000, "shifted by {shift} ms");
    assert!(
        shift <= down + 1500,
        "shifted by {shift} ms, down {down} ms"
    );
}
