//! `kubernetes_sd_configs`: argus lists and watches a Kubernetes API
//! server (a stand-in on 127.0.0.1 speaking the list/watch protocol:
//! paged lists with `continue`, chunked watch streams of ADDED, MODIFIED,
//! DELETED and BOOKMARK events, a 410 ERROR when a resource version is too
//! old), builds Prometheus's `__meta_kubernetes_*` labels, and scrapes the
//! pods people mark with `prometheus.io/scrape`.

mod common;

use common::kube::{Api, pod};
use common::*;
use serde_json::json;

/// The relabeling people use to scrape annotated pods.
const ANNOTATED_PODS: &str = r#"    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        regex: 'true'
        action: keep
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: '([^:]+)(?::\d+)?;(\d+)'
        replacement: '$1:$2'
        target_label: __address__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
"#;

fn counter(a: &Argus, line_prefix: &str) -> f64 {
    let Ok((_, m)) = http_get(&format!("{}/metrics", a.url())) else {
        return 0.0;
    };
    m.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn series(a: &Argus, name: &str) -> Vec<String> {
    let mut v: Vec<String> = a
        .federate(name)
        .into_iter()
        .map(|(s, v)| format!("{s} {v}"))
        .collect();
    v.sort();
    v
}

#[test]
fn annotated_pods_are_scraped_and_follow_watch_events() {
    let t1 = Target::text("pod_metric 1\n");
    let t2 = Target::text("pod_metric 2\n");
    let t3 = Target::text("pod_metric 3\n");
    let api = Api::start(false);
    api.change(|s| {
        s.put(
            "pods",
            pod("shop", "web-1", t1.port, true, json!({"app": "web"})),
        );
        // Not annotated for scraping: discovered, then dropped.
        s.put(
            "pods",
            pod("shop", "web-quiet", t3.port, false, json!({"app": "web"})),
        );
        // Another app: the label selector keeps it out.
        s.put(
            "pods",
            pod("shop", "db-1", t3.port, true, json!({"app": "db"})),
        );
        // Another namespace: not watched.
        s.put(
            "pods",
            pod("kube-system", "dns-1", t3.port, true, json!({"app": "web"})),
        );
        // No address yet: a group without targets.
        let mut p = pod("shop", "web-starting", t3.port, true, json!({"app": "web"}));
        p["status"]["podIP"] = json!("");
        s.put("pods", p);
    });
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: kubernetes-pods
    kubernetes_sd_configs:
      - role: pod
        api_server: http://127.0.0.1:{}
        authorization:
          credentials: k8s-t0ken
        namespaces:
          names: [shop]
        selectors:
          - role: pod
            label: app=web
{ANNOTATED_PODS}"#,
        api.port
    );
    let a = Argus::start(&cfg, &[]);
    let want1 = format!(
        "pod_metric{{instance=\"127.0.0.1:{}\",job=\"kubernetes-pods\",namespace=\"shop\",pod=\"web-1\"}} 1",
        t1.port
    );
    wait_for(20, "the annotated pod scraped", || {
        (series(&a, "pod_metric") == vec![want1.clone()]).then_some(())
    });
    let t = a.target(&t1.addr()).unwrap();
    let d = &t["discoveredLabels"];
    for (k, v) in [
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_pod_name", "web-1"),
        ("__meta_kubernetes_pod_ip", "127.0.0.1"),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_node_name", "node-a"),
        ("__meta_kubernetes_pod_host_ip", "10.0.0.1"),
        ("__meta_kubernetes_pod_uid", "uid-web-1"),
        ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
        ("__meta_kubernetes_pod_controller_name", "web-5f7d"),
        ("__meta_kubernetes_pod_label_app", "web"),
        ("__meta_kubernetes_pod_labelpresent_app", "true"),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
            "true",
        ),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_pod_container_image", "example/app:1.2"),
        ("__meta_kubernetes_pod_container_id", "containerd://abc"),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ] {
        assert_eq!(d[k], v, "{k} in {d}");
    }
    assert_eq!(
        d["__meta_kubernetes_pod_container_port_number"],
        t1.port.to_string()
    );
    // The quiet pod was discovered and dropped by relabeling.
    let dropped = a.api("/api/v1/targets?state=dropped")["droppedTargets"].clone();
    let names: Vec<String> = dropped
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["discoveredLabels"]["__meta_kubernetes_pod_name"]
                    .as_str()
                    .unwrap_or(""),
                t["discoveredLabels"]["__meta_kubernetes_pod_container_name"]
                    .as_str()
                    .unwrap_or("")
            )
        })
        .collect();
    assert!(names.contains(&"web-quiet/app".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("db-1") || n.starts_with("dns-1")),
        "{names:?}"
    );
    {
        let lists = api.requests("/api/v1/namespaces/shop/pods");
        assert!(!lists.is_empty());
        let l = lists[0].to_lowercase();
        assert!(l.contains("authorization: bearer k8s-t0ken"), "{l}");
        assert!(l.contains("labelselector=app%3dweb"), "{l}");
        assert!(api.requests("/api/v1/namespaces/kube-system").is_empty());
        assert!(!api.requests("watch=true").is_empty());
    }

    // A pod is added through the watch.
    api.change(|s| {
        s.put(
            "pods",
            pod("shop", "web-2", t2.port, true, json!({"app": "web"})),
        )
    });
    wait_for(20, "the added pod scraped", || {
        (series(&a, "pod_metric").len() == 2).then_some(())
    });
    assert!(
        counter(
            &a,
            "argus_sd_kubernetes_events_total{role=\"pod\",event=\"add\"}"
        ) >= 1.0
    );

    // Modified: no longer annotated, so dropped.
    api.change(|s| {
        s.put(
            "pods",
            pod("shop", "web-2", t2.port, false, json!({"app": "web"})),
        )
    });
    wait_for(20, "the modified pod dropped", || {
        a.target(&t2.addr()).is_none().then_some(())
    });

    // The server ends the watches; argus watches again from where it was.
    let watches = api.requests("watch=true").len();
    api.change(|s| s.generation += 1);
    wait_for(20, "the watch taken up again", || {
        (api.requests("watch=true").len() > watches).then_some(())
    });

    // A 410 for a resource version too old: argus lists again, and a
    // pod deleted in between is gone.
    let lists = api.requests("/api/v1/namespaces/shop/pods?").len();
    api.change(|s| {
        s.delete("pods", "shop", "web-1");
        s.compacted = s.rv + 1;
        s.generation += 1;
    });
    wait_for(20, "the pod deleted", || {
        a.target(&t1.addr()).is_none().then_some(())
    });
    wait_for(20, "a fresh list after the 410", || {
        let n = api
            .requests("/api/v1/namespaces/shop/pods?")
            .iter()
            .filter(|r| !r.contains("watch=true"))
            .count();
        (n > lists).then_some(())
    });
    assert!(
        counter(
            &a,
            "argus_sd_kubernetes_events_total{role=\"pod\",event=\"delete\"}"
        ) >= 1.0
    );
}

#[test]
fn endpoints_carry_service_and_pod_labels_through_a_kubeconfig() {
    let t = Target::text("ep_metric 1\n");
    let api = Api::start(false);
    api.change(|s| {
        s.put(
            "pods",
            pod("shop", "web-1", t.port, true, json!({"app": "web"})),
        );
        s.put(
            "services",
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
                   "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.7",
                            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
        );
        s.put(
            "endpoints",
            json!({"metadata": {"name": "web", "namespace": "shop", "labels": {"tier": "front"}},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1", "nodeName": "node-a",
                       "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"}}],
                     "ports": [{"name": "metrics", "port": t.port, "protocol": "TCP"}]}]}),
        );
        s.put(
            "nodes",
            json!({"metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"}},
                   "spec": {"providerID": "aws:///z1/i-1"},
                   "status": {"addresses": [{"type": "Hostname", "address": "node-a"},
                                            {"type": "InternalIP", "address": "127.0.0.1"}],
                              "daemonEndpoints": {"kubeletEndpoint": {"Port": t.port}}}}),
        );
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "file-t0ken\n").unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: http://127.0.0.1:{}\ncontexts:\n- name: ctx\n  context:\n    cluster: local\n    user: me\nusers:\n- name: me\n  user:\n    tokenFile: token\ncurrent-context: ctx\n",
            api.port
        ),
    )
    .unwrap();
    let kc = dir.path().join("kubeconfig");
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: endpoints
    kubernetes_sd_configs:
      - role: endpoints
        kubeconfig_file: {kc}
        attach_metadata:
          node: true
    relabel_configs:
      - source_labels: [__meta_kubernetes_service_name]
        target_label: service
  - job_name: nodes
    kubernetes_sd_configs:
      - role: node
        kubeconfig_file: {kc}
    metrics_path: /node-metrics
"#,
        kc = kc.display()
    );
    let a = Argus::start(&cfg, &[]);
    wait_for(20, "the endpoint scraped", || {
        (series(&a, "ep_metric{job=\"endpoints\"}")
            == vec![format!(
                "ep_metric{{instance=\"127.0.0.1:{}\",job=\"endpoints\",service=\"web\"}} 1",
                t.port
            )])
        .then_some(())
    });
    let ep = a.get_json("/api/v1/targets")["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["labels"]["job"] == "endpoints")
        .cloned()
        .unwrap();
    let d = &ep["discoveredLabels"];
    for (k, v) in [
        ("__meta_kubernetes_endpoints_name", "web"),
        ("__meta_kubernetes_endpoints_label_tier", "front"),
        ("__meta_kubernetes_endpoint_ready", "true"),
        ("__meta_kubernetes_endpoint_port_name", "metrics"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_node_name", "node-a"),
        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        ("__meta_kubernetes_endpoint_address_target_name", "web-1"),
        ("__meta_kubernetes_service_name", "web"),
        ("__meta_kubernetes_service_label_tier", "front"),
        ("__meta_kubernetes_pod_name", "web-1"),
        ("__meta_kubernetes_pod_container_name", "app"),
        ("__meta_kubernetes_node_name", "node-a"),
        (
            "__meta_kubernetes_node_label_topology_kubernetes_io_zone",
            "z1",
        ),
    ] {
        assert_eq!(d[k], v, "{k} in {d}");
    }
    let node = a.get_json("/api/v1/targets")["data"]["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["labels"]["job"] == "nodes")
        .cloned()
        .unwrap();
    assert_eq!(node["labels"]["instance"], "node-a");
    assert_eq!(
        node["discoveredLabels"]["__address__"],
        format!("127.0.0.1:{}", t.port)
    );
    assert_eq!(
        node["discoveredLabels"]["__meta_kubernetes_node_address_InternalIP"],
        "127.0.0.1"
    );
    assert_eq!(
        node["discoveredLabels"]["__meta_kubernetes_node_provider_id"],
        "aws:///z1/i-1"
    );
    let reqs = api.requests("/api/v1/endpoints");
    assert!(
        reqs[0]
            .to_lowercase()
            .contains("authorization: bearer file-t0ken"),
        "{reqs:?}"
    );

    // The service's labels change: the endpoints' targets follow.
    api.change(|s| {
        let mut svc = s.objects[&("services".into(), "shop".into(), "web".into())].clone();
        svc["metadata"]["labels"]["tier"] = json!("back");
        s.put("services", svc);
    });
    wait_for(20, "the service label followed", || {
        let t = a.get_json("/api/v1/targets");
        let ep = t["data"]["activeTargets"]
            .as_array()?
            .iter()
            .find(|t| t["labels"]["job"] == "endpoints")?
            .clone();
        (ep["discoveredLabels"]["__meta_kubernetes_service_label_tier"] == "back").then_some(())
    });
}

#[test]
fn in_cluster_uses_the_service_account_over_https() {
    let t = Target::text("svc_metric 1\n");
    let api = Api::start(true);
    api.change(|s| {
        s.put(
            "pods",
            pod("team-a", "web-1", t.port, true, json!({"app": "web"})),
        );
        s.put(
            "pods",
            pod("team-b", "web-2", t.port, true, json!({"app": "web"})),
        );
    });
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("token"), "sa-t0ken").unwrap();
    std::fs::write(sa.path().join("ca.crt"), api.ca_pem.as_ref().unwrap()).unwrap();
    std::fs::write(sa.path().join("namespace"), "team-a").unwrap();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: in-cluster\n    kubernetes_sd_configs:\n      - role: pod\n        namespaces:\n          own_namespace: true\n{ANNOTATED_PODS}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("argus.yml");
    std::fs::write(&path, cfg).unwrap();
    let port = free_port();
    let sa_dir = sa.path().display().to_string();
    let api_port = api.port.to_string();
    let a = Argus::spawn_env(
        dir.path(),
        &path,
        port,
        &[],
        &[
            ("ARGUS_K8S_SERVICEACCOUNT_DIR", sa_dir.as_str()),
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
            ("KUBERNETES_SERVICE_PORT", api_port.as_str()),
        ],
    );
    wait_for(20, "the pod of its own namespace scraped", || {
        let s = series(&a, "svc_metric");
        (s.len() == 1 && s[0].contains("namespace=\"team-a\"")).then_some(())
    });
    let reqs = api.requests("/api/v1/namespaces/team-a/pods");
    assert!(
        reqs[0]
            .to_lowercase()
            .contains("authorization: bearer sa-t0ken"),
        "{reqs:?}"
    );
    assert!(api.requests("/namespaces/team-b/").is_empty());
}

#[test]
fn an_unreachable_api_server_is_reported_and_other_targets_run() {
    let t = Target::text("static_metric 1\n");
    let dead = free_port();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mixed\n    static_configs:\n      - targets: ['{}']\n    kubernetes_sd_configs:\n      - role: service\n        api_server: http://127.0.0.1:{dead}\n",
        t.addr()
    );
    let a = Argus::start(&cfg, &[]);
    wait_for(20, "the static target scraped", || {
        (series(&a, "static_metric").len() == 1).then_some(())
    });
    wait_for(20, "the failure counted and logged", || {
        (counter(&a, "argus_sd_kubernetes_failures_total ") >= 1.0
            && a.log().contains("kubernetes_sd"))
        .then_some(())
    });
}

#[test]
fn a_refused_watch_backs_off_instead_of_listing_in_a_loop() {
    let t = Target::text("pod_metric 1\n");
    let api = Api::start(false);
    api.change(|s| {
        s.forbid_watch = true;
        s.put(
            "pods",
            pod("shop", "web-1", t.port, true, json!({"app": "web"})),
        );
    });
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pods\n    kubernetes_sd_configs:\n      - role: pod\n        api_server: http://127.0.0.1:{}\n{ANNOTATED_PODS}",
        api.port
    );
    let a = Argus::start(&cfg, &[]);
    // The list still gives the targets.
    wait_for(20, "the pod scraped", || {
        (series(&a, "pod_metric").len() == 1).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(4));
    // Waits of 1, 2, 4 s between the refused watches: a handful of
    // requests, not a loop.
    let requests = api.requests("/api/v1/pods").len();
    assert!((2..=10).contains(&requests), "{requests} requests");
    assert!(counter(&a, "argus_sd_kubernetes_failures_total ") >= 1.0);
    assert!(a.log().contains("cannot watch"), "{}", a.log());
}
