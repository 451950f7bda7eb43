//! Realistic exposition bodies for the benchmarks.
#![allow(dead_code)]

/// Builds a 10,000-series exposition: classic histograms, summaries and
/// counters/gauges with long label sets. `om` selects OpenMetrics.
pub fn exposition(om: bool) -> String {
    let mut s = String::with_capacity(2 << 20);
    let routes = [
        "/api/v1/orders",
        "/api/v1/users/{id}",
        "/api/v1/cart",
        "/healthz",
        "/api/v2/search",
        "/api/v1/payments",
        "/login",
        "/logout",
        "/api/v1/items/{id}/reviews",
        "/static/*",
    ];
    let methods = ["GET", "POST"];
    let buckets = [
        "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf",
    ];
    let mut n = 0usize;
    // 20 histograms × 20 label sets × 14 series = 5,600.
    for h in 0..20 {
        let name = format!("http_server_request_duration_seconds_{h}");
        s.push_str(&format!(
            "# HELP {name} Duration of HTTP server requests.\n# TYPE {name} histogram\n"
        ));
        for r in routes {
            for m in methods {
                let lbl = format!(
                    "method=\"{m}\",route=\"{r}\",service=\"checkout-frontend\",namespace=\"prod-eu-west-1\""
                );
                let mut cum = 0u64;
                for (i, b) in buckets.iter().enumerate() {
                    cum += (i as u64 * 37 + h as u64) % 101;
                    s.push_str(&format!("{name}_bucket{{{lbl},le=\"{b}\"}} {cum}\n"));
                }
                s.push_str(&format!("{name}_sum{{{lbl}}} {}.{}\n", cum * 3, h));
                s.push_str(&format!("{name}_count{{{lbl}}} {cum}\n"));
                n += 14;
            }
        }
    }
    // 10 summaries × 20 label sets × 6 series = 1,200.
    for q in 0..10 {
        let name = format!("rpc_client_latency_seconds_{q}");
        s.push_str(&format!(
            "# HELP {name} RPC latency.\n# TYPE {name} summary\n"
        ));
        for r in routes {
            for m in methods {
                let lbl = format!(
                    "method=\"{m}\",endpoint=\"{r}\",peer=\"inventory-service.prod.svc.cluster.local:8443\""
                );
                for qq in ["0.5", "0.9", "0.99", "0.999"] {
                    s.push_str(&format!(
                        "{name}{{{lbl},quantile=\"{qq}\"}} 0.0{q}{}\n",
                        qq.len()
                    ));
                }
                s.push_str(&format!(
                    "{name}_sum{{{lbl}}} 1234.5\n{name}_count{{{lbl}}} 98765\n"
                ));
                n += 6;
            }
        }
    }
    // Counters and gauges with 8 long labels to reach 10,000.
    let mut i = 0;
    while n < 10_000 {
        let fam = i / 100;
        let name = if fam % 2 == 0 {
            format!("kube_pod_container_restarts_{fam}")
        } else {
            format!("node_memory_bytes_{fam}")
        };
        if i % 100 == 0 {
            let t = if fam % 2 == 0 { "counter" } else { "gauge" };
            s.push_str(&format!(
                "# HELP {name} Some help text.\n# TYPE {name} {t}\n"
            ));
        }
        let sample_name = if fam % 2 == 0 && om {
            format!("{name}_total")
        } else {
            name.clone()
        };
        s.push_str(&format!(
            "{sample_name}{{cluster=\"prod-eu-west-1\",namespace=\"payments\",pod=\"payments-api-7d9f8b6c5d-{i:05}\",container=\"app\",node=\"ip-10-0-{}-{}.eu-west-1.compute.internal\",image=\"registry.example.com/payments/api:v2.31.{}\",uid=\"3f2a9c1e-{i:04}-4b8e-9d7a-0c5e6f1a2b3c\",zone=\"eu-west-1b\"}} {}\n",
            i % 7,
            i % 250,
            i % 13,
            i * 17 + 3
        ));
        n += 1;
        i += 1;
    }
    if om {
        s.push_str("# EOF\n");
    }
    s
}
