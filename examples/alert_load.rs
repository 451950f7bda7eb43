//! Load generator for the alert routing benchmarks (benches/compare/
//! alerts.sh), against argus or Alertmanager — both speak
//! `POST /api/v2/alerts`.
//!
//! `alert_load ingest URL ACTIVE BATCH ROUNDS`: posts ACTIVE alerts, then
//! ROUNDS batches of BATCH of them again (as Prometheus re-sends firing
//! alerts) over one connection; prints `alerts_per_second`.
//!
//! `alert_load latency URL RATE SECONDS LISTEN`: serves a webhook on
//! LISTEN, posts RATE alerts per second for SECONDS, each a new alert
//! whose send time it remembers, and prints the p50/p99/max time from
//! posting to the webhook request that carries it (the routing must group
//! each alert alone, `group_by: ['...']`, with `group_wait: 0s`).
//!
//! The alert shapes match benches/notify.rs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn alert_json(i: usize, extra: &str) -> String {
    let severity = if i % 7 == 0 { "critical" } else { "warning" };
    format!(
        r#"{{"labels":{{"alertname":"Alert{}","service":"svc{}","instance":"host{i}:9100","severity":"{severity}","team":"{}"{extra}}},"annotations":{{"summary":"alert {i}"}},"generatorURL":"http://prometheus:9090/graph"}}"#,
        i % 200,
        i % 50,
        ["db", "web", "storage", "edge"][i % 4]
    )
}

async fn post(client: &reqwest::Client, url: &str, alerts: &[String]) {
    let body = format!("[{}]", alerts.join(","));
    match client
        .post(format!("{url}/api/v2/alerts"))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {}
        Ok(r) => eprintln!("post: status {}", r.status()),
        Err(e) => eprintln!("post: {e}"),
    }
}

async fn ingest(url: &str, active: usize, batch: usize, rounds: usize) {
    let client = argus::net::build_client(None).expect("client");
    let all: Vec<String> = (0..active).map(|i| alert_json(i, "")).collect();
    for chunk in all.chunks(batch) {
        post(&client, url, chunk).await;
    }
    let t = Instant::now();
    let mut sent = 0;
    for r in 0..rounds {
        let start = (r * batch) % active;
        post(&client, url, &all[start..(start + batch).min(active)]).await;
        sent += batch.min(active - start);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("alerts_per_second {:.0}", sent as f64 / secs);
}

async fn latency(url: &str, rate: usize, seconds: usize, listen: &str) {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let got: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let (s2, g2) = (sent.clone(), got.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (sent, got) = (s2.clone(), g2.clone());
            async move {
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let sent = sent.lock().unwrap();
                let mut got = got.lock().unwrap();
                for a in v["alerts"].as_array().into_iter().flatten() {
                    if a["status"] != "firing" {
                        continue;
                    }
                    if let Some(t) = a["labels"]["load_id"].as_str().and_then(|id| sent.get(id)) {
                        got.push(now - *t);
                    }
                }
                ""
            }
        }),
    );
    let l = tokio::net::TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let client = argus::net::build_client(None).expect("client");
    let total = rate * seconds;
    // Alerts go out in ticks of 10 ms.
    let per_tick = (rate / 100).max(1);
    let start = Instant::now();
    let mut i = 0;
    while i < total {
        let tick = start + Duration::from_millis((i / per_tick) as u64 * 10);
        tokio::time::sleep_until(tick.into()).await;
        let batch: Vec<String> = (i..(i + per_tick).min(total))
            .map(|k| alert_json(k, &format!(r#","load_id":"{k}""#)))
            .collect();
        {
            let mut s = sent.lock().unwrap();
            let now = Instant::now();
            for k in i..(i + per_tick).min(total) {
                s.insert(k.to_string(), now);
            }
        }
        post(&client, url, &batch).await;
        i += per_tick;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut d = got.lock().unwrap().clone();
    d.sort();
    let q = |p: f64| {
        d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1)))
            .map_or(f64::NAN, |x| x.as_secs_f64() * 1000.0)
    };
    println!(
        "delivered {} of {total}; latency_ms p50 {:.2} p99 {:.2} max {:.2}",
        d.len(),
        q(0.5),
        q(0.99),
        d.last().map_or(f64::NAN, |x| x.as_secs_f64() * 1000.0)
    );
}

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let n = |i: usize| a.get(i).and_then(|s| s.parse::<usize>().ok()).unwrap_or(0);
    match a.get(1).map(String::as_str) {
        Some("ingest") => ingest(&a[2], n(3), n(4), n(5)).await,
        Some("latency") => latency(&a[2], n(3), n(4), &a[5]).await,
        _ => {
            eprintln!(
                "usage: alert_load ingest URL ACTIVE BATCH ROUNDS | latency URL RATE SECONDS LISTEN"
            );
            std::process::exit(2);
        }
    }
}
