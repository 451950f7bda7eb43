//! Slack's `update_message` (Alertmanager 0.29 on): in bot-token mode a
//! group's first notification posts a message, and its later ones edit
//! that message through `chat.update` with the timestamp and channel
//! Slack answered, kept in the notification log (so a restarted argus
//! still edits the same message). A stand-in for Slack's API on
//! 127.0.0.1, named through `ARGUS_SLACK_API_URL` (Alertmanager allows
//! `update_message` only with `api_url` set to Slack's own
//! `chat.postMessage`); time is a manual clock. One test in its own
//! binary: it sets the environment before anything runs.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use argus::config::DeliveryConfig;
use argus::model::{Alert, AlertSink, Labels};
use common::notifier::*;
use common::*;
use serde_json::Value;

/// (path, JSON body) of each call.
fn calls(r: &Recorder) -> Vec<(String, Value)> {
    r.taken()
        .iter()
        .map(|(head, body)| {
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            (path, serde_json::from_slice(body).unwrap_or(Value::Null))
        })
        .collect()
}

fn alert(host: &str) -> Alert {
    Alert {
        labels: Labels::from_pairs(vec![
            ("alertname".to_string(), "DiskFull".to_string()),
            ("host".to_string(), host.to_string()),
        ]),
        annotations: BTreeMap::new(),
        starts_at: T0,
        ends_at: T0 + 3_600_000,
        generator_url: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_notifications_edit_the_first_message_across_a_restart() {
    let slack = Recorder::start();
    // SAFETY: set before any thread of this test binary reads the
    // environment (this is its only test).
    unsafe {
        std::env::set_var(
            "ARGUS_SLACK_API_URL",
            format!("http://{}/api/", slack.addr()),
        );
    }
    slack.respond(
        200,
        "application/json",
        r##"{"ok":true,"channel":"C024BE91L","ts":"1700000000.000100"}"##,
        &[],
    );
    let am = r##"
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: chat
    slack_configs:
      - channel: '#alerts'
        api_url: https://slack.com/api/chat.postMessage
        http_config:
          authorization:
            credentials: xoxb-t0ken
        update_message: true
"##;
    let tmp = tempfile::tempdir().unwrap();
    let h = start_t0(tmp.path(), am);
    let (clock, notifier) = (h.clock.clone(), h.notifier.clone());
    notifier.send(vec![alert("db-1")]);
    notifier.poke();
    let first = until("the first message", || calls(&slack).pop()).await;
    assert_eq!(first.0, "/api/chat.postMessage");
    assert_eq!(first.1["channel"], "#alerts");
    assert!(first.1.get("ts").is_none(), "{}", first.1);

    // The group changes: the same message is edited.
    notifier.send(vec![alert("db-1"), alert("db-2")]);
    for _ in 0..5 {
        clock.advance(60_000);
        notifier.poke();
        tokio::time::sleep(Duration::from_millis(60)).await;
        if calls(&slack).len() >= 2 {
            break;
        }
    }
    let second = until("the edit", || calls(&slack).get(1).cloned()).await;
    assert_eq!(second.0, "/api/chat.update");
    assert_eq!(second.1["channel"], "C024BE91L");
    assert_eq!(second.1["ts"], "1700000000.000100");
    let title = second.1["attachments"][0]["title"].as_str().unwrap();
    assert!(title.starts_with("[FIRING:2]"), "{title}");

    // After a restart the notification log still names the message.
    drop(notifier);
    h.stop().await;
    let h = start(tmp.path(), clock.clone(), am, &DeliveryConfig::default());
    let notifier = h.notifier.clone();
    notifier.send(vec![alert("db-1"), alert("db-2"), alert("db-3")]);
    for _ in 0..5 {
        clock.advance(60_000);
        notifier.poke();
        tokio::time::sleep(Duration::from_millis(60)).await;
        if calls(&slack).len() >= 3 {
            break;
        }
    }
    let third = until("the edit after the restart", || {
        calls(&slack).get(2).cloned()
    })
    .await;
    assert_eq!(third.0, "/api/chat.update");
    assert_eq!(third.1["ts"], "1700000000.000100");
}
