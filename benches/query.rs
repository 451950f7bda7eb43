//! PromQL query latency on the data set of benches/compare/query.sh: the
//! three queries the PromQL issue sets targets for, evaluated in process
//! over the imported store (full chunks read from chunk files, `disk`) and
//! over a copy of it held entirely in memory (`memory`).

#[path = "../tests/common/om_data.rs"]
mod om_data;

use criterion::{Criterion, criterion_group, criterion_main};

use std::sync::Arc;

use argus::promql::{Engine, Query, QueryOptions};
use argus::storage::{Appender, Head, Queryable, Store, StoreOptions};

fn bench(c: &mut Criterion) {
    let end = 1_800_000_000;
    let spec = om_data::Spec {
        end,
        span: 1800,
        step: 15,
        counters: 10_000,
        histograms: 100,
        gauges: 0,
        slo_days: 30,
        slo_series: 10,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("data.om");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).expect("create"));
        om_data::generate(&spec, &mut f).expect("generate");
    }
    argus::cli::import_openmetrics(&file, dir.path()).expect("import");
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).expect("open");
    let disk = store.head().clone();
    let memory = Arc::new(Head::new());
    let mut a = memory.appender();
    for s in disk.select(&[], i64::MIN, i64::MAX) {
        for x in &s.samples {
            a.append(&s.labels, x.t, x.v).expect("append");
        }
        for (t, h) in &s.histograms {
            a.append_histogram(&s.labels, *t, h.clone())
                .expect("append");
        }
    }
    a.commit();
    let engine = Engine::default();
    let t = end * 1000;
    let mut g = c.benchmark_group("query");
    g.sample_size(20);
    for (name, q) in [
        (
            "sum_rate_10k",
            "sum by (job) (rate(http_requests_total[5m]))",
        ),
        (
            "histogram_quantile_100x20",
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
        ),
        (
            "error_ratio_30d_1m",
            "sum(rate(slo_errors_total[30d])) / sum(rate(slo_requests_total[30d]))",
        ),
    ] {
        let q = Query::parse(q).expect("query");
        for (place, head) in [("memory", &memory), ("disk", &disk)] {
            g.bench_function(format!("{name}/{place}"), |b| {
                b.iter(|| {
                    engine
                        .instant(head.as_ref(), &q, t, &QueryOptions::default())
                        .expect("eval")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
