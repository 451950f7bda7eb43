//! Sending alerts: forwarding to Alertmanagers with Prometheus's body and
//! resend rules, one queue per Alertmanager, and restarts that neither
//! repeat nor lose a notification. The Alertmanagers here are recording
//! HTTP servers; the real Alertmanager 0.25 is in tests/compat.rs.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn ms(v: &Value) -> i64 {
    argus::model::parse_rfc3339(v.as_str().unwrap_or("")).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every alert posted so far, flattened.
fn posted(r: &Recorder) -> Vec<Value> {
    r.json_bodies()
        .into_iter()
        .flat_map(|b| b.as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn alerts_reach_a_live_alertmanager_while_another_hangs() {
    let t = Target::text("queue_depth{queue=\"a\"} 42\n");
    let live = Recorder::start();
    let (dead, _h) = black_hole();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.queue }} backlog'}\n",
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels: {{region: eu}}\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{dead}']}}]\n      timeout: 30s\n    - static_configs: [{{targets: ['{}']}}]\n      path_prefix: /am\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        live.addr(),
        t.addr()
    );
    let a = Argus::start_in(
        tmp.path(),
        &cfg,
        &[
            "--rules.alert.resend-delay",
            "2s",
            "--web.external-url",
            "http://argus.example:9095/",
        ],
    );
    let ams = a.api("/api/v1/alertmanagers");
    let urls: Vec<&str> = ams["activeAlertmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        vec![
            format!("http://127.0.0.1:{dead}/api/v2/alerts"),
            format!("http://{}/am/api/v2/alerts", live.addr())
        ]
    );
    wait_for(15, "firing alert", || {
        a.api("/api/v1/alerts")["alerts"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["state"] == "firing").cloned())
    });
    let fired = Instant::now();
    // The hung Alertmanager (30 s timeout) does not hold the live one back.
    let first = wait_for(10, "alert at the live Alertmanager", || {
        posted(&live).into_iter().next()
    });
    assert!(fired.elapsed() < Duration::from_secs(10));
    let (head, _) = live.requests.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("POST /am/api/v2/alerts HTTP/1.1"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let labels: BTreeMap<String, String> = serde_json::from_value(first["labels"].clone()).unwrap();
    assert_eq!(
        labels,
        BTreeMap::from(
            [
                ("alertname", "Backlog"),
                ("instance", t.addr().as_str()),
                ("job", "worker"),
                ("queue", "a"),
                ("region", "eu"),
                ("severity", "page"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        )
    );
    assert_eq!(first["annotations"]["summary"], "a backlog");
    assert_eq!(
        first["generatorURL"],
        "http://argus.example:9095/graph?g0.expr=queue_depth+%3E+10&g0.tab=1"
    );
    // Firing: endsAt is 4 × max(resend delay 2s, interval 1s) after the send.
    let ends_in = ms(&first["endsAt"]) - now_ms();
    assert!(
        (4_000..=8_500).contains(&ends_in),
        "endsAt {ends_in} ms ahead"
    );
    // Re-sent every resend delay while firing, with the same startsAt.
    wait_for(10, "a resend", || {
        let p = posted(&live);
        (p.len() >= 2).then_some(())
    });
    assert!(
        posted(&live)
            .iter()
            .all(|x| x["startsAt"] == first["startsAt"])
    );
    // Resolved: sent with endsAt at the resolve time.
    t.set_text("queue_depth{queue=\"a\"} 1\n");
    let resolved = wait_for(15, "resolved alert", || {
        posted(&live)
            .into_iter()
            .find(|x| ms(&x["endsAt"]) <= now_ms())
    });
    assert_eq!(resolved["labels"]["alertname"], "Backlog");
    // The dead one is still trying; the live one counted its sends.
    let (_, m) = http_get(&format!("{}/metrics", a.url())).unwrap();
    let sent = m
        .lines()
        .find(|l| l.starts_with("argus_notifications_sent_total{") && l.contains(&live.addr()))
        .unwrap_or_else(|| panic!("no sent counter:\n{m}"));
    assert!(!sent.ends_with(" 0"), "{sent}");
}

#[test]
fn a_thousand_firing_alerts_restart_without_duplicate_or_missing_notifications() {
    let firing: String = (0..1000)
        .map(|i| format!("queue_depth{{queue=\"q{i}\"}} 42\n"))
        .collect();
    let t = Target::text(&firing);
    let am = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n        annotations: {summary: '{{ $labels.queue }} at {{ $value }}'}\n",
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{}']}}]\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        am.addr(),
        t.addr()
    );
    let count = |resolved: bool| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        let now = now_ms();
        for x in posted(&am) {
            if (ms(&x["endsAt"]) <= now) == resolved {
                *m.entry(x["labels"]["queue"].as_str().unwrap_or("").to_string())
                    .or_default() += 1;
            }
        }
        m
    };
    let extra = ["--rules.alert.resend-delay", "1h"];
    let mut a = Argus::start_in(tmp.path(), &cfg, &extra);
    wait_for(30, "1000 firing alerts sent", || {
        (count(false).len() == 1000).then_some(())
    });
    let (code, _) = a.stop();
    assert_eq!(code, Some(0));
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &extra);
    let firing_now = a.api("/api/v1/alerts")["alerts"].as_array().unwrap().len();
    assert_eq!(firing_now, 1000, "all alerts restored before evaluation");
    // Several evaluations after the restart: nothing is sent again.
    std::thread::sleep(Duration::from_secs(4));
    let f = count(false);
    assert_eq!(f.len(), 1000);
    assert!(f.values().all(|&n| n == 1), "a firing alert was sent twice");
    assert!(count(true).is_empty());
    // Every alert resolves once.
    let cleared: String = (0..1000)
        .map(|i| format!("queue_depth{{queue=\"q{i}\"}} 0\n"))
        .collect();
    t.set_text(&cleared);
    wait_for(30, "1000 resolved alerts sent", || {
        (count(true).len() == 1000).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let r = count(true);
    assert!(r.values().all(|&n| n == 1), "a resolve was sent twice");
    assert!(count(false).values().all(|&n| n == 1));
    assert!(a.log().contains("restored alert state"), "{}", a.log());
    eprintln!(
        "{}",
        a.log()
            .lines()
            .find(|l| l.contains("restored alert state"))
            .unwrap_or("")
    );
}

/// argus's own routing (`alerting.routing_file`, an alertmanager.yml):
/// a rule fires, its group waits `group_wait`, the webhook receives
/// Alertmanager's version 4 payload; nothing repeats before
/// `repeat_interval`; the resolve follows.
#[test]
fn own_routing_delivers_to_a_webhook_firing_then_resolved() {
    let t = Target::text("queue_depth{queue=\"a\"} 42\nqueue_depth{queue=\"b\"} 43\n");
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n        labels: {severity: page}\n        annotations: {summary: 'backlog on {{ $labels.queue }}'}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n  routes:\n    - matchers: ['severity=\"page\"']\n      receiver: pager\nreceivers:\n  - name: default\n  - name: pager\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let a = Argus::start_in(
        tmp.path(),
        &cfg,
        &["--web.external-url", "http://argus.example:9095"],
    );
    let firing = wait_for(20, "firing notification", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "firing")
    });
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["receiver"], "pager");
    assert_eq!(
        firing["groupKey"],
        "{}/{severity=\"page\"}:{alertname=\"Backlog\"}"
    );
    assert_eq!(
        firing["groupLabels"],
        serde_json::json!({"alertname": "Backlog"})
    );
    assert_eq!(firing["externalURL"], "http://argus.example:9095");
    assert_eq!(firing["truncatedAlerts"], 0);
    let alerts = firing["alerts"].as_array().unwrap();
    // Both queues in one notification: they fired within group_wait.
    assert_eq!(alerts.len(), 2, "{firing}");
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);
    assert_eq!(firing["commonLabels"]["severity"], "page");
    assert!(firing["commonLabels"].get("queue").is_none());
    assert!(
        alerts
            .iter()
            .any(|x| x["annotations"]["summary"] == "backlog on b")
    );
    // Group interval passes several times: nothing new, nothing sent.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(hook.json_bodies().len(), 1, "{:?}", hook.json_bodies());
    // One queue clears: the next flush sends it resolved (send_resolved
    // is on by default for webhooks), the other still firing.
    t.set_text("queue_depth{queue=\"a\"} 1\nqueue_depth{queue=\"b\"} 43\n");
    let update = wait_for(20, "notification with a resolved alert", || {
        hook.json_bodies().into_iter().find(|b| {
            b["alerts"]
                .as_array()
                .is_some_and(|v| v.iter().any(|x| x["status"] == "resolved"))
        })
    });
    assert_eq!(update["status"], "firing");
    t.set_text("queue_depth{queue=\"a\"} 1\nqueue_depth{queue=\"b\"} 1\n");
    let done = wait_for(20, "all resolved", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert!(
        done["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "resolved" && x["endsAt"] != "0001-01-01T00:00:00Z")
    );
    drop(a);
}

/// A restart while an alert fires sends nothing again (the notification
/// log is kept under --storage.path), and the resolve still comes.
#[test]
fn own_routing_restart_neither_repeats_nor_forgets() {
    let t = Target::text("queue_depth 42\n");
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        for: 1s\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let extra = ["--rules.alert.resend-delay", "2s"];
    let mut a = Argus::start_in(tmp.path(), &cfg, &extra);
    wait_for(20, "firing notification", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "firing")
    });
    a.stop();
    assert!(
        tmp.path().join("data/nflog.wal").exists() || tmp.path().join("data/nflog.json").exists()
    );
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &extra);
    // Restored alerts are re-sent by the rules every 2 s and regrouped at
    // once; the log says they were notified: nothing goes out.
    std::thread::sleep(Duration::from_secs(6));
    let firing = hook
        .json_bodies()
        .iter()
        .filter(|b| b["status"] == "firing")
        .count();
    assert_eq!(firing, 1, "{:?}", hook.json_bodies());
    t.set_text("queue_depth 1\n");
    wait_for(20, "resolved notification", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    drop(a);
}

/// Inhibition: a warning is not sent while a critical alert of the same
/// service fires; once the critical one resolves, the warning goes out.
#[test]
fn own_routing_inhibits_warnings_under_a_critical_alert() {
    let t = Target::text("errors 5\nlatency 3\n");
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Errors\n        expr: errors > 1\n        labels: {severity: critical, service: api}\n      - alert: Slow\n        expr: latency > 1\n        labels: {severity: warning, service: api}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\ninhibit_rules:\n  - source_matchers: ['severity=\"critical\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [service]\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    let names = |hook: &Recorder| -> Vec<(String, String)> {
        hook.json_bodies()
            .iter()
            .map(|b| {
                (
                    b["groupLabels"]["alertname"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                    b["status"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    wait_for(20, "the critical alert", || {
        names(&hook)
            .contains(&("Errors".into(), "firing".into()))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        !names(&hook).iter().any(|(n, _)| n == "Slow"),
        "{:?}",
        names(&hook)
    );
    t.set_text("errors 0\nlatency 3\n");
    wait_for(20, "the warning, once nothing inhibits it", || {
        names(&hook)
            .contains(&("Slow".into(), "firing".into()))
            .then_some(())
    });
    drop(a);
}

/// Silences: an alert a silence matches is not sent and is listed as
/// suppressed by it; the silence survives a restart; expiring it releases
/// the alert at the next group flush.
#[test]
fn silences_mute_survive_restarts_and_release_when_expired() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    let mut a = Argus::start_in(tmp.path(), cfg, &[]);
    let now = now_ms();
    let fmt = argus::model::format_rfc3339_millis;
    // Invalid silences are refused with the reason.
    let (code, body) = http_request(
        "POST",
        &format!("{}/api/v2/silences", a.url()),
        Some(&format!(
            r#"{{"matchers":[{{"name":"alertname","value":".*","isRegex":true}}],"startsAt":"{}","endsAt":"{}","createdBy":"t","comment":"c"}}"#,
            fmt(now),
            fmt(now + 3_600_000)
        )),
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("must not match the empty string"), "{body}");
    let (code, body) = http_request(
        "POST",
        &format!("{}/api/v2/silences", a.url()),
        Some(&format!(
            r#"{{"matchers":[{{"name":"alertname","value":"DiskFull","isRegex":false,"isEqual":true}}],"startsAt":"{}","endsAt":"{}","createdBy":"oncall","comment":"disk swap"}}"#,
            fmt(now),
            fmt(now + 3_600_000)
        )),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let post = |a: &Argus, name: &str| {
        let (code, body) = http_request(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&format!(
                r#"[{{"labels":{{"alertname":"{name}","host":"h1"}}}}]"#
            )),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    };
    post(&a, "DiskFull");
    post(&a, "CpuHot");
    wait_for(10, "the unsilenced alert", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "CpuHot")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !hook
            .json_bodies()
            .iter()
            .any(|b| b["groupLabels"]["alertname"] == "DiskFull"),
        "{:?}",
        hook.json_bodies()
    );
    // Groups, receivers and status, as Alertmanager answers them.
    let groups = a.get_json("/api/v2/alerts/groups");
    let g: Vec<(String, usize)> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["labels"]["alertname"].as_str().unwrap().to_string(),
                g["alerts"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert!(
        g.contains(&("CpuHot".into(), 1)) && g.contains(&("DiskFull".into(), 1)),
        "{groups}"
    );
    assert_eq!(groups[0]["receiver"]["name"], "hook");
    let active_only = a.get_json("/api/v2/alerts/groups?silenced=false");
    assert_eq!(active_only.as_array().unwrap().len(), 1, "{active_only}");
    assert_eq!(
        a.get_json("/api/v2/receivers"),
        serde_json::json!([{"name": "hook"}])
    );
    let status = a.get_json("/api/v2/status");
    let original = status["config"]["original"].as_str().unwrap();
    assert!(
        original.contains("<secret>") && !original.contains(&hook.addr()),
        "{original}"
    );
    assert_eq!(status["cluster"]["status"], "disabled");
    let alerts = a.get_json("/api/v2/alerts?filter=alertname%3DDiskFull");
    assert_eq!(alerts[0]["status"]["state"], "suppressed", "{alerts}");
    assert_eq!(alerts[0]["status"]["silencedBy"][0], id.as_str());
    let listed = a.get_json("/api/v2/silences?filter=alertname%3DDiskFull");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["status"]["state"], "active");
    assert!(
        a.get_json("/api/v2/silences?filter=alertname%3Dother")
            .as_array()
            .unwrap()
            .is_empty()
    );

    a.stop();
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    let got = a.get_json(&format!("/api/v2/silence/{id}"));
    assert_eq!(got["comment"], "disk swap");
    assert_eq!(got["createdBy"], "oncall");
    assert_eq!(got["status"]["state"], "active");
    post(&a, "DiskFull");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !hook
            .json_bodies()
            .iter()
            .any(|b| b["groupLabels"]["alertname"] == "DiskFull")
    );
    let (code, _) =
        http_request("DELETE", &format!("{}/api/v2/silence/{id}", a.url()), None).unwrap();
    assert_eq!(code, 200);
    let (code, _) = http_request(
        "DELETE",
        &format!("{}/api/v2/silence/no-such-id", a.url()),
        None,
    )
    .unwrap();
    assert_eq!(code, 404);
    assert_eq!(
        a.get_json(&format!("/api/v2/silence/{id}"))["status"]["state"],
        "expired"
    );
    wait_for(10, "the alert once its silence expired", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "DiskFull")
    });
}

/// `web.auth`: posting alerts, silences and reloads need the credentials;
/// reading does not.
#[test]
fn write_endpoints_require_the_configured_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("token"), "s3cr3t-token\n").unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\nweb:\n  auth:\n    bearer_token_file: token\n    basic_auth: {username: ops, password: hunter2}\n";
    let a = Argus::start_in(tmp.path(), cfg, &[]);
    let alert = r#"[{"labels":{"alertname":"X"}}]"#;
    let url = format!("{}/api/v2/alerts", a.url());
    let (code, _) = http_request("POST", &url, Some(alert)).unwrap();
    assert_eq!(code, 401);
    let (code, _) = http_request_with(
        "POST",
        &url,
        Some(alert),
        &[("Authorization", "Bearer wrong")],
    )
    .unwrap();
    assert_eq!(code, 401);
    let (code, body) = http_request_with(
        "POST",
        &url,
        Some(alert),
        &[("Authorization", "Bearer s3cr3t-token")],
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    // ops:hunter2
    let basic = [("Authorization", "Basic b3BzOmh1bnRlcjI=")];
    let (code, _) = http_request_with("POST", &url, Some(alert), &basic).unwrap();
    assert_eq!(code, 200);
    let (code, _) = http_request("POST", &format!("{}/-/reload", a.url()), None).unwrap();
    assert_eq!(code, 401);
    let (code, _) =
        http_request_with("POST", &format!("{}/-/reload", a.url()), None, &basic).unwrap();
    assert_eq!(code, 200);
    let sil = format!(
        r#"{{"matchers":[{{"name":"alertname","value":"X","isRegex":false}}],"startsAt":"{}","endsAt":"{}","createdBy":"t","comment":"c"}}"#,
        argus::model::format_rfc3339_millis(now_ms()),
        argus::model::format_rfc3339_millis(now_ms() + 60_000)
    );
    let (code, _) =
        http_request("POST", &format!("{}/api/v2/silences", a.url()), Some(&sil)).unwrap();
    assert_eq!(code, 401);
    let (code, _) = http_request("DELETE", &format!("{}/api/v2/silence/x", a.url()), None).unwrap();
    assert_eq!(code, 401);
    // Reading stays open, and the token never shows.
    assert_eq!(a.get_json("/api/v2/alerts").as_array().unwrap().len(), 1);
    let (_, cfg) = http_get(&format!("{}/api/v1/status/config", a.url())).unwrap();
    assert!(
        !cfg.contains("hunter2") && cfg.contains("<secret>"),
        "{cfg}"
    );
}

/// `alerting.routing:` inline in argus's config routes like a file.
#[test]
fn inline_routing_delivers() {
    let hook = Recorder::start();
    let cfg = format!(
        "alerting:\n  routing:\n    route:\n      receiver: hook\n      group_wait: 0s\n    receivers:\n      - name: hook\n        webhook_configs:\n          - url: http://{}/inline\n",
        hook.addr()
    );
    let a = Argus::start(&cfg, &[]);
    let (code, body) = http_request(
        "POST",
        &format!("{}/api/v2/alerts", a.url()),
        Some(r#"[{"labels":{"alertname":"Inline"}}]"#),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let got = wait_for(10, "the inline-routed alert", || hook.json_bodies().pop());
    assert_eq!(got["commonLabels"]["alertname"], "Inline");
    // The status shows the inline routing with its secrets hidden.
    let (_, cfg) = http_get(&format!("{}/api/v1/status/config", a.url())).unwrap();
    assert!(
        cfg.contains("<secret>") && !cfg.contains(&hook.addr()),
        "{cfg}"
    );
}

/// Alerts that came in through the API survive a restart with the
/// notification log: no second page, and the resolve still goes out
/// (Alertmanager loses both, alertmanager#2370).
#[test]
fn api_alerts_survive_a_restart_and_resolve_once() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    let mut a = Argus::start_in(tmp.path(), cfg, &[]);
    let fmt = argus::model::format_rfc3339_millis;
    let post = |a: &Argus, ends: i64| {
        let (code, body) = http_request(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&format!(
                r#"[{{"labels":{{"alertname":"Remote","job":"x"}},"startsAt":"{}","endsAt":"{}"}}]"#,
                fmt(now_ms() - 60_000),
                fmt(ends)
            )),
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    };
    post(&a, now_ms() + 3_600_000);
    wait_for(10, "the page", || hook.json_bodies().pop());
    a.stop();
    assert!(tmp.path().join("data/routed_alerts.json").exists());
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    let listed = a.get_json("/api/v2/alerts");
    assert_eq!(listed[0]["labels"]["alertname"], "Remote", "{listed}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        hook.json_bodies().len(),
        1,
        "paged again after the restart: {}\n{:?}\n{}",
        a.log(),
        hook.json_bodies(),
        std::fs::read_to_string(tmp.path().join("data/nflog.wal")).unwrap_or_default(),
    );
    post(&a, now_ms());
    let got = wait_for(10, "the resolve", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert_eq!(got["alerts"][0]["labels"]["alertname"], "Remote");
    assert_eq!(hook.json_bodies().len(), 2);
}

/// `--dry-run`: everything rendered and logged, nothing sent; the
/// receiver metrics count it.
#[test]
fn dry_run_logs_notifications_in_full_and_sends_nothing() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pd-key"), "PDSECRET\n").unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: team\n  group_wait: 0s\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://{}/hook\n    pagerduty_configs:\n      - routing_key_file: pd-key\n        url: http://{}/pd\n",
            hook.addr(),
            hook.addr()
        ),
    )
    .unwrap();
    let a = Argus::start_in(
        tmp.path(),
        "alerting:\n  routing_file: alertmanager.yml\n",
        &["--dry-run"],
    );
    let (code, _) = http_request(
        "POST",
        &format!("{}/api/v2/alerts", a.url()),
        Some(r#"[{"labels":{"alertname":"DryRun","severity":"page"}}]"#),
    )
    .unwrap();
    assert_eq!(code, 200);
    wait_for(10, "the dry-run log lines", || {
        let log = a.log();
        (log.matches("dry run: notification not sent").count() >= 2).then_some(())
    });
    let log = a.log();
    assert!(log.contains("DryRun"), "{log}");
    assert!(
        log.contains("\\\"event_action\\\": \\\"trigger\\\"") || log.contains("event_action"),
        "{log}"
    );
    assert!(
        !log.contains("PDSECRET"),
        "the routing key leaked into the log"
    );
    assert!(hook.taken().is_empty(), "dry run sent something");
    let (_, metrics) = http_get(&format!("{}/metrics", a.url())).unwrap();
    for integration in ["webhook/0", "pagerduty/0"] {
        let line = format!(
            "argus_receiver_notifications_total{{receiver=\"team\",integration=\"{integration}\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} missing:\n{metrics}");
    }
    assert!(metrics.contains("argus_receiver_delivery_latency_seconds_count{receiver=\"team\",integration=\"webhook/0\"} 1"), "{metrics}");
}
