//! Jira delivery: the calls Alertmanager 0.34 makes, against a stand-in
//! Jira REST API on 127.0.0.1 that keeps issues: the group's issue is
//! searched for by its `ALERT{hash}` label, created when the group first
//! fires, updated on later notifications (the summary left alone when
//! `enable_update: false`), resolved through `resolve_transition` and
//! reopened through `reopen_transition` when the group fires again within
//! `reopen_duration`. Time is a manual clock; the HTTP is real.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use argus::model::{Alert, AlertSink, Clock, Labels};
use common::notifier::*;
use serde_json::{Value, json};

#[derive(Default)]
struct Jira {
    /// key → (fields, status category key)
    issues: BTreeMap<String, (Value, String)>,
    /// (method, path, body) of every call, in order.
    calls: Vec<(String, String, Value)>,
    /// Fail the next call with this status.
    fail_next: Option<u16>,
}

fn start_jira() -> (u16, Arc<Mutex<Jira>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let st = Arc::new(Mutex::new(Jira::default()));
    let s2 = st.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { continue };
            let st = s2.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let mut parts = head.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (status, answer) = answer(&mut st.lock().unwrap(), &method, &path, body);
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                }
            });
        }
    });
    (port, st)
}

fn answer(j: &mut Jira, method: &str, path: &str, body: Value) -> (u16, String) {
    j.calls
        .push((method.to_string(), path.to_string(), body.clone()));
    if let Some(s) = j.fail_next.take() {
        return (s, r#"{"errorMessages":["try later"]}"#.into());
    }
    let rest = path.strip_prefix("/rest/api/2/").unwrap_or(path);
    match (method, rest) {
        ("POST", "search") => {
            let jql = body["jql"].as_str().unwrap_or("");
            let label = jql
                .split("labels=")
                .nth(1)
                .and_then(|r| serde_json::from_str::<String>(r.split(" order by").next()?).ok())
                .unwrap_or_default();
            let open_only = jql.contains("statusCategory != Done");
            let issues: Vec<Value> = j
                .issues
                .iter()
                .filter(|(_, (f, cat))| {
                    f["labels"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|x| x == label.as_str()))
                        && (!open_only || cat != "done")
                })
                .map(|(k, (_, cat))| {
                    json!({"key": k, "fields": {"status": {"name": cat, "statusCategory": {"key": cat}}}})
                })
                .collect();
            (200, json!({ "issues": issues }).to_string())
        }
        ("POST", "issue") => {
            let key = format!("OPS-{}", j.issues.len() + 1);
            j.issues
                .insert(key.clone(), (body["fields"].clone(), "new".into()));
            (201, json!({ "key": key }).to_string())
        }
        _ => {
            let Some(r) = rest.strip_prefix("issue/") else {
                return (404, "{}".into());
            };
            match (method, r.split_once('/')) {
                ("PUT", None) => match j.issues.get_mut(r) {
                    Some((f, _)) => {
                        for (k, v) in body["fields"].as_object().unwrap() {
                            f[k] = v.clone();
                        }
                        (204, String::new())
                    }
                    None => (404, "{}".into()),
                },
                ("GET", Some((_, "transitions"))) => (
                    200,
                    json!({"transitions": [{"id": "31", "name": "Done"}, {"id": "11", "name": "Reopen"}]})
                        .to_string(),
                ),
                ("POST", Some((key, "transitions"))) => {
                    let cat = match body["transition"]["id"].as_str() {
                        Some("31") => "done",
                        _ => "new",
                    };
                    if let Some(i) = j.issues.get_mut(key) {
                        i.1 = cat.into();
                    }
                    (204, String::new())
                }
                _ => (404, "{}".into()),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_one_jira_issue_created_updated_resolved_and_reopened() {
    let (port, jira) = start_jira();
    let am = format!(
        r#"
global:
  jira_api_url: http://127.0.0.1:{port}/rest/api/2
route:
  receiver: tickets
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: tickets
    jira_configs:
      - project: OPS
        issue_type: Incident
        labels: ['team-{{{{ .CommonLabels.team }}}}']
        summary:
          template: '{{{{ template "jira.default.summary" . }}}}'
          enable_update: false
        resolve_transition: Done
        reopen_transition: Reopen
        reopen_duration: 1h
        wont_fix_resolution: "Won't Fix"
        http_config:
          basic_auth: {{username: bot@example.com, password: api-t0ken}}
        fields:
          customfield_10001: '{{{{ .CommonLabels.host }}}}'
          customfield_10002: '{{{{ len .Alerts }}}}'
          customfield_10003: {{value: '{{{{ .CommonLabels.team }}}}'}}
"#
    );
    let tmp = tempfile::tempdir().unwrap();
    let h = start_t0(tmp.path(), &am);
    let (clock, notifier) = (&h.clock, &h.notifier);
    let advance = |ms: i64| h.advance(ms);
    let alert = |host: &str, ends_at: i64| Alert {
        labels: Labels::from_pairs(vec![
            ("alertname".to_string(), "DiskFull".to_string()),
            ("host".to_string(), host.to_string()),
            ("team".to_string(), "storage".to_string()),
            ("severity".to_string(), "critical".to_string()),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), "disk is full".to_string())]),
        starts_at: T0,
        ends_at,
        generator_url: "http://argus.test:9095/graph?g0.expr=up".into(),
    };
    let issue = |key: &str| jira.lock().unwrap().issues.get(key).cloned();
    let calls = |m: &str, p: &str| -> Vec<Value> {
        jira.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.0 == m && c.1.ends_with(p))
            .map(|c| c.2.clone())
            .collect()
    };

    // Fires: searched for, not found, created. A 503 first is tried again.
    jira.lock().unwrap().fail_next = Some(503);
    notifier.send(vec![alert("db-1", T0 + 3_600_000)]);
    advance(0).await;
    for _ in 0..20 {
        if issue("OPS-1").is_some() {
            break;
        }
        advance(30_000).await;
    }
    let (fields, status) = until("the issue created", || issue("OPS-1")).await;
    assert_eq!(status, "new");
    assert_eq!(fields["project"], json!({"key": "OPS"}));
    assert_eq!(fields["issuetype"], json!({"name": "Incident"}));
    assert_eq!(
        fields["summary"],
        "[FIRING:1] DiskFull (db-1 critical storage)"
    );
    assert_eq!(fields["priority"], json!({"name": "High"}));
    assert_eq!(fields["customfield_10001"], "db-1");
    assert_eq!(fields["customfield_10002"], 1);
    assert_eq!(fields["customfield_10003"], json!({"value": "storage"}));
    let d = fields["description"].as_str().unwrap();
    assert!(d.contains("# Alerts Firing:"), "{d}");
    assert!(d.contains("  - host = db-1"), "{d}");
    let labels = fields["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 2, "{labels:?}");
    let alert_label = labels[0].as_str().unwrap().to_string();
    assert!(
        alert_label.starts_with("ALERT{") && alert_label.len() == 6 + 64 + 1,
        "{alert_label}"
    );
    assert_eq!(labels[1], "team-storage");
    let search = calls("POST", "/search");
    let jql = search[0]["jql"].as_str().unwrap();
    assert_eq!(
        jql,
        format!(
            "(resolution is EMPTY or resolution != \"Won't Fix\") and (resolutiondate is EMPTY OR resolutiondate >= -60m) and project=\"OPS\" and labels=\"{alert_label}\" order by status ASC,resolutiondate DESC"
        )
    );
    assert_eq!(search[0]["maxResults"], 2);
    assert_eq!(search[0]["fields"], json!(["status"]));

    // A second host in the group: the issue is updated, its summary kept.
    notifier.send(vec![alert("db-2", T0 + 3_600_000)]);
    for _ in 0..10 {
        advance(60_000).await;
        if !calls("PUT", "/issue/OPS-1").is_empty() {
            break;
        }
    }
    let put = until("the update", || calls("PUT", "/issue/OPS-1").pop()).await;
    assert!(put["fields"].get("summary").is_none(), "{put}");
    assert!(
        put["fields"]["description"]
            .as_str()
            .unwrap()
            .contains("host = db-2")
    );
    assert_eq!(jira.lock().unwrap().issues.len(), 1);

    // Resolved: updated, then moved through "Done".
    let resolve_at = clock.now_millis();
    notifier.send(vec![alert("db-1", resolve_at), alert("db-2", resolve_at)]);
    for _ in 0..10 {
        advance(60_000).await;
        if issue("OPS-1").unwrap().1 == "done" {
            break;
        }
    }
    assert_eq!(
        issue("OPS-1").unwrap().1,
        "done",
        "{:?}",
        jira.lock().unwrap().calls
    );
    let t = calls("POST", "/issue/OPS-1/transitions");
    assert_eq!(t, vec![json!({"transition": {"id": "31"}})]);

    // Fires again within the hour: the same issue, reopened.
    let later = clock.now_millis();
    notifier.send(vec![Alert {
        starts_at: later,
        ..alert("db-1", later + 3_600_000)
    }]);
    for _ in 0..10 {
        advance(60_000).await;
        if issue("OPS-1").unwrap().1 == "new" {
            break;
        }
    }
    assert_eq!(issue("OPS-1").unwrap().1, "new");
    assert_eq!(jira.lock().unwrap().issues.len(), 1);
    assert_eq!(
        calls("POST", "/issue/OPS-1/transitions").pop().unwrap(),
        json!({"transition": {"id": "11"}})
    );
}
