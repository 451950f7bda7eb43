//! `consul_sd_configs`: argus finds its targets through a Consul HTTP API
//! (a stand-in server on 127.0.0.1 answering the catalog, health and
//! agent endpoints with `X-Consul-Index`), scrapes them with the
//! `__meta_consul_*` labels relabeled, follows instances and services
//! coming and going, and keeps its targets while Consul fails.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::*;
use serde_json::{Value, json};

/// What the stand-in Consul serves: services with their tags, the
/// instances of each (health API entries), and whether it fails.
#[derive(Default)]
struct State {
    services: BTreeMap<String, Vec<String>>,
    instances: BTreeMap<String, Vec<Value>>,
    index: u64,
    fail: bool,
    requests: Vec<String>,
}

struct Consul {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Consul {
    fn start() -> Consul {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            index: 1,
            ..Default::default()
        }));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let path = target.split('?').next().unwrap_or("").to_string();
                    let (status, body, index) = {
                        let mut s = st.lock().unwrap();
                        s.requests.push(head.clone());
                        let body = if s.fail {
                            None
                        } else if path == "/v1/agent/self" {
                            Some(json!({"Config": {"Datacenter": "dc-east"}}))
                        } else if path == "/v1/catalog/services" {
                            Some(json!(s.services))
                        } else {
                            path.strip_prefix("/v1/health/service/").map(|name| {
                                json!(s.instances.get(name).cloned().unwrap_or_default())
                            })
                        };
                        match body {
                            Some(b) => (200, b.to_string(), s.index),
                            None => (500, "rpc error".to_string(), s.index),
                        }
                    };
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Consul-Index: {index}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        Consul { port, state }
    }

    fn change(&self, f: impl FnOnce(&mut State)) {
        let mut s = self.state.lock().unwrap();
        f(&mut s);
        s.index += 1;
    }
}

fn instance(node: &str, t: &Target, id: &str, tags: &[&str], status: &str) -> Value {
    json!({
        "Node": {"Node": node, "Address": "127.0.0.1", "Datacenter": "dc-east",
                 "Meta": {"rack-id": "r7"}, "TaggedAddresses": {"lan": "127.0.0.1"}},
        "Service": {"ID": id, "Service": "web", "Tags": tags, "Address": "",
                    "Port": t.port, "Meta": {"version": "1.2"}},
        "Checks": [{"CheckID": "serfHealth", "Status": status}]
    })
}

#[test]
fn targets_follow_the_catalog_with_consul_labels() {
    let t1 = Target::text("up_metric 1\n");
    let t2 = Target::text("up_metric 2\n");
    let other = Target::text("up_metric 3\n");
    let consul = Consul::start();
    consul.change(|s| {
        s.services
            .insert("web".into(), vec!["prod".into(), "http".into()]);
        // Without the tag the config asks for: never watched.
        s.services.insert("batch".into(), vec!["http".into()]);
        s.instances.insert(
            "web".into(),
            vec![instance(
                "node-1",
                &t1,
                "web-1",
                &["prod", "http"],
                "passing",
            )],
        );
        s.instances.insert(
            "batch".into(),
            vec![instance("node-9", &other, "batch-1", &["http"], "passing")],
        );
    });
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: consul
    consul_sd_configs:
      - server: 127.0.0.1:{}
        token: s3cr3t-token
        tags: [prod]
        node_meta: {{rack-id: r7}}
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__meta_consul_service]
        target_label: service
      - source_labels: [__meta_consul_dc]
        target_label: dc
      - source_labels: [__meta_consul_metadata_rack_id]
        target_label: rack
      - source_labels: [__meta_consul_tags]
        regex: '.*,prod,.*'
        action: keep
"#,
        consul.port
    );
    let a = Argus::start(&cfg, &[]);
    let series = |a: &Argus| {
        let mut v: Vec<String> = a
            .federate("up_metric")
            .into_iter()
            .map(|(s, v)| format!("{s} {v}"))
            .collect();
        v.sort();
        v
    };
    let want1 = format!(
        "up_metric{{dc=\"dc-east\",instance=\"127.0.0.1:{}\",job=\"consul\",rack=\"r7\",service=\"web\"}} 1",
        t1.port
    );
    wait_for(20, "the first instance scraped", || {
        (series(&a) == vec![want1.clone()]).then_some(())
    });
    let target = a.target(&t1.addr()).unwrap();
    let d = &target["discoveredLabels"];
    assert_eq!(d["__meta_consul_service_id"], "web-1");
    assert_eq!(d["__meta_consul_tags"], ",prod,http,");
    assert_eq!(d["__meta_consul_health"], "passing");
    assert_eq!(d["__meta_consul_node"], "node-1");
    assert_eq!(d["__meta_consul_service_metadata_version"], "1.2");
    assert_eq!(d["__meta_consul_tagged_address_lan"], "127.0.0.1");
    {
        let s = consul.state.lock().unwrap();
        let health: Vec<&String> = s
            .requests
            .iter()
            .filter(|r| r.contains("/v1/health/service/web"))
            .collect();
        assert!(!health.is_empty());
        let h = health[0].to_lowercase();
        assert!(h.contains("x-consul-token: s3cr3t-token"), "{h}");
        assert!(
            h.contains("tag=prod") && h.contains("node-meta=rack-id%3ar7"),
            "{h}"
        );
        assert!(h.contains("stale"), "{h}");
        assert!(
            !s.requests
                .iter()
                .any(|r| r.contains("/v1/health/service/batch"))
        );
    }

    // A second instance joins.
    consul.change(|s| {
        s.instances.get_mut("web").unwrap().push(instance(
            "node-2",
            &t2,
            "web-2",
            &["prod"],
            "warning",
        ));
    });
    wait_for(20, "the second instance", || {
        (series(&a).len() == 2).then_some(())
    });
    assert_eq!(
        a.target(&t2.addr()).unwrap()["discoveredLabels"]["__meta_consul_health"],
        "warning"
    );
    // Later asks are blocking queries from the last index.
    assert!(consul.state.lock().unwrap().requests.iter().any(|r| {
        r.contains("/v1/health/service/web") && r.contains("index=") && r.contains("wait=120000ms")
    }),);

    // Consul failing: counted, and the targets stay.
    consul.change(|s| s.fail = true);
    wait_for(20, "failures counted", || {
        let (_, m) = http_get(&format!("{}/metrics", a.url())).ok()?;
        let n: f64 = m
            .lines()
            .find_map(|l| l.strip_prefix("argus_sd_consul_rpc_failures_total "))?
            .parse()
            .ok()?;
        (n >= 1.0).then_some(())
    });
    assert_eq!(series(&a).len(), 2);
    consul.change(|s| s.fail = false);

    // The service leaves the catalog: its targets go, marked stale.
    consul.change(|s| {
        s.services.remove("web");
    });
    wait_for(20, "the targets dropped", || {
        series(&a).is_empty().then_some(())
    });
    assert!(a.target(&t1.addr()).is_none());
}

#[test]
fn named_services_are_watched_without_the_catalog() {
    let t = Target::text("named_metric 5\n");
    let consul = Consul::start();
    consul.change(|s| {
        s.instances.insert(
            "api".into(),
            vec![instance("n", &t, "api-1", &[], "passing")],
        );
    });
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: named\n    consul_sd_configs:\n      - server: 127.0.0.1:{}\n        datacenter: dc-west\n        services: [api]\n        allow_stale: false\n        tag_separator: '|'\n        refresh_interval: 1s\n",
        consul.port
    );
    let a = Argus::start(&cfg, &[]);
    wait_for(20, "scraped", || a.query_value("named_metric"));
    let d = a.target(&t.addr()).unwrap()["discoveredLabels"].clone();
    assert_eq!(d["__meta_consul_dc"], "dc-west");
    assert_eq!(d["__meta_consul_tags"], "||");
    let s = consul.state.lock().unwrap();
    assert!(!s.requests.iter().any(|r| r.contains("/v1/catalog/")));
    assert!(!s.requests.iter().any(|r| r.contains("/v1/agent/self")));
    let first = s
        .requests
        .iter()
        .find(|r| r.contains("/v1/health/service/api"))
        .unwrap();
    assert!(
        first.contains("dc=dc-west") && !first.contains("stale"),
        "{first}"
    );
}

#[test]
fn consul_settings_are_checked_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    for (cfg, want) in [
        (
            "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - server: ''\n",
            "scrape_configs[0].consul_sd_configs[0].server: consul SD configuration requires a server address",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - username: u\n        basic_auth: {username: v}\n",
            "at most one of consul SD configuration username and password and basic auth",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - oauth2: {}\n",
            "4:9: scrape_configs[0].consul_sd_configs[0].oauth2: \"oauth2\" is a Prometheus setting that argus does not support",
        ),
        (
            "scrape_configs:\n  - job_name: a\n    consul_sd_configs:\n      - servr: x\n",
            "4:9",
        ),
    ] {
        let f = dir.path().join("p.yml");
        std::fs::write(&f, cfg).unwrap();
        let (code, out) = argus_cli(["check".as_ref(), "config".as_ref(), f.as_os_str()]);
        assert_eq!(code, Some(1), "{cfg}: {out}");
        assert!(out.contains(want), "{cfg}: {out}");
    }
}
