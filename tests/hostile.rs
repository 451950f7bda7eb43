//! Hostile targets: each gets up=0 with a clear lastError, argus stays
//! healthy, and a well-behaved target keeps its schedule.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn hostile_targets_fail_alone() {
    let good = Target::text("good_metric 1\n");
    let mut labels = String::from("many{");
    for i in 0..10_000 {
        labels.push_str(&format!("l{i}=\"v\","));
    }
    labels.push_str("} 1\n");
    let hostile: Vec<(&str, Target, &str)> = vec![
        (
            "malformed",
            Target::text("ok 1\nthis is { not valid\n"),
            "parse error: line 2",
        ),
        (
            "huge",
            Target::start(Reply::Huge { total: 100 << 20 }),
            "body size limit exceeded",
        ),
        ("labels", Target::text(&labels), "label_limit exceeded"),
        ("trickle", Target::start(Reply::Trickle), "timed out"),
        (
            "utf8",
            Target::start(Reply::Body {
                content_type: "text/plain".into(),
                body: b"bad{x=\"\xff\xfe\"} 1\n".to_vec(),
            }),
            "invalid UTF-8",
        ),
        (
            "dup",
            Target::text("d{a=\"1\"} 1\nd{a=\"1\"} 2\n"),
            "duplicate series",
        ),
        (
            "json",
            Target::start(Reply::Body {
                content_type: "application/json".into(),
                body: b"{\"bad\": 1}\n".to_vec(),
            }),
            "received unsupported Content-Type \"application/json\"",
        ),
        (
            "midbody",
            Target::start(Reply::CloseMidBody {
                prefix: b"partial_metric 1\npartial_metric".to_vec(),
            }),
            "body",
        ),
    ];
    let mut jobs = format!(
        "  - job_name: good\n    static_configs: [{{targets: ['{}']}}]\n",
        good.addr()
    );
    for (name, t, _) in &hostile {
        jobs.push_str(&format!(
            "  - job_name: {name}\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ));
    }
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  body_size_limit: 10MB\n  label_limit: 64\n  sample_limit: 100000\nscrape_configs:\n{jobs}"
        ),
        &[],
    );
    for (name, t, want) in &hostile {
        let target = wait_for(15, &format!("{name} target down"), || {
            let x = a.target(&t.addr())?;
            (x["health"] == "down").then_some(x)
        });
        let err = target["lastError"].as_str().unwrap();
        assert!(!err.is_empty(), "{name}: empty lastError");
        assert!(
            err.contains(want),
            "{name}: lastError {err:?} lacks {want:?}"
        );
        let up = a.federate(&format!("up{{job=\"{name}\"}}"));
        assert_eq!(up[0].1, 0.0, "{name}");
    }
    // Nothing partial was stored from the failed scrapes.
    assert!(
        a.federate("{__name__=~\"ok|partial_metric|huge_metric_with_a_long_name|many|d|bad\"}")
            .is_empty()
    );
    // argus stays healthy and the good target keeps its 1s schedule.
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    let before = good.hit_count();
    std::thread::sleep(Duration::from_secs(4));
    let hits = good.hit_count() - before;
    assert!(
        (3..=5).contains(&hits),
        "good target scraped {hits} times in 4s"
    );
    let g = a.target(&good.addr()).unwrap();
    assert_eq!(g["health"], "up");
    // Memory stayed bounded: RSS well below the 100 MB body.
    let rss_kb = a.status_kb("VmHWM");
    assert!(rss_kb < 80_000, "peak RSS {rss_kb} kB");
}

/// Address space for the hostile-input tests: 2 GB, as `prlimit
/// --as=2000000000` in the issue that found these inputs.
const AS_LIMIT: u64 = 2_000_000_000;

fn query_error(a: &Argus, path_and_query: &str) -> (u16, String, String) {
    // Long queries go in a form body, as clients send them.
    let (path, form) = path_and_query.split_once('?').unwrap();
    let (code, body) = http_request("POST", &format!("{}{path}", a.url()), Some(form))
        .unwrap_or_else(|e| panic!("{path}: {e}; log:\n{}", a.log()));
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {code} {body}"));
    (
        code,
        v["errorType"].as_str().unwrap_or("").to_string(),
        v["error"].as_str().unwrap_or("").to_string(),
    )
}

fn nested(open: &str, close: &str, n: usize, inner: &str) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn hostile_queries_get_errors_and_argus_stays_up() {
    let t = Target::text("m 1\n");
    let a = Argus::start_limited(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &[],
        AS_LIMIT,
    );
    wait_for(10, "first scrape", || a.query_value("m"));
    let q = |s: &str| urlencode(s);
    let cases: Vec<(String, u16, &str, &str)> = vec![
        // Times outside what can be represented are refused when read.
        (
            format!(
                "/api/v1/query_range?query={}&start=-5e15&end=5e15&step=1",
                q("time()")
            ),
            400,
            "bad_data",
            "invalid parameter \"start\": cannot parse \"-5e15\" to a valid timestamp",
        ),
        (
            format!(
                "/api/v1/query_range?query={}&start=-5e15&end=5e15&step=1",
                q("vector(1)")
            ),
            400,
            "bad_data",
            "cannot parse",
        ),
        (
            "/api/v1/query_range?query=up&start=-5e15&end=5e15&step=1".to_string(),
            400,
            "bad_data",
            "cannot parse",
        ),
        // Representable but absurd: the point limit, computed without overflow.
        (
            "/api/v1/query_range?query=up&start=-1e12&end=1e12&step=1".to_string(),
            400,
            "bad_data",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        (
            format!("/api/v1/query?query={}&time=1e300", q("rate(up[5m])")),
            400,
            "bad_data",
            "invalid parameter \"time\": cannot parse \"1e300\"",
        ),
        (
            format!("/api/v1/query?query={}&time=1e14", q("rate(up[5m])")),
            400,
            "bad_data",
            "out of range",
        ),
        // Steps beyond the sample budget are refused before anything is
        // allocated for them.
        (
            format!(
                "/api/v1/query?query={}",
                q("max_over_time(vector(1)[100y:1ms])")
            ),
            422,
            "execution",
            "query processing would load too many samples into memory",
        ),
        (
            format!(
                "/api/v1/query?query={}&timeout=5s",
                q("max_over_time(up[30d:1ms])")
            ),
            422,
            "execution",
            "too many samples",
        ),
        // Depth, before the parser builds anything.
        (
            format!("/api/v1/query?query={}", q(&nested("abs(", ")", 830, "up"))),
            400,
            "bad_data",
            "parse error: expression nested deeper than the limit of 512",
        ),
        (
            format!("/api/v1/query?query={}", q(&nested("sum(", ")", 940, "up"))),
            400,
            "bad_data",
            "nested deeper",
        ),
        (
            format!("/api/v1/query?query={}", q(&vec!["up"; 1300].join("+"))),
            400,
            "bad_data",
            "nested deeper",
        ),
        (
            format!("/api/v1/query?query={}", q(&nested("(", ")", 11_000, "1"))),
            400,
            "bad_data",
            "nested deeper",
        ),
        (
            format!(
                "/api/v1/format_query?query={}",
                q(&nested("(", ")", 6_000, "1"))
            ),
            400,
            "bad_data",
            "nested deeper",
        ),
        // Durations promql-parser would panic on.
        (
            format!("/api/v1/query?query={}", q("up[1e309]")),
            400,
            "bad_data",
            "1:4: parse error: not a valid duration string: \"1e309\"",
        ),
        (
            format!("/api/v1/query?query={}", q("up offset 1e309")),
            400,
            "bad_data",
            "1:11: parse error",
        ),
        (
            format!("/api/v1/query?query={}", q("up[5m:1e309]")),
            400,
            "bad_data",
            "1:7: parse error",
        ),
    ];
    for (path, code, kind, want) in &cases {
        let (c, k, e) = query_error(&a, path);
        assert_eq!((c, k.as_str()), (*code, *kind), "{path}: {e}");
        assert!(e.contains(want), "{path}: {e:?} lacks {want:?}");
    }
    // A query that would run for minutes stops at its timeout.
    let started = std::time::Instant::now();
    let (c, k, e) = query_error(
        &a,
        &format!(
            "/api/v1/query_range?query={}&start=0&end=660000&step=60&timeout=1s",
            q("quantile_over_time(0.5, vector(1)[60d:1m])")
        ),
    );
    assert_eq!((c, k.as_str()), (503, "timeout"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timed out after {:?}",
        started.elapsed()
    );
    // Just inside the limit, each kind of nesting evaluates and formats:
    // the limit and the threads' stacks agree.
    for deep in [
        nested("abs(", ")", 510, "vector(1)"),
        nested("sum(", ")", 510, "vector(1)"),
        vec!["vector(1)"; 500].join(" * "),
        nested("(", ")", 511, "1"),
    ] {
        for path in ["/api/v1/query", "/api/v1/format_query"] {
            let (code, body) = http_request(
                "POST",
                &format!("{}{path}", a.url()),
                Some(&format!("query={}", q(&deep))),
            )
            .unwrap_or_else(|e| panic!("{path}: {e}; log:\n{}", a.log()));
            assert_eq!(code, 200, "{path}: {body}");
        }
    }
    // argus is up and answers ordinary queries.
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    assert_eq!(a.query_value("m"), Some(1.0));
}

#[test]
fn an_abandoned_query_frees_its_slot() {
    let t = Target::text("m 1\n");
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &["--query.max-concurrency", "1"],
    );
    wait_for(10, "first scrape", || a.query_value("m"));
    // A client asks for a query that would run for minutes and hangs up.
    {
        use std::io::Write;
        let host = a.url().trim_start_matches("http://").to_string();
        let mut s = std::net::TcpStream::connect(&host).unwrap();
        write!(
            s,
            "GET /api/v1/query_range?query={}&start=0&end=660000&step=60 HTTP/1.1\r\nHost: {host}\r\n\r\n",
            urlencode("quantile_over_time(0.5, vector(1)[60d:1m])")
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    // With one slot, the next query runs only once the abandoned one
    // has been cancelled.
    let started = std::time::Instant::now();
    assert_eq!(a.query_value("m"), Some(1.0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} for the slot",
        started.elapsed()
    );
}

#[test]
fn a_rule_check_refuses_what_run_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("deep.yml");
    std::fs::write(
        &rules,
        format!(
            "groups:\n  - name: g\n    rules:\n      - record: deep\n        expr: {}\n",
            vec!["up"; 1300].join("+")
        ),
    )
    .unwrap();
    let (code, out) = argus_cli(["check", "rules", rules.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("deep.yml:5:9: group \"g\", rule 1, \"deep\": could not parse expression: 1:1539: parse error: expression nested deeper than the limit of 512"),
        "{out}"
    );
    let cfg = dir.path().join("argus.yml");
    std::fs::write(&cfg, format!("rule_files: ['{}']\n", rules.display())).unwrap();
    let (code, out) = argus_cli(["check", "config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("nested deeper"), "{out}");
}

#[test]
fn unauthenticated_heartbeats_create_no_series_and_no_log_lines() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("secret"), "s3cret-s3cret-s3cret").unwrap();
    let closed = free_port();
    let cfg = format!(
        "peers:\n  self: a\n  members:\n    - {{id: a, url: 'http://127.0.0.1:1'}}\n    - {{id: b, url: 'http://127.0.0.1:{closed}'}}\n  secret_file: {}\n",
        tmp.path().join("secret").display()
    );
    let a = Argus::start_limited(&cfg, &[], AS_LIMIT);
    let url = format!("{}/api/v1/peers/heartbeat", a.url());
    let big = "x".repeat(1 << 20);
    for i in 0..200 {
        let body = format!(r#"{{"id":"{big}{i}","time":1}}"#);
        let (code, _) = http_request("POST", &url, Some(&body)).unwrap();
        assert_eq!(code, 401);
    }
    let forged = r#"{"id":"evil\nlevel=ERROR forged line","time":1}"#;
    assert_eq!(http_request("POST", &url, Some(forged)).unwrap().0, 401);
    let huge = format!(r#"{{"id":"{}","time":1}}"#, "y".repeat(50 << 20));
    assert_eq!(http_request("POST", &url, Some(&huge)).unwrap().0, 401);
    // A configured member's name is kept as the label.
    assert_eq!(
        http_request("POST", &url, Some(r#"{"id":"b","time":1}"#))
            .unwrap()
            .0,
        401
    );

    let (code, metrics) = http_get(&format!("{}/metrics", a.url())).unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.len() < 200_000,
        "/metrics is {} bytes",
        metrics.len()
    );
    let failures: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("argus_peer_heartbeat_failures_total{"))
        .collect();
    assert!(
        failures.iter().any(|l| l.contains("peer=\"unknown\"")
            && l.contains("reason=\"unsigned\"")
            && l.ends_with(" 202")),
        "{failures:#?}"
    );
    assert!(
        failures.iter().any(|l| l.contains("peer=\"b\"")),
        "{failures:#?}"
    );
    let log = a.log();
    assert!(log.len() < 100_000, "log is {} bytes", log.len());
    assert!(
        !log.contains("xxxxxxxxxx"),
        "the claimed id reached the log"
    );
    assert!(
        !log.lines().any(|l| l.starts_with("level=ERROR forged")),
        "a forged log line"
    );
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    let rss_kb = a.status_kb("VmRSS");
    assert!(rss_kb < 400_000, "RSS {rss_kb} kB");
}

/// Without `body_size_limit`, an endless body and a gzip bomb stop at
/// argus's default ceiling; a healthy target beside them keeps working.
#[test]
fn endless_bodies_stop_at_the_default_ceiling() {
    let good = Target::text("good_metric 1\n");
    let endless = Target::start(Reply::Endless);
    let bomb = Target::start(Reply::GzipBomb);
    let mut jobs = String::new();
    for (name, t) in [("good", &good), ("endless", &endless), ("bomb", &bomb)] {
        jobs.push_str(&format!(
            "  - job_name: {name}\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ));
    }
    let a = Argus::start_limited(
        &format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 1900ms\nscrape_configs:\n{jobs}"
        ),
        &[],
        AS_LIMIT,
    );
    for t in [&endless, &bomb] {
        let x = wait_for(30, "hostile target down", || {
            let x = a.target(&t.addr())?;
            (x["health"] == "down").then_some(x)
        });
        let err = x["lastError"].as_str().unwrap();
        // A slow machine may hit the timeout before the ceiling; both
        // stop the scrape.
        assert!(
            err.contains("body size limit exceeded (104857600 bytes)") || err.contains("timed out"),
            "{err}"
        );
    }
    assert!(a.federate("endless_metric").is_empty());
    // The healthy target's first scrape may come after the hostile ones
    // failed (targets are spread over the interval).
    wait_for(10, "the healthy target up", || {
        (a.target(&good.addr())?["health"] == "up").then_some(())
    });
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    let hwm_kb = a.status_kb("VmHWM");
    assert!(hwm_kb < 600_000, "peak RSS {hwm_kb} kB");
}

/// A receiver that answers without end and probe targets that send an
/// endless body or a gzip bomb cost a bounded read each: the page is
/// delivered (the answer's status is what counts), the probes fail with
/// the reason, and argus stays within its address space.
#[test]
fn endless_answers_from_receivers_and_probes_are_cut() {
    let receiver = Target::start(Reply::Endless);
    let endless = Target::start(Reply::Endless);
    let bomb = Target::start(Reply::GzipBomb);
    let fine = Target::text("status: ok\n");
    let tmp = tempfile::tempdir().unwrap();
    let routing = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &routing,
        format!(
            "route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n  - name: hook\n    webhook_configs: [{{url: 'http://{}/hook'}}]\n",
            receiver.addr()
        ),
    )
    .unwrap();
    let probe = |name: &str, t: &Target, limit: &str| {
        format!(
            "  - name: {name}\n    url: http://{}/\n    interval: 5s\n    timeout: 5s\n{limit}",
            t.addr()
        )
    };
    let cfg = format!(
        "global:\n  scrape_interval: 1h\nalerting:\n  routing_file: {}\nprobe_configs:\n{}{}{}",
        routing.display(),
        probe("endless", &endless, "    body_size_limit: 1MB\n"),
        probe("bomb", &bomb, ""),
        probe("fine", &fine, "    body_size_limit: 1MB\n"),
    );
    let a = Argus::start_limited(&cfg, &[], AS_LIMIT);
    let (code, body) = http_request_with(
        "POST",
        &format!("{}/api/v2/alerts", a.url()),
        Some(r#"[{"labels":{"alertname":"Endless"}}]"#),
        &[("Content-Type", "application/json")],
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    wait_for(20, "the page delivered", || {
        (metric(&a, "argus_receiver_notifications_total", "webhook/0") >= 1.0).then_some(())
    });
    for name in ["endless", "bomb"] {
        wait_for(30, "the probe failed", || {
            let q = format!("probe_success{{probe=\"{name}\"}}");
            (a.query_value(&q)? == 0.0).then_some(())
        });
        let status = a.query_value(&format!("probe_http_status_code{{probe=\"{name}\"}}"));
        assert_eq!(status, Some(200.0), "{name}: answered, then cut");
    }
    wait_for(10, "the fine probe passes", || {
        (a.query_value("probe_success{probe=\"fine\"}")? == 1.0).then_some(())
    });
    let log = a.log();
    for want in [
        "probe=endless error=the body is longer than 1048576 bytes (body_size_limit)",
        "probe=bomb error=the body is longer than 104857600 bytes (body_size_limit)",
    ] {
        assert!(log.contains(want), "{want}");
    }
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    let hwm_kb = a.status_kb("VmHWM");
    assert!(hwm_kb < 600_000, "peak RSS {hwm_kb} kB");
}

/// Hostile durations are refused with their position on reload, and the
/// next SIGHUP still reloads.
#[test]
fn a_refused_reload_leaves_the_next_sighup_working() {
    let t = Target::text("m 1\n");
    let mut a = Argus::start("global:\n  scrape_interval: 1s\n", &[]);
    let reload_ok = |a: &Argus| {
        let (_, m) = http_get(&format!("{}/metrics", a.url())).unwrap();
        m.lines()
            .find(|l| l.starts_with("argus_config_last_reload_successful "))
            .map(|l| l.ends_with(" 1"))
    };
    for bad in ["-1", "-0", "NaN", "1e309", "'-5m'"] {
        std::fs::write(&a.config, format!("global:\n  scrape_interval: {bad}\n")).unwrap();
        a.signal("HUP");
        wait_for(10, "reload refused", || {
            (reload_ok(&a) == Some(false)).then_some(())
        });
        assert!(
            a.log()
                .contains("argus.yml:2:20: global.scrape_interval: not a valid duration string"),
            "{bad}: {}",
            a.log()
        );
        std::fs::write(
            &a.config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: t\n    static_configs: [{{targets: ['{}']}}]\n",
                t.addr()
            ),
        )
        .unwrap();
        a.signal("HUP");
        wait_for(10, "reload accepted", || {
            (reload_ok(&a) == Some(true)).then_some(())
        });
        assert!(a.target(&t.addr()).is_some());
    }
    assert_eq!(a.stop().0, Some(0));
}

/// A template that fails at send time is sent with its error in place,
/// counted; Go's printf limits hold; the queue keeps delivering.
#[test]
fn failing_templates_still_page() {
    let slack = Recorder::start();
    slack.respond(200, "text/plain", "ok", &[]);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            r#"route:
  receiver: oncall
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: oncall
    slack_configs:
      - api_url: http://{}/hooks/x
        channel: '#ops'
        title: '{{{{ printf "%.65536f" 1.0 }}}}{{{{ printf "%999999999d" 1 }}}}'
        text: '{{{{ template "no-such-template" . }}}}'
"#,
            slack.addr()
        ),
    )
    .unwrap();
    let a = Argus::start_in(
        tmp.path(),
        "alerting:\n  routing_file: alertmanager.yml\n",
        &[],
    );
    let post = |name: &str| {
        let (code, body) = http_request_with(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&format!(r#"[{{"labels":{{"alertname":"{name}"}}}}]"#)),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    };
    post("First");
    post("Second");
    let got = wait_for(15, "two Slack messages", || {
        let b = slack.json_bodies();
        (b.len() >= 2).then_some(b)
    });
    for m in &got {
        let att = &m["attachments"][0];
        let title = att["title"].as_str().unwrap();
        assert!(title.starts_with("1.0000"), "{title:.40}");
        let text = att["text"].as_str().unwrap();
        assert!(
            text.starts_with("[template error: ") && text.contains("no-such-template"),
            "{text}"
        );
    }
    let errors = metric(&a, "argus_notification_template_errors_total{", "");
    assert!(errors >= 2.0, "{errors}");
    // A filter that says nothing is refused, as Alertmanager refuses it,
    // rather than listing every alert.
    for f in ["%7B", "%7D", "%2C"] {
        let (code, body) = http_get(&format!("{}/api/v2/alerts?filter={f}", a.url())).unwrap();
        assert_eq!(code, 400, "{f}: {body}");
        let (code, body) = http_get(&format!("{}/api/v2/silences?filter={f}", a.url())).unwrap();
        assert_eq!(code, 400, "{f}: {body}");
    }
    let (code, body) = http_get(&format!(
        "{}/api/v2/alerts?filter={}",
        a.url(),
        urlencode("alertname=\"First\"")
    ))
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        a.log()
            .contains("notification templates failed; sending with the errors in their place")
    );
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
}

/// Receiver URLs amtool refuses are refused; a secret file that does not
/// exist fails `check` with its position, warns at start, and the page
/// waits in the outbox until the file appears.
#[test]
fn receiver_urls_and_secret_files_are_checked_where_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let am = tmp.path().join("am.yml");
    for (url, want) in [
        ("htp:/bad", "unsupported scheme \"htp\" for URL"),
        ("ftp://host/x", "unsupported scheme \"ftp\" for URL"),
        ("notaurl", "unsupported scheme \"\" for URL"),
        ("http:///path", "host for URL must not be empty"),
    ] {
        std::fs::write(
            &am,
            format!("route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n      - url: '{url}'\n"),
        )
        .unwrap();
        let (code, out) = argus_cli(["check", "alertmanager", am.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{url}: {out}");
        assert!(
            out.contains(&format!(
                "am.yml:6:9: receivers[0].webhook_configs[0].url: {want}"
            )),
            "{url}: {out}"
        );
        assert!(!out.contains(url), "the URL (a secret) is printed: {out}");
    }

    let hook = Recorder::start();
    let secret = tmp.path().join("hook-url");
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: a\n  group_wait: 0s\nreceivers:\n  - name: a\n    webhook_configs:\n      - url_file: hook-url\n",
    )
    .unwrap();
    let (code, out) = argus_cli([
        "check",
        "alertmanager",
        tmp.path().join("alertmanager.yml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("alertmanager.yml:7:19: receivers[0].webhook_configs[0].url_file: cannot read \"hook-url\""),
        "{out}"
    );
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    std::fs::write(tmp.path().join("argus.yml"), cfg).unwrap();
    let (code, out) = argus_cli([
        "check",
        "config",
        tmp.path().join("argus.yml").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot read \"hook-url\""), "{out}");

    // Running: a warning at start, and the page is retried, not dropped.
    let a = Argus::start_in(tmp.path(), cfg, &[]);
    assert!(
        a.log().contains("url_file: cannot read \"hook-url\""),
        "{}",
        a.log()
    );
    let (code, body) = http_request_with(
        "POST",
        &format!("{}/api/v2/alerts", a.url()),
        Some(r#"[{"labels":{"alertname":"Down"}}]"#),
        &[("Content-Type", "application/json")],
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    wait_for(10, "a retry", || {
        (metric(&a, "argus_receiver_notifications_retried_total{", "") >= 1.0).then_some(())
    });
    assert!(!a.log().contains("dropped"), "{}", a.log());
    std::fs::write(&secret, format!("http://{}/hook\n", hook.addr())).unwrap();
    let got = wait_for(30, "the page once the secret is there", || {
        let b = hook.json_bodies();
        (!b.is_empty()).then_some(b)
    });
    assert_eq!(got[0]["alerts"][0]["labels"]["alertname"], "Down");
}

/// Disk full: a silence that cannot be saved is refused (500) and not
/// kept, the failure is counted and shown by /-/ready, and once the disk
/// takes writes again silences save and survive a restart.
#[test]
fn a_full_disk_refuses_silences_instead_of_losing_them() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: a\nreceivers:\n  - name: a\n",
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    let mut a = Argus::start_in(tmp.path(), cfg, &[]);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Every write of the silences lands on /dev/full: ENOSPC.
    let tmpfile = data.join("silences.json.tmp");
    std::os::unix::fs::symlink("/dev/full", &tmpfile).unwrap();
    let silence = |comment: &str| {
        format!(
            r#"{{"matchers":[{{"name":"alertname","value":"X","isRegex":false}}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"oncall","comment":"{comment}"}}"#
        )
    };
    let post = |body: &str| {
        http_request_with(
            "POST",
            &format!("{}/api/v2/silences", a.url()),
            Some(body),
            &[("Content-Type", "application/json")],
        )
        .unwrap()
    };
    let (code, body) = post(&silence("full"));
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("cannot save the silences"), "{body}");
    let listed = a.get_json("/api/v2/silences");
    assert_eq!(listed.as_array().unwrap().len(), 0, "{listed}");
    let (code, ready) = http_get(&format!("{}/-/ready", a.url())).unwrap();
    assert_eq!(code, 200);
    assert!(
        ready.contains("degraded") && ready.contains("cannot write silences.json"),
        "{ready}"
    );
    let (_, m) = http_get(&format!("{}/metrics", a.url())).unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("argus_state_write_failures_total{file=\"silences.json\"}")),
        "{m}"
    );

    std::fs::remove_file(&tmpfile).unwrap();
    let (code, body) = post(&silence("room again"));
    assert_eq!(code, 200, "{body}");
    let (_, ready) = http_get(&format!("{}/-/ready", a.url())).unwrap();
    assert!(!ready.contains("degraded"), "{ready}");
    assert_eq!(a.stop().0, Some(0));
    let b = Argus::start_in(tmp.path(), cfg, &[]);
    let listed = b.get_json("/api/v2/silences");
    let comments: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["comment"].as_str().unwrap())
        .collect();
    assert_eq!(comments, ["room again"]);
}

/// One damaged byte in a state file costs the record it is in: the other
/// silences, and what the notification log says was delivered, survive.
#[test]
fn a_damaged_state_file_loses_only_the_damaged_record() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: a\nreceivers:\n  - name: a\n",
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    let mut a = Argus::start_in(tmp.path(), cfg, &[]);
    for i in 0..3 {
        let (code, body) = http_request_with(
            "POST",
            &format!("{}/api/v2/silences", a.url()),
            Some(&format!(
                r#"{{"matchers":[{{"name":"n","value":"{i}","isRegex":false}}],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z","createdBy":"oncall","comment":"silence-{i}"}}"#
            )),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    }
    assert_eq!(a.stop().0, Some(0));
    let path = tmp.path().join("data/silences.json");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(9)
        .position(|w| w == b"silence-1")
        .expect("the second silence");
    bytes[at + 3] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let b = Argus::start_in(tmp.path(), cfg, &[]);
    let listed = b.get_json("/api/v2/silences");
    let mut comments: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["comment"].as_str().unwrap())
        .collect();
    comments.sort();
    assert_eq!(comments, ["silence-0", "silence-2"]);
    assert!(
        b.log()
            .contains("a damaged record of a state file was skipped")
            && b.log().contains("checksum mismatch"),
        "{}",
        b.log()
    );
}

/// Samples far ahead or far behind are refused and counted, the target
/// stays up, and a sample from the future does not poison its series.
#[test]
fn samples_out_of_time_are_counted_not_stored() {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let future = now_ms + 365 * 86_400_000;
    let past = now_ms - 400 * 86_400_000;
    let t = Target::text(&format!("ahead 1 {future}\nbehind 1 {past}\nfine 1\n"));
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: clocks\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &[],
    );
    wait_for(10, "a scrape", || a.query_value("fine"));
    wait_for(10, "out-of-bounds samples counted", || {
        let n = metric(
            &a,
            "argus_target_scrapes_sample_out_of_bounds_total{",
            "scrape_job=\"clocks\"",
        );
        (n >= 4.0).then_some(())
    });
    assert_eq!(a.target(&t.addr()).unwrap()["health"], "up");
    assert!(a.federate("ahead").is_empty());
    assert!(a.log().contains("samples refused"), "{}", a.log());
    // The series that was ahead takes samples with a sane time.
    t.set_text("ahead 2\nfine 1\n");
    wait_for(10, "the series accepts samples again", || {
        a.query_value("ahead").filter(|v| *v == 2.0)
    });
}

/// 100,000 alerts in one POST are taken, as Alertmanager takes them; a
/// body past the limit is refused with 413 before it is read whole.
#[test]
fn large_alert_posts_are_taken_and_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: a\n  group_by: [alertname]\nreceivers:\n  - name: a\n",
    )
    .unwrap();
    let a = Argus::start_in(
        tmp.path(),
        "alerting:\n  routing_file: alertmanager.yml\n",
        &[],
    );
    let alerts: Vec<String> = (0..100_000)
        .map(|i| {
            format!(r#"{{"labels":{{"alertname":"A","i":"{i}"}},"annotations":{{"summary":"s"}}}}"#)
        })
        .collect();
    let body = format!("[{}]", alerts.join(","));
    let post = |b: &str| {
        http_request_with(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(b),
            &[("Content-Type", "application/json")],
        )
        .unwrap()
    };
    let (code, text) = post(&body);
    assert_eq!(code, 200, "{text}");
    // The first and the last of them are there (listing all 100,000 in
    // a debug build takes longer than the test client waits).
    for i in [0, 99_999] {
        let got = a.get_json(&format!(
            "/api/v2/alerts?filter={}",
            urlencode(&format!("i=\"{i}\""))
        ));
        assert_eq!(got.as_array().unwrap().len(), 1, "alert {i}");
    }
    // Past the limit: 413. argus answers once it has read 64 MiB and
    // closes the connection, so a client still writing the rest may see
    // the close (a broken pipe or a reset) before it reads the answer;
    // either way the body was refused.
    let huge = format!("[{}]", " ".repeat(65 << 20));
    match http_request_with(
        "POST",
        &format!("{}/api/v2/alerts", a.url()),
        Some(&huge),
        &[("Content-Type", "application/json")],
    ) {
        Ok((code, _)) => assert_eq!(code, 413),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
}

/// A damaged alert record in alerts.json costs that alert's state only:
/// the other alert comes back firing since its first activation.
#[test]
fn a_damaged_alert_state_record_costs_one_alert() {
    let t = Target::text("queue_depth{queue=\"a\"} 42\nqueue_depth{queue=\"b\"} 42\n");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        for: 2s\n",
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nscrape_configs:\n  - job_name: w\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
    let firing = |a: &Argus| -> Vec<serde_json::Value> {
        a.api("/api/v1/alerts")["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|x| x["state"] == "firing")
            .collect()
    };
    let before = wait_for(15, "two firing alerts", || {
        let f = firing(&a);
        (f.len() == 2).then_some(f)
    });
    assert_eq!(a.stop().0, Some(0));
    let path = tmp.path().join("data/alerts.json");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"argus-records 1\n"));
    let at = bytes
        .windows(11)
        .position(|w| w == b"\"queue\":\"a\"")
        .expect("queue a's record");
    bytes[at + 10] = b'z';
    std::fs::write(&path, &bytes).unwrap();
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    let b_before = before.iter().find(|x| x["labels"]["queue"] == "b").unwrap();
    // Right after the start, b is firing since its first activation; a's
    // state was lost and it starts over.
    let now = a.api("/api/v1/alerts")["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let b_now = now
        .iter()
        .find(|x| x["labels"]["queue"] == "b")
        .expect("b restored");
    assert_eq!(b_now["state"], "firing");
    assert_eq!(b_now["activeAt"], b_before["activeAt"]);
    assert!(
        now.iter()
            .all(|x| x["labels"]["queue"] != "a" || x["state"] != "firing"),
        "{now:?}"
    );
    assert!(
        a.log().contains("checksum mismatch") && a.log().contains("alerts.json"),
        "{}",
        a.log()
    );
}

/// A zeroed stretch of nflog.wal costs the deliveries it held: what the
/// intact lines say was delivered is not sent again after a restart.
#[test]
fn a_zeroed_notification_log_line_does_not_repeat_the_intact_ones() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: a\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: a\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n";
    let mut a = Argus::start_in(tmp.path(), cfg, &[]);
    let post = |a: &Argus, name: &str| {
        let (code, body) = http_request_with(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&format!(
                r#"[{{"labels":{{"alertname":"{name}"}},"endsAt":"2099-01-01T00:00:00Z"}}]"#
            )),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    };
    post(&a, "Intact");
    wait_for(10, "the first page", || {
        (hook.json_bodies().len() == 1).then_some(())
    });
    post(&a, "Zeroed");
    wait_for(10, "the second page", || {
        (hook.json_bodies().len() == 2).then_some(())
    });
    assert_eq!(a.stop().0, Some(0));
    let wal = tmp.path().join("data/nflog.wal");
    let mut bytes = std::fs::read(&wal).unwrap();
    let start = bytes
        .windows(6)
        .position(|w| w == b"Zeroed")
        .map(|p| {
            bytes[..p]
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |n| n + 1)
        })
        .expect("the second delivery's line");
    let end = start + bytes[start..].iter().position(|&c| c == b'\n').unwrap();
    bytes[start..end].fill(0);
    std::fs::write(&wal, &bytes).unwrap();
    let a = Argus::spawn(tmp.path(), &a.config.clone(), free_port(), &[]);
    std::thread::sleep(Duration::from_secs(4));
    let pages: Vec<String> = hook
        .json_bodies()
        .iter()
        .map(|b| {
            b["groupLabels"]["alertname"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        pages.iter().filter(|n| *n == "Intact").count(),
        1,
        "{pages:?}\n{}",
        a.log()
    );
    assert!(a.log().contains("zeroed"), "{}", a.log());
}

/// kill -9 again and again at unlucky moments: every start succeeds on
/// the state the last one left, and the page arrives.
#[test]
fn a_crash_loop_never_stops_the_page() {
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: a\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 4h\nreceivers:\n  - name: a\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n",
    )
    .unwrap();
    let cfg = "global:\n  evaluation_interval: 1s\nrule_files: ['rules.yml']\nalerting:\n  routing_file: alertmanager.yml\n";
    std::fs::write(tmp.path().join("argus.yml"), cfg).unwrap();
    // Kill points spread over start-up, evaluation, routing and the
    // state writes that follow a delivery.
    for (i, ms) in [50u64, 400, 900, 150, 1300, 700, 250, 1100, 600, 2000]
        .iter()
        .enumerate()
    {
        let mut a = Argus::try_spawn(tmp.path(), &tmp.path().join("argus.yml"), free_port(), &[])
            .unwrap_or_else(|log| panic!("start {i} failed:\n{log}"));
        std::thread::sleep(Duration::from_millis(*ms));
        a.kill9();
    }
    let a = Argus::spawn(tmp.path(), &tmp.path().join("argus.yml"), free_port(), &[]);
    wait_for(15, "the page", || {
        (!hook.json_bodies().is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let pages = hook.json_bodies().len();
    // Fail open: a crash between a send and its log entry may repeat a
    // page, never lose it.
    assert!((1..=11).contains(&pages), "{pages} pages\n{}", a.log());
    assert!(!a.log().contains("panicked"), "{}", a.log());
}

/// Hostile durations and numbers in every loader are positioned errors in
/// Prometheus's words, never a panic.
#[test]
fn hostile_durations_are_refused_by_every_check() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str, text: &str| {
        let f = tmp.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_string()
    };
    // (file, its text around the value, the command, where the error is)
    let loaders: [(&str, &str, &str, &str); 4] = [
        (
            "c.yml",
            "global:\n  scrape_interval: {}\n",
            "config",
            "c.yml:2:20: global.scrape_interval: ",
        ),
        (
            "r.yml",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        for: {}\n",
            "rules",
            "r.yml:6:",
        ),
        (
            "am.yml",
            "route:\n  receiver: a\n  group_wait: {}\nreceivers:\n  - name: a\n",
            "alertmanager",
            "am.yml:3:15: route.group_wait: ",
        ),
        (
            "t.yml",
            "tests:\n  - interval: 1m\n    input_series: []\n    alert_rule_test:\n      - eval_time: {}\n        alertname: A\n",
            "test",
            "t.yml:5:",
        ),
    ];
    for bad in ["-1", "-0", "NaN", "1e309", "'-5m'", "300y"] {
        for (name, text, cmd, at) in loaders {
            let f = p(name, &text.replace("{}", bad));
            let args = match cmd {
                "test" => ["test", "rules", f.as_str()],
                c => ["check", c, f.as_str()],
            };
            let (code, out) = argus_cli(args);
            assert_eq!(code, Some(1), "{name} {bad}: {out}");
            assert!(
                out.contains(at)
                    && (out.contains("not a valid duration string")
                        || out.contains("duration out of range")),
                "{name} {bad}: {out}"
            );
        }
    }
    let slo = p(
        "s.yml",
        "version: prometheus/v1\nservice: s\nslos:\n  - name: lat\n    objective: 99\n    sli:\n      latency:\n        histogram: h\n        threshold: NaN\n    alerting:\n      name: A\n",
    );
    let (code, out) = argus_cli(["check", "slo", &slo]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("s.yml:9:") && out.contains("not a valid duration string: \"NaN\""),
        "{out}"
    );
    assert!(!out.contains("panicked"));
}

/// Resends that only move a firing alert's end do not rewrite the routed
/// alerts file (with many alerts it is large); a real change does.
#[test]
fn plain_resends_do_not_rewrite_the_routed_alerts_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        "route:\n  receiver: a\nreceivers:\n  - name: a\n",
    )
    .unwrap();
    let a = Argus::start_in(
        tmp.path(),
        "alerting:\n  routing_file: alertmanager.yml\n",
        &[],
    );
    let post = |ends: &str, summary: &str| {
        let (code, body) = http_request_with(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&format!(
                r#"[{{"labels":{{"alertname":"A"}},"annotations":{{"summary":"{summary}"}},"startsAt":"2026-01-01T00:00:00Z","endsAt":"{ends}"}}]"#
            )),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        assert_eq!(code, 200, "{body}");
    };
    let file = tmp.path().join("data/routed_alerts.json");
    let mtime = || std::fs::metadata(&file).and_then(|m| m.modified()).ok();
    post("2099-01-01T00:00:00Z", "one");
    let first = wait_for(15, "the routed alerts written", mtime);
    for ends in [
        "2099-01-02T00:00:00Z",
        "2099-01-03T00:00:00Z",
        "2099-01-04T00:00:00Z",
    ] {
        post(ends, "one");
        std::thread::sleep(Duration::from_secs(2));
    }
    assert_eq!(mtime(), Some(first), "rewritten for plain resends");
    post("2099-01-05T00:00:00Z", "two");
    wait_for(15, "the change written", || {
        (mtime() != Some(first)).then_some(())
    });
}
