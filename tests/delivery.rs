//! Delivery to receivers: the exact Slack, PagerDuty and webhook requests
//! argus sends to HTTP servers on 127.0.0.1, and the outbox under
//! failure — an outage of simulated minutes, a restart in the middle of
//! it, Retry-After, rate limits and a hanging receiver. Time is a manual
//! clock, so minutes of retries take milliseconds; the HTTP is real.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus::config::DeliveryConfig;
use argus::model::{Alert, AlertSink, Labels, ManualClock};
use argus::notify::{Strictness, group_key_hash, parse_am_config};
use common::notifier::*;
use common::*;
use serde_json::{Value, json};

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn bodies(r: &Recorder, path: &str) -> Vec<Value> {
    r.taken()
        .into_iter()
        .filter(|(h, _)| h.starts_with(&format!("POST {path} ")))
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_pagerduty_and_webhook_receive_alertmanagers_messages() {
    let slack = Recorder::start();
    slack.respond(200, "text/plain", "ok", &[]);
    let bot = Recorder::start();
    bot.respond(
        200,
        "application/json; charset=utf-8",
        r#"{"ok":true}"#,
        &[],
    );
    let pd = Recorder::start();
    pd.respond(202, "application/json", r#"{"status":"success"}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("pd-key"), "R0UT1NGKEY\n").unwrap();
    std::fs::write(tmp.path().join("bot-token"), "xoxb-secret\n").unwrap();
    let am = format!(
        r##"
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: oncall
    slack_configs:
      - api_url: http://{slack}/hooks/T000/B000/XXXX
        channel: '#ops'
        send_resolved: true
        fields:
          - title: Service
            value: '{{{{ .CommonLabels.service }}}}'
        actions:
          - type: button
            text: Runbook
            url: 'https://runbooks.example/{{{{ .GroupLabels.alertname }}}}'
      - app_token_file: bot-token
        app_url: http://{bot}/api/chat.postMessage
        channel: C123
        title: '{{{{ .Alerts.Firing | len }}}} firing'
    pagerduty_configs:
      - routing_key_file: pd-key
        url: http://{pd}/v2/enqueue
        severity: critical
        details:
          service: '{{{{ .CommonLabels.service }}}}'
"##,
        slack = slack.addr(),
        bot = bot.addr(),
        pd = pd.addr()
    );
    let h = start_t0(tmp.path(), &am);
    h.fire(
        "HighLatency",
        &[("service", "api"), ("severity", "critical")],
        T0 + 3_600_000,
    );
    h.advance(0).await;
    let got = until("the Slack message", || {
        bodies(&slack, "/hooks/T000/B000/XXXX").pop()
    })
    .await;
    assert_eq!(
        got,
        json!({
            "channel": "#ops",
            "username": "argus",
            "attachments": [{
                "title": "[FIRING:1] HighLatency (api critical)",
                "title_link": "http://argus.test:9095/api/v2/alerts?receiver=oncall",
                "fallback": "[FIRING:1] HighLatency (api critical) | http://argus.test:9095/api/v2/alerts?receiver=oncall",
                "fields": [{"title": "Service", "value": "api", "short": false}],
                "actions": [{"type": "button", "text": "Runbook", "url": "https://runbooks.example/HighLatency"}],
                "color": "danger",
                "mrkdwn_in": ["fallback", "pretext", "text"]
            }]
        })
    );
    let (head, _) = slack.taken().remove(0);
    assert_eq!(header(&head, "content-type"), Some("application/json"));
    assert!(header(&head, "user-agent").unwrap().starts_with("argus/"));

    let got = until("the bot-token message", || {
        bodies(&bot, "/api/chat.postMessage").pop()
    })
    .await;
    assert_eq!(got["channel"], "C123");
    assert_eq!(got["attachments"][0]["title"], "1 firing");
    let (head, _) = bot.taken().remove(0);
    assert_eq!(header(&head, "authorization"), Some("Bearer xoxb-secret"));

    let got = until("the PagerDuty event", || bodies(&pd, "/v2/enqueue").pop()).await;
    let group_key = "{}:{alertname=\"HighLatency\"}";
    assert_eq!(got["routing_key"], "R0UT1NGKEY");
    assert_eq!(got["event_action"], "trigger");
    assert_eq!(got["dedup_key"], group_key_hash(group_key));
    assert_eq!(got["dedup_key"].as_str().unwrap().len(), 64);
    assert_eq!(got["client"], "argus");
    assert_eq!(
        got["client_url"],
        "http://argus.test:9095/api/v2/alerts?receiver=oncall"
    );
    let p = &got["payload"];
    assert_eq!(p["summary"], "[FIRING:1] HighLatency (api critical)");
    assert_eq!(p["source"], "argus");
    assert_eq!(p["severity"], "critical");
    assert_eq!(p["custom_details"]["service"], "api");
    assert_eq!(p["custom_details"]["num_firing"], "1");
    assert_eq!(p["custom_details"]["num_resolved"], "0");
    assert_eq!(
        p["custom_details"]["firing"],
        "Labels:\n - alertname = HighLatency\n - service = api\n - severity = critical\nAnnotations:\n - summary = HighLatency is bad\nSource: http://argus.test:9095/graph?g0.expr=up\n"
    );

    // The resolve: the same incident is resolved; Slack turns green; the
    // bot-token Slack config does not send resolves.
    h.fire(
        "HighLatency",
        &[("service", "api"), ("severity", "critical")],
        T0 + 30_000,
    );
    h.advance(60_000).await;
    let got = until("the PagerDuty resolve", || {
        bodies(&pd, "/v2/enqueue")
            .into_iter()
            .find(|b| b["event_action"] == "resolve")
    })
    .await;
    assert_eq!(got["dedup_key"], group_key_hash(group_key));
    let got = until("the Slack resolve", || {
        bodies(&slack, "/hooks/T000/B000/XXXX").into_iter().nth(1)
    })
    .await;
    assert_eq!(got["attachments"][0]["color"], "good");
    assert_eq!(
        got["attachments"][0]["title"],
        "[RESOLVED] HighLatency (api critical)"
    );
    h.advance(60_000).await;
    assert_eq!(bodies(&bot, "/api/chat.postMessage").len(), 1);
    assert_eq!(bodies(&pd, "/v2/enqueue").len(), 2);

    // Slack answering anything but "ok" is a failure that backing off
    // cannot fix: no retries; the group's next flush tries again, as in
    // Alertmanager.
    slack.respond(200, "text/plain", "invalid_token", &[]);
    h.fire("Other", &[], T0 + 3_600_000);
    h.advance(0).await;
    until("the refused Slack message", || {
        bodies(&slack, "/hooks/T000/B000/XXXX").get(2).cloned()
    })
    .await;
    h.advance(30_000).await;
    assert_eq!(bodies(&slack, "/hooks/T000/B000/XXXX").len(), 3);
    h.advance(30_000).await;
    until("the next group flush", || {
        bodies(&slack, "/hooks/T000/B000/XXXX").get(3).cloned()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_queued_survives_a_restart_and_is_delivered_in_order_at_the_rate_limit() {
    let hook = Recorder::start();
    hook.respond(503, "text/plain", "down", &[]);
    let other = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    let am = format!(
        r#"
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - matchers: ['alertname="Paged"']
      receiver: pager
receivers:
  - name: team
    webhook_configs:
      - url: http://{}/team
  - name: pager
    webhook_configs:
      - url: http://{}/pager
"#,
        hook.addr(),
        other.addr()
    );
    let delivery = DeliveryConfig {
        rate_limits: BTreeMap::from([("webhook".to_string(), "1/s".to_string())]),
        ..DeliveryConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let h = start(tmp.path(), clock.clone(), &am, &delivery);
    for name in ["A", "B", "C"] {
        h.fire(name, &[], T0 + 3_600_000);
        h.advance(10).await;
    }
    until("a first failed attempt", || {
        (!hook.taken().is_empty()).then_some(())
    })
    .await;
    // Another receiver is not held up by the dead one.
    h.fire("Paged", &[], T0 + 3_600_000);
    h.advance(0).await;
    until("the other receiver", || bodies(&other, "/pager").pop()).await;

    // Five simulated minutes of outage: retries back off (head of line:
    // only A is tried), nothing is lost.
    for _ in 0..10 {
        h.advance(30_000).await;
    }
    let attempts = hook.taken().len();
    assert!(
        (4..=10).contains(&attempts),
        "{attempts} attempts in 5 minutes"
    );
    assert!(
        bodies(&hook, "/team")
            .iter()
            .all(|b| b["groupLabels"]["alertname"] == "A")
    );

    // Restart in the middle of the outage: the queue is on disk.
    h.stop().await;
    assert!(tmp.path().join("data/outbox.json").exists());
    let h = start(tmp.path(), clock.clone(), &am, &delivery);
    for _ in 0..10 {
        h.advance(30_000).await;
    }
    let before = hook.taken().len();
    hook.respond(200, "application/json", "{}", &[]);
    // Recovery: the next attempt succeeds; the rate limit then lets one
    // notification through per simulated second, in order.
    h.advance(300_000).await;
    until("A after recovery", || {
        (hook.taken().len() > before).then_some(())
    })
    .await;
    h.advance(0).await;
    let delivered = |hook: &Recorder| -> Vec<String> {
        hook.taken()[before..]
            .iter()
            .map(|(_, b)| {
                serde_json::from_slice::<Value>(b).unwrap()["groupLabels"]["alertname"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(delivered(&hook), vec!["A"], "rate limit: one per second");
    h.advance(1_000).await;
    until("B", || (delivered(&hook).len() == 2).then_some(())).await;
    h.advance(1_000).await;
    until("C", || (delivered(&hook).len() == 3).then_some(())).await;
    assert_eq!(delivered(&hook), vec!["A", "B", "C"]);
    // Nothing more: each group once, no duplicate from the restart.
    for _ in 0..5 {
        h.advance(60_000).await;
    }
    assert_eq!(delivered(&hook).len(), 3);
    assert_eq!(bodies(&other, "/pager").len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_a_hanging_receiver_delays_no_other() {
    let limited = Recorder::start();
    limited.respond(429, "text/plain", "slow down", &[("Retry-After", "120")]);
    let fine = Recorder::start();
    let (hung, _h) = black_hole();
    let tmp = tempfile::tempdir().unwrap();
    let am = format!(
        r#"
route:
  receiver: limited
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1h
  routes:
    - matchers: ['alertname="H"']
      receiver: hung
      continue: true
    - matchers: ['alertname="H"']
      receiver: fine
receivers:
  - name: limited
    webhook_configs: [{{url: 'http://{}/l'}}]
  - name: hung
    webhook_configs: [{{url: 'http://127.0.0.1:{}/h', timeout: 30s}}]
  - name: fine
    webhook_configs: [{{url: 'http://{}/f'}}]
"#,
        limited.addr(),
        hung,
        fine.addr()
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("L", &[], T0 + 3_600_000);
    h.advance(0).await;
    until("the first attempt", || {
        (limited.taken().len() == 1).then_some(())
    })
    .await;
    // The backoff alone would retry after about a second; the receiver
    // asked for two minutes.
    h.advance(60_000).await;
    h.advance(59_000).await;
    assert_eq!(limited.taken().len(), 1);
    limited.respond(200, "application/json", "{}", &[]);
    h.advance(1_500).await;
    until("the retry after two minutes", || {
        (limited.taken().len() == 2).then_some(())
    })
    .await;

    // A receiver that never answers holds only its own queue.
    let t = Instant::now();
    h.fire("H", &[], T0 + 3_600_000);
    h.advance(0).await;
    until("the healthy receiver", || bodies(&fine, "/f").pop()).await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_over_starttls_with_auth_as_a_text_and_html_message() {
    let smtp = smtp::SmtpSink::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), &smtp.ca_pem).unwrap();
    std::fs::write(tmp.path().join("smtp-pass"), "s3cret\n").unwrap();
    let am = format!(
        r#"
global:
  smtp_smarthost: 127.0.0.1:{}
  smtp_from: argus@example.org
  smtp_auth_username: argus
  smtp_auth_password_file: smtp-pass
  smtp_hello: argus.example.org
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: mail
    email_configs:
      - to: 'oncall@example.org, lead@example.org'
        send_resolved: true
        tls_config: {{ca_file: ca.pem, server_name: localhost}}
        headers:
          X-Alert-Group: '{{{{ .GroupLabels.alertname }}}}'
"#,
        smtp.port
    );
    let h = start_t0(tmp.path(), &am);
    h.notifier.send(vec![Alert {
        labels: Labels::from_pairs([("alertname", "DiskFull"), ("host", "db<1>")]),
        annotations: BTreeMap::from([("summary".to_string(), "disk <b>full</b>".to_string())]),
        starts_at: T0,
        ends_at: T0 + 3_600_000,
        generator_url: "http://argus.test/graph".into(),
    }]);
    h.advance(0).await;
    let m = until("the email", || smtp.taken().pop()).await;
    assert!(m.tls, "STARTTLS was required");
    assert_eq!(m.auth, Some(("argus".to_string(), "s3cret".to_string())));
    assert_eq!(m.helo, "argus.example.org");
    assert_eq!(m.from, "argus@example.org");
    assert_eq!(m.to, vec!["oncall@example.org", "lead@example.org"]);
    // Quoted-printable parts read back as text.
    let d = &m.data.replace("=\r\n", "").replace("=3D", "=");
    assert!(
        d.contains("Subject: [FIRING:1] DiskFull (db<1>)\r\n"),
        "{d}"
    );
    assert!(d.contains("X-Alert-Group: DiskFull\r\n"), "{d}");
    assert!(d.contains("From: argus@example.org\r\n"), "{d}");
    assert!(
        d.contains("To: oncall@example.org, lead@example.org\r\n"),
        "{d}"
    );
    assert!(d.contains("Content-Type: multipart/alternative"), "{d}");
    assert!(d.contains("Content-Type: text/plain; charset=utf-8"), "{d}");
    assert!(d.contains("Content-Type: text/html; charset=utf-8"), "{d}");
    // The text part lists the alert as is; the HTML part escapes it.
    assert!(d.contains(" - summary = disk <b>full</b>"), "{d}");
    assert!(d.contains("summary = disk &lt;b&gt;full&lt;/b&gt;"), "{d}");
    assert!(!d.contains("s3cret"));
    // The sink has the message before argus has closed the session and
    // logged the delivery; the resolve is decided against that log.
    h.logged(1).await;

    h.notifier.send(vec![Alert {
        labels: Labels::from_pairs([("alertname", "DiskFull"), ("host", "db<1>")]),
        annotations: BTreeMap::new(),
        starts_at: T0,
        ends_at: T0 + 10_000,
        generator_url: String::new(),
    }]);
    h.advance(60_000).await;
    let m = until("the resolved email", || smtp.taken().get(1).cloned()).await;
    assert!(
        m.data.contains("Subject: [RESOLVED] DiskFull (db<1>)\r\n"),
        "{}",
        m.data
    );
    h.stop().await;
}

/// The whole chain with a real argus process and the shipped routing
/// (alerting/): a scraped target, rules firing after their `for`, the
/// messages at the Slack, PagerDuty and SMTP stand-ins, then the resolve.
#[test]
fn full_chain_from_scrape_to_slack_pagerduty_and_email_with_the_shipped_routing() {
    let target = Target::text("app_errors 5\napp_notes 1\n");
    let slack = Recorder::start();
    slack.respond(200, "text/plain", "ok", &[]);
    let pd = Recorder::start();
    pd.respond(202, "application/json", r#"{"status":"success"}"#, &[]);
    let smtp = smtp::SmtpSink::start();
    let tmp = tempfile::tempdir().unwrap();
    let routing = tmp.path().join("alerting");
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting"),
        &routing,
    );
    std::fs::create_dir_all(routing.join("secrets")).unwrap();
    for (f, v) in [
        (
            "slack_api_url",
            format!("http://{}/services/T0/B0/X", slack.addr()),
        ),
        ("pagerduty_routing_key", "PDKEY123".to_string()),
        ("smtp_password", "mailpass".to_string()),
        ("deadman_url", format!("http://{}/deadman", slack.addr())),
        ("smtp-ca.pem", smtp.ca_pem.clone()),
    ] {
        std::fs::write(routing.join("secrets").join(f), v).unwrap();
    }
    // Point the shipped file at the stand-ins and shorten its timers.
    let am = std::fs::read_to_string(routing.join("alertmanager.yml"))
        .unwrap()
        .replace("smtp.example.org:587", &format!("127.0.0.1:{}", smtp.port))
        .replace(
            "  smtp_require_tls: true\n",
            &format!(
                "  smtp_require_tls: true\n  smtp_tls_config: {{ca_file: secrets/smtp-ca.pem, server_name: localhost}}\n  pagerduty_url: http://{}/v2/enqueue\n",
                pd.addr()
            ),
        )
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 2s");
    std::fs::write(routing.join("alertmanager.yml"), am).unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        r#"groups:
  - name: app
    interval: 1s
    rules:
      - alert: AppErrors
        expr: app_errors > 1
        for: 2s
        labels: {severity: critical, service: api}
        annotations:
          summary: 'api fails: {{ $value }} errors'
          runbook: https://runbooks.example/app-errors
      - alert: AppNote
        expr: app_notes > 0
        labels: {severity: info, service: api}
        annotations: {summary: a note}
"#,
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alerting/alertmanager.yml\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
        target.addr()
    );
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    let t0 = Instant::now();
    let page = wait_for(30, "the Slack page", || {
        bodies(&slack, "/services/T0/B0/X")
            .into_iter()
            .find(|b| b["channel"] == "#alerts-critical")
    });
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "sent before its `for`"
    );
    let att = &page["attachments"][0];
    assert_eq!(att["title"], "[FIRING:1] AppErrors api");
    assert_eq!(att["color"], "danger");
    let text = att["text"].as_str().unwrap();
    assert!(text.contains("api fails: 5 errors"), "{text}");
    assert!(
        text.contains("Runbook: https://runbooks.example/app-errors"),
        "{text}"
    );
    let ev = wait_for(20, "the PagerDuty trigger", || {
        bodies(&pd, "/v2/enqueue").pop()
    });
    assert_eq!(ev["routing_key"], "PDKEY123");
    assert_eq!(ev["event_action"], "trigger");
    assert_eq!(ev["payload"]["summary"], "[FIRING:1] AppErrors api");
    assert_eq!(ev["payload"]["severity"], "critical");
    assert_eq!(
        ev["payload"]["custom_details"]["runbooks"],
        "https://runbooks.example/app-errors\n"
    );
    let mail = wait_for(20, "the info email", || smtp.taken().pop());
    assert!(mail.tls);
    assert_eq!(mail.auth, Some(("argus".into(), "mailpass".into())));
    assert_eq!(mail.to, vec!["team@example.org"]);
    assert!(
        mail.data.contains("Subject: [FIRING:1] AppNote api\r\n"),
        "{}",
        mail.data
    );

    target.set_text("app_errors 0\napp_notes 1\n");
    let resolved = wait_for(30, "the Slack resolve", || {
        bodies(&slack, "/services/T0/B0/X")
            .into_iter()
            .find(|b| b["attachments"][0]["title"] == "[RESOLVED] AppErrors api")
    });
    assert_eq!(resolved["attachments"][0]["color"], "good");
    let ev = wait_for(20, "the PagerDuty resolve", || {
        bodies(&pd, "/v2/enqueue")
            .into_iter()
            .find(|b| b["event_action"] == "resolve")
    });
    assert_eq!(
        ev["dedup_key"],
        group_key_hash("{}/{severity=\"critical\"}:{alertname=\"AppErrors\", service=\"api\"}")
    );
    // One page, one resolve; the info alert mailed once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(bodies(&pd, "/v2/enqueue").len(), 2);
    assert_eq!(smtp.taken().len(), 1);
    let log = a.log();
    for secret in ["PDKEY123", "mailpass", "/services/T0/B0/X"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_intervals_mute_and_activate_routes_in_their_zone() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    // T0 is Friday 2027-01-15 08:00 UTC, 09:00 in Berlin.
    let am = format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  routes:
    - matchers: ['alertname="Weekend"']
      receiver: hook
      active_time_intervals: [weekends]
    - matchers: ['alertname="Standup"']
      receiver: hook
      mute_time_intervals: [standup]
time_intervals:
  - name: standup
    time_intervals:
      - times: [{{start_time: '09:00', end_time: '09:30'}}]
        weekdays: ['monday:friday']
        location: Europe/Berlin
  - name: weekends
    time_intervals:
      - weekdays: ['saturday', 'sunday']
receivers:
  - name: hook
    webhook_configs: [{{url: 'http://{}/h'}}]
"#,
        hook.addr()
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("Standup", &[], T0 + 7_200_000);
    h.fire("Weekend", &[], T0 + 7_200_000);
    h.fire("Always", &[], T0 + 7_200_000);
    h.advance(0).await;
    until("the unmuted alert", || bodies(&hook, "/h").pop()).await;
    for _ in 0..29 {
        h.advance(60_000).await;
    }
    let names = |hook: &Recorder| -> Vec<String> {
        bodies(hook, "/h")
            .iter()
            .map(|b| b["groupLabels"]["alertname"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&hook),
        vec!["Always"],
        "muted until 09:30 Berlin time"
    );
    h.advance(60_000).await;
    until("the stand-up alert at 09:30", || {
        (names(&hook).len() == 2).then_some(())
    })
    .await;
    assert_eq!(names(&hook)[1], "Standup");
    // Weekend is active only on weekends: Friday sends nothing.
    h.advance(60_000).await;
    assert!(!names(&hook).contains(&"Weekend".to_string()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_implicit_tls() {
    let smtp = smtp::SmtpSink::start_implicit_tls();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), &smtp.ca_pem).unwrap();
    let am = format!(
        r#"
route:
  receiver: mail
  group_wait: 0s
receivers:
  - name: mail
    email_configs:
      - to: oncall@example.org
        from: argus@example.org
        smarthost: 127.0.0.1:{}
        force_implicit_tls: true
        tls_config: {{ca_file: ca.pem, server_name: localhost}}
        text: 'plain {{{{ .Status }}}}'
        html: ''
"#,
        smtp.port
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("Tls", &[], T0 + 3_600_000);
    h.advance(0).await;
    let m = until("the email", || smtp.taken().pop()).await;
    assert!(m.tls);
    assert_eq!(m.auth, None);
    assert!(
        m.data.contains("Content-Type: text/plain; charset=utf-8"),
        "{}",
        m.data
    );
    assert!(m.data.contains("plain firing"), "{}", m.data);
    assert!(!m.data.contains("text/html"), "{}", m.data);
    h.stop().await;
}

/// A peer's hold, on simulated time: a notification queued while a peer
/// that delivers first is live waits the hold; if the peer's log entry
/// arrives meanwhile (a heartbeat) it is not sent, otherwise it is sent
/// when the hold ends. Peers also converge on silences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_notifications_go_out_only_if_no_peer_delivered_them() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    let am = format!(
        "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1m\n  repeat_interval: 4h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
        hook.addr()
    );
    let h = start_t0(tmp.path(), &am);
    // One live peer before this one, timeout 15 s.
    h.notifier.set_peer_hold(15_000, i64::MIN);
    // Another instance (the "peer"), to produce the log entry it would
    // send in a heartbeat.
    let ptmp = tempfile::tempdir().unwrap();
    let peer = start_t0(ptmp.path(), &am);
    h.fire("Delivered", &[], T0 + 3_600_000);
    peer.fire("Delivered", &[], T0 + 3_600_000);
    peer.advance(1).await;
    until("the peer's delivery", || {
        (bodies(&hook, "/hook").len() == 1).then_some(())
    })
    .await;
    h.advance(1).await;
    h.advance(10_000).await;
    assert_eq!(bodies(&hook, "/hook").len(), 1, "held");
    // The heartbeat: what the peer logged and silenced.
    let sil = peer
        .notifier
        .set_silence(argus::notify::Silence {
            id: String::new(),
            matchers: vec![
                argus::model::Matcher::new(argus::model::MatchOp::Equal, "team", "db").unwrap(),
            ],
            starts_at: T0,
            ends_at: T0 + 3_600_000,
            updated_at: 0,
            created_by: "peer".into(),
            comment: "maintenance".into(),
        })
        .unwrap();
    let (entries, silences, dups) = h
        .notifier
        .merge_peer_sync(peer.notifier.peer_sync(None), None);
    assert_eq!((entries, silences, dups), (1, 1, 0));
    assert!(h.notifier.silences().iter().any(|s| s.id == sil));
    h.advance(6_000).await;
    assert_eq!(bodies(&hook, "/hook").len(), 1, "superseded, not sent");
    // No peer delivers this one: it goes out when the hold ends.
    h.fire("OnlyHere", &[], T0 + 3_600_000);
    h.advance(1).await;
    h.advance(14_000).await;
    assert_eq!(bodies(&hook, "/hook").len(), 1, "still held");
    h.advance(2_000).await;
    let got = until("the held notification", || {
        let b = bodies(&hook, "/hook");
        (b.len() == 2).then_some(b)
    })
    .await;
    assert_eq!(got[1]["groupLabels"]["alertname"], "OnlyHere");
    peer.stop().await;
    h.stop().await;
}

/// Discord and Microsoft Teams get Alertmanager's payloads: a Discord
/// webhook message with one embed coloured by status, a Teams
/// MessageCard with its theme colour, a Power Automate adaptive card; the URLs inline or from a file;
/// resolved notifications follow; a receiver that gives neither URL or
/// both is refused with Alertmanager's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_msteams_and_msteamsv2_receive_alertmanagers_payloads() {
    let discord = Recorder::start();
    discord.respond(204, "text/plain", "", &[]);
    let teams = Recorder::start();
    teams.respond(200, "text/plain", "1", &[]);
    let flow = Recorder::start();
    flow.respond(202, "text/plain", "", &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("teams-url"),
        format!("http://{}/webhookb2/abc\n", teams.addr()),
    )
    .unwrap();
    let am = format!(
        r##"
route:
  receiver: chat
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: chat
    discord_configs:
      - webhook_url: http://{discord}/api/webhooks/1/tok
        username: argus-bot
        avatar_url: https://example.org/a.png
    msteams_configs:
      - webhook_url_file: teams-url
        text: '{{{{ .CommonAnnotations.summary }}}}'
    msteamsv2_configs:
      - webhook_url: http://{flow}/workflows/xyz/triggers/manual/paths/invoke?sig=s3cret
        title: 'Disk {{{{ .Status }}}}'
"##,
        discord = discord.addr(),
        flow = flow.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("DiskFull", &[("host", "db1")], T0 + 120_000);
    h.advance(0).await;
    let got = until("the Discord message", || {
        bodies(&discord, "/api/webhooks/1/tok").pop()
    })
    .await;
    assert_eq!(got["content"], "");
    assert_eq!(got["username"], "argus-bot");
    assert_eq!(got["avatar_url"], "https://example.org/a.png");
    let embeds = got["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    assert_eq!(embeds[0]["title"], "[FIRING:1] DiskFull (db1)");
    assert_eq!(embeds[0]["color"], 0x992D22);
    let text = embeds[0]["description"].as_str().unwrap();
    assert!(text.starts_with("1 firing:\nLabels:\n"), "{text}");
    assert!(text.contains(" - host = db1"), "{text}");
    let (head, _) = discord.taken().remove(0);
    assert_eq!(header(&head, "content-type"), Some("application/json"));

    let got = until("the Teams card", || bodies(&teams, "/webhookb2/abc").pop()).await;
    assert_eq!(
        got,
        json!({
            "@context": "http://schema.org/extensions",
            "type": "MessageCard",
            "title": "[FIRING:1] DiskFull (db1)",
            "summary": "[FIRING:1] DiskFull (db1)",
            "text": "DiskFull is bad",
            "themeColor": "8C1A1A",
        })
    );

    let got = until("the Power Automate card", || {
        bodies(
            &flow,
            "/workflows/xyz/triggers/manual/paths/invoke?sig=s3cret",
        )
        .pop()
    })
    .await;
    assert_eq!(got["type"], "message");
    let card = &got["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["contentUrl"], Value::Null);
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    assert_eq!(card["content"]["version"], "1.2");
    assert_eq!(card["content"]["msteams"]["width"], "full");
    let blocks = card["content"]["body"].as_array().unwrap();
    assert_eq!(blocks[0]["text"], "Disk firing");
    assert_eq!(blocks[0]["color"], "Attention");
    assert_eq!(blocks[0]["style"], "heading");
    assert!(
        blocks[1]["text"].as_str().unwrap().starts_with("1 firing:"),
        "{got}"
    );

    // Resolved two minutes later: all send it.
    h.advance(180_000).await;
    let got = until("the resolved Discord message", || {
        bodies(&discord, "/api/webhooks/1/tok").pop()
    })
    .await;
    assert_eq!(got["embeds"][0]["color"], 0x2ECC71);
    assert_eq!(got["embeds"][0]["title"], "[RESOLVED] DiskFull (db1)");
    let got = until("the resolved Teams card", || {
        bodies(&teams, "/webhookb2/abc").pop()
    })
    .await;
    assert_eq!(got["themeColor"], "2DC72D");
    let got = until("the resolved Power Automate card", || {
        bodies(
            &flow,
            "/workflows/xyz/triggers/manual/paths/invoke?sig=s3cret",
        )
        .pop()
    })
    .await;
    assert_eq!(got["attachments"][0]["content"]["body"][0]["color"], "Good");
    h.stop().await;

    for (conf, want) in [
        (
            "discord_configs: [{}]",
            "receivers[0].discord_configs[0]: one of webhook_url or webhook_url_file must be configured",
        ),
        (
            "msteams_configs: [{webhook_url: 'http://h/x', webhook_url_file: f}]",
            "receivers[0].msteams_configs[0]: at most one of webhook_url & webhook_url_file must be configured",
        ),
        (
            "discord_configs: [{webhook_url: 'ftp://h/x'}]",
            "receivers[0].discord_configs[0].webhook_url:",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Telegram gets the Bot API call Alertmanager makes: `sendMessage` under
/// `/bot<token>/`, every parameter a JSON string, HTML parse mode with
/// the message HTML-escaped; the token from `global`, the chat id from a
/// file; a 429 is retried after the `retry_after` Telegram gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_receives_the_bot_api_call() {
    let bot = Recorder::start();
    bot.respond(
        429,
        "application/json",
        r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 30","parameters":{"retry_after":30}}"#,
        &[],
    );
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("token"), "123:ABC\n").unwrap();
    std::fs::write(tmp.path().join("chat"), "-1001234\n").unwrap();
    let am = format!(
        r##"
global:
  telegram_api_url: http://{bot}
  telegram_bot_token_file: token
route:
  receiver: tg
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: tg
    telegram_configs:
      - chat_id_file: chat
        message_thread_id: 7
        disable_notifications: true
        message: '{{{{ .CommonAnnotations.summary }}}} <b>{{{{ .Status }}}}</b> {{{{ "a<b" }}}}'
"##,
        bot = bot.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("QueueStuck", &[], T0 + 3_600_000);
    h.advance(0).await;
    let first = until("the first, rate-limited call", || {
        bodies(&bot, "/bot123:ABC/sendMessage").pop()
    })
    .await;
    bot.respond(
        200,
        "application/json",
        r#"{"ok":true,"result":{"message_id":1,"chat":{"id":-1001234}}}"#,
        &[],
    );
    // Not before the 30 s Telegram asked for.
    h.advance(20_000).await;
    assert_eq!(bot.taken().len(), 1);
    h.advance(15_000).await;
    let got = until("the retried call", || {
        let all = bodies(&bot, "/bot123:ABC/sendMessage");
        (all.len() == 2).then(|| all[1].clone())
    })
    .await;
    assert_eq!(got, first);
    assert_eq!(
        got,
        json!({
            "chat_id": "-1001234",
            "text": "QueueStuck is bad <b>firing</b> a&lt;b",
            "parse_mode": "HTML",
            "disable_web_page_preview": "true",
            "disable_notification": "true",
            "message_thread_id": "7",
        })
    );
    h.stop().await;

    for (conf, want) in [
        (
            "telegram_configs: [{chat_id: 1}]",
            "missing bot_token on telegram_config",
        ),
        (
            "telegram_configs: [{bot_token: t}]",
            "missing chat_id or chat_id_file on telegram_config",
        ),
        (
            "telegram_configs: [{bot_token: t, chat_id: 1, parse_mode: Plain}]",
            "unknown parse_mode on telegram_config",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Webex gets Alertmanager's message: markdown and the room id, posted
/// with the bot token as a bearer; a message past Webex's 7,439 bytes is
/// cut; a config without a room or a token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webex_receives_markdown_with_the_bot_token() {
    let webex = Recorder::start();
    webex.respond(200, "application/json", r#"{"id":"m1"}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("webex-token"), "B0T\n").unwrap();
    let am = format!(
        r##"
global:
  webex_api_url: http://{webex}/v1/messages
route:
  receiver: wx
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: wx
    webex_configs:
      - room_id: 'room-{{{{ .GroupLabels.alertname }}}}'
        http_config:
          authorization: {{credentials_file: webex-token}}
      - room_id: big
        message: '{{{{ printf "%7437s" "" }}}}ééé'
        http_config:
          authorization: {{credentials: B0T}}
"##,
        webex = webex.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("CertExpiring", &[], T0 + 3_600_000);
    h.advance(0).await;
    let got = until("both Webex messages", || {
        let all = bodies(&webex, "/v1/messages");
        (all.len() == 2).then_some(all)
    })
    .await;
    let small = got
        .iter()
        .find(|b| b["roomId"] == "room-CertExpiring")
        .unwrap_or_else(|| panic!("{got:?}"));
    let md = small["markdown"].as_str().unwrap();
    assert!(md.starts_with("[FIRING:1] CertExpiring\n1 firing:"), "{md}");
    let big = got.iter().find(|b| b["roomId"] == "big").unwrap();
    let md = big["markdown"].as_str().unwrap();
    assert_eq!(md.len(), 7439);
    assert!(md.ends_with('…'), "cut with a marker");
    for (head, _) in webex.taken() {
        assert_eq!(header(&head, "authorization"), Some("Bearer B0T"));
    }
    h.stop().await;

    for (conf, want) in [
        (
            "webex_configs: [{http_config: {authorization: {credentials: t}}}]",
            "missing room_id on webex_config",
        ),
        (
            "webex_configs: [{room_id: r}]",
            "missing webex_configs.http_config.authorization",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Requests with `method` to `path` (query included), parsed as JSON.
fn calls(r: &Recorder, method: &str, path: &str) -> Vec<Value> {
    r.taken()
        .into_iter()
        .filter(|(h, _)| h.starts_with(&format!("{method} {path} ")))
        .map(|(_, b)| serde_json::from_slice(&b).unwrap())
        .collect()
}

/// OpsGenie gets Alertmanager's Alert API calls: the alert created under
/// the group's alias with the key from a file as `GenieKey`, teams split
/// into responders, details from the common labels and the config, the
/// message cut to 130 characters; with `update_alerts` its message and
/// description updated by PUT; closed by alias when resolved. VictorOps
/// gets its REST event under the global key and the routing key, with
/// custom fields, and `RECOVERY` when resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opsgenie_and_victorops_receive_alertmanagers_calls() {
    let og = Recorder::start();
    og.respond(
        202,
        "application/json",
        r#"{"result":"Request will be processed"}"#,
        &[],
    );
    let vo = Recorder::start();
    vo.respond(200, "application/json", r#"{"result":"success"}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("genie-key"), "G3N1E\n").unwrap();
    let am = format!(
        r##"
global:
  opsgenie_api_url: http://{og}/
  victorops_api_url: http://{vo}/integrations/generic/20131114/alert
  victorops_api_key: V1CT0R
route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: oncall
    opsgenie_configs:
      - api_key_file: genie-key
        update_alerts: true
        message: '{{{{ .CommonLabels.alertname }}}} {{{{ printf "%200s" "" }}}}'
        tags: 'db,{{{{ .CommonLabels.severity }}}},'
        priority: P1
        details:
          runbook: 'https://runbooks.example/{{{{ .CommonLabels.alertname }}}}'
        responders:
          - name: 'dba,storage'
            type: teams
          - username: 'oncall@example.com'
            type: user
          - id: '{{{{ .CommonLabels.missing }}}}'
            type: '{{{{ .CommonLabels.missing }}}}'
    victorops_configs:
      - routing_key: 'db-{{{{ .CommonLabels.severity }}}}'
        message_type: WARNING
        custom_fields:
          team: storage
"##,
        og = og.addr(),
        vo = vo.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("DiskFull", &[("severity", "page")], T0 + 120_000);
    h.advance(0).await;
    let alias = group_key_hash("{}:{alertname=\"DiskFull\"}");
    let created = until("the OpsGenie alert", || {
        calls(&og, "POST", "/v2/alerts").pop()
    })
    .await;
    assert_eq!(created["alias"], alias.as_str());
    let message = created["message"].as_str().unwrap();
    assert_eq!(message.chars().count(), 130, "cut to OpsGenie's limit");
    assert!(message.starts_with("DiskFull ") && message.ends_with('…'));
    assert_eq!(
        created["details"],
        json!({"alertname": "DiskFull", "severity": "page", "runbook": "https://runbooks.example/DiskFull"})
    );
    assert_eq!(
        created["responders"],
        json!([
            {"name": "dba", "type": "team"},
            {"name": "storage", "type": "team"},
            {"username": "oncall@example.com", "type": "user"},
        ])
    );
    assert_eq!(created["tags"], json!(["db", "page"]));
    assert_eq!(created["priority"], "P1");
    assert_eq!(
        created["source"],
        "http://argus.test:9095/api/v2/alerts?receiver=oncall"
    );
    let description = created["description"].as_str().unwrap();
    assert!(
        description.starts_with("DiskFull is bad\n1 firing:\nLabels:"),
        "{description}"
    );
    let updates = until("the two updates", || {
        let m = calls(
            &og,
            "PUT",
            &format!("/v2/alerts/{alias}/message?identifierType=alias"),
        );
        let d = calls(
            &og,
            "PUT",
            &format!("/v2/alerts/{alias}/description?identifierType=alias"),
        );
        (!m.is_empty() && !d.is_empty()).then(|| (m[0].clone(), d[0].clone()))
    })
    .await;
    assert_eq!(updates.0, json!({"message": message}));
    assert_eq!(updates.1, json!({"description": description}));
    // Created first, then updated, each with the key.
    let heads: Vec<String> = og.taken().into_iter().map(|(h, _)| h).collect();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(heads[0].starts_with("POST /v2/alerts "));
    for head in &heads {
        assert_eq!(header(head, "authorization"), Some("GenieKey G3N1E"));
        assert_eq!(header(head, "content-type"), Some("application/json"));
    }

    let event = until("the VictorOps event", || {
        calls(
            &vo,
            "POST",
            "/integrations/generic/20131114/alert/V1CT0R/db-page",
        )
        .pop()
    })
    .await;
    assert_eq!(event["message_type"], "WARNING");
    assert_eq!(event["entity_id"], alias.as_str());
    assert_eq!(event["entity_display_name"], "[FIRING:1] DiskFull (page)");
    assert_eq!(event["monitoring_tool"], "argus");
    assert_eq!(event["team"], "storage");
    assert!(
        event["state_message"]
            .as_str()
            .unwrap()
            .starts_with("DiskFull is bad\n1 firing:"),
        "{event}"
    );

    // Resolved: OpsGenie closes the alert by alias, VictorOps recovers.
    h.logged(2).await;
    h.advance(180_000).await;
    let closed = until("the OpsGenie close", || {
        calls(
            &og,
            "POST",
            &format!("/v2/alerts/{alias}/close?identifierType=alias"),
        )
        .pop()
    })
    .await;
    assert_eq!(
        closed,
        json!({"source": "http://argus.test:9095/api/v2/alerts?receiver=oncall"})
    );
    let recovery = until("the VictorOps recovery", || {
        let all = calls(
            &vo,
            "POST",
            "/integrations/generic/20131114/alert/V1CT0R/db-page",
        );
        (all.len() == 2).then(|| all[1].clone())
    })
    .await;
    assert_eq!(recovery["message_type"], "RECOVERY");
    assert_eq!(recovery["entity_id"], alias.as_str());
    h.stop().await;

    for (conf, want) in [
        (
            "opsgenie_configs: [{}]",
            "no global OpsGenie API Key set either inline or in a file",
        ),
        (
            "opsgenie_configs: [{api_key: k, api_key_file: f}]",
            "at most one of api_key & api_key_file must be configured",
        ),
        (
            "opsgenie_configs: [{api_key: k, responders: [{type: team}]}]",
            "has to have at least one of id, username or name specified",
        ),
        (
            "opsgenie_configs: [{api_key: k, responders: [{name: n, type: group}]}]",
            "type does not match valid options",
        ),
        (
            "victorops_configs: [{api_key: k}]",
            "missing Routing key in VictorOps config",
        ),
        (
            "victorops_configs: [{routing_key: r}]",
            "no global VictorOps API Key set",
        ),
        (
            "victorops_configs: [{api_key: k, routing_key: r, custom_fields: {entity_id: x}}]",
            "victorOps config contains custom field entity_id",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Amazon SNS gets `Publish` calls signed with Signature V4 at the time of
/// each try (the signature itself is checked against AWS's and botocore's
/// in the unit tests): to a FIFO topic with the group key's hash as group
/// and deduplication id, the subject and the attributes templated; to a
/// phone number with the message cut to 1,600 characters and marked
/// `truncated`. AWS's `Throttling` error (a 400) is retried, another 400
/// is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_receives_signed_publish_calls() {
    let aws = Recorder::start();
    aws.respond(
        200,
        "text/xml",
        "<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult></PublishResponse>",
        &[],
    );
    let tmp = tempfile::tempdir().unwrap();
    let am = format!(
        r##"
route:
  receiver: sns
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: sns
    sns_configs:
      - api_url: http://{aws}/
        topic_arn: 'arn:aws:sns:us-east-2:123456789012:alerts.fifo'
        sigv4: {{access_key: AKID, secret_key: SECRET}}
        subject: '{{{{ .CommonLabels.alertname }}}} for {{{{ .CommonLabels.team }}}}'
        attributes:
          severity: '{{{{ .CommonLabels.severity }}}}'
      - api_url: http://{aws}/sms
        phone_number: '+15555550100'
        sigv4: {{region: eu-west-1, access_key: AKID, secret_key: SECRET}}
        message: '{{{{ printf "%2000s" "x" }}}}'
"##,
        aws = aws.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire(
        "QueueStuck",
        &[("team", "infra"), ("severity", "page")],
        T0 + 3_600_000,
    );
    h.advance(0).await;
    let form = |body: &[u8]| -> BTreeMap<String, String> {
        let dec = |s: &str| {
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(if b[i] == b'+' { b' ' } else { b[i] });
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        };
        String::from_utf8_lossy(body)
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (dec(k), dec(v)))
            .collect()
    };
    let sent = until("both publishes", || {
        let all = aws.taken();
        (all.len() == 2).then_some(all)
    })
    .await;
    let (topic_head, topic_body) = sent
        .iter()
        .find(|(h, _)| h.starts_with("POST / "))
        .unwrap()
        .clone();
    let (sms_head, sms_body) = sent
        .iter()
        .find(|(h, _)| h.starts_with("POST /sms "))
        .unwrap()
        .clone();
    let topic = form(&topic_body);
    let group = group_key_hash("{}:{alertname=\"QueueStuck\"}");
    assert_eq!(topic["Action"], "Publish");
    assert_eq!(topic["Version"], "2010-03-31");
    assert_eq!(
        topic["TopicArn"],
        "arn:aws:sns:us-east-2:123456789012:alerts.fifo"
    );
    assert_eq!(topic["MessageGroupId"], group);
    assert_eq!(topic["MessageDeduplicationId"], group);
    assert_eq!(topic["Subject"], "QueueStuck for infra");
    assert!(
        topic["Message"].starts_with("[FIRING:1] QueueStuck"),
        "{topic:?}"
    );
    assert_eq!(topic["MessageAttributes.entry.1.Name"], "severity");
    assert_eq!(topic["MessageAttributes.entry.1.Value.DataType"], "String");
    assert_eq!(topic["MessageAttributes.entry.1.Value.StringValue"], "page");
    assert_eq!(
        header(&topic_head, "content-type"),
        Some("application/x-www-form-urlencoded; charset=utf-8")
    );
    assert_eq!(header(&topic_head, "x-amz-date"), Some("20270115T080000Z"));
    let auth = header(&topic_head, "authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20270115/us-east-2/sns/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="),
        "the region from the ARN: {auth}"
    );
    let sms = form(&sms_body);
    assert_eq!(sms["PhoneNumber"], "+15555550100");
    assert_eq!(sms["Message"].chars().count(), 1600);
    assert_eq!(sms["MessageAttributes.entry.1.Name"], "truncated");
    assert_eq!(sms["MessageAttributes.entry.1.Value.StringValue"], "true");
    assert!(
        header(&sms_head, "authorization")
            .unwrap()
            .contains("/eu-west-1/sns/aws4_request"),
        "the region from sigv4"
    );

    // Throttled: tried again, signed anew at its own time.
    aws.respond(
        400,
        "text/xml",
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
        &[],
    );
    h.fire(
        "DiskFull",
        &[("team", "db"), ("severity", "page")],
        T0 + 3_600_000,
    );
    h.advance(0).await;
    until("the throttled tries", || {
        (aws.taken().len() >= 4).then_some(())
    })
    .await;
    aws.respond(200, "text/xml", "<PublishResponse/>", &[]);
    let mut dates = Vec::new();
    for _ in 0..20 {
        h.advance(5_000).await;
        let taken = aws.taken();
        if taken.len() >= 6 {
            dates = taken
                .iter()
                .map(|(h, _)| header(h, "x-amz-date").unwrap().to_string())
                .collect();
            break;
        }
    }
    assert!(dates.len() >= 6, "retried after the throttling");
    assert_ne!(
        dates[0],
        dates[dates.len() - 1],
        "each try signed at its time"
    );

    // Another client error is not retried.
    aws.respond(
        400,
        "text/xml",
        "<ErrorResponse><Error><Code>InvalidParameter</Code><Message>Invalid parameter: TopicArn</Message></Error></ErrorResponse>",
        &[],
    );
    let before = aws.taken().len();
    h.fire("CpuHot", &[("team", "web")], T0 + 3_600_000);
    h.advance(0).await;
    until("the refused publishes", || {
        (aws.taken().len() == before + 2).then_some(())
    })
    .await;
    for _ in 0..6 {
        h.advance(10_000).await;
    }
    assert_eq!(aws.taken().len(), before + 2, "not retried");
    h.stop().await;

    for (conf, want) in [
        (
            "sns_configs: [{sigv4: {access_key: a, secret_key: s}}]",
            "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config",
        ),
        (
            "sns_configs: [{topic_arn: t, phone_number: p}]",
            "must provide either a Target ARN, Topic ARN, or Phone Number for SNS config",
        ),
        (
            "sns_configs: [{topic_arn: t, sigv4: {access_key: a}}]",
            "must provide a AWS SigV4 Access key and Secret Key",
        ),
        (
            "sns_configs: [{topic_arn: t, sigv4: {profile: prod}}]",
            "sigv4.profile is not supported by argus",
        ),
        (
            "sns_configs: [{topic_arn: t, sigv4: {role_arn: 'arn:aws:iam::1:role/x'}}]",
            "sigv4.role_arn is not supported by argus",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Rocket.Chat gets Alertmanager's `chat.postMessage`: the token and user
/// id from `global` (the id from a file) as headers, one attachment with
/// the title, link, text, colour, fields (each field's `short` or the
/// config's) and buttons; `"success": false` fails without a retry, an
/// answer that is not JSON is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocketchat_receives_the_post_message_call() {
    let rc = Recorder::start();
    rc.respond(200, "application/json", r#"{"success":true}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("rc-user"), "US3R\n").unwrap();
    let am = format!(
        r##"
global:
  rocketchat_api_url: http://{rc}
  rocketchat_token: T0KEN
  rocketchat_token_id_file: rc-user
route:
  receiver: rc
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: rc
    rocketchat_configs:
      - channel: '#ops-{{{{ .CommonLabels.team }}}}'
        emoji: ':fire:'
        short_fields: true
        fields:
          - title: Team
            value: '{{{{ .CommonLabels.team }}}}'
          - title: Runbook
            value: 'https://runbooks.example/{{{{ .CommonLabels.alertname }}}}'
            short: false
        actions:
          - text: Silence
            url: 'http://argus.test:9095/silence'
"##,
        rc = rc.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("QueueStuck", &[("team", "infra")], T0 + 3_600_000);
    h.advance(0).await;
    let posted = until("the message", || {
        calls(&rc, "POST", "/api/v1/chat.postMessage").pop()
    })
    .await;
    let (head, _) = rc.taken().remove(0);
    assert_eq!(header(&head, "x-auth-token"), Some("T0KEN"));
    assert_eq!(header(&head, "x-user-id"), Some("US3R"));
    assert_eq!(posted["channel"], "#ops-infra");
    assert_eq!(posted["emoji"], ":fire:");
    let att = &posted["attachments"][0];
    assert_eq!(att["title"], "[FIRING:1] QueueStuck (infra)");
    assert_eq!(
        att["title_link"],
        "http://argus.test:9095/api/v2/alerts?receiver=rc"
    );
    assert_eq!(att["color"], "red");
    assert!(
        att["text"].as_str().unwrap().starts_with("1 firing:"),
        "{att}"
    );
    assert_eq!(
        att["fields"],
        json!([
            {"short": true, "title": "Team", "value": "infra"},
            {"short": false, "title": "Runbook", "value": "https://runbooks.example/QueueStuck"},
        ])
    );
    assert_eq!(
        att["actions"],
        json!([{"type": "button", "text": "Silence", "url": "http://argus.test:9095/silence", "is_webview": false, "msg_in_chat_window": false}])
    );

    // An error in a 200 answer is not retried.
    rc.respond(
        200,
        "application/json",
        r#"{"success":false,"error":"error-invalid-channel"}"#,
        &[],
    );
    h.fire("DiskFull", &[("team", "db")], T0 + 3_600_000);
    h.advance(0).await;
    until("the refused message", || {
        (calls(&rc, "POST", "/api/v1/chat.postMessage").len() == 2).then_some(())
    })
    .await;
    for _ in 0..6 {
        h.advance(10_000).await;
    }
    assert_eq!(calls(&rc, "POST", "/api/v1/chat.postMessage").len(), 2);

    // An answer that is not Rocket.Chat's is retried.
    rc.respond(200, "text/html", "<html>proxy login</html>", &[]);
    h.fire("CpuHot", &[("team", "web")], T0 + 3_600_000);
    h.advance(0).await;
    until("the first try", || {
        (calls(&rc, "POST", "/api/v1/chat.postMessage").len() == 3).then_some(())
    })
    .await;
    rc.respond(200, "application/json", r#"{"success":true}"#, &[]);
    let mut delivered = false;
    for _ in 0..20 {
        h.advance(5_000).await;
        if calls(&rc, "POST", "/api/v1/chat.postMessage").len() >= 4 {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "retried");
    h.stop().await;

    for (conf, want) in [
        (
            "rocketchat_configs: [{token: t}]",
            "no global Rocketchat TokenID set either inline or in a file",
        ),
        (
            "rocketchat_configs: [{token_id: i}]",
            "no global Rocketchat Token set either inline or in a file",
        ),
        (
            "rocketchat_configs: [{token_id: i, token: t, token_file: f}]",
            "at most one of token & token_file must be configured",
        ),
        (
            "rocketchat_configs: [{token_id: i, token: t, api_url: 'ftp://x'}]",
            "unsupported scheme",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// WeChat Work gets Alertmanager's two calls: an access token asked for
/// with the corporation id and the secret from a file, then the message
/// posted with it; the token is kept for the next notification; an
/// `errcode` of 42001 (the token expired) is retried with a new token;
/// another `errcode` fails without a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechat_gets_a_token_then_sends_with_it() {
    let wx = Recorder::start();
    let ok = |token: &str| {
        format!(r#"{{"access_token":"{token}","expires_in":7200,"errcode":0,"errmsg":"ok"}}"#)
    };
    wx.respond(200, "application/json", &ok("T0K"), &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("wx-secret"), "S3 CR3T\n").unwrap();
    let am = format!(
        r##"
global:
  wechat_api_url: http://{wx}/cgi-bin/
  wechat_api_corp_id: CORP
route:
  receiver: wx
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: wx
    wechat_configs:
      - api_secret_file: wx-secret
        to_party: '{{{{ .CommonLabels.team }}}}'
        agent_id: '1000002'
        message_type: markdown
        message: '**{{{{ .CommonLabels.alertname }}}}** {{{{ .Status }}}}'
"##,
        wx = wx.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("QueueStuck", &[("team", "infra")], T0 + 3_600_000);
    h.advance(0).await;
    let sent = until("the message", || {
        calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K").pop()
    })
    .await;
    assert_eq!(
        sent,
        json!({
            "markdown": {"content": "**QueueStuck** firing"},
            "toparty": "infra",
            "agentid": "1000002",
            "safe": "0",
            "msgtype": "markdown",
        })
    );
    let heads: Vec<String> = wx.taken().into_iter().map(|(h, _)| h).collect();
    assert!(
        heads[0].starts_with("GET /cgi-bin/gettoken?corpsecret=S3+CR3T&corpid=CORP "),
        "{heads:?}"
    );
    assert_eq!(heads.len(), 2);

    // A second group: the token is reused, no second GET.
    h.fire("DiskFull", &[("team", "db")], T0 + 3_600_000);
    h.advance(0).await;
    until("the second message", || {
        (calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K").len() == 2).then_some(())
    })
    .await;
    assert_eq!(wx.taken().len(), 3, "the token was kept");

    // The token expired early: the send is retried with a new one.
    wx.respond(
        200,
        "application/json",
        r#"{"errcode":42001,"errmsg":"access_token expired","access_token":"T0K2"}"#,
        &[],
    );
    h.fire("CpuHot", &[("team", "web")], T0 + 3_600_000);
    h.advance(0).await;
    until("the refused send", || {
        (calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K").len() == 3).then_some(())
    })
    .await;
    wx.respond(200, "application/json", &ok("T0K2"), &[]);
    let mut retried = None;
    for _ in 0..20 {
        h.advance(5_000).await;
        retried = calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K2").pop();
        if retried.is_some() {
            break;
        }
    }
    let retried = retried.expect("the send retried with a new token");
    assert_eq!(retried["toparty"], "web");
    let gets = wx
        .taken()
        .iter()
        .filter(|(h, _)| h.starts_with("GET /cgi-bin/gettoken?"))
        .count();
    assert_eq!(gets, 2, "a new token after the expiry");

    // Another error is not retried.
    wx.respond(
        200,
        "application/json",
        r#"{"errcode":81013,"errmsg":"user & party & tag all invalid"}"#,
        &[],
    );
    h.fire("Quiet", &[("team", "none")], T0 + 3_600_000);
    h.advance(0).await;
    until("the refused message", || {
        (calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K2").len() == 2).then_some(())
    })
    .await;
    for _ in 0..6 {
        h.advance(10_000).await;
    }
    assert_eq!(
        calls(&wx, "POST", "/cgi-bin/message/send?access_token=T0K2").len(),
        2,
        "not retried"
    );
    h.stop().await;

    for (conf, want) in [
        (
            "wechat_configs: [{corp_id: c}]",
            "no global Wechat ApiSecret set",
        ),
        (
            "wechat_configs: [{api_secret: s}]",
            "no global Wechat CorpID set",
        ),
        (
            "wechat_configs: [{api_secret: s, corp_id: c, message_type: html}]",
            "weChat message type \"html\" does not match valid options",
        ),
        (
            "wechat_configs: [{api_secret: s, api_secret_file: f, corp_id: c}]",
            "at most one of api_secret & api_secret_file must be configured",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// incident.io gets Alertmanager's alert source call: the webhook payload
/// with version "1", the token from a file as a bearer, `max_alerts`
/// counted in `truncatedAlerts`; a payload above 512 KiB keeps only the
/// first alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidentio_receives_the_alert_source_payload() {
    let io = Recorder::start();
    io.respond(202, "application/json", r#"{"status":"success"}"#, &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("io-token"), "T0KEN\n").unwrap();
    let am = format!(
        r##"
route:
  receiver: io
  group_by: [team]
  group_wait: 0s
receivers:
  - name: io
    incidentio_configs:
      - url: http://{io}/v2/alert_events/http/01ABC
        alert_source_token_file: io-token
        max_alerts: 2
      - url: http://{io}/v2/alert_events/http/big
        alert_source_token: inline
"##,
        io = io.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    // Two alerts fit in 512 KiB, three do not.
    let big = "x".repeat(200 << 10);
    // In one post, so the group's first notification has all three.
    h.notifier.send(
        ["A", "B", "C"]
            .iter()
            .map(|name| Alert {
                labels: Labels::from_pairs(vec![
                    ("alertname".to_string(), name.to_string()),
                    ("team".to_string(), "db".to_string()),
                    // Different in each alert, so not a common label too.
                    ("padding".to_string(), format!("{name}{big}")),
                ]),
                annotations: BTreeMap::new(),
                starts_at: T0,
                ends_at: T0 + 3_600_000,
                generator_url: String::new(),
            })
            .collect(),
    );
    h.advance(0).await;
    let got = until("the incident.io event", || {
        bodies(&io, "/v2/alert_events/http/01ABC").pop()
    })
    .await;
    assert_eq!(got["version"], "1");
    assert_eq!(got["status"], "firing");
    assert_eq!(got["receiver"], "io");
    assert_eq!(got["groupKey"], "{}:{team=\"db\"}");
    assert_eq!(got["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(got["truncatedAlerts"], 1);
    let big_one = until("the large event", || {
        bodies(&io, "/v2/alert_events/http/big").pop()
    })
    .await;
    assert_eq!(
        big_one["alerts"].as_array().unwrap().len(),
        1,
        "cut to the first alert"
    );
    assert_eq!(big_one["truncatedAlerts"], 0);
    for (head, _) in io.taken() {
        let want = if head.contains("/01ABC ") {
            "Bearer T0KEN"
        } else {
            "Bearer inline"
        };
        assert_eq!(header(&head, "authorization"), Some(want));
    }
    h.stop().await;

    for (conf, want) in [
        (
            "incidentio_configs: [{alert_source_token: t}]",
            "one of url or url_file must be configured",
        ),
        (
            "incidentio_configs: [{url: 'http://h/x'}]",
            "at least one of alert_source_token, alert_source_token_file or http_config.authorization must be configured",
        ),
        (
            "incidentio_configs: [{url: 'http://h/x', alert_source_token: t, http_config: {authorization: {credentials: c}}}]",
            "cannot specify alert_source_token or alert_source_token_file when using http_config.authorization",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// Mattermost gets Alertmanager's incoming-webhook message: by default
/// one attachment with the title, link, colour and text, the username
/// argus, the URL from `global`; with attachments of its own the text
/// goes on the message; priority values Mattermost does not take become
/// `standard`, and an ack is only asked with a raised priority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_receives_alertmanagers_webhook_message() {
    let mm = Recorder::start();
    mm.respond(200, "text/plain", "ok", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let am = format!(
        r##"
global:
  mattermost_webhook_url: http://{mm}/hooks/default
route:
  receiver: mm
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: mm
    mattermost_configs:
      - channel: ops
      - webhook_url: http://{mm}/hooks/custom
        text: '{{{{ .CommonAnnotations.summary }}}}'
        priority: {{priority: Loud, requested_ack: true}}
        props: {{card: 'card for {{{{ .GroupLabels.alertname }}}}'}}
        attachments:
          - title: details
            color: '#ff0000'
            fields: [{{title: severity, value: '{{{{ .CommonLabels.severity }}}}', short: true}}]
"##,
        mm = mm.addr(),
    );
    let h = start_t0(tmp.path(), &am);
    h.fire("QueueFull", &[("severity", "page")], T0 + 3_600_000);
    h.advance(0).await;
    let plain = until("the default message", || {
        bodies(&mm, "/hooks/default").pop()
    })
    .await;
    assert_eq!(plain["channel"], "ops");
    assert_eq!(plain["username"], "argus");
    assert!(plain.get("text").is_none(), "{plain}");
    let att = &plain["attachments"][0];
    assert_eq!(att["title"], "[FIRING:1] QueueFull (page)");
    assert_eq!(
        att["title_link"],
        "http://argus.test:9095/api/v2/alerts?receiver=mm"
    );
    assert_eq!(
        att["fallback"],
        "[FIRING:1] QueueFull (page) | http://argus.test:9095/api/v2/alerts?receiver=mm"
    );
    assert_eq!(att["color"], "danger");
    assert!(
        att["text"].as_str().unwrap().starts_with("1 firing:"),
        "{att}"
    );
    let custom = until("the custom message", || bodies(&mm, "/hooks/custom").pop()).await;
    assert_eq!(
        custom,
        json!({
            "text": "QueueFull is bad",
            "username": "argus",
            "attachments": [{
                "color": "#ff0000",
                "title": "details",
                "fields": [{"title": "severity", "value": "page", "short": true}],
            }],
            "props": {"card": "card for QueueFull"},
            "priority": {"priority": "standard"},
        })
    );
    h.stop().await;

    for (conf, want) in [
        (
            "mattermost_configs: [{}]",
            "missing webhook_url or webhook_url_file on mattermost_config",
        ),
        (
            "mattermost_configs: [{webhook_url: 'http://h/x', webhook_url_file: f}]",
            "at most one of webhook_url & webhook_url_file must be configured",
        ),
        (
            "mattermost_configs: [{webhook_url: 'http://h/x', fields: [{title: t}]}]",
            "missing value in Mattermost field configuration",
        ),
    ] {
        assert_refused(conf, want);
    }
}

/// A receiver with one integration `conf` (flow YAML) is refused with a
/// message containing `want`.
fn assert_refused(conf: &str, want: &str) {
    let am = format!("route: {{receiver: a}}\nreceivers:\n  - name: a\n    {conf}\n");
    let e = parse_am_config(&am, "am.yml", Strictness::Deliver)
        .err()
        .unwrap_or_else(|| panic!("{conf} accepted"))
        .to_string();
    assert!(e.contains(want), "{conf}: {e}");
}
