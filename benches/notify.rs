//! Alert ingestion into argus's own routing: routing, grouping and
//! inhibition of batches of 1,000 alerts while 10,000 alerts are active
//! and 100 inhibition rules apply (the shape where Alertmanager's cost is
//! quadratic, alertmanager#3932). One iteration re-sends one batch of
//! existing alerts, as Prometheus re-sends firing alerts; throughput is
//! reported in alerts per second.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use argus::config::DeliveryConfig;
use argus::model::{Alert, AlertSink, Labels, SystemClock};
use argus::notify::{Notifier, Strictness, parse_am_config};
use argus::telemetry::Metrics;

const ACTIVE: usize = 10_000;
const BATCH: usize = 1_000;
const RULES: usize = 100;

/// The routing the benchmark uses: a few routes, grouping by alertname
/// and service, 100 inhibition rules each muting one alert name's
/// warnings under its criticals.
pub fn routing() -> String {
    let mut s = String::from(
        "route:\n  receiver: default\n  group_by: [alertname, service]\n  group_wait: 30s\n  group_interval: 5m\n  routes:\n    - matchers: ['severity=\"critical\"']\n      receiver: pager\n    - matchers: ['team=~\"db|storage\"']\n      receiver: db\n      continue: true\n    - matchers: ['severity=\"warning\"']\n      receiver: default\nreceivers:\n  - name: default\n  - name: pager\n  - name: db\ninhibit_rules:\n",
    );
    for i in 0..RULES {
        s.push_str(&format!(
            "  - source_matchers: ['severity=\"critical\"', 'alertname=\"Alert{i}\"']\n    target_matchers: ['severity=\"warning\"']\n    equal: [service]\n"
        ));
    }
    s
}

/// Alert `i` of the active set.
pub fn alert(i: usize, now: i64) -> Alert {
    let severity = if i % 7 == 0 { "critical" } else { "warning" };
    Alert {
        labels: Labels::from_pairs([
            ("alertname", format!("Alert{}", i % 200)),
            ("service", format!("svc{}", i % 50)),
            ("instance", format!("host{i}:9100")),
            ("severity", severity.to_string()),
            ("team", ["db", "web", "storage", "edge"][i % 4].to_string()),
        ]),
        annotations: BTreeMap::from([("summary".to_string(), format!("alert {i}"))]),
        starts_at: now - 60_000,
        ends_at: now + 300_000,
        generator_url: "http://prometheus:9090/graph".into(),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let cfg = parse_am_config(&routing(), "bench.yml", Strictness::Deliver).unwrap();
    let n = Arc::new(
        Notifier::new(
            Arc::new(SystemClock),
            "http://argus:9095",
            Arc::new(Metrics::new()),
        )
        .unwrap(),
    );
    n.apply(Some(&cfg), &DeliveryConfig::default()).unwrap();
    let now = argus::model::now_millis();
    let all: Vec<Alert> = (0..ACTIVE).map(|i| alert(i, now)).collect();
    for chunk in all.chunks(BATCH) {
        n.send(chunk.to_vec());
    }
    let mut g = c.benchmark_group("notify");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut k = 0;
    g.bench_function(
        "ingest 1000 of 10000 active alerts, 100 inhibit rules",
        |b| {
            b.iter(|| {
                let start = (k * BATCH) % ACTIVE;
                k += 1;
                n.send(all[start..start + BATCH].to_vec());
            })
        },
    );
    g.finish();
    // Every alert is routed, and the views the API lists agree.
    assert_eq!(n.alerts().len(), ACTIVE);
    assert!(n.alerts().iter().any(|v| v.inhibited));
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
