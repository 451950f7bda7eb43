//! End-to-end scraping: real targets on 127.0.0.1 scraped by a real argus.

mod common;

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
