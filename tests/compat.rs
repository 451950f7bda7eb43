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

/// A real Prometheus (Debian package) on a free port, its log in
/// `dir/prometheus.log`, started with `--config.file=dir/prometheus.yml`
/// and `--storage.tsdb.path=dir/prom` unless `args` names another path.
/// Every instance resends firing alerts each second: its first send can
/// come before it has discovered its Alertmanager, and the default next
/// try is a minute later.
struct Prometheus {
    _proc: Proc,
    url: String,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &std::path::Path, args: &[String]) -> Prometheus {
        let port = free_port();
        let log = dir.join("prometheus.log");
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--rules.alert.resend-delay=1s");
        if !args.iter().any(|a| a.starts_with("--storage.tsdb.path=")) {
            cmd.arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom").display()
            ));
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("prometheus (Debian package) on PATH");
        let p = Prometheus {
            _proc: Proc(child),
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        p.wait_for(30, "prometheus ready", || {
            http_get(&format!("{}/-/ready", p.url))
                .ok()
                .filter(|r| r.0 == 200)
        });
        p
    }

    /// [`wait_for`] with Prometheus's log in the failure message.
    fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; prometheus log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
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
    std::fs::write(tmp.path().join("prometheus.yml"), &scrape).unwrap();
    let prometheus = Prometheus::start(tmp.path(), &[]);
    let prom = prometheus.url.clone();
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

/// Results of one query as (labels → value) rows; matrices flattened to
/// one row per point.
fn query_rows(base: &str, path: &str) -> Result<BTreeMap<String, f64>, String> {
    let (code, body) = http_get(&format!("{base}{path}")).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if code != 200 {
        return Err(format!("{code} {}", v["errorType"].as_str().unwrap_or("")));
    }
    let d = &v["data"];
    let num = |x: &serde_json::Value| -> f64 {
        match x.as_str() {
            Some("NaN") => f64::NAN,
            Some("+Inf") => f64::INFINITY,
            Some("-Inf") => f64::NEG_INFINITY,
            Some(s) => s.parse().unwrap_or(f64::NAN),
            None => f64::NAN,
        }
    };
    let mut rows = BTreeMap::new();
    match d["resultType"].as_str() {
        Some("scalar") => {
            rows.insert("scalar".into(), num(&d["result"][1]));
        }
        Some("vector") => {
            for r in d["result"].as_array().into_iter().flatten() {
                rows.insert(r["metric"].to_string(), num(&r["value"][1]));
            }
        }
        Some("matrix") => {
            for r in d["result"].as_array().into_iter().flatten() {
                for p in r["values"].as_array().into_iter().flatten() {
                    rows.insert(format!("{}@{}", r["metric"], p[0]), num(&p[1]));
                }
            }
        }
        other => return Err(format!("unexpected result type {other:?}")),
    }
    Ok(rows)
}

/// For topk/bottomk only the chosen values are compared: which of several
/// series with equal values is kept depends on each store's series order.
fn values_only(rows: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    let mut by_time: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (k, v) in rows {
        let t = k
            .rsplit_once('@')
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        by_time.entry(t).or_default().push(v);
    }
    let mut out = BTreeMap::new();
    for (t, mut vs) in by_time {
        vs.sort_by(|a, b| a.total_cmp(b));
        for (i, v) in vs.into_iter().enumerate() {
            out.insert(format!("{t}#{i}"), v);
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

/// The queries of the differential test: functions × aggregations ×
/// binary operators × offsets × ranges. Functions and behaviours where
/// Prometheus 2.42 and 3.x differ are left out (docs/compatibility.md).
fn differential_queries() -> Vec<String> {
    let mut q = Vec::new();
    let counters = ["http_requests_total", "http_requests_total{code=\"500\"}"];
    let gauge = "node_temperature_celsius";
    let ranges = ["1m", "5m", "17m"];
    let offsets = ["", " offset 3m", " offset -2m"];
    for sel in counters {
        for r in ranges {
            for o in offsets {
                for f in ["rate", "increase", "irate", "resets", "changes"] {
                    q.push(format!("{f}({sel}[{r}]{o})"));
                }
            }
        }
    }
    for r in ranges {
        for f in [
            "delta",
            "idelta",
            "deriv",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
        ] {
            q.push(format!("{f}({gauge}[{r}])"));
        }
        q.push(format!("quantile_over_time(0.9, {gauge}[{r}])"));
        q.push(format!("predict_linear({gauge}[{r}], 600)"));
    }
    for agg in [
        "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
    ] {
        for grouping in ["", " by (job)", " without (instance)", " by (code, method)"] {
            q.push(format!("{agg}{grouping} (rate(http_requests_total[5m]))"));
        }
    }
    for agg in [
        "topk(3, ",
        "bottomk(2, ",
        "quantile(0.5, ",
        "quantile(0.95, ",
    ] {
        q.push(format!("{agg}rate(http_requests_total[5m]))"));
        q.push(format!("{agg}{gauge}) by (zone)"));
    }
    q.push(format!("count_values(\"v\", round({gauge}))"));
    for qv in ["0.5", "0.9", "0.99"] {
        q.push(format!(
            "histogram_quantile({qv}, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))"
        ));
        q.push(format!(
            "histogram_quantile({qv}, rate(http_request_duration_seconds_bucket[5m]))"
        ));
    }
    for op in ["+", "-", "*", "/", "%", "^", "atan2"] {
        // 2.42 keeps the metric name on `vector atan2 scalar`; 3.x drops it.
        if op != "atan2" {
            q.push(format!("{gauge} {op} 3"));
        }
        q.push(format!("sum by (job) (rate(http_requests_total{{code=\"500\"}}[5m])) {op} on (job) sum by (job) (rate(http_requests_total[5m]))"));
    }
    for op in ["==", "!=", ">", "<", ">=", "<="] {
        q.push(format!("{gauge} {op} 45"));
        q.push(format!("{gauge} {op} bool 45"));
        q.push(format!("rate(http_requests_total[5m]) {op} on (job, instance, code, method) irate(http_requests_total[5m])"));
    }
    q.push(
        "rate(http_requests_total[5m]) / on (job) group_left sum by (job) (rate(http_requests_total[5m]))"
            .into(),
    );
    q.push("sum by (job) (rate(http_requests_total[5m])) * on (job) group_right count by (job, code) (http_requests_total)".into());
    for op in ["and", "or", "unless"] {
        q.push(format!(
            "http_requests_total{{code=\"500\"}} {op} http_requests_total{{method=\"GET\"}}"
        ));
        q.push(format!(
            "http_requests_total {op} on (job) http_requests_total{{job=\"api-3\"}}"
        ));
    }
    for f in [
        "abs",
        "ceil",
        "floor",
        "round",
        "sqrt",
        "ln",
        "log2",
        "log10",
        "sgn",
        "timestamp",
    ] {
        q.push(format!("{f}({gauge})"));
    }
    q.push(format!("clamp({gauge}, 40, 50)"));
    q.push(format!("clamp_min({gauge}, 45)"));
    q.push(format!("clamp_max({gauge}, 45)"));
    q.push(format!("round({gauge}, 0.5)"));
    q.push(format!(
        "label_replace({gauge}, \"z\", \"$1-x\", \"zone\", \"z(.*)\")"
    ));
    q.push(format!(
        "label_join({gauge}, \"both\", \",\", \"instance\", \"zone\")"
    ));
    q.push("absent(nonexistent{job=\"x\"})".into());
    q.push(format!("absent_over_time({gauge}[5m])"));
    q.push(format!("scalar(sum({gauge}))"));
    q.push("vector(1) + time()".into());
    q.push("max_over_time(rate(http_requests_total{code=\"500\"}[5m])[30m:1m])".to_string());
    q.push(format!(
        "avg_over_time(sum by (zone) ({gauge})[20m:2m] offset 5m)"
    ));
    q.push("min_over_time(sum(rate(http_requests_total[5m]))[1h:]) ".into());
    q.push(format!("{gauge} @ end()"));
    q.push("rate(http_requests_total[5m] @ start())".into());
    q.push(format!(
        "sum by (zone) ({gauge} offset 10m) - sum by (zone) ({gauge})"
    ));
    q
}

/// Runs one request on both and describes how the answers differ, if they
/// do (the same error type on both counts as agreement).
fn compare_one(q: &str, argus: &str, prom: &str, path: &str) -> Option<String> {
    let (mut a, mut p) = (query_rows(argus, path), query_rows(prom, path));
    if q.starts_with("topk") || q.starts_with("bottomk") {
        a = a.map(values_only);
        p = p.map(values_only);
    }
    match (a, p) {
        (Ok(a), Ok(p)) => {
            let differs = |(k, v): &(&String, &f64)| !p.get(*k).is_some_and(|w| close(**v, *w));
            if a.len() == p.len() && !a.iter().any(|x| differs(&x)) {
                return None;
            }
            let diff: Vec<_> = a.iter().filter(differs).take(2).collect();
            let theirs: Vec<_> = diff.iter().map(|(k, _)| p.get(*k)).collect();
            Some(format!(
                "argus {} rows, prometheus {} rows; first differences {diff:?} vs {theirs:?}",
                a.len(),
                p.len()
            ))
        }
        (Err(a), Err(p)) => (a.split(' ').next() != p.split(' ').next())
            .then(|| format!("argus error {a}, prometheus error {p}")),
        (a, p) => Some(format!("argus {a:?}, prometheus {p:?}")),
    }
}

/// The same data in argus and Prometheus 2.42, a few hundred queries at
/// several times on both, results compared with float tolerance.
#[test]
fn differential_queries_against_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Samples sit 7 s off the minute grid so that subquery steps (which
    // are minute-aligned) never land exactly on a sample: Prometheus 3's
    // left-open windows and 2.42's closed ones would differ there.
    let end = now / 3600 * 3600 - 3600 + 7;
    let spec = om_data::Spec {
        end,
        span: 3 * 3600,
        step: 15,
        counters: 120,
        histograms: 8,
        gauges: 12,
        slo_days: 0,
        slo_series: 0,
    };
    let om = tmp.path().join("data.om");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&om).unwrap());
    om_data::generate(&spec, &mut f).unwrap();
    drop(f);

    let blocks = tmp.path().join("prom");
    std::fs::create_dir_all(&blocks).unwrap();
    let st = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&blocks)
        .stdout(Stdio::null())
        .status()
        .expect("promtool");
    assert!(st.success());
    let adir = tmp.path().join("argus");
    std::fs::create_dir_all(&adir).unwrap();
    let st = Command::new(argus_bin())
        .args(["import", "openmetrics"])
        .arg(&om)
        .arg("--storage.path")
        .arg(adir.join("data"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());

    let cfg = "global:\n  scrape_interval: 1h\nscrape_configs: []\n";
    std::fs::write(tmp.path().join("prometheus.yml"), cfg).unwrap();
    let prometheus = Prometheus::start(
        tmp.path(),
        &[
            format!("--storage.tsdb.path={}", blocks.display()),
            "--storage.tsdb.retention.time=3650d".to_string(),
        ],
    );
    let prom = prometheus.url.clone();
    let argus = Argus::start_in(&adir, cfg, &["--storage.retention", "3650d"]);

    // Evaluation times off the 15 s sample grid, so no sample sits exactly
    // on a window edge (Prometheus 3 windows are left-open, 2.42's closed).
    // The first is late enough that no window (subqueries included) reaches
    // back to the first samples: 2.42 and 3.x extrapolate rate() towards a
    // series' start differently.
    let times = [end - 3 * 3600 + 4003, end - 3600 - 296, end - 11, end + 94];
    let queries = differential_queries();
    let (mut compared, mut mismatches) = (0usize, Vec::new());
    for q in &queries {
        let mut paths: Vec<(String, String)> = times
            .iter()
            .map(|t| {
                (
                    format!("{q} @ {t}"),
                    format!("/api/v1/query?query={}&time={t}.5", urlencode(q)),
                )
            })
            .collect();
        // And as a range query over the last hour at a 1m step.
        paths.push((
            format!("range {q}"),
            format!(
                "/api/v1/query_range?query={}&start={}.5&end={}.5&step=60",
                urlencode(q),
                end - 3600 - 7,
                end - 7
            ),
        ));
        for (what, path) in paths {
            compared += 1;
            if let Some(m) = compare_one(q, &argus.url(), &prom, &path) {
                mismatches.push(format!("{what}: {m}"));
            }
        }
    }
    eprintln!(
        "differential: {} queries, {compared} evaluations, {} mismatches",
        queries.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} of {compared} evaluations differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Replaces the parts of an alerts body that differ by run (times, the
/// generator host) so two senders' bodies can be compared byte for byte.
fn normalize_alerts_body(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body).to_string();
    let time = regex::Regex::new(r#""(startsAt|endsAt)":"[0-9T:.\-]+Z""#).unwrap();
    let s = time.replace_all(&s, "\"$1\":\"T\"").to_string();
    let url = regex::Regex::new(r#""generatorURL":"http://[^/"]+/"#).unwrap();
    url.replace_all(&s, "\"generatorURL\":\"http://H/")
        .to_string()
}

/// The `POST /api/v2/alerts` body argus sends is the one Prometheus 2.42
/// sends for the same rule, target and external labels, byte for byte
/// once times and hosts are normalized; and the real Alertmanager 0.25
/// accepts argus's alerts and delivers them, firing then resolved, to a
/// webhook.
#[test]
fn alerts_match_prometheus_and_reach_real_alertmanager() {
    let tmp = tempfile::tempdir().unwrap();
    let t = Target::text("queue_depth{queue=\"a b\"} 42\n");
    std::fs::write(
        tmp.path().join("rules.yml"),
        "groups:\n  - name: q\n    interval: 1s\n    rules:\n      - alert: Backlog\n        expr: queue_depth > 10\n        labels: {severity: page}\n        annotations: {summary: '{{ $labels.queue }} at {{ $value }}', runbook: 'https://r/x?a=1&b=\"2\"'}\n",
    )
    .unwrap();
    let scrape = |am: &str| {
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels: {{region: eu, severity: low}}\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{am}']}}]\nscrape_configs:\n  - job_name: worker\n    static_configs: [{{targets: ['{}']}}]\n",
            t.addr()
        )
    };
    // Prometheus and argus each send to a recorder.
    let (prom_rec, argus_rec) = (Recorder::start(), Recorder::start());
    std::fs::write(tmp.path().join("prometheus.yml"), scrape(&prom_rec.addr())).unwrap();
    let prometheus = Prometheus::start(tmp.path(), &[]);
    let _argus = Argus::start_in(tmp.path(), &scrape(&argus_rec.addr()), &[]);
    let first_body = |r: &Recorder| {
        r.requests
            .lock()
            .unwrap()
            .iter()
            .find(|(h, _)| h.starts_with("POST /api/v2/alerts"))
            .map(|(_, b)| b.clone())
    };
    let p = prometheus.wait_for(60, "Prometheus's alert", || first_body(&prom_rec));
    let a = wait_for(30, "argus's alert", || first_body(&argus_rec));
    assert_eq!(
        normalize_alerts_body(&a),
        normalize_alerts_body(&p),
        "argus:\n{}\nprometheus:\n{}",
        String::from_utf8_lossy(&a),
        String::from_utf8_lossy(&p)
    );

    // The real Alertmanager takes argus's alerts and delivers them.
    let hook = Recorder::start();
    let am_port = free_port();
    let am_cfg = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n        send_resolved: true\n",
            hook.addr()
        ),
    )
    .unwrap();
    let _am = Proc(
        Command::new("/usr/bin/prometheus-alertmanager")
            .arg(format!("--config.file={}", am_cfg.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg(format!(
                "--storage.path={}",
                tmp.path().join("am").display()
            ))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager (Debian package)"),
    );
    wait_for(30, "alertmanager ready", || {
        http_get(&format!("http://127.0.0.1:{am_port}/-/ready"))
            .ok()
            .filter(|r| r.0 == 200)
    });
    let dir = tmp.path().join("to-am");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rules.yml"),
        std::fs::read(tmp.path().join("rules.yml")).unwrap(),
    )
    .unwrap();
    // The same argus also routes by itself, with the same routing, to a
    // second webhook: its payload must be the one Alertmanager sends.
    let own_hook = Recorder::start();
    std::fs::write(
        dir.join("own.yml"),
        std::fs::read_to_string(&am_cfg)
            .unwrap()
            .replace(&hook.addr(), &own_hook.addr()),
    )
    .unwrap();
    let cfg2 = scrape(&format!("127.0.0.1:{am_port}"))
        .replace("alerting:\n", "alerting:\n  routing_file: own.yml\n");
    let _a2 = Argus::start_in(&dir, &cfg2, &[]);
    let first_firing = |r: &Recorder| {
        r.requests
            .lock()
            .unwrap()
            .iter()
            .find(|(_, b)| String::from_utf8_lossy(b).contains("\"status\":\"firing\""))
            .map(|(_, b)| b.clone())
    };
    let am_body = wait_for(30, "Alertmanager's webhook", || first_firing(&hook));
    let own_body = wait_for(30, "argus's webhook", || first_firing(&own_hook));
    let url = regex::Regex::new(r#""externalURL":"[^"]*""#).unwrap();
    let norm = |b: &[u8]| {
        url.replace_all(&String::from_utf8_lossy(b), "\"externalURL\":\"U\"")
            .to_string()
    };
    assert_eq!(
        norm(&own_body),
        norm(&am_body),
        "argus's own webhook payload differs from Alertmanager 0.25's"
    );
    let firing = wait_for(30, "webhook with the firing alert", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "firing")
    });
    assert_eq!(firing["version"], "4");
    let alert = &firing["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "Backlog");
    assert_eq!(alert["labels"]["region"], "eu");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["annotations"]["summary"], "a b at 42");
    assert!(
        alert["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/graph?g0.expr=queue_depth+%3E+10&g0.tab=1")
    );
    t.set_text("queue_depth{queue=\"a b\"} 1\n");
    let resolved = wait_for(30, "webhook with the resolved alert", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert_eq!(resolved["alerts"][0]["labels"]["alertname"], "Backlog");
    assert_eq!(resolved["alerts"][0]["startsAt"], alert["startsAt"]);
}

/// `argus config routes show|test` against the real amtool 0.25 on every
/// Alertmanager routing fixture amtool can read: the same tree, and the
/// same receivers (and matching tree) for a few hundred label sets drawn
/// from the names and values the routes match on.
#[test]
fn routes_match_amtool() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/alertmanager");
    let files = [
        "cli/testdata/conf.good.yml",
        "cli/testdata/conf.routing.yml",
        "cli/testdata/conf.routing-reverted.yml",
        "doc/examples/simple.yml",
        "doc/examples/route_labels.yml",
        "examples/ha/alertmanager.yml",
        "config/testdata/conf.good.yml",
    ];
    let amtool = |args: &[&str]| {
        let out = Command::new("amtool")
            .args(args)
            .output()
            .expect("amtool (Debian package prometheus-alertmanager)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let argus = |args: &[&str]| {
        let out = Command::new(argus_bin()).args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let word =
        regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*[:=!~]+\s*['"]?([^'",}\s]*)"#).unwrap();
    let (mut compared_files, mut compared_sets) = (0, 0);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for f in files {
        let path = root.join(f);
        let p = path.to_str().unwrap();
        let (ok, want) = amtool(&["config", "routes", "show", &format!("--config.file={p}")]);
        if !ok {
            // Newer keys (tracing, route labels) that amtool 0.25 predates.
            continue;
        }
        compared_files += 1;
        assert_eq!(
            argus(&["config", "routes", "show", "--config", p]).1,
            want,
            "{f}"
        );
        // Label names and values the routes mention, plus ones they do not.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut names = vec!["alertname".to_string(), "zone".to_string()];
        let mut values = vec!["other".to_string(), "critical".to_string(), "1".to_string()];
        for c in word.captures_iter(&text) {
            names.push(c[1].to_string());
            let v = c[2]
                .trim_start_matches('^')
                .trim_end_matches('$')
                .to_string();
            values.extend(
                v.split('|')
                    .map(|s| s.trim_matches(|c| c == '(' || c == ')').to_string()),
            );
        }
        names.sort();
        names.dedup();
        values.retain(|v| !v.is_empty() && !v.contains(['[', '*', '\\', '.', '?', '+']));
        values.sort();
        values.dedup();
        for i in 0..60 {
            let mut labels: Vec<String> = Vec::new();
            for _ in 0..1 + next(4) {
                let n = &names[next(names.len())];
                if labels.iter().any(|l| l.starts_with(&format!("{n}="))) {
                    continue;
                }
                labels.push(format!("{n}={}", values[next(values.len())]));
            }
            let mut args = vec!["config", "routes", "test"];
            if i % 10 == 0 {
                args.push("--tree");
            }
            let cfg_am = format!("--config.file={p}");
            let mut a_am = args.clone();
            a_am.push(&cfg_am);
            a_am.extend(labels.iter().map(|s| s.as_str()));
            let mut a_ar = args.clone();
            a_ar.extend(["--config", p]);
            a_ar.extend(labels.iter().map(|s| s.as_str()));
            let (_, want) = amtool(&a_am);
            let (_, got) = argus(&a_ar);
            assert_eq!(got, want, "{f} {labels:?}");
            compared_sets += 1;
        }
    }
    assert!(
        compared_files >= 4,
        "only {compared_files} fixtures readable by amtool"
    );
    eprintln!("routes: {compared_files} fixtures, {compared_sets} label sets, all equal to amtool");
}

/// argus as an Alertmanager: `amtool alert add` and `alert query`, and the
/// real Prometheus 2.42 sending its alerts to argus, which routes them to
/// a webhook.
#[test]
fn amtool_and_prometheus_use_argus_as_their_alertmanager() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = Recorder::start();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let a = Argus::start_in(
        tmp.path(),
        "alerting:\n  routing_file: alertmanager.yml\nscrape_configs: []\n",
        &[],
    );
    let am_url = format!("--alertmanager.url={}", a.url());
    let out = Command::new("amtool")
        .args([
            "alert",
            "add",
            "alertname=Manual",
            "severity=page",
            "--annotation=summary=by hand",
            &am_url,
        ])
        .output()
        .expect("amtool");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = wait_for(20, "the amtool alert at the webhook", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "Manual")
    });
    assert_eq!(got["alerts"][0]["annotations"]["summary"], "by hand");
    let out = Command::new("amtool")
        .args(["alert", "query", "alertname=Manual", &am_url])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("Manual"),
        "{listed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Silences through amtool: add, query, an alert held back, expire.
    let amtool = |args: &[&str]| -> String {
        let out = Command::new("amtool")
            .args(args)
            .arg(&am_url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "amtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let id = amtool(&[
        "silence",
        "add",
        "alertname=Muted",
        "--comment=maintenance",
        "--author=oncall",
        "--duration=1h",
    ])
    .trim()
    .to_string();
    assert_eq!(id.len(), 36, "{id}");
    let q = amtool(&["silence", "query", "-o", "extended"]);
    assert!(
        q.contains(&id) && q.contains("alertname=\"Muted\"") && q.contains("maintenance"),
        "{q}"
    );
    assert_eq!(amtool(&["silence", "query", "-q"]).trim(), id);
    // amtool reads argus's configuration through /api/v2/status.
    let shown = amtool(&["config", "show"]);
    assert!(
        shown.contains("receiver: hook") && shown.contains("<secret>"),
        "{shown}"
    );
    assert!(!shown.contains(&hook.addr()), "{shown}");
    amtool(&["alert", "add", "alertname=Muted", "severity=page"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !hook
            .json_bodies()
            .iter()
            .any(|b| b["groupLabels"]["alertname"] == "Muted"),
        "{:?}",
        hook.json_bodies()
    );
    let q = amtool(&["alert", "query", "--silenced", "alertname=Muted"]);
    assert!(q.contains("Muted"), "{q}");
    amtool(&["silence", "expire", &id]);
    assert!(amtool(&["silence", "query", "-q"]).trim().is_empty());
    assert!(amtool(&["silence", "query", "--expired", "-q"]).contains(&id));
    wait_for(20, "the alert once its silence expired", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "Muted")
    });
    // Prometheus with argus as its Alertmanager.
    std::fs::write(
        tmp.path().join("prom-rules.yml"),
        "groups:\n  - name: p\n    interval: 1s\n    rules:\n      - alert: FromPrometheus\n        expr: vector(1)\n        labels: {severity: ticket}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [prom-rules.yml]\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            a.port
        ),
    )
    .unwrap();
    let prometheus = Prometheus::start(tmp.path(), &[]);
    let got = prometheus.wait_for(60, "Prometheus's alert at argus's webhook", || {
        hook.json_bodies()
            .into_iter()
            .find(|b| b["groupLabels"]["alertname"] == "FromPrometheus")
    });
    assert_eq!(got["alerts"][0]["labels"]["severity"], "ticket");
    assert_eq!(got["alerts"][0]["status"], "firing");
}

/// The unit tests that show argus's SLO rules fire where Sloth's do pass
/// under the real `promtool test rules` too, on both rule files.
#[test]
fn promtool_agrees_generated_slo_rules_fire_as_sloths() {
    sloth_unit_tests_pass_under("promtool");
}

/// `argus slo generate` output passes the real `promtool check rules`.
#[test]
fn promtool_accepts_generated_slo_rules() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/sloth/examples");
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in [
        "getting-started.yml",
        "home-wifi.yml",
        "kubernetes-apiserver.yml",
        "multifile.yml",
        "no-alerts.yml",
        "openslo-getting-started.yml",
        "openslo-kubernetes-apiserver.yml",
        "raw-home-wifi.yml",
    ] {
        let out = tmp.path().join(name);
        let st = Command::new(argus_bin())
            .args(["slo", "generate", "-o"])
            .arg(&out)
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(st.success(), "{name}");
        let p = Command::new("promtool")
            .args(["check", "rules"])
            .arg(&out)
            .output()
            .expect("promtool");
        assert!(
            p.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&p.stderr)
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

/// The protobuf exposition of a real client library (Prometheus 2.42's
/// own /metrics, served by client_golang) gives the same series as its
/// text exposition: one argus scrapes it both ways, as two jobs.
#[test]
fn protobuf_and_text_scrapes_of_prometheus_give_the_same_series() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .unwrap();
    let prometheus = Prometheus::start(tmp.path(), &[]);
    let target = prometheus.url.trim_start_matches("http://").to_string();
    let adir = tmp.path().join("argus");
    std::fs::create_dir_all(&adir).unwrap();
    let argus = Argus::start_in(
        &adir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: proto\n    scrape_protocols: [PrometheusProto]\n    static_configs: [{{targets: ['{target}']}}]\n  - job_name: text\n    scrape_protocols: [PrometheusText0.0.4]\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
        &[],
    );
    // Series sets at one instant, without `job`; series that depend on
    // how often /metrics was asked for (the handler's own request counts
    // and latencies, the scrape-size histogram) may differ by a scrape.
    let set = |job: &str| -> BTreeMap<String, f64> {
        argus
            .query(&format!("{{job=\"{job}\"}}"))
            .iter()
            .filter_map(|s| {
                let mut m: BTreeMap<String, String> =
                    serde_json::from_value(s["metric"].clone()).unwrap();
                m.remove("job");
                let name = m.get("__name__").cloned().unwrap_or_default();
                let v: f64 = s["value"][1].as_str()?.parse().ok()?;
                Some((
                    format!("{m:?}"),
                    if name.contains("build_info") { v } else { 0.0 },
                ))
            })
            .collect()
    };
    let (proto, text) = argus.wait_for(30, "both jobs scraped twice", || {
        let up = |job: &str| {
            argus
                .query_value(&format!("count_over_time(up{{job=\"{job}\"}}[1m])"))
                .is_some_and(|n| n >= 2.0)
        };
        (up("proto") && up("text")).then(|| (set("proto"), set("text")))
    });
    let families = |s: &BTreeMap<String, f64>| -> std::collections::BTreeSet<String> {
        s.keys()
            .map(|k| k.split('"').nth(3).unwrap_or("").to_string())
            .collect()
    };
    assert!(proto.len() > 100, "{} series over protobuf", proto.len());
    assert_eq!(families(&proto), families(&text));
    let differ: Vec<&String> = proto
        .keys()
        .filter(|k| !text.contains_key(*k))
        .chain(text.keys().filter(|k| !proto.contains_key(*k)))
        .filter(|k| !k.contains("/metrics") && !k.contains("scrape"))
        .collect();
    assert!(differ.is_empty(), "series in one scrape only: {differ:?}");
    // Values agree where they cannot move (build info is 1).
    for (k, v) in proto.iter().filter(|(k, _)| k.contains("build_info")) {
        assert_eq!(text.get(k), Some(v), "{k}");
    }
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts `bytes` of tmpfs (needs root, as `.ci/run` runs).
    fn mount(bytes: u64) -> Tmpfs {
        let d = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(d.path())
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (the compatibility suite runs as root in .ci/run)"
        );
        Tmpfs(d)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// The full-disk scenario of tests/wal.rs on a real full disk: a 32 MiB
/// tmpfs as `--storage.path`, all but 512 KiB of it taken by another file,
/// so argus's writes fail with ENOSPC a few seconds after it starts; the
/// file is then deleted.
#[test]
fn a_full_tmpfs_degrades_to_memory_alerts_and_recovers_without_loss() {
    let fs = Tmpfs::mount(32 << 20);
    let filler = fs.0.path().join("filler");
    std::fs::write(&filler, vec![1u8; (32 << 20) - (512 << 10)]).unwrap();
    disk_full_scenario(
        fs.0.path(),
        |dir, cfg| Argus::start_in(dir, cfg, &[]),
        |_| std::fs::remove_file(&filler).unwrap(),
    );
}
