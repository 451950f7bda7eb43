//! Rule evaluation: the 19 rules of benches/data/rules.yml (rate, sum by,
//! histogram_quantile, comparisons) as one group over 100,000 series, the
//! shape benches/compare/run.sh serves (50 instances × 2,000 series: 60%
//! classic histogram series, 40% counters), two minutes of 1 s samples.
//! One iteration is one group evaluation at the data's end.

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};

use argus::model::Labels;
use argus::promql::Engine;
use argus::rules::{EvalEnv, Group, NameValidation, parse_rule_file};
use argus::storage::{Appender, Head};

const INSTANCES: usize = 50;
const SERIES_PER_INSTANCE: usize = 2000;
const SECONDS: i64 = 120;

/// Label sets of one instance, as run.sh's exposition has them.
fn instance_series(instance: &str) -> Vec<Labels> {
    let buckets = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf",
    ];
    let mut out = Vec::with_capacity(SERIES_PER_INSTANCE);
    let base = |name: String| {
        vec![
            ("__name__".to_string(), name),
            ("job".to_string(), "bench".to_string()),
            ("instance".to_string(), instance.to_string()),
        ]
    };
    let mut h = 0;
    while out.len() + 13 <= SERIES_PER_INSTANCE * 6 / 10 {
        let name = format!("http_request_duration_seconds_{}", h % 10);
        let mut common = vec![
            ("handler".to_string(), format!("/api/v1/resource/{h}")),
            ("method".to_string(), "GET".to_string()),
            (
                "code".to_string(),
                if h % 7 == 0 { "500" } else { "200" }.to_string(),
            ),
        ];
        for b in buckets {
            let mut l = base(format!("{name}_bucket"));
            l.extend(common.clone());
            l.push(("le".to_string(), b.to_string()));
            out.push(Labels::from_pairs(l));
        }
        for suffix in ["sum", "count"] {
            let mut l = base(format!("{name}_{suffix}"));
            l.append(&mut common.clone());
            out.push(Labels::from_pairs(l));
        }
        common.clear();
        h += 1;
    }
    let mut k = 0;
    while out.len() < SERIES_PER_INSTANCE {
        let mut l = base("app_events_total".to_string());
        l.push(("kind".to_string(), format!("k{}", k % 50)));
        l.push(("shard".to_string(), k.to_string()));
        l.push(("pod".to_string(), format!("app-5f7d8c9b4-{k:05}")));
        out.push(Labels::from_pairs(l));
        k += 1;
    }
    out
}

fn setup() -> (Arc<Head>, Group, i64) {
    let head = Arc::new(Head::new());
    let series: Vec<Labels> = (0..INSTANCES)
        .flat_map(|i| instance_series(&format!("10.0.{}.{}:9100", i / 250, i % 250)))
        .collect();
    let mut refs = Vec::with_capacity(series.len());
    {
        let mut app = head.appender_with_capacity(series.len());
        for l in &series {
            refs.push(app.append(l, 0, 0.0).expect("append"));
        }
        app.commit();
    }
    for s in 1..=SECONDS {
        let mut app = head.appender_with_capacity(series.len());
        for (i, r) in refs.iter().enumerate() {
            // Counters (and cumulative buckets) growing at per-series rates.
            let v = (s as f64) * ((i % 13) as f64 + 1.0);
            let _ = app.append_ref(*r, s * 1000, v);
        }
        app.commit();
    }
    let rf = parse_rule_file(
        include_str!("data/rules.yml"),
        "benches/data/rules.yml",
        NameValidation::Utf8,
    )
    .expect("rules parse");
    let group = Group::new("rules.yml", &rf.groups[0], 1000).expect("group");
    (head, group, SECONDS * 1000)
}

fn bench(c: &mut Criterion) {
    let (head, mut group, end) = setup();
    let engine = Engine::default();
    let env = EvalEnv {
        engine: &engine,
        head: &head,
        external_labels: BTreeMap::new(),
        external_url: String::new(),
    };
    let errors = group.eval(&env, end);
    assert!(errors.is_empty(), "{errors:?}");
    let mut g = c.benchmark_group("rules");
    g.sample_size(10);
    g.bench_function("19 rules over 100k series", |b| {
        b.iter(|| group.eval(&env, end))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
