//! PromQL query latency on the data set of benches/compare/query.sh: the
//! three queries the PromQL issue sets targets for, evaluated in process
//! over a loaded head.

#[path = "../tests/common/om_data.rs"]
mod om_data;

use criterion::{Criterion, criterion_group, criterion_main};

use argus::promql::{Engine, Query, QueryOptions};

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
    let (head, _) = argus::storage::snapshot::load(dir.path()).expect("load");
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
        g.bench_function(name, |b| {
            b.iter(|| {
                engine
                    .instant(head.as_ref(), &q, t, &QueryOptions::default())
                    .expect("eval")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
