//! Compatibility with the real Prometheus (Debian package, 2.42) and real
//! client libraries (Python prometheus_client, OpenTelemetry's Prometheus
//! exporter). Needs `prometheus` on PATH and the Python packages; run with
//! `cargo test --features compat --test compat` (see README).
#![cfg(feature = "compat")]

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PY_CLIENT: &str = r#"
import sys, time
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, Info, Enum, start_http_server
r = CollectorRegistry()
c = Counter('app_requests', 'Requests.', ['method', 'code'], registry=r)
c.labels('get', '200').inc(41); c.labels('post', '500').inc(2)
g = Gauge('app_temperature_celsius', 'Temp.', registry=r); g.set(-3.25)
h = Histogram('app_latency_seconds', 'Latency.', ['route'], registry=r)
for v in (0.003, 0.02, 0.2, 0.7, 3.0, 12.0): h.labels('/api').observe(v)
s = Summary('app_payload_bytes', 'Payload.', registry=r); s.observe(512); s.observe(2048)
Info('app_build', 'Build.', registry=r).info({'version': '1.2.3', 'commit': 'abc"q\\'})
Enum('app_state', 'State.', states=['ok', 'degraded'], registry=r).state('degraded')
Gauge('app_special', 'NaN and Inf.', ['kind'], registry=r).labels('inf').set(float('inf'))
start_http_server(int(sys.argv[1]), addr='127.0.0.1', registry=r)
print('ready', flush=True)
time.sleep(3600)
"#;

const PY_OTEL: &str = r#"
import sys, time
from prometheus_client import start_http_server, REGISTRY, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR
for col in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.unregister(col)
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
reader = PrometheusMetricReader()
provider = MeterProvider(resource=Resource.create({'service.name': 'checkout', 'service.version': '7'}), metric_readers=[reader])
metrics.set_meter_provider(provider)
m = metrics.get_meter('shop.checkout', '1.0')
orders = m.create_counter('orders', unit='1', description='Orders placed')
orders.add(5, {'region': 'eu'}); orders.add(3, {'region': 'us'})
lat = m.create_histogram('checkout.duration', unit='ms', description='Checkout time')
for v in (12, 48, 230, 1900): lat.record(v, {'region': 'eu'})
q = m.create_up_down_counter('queue.depth', unit='{item}')
q.add(9); q.add(-2)
start_http_server(int(sys.argv[1]), addr='127.0.0.1')
print('ready', flush=True)
time.sleep(3600)
"#;

fn python(script: &str, port: u16, dir: &std::path::Path, name: &str) -> Proc {
    let f = dir.join(name);
    std::fs::write(&f, script).unwrap();
    let child = Command::new("python3")
        .arg(&f)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    wait_for(20, name, || {
        http_get(&format!("http://127.0.0.1:{port}/metrics"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    Proc(child)
}

fn prom_series(base: &str, sel: &str) -> Vec<BTreeMap<String, String>> {
    let (code, body) =
        http_get(&format!("{base}/api/v1/series?match[]={}", urlencode(sel))).unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut out: Vec<BTreeMap<String, String>> = serde_json::from_value(v["data"].clone()).unwrap();
    out.sort();
    out
}

fn federate(base: &str, sel: &str) -> Vec<(String, f64)> {
    let (code, body) = http_get(&format!("{base}/federate?match[]={}", urlencode(sel))).unwrap();
    assert_eq!(code, 200);
    // Prometheus adds `instance`/`job` the same way; both sort their output.
    parse_federate(&body)
}

#[test]
fn same_targets_same_series_and_values_as_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let (p_client, p_otel) = (free_port(), free_port());
    let _c = python(PY_CLIENT, p_client, tmp.path(), "client.py");
    let _o = python(PY_OTEL, p_otel, tmp.path(), "otel.py");
    let text = Target::text(
        "# TYPE rpc_duration_seconds summary\nrpc_duration_seconds{quantile=\"0.5\"} 0.012\nrpc_duration_seconds{quantile=\"0.99\"} 0.9\nrpc_duration_seconds_sum 17\nrpc_duration_seconds_count 100\n# TYPE x_bucket_test histogram\nx_bucket_test_bucket{le=\"0.5\"} 1\nx_bucket_test_bucket{le=\"+Inf\"} 2\nx_bucket_test_sum 0.7\nx_bucket_test_count 2\nescaped{path=\"C:\\\\x\",msg=\"a\\\"b\\nc\"} 1e-3 \nts_metric 5 1700000000000\n",
    );
    let scrape = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: client\n    static_configs: [{{targets: ['127.0.0.1:{p_client}']}}]\n  - job_name: otel\n    static_configs: [{{targets: ['127.0.0.1:{p_otel}']}}]\n  - job_name: text\n    honor_timestamps: false\n    static_configs: [{{targets: ['{}'], labels: {{tier: web}}}}]\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: 'rpc_(.*)'\n        target_label: family\n        replacement: '$1'\n",
        text.addr()
    );
    let argus = Argus::start(&scrape, &[]);
    let prom_port = free_port();
    let prom_cfg = tmp.path().join("prometheus.yml");
    std::fs::write(&prom_cfg, &scrape).unwrap();
    let _prom = Proc(
        Command::new("prometheus")
            .arg(format!("--config.file={}", prom_cfg.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package) on PATH"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    wait_for(30, "prometheus ready", || {
        http_get(&format!("{prom}/-/ready"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    let all = "{job=~\"client|otel|text\"}";
    // Both have scraped each target at least twice.
    wait_for(30, "both scraped all targets", || {
        let ok = |base: &str| {
            let f = federate(base, "scrape_series_added");
            f.len() == 3 && f.iter().all(|(_, v)| *v == 0.0)
        };
        (ok(&prom) && ok(&argus.url())).then_some(())
    });
    let ps = prom_series(&prom, all);
    let as_ = prom_series(&argus.url(), all);
    let names =
        |s: &[BTreeMap<String, String>]| s.iter().map(|m| format!("{m:?}")).collect::<Vec<_>>();
    assert_eq!(names(&as_), names(&ps), "series sets differ");
    assert!(ps.len() > 40, "only {} series", ps.len());
    let volatile =
        |s: &str| s.starts_with("scrape_duration_seconds") || s.starts_with("scrape_series_added");
    let pf: Vec<_> = federate(&prom, all)
        .into_iter()
        .filter(|(s, _)| !volatile(s))
        .collect();
    let af: Vec<_> = federate(&argus.url(), all)
        .into_iter()
        .filter(|(s, _)| !volatile(s))
        .collect();
    assert_eq!(af.len(), pf.len());
    for (a, p) in af.iter().zip(&pf) {
        assert_eq!(a.0, p.0);
        assert!(
            a.1 == p.1 || (a.1.is_nan() && p.1.is_nan()),
            "{}: argus {} prometheus {}",
            a.0,
            a.1,
            p.1
        );
    }
    // Sanity: the OTel conventions came through (target_info, scope info,
    // unit and _total suffixes).
    let otel: Vec<String> = af
        .iter()
        .filter(|(s, _)| s.contains("job=\"otel\""))
        .map(|(s, _)| s.clone())
        .collect();
    for want in [
        "target_info{",
        "orders_total{",
        "checkout_duration_milliseconds_bucket{",
    ] {
        assert!(
            otel.iter().any(|s| s.starts_with(want)),
            "no {want} in {otel:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(10));
}

/// `promtool query …` from the Debian prometheus package against argus.
#[test]
fn promtool_queries_argus() {
    let t = Target::text(
        "# TYPE jobs_total counter\njobs_total{queue=\"a\"} 5\njobs_total{queue=\"b\"} 7\n",
    );
    let a = Argus::start(
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: q\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        ),
        &[],
    );
    wait_for(10, "first scrape", || {
        (a.federate("jobs_total").len() == 2).then_some(())
    });
    // Let a whole second pass after the first sample so the range below
    // has a step that sees it.
    std::thread::sleep(Duration::from_millis(1500));
    let promtool = |args: &[&str]| {
        let out = Command::new("promtool")
            .arg("query")
            .args(args)
            .output()
            .expect("promtool on PATH (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let url = a.url();
    let out = promtool(&["instant", &url, "sum by (queue) (jobs_total) * 2"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("{queue=\"a\"} => 10 @["), "{out}");
    assert!(lines[1].starts_with("{queue=\"b\"} => 14 @["), "{out}");

    let out = promtool(&["instant", "-o", "json", &url, "jobs_total{queue=\"b\"}"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v[0]["value"][1], "7");
    assert_eq!(v[0]["metric"]["job"], "q");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = ((now - 2).to_string(), now.to_string());
    let out = promtool(&[
        "range",
        &format!("--start={start}"),
        &format!("--end={end}"),
        "--step=1s",
        &url,
        "jobs_total{queue=\"a\"}",
    ]);
    assert!(out.starts_with("jobs_total{instance="), "{out}");
    let points: Vec<&str> = out.lines().skip(1).collect();
    assert!(!points.is_empty() && points.len() <= 3, "{out}");
    for p in points {
        assert!(p.starts_with("5 @["), "{out}");
    }

    let out = promtool(&["series", "--match=jobs_total", &url]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = promtool(&["labels", &url, "queue"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["a", "b"]);
}
