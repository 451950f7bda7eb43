//! End-to-end scraping: real targets on 127.0.0.1 scraped by a real argus.

mod common;

use argus::scrape::proto;
use common::*;

fn cfg(jobs: &str) -> String {
    format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}")
}

#[test]
fn text_and_openmetrics_targets_with_synthetic_series_and_staleness() {
    let text = Target::text(
        "# HELP reqs_total Requests.\n# TYPE reqs_total counter\nreqs_total{code=\"200\"} 10\nreqs_total{code=\"500\"} 2\n# TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 3\nlat_sum 0.7\nlat_count 3\ntemp -3.5e-2\n",
    );
    let om = Target::openmetrics(
        "# TYPE jobs counter\njobs_total{q=\"a\"} 7 # {trace_id=\"x\"} 1\njobs_created{q=\"a\"} 1700000000\n# TYPE s summary\ns{quantile=\"0.5\"} 0.25\ns_sum 1\ns_count 4\n# EOF\n",
    );
    let a = Argus::start(
        &cfg(&format!(
            "  - job_name: text\n    static_configs: [{{targets: ['{}'], labels: {{team: core}}}}]\n  - job_name: om\n    static_configs: [{{targets: ['{}']}}]\n",
            text.addr(),
            om.addr()
        )),
        &[],
    );
    let got = wait_for(10, "both targets scraped", || {
        let f = a.federate("{__name__=~\"reqs_total|lat_bucket|temp|jobs_total|jobs_created|s\"}");
        (f.len() == 8).then_some(f)
    });
    let inst_t = text.addr();
    let inst_o = om.addr();
    let expect = vec![
        (
            format!("jobs_created{{instance=\"{inst_o}\",job=\"om\",q=\"a\"}}"),
            1700000000.0,
        ),
        (
            format!("jobs_total{{instance=\"{inst_o}\",job=\"om\",q=\"a\"}}"),
            7.0,
        ),
        (
            format!("lat_bucket{{instance=\"{inst_t}\",job=\"text\",le=\"+Inf\",team=\"core\"}}"),
            3.0,
        ),
        (
            format!("lat_bucket{{instance=\"{inst_t}\",job=\"text\",le=\"0.1\",team=\"core\"}}"),
            1.0,
        ),
        (
            format!("reqs_total{{code=\"200\",instance=\"{inst_t}\",job=\"text\",team=\"core\"}}"),
            10.0,
        ),
        (
            format!("reqs_total{{code=\"500\",instance=\"{inst_t}\",job=\"text\",team=\"core\"}}"),
            2.0,
        ),
        (
            format!("s{{instance=\"{inst_o}\",job=\"om\",quantile=\"0.5\"}}"),
            0.25,
        ),
        (
            format!("temp{{instance=\"{inst_t}\",job=\"text\",team=\"core\"}}"),
            -0.035,
        ),
    ];
    assert_eq!(got, expect);

    // Synthetic series per target.
    let up = a.federate("{__name__=~\"up|scrape_samples_scraped|scrape_samples_post_metric_relabeling|scrape_series_added|scrape_duration_seconds\",job=\"text\"}");
    let names: Vec<&str> = up
        .iter()
        .map(|(s, _)| s.split('{').next().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "scrape_duration_seconds",
            "scrape_samples_post_metric_relabeling",
            "scrape_samples_scraped",
            "scrape_series_added",
            "up"
        ]
    );
    assert_eq!(up[4].1, 1.0);
    assert_eq!(up[2].1, 7.0);

    // A series disappears: the next scrape writes a stale marker and
    // federation (which skips stale series) no longer shows it.
    text.set_text("reqs_total{code=\"200\"} 11\n");
    wait_for(10, "stale marker for vanished series", || {
        let f = a.federate("{job=\"text\",__name__=~\"reqs_total|temp\"}");
        (f.len() == 1 && f[0].1 == 11.0).then_some(())
    });
    // The series still exists in the store (it has samples).
    let s = a.api("/api/v1/series?match[]=temp");
    assert_eq!(s.as_array().unwrap().len(), 1);

    // Target goes down: up=0, lastError set, all its series stale.
    text.set(Reply::Body {
        content_type: "text/plain".into(),
        body: b"not a metric line\n".to_vec(),
    });
    let t = wait_for(10, "target down", || {
        let t = a.target(&inst_t)?;
        (t["health"] == "down").then_some(t)
    });
    assert!(t["lastError"].as_str().unwrap().contains("line 1"), "{t}");
    wait_for(10, "all series of the down target stale", || {
        let f = a.federate("{job=\"text\"}");
        let report = |s: &str| s.starts_with("up{") || s.starts_with("scrape_");
        let up = f.iter().find(|(s, _)| s.starts_with("up{"))?;
        (f.iter().all(|(s, _)| report(s)) && up.1 == 0.0).then_some(())
    });
}

#[test]
fn relabeling_honor_labels_and_metric_relabel() {
    let t = Target::text(
        "m{job=\"inner\",instance=\"x\",drop_me=\"1\",keep=\"a\"} 1\nother 2\nsecret_metric 3\n",
    );
    let t2 = Target::text("m{job=\"inner\"} 5\n");
    let a = Argus::start(
        &cfg(&format!(
            "  - job_name: j\n    static_configs: [{{targets: ['{}', 'drop-me:1']}}]\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: 'drop-me:.*'\n        action: drop\n      - source_labels: [__address__]\n        regex: '(.*):(.*)'\n        target_label: port\n        replacement: 'p$2'\n    metric_relabel_configs:\n      - regex: drop_me\n        action: labeldrop\n      - source_labels: [__name__]\n        regex: secret_.*\n        action: drop\n  - job_name: honor\n    honor_labels: true\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr(),
            t2.addr()
        )),
        &[],
    );
    let port = t.port;
    let got = wait_for(10, "relabeled series", || {
        let f = a.federate("{__name__=~\"m|other|secret_metric\"}");
        (f.len() == 3).then_some(f)
    });
    assert_eq!(
        got[0].0,
        format!(
            "m{{exported_instance=\"x\",exported_job=\"inner\",instance=\"127.0.0.1:{port}\",job=\"j\",keep=\"a\",port=\"p{port}\"}}"
        )
    );
    assert_eq!(
        got[1].0,
        format!("m{{instance=\"{}\",job=\"inner\"}}", t2.addr())
    );
    assert_eq!(
        got[2].0,
        format!("other{{instance=\"127.0.0.1:{port}\",job=\"j\",port=\"p{port}\"}}")
    );
    let targets = a.api("/api/v1/targets");
    assert_eq!(targets["droppedTargets"].as_array().unwrap().len(), 1);
    assert_eq!(targets["droppedTargetCounts"]["j"], 1);
    // post-metric-relabeling count excludes the dropped sample
    let post = a.federate(&format!(
        "scrape_samples_post_metric_relabeling{{instance=\"127.0.0.1:{port}\"}}"
    ));
    assert_eq!(post[0].1, 2.0);
}

#[test]
fn api_shapes_match_prometheus() {
    let t = Target::text("a{x=\"1\"} 1\na{x=\"2\"} 2\nb 3\n");
    let a = Argus::start(
        &cfg(&format!(
            "  - job_name: j\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        )),
        &[],
    );
    wait_for(10, "scraped", || (a.federate("a").len() == 2).then_some(()));
    let (code, body) = http_get(&format!("{}/api/v1/series", a.url())).unwrap();
    assert_eq!(code, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    let (code, body) = http_get(&format!(
        "{}/api/v1/series?match[]=%7Bx%3D%22%22%7D",
        a.url()
    ))
    .unwrap();
    assert_eq!(code, 400, "{body}");
    let (code, _) = http_get(&format!(
        "{}/api/v1/series?match[]=a&start=notatime",
        a.url()
    ))
    .unwrap();
    assert_eq!(code, 400);
    let s = a.api("/api/v1/series?match[]=a&limit=1");
    assert_eq!(s.as_array().unwrap().len(), 1);
    let (code, body) = http_request(
        "POST",
        &format!("{}/api/v1/series", a.url()),
        Some("match[]=a"),
    )
    .unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let l = a.api("/api/v1/labels?match[]=a");
    assert_eq!(l, serde_json::json!(["__name__", "instance", "job", "x"]));
    let v = a.api("/api/v1/label/x/values");
    assert_eq!(v, serde_json::json!(["1", "2"]));
    let v = a.api("/api/v1/label/__name__/values?match[]=%7Bjob%3D%22j%22%7D");
    assert!(v.as_array().unwrap().iter().any(|x| x == "b"));
    let b = a.api("/api/v1/status/buildinfo");
    assert_eq!(b["version"], env!("CARGO_PKG_VERSION"));
    let c = a.api("/api/v1/status/config");
    assert!(c["yaml"].as_str().unwrap().contains("job_name: j"));
    let (code, body) = http_get(&format!("{}/metrics", a.url())).unwrap();
    assert_eq!(code, 200);
    for m in [
        "argus_scrapes_total{scrape_job=\"j\"}",
        "argus_head_series ",
        "argus_http_requests_total",
        "argus_scrape_duration_seconds_bucket",
    ] {
        assert!(body.contains(m), "missing {m}");
    }
    // The target's three lines are cached: their bytes and slots.
    let cache: f64 = body
        .lines()
        .find_map(|l| l.strip_prefix("argus_scrape_cache_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("argus_scrape_cache_bytes");
    assert!((30.0..1_000_000.0).contains(&cache), "{cache}");
    assert_eq!(http_get(&format!("{}/-/healthy", a.url())).unwrap().0, 200);
    assert_eq!(http_get(&format!("{}/nope", a.url())).unwrap().0, 404);
}

#[test]
fn request_headers_auth_and_gzip() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("pw"), "s3cret\n").unwrap();
    std::fs::write(d.path().join("token"), "tok-from-file").unwrap();
    let gz = Target::start(Reply::Gzip {
        body: b"zipped_metric{a=\"1\"} 5\n".to_vec(),
    });
    let basic = Target::text("m 1\n");
    let authz = Target::text("m 1\n");
    let bearer = Target::text("m 1\n");
    let a = Argus::start_in(
        d.path(),
        &cfg(&format!(
            "  - job_name: gz\n    params: {{module: [x y]}}\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: basic\n    basic_auth: {{username: alice, password_file: pw}}\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: authz\n    authorization: {{type: Token, credentials: abc}}\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: bearer\n    bearer_token_file: token\n    static_configs: [{{targets: ['{}']}}]\n",
            gz.addr(),
            basic.addr(),
            authz.addr(),
            bearer.addr()
        )),
        &[],
    );
    let f = wait_for(10, "gzip target", || {
        let f = a.federate("zipped_metric");
        (!f.is_empty()).then_some(f)
    });
    assert_eq!(f[0].1, 5.0);
    let head = |t: &Target| {
        wait_for(10, "a request", || {
            t.requests.lock().unwrap().first().cloned()
        })
        .to_lowercase()
    };
    let g = head(&gz);
    assert!(g.starts_with("get /metrics?module=x%20y http/1.1"), "{g}");
    assert!(
        g.contains(
            "accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
        ),
        "{g}"
    );
    assert!(g.contains("accept-encoding: gzip"), "{g}");
    assert!(g.contains("x-prometheus-scrape-timeout-seconds: 1"), "{g}");
    // alice:s3cret (file content trimmed)
    assert!(head(&basic).contains("authorization: basic ywxpy2u6cznjcmv0"));
    assert!(head(&authz).contains("authorization: token abc"));
    assert!(head(&bearer).contains("authorization: bearer tok-from-file"));
    // Secrets do not appear in the config API.
    let c = a.api("/api/v1/status/config");
    assert!(!c["yaml"].as_str().unwrap().contains("abc"));
}

fn label(w: &mut Pb, k: &str, v: &str) {
    w.msg(1, |l| {
        l.bytes(1, k.as_bytes()).bytes(2, v.as_bytes());
    });
}

/// The protobuf decoder: families come out as the text formats name
/// their series.
#[test]
fn protobuf_families_decode_to_the_text_formats_series() {
    let mut w = Pb::default();
    w.delimited(|f| {
        f.bytes(1, b"reqs_total").uint(3, 0).msg(4, |m| {
            label(m, "code", "200");
            m.msg(3, |c| {
                c.double(1, 42.0);
            });
            m.uint(6, 1234);
        });
    });
    w.delimited(|f| {
        f.bytes(1, b"rpc").uint(3, 2).msg(4, |m| {
            m.msg(4, |s| {
                s.uint(1, 10).double(2, 3.5).msg(3, |q| {
                    q.double(1, 0.5).double(2, 0.25);
                });
            });
        });
    });
    w.delimited(|f| {
        f.bytes(1, b"lat").uint(3, 4).msg(4, |m| {
            m.msg(7, |h| {
                h.uint(1, 5).double(2, 1.5).msg(3, |b| {
                    b.uint(1, 2).double(2, 1.0);
                });
            });
        });
    });
    let got = proto::parse(&w.0, false).expect("parse");
    let names: Vec<String> = got
        .iter()
        .map(|s| {
            let l: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} {:?}", l.join(","), s.value)
        })
        .collect();
    assert_eq!(
        names,
        vec![
            "__name__=reqs_total,code=200 Float(42.0)",
            "__name__=rpc,quantile=0.5 Float(0.25)",
            "__name__=rpc_sum Float(3.5)",
            "__name__=rpc_count Float(10.0)",
            "__name__=lat_bucket,le=1.0 Float(2.0)",
            "__name__=lat_bucket,le=+Inf Float(5.0)",
            "__name__=lat_sum Float(1.5)",
            "__name__=lat_count Float(5.0)",
        ]
    );
    assert_eq!(got[0].timestamp, Some(1234));
}

/// Native histograms: spans, packed deltas, zero bucket; classic
/// buckets only when asked.
#[test]
fn protobuf_native_histograms_decode_spans_and_deltas() {
    let mut w = Pb::default();
    w.delimited(|f| {
        f.bytes(1, b"lat").uint(3, 4).msg(4, |m| {
            m.msg(7, |h| {
                h.uint(1, 9)
                    .double(2, 4.0)
                    .sint(5, 3)
                    .double(6, 0.001)
                    .uint(7, 1)
                    // Buckets 2, 3 and then 6 (a gap of 2).
                    .msg(12, |s| {
                        s.sint(1, 2).uint(2, 2);
                    })
                    .msg(12, |s| {
                        s.sint(1, 2).uint(2, 1);
                    });
                // Packed deltas 3, -1, +2 → counts 3, 2, 4.
                let mut d = Pb::default();
                d.varint(6).varint(1).varint(4);
                h.bytes(13, &d.0);
                h.msg(3, |b| {
                    b.uint(1, 4).double(2, 1.0);
                });
            });
        });
    });
    let got = proto::parse(&w.0, false).expect("parse");
    assert_eq!(got.len(), 1);
    let proto::ProtoValue::Histogram(h) = &got[0].value else {
        panic!("{got:?}")
    };
    assert_eq!(h.schema, 3);
    assert_eq!(h.positive, vec![(2, 3.0), (3, 2.0), (6, 4.0)]);
    assert_eq!((h.count, h.sum, h.zero_count), (9.0, 4.0, 1.0));
    // Classic buckets too when asked.
    let both = proto::parse(&w.0, true).expect("parse");
    assert_eq!(both.len(), 5, "{both:?}");
}

/// A malformed body is an error with its byte offset.
#[test]
fn protobuf_malformed_bodies_say_where() {
    // A family claiming 50 bytes with 3 present.
    let e = proto::parse(&[50, 10, 1, b'x'], false).unwrap_err();
    assert_eq!(e.offset, 1, "{e}");
    assert!(e.to_string().contains("runs past the end"), "{e}");
    let e = proto::parse(&[0x80], false).unwrap_err();
    assert!(e.to_string().contains("truncated varint"), "{e}");
    // Spans promising more buckets than there are counts.
    let mut w = Pb::default();
    w.delimited(|f| {
        f.bytes(1, b"h").uint(3, 4).msg(4, |m| {
            m.msg(7, |h| {
                h.msg(12, |s| {
                    s.sint(1, 0).uint(2, 3);
                })
                .uint(13, 2);
            });
        });
    });
    let e = proto::parse(&w.0, false).unwrap_err();
    assert!(e.to_string().contains("fewer bucket counts"), "{e}");
}

/// A target answering with a malformed protobuf body is down, with the
/// byte offset in its last error; its series from before go stale.
#[test]
fn a_malformed_protobuf_scrape_fails_with_its_offset() {
    let mut good = Pb::default();
    good.delimited(|f| {
        f.bytes(1, b"g").uint(3, 1).msg(4, |m| {
            m.msg(2, |g| {
                g.double(1, 7.0);
            });
        });
    });
    let t = Target::start(Reply::Body {
        content_type: PROTOBUF.into(),
        body: good.0.clone(),
    });
    let a = Argus::start(
        &cfg(&format!(
            "  - job_name: p\n    scrape_protocols: [PrometheusProto]\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        )),
        &[],
    );
    a.wait_for(20, "the gauge", || a.query_value("g").filter(|v| *v == 7.0));
    let mut bad = good.0.clone();
    bad.extend_from_slice(&[50, 10, 1]);
    t.set(Reply::Body {
        content_type: PROTOBUF.into(),
        body: bad,
    });
    let err = a.wait_for(20, "the failed scrape", || {
        let targets = a.api("/api/v1/targets");
        let e = targets["activeTargets"][0]["lastError"]
            .as_str()?
            .to_string();
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        err,
        format!(
            "protobuf body at byte {}: a field of 50 bytes runs past the end",
            good.0.len() + 1
        )
    );
    a.wait_for(20, "up = 0 and the gauge stale", || {
        (a.query_value("up{job=\"p\"}") == Some(0.0) && a.query("g").is_empty()).then_some(())
    });
}

/// http_sd as Prometheus does it: groups fetched from a URL with the
/// refresh interval in a header and the configured credentials, each
/// group's labels and `__meta_url` on its targets (relabeling sees it);
/// a changed answer changes the targets; an answer that is not a 200 of
/// JSON keeps the last targets and is counted.
#[test]
fn http_sd_targets_follow_the_endpoint_and_survive_its_failures() {
    let one = Target::text("sd_metric{t=\"one\"} 1\n");
    let two = Target::text("sd_metric{t=\"two\"} 2\n");
    let sd = Recorder::start();
    let groups = |t: &Target, env: &str| {
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"env": "{env}"}}}}, {{"targets": null}}]"#,
            t.addr()
        )
    };
    sd.respond(
        200,
        "application/json; charset=utf-8",
        &groups(&one, "a"),
        &[],
    );
    let a = Argus::start(
        &cfg(&format!(
            "  - job_name: sd\n    http_sd_configs:\n      - url: http://{}/sd?x=1\n        refresh_interval: 1s\n        authorization: {{credentials: t0k}}\n    relabel_configs:\n      - source_labels: [__meta_url]\n        target_label: from\n",
            sd.addr()
        )),
        &[],
    );
    let f = wait_for(10, "the first target scraped", || {
        let f = a.federate("sd_metric");
        (!f.is_empty()).then_some(f)
    });
    assert_eq!(f.len(), 1, "{f:?}");
    let url = format!("http://{}/sd?x=1", sd.addr());
    assert!(
        f[0].0.contains("env=\"a\"") && f[0].0.contains(&format!("from=\"{url}\"")),
        "{f:?}"
    );
    let (head, _) = sd.taken().remove(0);
    let head = head.to_lowercase();
    assert!(head.starts_with("get /sd?x=1 "), "{head}");
    assert!(
        head.contains("x-prometheus-refresh-interval-seconds: 1\r\n"),
        "{head}"
    );
    assert!(head.contains("authorization: bearer t0k"), "{head}");
    assert!(head.contains("accept: application/json"), "{head}");

    // The endpoint now lists the other target.
    sd.respond(200, "application/json", &groups(&two, "b"), &[]);
    wait_for(10, "the second target in, the first out", || {
        let up = a.api("/api/v1/targets?state=active")["activeTargets"]
            .as_array()?
            .iter()
            .map(|t| t["scrapeUrl"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>();
        (up.len() == 1 && up[0].contains(&two.addr())).then_some(())
    });

    // Failing answers keep the targets and are counted.
    for (status, ct, body) in [
        (500, "application/json", "[]"),
        (200, "text/plain", "[]"),
        (200, "application/json", "[null]"),
        (200, "application/json", "{\"targets\": []}"),
        (200, "application/json", "[{\"targets\": [], \"extra\": 1}]"),
    ] {
        let before = metric(&a, "argus_sd_http_failures_total", "");
        sd.respond(status, ct, body, &[]);
        wait_for(10, "the failure counted", || {
            (metric(&a, "argus_sd_http_failures_total", "") > before).then_some(())
        });
        let t = a.target(&two.addr()).expect("the target stays");
        assert_eq!(t["labels"]["env"], "b");
    }
    let log = a.log();
    for want in [
        "server returned HTTP status 500 Internal Server Error",
        "unsupported content type \"text/plain\"",
    ] {
        assert!(log.contains(want), "{want}");
    }
}

/// http_sd settings are checked as Prometheus checks them, with the key
/// path; client settings argus does not take are named as such.
#[test]
fn http_sd_settings_are_checked() {
    for (sd, want) in [
        (
            "{refresh_interval: 1m}",
            "http_sd_configs[0].url: URL is missing",
        ),
        (
            "{url: 'ftp://h/sd'}",
            "URL scheme must be 'http' or 'https'",
        ),
        ("{url: 'http:///sd'}", "host is missing in URL"),
        (
            "{url: 'http://h/sd', refresh_interval: 0s}",
            "refresh_interval must be greater than zero",
        ),
        (
            "{url: 'http://h/sd', bearer_token: a, bearer_token_file: b}",
            "at most one of bearer_token & bearer_token_file must be configured",
        ),
        (
            "{url: 'http://h/sd', proxy_url: 'http://p:3128'}",
            "\"proxy_url\" is a Prometheus setting that argus does not support",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("argus.yml");
        std::fs::write(
            &f,
            format!("scrape_configs:\n  - job_name: a\n    http_sd_configs: [{sd}]\n"),
        )
        .unwrap();
        let (code, text) = argus_cli(["check", "config", f.to_str().unwrap()]);
        assert_ne!(code, Some(0), "{sd} accepted");
        assert!(text.contains(want), "{sd}: {text}");
    }
}
