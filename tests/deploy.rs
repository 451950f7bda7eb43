//! The deployment files in deploy/ run as written: the systemd unit's
//! command on the example config, the Kubernetes pair's config and
//! wiring, and the Grafana dashboard's queries against a real argus. Every
//! outside address in them is pointed at 127.0.0.1 first.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An /etc/argus as deploy/ describes it: the shipped rules, SLO specs and
/// routing with its secret files (pointing at `hook`), and the peer
/// secret.
fn etc_argus(root: &Path, hook: &str) -> PathBuf {
    let etc = root.join("etc/argus");
    for d in ["rules", "slo", "alerting"] {
        copy_dir(&repo().join(d), &etc.join(d));
    }
    let secrets = etc.join("alerting/secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (f, v) in [
        ("slack_api_url", format!("http://{hook}/slack")),
        ("pagerduty_routing_key", "key".into()),
        ("smtp_password", "pw".into()),
        ("deadman_url", format!("http://{hook}/deadman")),
    ] {
        std::fs::write(secrets.join(f), v).unwrap();
    }
    std::fs::create_dir_all(etc.join("secrets")).unwrap();
    std::fs::write(etc.join("secrets/peer-secret"), "0123456789abcdef\n").unwrap();
    etc
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn health(port: u16) -> Option<()> {
    let url = format!("http://127.0.0.1:{port}");
    let (code, _) = argus_cli(["check", "health", "--url", &url, "--timeout", "2s"]);
    (code == Some(0)).then_some(())
}

/// The unit's `ExecStart` with the example config (deploy/argus.yml) and
/// the shipped files: argus starts, its `ExecStartPost` health check
/// passes, and the shipped rules, SLOs, routing and peers are loaded.
#[test]
fn the_systemd_unit_runs_the_example_config() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/argus.service")).unwrap();
    for key in [
        "DynamicUser=yes",
        "StateDirectory=argus",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    let exec = unit
        .replace("\\\n", " ")
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=").map(str::to_string))
        .unwrap();
    let hook = Recorder::start();
    let target = Target::text("up_probe 1\n");
    let tmp = tempfile::tempdir().unwrap();
    let etc = etc_argus(tmp.path(), &hook.addr());
    let port = free_port();
    let closed = free_port();
    let cfg = std::fs::read_to_string(repo().join("deploy/argus.yml"))
        .unwrap()
        .replace("127.0.0.1:9095", &format!("127.0.0.1:{port}"))
        .replace("argus-a.internal:9095", &format!("127.0.0.1:{port}"))
        .replace("argus-b.internal:9095", &format!("127.0.0.1:{closed}"))
        .replace("app-1.internal:8080", &target.addr())
        .replace("app-2.internal:8080", &target.addr())
        .replace("https://hc-ping.com", &format!("http://{}", hook.addr()));
    assert!(
        !cfg.contains(".internal") && !cfg.contains("https://"),
        "{cfg}"
    );
    std::fs::write(etc.join("argus.yml"), cfg).unwrap();
    let state = tmp.path().join("state");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace("/etc/argus", &etc.display().to_string())
                .replace("${STATE_DIRECTORY}", &state.display().to_string())
                .replace("0.0.0.0:9095", &format!("127.0.0.1:{port}"))
        })
        .collect();
    assert_eq!(args[0], "run", "{exec}");
    let log = std::fs::File::create(tmp.path().join("argus.log")).unwrap();
    // Routing would page Slack, PagerDuty and email: render, send nothing.
    let _argus = Killed(
        Command::new(argus_bin())
            .args(&args)
            .arg("--dry-run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(tmp.path().join("argus.log")).unwrap_or_default();
    let ready = std::time::Instant::now();
    while health(port).is_none() {
        assert!(
            ready.elapsed().as_secs() < 30,
            "not healthy; log:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let get = |path: &str| -> Value {
        let (code, body) = http_get(&format!("http://127.0.0.1:{port}{path}")).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str::<Value>(&body).unwrap()["data"].clone()
    };
    let groups: Vec<String> = get("/api/v1/rules")["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    for g in ["argus-self", "sloth-slo-alerts-app-requests-availability"] {
        assert!(groups.iter().any(|x| x == g), "{g} not in {groups:?}");
    }
    let peers = get("/api/v1/peers");
    assert_eq!(peers.as_array().unwrap().len(), 2, "{peers}");
}

/// Every document of a YAML file, as JSON values.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|d| serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .collect()
}

/// The Kubernetes pair: the StatefulSet, its headless service, the
/// config's peer members, the probes and the disruption budget agree
/// with each other; and the pair's config runs as two real processes
/// (pod names given by `--peers.self=$(POD_NAME)`) that see each other.
#[test]
fn the_kubernetes_pair_is_consistent_and_runs() {
    let dir = repo().join("deploy/kubernetes");
    let mut docs: Vec<Value> = Vec::new();
    let kust = yaml_docs(&dir.join("kustomization.yaml"));
    for r in kust[0]["resources"].as_array().unwrap() {
        docs.extend(yaml_docs(&dir.join(r.as_str().unwrap())));
    }
    let find = |kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let sts = find("StatefulSet", "argus");
    let replicas = sts["spec"]["replicas"].as_u64().unwrap();
    assert_eq!(replicas, 2);
    let svc_name = sts["spec"]["serviceName"].as_str().unwrap();
    let headless = find("Service", svc_name);
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--peers.self=$(POD_NAME)"), "{args:?}");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    let pdb = find("PodDisruptionBudget", "argus");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        sts["spec"]["selector"]["matchLabels"]
    );
    find("Secret", "argus-peer-secret");
    // The pods' service account may list and watch pods for the
    // kubernetes-pods job.
    let sa = sts["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap();
    find("ServiceAccount", sa);
    let binding = find("ClusterRoleBinding", "argus-discovery");
    assert_eq!(binding["subjects"][0]["name"], sa);
    let role = find("ClusterRole", binding["roleRef"]["name"].as_str().unwrap());
    let rule = &role["rules"][0];
    assert!(
        rule["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("pods"))
    );
    for verb in ["list", "watch"] {
        assert!(rule["verbs"].as_array().unwrap().contains(&json!(verb)));
    }
    let cm = find("ConfigMap", "argus-config");
    let cfg_text = cm["data"]["argus.yml"].as_str().unwrap().to_string();
    let cfg: Value = serde_saphyr::from_str(&cfg_text).unwrap();
    let members = cfg["peers"]["members"].as_array().unwrap();
    assert_eq!(members.len() as u64, replicas);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(m["id"], format!("argus-{i}"));
        assert_eq!(m["url"], format!("http://argus-{i}.{svc_name}:9095"));
    }

    // Two "pods" from the ConfigMap, the pod DNS names pointed at their
    // ports on 127.0.0.1; the same text for both, as from one ConfigMap
    // (both scrape the first pod's /metrics).
    let hook = Recorder::start();
    let ports = [free_port(), free_port()];
    let mut text = cfg_text.replace("127.0.0.1:9095", &format!("127.0.0.1:{}", ports[0]));
    for (j, p) in ports.iter().enumerate() {
        text = text.replace(
            &format!("argus-{j}.{svc_name}:9095"),
            &format!("127.0.0.1:{p}"),
        );
    }
    // The cluster's API (HTTPS, the pods' service account) with one
    // application pod annotated for scraping and one not.
    let app = Target::text("app_requests_total 7\n");
    let quiet = Target::text("app_requests_total 9\n");
    let api = kube::Api::start(true);
    api.change(|s| {
        s.put(
            "pods",
            kube::pod("shop", "web-1", app.port, true, json!({"app": "web"})),
        );
        s.put(
            "pods",
            kube::pod(
                "shop",
                "batch-1",
                quiet.port,
                false,
                json!({"app": "batch"}),
            ),
        );
    });
    let sa_dir = tempfile::tempdir().unwrap();
    std::fs::write(sa_dir.path().join("token"), "sa-token").unwrap();
    std::fs::write(sa_dir.path().join("ca.crt"), api.ca_pem.as_ref().unwrap()).unwrap();
    let sa_path = sa_dir.path().display().to_string();
    let api_port = api.port.to_string();
    let mut pods = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = etc_argus(tmp.path(), &hook.addr());
        std::fs::write(etc.join("argus.yml"), &text).unwrap();
        let pod = format!("argus-{i}");
        let a = Argus::spawn_env(
            tmp.path(),
            &etc.join("argus.yml"),
            *port,
            &["--dry-run", "--peers.self", &pod],
            &[
                ("ARGUS_K8S_SERVICEACCOUNT_DIR", sa_path.as_str()),
                ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
                ("KUBERNETES_SERVICE_PORT", api_port.as_str()),
            ],
        );
        pods.push((a, tmp));
    }
    // Each pod scrapes the annotated pod, labelled as with Prometheus.
    for (a, _) in &pods {
        let got = a.wait_for(20, "the annotated pod scraped", || {
            let f = a.federate("app_requests_total");
            (!f.is_empty()).then_some(f)
        });
        assert_eq!(got.len(), 1, "{got:?}");
        let s = &got[0].0;
        for l in [
            "job=\"kubernetes-pods\"",
            "namespace=\"shop\"",
            "pod=\"web-1\"",
            "app=\"web\"",
        ] {
            assert!(s.contains(l), "{s}");
        }
        assert_eq!(got[0].1, 7.0);
    }
    for (i, (a, _)) in pods.iter().enumerate() {
        let other = format!("argus-{}", 1 - i);
        a.wait_for(20, "the other pod up", || {
            let peers = a.api("/api/v1/peers");
            peers
                .as_array()?
                .iter()
                .find(|p| p["id"] == other.as_str())
                .filter(|p| p["up"] == true && p["configMismatch"] == false)
                .map(|_| ())
        });
    }
}

/// The Grafana dashboard's queries (and its variable) run against argus
/// itself as the Prometheus data source, with SLOs and a probe.
#[test]
fn the_grafana_dashboard_queries_argus() {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/argus.json")).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let target = Target::text(
        "http_requests_total{job=\"app\",code=\"200\"} 100\nhttp_requests_total{job=\"app\",code=\"500\"} 1\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("slo"), &tmp.path().join("slo"));
    let port = free_port();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nslo_files: ['slo/*.yml']\nscrape_configs:\n  - job_name: argus\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  - job_name: app\n    static_configs: [{{targets: ['{}']}}]\nprobe_configs:\n  - name: app-health\n    url: http://{}/\n    interval: 1s\n    timeout: 1s\n",
        target.addr(),
        target.addr()
    );
    std::fs::write(tmp.path().join("argus.yml"), cfg).unwrap();
    let a = Argus::spawn(tmp.path(), &tmp.path().join("argus.yml"), port, &[]);
    // The variable: label values of the SLO services.
    let services = a.wait_for(20, "the SLO services", || {
        let v = a.api("/api/v1/label/sloth_service/values?match[]=slo:objective:ratio");
        (v.as_array()?.len() >= 2).then_some(v)
    });
    assert!(services.as_array().unwrap().iter().any(|s| s == "app"));
    a.wait_for(30, "SLO burn rates", || {
        a.query_value("slo:current_burn_rate:ratio{sloth_service=~\".*\"}")
    });
    let mut queries = 0;
    let mut with_data = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap().replace("$service", ".*");
            let (code, body) = http_get(&format!(
                "{}/api/v1/query?query={}",
                a.url(),
                urlencode(&expr)
            ))
            .unwrap();
            assert_eq!(code, 200, "{}: {expr}: {body}", p["title"]);
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["status"], "success", "{expr}: {body}");
            queries += 1;
            if !v["data"]["result"].as_array().unwrap().is_empty() {
                with_data.push(p["title"].as_str().unwrap().to_string());
            }
        }
    }
    assert!(queries >= 20, "{queries}");
    // SLO, probe and store panels have data at once; counters of things
    // that have not happened (failures, peers) may not.
    for title in [
        "Burn rate (5m)",
        "Error ratio",
        "Probe checks",
        "Probe success (1h)",
        "Targets up",
        "Head series",
    ] {
        assert!(
            with_data.iter().any(|t| t == title),
            "{title}: {with_data:?}"
        );
    }
}
