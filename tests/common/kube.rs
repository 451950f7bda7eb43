//! A Kubernetes API server stand-in on 127.0.0.1 (plain or HTTPS) that
//! speaks the list/watch protocol: paged lists with `continue`, chunked
//! watch streams of ADDED, MODIFIED, DELETED and BOOKMARK events, a 410
//! ERROR when a resource version is too old. Objects are JSON values
//! changed by the test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};

pub type Key = (String, String, String);

/// The cluster the stand-in serves.
#[derive(Default)]
pub struct State {
    pub rv: u64,
    pub objects: BTreeMap<Key, Value>,
    /// (resource version, plural, namespace, type, object)
    pub events: Vec<(u64, String, String, &'static str, Value)>,
    /// Request heads, in order.
    pub requests: Vec<String>,
    /// Watches from before this resource version get a 410.
    pub compacted: u64,
    /// Bumped to end every open watch (the server's timeout).
    pub generation: u64,
    /// Watches are refused with a 403 (lists still answer), as RBAC
    /// without the `watch` verb does.
    pub forbid_watch: bool,
}

impl State {
    pub fn put(&mut self, plural: &str, mut obj: Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let key = (plural.to_string(), ns.clone(), name);
        let kind = if self.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.objects.insert(key, obj.clone());
        self.events
            .push((self.rv, plural.to_string(), ns, kind, obj));
    }

    pub fn delete(&mut self, plural: &str, ns: &str, name: &str) {
        self.rv += 1;
        let key = (plural.to_string(), ns.to_string(), name.to_string());
        let mut obj = self.objects.remove(&key).unwrap();
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.events
            .push((self.rv, plural.to_string(), ns.to_string(), "DELETED", obj));
    }
}

pub struct Api {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
    pub ca_pem: Option<String>,
}

/// `(plural, namespace or "")` of an API path.
fn resource(path: &str) -> (String, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = if parts.first() == Some(&"api") {
        &parts[2..]
    } else {
        &parts[3..]
    };
    match rest {
        ["namespaces", ns, plural] => (plural.to_string(), ns.to_string()),
        [plural] => (plural.to_string(), String::new()),
        _ => (String::new(), String::new()),
    }
}

fn query(target: &str) -> BTreeMap<String, String> {
    let q = target.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3D", "=").replace("%2C", ",")))
        .collect()
}

/// The stand-in understands `k=v` label selectors.
fn selected(obj: &Value, sel: Option<&String>) -> bool {
    let Some(sel) = sel.filter(|s| !s.is_empty()) else {
        return true;
    };
    sel.split(',').all(|t| {
        let (k, v) = t.split_once('=').unwrap();
        obj["metadata"]["labels"][k] == json!(v)
    })
}

async fn write_chunk(io: &mut (impl AsyncWrite + Unpin), data: &str) -> std::io::Result<()> {
    io.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await?;
    io.flush().await
}

async fn serve(
    io: impl tokio::io::AsyncRead + AsyncWrite + Unpin,
    st: Arc<Mutex<State>>,
) -> std::io::Result<()> {
    let mut r = BufReader::new(io);
    loop {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let path = target.split('?').next().unwrap_or("").to_string();
        let q = query(&target);
        let (plural, ns) = resource(&path);
        st.lock().unwrap().requests.push(head.clone());
        let io = r.get_mut();
        let forbidden = st.lock().unwrap().forbid_watch;
        if forbidden && q.get("watch").map(String::as_str) == Some("true") {
            let body =
                r#"{"kind":"Status","code":403,"message":"pods is forbidden: cannot watch"}"#;
            io.write_all(
                format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
            io.flush().await?;
            continue;
        }
        if q.get("watch").map(String::as_str) == Some("true") {
            let from: u64 = q["resourceVersion"].parse().unwrap_or(0);
            io.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            let (gen0, compacted) = {
                let s = st.lock().unwrap();
                (s.generation, s.compacted)
            };
            if from < compacted {
                let ev = json!({"type": "ERROR", "object": {"kind": "Status", "code": 410,
                    "message": "too old resource version"}});
                write_chunk(io, &format!("{ev}\n")).await?;
                write_chunk(io, "").await?;
                continue;
            }
            let mut seen = from;
            loop {
                let (out, done) = {
                    let s = st.lock().unwrap();
                    let out: Vec<String> = s
                        .events
                        .iter()
                        .filter(|e| {
                            e.0 > seen
                                && e.1 == plural
                                && (ns.is_empty() || e.2 == ns)
                                && selected(&e.4, q.get("labelSelector"))
                        })
                        .map(|e| format!("{}\n", json!({"type": e.3, "object": e.4})))
                        .collect();
                    seen = s.rv;
                    (out, s.generation != gen0)
                };
                for line in out {
                    write_chunk(io, &line).await?;
                }
                if done {
                    // A bookmark, then the end of the stream.
                    let bm = json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": seen.to_string()}}});
                    write_chunk(io, &format!("{bm}\n")).await?;
                    write_chunk(io, "").await?;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            continue;
        }
        // Lists come in pages of two, to exercise `continue`.
        let body = {
            let s = st.lock().unwrap();
            let items: Vec<&Value> = s
                .objects
                .iter()
                .filter(|(k, v)| {
                    k.0 == plural
                        && (ns.is_empty() || k.1 == ns)
                        && selected(v, q.get("labelSelector"))
                })
                .map(|(_, v)| v)
                .collect();
            let start: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
            let page: Vec<&Value> = items.iter().skip(start).take(2).copied().collect();
            let cont = if start + 2 < items.len() {
                (start + 2).to_string()
            } else {
                String::new()
            };
            json!({"kind": "List", "metadata": {"resourceVersion": s.rv.to_string(), "continue": cont},
                   "items": page})
            .to_string()
        };
        io.write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        io.flush().await?;
    }
}

impl Api {
    /// A plain-HTTP stand-in, or with `tls` an HTTPS one whose
    /// certificate is for 127.0.0.1 (its CA in `ca_pem`).
    pub fn start(tls: bool) -> Api {
        let state = Arc::new(Mutex::new(State::default()));
        let (acceptor, ca_pem) = match tls.then(|| super::tls_acceptor(&["127.0.0.1"])) {
            Some((a, c)) => (Some(a), Some(c)),
            None => (None, None),
        };
        let st = state.clone();
        let port = super::serve_connections(move |sock| {
            let (st, acc) = (st.clone(), acceptor.clone());
            async move {
                match acc {
                    Some(acc) => {
                        if let Ok(tls) = acc.accept(sock).await {
                            let _ = serve(tls, st).await;
                        }
                    }
                    None => {
                        let _ = serve(sock, st).await;
                    }
                }
            }
        });
        Api {
            port,
            state,
            ca_pem,
        }
    }

    pub fn change(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    pub fn requests(&self, part: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.contains(part))
            .cloned()
            .collect()
    }
}

/// A running pod at 127.0.0.1 with one container port, annotated for
/// scraping (or not), owned by a ReplicaSet.
pub fn pod(ns: &str, name: &str, port: u16, scrape: bool, labels: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": labels,
            "annotations": {"prometheus.io/scrape": scrape.to_string(),
                            "prometheus.io/port": port.to_string()},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5f7d", "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [
            {"name": "app", "image": "example/app:1.2",
             "ports": [{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "containerID": "containerd://abc"}]}
    })
}
