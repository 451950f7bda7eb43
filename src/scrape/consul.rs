//! Consul service discovery (`consul_sd_configs`), as Prometheus does it:
//! the catalog's service list (when no services are named, or tags
//! filter them) and each service's instances from the health API, both
//! with blocking queries, at most once per `refresh_interval` each. One
//! target group per service, with Prometheus's `__meta_consul_*` labels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::discovery::{TargetGroup, join_host_port, sanitize_label_name};
use crate::config::ConsulSdConfig;

/// How long a blocking query may wait for a change (Prometheus's).
const WATCH: Duration = Duration::from_secs(120);
/// Wait after a failed request before the next (Prometheus's).
const RETRY: Duration = Duration::from_secs(15);

/// A failure, reported by the caller (counted and logged).
type Report = Arc<dyn Fn(String) + Send + Sync>;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Entry {
    node: Node,
    service: Service,
    checks: Option<Vec<Check>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Node {
    node: String,
    address: String,
    tagged_addresses: Option<BTreeMap<String, String>>,
    meta: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Service {
    #[serde(rename = "ID")]
    id: String,
    tags: Option<Vec<String>>,
    address: String,
    port: i64,
    meta: Option<BTreeMap<String, String>>,
    namespace: String,
    partition: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Check {
    #[serde(rename = "CheckID")]
    check_id: String,
    status: String,
}

/// The health of an instance from its checks, as Consul's client sums
/// them up: maintenance, then critical, then warning, else passing; an
/// unknown status makes it empty.
fn aggregated_status(checks: &[Check]) -> &'static str {
    let (mut warning, mut critical, mut maintenance) = (false, false, false);
    for c in checks {
        if c.check_id == "_node_maintenance" || c.check_id.starts_with("_service_maintenance:") {
            maintenance = true;
            continue;
        }
        match c.status.as_str() {
            "passing" => {}
            "warning" => warning = true,
            "critical" => critical = true,
            _ => return "",
        }
    }
    if maintenance {
        "maintenance"
    } else if critical {
        "critical"
    } else if warning {
        "warning"
    } else {
        "passing"
    }
}

/// The target group of one service from its health API answer.
fn service_group(name: &str, dc: &str, sep: &str, entries: Vec<Entry>) -> TargetGroup {
    let targets = entries
        .into_iter()
        .map(|e| {
            let tags = e.service.tags.unwrap_or_default();
            let host = if e.service.address.is_empty() {
                &e.node.address
            } else {
                &e.service.address
            };
            let mut l = BTreeMap::from([
                (
                    "__address__".to_string(),
                    join_host_port(host, e.service.port),
                ),
                ("__meta_consul_address".into(), e.node.address.clone()),
                ("__meta_consul_node".into(), e.node.node),
                ("__meta_consul_namespace".into(), e.service.namespace),
                ("__meta_consul_partition".into(), e.service.partition),
                (
                    "__meta_consul_tags".into(),
                    format!("{sep}{}{sep}", tags.join(sep)),
                ),
                (
                    "__meta_consul_service_address".into(),
                    e.service.address.clone(),
                ),
                (
                    "__meta_consul_service_port".into(),
                    e.service.port.to_string(),
                ),
                ("__meta_consul_service_id".into(), e.service.id),
                (
                    "__meta_consul_health".into(),
                    aggregated_status(&e.checks.unwrap_or_default()).to_string(),
                ),
            ]);
            for (prefix, map) in [
                ("__meta_consul_metadata_", e.node.meta),
                ("__meta_consul_service_metadata_", e.service.meta),
                ("__meta_consul_tagged_address_", e.node.tagged_addresses),
            ] {
                for (k, v) in map.unwrap_or_default() {
                    l.insert(format!("{prefix}{}", sanitize_label_name(&k)), v);
                }
            }
            l
        })
        .collect();
    TargetGroup {
        source: name.to_string(),
        targets,
        labels: BTreeMap::from([
            ("__meta_consul_service".to_string(), name.to_string()),
            ("__meta_consul_dc".to_string(), dc.to_string()),
        ]),
    }
}

/// The target group of a health API answer (`/v1/health/service/NAME`),
/// decoded as the watch decodes it: for the fuzz target.
pub fn health_answer_group(
    body: &[u8],
    name: &str,
    dc: &str,
    sep: &str,
) -> Result<TargetGroup, String> {
    let entries: Option<Vec<Entry>> =
        serde_json::from_slice(body).map_err(|e| format!("{}:{}: {e}", e.line(), e.column()))?;
    Ok(service_group(name, dc, sep, entries.unwrap_or_default()))
}

/// One Consul API client: the agent's URL, the query parameters every
/// request carries, and the credentials.
struct Api {
    cfg: ConsulSdConfig,
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// GETs `path` with `params` (and the common ones); the decoded body
    /// and the `X-Consul-Index` of the answer.
    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        index: Option<u64>,
    ) -> Result<(T, u64), String> {
        let mut q: Vec<(&str, String)> = params.to_vec();
        let c = &self.cfg;
        if !c.datacenter.is_empty() {
            q.push(("dc", c.datacenter.clone()));
        }
        if !c.namespace.is_empty() {
            q.push(("ns", c.namespace.clone()));
        }
        if !c.partition.is_empty() {
            q.push(("partition", c.partition.clone()));
        }
        if let Some(i) = index {
            if c.allow_stale {
                q.push(("stale", String::new()));
            }
            for (k, v) in &c.node_meta {
                q.push(("node-meta", format!("{k}:{v}")));
            }
            if i > 0 {
                q.push(("index", i.to_string()));
                q.push(("wait", format!("{}ms", WATCH.as_millis())));
            }
        }
        let url = crate::net::api_url(&self.base, path, &q);
        let mut req = self
            .client
            .get(&url)
            .timeout(WATCH + Duration::from_secs(15))
            .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = c.token.as_ref().filter(|t| !t.is_empty()) {
            req = req.header("X-Consul-Token", t.expose());
        }
        let basic = c.effective_basic_auth();
        let creds = crate::net::Credentials {
            basic_auth: basic.as_ref(),
            authorization: c.authorization.as_ref(),
            bearer_token: c.bearer_token.as_ref(),
            bearer_token_file: c.bearer_token_file.as_deref(),
        };
        let req = creds.apply(req).map_err(|e| format!("{url}: {e}"))?;
        let mut resp = req
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::net::error_chain(&e.without_url())))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{url}: server returned HTTP status {}",
                resp.status()
            ));
        }
        let idx = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = super::discovery::read_answer(&mut resp, &url).await?;
        let v = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: {}:{}: {e}", e.line(), e.column()))?;
        Ok((v, idx))
    }

    /// The datacenter the agent is in, asked until it answers.
    async fn datacenter(&self, report: &Report) -> String {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct SelfInfo {
            config: SelfConfig,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct SelfConfig {
            datacenter: String,
        }
        loop {
            match self.get::<SelfInfo>("/v1/agent/self", &[], None).await {
                Ok((s, _)) => return s.config.datacenter,
                Err(e) => report(format!("cannot learn the agent's datacenter: {e}")),
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// What the watchers tell the task that assembles the groups.
enum Msg {
    /// The catalog's services and their tags (`None`: its first ask
    /// failed).
    Services(Option<BTreeMap<String, Vec<String>>>),
    /// A service's group (`None`: its first ask failed).
    Group(String, Option<TargetGroup>),
}

/// Asks `path` with blocking queries, at most once per refresh interval,
/// and sends what `msg` makes of each changed answer (of a failed first
/// ask: `None`) until the receiver is gone.
async fn watch<T: serde::de::DeserializeOwned>(
    api: &Api,
    path: &str,
    params: &[(&str, String)],
    what: &str,
    report: &Report,
    tx: &mpsc::Sender<Msg>,
    msg: impl Fn(Option<T>) -> Msg,
) {
    let mut index = 0;
    let mut first = true;
    loop {
        let started = tokio::time::Instant::now();
        match api.get::<T>(path, params, Some(index)).await {
            Ok((v, idx)) if first || idx != index => {
                index = idx;
                if tx.send(msg(Some(v))).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                report(format!("{what}: {e}"));
                if first && tx.send(msg(None)).await.is_err() {
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
        first = false;
        tokio::time::sleep_until(started + api.cfg.refresh().0).await;
    }
}

/// Sends each change of one service's group until stopped.
async fn watch_service(
    api: Arc<Api>,
    name: String,
    dc: String,
    tx: mpsc::Sender<Msg>,
    report: Report,
) {
    let params: Vec<(&str, String)> = api.cfg.tags.iter().map(|t| ("tag", t.clone())).collect();
    let path = format!("/v1/health/service/{}", crate::net::urlencode(&name));
    let what = format!("service {name:?}");
    let sep = api.cfg.tag_separator();
    watch::<Option<Vec<Entry>>>(&api, &path, &params, &what, &report, &tx, |v| {
        let g = v.map(|e| service_group(&name, &dc, sep, e.unwrap_or_default()));
        Msg::Group(name.clone(), g)
    })
    .await;
}

/// Sends each change of the catalog's service list until stopped.
async fn watch_catalog(api: Arc<Api>, tx: mpsc::Sender<Msg>, report: Report) {
    type Services = Option<BTreeMap<String, Option<Vec<String>>>>;
    watch::<Services>(
        &api,
        "/v1/catalog/services",
        &[],
        "service list",
        &report,
        &tx,
        |v| {
            Msg::Services(v.map(|s| {
                s.unwrap_or_default()
                    .into_iter()
                    .map(|(k, t)| (k, t.unwrap_or_default()))
                    .collect()
            }))
        },
    )
    .await;
}

/// Runs one `consul_sd_configs` entry: sends the full group list (one
/// group per service) whenever it changes; the first send waits for the
/// first answer about the service list and every service in it, so a
/// reload does not drop targets. Failures go to `on_error`; the last good
/// groups stay.
pub async fn run_consul_sd(
    cfg: ConsulSdConfig,
    client: reqwest::Client,
    tx: watch::Sender<Vec<TargetGroup>>,
    on_error: impl Fn(String) + Send + Sync + 'static,
) {
    let report: Report = Arc::new(on_error);
    let base = format!("{}://{}", cfg.scheme(), cfg.server().trim_end_matches('/'));
    let api = Arc::new(Api { cfg, client, base });
    let dc = if api.cfg.datacenter.is_empty() {
        api.datacenter(&report).await
    } else {
        api.cfg.datacenter.clone()
    };
    let (msg_tx, mut msg_rx) = mpsc::channel(64);
    // Aborted with this task (the set is dropped).
    let mut tasks = JoinSet::new();
    let mut watchers: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
    let mut groups: BTreeMap<String, TargetGroup> = BTreeMap::new();
    // Services whose first answer has not come yet.
    let mut waiting: HashSet<String> = HashSet::new();
    let c = &api.cfg;
    // Prometheus lists the catalog unless services are named without tags.
    let listed = c.services.is_empty() || !c.tags.is_empty();
    let mut catalog_pending = listed;
    if listed {
        tasks.spawn(watch_catalog(api.clone(), msg_tx.clone(), report.clone()));
    }
    let mut start = |name: &str, watchers: &mut HashMap<_, _>, waiting: &mut HashSet<_>| {
        let h = tasks.spawn(watch_service(
            api.clone(),
            name.to_string(),
            dc.clone(),
            msg_tx.clone(),
            report.clone(),
        ));
        watchers.insert(name.to_string(), h);
        waiting.insert(name.to_string());
    };
    if !listed {
        for s in &c.services {
            start(s, &mut watchers, &mut waiting);
        }
    }
    let mut sent = false;
    while let Some(msg) = msg_rx.recv().await {
        match msg {
            Msg::Services(services) => {
                catalog_pending = false;
                let Some(services) = services else { continue };
                for (name, tags) in &services {
                    let wanted = (c.services.is_empty() || c.services.contains(name))
                        && c.tags.iter().all(|t| tags.contains(t));
                    if wanted && !watchers.contains_key(name) {
                        start(name, &mut watchers, &mut waiting);
                    }
                }
                let gone: Vec<String> = watchers
                    .keys()
                    .filter(|n| !services.contains_key(*n))
                    .cloned()
                    .collect();
                for n in gone {
                    if let Some(h) = watchers.remove(&n) {
                        h.abort();
                    }
                    waiting.remove(&n);
                    groups.remove(&n);
                }
            }
            Msg::Group(name, g) => {
                if !watchers.contains_key(&name) {
                    continue;
                }
                waiting.remove(&name);
                if let Some(g) = g {
                    groups.insert(name, g);
                }
            }
        }
        if catalog_pending || !waiting.is_empty() {
            continue;
        }
        let all: Vec<TargetGroup> = groups.values().cloned().collect();
        if !sent || *tx.borrow() != all {
            sent = true;
            if tx.send(all).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_and_labels_as_prometheus_sets_them() {
        let c = |id: &str, st: &str| Check {
            check_id: id.into(),
            status: st.into(),
        };
        assert_eq!(aggregated_status(&[]), "passing");
        assert_eq!(
            aggregated_status(&[c("a", "passing"), c("b", "warning")]),
            "warning"
        );
        assert_eq!(
            aggregated_status(&[c("a", "critical"), c("_node_maintenance", "critical")]),
            "maintenance"
        );
        assert_eq!(aggregated_status(&[c("a", "odd")]), "");
        let entries: Vec<Entry> = serde_json::from_str(
            r#"[{"Node": {"Node": "n1", "Address": "10.0.0.1", "Meta": {"rack-id": "r1"}, "TaggedAddresses": {"lan": "10.0.0.1"}},
                 "Service": {"ID": "web-1", "Service": "web", "Tags": ["a", "b"], "Address": "", "Port": 80, "Meta": null},
                 "Checks": [{"CheckID": "c", "Status": "passing"}], "Extra": 1},
                {"Node": {"Node": "n2", "Address": "10.0.0.2"},
                 "Service": {"ID": "web-2", "Tags": null, "Address": "fe80::1", "Port": 81}}]"#,
        )
        .unwrap();
        let g = service_group("web", "dc1", ",", entries);
        assert_eq!(g.source, "web");
        assert_eq!(g.labels["__meta_consul_dc"], "dc1");
        let t = &g.targets[0];
        assert_eq!(t["__address__"], "10.0.0.1:80");
        assert_eq!(t["__meta_consul_tags"], ",a,b,");
        assert_eq!(t["__meta_consul_metadata_rack_id"], "r1");
        assert_eq!(t["__meta_consul_tagged_address_lan"], "10.0.0.1");
        assert_eq!(t["__meta_consul_health"], "passing");
        assert_eq!(t["__meta_consul_service_id"], "web-1");
        let t = &g.targets[1];
        assert_eq!(t["__address__"], "[fe80::1]:81");
        assert_eq!(t["__meta_consul_tags"], ",,");
        assert_eq!(t["__meta_consul_service_address"], "fe80::1");
    }
}
