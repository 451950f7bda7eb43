//! The PromQL HTTP API of a real argus process over data it scraped from a
//! real target: JSON shapes, GET and POST, error types and status codes,
//! and the requests Grafana's Prometheus data source makes.

mod common;

use common::*;
use serde_json::Value;

fn get_json(a: &Argus, path: &str) -> (u16, Value) {
    let (code, body) = http_get(&format!("{}{}", a.url(), path)).unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (code, v)
}

fn start() -> (Target, Argus) {
    let t = Target::text(
        "# TYPE req_total counter\nreq_total{code=\"200\"} 10\nreq_total{code=\"500\"} 2\n# TYPE temp gauge\ntemp 21.5\n",
    );
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &[],
    );
    wait_for(10, "two scrapes", || {
        let v = a.api(&format!(
            "/api/v1/query?query={}",
            urlencode("count_over_time(req_total{code=\"200\"}[1m])")
        ));
        let n: f64 = v["result"][0]["value"][1].as_str()?.parse().ok()?;
        (n >= 2.0).then_some(())
    });
    (t, a)
}

#[test]
fn instant_and_range_queries_answer_as_prometheus_does() {
    let (_t, a) = start();

    // Instant vector: labels as an object, [time, "value"] pairs.
    let d = a.api(&format!(
        "/api/v1/query?query={}",
        urlencode("sum by (code) (req_total)")
    ));
    assert_eq!(d["resultType"], "vector");
    let mut got: Vec<(String, String)> = d["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["code"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("200".into(), "10".into()), ("500".into(), "2".into())]
    );
    assert!(d["result"][0]["value"][0].is_number());

    // Scalars and strings.
    let d = a.api("/api/v1/query?query=1%2B2&time=100");
    assert_eq!(
        d,
        serde_json::json!({"resultType": "scalar", "result": [100, "3"]})
    );
    let d = a.api("/api/v1/query?query=%22hi%22&time=1.5");
    assert_eq!(
        d,
        serde_json::json!({"resultType": "string", "result": [1.5, "hi"]})
    );

    // POST, form-encoded, as Grafana sends it.
    let (code, body) = http_request(
        "POST",
        &format!("{}/api/v1/query", a.url()),
        Some(&format!("query={}", urlencode("temp * 2"))),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "43");
    assert_eq!(v["data"]["result"][0]["metric"]["job"], "app");
    assert!(v["data"]["result"][0]["metric"].get("__name__").is_none());

    // A range query over the last 30 s at a 5 s step: a matrix whose points
    // sit exactly on the steps.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = (now - 30, now);
    let d = a.api(&format!(
        "/api/v1/query_range?query={}&start={start}&end={end}&step=5",
        urlencode("temp")
    ));
    assert_eq!(d["resultType"], "matrix");
    let pts = d["result"][0]["values"].as_array().unwrap();
    assert!(!pts.is_empty());
    for p in pts {
        let t = p[0].as_u64().unwrap();
        assert_eq!((t - start) % 5, 0, "{p}");
        assert_eq!(p[1], "21.5");
    }

    // Info annotation: rate over something that is not named like a counter.
    let (code, v) = get_json(
        &a,
        &format!("/api/v1/query?query={}", urlencode("rate(temp[1m])")),
    );
    assert_eq!(code, 200);
    let info = v["infos"][0].as_str().unwrap();
    assert!(
        info.starts_with("PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temp\" (1:6)"),
        "{info}"
    );
}

#[test]
fn errors_carry_prometheus_types_and_status_codes() {
    let (_t, a) = start();
    // Parse error: bad_data, 400.
    let (code, v) = get_json(&a, &format!("/api/v1/query?query={}", urlencode("sum(")));
    assert_eq!(code, 400);
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid parameter \"query\"")
    );
    // Execution error: many-to-many matching, 422.
    let (code, v) = get_json(
        &a,
        &format!(
            "/api/v1/query?query={}",
            urlencode("req_total + on() group_left req_total")
        ),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("found duplicate series"),
        "{v}"
    );
    // Bad step and too many points.
    let (code, v) = get_json(&a, "/api/v1/query_range?query=up&start=0&end=10&step=0");
    assert_eq!((code, v["errorType"].as_str()), (400, Some("bad_data")));
    let (code, v) = get_json(&a, "/api/v1/query_range?query=up&start=0&end=100000&step=1");
    assert_eq!(code, 400);
    assert!(v["error"].as_str().unwrap().contains("11,000 points"));
    let (code, _) = get_json(&a, "/api/v1/query?query=up&time=yesterday");
    assert_eq!(code, 400);
    // A range query must not return a range vector.
    let (code, v) = get_json(
        &a,
        "/api/v1/query_range?query=up%5B1m%5D&start=0&end=10&step=1",
    );
    assert_eq!(code, 400, "{v}");
}

#[test]
fn format_and_parse_query() {
    let (_t, a) = start();
    let d = a.api(&format!(
        "/api/v1/format_query?query={}",
        urlencode("sum(rate(req_total{code=\"500\"}[5m]))by(job)")
    ));
    assert_eq!(d, "sum by (job) (rate(req_total{code=\"500\"}[5m]))");
    let d = a.api(&format!(
        "/api/v1/parse_query?query={}",
        urlencode("up{job=\"a\"} > 1")
    ));
    assert_eq!(d["type"], "binaryExpr", "{d}");
    assert_eq!(d["op"], ">");
}

#[test]
fn grafana_metadata_requests() {
    let (_t, a) = start();
    // Label names and values with time bounds, series with match[].
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let d = a.api(&format!("/api/v1/labels?start={}&end={now}", now - 3600));
    let names: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    for n in ["__name__", "code", "instance", "job"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let d = a.api(&format!(
        "/api/v1/label/code/values?match[]={}&start={}&end={now}",
        urlencode("req_total"),
        now - 3600
    ));
    assert_eq!(d, serde_json::json!(["200", "500"]));
    let d = a.api(&format!(
        "/api/v1/series?match[]={}&start={}&end={now}",
        urlencode("req_total{code=\"500\"}"),
        now - 3600
    ));
    assert_eq!(d.as_array().unwrap().len(), 1);
    assert_eq!(d[0]["__name__"], "req_total");
    let d = a.api("/api/v1/status/buildinfo");
    assert!(d["version"].is_string());
}

#[test]
fn sample_limit_and_grafana_editor_endpoints() {
    let t = Target::text(
        "# TYPE a counter\na_total{i=\"1\"} 1\na_total{i=\"2\"} 2\na_total{i=\"3\"} 3\n",
    );
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &["--query.max-samples", "4"],
    );
    wait_for(10, "first scrape", || {
        (a.federate("a_total").len() == 3).then_some(())
    });
    // Three samples fit; a range over more steps does not.
    let (code, _) = get_json(&a, "/api/v1/query?query=a_total");
    assert_eq!(code, 200);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (code, v) = get_json(
        &a,
        &format!(
            "/api/v1/query_range?query=a_total&start={}&end={}&step=1",
            now - 5,
            now + 5
        ),
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert_eq!(
        v["error"],
        "query processing would load too many samples into memory in query execution"
    );
    // Grafana's editor asks for metadata and exemplars.
    assert_eq!(a.api("/api/v1/metadata"), serde_json::json!({}));
    assert_eq!(
        a.api("/api/v1/query_exemplars?query=a_total"),
        serde_json::json!([])
    );
}
