//! Pushover delivery: the query-string POST Alertmanager makes, sent to
//! a stand-in for Pushover's API on 127.0.0.1 (named through
//! `ARGUS_PUSHOVER_API_URL`, as Alertmanager's own tests swap its URL),
//! retried on a 5xx, resolved with normal priority. Time is a manual
//! clock; the HTTP is real. One test in its own binary: it sets the
//! environment before anything runs.

mod common;

use std::collections::BTreeMap;

use argus::model::{Alert, AlertSink, Labels};
use common::notifier::*;
use common::*;

/// The decoded query parameters of each POST to `/1/messages.json`.
fn messages(r: &Recorder) -> Vec<BTreeMap<String, String>> {
    r.taken()
        .iter()
        .filter_map(|(head, body)| {
            let line = head.lines().next()?;
            assert!(line.starts_with("POST /1/messages.json?"), "{line}");
            assert!(body.is_empty());
            assert!(
                head.to_lowercase().contains("content-type: text/plain"),
                "{head}"
            );
            let q = line.split_whitespace().nth(1)?.split_once('?')?.1;
            Some(
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), decode(v)))
                    .collect(),
            )
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushover_gets_the_alertmanager_call() {
    let api = Recorder::start();
    // SAFETY: set before any thread of this test binary reads the
    // environment (this is its only test).
    unsafe {
        std::env::set_var(
            "ARGUS_PUSHOVER_API_URL",
            format!("http://{}/1/messages.json", api.addr()),
        );
    }
    api.respond(500, "application/json", r#"{"status":0}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("user"), "u-key-123").unwrap();
    let am = r#"
route:
  receiver: phone
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: phone
    pushover_configs:
      - user_key_file: user
        token: app-token-456
        device: pixel
        sound: siren
        ttl: 2h
        retry: 30s
        url_title: Open argus
"#;
    let h = start_t0(tmp.path(), am);
    let notifier = &h.notifier;
    let advance = |ms: i64| h.advance(ms);
    let alert = |ends_at: i64| Alert {
        labels: Labels::from_pairs(vec![
            ("alertname".to_string(), "DiskFull".to_string()),
            ("host".to_string(), "db-1".to_string()),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), "disk is full".to_string())]),
        starts_at: T0,
        ends_at,
        generator_url: "http://argus.test:9095/graph?g0.expr=up".into(),
    };
    notifier.send(vec![alert(T0 + 3_600_000)]);
    advance(0).await;
    until("the first call", || messages(&api).pop()).await;
    // A 5xx is tried again, with the same parameters.
    api.respond(200, "application/json", r#"{"status":1}"#, &[]);
    for _ in 0..20 {
        advance(30_000).await;
        if messages(&api).len() >= 2 {
            break;
        }
    }
    let all = messages(&api);
    assert!(all.len() >= 2, "{all:?}");
    assert_eq!(all[0], all[1]);
    let m = &all[1];
    assert_eq!(m["token"], "app-token-456");
    assert_eq!(m["user"], "u-key-123");
    assert_eq!(m["title"], "[FIRING:1] DiskFull (db-1)");
    assert!(m["message"].starts_with("disk is full"), "{m:?}");
    assert_eq!(
        m["url"],
        "http://argus.test:9095/api/v2/alerts?receiver=phone"
    );
    assert_eq!(m["url_title"], "Open argus");
    assert_eq!(m["priority"], "2");
    assert_eq!(m["retry"], "30");
    assert_eq!(m["expire"], "3600");
    assert_eq!(m["ttl"], "7200");
    assert_eq!(m["device"], "pixel");
    assert_eq!(m["sound"], "siren");
    assert!(!m.contains_key("html") && !m.contains_key("monospace"));

    // Resolved: normal priority.
    let n = all.len();
    notifier.send(vec![alert(T0 + 60_000)]);
    for _ in 0..20 {
        advance(60_000).await;
        if messages(&api).len() > n {
            break;
        }
    }
    let last = messages(&api).pop().unwrap();
    assert_eq!(last["title"], "[RESOLVED] DiskFull (db-1)");
    assert_eq!(last["priority"], "0");
}
