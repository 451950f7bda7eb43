//! Kubernetes service discovery (`kubernetes_sd_configs`), following
//! Prometheus 2.42: the objects a role needs are listed and then watched
//! through the API server (per namespace, with the configured selectors),
//! kept in a local store, and turned into one target group per object with
//! Prometheus's `__meta_kubernetes_*` labels.
//!
//! Every change rebuilds the groups from the store, so a pod or service
//! that changes is reflected in the endpoints built on it at once
//! (Prometheus 2.42 waits for the next change of the endpoints object
//! when only a pod changes).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use super::discovery::{TargetGroup, join_host_port, sanitize_label_name};
use crate::config::KubernetesSdConfig;

/// A failure, reported by the caller (counted and logged).
pub type Report = Arc<dyn Fn(String) + Send + Sync>;

/// Counts handled watch events by role and kind of event (`add`,
/// `update`, `delete`), as `prometheus_sd_kubernetes_events_total` does.
pub type EventCount = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

/// Where a pod finds its service account (token, CA, namespace), unless
/// `ARGUS_K8S_SERVICEACCOUNT_DIR` says otherwise (for tests).
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Objects asked for in one list page.
const PAGE: usize = 500;
/// A list request's time budget.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a watch asks the server to stay open (client-go's minimum;
/// it then ends cleanly and is started again from where it was).
const WATCH_SECONDS: u64 = 300;
/// Waits after a failure, doubling from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));

// ---------------------------------------------------------------------
// Selectors, checked as the Kubernetes client parses them.

/// A label name as Kubernetes qualifies them: an optional DNS subdomain
/// prefix and `/`, then 1–63 alphanumerics, `-`, `_` or `.`, starting and
/// ending with an alphanumeric.
fn qualified_name(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !s.starts_with('-')
                    && !s.ends_with('-')
            });
        if !ok {
            return false;
        }
    }
    !name.is_empty() && name.len() <= 63 && label_value(name)
}

/// A label value: empty, or up to 63 alphanumerics, `-`, `_` or `.`,
/// starting and ending with an alphanumeric.
fn label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && v.as_bytes()[0].is_ascii_alphanumeric()
            && v.as_bytes()[v.len() - 1].is_ascii_alphanumeric())
}

/// Checks a label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`,
/// `a in (x,y)`, `a notin (x)`, comma-separated).
pub fn check_label_selector(s: &str) -> Result<(), String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(());
    }
    // Commas inside the parentheses of a set belong to it.
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("label selector {s:?}: unbalanced ')'"));
        }
    }
    if depth != 0 {
        return Err(format!("label selector {s:?}: unclosed '('"));
    }
    terms.push(&s[start..]);
    for t in terms {
        let t = t.trim();
        let bad = |why: &str| Err(format!("label selector {s:?}: {t:?}: {why}"));
        if t.is_empty() {
            return bad("empty requirement");
        }
        if let Some(k) = t.strip_prefix('!') {
            if !qualified_name(k.trim()) {
                return bad("invalid label key");
            }
            continue;
        }
        let set = [" notin ", " in "].iter().find_map(|op| t.split_once(op));
        if let Some((k, vals)) = set {
            let vals = vals.trim();
            let Some(inner) = vals.strip_prefix('(').and_then(|v| v.strip_suffix(')')) else {
                return bad("a set needs (values)");
            };
            if !qualified_name(k.trim()) {
                return bad("invalid label key");
            }
            if inner.split(',').any(|v| !label_value(v.trim())) {
                return bad("invalid label value");
            }
            continue;
        }
        let (k, v) = if let Some((k, v)) = t.split_once("!=") {
            (k, v)
        } else if let Some((k, v)) = t.split_once("==") {
            (k, v)
        } else if let Some((k, v)) = t.split_once('=') {
            (k, v)
        } else {
            (t, "")
        };
        if !qualified_name(k.trim()) {
            return bad("invalid label key");
        }
        if !label_value(v.trim()) {
            return bad("invalid label value");
        }
    }
    Ok(())
}

/// Checks a field selector: comma-separated `field=value`, `field==value`
/// or `field!=value` (a `\` escapes `,`, `=` and `\` in values).
pub fn check_field_selector(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Ok(());
    }
    let mut terms = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=' | '!')) => {
                    if let Some(t) = terms.last_mut() {
                        t.push('\\');
                        t.push(n);
                    }
                }
                _ => return Err(format!("field selector {s:?}: invalid escape sequence")),
            },
            ',' => terms.push(String::new()),
            c => {
                if let Some(t) = terms.last_mut() {
                    t.push(c);
                }
            }
        }
    }
    for t in &terms {
        let ok = ["!=", "==", "="]
            .iter()
            .find_map(|op| t.split_once(op))
            .is_some_and(|(k, _)| !k.trim().is_empty());
        if !ok {
            return Err(format!(
                "field selector {s:?}: invalid selector: '{t}'; can't understand '{t}'"
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// The objects, with only the fields discovery reads.

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Meta {
    name: String,
    namespace: String,
    uid: String,
    resource_version: String,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerRef>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct OwnerRef {
    kind: String,
    name: String,
    controller: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Pod {
    metadata: Meta,
    spec: PodSpec,
    status: PodStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodSpec {
    node_name: String,
    containers: Option<Vec<Container>>,
    init_containers: Option<Vec<Container>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Container {
    name: String,
    image: String,
    ports: Option<Vec<ContainerPort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ContainerPort {
    name: String,
    container_port: i64,
    protocol: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PodStatus {
    phase: String,
    #[serde(rename = "podIP")]
    pod_ip: String,
    #[serde(rename = "hostIP")]
    host_ip: String,
    conditions: Option<Vec<Condition>>,
    container_statuses: Option<Vec<ContainerStatus>>,
    init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ContainerStatus {
    name: String,
    #[serde(rename = "containerID")]
    container_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Service {
    metadata: Meta,
    spec: ServiceSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "clusterIP")]
    cluster_ip: String,
    external_name: String,
    #[serde(rename = "loadBalancerIP")]
    load_balancer_ip: String,
    ports: Option<Vec<ServicePort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ServicePort {
    name: String,
    port: i64,
    protocol: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Node {
    metadata: Meta,
    spec: NodeSpec,
    status: NodeStatus,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct NodeSpec {
    #[serde(rename = "providerID")]
    provider_id: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct NodeStatus {
    addresses: Option<Vec<NodeAddress>>,
    daemon_endpoints: DaemonEndpoints,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct NodeAddress {
    #[serde(rename = "type")]
    kind: String,
    address: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DaemonEndpoints {
    kubelet_endpoint: KubeletEndpoint,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct KubeletEndpoint {
    #[serde(rename = "Port")]
    port: i64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Endpoints {
    metadata: Meta,
    subsets: Option<Vec<Subset>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Subset {
    addresses: Option<Vec<EndpointAddress>>,
    not_ready_addresses: Option<Vec<EndpointAddress>>,
    ports: Option<Vec<ServicePort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct EndpointAddress {
    ip: String,
    hostname: String,
    node_name: Option<String>,
    target_ref: Option<ObjectRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct ObjectRef {
    kind: String,
    name: String,
    namespace: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct EndpointSlice {
    metadata: Meta,
    address_type: String,
    endpoints: Option<Vec<SliceEndpoint>>,
    ports: Option<Vec<SlicePort>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SliceEndpoint {
    addresses: Option<Vec<String>>,
    conditions: SliceConditions,
    hostname: Option<String>,
    node_name: Option<String>,
    target_ref: Option<ObjectRef>,
    deprecated_topology: Option<BTreeMap<String, String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct SliceConditions {
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SlicePort {
    name: Option<String>,
    port: Option<i64>,
    protocol: Option<String>,
    app_protocol: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct Ingress {
    metadata: Meta,
    spec: IngressSpec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct IngressSpec {
    ingress_class_name: Option<String>,
    tls: Option<Vec<IngressTls>>,
    rules: Option<Vec<IngressRule>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct IngressTls {
    hosts: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct IngressRule {
    host: String,
    http: Option<IngressHttp>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct IngressHttp {
    paths: Option<Vec<IngressPath>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
struct IngressPath {
    path: String,
}

/// The kinds of object discovery watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Pod,
    Service,
    Node,
    Endpoints,
    EndpointSlice,
    Ingress,
}

impl Kind {
    /// The role name Prometheus uses for this kind (in event counts and
    /// selectors).
    fn role(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::Service => "service",
            Kind::Node => "node",
            Kind::Endpoints => "endpoints",
            Kind::EndpointSlice => "endpointslice",
            Kind::Ingress => "ingress",
        }
    }

    /// The collection's path, in one namespace or (None) in all.
    fn path(self, ns: Option<&str>) -> String {
        let (group, plural) = match self {
            Kind::Pod => ("api/v1", "pods"),
            Kind::Service => ("api/v1", "services"),
            Kind::Node => ("api/v1", "nodes"),
            Kind::Endpoints => ("api/v1", "endpoints"),
            Kind::EndpointSlice => ("apis/discovery.k8s.io/v1", "endpointslices"),
            Kind::Ingress => ("apis/networking.k8s.io/v1", "ingresses"),
        };
        match ns {
            Some(ns) if self != Kind::Node => {
                format!("/{group}/namespaces/{}/{plural}", crate::net::urlencode(ns))
            }
            _ => format!("/{group}/{plural}"),
        }
    }
}

/// One object of any kind.
#[derive(Clone, Debug)]
enum Obj {
    Pod(Pod),
    Service(Service),
    Node(Node),
    Endpoints(Endpoints),
    EndpointSlice(EndpointSlice),
    Ingress(Ingress),
}

impl Obj {
    fn decode(kind: Kind, v: serde_json::Value) -> Result<Obj, serde_json::Error> {
        Ok(match kind {
            Kind::Pod => Obj::Pod(serde_json::from_value(v)?),
            Kind::Service => Obj::Service(serde_json::from_value(v)?),
            Kind::Node => Obj::Node(serde_json::from_value(v)?),
            Kind::Endpoints => Obj::Endpoints(serde_json::from_value(v)?),
            Kind::EndpointSlice => Obj::EndpointSlice(serde_json::from_value(v)?),
            Kind::Ingress => Obj::Ingress(serde_json::from_value(v)?),
        })
    }

    fn meta(&self) -> &Meta {
        match self {
            Obj::Pod(o) => &o.metadata,
            Obj::Service(o) => &o.metadata,
            Obj::Node(o) => &o.metadata,
            Obj::Endpoints(o) => &o.metadata,
            Obj::EndpointSlice(o) => &o.metadata,
            Obj::Ingress(o) => &o.metadata,
        }
    }
}

/// `namespace/name` (or the name of a node), the key of the store.
fn key_of(m: &Meta) -> String {
    format!("{}/{}", m.namespace, m.name)
}

/// What discovery knows of the cluster: every watched object by kind
/// and key.
#[derive(Default)]
struct Store {
    objs: HashMap<Kind, BTreeMap<String, Obj>>,
}

impl Store {
    fn get(&self, kind: Kind, key: &str) -> Option<&Obj> {
        self.objs.get(&kind)?.get(key)
    }

    fn all(&self, kind: Kind) -> impl Iterator<Item = &Obj> {
        self.objs.get(&kind).into_iter().flat_map(|m| m.values())
    }

    fn pod(&self, r: Option<&ObjectRef>) -> Option<&Pod> {
        let r = r.filter(|r| r.kind == "Pod")?;
        match self.get(Kind::Pod, &format!("{}/{}", r.namespace, r.name))? {
            Obj::Pod(p) => Some(p),
            _ => None,
        }
    }

    fn service(&self, ns: &str, name: &str) -> Option<&Service> {
        match self.get(Kind::Service, &format!("{ns}/{name}"))? {
            Obj::Service(s) => Some(s),
            _ => None,
        }
    }

    fn node(&self, name: &str) -> Option<&Node> {
        match self.get(Kind::Node, &format!("/{name}"))? {
            Obj::Node(n) => Some(n),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------
// Target groups, as Prometheus builds them.

type LabelSet = BTreeMap<String, String>;

const META: &str = "__meta_kubernetes_";

fn put(l: &mut LabelSet, name: &str, v: impl Into<String>) {
    l.insert(format!("{META}{name}"), v.into());
}

/// `<prefix>label_<k>`/`labelpresent_<k>` (and the same for
/// annotations) of an object's metadata.
fn meta_maps(l: &mut LabelSet, prefix: &str, m: &Meta, annotations: bool) {
    let mut add = |what: &str, map: &Option<BTreeMap<String, String>>| {
        for (k, v) in map.iter().flatten() {
            let k = sanitize_label_name(k);
            l.insert(format!("{META}{prefix}_{what}_{k}"), v.clone());
            l.insert(format!("{META}{prefix}_{what}present_{k}"), "true".into());
        }
    };
    add("label", &m.labels);
    if annotations {
        add("annotation", &m.annotations);
    }
}

fn pod_labels(p: &Pod) -> LabelSet {
    let mut l = LabelSet::new();
    put(&mut l, "pod_name", &p.metadata.name);
    put(&mut l, "pod_ip", &p.status.pod_ip);
    let ready = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.kind == "Ready")
        .map_or("unknown".to_string(), |c| c.status.to_ascii_lowercase());
    put(&mut l, "pod_ready", ready);
    put(&mut l, "pod_phase", &p.status.phase);
    put(&mut l, "pod_node_name", &p.spec.node_name);
    put(&mut l, "pod_host_ip", &p.status.host_ip);
    put(&mut l, "pod_uid", &p.metadata.uid);
    let controller = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(c) = controller {
        if !c.kind.is_empty() {
            put(&mut l, "pod_controller_kind", &c.kind);
        }
        if !c.name.is_empty() {
            put(&mut l, "pod_controller_name", &c.name);
        }
    }
    meta_maps(&mut l, "pod", &p.metadata, true);
    l
}

fn service_labels(s: &Service) -> LabelSet {
    let mut l = LabelSet::new();
    put(&mut l, "service_name", &s.metadata.name);
    put(&mut l, "namespace", &s.metadata.namespace);
    meta_maps(&mut l, "service", &s.metadata, true);
    l
}

/// The node's name and labels, for `attach_metadata: {node: true}`.
fn add_node_labels(l: &mut LabelSet, store: &Store, node: Option<&str>) {
    let Some(name) = node else { return };
    let Some(n) = store.node(name) else { return };
    put(l, "node_name", name);
    meta_maps(l, "node", &n.metadata, false);
}

fn merge(mut a: LabelSet, b: LabelSet) -> LabelSet {
    a.extend(b);
    a
}

fn containers(p: &Pod) -> impl Iterator<Item = &Container> {
    p.spec.containers.iter().flatten()
}

fn container_ports(c: &Container) -> impl Iterator<Item = &ContainerPort> {
    c.ports.iter().flatten()
}

fn pod_group(p: &Pod, store: &Store, with_node: bool) -> TargetGroup {
    let mut g = TargetGroup {
        source: format!("pod/{}/{}", p.metadata.namespace, p.metadata.name),
        ..TargetGroup::default()
    };
    // A pod that is starting or was evicted has no address yet.
    let ip = &p.status.pod_ip;
    if ip.is_empty() {
        return g;
    }
    g.labels = pod_labels(p);
    put(&mut g.labels, "namespace", &p.metadata.namespace);
    if with_node {
        add_node_labels(&mut g.labels, store, Some(&p.spec.node_name));
    }
    let n_main = p.spec.containers.as_ref().map_or(0, Vec::len);
    let all = containers(p).chain(p.spec.init_containers.iter().flatten());
    for (i, c) in all.enumerate() {
        let init = i >= n_main;
        let statuses = if init {
            &p.status.init_container_statuses
        } else {
            &p.status.container_statuses
        };
        let id = statuses
            .iter()
            .flatten()
            .find(|s| s.name == c.name)
            .map(|s| s.container_id.clone())
            .unwrap_or_default();
        let mut base = LabelSet::new();
        put(&mut base, "pod_container_name", &c.name);
        put(&mut base, "pod_container_id", id);
        put(&mut base, "pod_container_image", &c.image);
        put(&mut base, "pod_container_init", init.to_string());
        if c.ports.as_ref().is_none_or(Vec::is_empty) {
            // No port: one target at the pod's address, for relabeling
            // to add one.
            base.insert("__address__".into(), ip.clone());
            g.targets.push(base);
            continue;
        }
        for port in container_ports(c) {
            let mut t = base.clone();
            t.insert(
                "__address__".into(),
                join_host_port(ip, port.container_port),
            );
            put(
                &mut t,
                "pod_container_port_number",
                port.container_port.to_string(),
            );
            put(&mut t, "pod_container_port_name", &port.name);
            put(&mut t, "pod_container_port_protocol", &port.protocol);
            g.targets.push(t);
        }
    }
    g
}

fn service_group(s: &Service) -> TargetGroup {
    let mut g = TargetGroup {
        source: format!("svc/{}/{}", s.metadata.namespace, s.metadata.name),
        labels: service_labels(s),
        ..TargetGroup::default()
    };
    let host = format!("{}.{}.svc", s.metadata.name, s.metadata.namespace);
    for port in s.spec.ports.iter().flatten() {
        let mut t = LabelSet::new();
        t.insert("__address__".into(), join_host_port(&host, port.port));
        put(&mut t, "service_port_name", &port.name);
        put(&mut t, "service_port_number", port.port.to_string());
        put(&mut t, "service_port_protocol", &port.protocol);
        put(&mut t, "service_type", &s.spec.kind);
        if s.spec.kind == "ExternalName" {
            put(&mut t, "service_external_name", &s.spec.external_name);
        } else {
            put(&mut t, "service_cluster_ip", &s.spec.cluster_ip);
        }
        if s.spec.kind == "LoadBalancer" {
            put(&mut t, "service_loadbalancer_ip", &s.spec.load_balancer_ip);
        }
        g.targets.push(t);
    }
    g
}

/// Node address types in the order Prometheus prefers them.
const NODE_ADDRESS_ORDER: &[&str] = &[
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// A node's group, or None when it has no address (Prometheus then
/// sends nothing for it).
fn node_group(n: &Node) -> Option<TargetGroup> {
    let mut g = TargetGroup {
        source: format!("node/{}", n.metadata.name),
        ..TargetGroup::default()
    };
    put(&mut g.labels, "node_name", &n.metadata.name);
    put(&mut g.labels, "node_provider_id", &n.spec.provider_id);
    meta_maps(&mut g.labels, "node", &n.metadata, true);
    let mut by_type: BTreeMap<&str, &str> = BTreeMap::new();
    for a in n.status.addresses.iter().flatten() {
        by_type.entry(&a.kind).or_insert(&a.address);
    }
    let addr = NODE_ADDRESS_ORDER.iter().find_map(|t| by_type.get(t))?;
    let mut t = LabelSet::new();
    t.insert(
        "__address__".into(),
        join_host_port(addr, n.status.daemon_endpoints.kubelet_endpoint.port),
    );
    t.insert("instance".into(), n.metadata.name.clone());
    for (ty, a) in &by_type {
        t.insert(
            sanitize_label_name(&format!("{META}node_address_{ty}")),
            (*a).to_string(),
        );
    }
    g.targets.push(t);
    Some(g)
}

/// The container port labels of the pod's container that serves `port`;
/// the protocol is the endpoint port's (`endpoints`) or, when None, the
/// container port's (`endpointslice`), as Prometheus labels them.
fn matching_container(p: &Pod, port: i64, protocol: Option<&str>, t: &mut LabelSet) {
    for c in containers(p) {
        if let Some(cp) = container_ports(c).find(|cp| cp.container_port == port) {
            put(t, "pod_container_name", &c.name);
            put(t, "pod_container_image", &c.image);
            put(t, "pod_container_port_name", &cp.name);
            put(t, "pod_container_port_number", port.to_string());
            put(
                t,
                "pod_container_port_protocol",
                protocol.unwrap_or(&cp.protocol),
            );
            return;
        }
    }
}

/// Targets for the container ports of the pods behind an endpoints
/// object that no endpoint port covered (pods seen in the order met).
fn uncovered_ports(seen: &[(&Pod, Vec<i64>)], targets: &mut Vec<LabelSet>) {
    for (p, covered) in seen {
        for c in containers(p) {
            for cp in container_ports(c) {
                if covered.contains(&cp.container_port) {
                    continue;
                }
                let mut t = LabelSet::new();
                t.insert(
                    "__address__".into(),
                    join_host_port(&p.status.pod_ip, cp.container_port),
                );
                put(&mut t, "pod_container_name", &c.name);
                put(&mut t, "pod_container_image", &c.image);
                put(&mut t, "pod_container_port_name", &cp.name);
                put(
                    &mut t,
                    "pod_container_port_number",
                    cp.container_port.to_string(),
                );
                put(&mut t, "pod_container_port_protocol", &cp.protocol);
                targets.push(merge(t, pod_labels(p)));
            }
        }
    }
}

/// Remembers that `port` of pod `p` has a target.
fn cover<'a>(seen: &mut Vec<(&'a Pod, Vec<i64>)>, p: &'a Pod, port: Option<i64>) {
    let i = match seen.iter().position(|(q, _)| {
        q.metadata.namespace == p.metadata.namespace && q.metadata.name == p.metadata.name
    }) {
        Some(i) => i,
        None => {
            seen.push((p, Vec::new()));
            seen.len() - 1
        }
    };
    if let Some(port) = port {
        seen[i].1.push(port);
    }
}

fn endpoints_group(e: &Endpoints, store: &Store, with_node: bool) -> TargetGroup {
    let m = &e.metadata;
    let mut g = TargetGroup {
        source: format!("endpoints/{}/{}", m.namespace, m.name),
        ..TargetGroup::default()
    };
    put(&mut g.labels, "namespace", &m.namespace);
    put(&mut g.labels, "endpoints_name", &m.name);
    if let Some(s) = store.service(&m.namespace, &m.name) {
        g.labels.extend(service_labels(s));
    }
    meta_maps(&mut g.labels, "endpoints", m, false);
    let mut seen: Vec<(&Pod, Vec<i64>)> = Vec::new();
    for ss in e.subsets.iter().flatten() {
        for port in ss.ports.iter().flatten() {
            let ready = ss.addresses.iter().flatten().map(|a| (a, "true"));
            let not_ready = ss
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| (a, "false"));
            for (addr, ready) in ready.chain(not_ready) {
                let mut t = LabelSet::new();
                t.insert("__address__".into(), join_host_port(&addr.ip, port.port));
                put(&mut t, "endpoint_port_name", &port.name);
                put(&mut t, "endpoint_port_protocol", &port.protocol);
                put(&mut t, "endpoint_ready", ready);
                if let Some(r) = &addr.target_ref {
                    put(&mut t, "endpoint_address_target_kind", &r.kind);
                    put(&mut t, "endpoint_address_target_name", &r.name);
                }
                if let Some(n) = &addr.node_name {
                    put(&mut t, "endpoint_node_name", n);
                }
                if !addr.hostname.is_empty() {
                    put(&mut t, "endpoint_hostname", &addr.hostname);
                }
                if with_node {
                    add_node_labels(&mut t, store, addr.node_name.as_deref());
                }
                if let Some(p) = store.pod(addr.target_ref.as_ref()) {
                    t = merge(t, pod_labels(p));
                    matching_container(p, port.port, Some(&port.protocol), &mut t);
                    cover(&mut seen, p, Some(port.port));
                }
                g.targets.push(t);
            }
        }
    }
    uncovered_ports(&seen, &mut g.targets);
    g
}

fn slice_group(e: &EndpointSlice, store: &Store, with_node: bool) -> TargetGroup {
    let m = &e.metadata;
    let mut g = TargetGroup {
        source: format!("endpointslice/{}/{}", m.namespace, m.name),
        ..TargetGroup::default()
    };
    put(&mut g.labels, "namespace", &m.namespace);
    put(&mut g.labels, "endpointslice_name", &m.name);
    put(&mut g.labels, "endpointslice_address_type", &e.address_type);
    let svc = m
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"));
    if let Some(s) = svc.and_then(|s| store.service(&m.namespace, s)) {
        g.labels.extend(service_labels(s));
    }
    let mut seen: Vec<(&Pod, Vec<i64>)> = Vec::new();
    for ep in e.endpoints.iter().flatten() {
        for port in e.ports.iter().flatten() {
            for addr in ep.addresses.iter().flatten() {
                let mut t = LabelSet::new();
                let a = match port.port {
                    Some(p) => join_host_port(addr, p),
                    None => addr.clone(),
                };
                t.insert("__address__".into(), a);
                if let Some(n) = &port.name {
                    put(&mut t, "endpointslice_port_name", n);
                }
                if let Some(p) = &port.protocol {
                    put(&mut t, "endpointslice_port_protocol", p);
                }
                if let Some(p) = port.port {
                    put(&mut t, "endpointslice_port", p.to_string());
                }
                if let Some(p) = &port.app_protocol {
                    put(&mut t, "endpointslice_port_app_protocol", p);
                }
                let c = &ep.conditions;
                for (name, v) in [
                    ("ready", c.ready),
                    ("serving", c.serving),
                    ("terminating", c.terminating),
                ] {
                    if let Some(v) = v {
                        put(
                            &mut t,
                            &format!("endpointslice_endpoint_conditions_{name}"),
                            v.to_string(),
                        );
                    }
                }
                if let Some(h) = &ep.hostname {
                    put(&mut t, "endpointslice_endpoint_hostname", h);
                }
                if let Some(r) = &ep.target_ref {
                    put(&mut t, "endpointslice_address_target_kind", &r.kind);
                    put(&mut t, "endpointslice_address_target_name", &r.name);
                }
                for (k, v) in ep.deprecated_topology.iter().flatten() {
                    let k = sanitize_label_name(k);
                    put(&mut t, &format!("endpointslice_endpoint_topology_{k}"), v);
                    put(
                        &mut t,
                        &format!("endpointslice_endpoint_topology_present_{k}"),
                        "true",
                    );
                }
                if with_node {
                    add_node_labels(&mut t, store, ep.node_name.as_deref());
                }
                if let Some(p) = store.pod(ep.target_ref.as_ref()) {
                    t = merge(t, pod_labels(p));
                    if let Some(pn) = port.port {
                        matching_container(p, pn, None, &mut t);
                    }
                    cover(&mut seen, p, port.port);
                }
                g.targets.push(t);
            }
        }
    }
    uncovered_ports(&seen, &mut g.targets);
    g
}

/// A TLS host pattern (`*.example.com` covers one label) matches `host`.
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == host {
        return true;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.first() == Some(&"*") && p.len() == h.len() && p[1..] == h[1..]
}

fn ingress_group(i: &Ingress) -> TargetGroup {
    let m = &i.metadata;
    let mut g = TargetGroup {
        source: format!("ingress/{}/{}", m.namespace, m.name),
        ..TargetGroup::default()
    };
    put(&mut g.labels, "ingress_name", &m.name);
    put(&mut g.labels, "namespace", &m.namespace);
    if let Some(c) = &i.spec.ingress_class_name {
        put(&mut g.labels, "ingress_class_name", c);
    }
    meta_maps(&mut g.labels, "ingress", m, true);
    let tls_hosts: Vec<&String> = i
        .spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten())
        .collect();
    for rule in i.spec.rules.iter().flatten() {
        let scheme = if tls_hosts.iter().any(|p| host_matches(p, &rule.host)) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<String> = match rule.http.as_ref().and_then(|h| h.paths.as_ref()) {
            None => vec!["/".into()],
            Some(ps) => ps
                .iter()
                .map(|p| {
                    if p.path.is_empty() {
                        "/".into()
                    } else {
                        p.path.clone()
                    }
                })
                .collect(),
        };
        for path in paths {
            let mut t = LabelSet::new();
            t.insert("__address__".into(), rule.host.clone());
            put(&mut t, "ingress_scheme", scheme);
            put(&mut t, "ingress_host", &rule.host);
            put(&mut t, "ingress_path", path);
            g.targets.push(t);
        }
    }
    g
}

/// The groups of `role` from what the store holds, in key order.
fn build_groups(role: &str, store: &Store, with_node: bool) -> Vec<TargetGroup> {
    let mut out = Vec::new();
    for o in store.all(match role {
        "pod" => Kind::Pod,
        "service" => Kind::Service,
        "node" => Kind::Node,
        "endpoints" => Kind::Endpoints,
        "endpointslice" => Kind::EndpointSlice,
        _ => Kind::Ingress,
    }) {
        match o {
            Obj::Pod(p) => out.push(pod_group(p, store, with_node)),
            Obj::Service(s) => out.push(service_group(s)),
            Obj::Node(n) => out.extend(node_group(n)),
            Obj::Endpoints(e) => out.push(endpoints_group(e, store, with_node)),
            Obj::EndpointSlice(e) => out.push(slice_group(e, store, with_node)),
            Obj::Ingress(i) => out.push(ingress_group(i)),
        }
    }
    out
}

/// The groups of `role` for a list answer of the role's kind (the body of
/// `GET /api/v1/pods` and the like), decoded as discovery decodes lists:
/// for the fuzz target and tests.
pub fn list_answer_groups(role: &str, body: &[u8]) -> Result<Vec<TargetGroup>, String> {
    let kind = kinds_of(role, false)
        .first()
        .copied()
        .ok_or("unknown role")?;
    let list: List = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut store = Store::default();
    let map = store.objs.entry(kind).or_default();
    for v in list.items.unwrap_or_default() {
        let o = Obj::decode(kind, v).map_err(|e| e.to_string())?;
        map.insert(key_of(o.meta()), o);
    }
    Ok(build_groups(role, &store, false))
}

/// The kinds a role watches: its own first.
fn kinds_of(role: &str, with_node: bool) -> Vec<Kind> {
    let mut k = match role {
        "pod" => vec![Kind::Pod],
        "service" => vec![Kind::Service],
        "node" => vec![Kind::Node],
        "endpoints" => vec![Kind::Endpoints, Kind::Service, Kind::Pod],
        "endpointslice" => vec![Kind::EndpointSlice, Kind::Service, Kind::Pod],
        "ingress" => vec![Kind::Ingress],
        _ => Vec::new(),
    };
    if with_node && matches!(role, "pod" | "endpoints" | "endpointslice") {
        k.push(Kind::Node);
    }
    k
}

// ---------------------------------------------------------------------
// Connecting: api_server, a kubeconfig file, or the pod's service account.

/// How requests authenticate.
#[derive(Clone)]
enum Auth {
    /// The scrape-config style credentials of the SD config.
    Config(Box<KubernetesSdConfig>),
    /// A bearer token read from this file at every request (service
    /// account tokens are rotated).
    TokenFile(PathBuf),
    /// A fixed bearer token.
    Token(crate::config::Secret),
    /// Basic auth.
    Basic(String, crate::config::Secret),
    /// None (client certificates or an open server).
    None,
}

/// A connection to the API server.
#[derive(Clone)]
pub struct Conn {
    client: reqwest::Client,
    base: String,
    auth: Auth,
    own_namespace: Option<String>,
}

impl Conn {
    /// The connection an SD config asks for.
    pub fn new(cfg: &KubernetesSdConfig) -> Result<Conn, String> {
        if !cfg.kubeconfig_file.is_empty() {
            return kubeconfig(Path::new(&cfg.kubeconfig_file));
        }
        if let Some(api) = cfg.api_server.as_deref().filter(|a| !a.is_empty()) {
            let client = crate::net::build_client(cfg.tls_config.as_ref())?;
            return Ok(Conn {
                client,
                base: api.trim_end_matches('/').to_string(),
                auth: Auth::Config(Box::new(cfg.clone())),
                own_namespace: None,
            });
        }
        in_cluster(cfg.namespaces.own_namespace)
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        timeout: Duration,
    ) -> Result<reqwest::Response, String> {
        let set: Vec<(&str, String)> = query
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect();
        let url = crate::net::api_url(&self.base, path, &set);
        let mut req = self
            .client
            .get(&url)
            .timeout(timeout)
            .header("Accept", "application/json")
            .header("User-Agent", concat!("argus/", env!("CARGO_PKG_VERSION")));
        req = match &self.auth {
            Auth::Config(c) => {
                let creds = crate::net::Credentials {
                    basic_auth: c.basic_auth.as_ref(),
                    authorization: c.authorization.as_ref(),
                    bearer_token: c.bearer_token.as_ref(),
                    bearer_token_file: c.bearer_token_file.as_deref(),
                };
                creds.apply(req).map_err(|e| format!("{url}: {e}"))?
            }
            Auth::TokenFile(f) => {
                let t = crate::config::read_secret_file(&f.to_string_lossy())
                    .map_err(|e| format!("{url}: {e}"))?;
                req.header("Authorization", format!("Bearer {}", t.expose()))
            }
            Auth::Token(t) => req.header("Authorization", format!("Bearer {}", t.expose())),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p.expose())),
            Auth::None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{url}: {}", crate::net::error_chain(&e.without_url())))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let code = status.as_u16();
            let mut resp = resp;
            let detail = super::discovery::read_answer(&mut resp, &url)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice::<Status>(&b).ok())
                .map(|s| format!(": {}", s.message))
                .unwrap_or_default();
            return Err(if code == 410 {
                GONE.to_string()
            } else {
                format!("{url}: server returned HTTP status {status}{detail}")
            });
        }
        Ok(resp)
    }
}

/// The error text of a 410 (the resource version is too old): relist.
const GONE: &str = "410 Gone";

#[derive(Deserialize, Default)]
#[serde(default)]
struct Status {
    message: String,
    code: u16,
}

fn service_account_dir() -> PathBuf {
    std::env::var_os("ARGUS_K8S_SERVICEACCOUNT_DIR")
        .map_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR), PathBuf::from)
}

/// The pod's service account: `KUBERNETES_SERVICE_HOST`/`_PORT`, its
/// token (read at every request) and CA, as client-go's in-cluster
/// config.
fn in_cluster(own_namespace: bool) -> Result<Conn, String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    if host.is_empty() || port.is_empty() {
        return Err("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined (set api_server or kubeconfig_file when argus runs outside Kubernetes)".into());
    }
    let dir = service_account_dir();
    let token = dir.join("token");
    std::fs::metadata(&token).map_err(|e| format!("{}: {e}", token.display()))?;
    let ca = dir.join("ca.crt");
    let material = crate::net::TlsMaterial {
        ca: Some((
            std::fs::read(&ca).map_err(|e| format!("{}: {e}", ca.display()))?,
            format!("CA file {}", ca.display()),
        )),
        ..Default::default()
    };
    let own = if own_namespace {
        let f = dir.join("namespace");
        let ns = std::fs::read_to_string(&f).map_err(|e| {
            format!(
                "could not determine the pod's namespace: {}: {e}",
                f.display()
            )
        })?;
        if ns.is_empty() {
            return Err("could not read own namespace name (empty file)".into());
        }
        Some(ns)
    } else {
        None
    };
    let host_port = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Conn {
        client: crate::net::client_from_material(&material)?,
        base: format!("https://{host_port}"),
        auth: Auth::TokenFile(token),
        own_namespace: own,
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KubeConfig {
    clusters: Option<Vec<Named<KubeCluster>>>,
    users: Option<Vec<Named<KubeUser>>>,
    contexts: Option<Vec<Named<KubeContext>>>,
    #[serde(rename = "current-context")]
    current_context: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named<T: Default> {
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    item: T,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KubeCluster {
    server: String,
    certificate_authority: String,
    certificate_authority_data: String,
    insecure_skip_tls_verify: bool,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "kebab-case")]
struct KubeUser {
    token: String,
    #[serde(rename = "tokenFile")]
    token_file: String,
    client_certificate: String,
    client_certificate_data: String,
    client_key: String,
    client_key_data: String,
    username: String,
    password: String,
    exec: Option<serde_json::Value>,
    auth_provider: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct KubeContext {
    cluster: String,
    user: String,
}

/// A PEM item of a kubeconfig: its `-data` (base64) or the file it names
/// (relative to the kubeconfig).
fn pem_of(data: &str, file: &str, dir: &Path, what: &str) -> Result<Option<Vec<u8>>, String> {
    if !data.is_empty() {
        let b = crate::model::base64_decode(data.trim())
            .ok_or_else(|| format!("{what}-data is not base64"))?;
        return Ok(Some(b));
    }
    if !file.is_empty() {
        let p = dir.join(file);
        return std::fs::read(&p)
            .map(Some)
            .map_err(|e| format!("{what}: {}: {e}", p.display()));
    }
    Ok(None)
}

/// The cluster and user of a kubeconfig's current context.
fn kubeconfig(path: &Path) -> Result<Conn, String> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{name}: {e}"))?;
    let kc: KubeConfig = serde_saphyr::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let contexts = kc.contexts.unwrap_or_default();
    let ctx = contexts
        .iter()
        .find(|c| c.name == kc.current_context)
        .or_else(|| (kc.current_context.is_empty() && contexts.len() == 1).then(|| &contexts[0]))
        .ok_or_else(|| format!("{name}: context {:?} not found", kc.current_context))?;
    let clusters = kc.clusters.unwrap_or_default();
    let cluster = clusters
        .iter()
        .find(|c| c.name == ctx.item.cluster)
        .ok_or_else(|| format!("{name}: cluster {:?} not found", ctx.item.cluster))?;
    let users = kc.users.unwrap_or_default();
    let user = users.iter().find(|u| u.name == ctx.item.user);
    let c = &cluster.item;
    if c.server.is_empty() {
        return Err(format!("{name}: cluster {:?} has no server", cluster.name));
    }
    let mut material = crate::net::TlsMaterial {
        insecure_skip_verify: c.insecure_skip_tls_verify,
        ..Default::default()
    };
    let in_file = |e: String| format!("{name}: {e}");
    if let Some(ca) = pem_of(
        &c.certificate_authority_data,
        &c.certificate_authority,
        dir,
        "certificate-authority",
    )
    .map_err(in_file)?
    {
        material.ca = Some((ca, format!("the certificate authority of {name}")));
    }
    let mut auth = Auth::None;
    if let Some(u) = user.map(|u| &u.item) {
        if u.exec.is_some() || u.auth_provider.is_some() {
            return Err(format!(
                "{name}: user {:?} gets credentials from a plugin (exec or auth-provider), which argus does not run; give it a token, tokenFile or a client certificate",
                ctx.item.user
            ));
        }
        let cert = pem_of(
            &u.client_certificate_data,
            &u.client_certificate,
            dir,
            "client-certificate",
        )
        .map_err(in_file)?;
        let key = pem_of(&u.client_key_data, &u.client_key, dir, "client-key").map_err(in_file)?;
        if let (Some(mut c), Some(k)) = (cert, key) {
            c.push(b'\n');
            c.extend(k);
            material.identity = Some(c);
        }
        auth = if !u.token.is_empty() {
            Auth::Token(crate::config::Secret::new(u.token.clone()))
        } else if !u.token_file.is_empty() {
            Auth::TokenFile(dir.join(&u.token_file))
        } else if !u.username.is_empty() {
            Auth::Basic(
                u.username.clone(),
                crate::config::Secret::new(u.password.clone()),
            )
        } else {
            Auth::None
        };
    }
    Ok(Conn {
        client: crate::net::client_from_material(&material).map_err(in_file)?,
        base: c.server.trim_end_matches('/').to_string(),
        auth,
        own_namespace: None,
    })
}

// ---------------------------------------------------------------------
// List and watch.

#[derive(Deserialize, Default)]
#[serde(default)]
struct List {
    metadata: ListMeta,
    items: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue")]
    cont: String,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    object: serde_json::Value,
}

/// What an informer tells the store.
enum Change {
    /// A complete list of the kind in `ns` (all namespaces when None).
    Replace(Option<String>, Vec<Obj>),
    Put(Box<Obj>),
    Delete(String),
    /// The informer could not list or watch; the store keeps what it has.
    Failed(String),
}

struct Update {
    kind: Kind,
    change: Change,
}

/// Lists every page of `kind` in `ns`.
async fn list(
    conn: &Conn,
    kind: Kind,
    ns: Option<&str>,
    sel: (&str, &str),
) -> Result<(Vec<Obj>, String), String> {
    let path = kind.path(ns);
    let mut out = Vec::new();
    let mut cont = String::new();
    loop {
        let q = [
            ("labelSelector", sel.0.to_string()),
            ("fieldSelector", sel.1.to_string()),
            ("limit", PAGE.to_string()),
            ("continue", cont.clone()),
        ];
        let mut resp = conn.get(&path, &q, LIST_TIMEOUT).await?;
        let url = format!("{}{path}", conn.base);
        let body = super::discovery::read_answer(&mut resp, &url).await?;
        let l: List = serde_json::from_slice(&body)
            .map_err(|e| format!("{url}: {}:{}: {e}", e.line(), e.column()))?;
        for v in l.items.unwrap_or_default() {
            out.push(Obj::decode(kind, v).map_err(|e| format!("{url}: an item: {e}"))?);
        }
        if l.metadata.cont.is_empty() {
            return Ok((out, l.metadata.resource_version));
        }
        cont = l.metadata.cont;
    }
}

/// Newline-delimited watch events read from a response as they arrive,
/// each within the body budget.
struct Events<'a> {
    resp: &'a mut reqwest::Response,
    url: &'a str,
    buf: Vec<u8>,
}

impl Events<'_> {
    /// The next event; None when the server ended the stream.
    async fn next(&mut self) -> Result<Option<WatchEvent>, String> {
        let limit = crate::config::DEFAULT_BODY_SIZE_LIMIT as usize;
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                if line.trim_ascii().is_empty() {
                    continue;
                }
                return self.decode(&line).map(Some);
            }
            if self.buf.len() > limit {
                return Err(format!(
                    "{}: a watch event is longer than {limit} bytes",
                    self.url
                ));
            }
            let chunk = self.resp.chunk().await.map_err(|e| {
                format!(
                    "{}: {}",
                    self.url,
                    crate::net::error_chain(&e.without_url())
                )
            })?;
            match chunk {
                Some(c) => self.buf.extend_from_slice(&c),
                None if self.buf.trim_ascii().is_empty() => return Ok(None),
                None => {
                    let line = std::mem::take(&mut self.buf);
                    return self.decode(&line).map(Some);
                }
            }
        }
    }

    fn decode(&self, line: &[u8]) -> Result<WatchEvent, String> {
        serde_json::from_slice(line.trim_ascii())
            .map_err(|e| format!("{}: a watch event: {e}", self.url))
    }
}

/// The pause after a failure: from the first of [`BACKOFF`], doubling up
/// to the last, back to the first once things work.
struct Backoff(Duration);

impl Backoff {
    async fn pause(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(BACKOFF.1);
    }

    fn reset(&mut self) {
        self.0 = BACKOFF.0;
    }
}

/// Reports a failure and pauses; false once nobody listens.
async fn failed(tx: &mpsc::Sender<Update>, kind: Kind, e: String, backoff: &mut Backoff) -> bool {
    let change = Change::Failed(e);
    if tx.send(Update { kind, change }).await.is_err() {
        return false;
    }
    backoff.pause().await;
    true
}

/// Lists `kind` in `ns`, then watches it, for as long as the receiver
/// lives: a watch that ends is started again from where it was; a 410 or
/// a broken stream lists again; failures wait, doubling up to 30 s.
async fn informer(
    conn: Conn,
    kind: Kind,
    ns: Option<String>,
    sel: (String, String),
    tx: mpsc::Sender<Update>,
    events: EventCount,
) {
    let mut backoff = Backoff(BACKOFF.0);
    let send = |change: Change| {
        let tx = tx.clone();
        async move { tx.send(Update { kind, change }).await.is_ok() }
    };

    loop {
        let (objs, mut rv) = match list(&conn, kind, ns.as_deref(), (&sel.0, &sel.1)).await {
            Ok(x) => x,
            Err(e) => {
                if !failed(&tx, kind, e, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        if !send(Change::Replace(ns.clone(), objs)).await {
            return;
        }
        // Watch until the list must be taken again.
        loop {
            let path = kind.path(ns.as_deref());
            let url = format!("{}{path}", conn.base);
            let q = [
                ("watch", "true".to_string()),
                ("resourceVersion", rv.clone()),
                ("allowWatchBookmarks", "true".to_string()),
                ("timeoutSeconds", WATCH_SECONDS.to_string()),
                ("labelSelector", sel.0.clone()),
                ("fieldSelector", sel.1.clone()),
            ];
            let timeout = Duration::from_secs(WATCH_SECONDS + 30);
            let mut resp = match conn.get(&path, &q, timeout).await {
                Ok(r) => r,
                Err(e) if e == GONE => break,
                Err(e) => {
                    // A watch refused while lists pass (RBAC without
                    // `watch`, say) must not turn into a loop of lists.
                    if !failed(&tx, kind, e, &mut backoff).await {
                        return;
                    }
                    break;
                }
            };
            let opened = tokio::time::Instant::now();
            let mut events_seen = 0usize;
            let mut stream = Events {
                resp: &mut resp,
                url: &url,
                buf: Vec::new(),
            };
            let end = loop {
                let ev = match stream.next().await {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break Ok(false),
                    Err(e) => break Err(e),
                };
                let m: Meta = match ev.object.get("metadata").cloned() {
                    Some(v) => match serde_json::from_value(v) {
                        Ok(m) => m,
                        Err(e) => break Err(format!("{url}: a watch event: {e}")),
                    },
                    None => Meta::default(),
                };
                if !m.resource_version.is_empty() {
                    rv = m.resource_version.clone();
                }
                let change = match ev.kind.as_str() {
                    "ADDED" | "MODIFIED" => {
                        events(
                            kind.role(),
                            if ev.kind == "ADDED" { "add" } else { "update" },
                        );
                        match Obj::decode(kind, ev.object) {
                            Ok(o) => Change::Put(Box::new(o)),
                            Err(e) => break Err(format!("{url}: a watch event: {e}")),
                        }
                    }
                    "DELETED" => {
                        events(kind.role(), "delete");
                        Change::Delete(key_of(&m))
                    }
                    "BOOKMARK" => continue,
                    "ERROR" => {
                        let s: Status = serde_json::from_value(ev.object).unwrap_or_default();
                        if s.code == 410 {
                            break Ok(true);
                        }
                        break Err(format!("{url}: watch error {}: {}", s.code, s.message));
                    }
                    other => break Err(format!("{url}: unknown watch event type {other:?}")),
                };
                events_seen += 1;
                if !send(change).await {
                    return;
                }
            };
            match end {
                // The server closed the watch: take it up again, at once
                // after a watch that lasted, after a pause (doubling) when
                // the server ends watches as soon as they start.
                Ok(false) => {
                    if events_seen == 0 && opened.elapsed() < BACKOFF.0 {
                        backoff.pause().await;
                    } else {
                        backoff.reset();
                    }
                    continue;
                }
                // Too old a resource version: list again.
                Ok(true) => break,
                Err(e) => {
                    if !failed(&tx, kind, e, &mut backoff).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Runs one `kubernetes_sd_configs` entry until `tx` is closed: informers
/// for the kinds its role needs in each namespace, one store, and the
/// role's groups sent whenever they change. The first groups go out once
/// every informer has listed, or at the first failure (with what is
/// known, so the job's other targets start); after that a failure keeps
/// the last targets.
pub async fn run_kubernetes_sd(
    cfg: KubernetesSdConfig,
    tx: watch::Sender<Vec<TargetGroup>>,
    report: Report,
    events: EventCount,
) {
    let conn = match Conn::new(&cfg) {
        Ok(c) => c,
        Err(e) => {
            report(format!("kubernetes_sd: {e}"));
            let _ = tx.send(Vec::new());
            tx.closed().await;
            return;
        }
    };
    let mut namespaces: Vec<Option<String>> =
        cfg.namespaces.names.iter().cloned().map(Some).collect();
    if let Some(own) = &conn.own_namespace {
        namespaces.push(Some(own.clone()));
    }
    namespaces.sort();
    namespaces.dedup();
    if namespaces.is_empty() {
        namespaces.push(None);
    }
    let with_node = cfg.attach_metadata.node;
    let (utx, mut urx) = mpsc::channel::<Update>(256);
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending_lists = 0usize;
    for kind in kinds_of(&cfg.role, with_node) {
        let (l, f) = cfg.selector(kind.role());
        let scopes: Vec<Option<String>> = if kind == Kind::Node {
            vec![None]
        } else {
            namespaces.clone()
        };
        for ns in scopes {
            pending_lists += 1;
            tasks.spawn(informer(
                conn.clone(),
                kind,
                ns,
                (l.to_string(), f.to_string()),
                utx.clone(),
                events.clone(),
            ));
        }
    }
    drop(utx);
    let mut store = Store::default();
    let (mut started, mut sent) = (false, false);
    loop {
        let first = tokio::select! {
            u = urx.recv() => u,
            () = tx.closed() => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        while let Ok(u) = urx.try_recv() {
            batch.push(u);
        }
        for u in batch {
            let map = store.objs.entry(u.kind).or_default();
            match u.change {
                Change::Replace(ns, objs) => {
                    match &ns {
                        Some(ns) if u.kind != Kind::Node => {
                            map.retain(|_, o| o.meta().namespace != *ns)
                        }
                        _ => map.clear(),
                    }
                    for o in objs {
                        map.insert(key_of(o.meta()), o);
                    }
                    pending_lists = pending_lists.saturating_sub(1);
                }
                Change::Put(o) => {
                    map.insert(key_of(o.meta()), *o);
                }
                Change::Delete(k) => {
                    map.remove(&k);
                }
                Change::Failed(e) => {
                    report(format!("kubernetes_sd: {e}"));
                    started = true;
                }
            }
        }
        if pending_lists == 0 {
            started = true;
        }
        if started {
            let groups = build_groups(&cfg.role, &store, with_node);
            // The first send goes out even when empty: the job waits for it.
            if !sent {
                sent = true;
                let _ = tx.send(groups);
            } else {
                tx.send_if_modified(|old| {
                    if *old == groups {
                        return false;
                    }
                    *old = groups;
                    true
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_are_checked_as_kubernetes_parses_them() {
        for ok in [
            "",
            "app=web",
            "app==web,tier!=db",
            "app in (a, b),!legacy",
            "example.com/team notin (x)",
            "present",
        ] {
            assert!(check_label_selector(ok).is_ok(), "{ok}");
        }
        for bad in ["app=we b", "a in b", "=x", "a in (x", "-a=b", "a=b,"] {
            assert!(check_label_selector(bad).is_err(), "{bad}");
        }
        for ok in [
            "",
            "spec.nodeName=n1",
            "metadata.name!=x,status.phase==Running",
        ] {
            assert!(check_field_selector(ok).is_ok(), "{ok}");
        }
        for bad in ["spec.nodeName", "=x", "a=b,c"] {
            assert!(check_field_selector(bad).is_err(), "{bad}");
        }
    }

    fn groups(role: &str, items: serde_json::Value) -> Vec<TargetGroup> {
        let body = serde_json::json!({"items": items}).to_string();
        list_answer_groups(role, body.as_bytes()).unwrap()
    }

    #[test]
    fn services_get_a_target_per_port_with_their_type() {
        let g = groups(
            "service",
            serde_json::json!([
                {"metadata": {"name": "web", "namespace": "shop", "annotations": {"a/b": "c"}},
                 "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.9", "loadBalancerIP": "1.2.3.4",
                          "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                                    {"name": "udp", "port": 53, "protocol": "UDP"}]}},
                {"metadata": {"name": "ext", "namespace": "shop"},
                 "spec": {"type": "ExternalName", "externalName": "db.example.com",
                          "ports": [{"port": 5432, "protocol": "TCP"}]}}
            ]),
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].source, "svc/shop/ext");
        let ext = &g[0].targets[0];
        assert_eq!(ext["__address__"], "ext.shop.svc:5432");
        assert_eq!(
            ext["__meta_kubernetes_service_external_name"],
            "db.example.com"
        );
        assert!(!ext.contains_key("__meta_kubernetes_service_cluster_ip"));
        let web = &g[1];
        assert_eq!(web.labels["__meta_kubernetes_service_annotation_a_b"], "c");
        assert_eq!(
            web.labels["__meta_kubernetes_service_annotationpresent_a_b"],
            "true"
        );
        assert_eq!(web.targets.len(), 2);
        assert_eq!(web.targets[1]["__address__"], "web.shop.svc:53");
        assert_eq!(
            web.targets[1]["__meta_kubernetes_service_port_protocol"],
            "UDP"
        );
        assert_eq!(
            web.targets[0]["__meta_kubernetes_service_loadbalancer_ip"],
            "1.2.3.4"
        );
        assert_eq!(
            web.targets[0]["__meta_kubernetes_service_cluster_ip"],
            "10.0.0.9"
        );
        assert_eq!(
            web.targets[0]["__meta_kubernetes_service_type"],
            "LoadBalancer"
        );
    }

    #[test]
    fn ingresses_get_a_target_per_host_and_path() {
        let g = groups(
            "ingress",
            serde_json::json!([{"metadata": {"name": "i", "namespace": "n"},
                "spec": {"ingressClassName": "nginx", "tls": [{"hosts": ["*.example.com"]}],
                         "rules": [{"host": "a.example.com", "http": {"paths": [{"path": ""}, {"path": "/api"}]}},
                                   {"host": "b.org"}]}}]),
        );
        let t = &g[0].targets;
        assert_eq!(g[0].labels["__meta_kubernetes_ingress_class_name"], "nginx");
        let got: Vec<(String, String, String)> = t
            .iter()
            .map(|t| {
                (
                    t["__address__"].clone(),
                    t["__meta_kubernetes_ingress_scheme"].clone(),
                    t["__meta_kubernetes_ingress_path"].clone(),
                )
            })
            .collect();
        let want = [
            ("a.example.com", "https", "/"),
            ("a.example.com", "https", "/api"),
            ("b.org", "http", "/"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(got, want);
    }

    #[test]
    fn nodes_take_the_preferred_address_and_pods_without_ports_get_one_target() {
        let g = groups(
            "node",
            serde_json::json!([
                {"metadata": {"name": "n1"}, "status": {"addresses": [
                    {"type": "Hostname", "address": "n1"}, {"type": "ExternalIP", "address": "1.1.1.1"},
                    {"type": "ExternalIP", "address": "2.2.2.2"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}},
                {"metadata": {"name": "no-address"}}
            ]),
        );
        // A node without any address has no group at all.
        assert_eq!(g.len(), 1);
        let t = &g[0].targets[0];
        assert_eq!(t["__address__"], "1.1.1.1:10250");
        assert_eq!(t["instance"], "n1");
        assert_eq!(t["__meta_kubernetes_node_address_Hostname"], "n1");
        assert_eq!(t["__meta_kubernetes_node_address_ExternalIP"], "1.1.1.1");
        let p = groups(
            "pod",
            serde_json::json!([{"metadata": {"name": "p", "namespace": "n"},
                "spec": {"containers": [{"name": "c", "image": "i"}],
                         "initContainers": [{"name": "init", "ports": [{"containerPort": 1, "protocol": "TCP"}]}]},
                "status": {"podIP": "fe80::1"}}]),
        );
        let t = &p[0].targets;
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["__address__"], "fe80::1");
        assert!(!t[0].contains_key("__meta_kubernetes_pod_container_port_number"));
        assert_eq!(t[1]["__address__"], "[fe80::1]:1");
        assert_eq!(t[1]["__meta_kubernetes_pod_container_init"], "true");
        assert_eq!(p[0].labels["__meta_kubernetes_pod_ready"], "unknown");
    }

    #[test]
    fn endpoint_slices_join_services_and_pods_and_add_uncovered_ports() {
        let mut store = Store::default();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n"},
            "spec": {"containers": [{"name": "c", "image": "img", "ports": [
                {"name": "web", "containerPort": 8080, "protocol": "TCP"},
                {"name": "admin", "containerPort": 9000, "protocol": "TCP"}]}]},
            "status": {"podIP": "10.1.0.5"}}))
        .unwrap();
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "n", "labels": {"team": "a"}}}))
        .unwrap();
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-abc", "namespace": "n",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true, "serving": false},
                           "hostname": "h", "targetRef": {"kind": "Pod", "name": "p", "namespace": "n"}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]}))
        .unwrap();
        for o in [Obj::Pod(pod), Obj::Service(svc), Obj::EndpointSlice(slice)] {
            let kind = match o {
                Obj::Pod(_) => Kind::Pod,
                Obj::Service(_) => Kind::Service,
                _ => Kind::EndpointSlice,
            };
            store
                .objs
                .entry(kind)
                .or_default()
                .insert(key_of(o.meta()), o);
        }
        let g = build_groups("endpointslice", &store, false);
        assert_eq!(g.len(), 1);
        let g = &g[0];
        assert_eq!(g.source, "endpointslice/n/web-abc");
        assert_eq!(g.labels["__meta_kubernetes_service_label_team"], "a");
        assert_eq!(
            g.labels["__meta_kubernetes_endpointslice_address_type"],
            "IPv4"
        );
        assert_eq!(g.targets.len(), 2);
        let t = &g.targets[0];
        assert_eq!(t["__address__"], "10.1.0.5:8080");
        assert_eq!(t["__meta_kubernetes_endpointslice_port"], "8080");
        assert_eq!(
            t["__meta_kubernetes_endpointslice_port_app_protocol"],
            "http"
        );
        assert_eq!(
            t["__meta_kubernetes_endpointslice_endpoint_conditions_ready"],
            "true"
        );
        assert_eq!(
            t["__meta_kubernetes_endpointslice_endpoint_conditions_serving"],
            "false"
        );
        assert!(!t.contains_key("__meta_kubernetes_endpointslice_endpoint_conditions_terminating"));
        assert_eq!(t["__meta_kubernetes_pod_container_port_name"], "web");
        // The pod's port that no slice port covers gets its own target.
        let u = &g.targets[1];
        assert_eq!(u["__address__"], "10.1.0.5:9000");
        assert_eq!(u["__meta_kubernetes_pod_container_port_name"], "admin");
        assert_eq!(u["__meta_kubernetes_pod_name"], "p");
        assert!(!u.contains_key("__meta_kubernetes_endpointslice_port"));
    }

    #[test]
    fn tls_host_patterns_cover_one_label() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(!host_matches("*.example.com", "a.b.example.com"));
        assert!(host_matches("x.io", "x.io"));
        assert!(!host_matches("x.*.io", "x.y.io"));
    }
}
