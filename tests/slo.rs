//! `argus slo generate` against Sloth's own outputs: for every spec in
//! ../shared/conformance/sloth/examples that argus accepts, the generated
//! rules are Sloth's committed rules — same groups, same series and alert
//! names, same labels and annotations, same expressions once parsed —
//! so they record and fire on exactly the same inputs. Specs that need
//! Sloth plugins are refused with the plugin's position.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::argus_bin;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sloth/examples")
}

/// Rules of every group of every YAML document, keyed by group name, with
/// expressions normalised through the PromQL parser and the generator's
/// version label dropped.
fn rules(text: &str) -> BTreeMap<String, Vec<(String, String, String, String)>> {
    let mut out = BTreeMap::new();
    for doc in text.split("\n---\n") {
        let v: Value = match serde_saphyr::from_str(doc) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let groups = if v["spec"]["groups"].is_array() {
            v["spec"]["groups"].clone()
        } else {
            v["groups"].clone()
        };
        for g in groups.as_array().into_iter().flatten() {
            let mut rs = Vec::new();
            for r in g["rules"].as_array().into_iter().flatten() {
                let name = r["record"]
                    .as_str()
                    .or(r["alert"].as_str())
                    .unwrap()
                    .to_string();
                let expr = r["expr"].as_str().unwrap();
                let ast = promql_parser::parser::parse(expr)
                    .unwrap_or_else(|e| panic!("{name}: {e}\n{expr}"));
                let mut labels = r["labels"].clone();
                if let Some(m) = labels.as_object_mut() {
                    m.remove("sloth_version");
                }
                rs.push((
                    name,
                    ast.to_string(),
                    labels.to_string(),
                    r["annotations"].to_string(),
                ));
            }
            out.insert(g["name"].as_str().unwrap().to_string(), rs);
        }
    }
    out
}

fn generate(spec: &Path) -> std::process::Output {
    Command::new(argus_bin())
        .args(["slo", "generate", "--label", "cmd=examplesgen.sh"])
        .arg(spec)
        .output()
        .unwrap()
}

#[test]
fn generated_rules_are_sloths_on_every_supported_example() {
    let dir = examples();
    let mut compared = 0;
    let mut refused = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    for spec in names {
        let file = spec.file_name().unwrap().to_str().unwrap().to_string();
        let out = generate(&spec);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            assert!(
                err.contains("Sloth plugins are not supported") || err.contains("invalid query"),
                "{file}: {err}"
            );
            // The error points at the spec's line.
            assert!(err.contains(&format!("{file}:")), "{file}: {err}");
            refused.push(file);
            continue;
        }
        let ours = rules(&String::from_utf8_lossy(&out.stdout));
        let sloths = rules(&std::fs::read_to_string(dir.join("_gen").join(&file)).unwrap());
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            sloths.keys().collect::<Vec<_>>(),
            "{file}: groups"
        );
        for (g, theirs) in &sloths {
            let mine = &ours[g];
            assert_eq!(mine.len(), theirs.len(), "{file} {g}: rule count");
            for (a, b) in mine.iter().zip(theirs) {
                assert_eq!(a, b, "{file} {g}");
            }
        }
        // The rule file loads as Prometheus rules (argus's checker is
        // promtool's; the compatibility suite runs promtool itself).
        if !String::from_utf8_lossy(&out.stdout).contains("PrometheusRule") {
            let rf = std::env::temp_dir().join(format!("argus-slo-{}-{file}", std::process::id()));
            std::fs::write(&rf, &out.stdout).unwrap();
            let chk = Command::new(argus_bin())
                .args(["check", "rules"])
                .arg(&rf)
                .output()
                .unwrap();
            let _ = std::fs::remove_file(&rf);
            assert!(
                chk.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&chk.stderr)
            );
        }
        compared += 1;
    }
    // 18 spec files: 11 equal to Sloth's output, 7 need Sloth plugins or
    // MetricsQL.
    assert_eq!(compared, 11, "refused: {refused:?}");
    assert_eq!(refused.len(), 7, "{refused:?}");
}

/// The generated rules fire on the same inputs as Sloth's committed
/// output: a fast burn pages and tickets, a three-day slow burn tickets,
/// errors within budget alert nothing — the same unit tests pass on both
/// under `argus test rules` (and under promtool in the compatibility
/// suite).
#[test]
fn generated_rules_fire_on_the_same_inputs_as_sloths() {
    common::sloth_unit_tests_pass_under(argus_bin());
}

#[test]
fn check_slo_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.yml");
    std::fs::write(
        &f,
        "version: prometheus/v1\nservice: api\nslos:\n  - name: availability\n    objective: 120\n    sli:\n      events:\n        error_query: sum(rate(errors[{{.window}}]))\n        total_query: sum(rate(requests{{.window}}))\n    alerting:\n      name: ApiErrors\n",
    )
    .unwrap();
    let out = Command::new(argus_bin())
        .args(["check", "slo"])
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).replace(&f.display().to_string(), "FILE");
    assert!(!out.status.success());
    assert!(
        err.contains("FILE:5:5: slos[0].objective: objective must be in (0, 100], got 120"),
        "{err}"
    );
    assert!(
        err.contains("FILE:9:9: slos[0].sli.events.total_query: invalid query"),
        "{err}"
    );
}

/// `slo_files`: specs evaluated inside argus as the rules they generate —
/// the SLO series are queryable, and a fast burn pages through argus's
/// own routing.
#[test]
fn slo_files_are_evaluated_and_a_fast_burn_pages() {
    use common::*;
    use std::time::Duration;
    let t = Target::text("");
    let hook = Recorder::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("api.slo.yml"),
        r#"version: prometheus/v1
service: api
period: 28d
labels: {team: web}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
    alerting:
      name: ApiErrorBudgetBurn
      page_alert: {labels: {severity: critical}}
      ticket_alert: {labels: {severity: warning}}
  - name: latency
    objective: 95
    sli:
      latency: {histogram: http_request_duration_seconds, threshold: 200ms, selector: '{job="api"}'}
    alerting:
      name: ApiSlow
"#,
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, sloth_severity]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n",
            hook.addr()
        ),
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nslo_files: ['*.slo.yml']\nalerting:\n  routing_file: alertmanager.yml\nscrape_configs:\n  - job_name: api\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let mut a = Argus::start_in(tmp.path(), &cfg, &[]);
    // Half the requests fail; 30% are slower than 200 ms.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (t2, s2) = (t.clone_handle(), stop.clone());
    let feeder = std::thread::spawn(move || {
        let mut n = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            n += 100;
            t2.set_text(&format!(
                "http_requests_total{{code=\"200\"}} {}\nhttp_requests_total{{code=\"500\"}} {}\nhttp_request_duration_seconds_bucket{{le=\"0.1\"}} {}\nhttp_request_duration_seconds_bucket{{le=\"0.2\"}} {}\nhttp_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nhttp_request_duration_seconds_count {}\nhttp_request_duration_seconds_sum {}\n",
                n, n, n / 2, n * 7 / 10, n, n, n / 5
            ));
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let groups = a.api("/api/v1/rules");
    let names: Vec<String> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"sloth-slo-alerts-api-availability".to_string()),
        "{names:?}"
    );
    let q = |e: &str| a.query(e);
    let ratio = wait_for(30, "the 5m error ratio", || {
        q("slo:sli_error:ratio_rate5m{sloth_slo=\"availability\"}")
            .first()
            .cloned()
    });
    let v: f64 = ratio["value"][1].as_str().unwrap().parse().unwrap();
    assert!((v - 0.5).abs() < 0.01, "{ratio}");
    assert_eq!(ratio["metric"]["team"], "web");
    let slow = wait_for(30, "the latency SLI", || {
        q("slo:sli_error:ratio_rate5m{sloth_slo=\"latency\"}")
            .first()
            .cloned()
    });
    let v: f64 = slow["value"][1].as_str().unwrap().parse().unwrap();
    assert!((v - 0.3).abs() < 0.02, "{slow}");
    // Each group runs at its own phase: wait for the metadata group too.
    let days = wait_for(30, "the SLO period", || {
        q("slo:time_period:days{sloth_slo=\"availability\"}")
            .first()
            .cloned()
    });
    assert_eq!(days["value"][1], "28");
    let remaining = wait_for(30, "the events-weighted budget", || {
        q("slo:period_error_budget_remaining_events:ratio{sloth_slo=\"availability\"}")
            .first()
            .cloned()
    });
    let v: f64 = remaining["value"][1].as_str().unwrap().parse().unwrap();
    // Half of all events failed against a 0.1% budget: 1 - 0.5/0.001.
    assert!((v - (1.0 - 0.5 / 0.001)).abs() < 5.0, "{remaining}");
    let page = wait_for(60, "the page", || {
        hook.json_bodies().into_iter().find(|b| {
            b["groupLabels"]["alertname"] == "ApiErrorBudgetBurn"
                && b["groupLabels"]["sloth_severity"] == "page"
        })
    });
    assert_eq!(page["alerts"][0]["labels"]["severity"], "critical");
    assert_eq!(page["alerts"][0]["labels"]["sloth_slo"], "availability");
    // Windows beyond a day come from the SLO engine: Sloth's period
    // ratio and the 3-day ratio...
    for w in ["3d", "28d"] {
        let r = wait_for(30, w, || {
            q(&format!(
                "slo:sli_error:ratio_rate{w}{{sloth_slo=\"availability\", sloth_window=\"{w}\"}}"
            ))
            .first()
            .cloned()
        });
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!((v - 0.5).abs() < 0.02, "{r}");
    }
    // ...and latency quantiles from the buckets' increases in HDR
    // windows: half the requests are within 100 ms, 20% more within
    // 200 ms, the rest above (put at the highest finite bound).
    for (quantile, want) in [("0.5", 0.1), ("0.9", 0.2)] {
        let r = wait_for(30, "a latency quantile", || {
            q(&format!(
                "slo:sli_latency_seconds:rate1h{{sloth_slo=\"latency\", quantile=\"{quantile}\"}}"
            ))
            .first()
            .cloned()
        });
        let v: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!((v - want).abs() < want * 0.05, "{r}");
    }
    // None of these is a recording rule over days of samples...
    let rules = a.api("/api/v1/rules").to_string();
    for absent in [
        "period_error_budget_remaining_events",
        "ratio_rate3d\"",
        "histogram_quantile",
        "count_over_time",
    ] {
        assert!(!rules.contains(absent), "{absent} in {rules}");
    }
    // ...which are kept across restarts.
    a.stop();
    assert!(tmp.path().join("data/slo_windows.bin").exists());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
}

/// The shipped SLO specs (slo/) and the rule files generated from them
/// (rules/*-slos.yml, unit-tested beside them) are in step.
#[test]
fn shipped_slo_rules_are_generated_from_the_shipped_specs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (spec, rules) in [
        ("slo/app.yml", "rules/app-slos.yml"),
        ("slo/argus.yml", "rules/argus-slos.yml"),
    ] {
        let out = Command::new(argus_bin())
            .args(["slo", "generate", "--extensions"])
            .arg(root.join(spec))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let committed = std::fs::read_to_string(root.join(rules)).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout) == committed,
            "{rules} is stale: run `argus slo generate --extensions {spec} -o {rules}`"
        );
    }
}

/// A target exposing native histograms over protobuf: argus asks for
/// protobuf (`scrape_protocols`), stores the native histogram (and the
/// classic buckets, `always_scrape_classic_histograms`), and the latency
/// SLI's quantiles come from the native buckets' increases.
#[test]
fn native_histograms_over_protobuf_feed_latency_quantiles() {
    use common::*;
    use std::time::Duration;
    // Schema 0: bucket i is (2^(i-1), 2^i]; per step 10, 50, 30 and 10
    // observations in buckets -4 … -1, i.e. up to 62.5 ms, 125 ms,
    // 250 ms and 500 ms.
    let body = |n: u64| {
        let mut w = Pb::default();
        w.delimited(|f| {
            f.bytes(1, b"lat_seconds").uint(3, 4).msg(4, |m| {
                m.msg(1, |l| {
                    l.bytes(1, b"path").bytes(2, b"/api");
                });
                m.msg(7, |h| {
                    h.uint(1, 100 * n).double(2, 15.0 * n as f64).sint(5, 0);
                    h.double(6, 1e-128).uint(7, 0);
                    h.msg(12, |s| {
                        s.sint(1, -4).uint(2, 4);
                    });
                    for d in [10, 40, -20, -20] {
                        h.sint(13, d * n as i64);
                    }
                    for (le, c) in [(0.0625, 10), (0.125, 60), (0.25, 90), (0.5, 100)] {
                        h.msg(3, |b| {
                            b.uint(1, c * n).double(2, le);
                        });
                    }
                });
            });
        });
        w.0
    };
    let t = Target::start(Reply::Body {
        content_type: PROTOBUF.into(),
        body: body(1),
    });
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("lat.slo.yml"),
        r#"version: prometheus/v1
service: api
slos:
  - name: lat
    objective: 95
    sli:
      latency: {histogram: lat_seconds, threshold: 250ms, selector: '{job="native"}'}
    alerting: {name: Slow}
"#,
    )
    .unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nslo_files: ['*.slo.yml']\nscrape_configs:\n  - job_name: native\n    scrape_protocols: [PrometheusProto, PrometheusText0.0.4]\n    always_scrape_classic_histograms: true\n    static_configs: [{{targets: ['{}']}}]\n",
        t.addr()
    );
    let a = Argus::start_in(tmp.path(), &cfg, &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (t2, s2) = (t.clone_handle(), stop.clone());
    let feeder = std::thread::spawn(move || {
        let mut n = 1;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            t2.set(Reply::Body {
                content_type: PROTOBUF.into(),
                body: body(n),
            });
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let value = |r: &serde_json::Value| -> f64 { r["value"][1].as_str().unwrap().parse().unwrap() };
    // Stored as a native histogram, with the classic buckets beside it.
    let count = a.wait_for(30, "the native histogram", || {
        a.query("histogram_count(lat_seconds{path=\"/api\"})")
            .first()
            .cloned()
    });
    assert!(value(&count) >= 100.0, "{count}");
    assert!(
        !a.query("lat_seconds_bucket{le=\"0.25\"}").is_empty(),
        "classic buckets kept"
    );
    let accept = t.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(
        accept.contains("accept: application/vnd.google.protobuf;proto=io.prometheus.client.metricfamily;encoding=delimited;q=0.3,"),
        "{accept}"
    );
    // p50: 40 of 50 into (62.5, 125] ms; p99: 9 of 10 into (250, 500].
    for (q, want) in [("0.5", 0.1125), ("0.9", 0.25), ("0.99", 0.475)] {
        let r = a.wait_for(30, "a latency quantile", || {
            a.query(&format!(
                "slo:sli_latency_seconds:rate5m{{sloth_slo=\"lat\", quantile=\"{q}\"}}"
            ))
            .first()
            .cloned()
        });
        assert!((value(&r) - want).abs() < want * 0.03, "p{q}: {r}");
    }
    // The SLI itself: 10% slower than 250 ms, from the classic buckets.
    let r = a.wait_for(30, "the latency SLI", || {
        a.query("slo:sli_error:ratio_rate5m{sloth_slo=\"lat\"}")
            .first()
            .cloned()
    });
    assert!((value(&r) - 0.1).abs() < 0.01, "{r}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feeder.join().unwrap();
}

/// Sloth's `--default-slo-period` and `--slo-period-windows-path` with its
/// example `AlertWindows` files: a 7-day SLO gets the 7-day windows and
/// factors (budget share × period / long window), a 30-day one the custom
/// 30-day windows; a bad windows file is refused with its position.
#[test]
fn sloth_alert_windows_and_default_period() {
    let windows = examples().join("windows");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.yml");
    std::fs::write(
        &spec,
        "version: prometheus/v1\nservice: svc\nslos:\n  - name: avail\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(e[{{.window}}]))\n        total_query: sum(rate(t[{{.window}}]))\n    alerting: {name: A}\n",
    )
    .unwrap();
    let run = |period: &str, windows: &Path| {
        let o = Command::new(argus_bin())
            .args(["slo", "generate", "--default-slo-period", period, "-w"])
            .arg(windows)
            .arg(&spec)
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run("7d", &windows);
    assert!(ok, "{err}");
    for (short, long, factor) in [
        ("5m", "1h", "13.44"),
        ("30m", "6h", "3.5"),
        ("2h", "1d", "1.4"),
        ("6h", "3d", "0.98"),
    ] {
        for w in [short, long] {
            let cond = format!(
                "ratio_rate{w}{{sloth_id=\"svc-avail\", sloth_service=\"svc\", sloth_slo=\"avail\"}} > ({factor}"
            );
            assert!(out.contains(&cond), "{cond}\n{out}");
        }
    }
    assert!(out.contains("sloth_window: 7d"), "{out}");
    let (ok, out, err) = run("30d", &windows);
    assert!(ok, "{err}");
    // custom-30d.yaml: 1% of the budget in 30 minutes pages.
    assert!(out.contains("ratio_rate2m{"), "{out}");
    assert!(out.contains("> (14.4 * 0.01)"), "{out}");

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("w.yaml"),
        "apiVersion: sloth.slok.dev/v1\nkind: AlertWindows\nspec:\n  sloPeriod: 7d\n  page:\n    quick: {errorBudgetPercent: 8, shortWindow: 2h, longWindow: 1h}\n    slow: {errorBudgetPercent: 12.5, shortWindow: 30m, longWindow: 6h}\n  ticket:\n    quick: {errorBudgetPercent: 20, shortWindow: 2h, longWindow: 1d}\n    slow: {errorBudgetPercent: 42, shortWindow: 6h, longWindow: 3d}\n",
    )
    .unwrap();
    let (ok, _, err) = run("7d", &bad);
    assert!(!ok);
    assert!(err.contains("w.yaml:6:36: spec.page.quick.shortWindow: must be above zero and shorter than longWindow"), "{err}");
}
