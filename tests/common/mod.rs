//! Helpers for integration tests: real argus processes, real HTTP targets
//! and hostile TCP servers, all on 127.0.0.1.
#![allow(dead_code)]

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod kube;
pub mod notifier;
pub mod om_data;
pub mod smtp;

use serde_json::Value;

/// A TLS acceptor whose certificate, for `names` (DNS names, or IP
/// addresses as text), is signed by a fresh CA; and that CA's PEM, for
/// clients' `ca_file`.
pub fn tls_acceptor(names: &[&str]) -> (tokio_rustls::TlsAcceptor, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (tokio_rustls::TlsAcceptor::from(Arc::new(cfg)), ca.pem())
}

/// Accepts connections on a free port of 127.0.0.1, each handled by
/// `handle` on a runtime of its own thread; returns the port.
pub fn serve_connections<F, Fut>(handle: F) -> u16
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let std_l = StdListener::bind("127.0.0.1:0").unwrap();
    let port = std_l.local_addr().unwrap().port();
    std_l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(std_l).unwrap();
            loop {
                let Ok((sock, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(handle(sock));
            }
        });
    });
    port
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of the argus binary built for these tests.
pub fn argus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_argus")
}

/// Runs an argus subcommand to its end: (exit code, stdout then stderr).
pub fn argus_cli<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> (Option<i32>, String) {
    let out = Command::new(argus_bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The prefix argus serves under with these flags: `--web.route-prefix`,
/// else the path of `--web.external-url` (without a trailing slash).
fn route_prefix(extra: &[&str]) -> String {
    let flag = |name: &str| {
        extra
            .iter()
            .position(|a| *a == name)
            .and_then(|i| extra.get(i + 1))
            .copied()
    };
    let p = match (flag("--web.route-prefix"), flag("--web.external-url")) {
        (Some(p), _) => p.to_string(),
        (None, Some(u)) => u
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_default(),
        (None, None) => String::new(),
    };
    p.trim_end_matches('/').to_string()
}

/// A running argus process.
pub struct Argus {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// `--web.route-prefix` when one was given: part of [`Argus::url`].
    pub prefix: String,
    _tmp: Option<tempfile::TempDir>,
}

impl Argus {
    /// Starts argus with `config` in a fresh directory and waits until ready.
    pub fn start(config: &str, extra: &[&str]) -> Argus {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut a = Argus::start_in(&dir, config, extra);
        a._tmp = Some(tmp);
        a
    }

    /// Starts argus with `config` in a fresh directory with its address
    /// space limited to `bytes` (as `prlimit --as` does), so an allocation
    /// that input could make unbounded aborts the test's process instead of
    /// passing on a large machine.
    pub fn start_limited(config: &str, extra: &[&str], bytes: u64) -> Argus {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut a = Argus::start_in_with(&dir, config, extra, Some(format!("-v {}", bytes / 1024)));
        a._tmp = Some(tmp);
        a
    }

    /// Starts argus in `dir` (reused across restarts).
    pub fn start_in(dir: &Path, config: &str, extra: &[&str]) -> Argus {
        Argus::start_in_with(dir, config, extra, None)
    }

    /// Starts argus in `dir` with its files limited to `bytes` each (the
    /// soft RLIMIT_FSIZE, which [`Argus::lift_file_size_limit`] raises): a
    /// write past it fails as on a full disk.
    pub fn start_with_file_size_limit(
        dir: &Path,
        config: &str,
        extra: &[&str],
        bytes: u64,
    ) -> Argus {
        // POSIX sh counts ulimit -f in 512-byte blocks.
        Argus::start_in_with(dir, config, extra, Some(format!("-S -f {}", bytes / 512)))
    }

    /// Raises the file size limit set by [`Argus::start_with_file_size_limit`].
    pub fn lift_file_size_limit(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let st = Command::new("prlimit")
            .arg(format!("--pid={pid}"))
            .arg("--fsize=unlimited:")
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn start_in_with(dir: &Path, config: &str, extra: &[&str], ulimit: Option<String>) -> Argus {
        let cfg = dir.join("argus.yml");
        std::fs::write(&cfg, config).unwrap();
        let mut tries = 0;
        loop {
            match Argus::try_spawn_with(dir, &cfg, free_port(), extra, ulimit.as_deref(), &[]) {
                Ok(a) => return a,
                // Another process took the free port first: take another.
                Err(log) if tries < 3 && log.contains("cannot listen") => tries += 1,
                Err(log) => panic!("argus did not start; log:\n{log}"),
            }
        }
    }

    /// Spawns argus on an existing config file.
    pub fn spawn(dir: &Path, cfg: &Path, port: u16, extra: &[&str]) -> Argus {
        Argus::try_spawn(dir, cfg, port, extra)
            .unwrap_or_else(|log| panic!("argus did not start; log:\n{log}"))
    }

    /// Spawns argus and waits until it is ready; its log if it exits or
    /// does not become ready within 20 s.
    pub fn try_spawn(dir: &Path, cfg: &Path, port: u16, extra: &[&str]) -> Result<Argus, String> {
        Argus::try_spawn_with(dir, cfg, port, extra, None, &[])
    }

    /// Spawns argus with variables added to its environment.
    pub fn spawn_env(
        dir: &Path,
        cfg: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Argus {
        Argus::try_spawn_with(dir, cfg, port, extra, None, env)
            .unwrap_or_else(|log| panic!("argus did not start; log:\n{log}"))
    }

    fn try_spawn_with(
        dir: &Path,
        cfg: &Path,
        port: u16,
        extra: &[&str],
        ulimit: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Argus, String> {
        // Appended to, so a restarted process's log follows the first's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("argus-{port}.log")))
            .unwrap();
        // The shell sets the limit and execs argus, so the child's pid is
        // argus's own (signals and kill -9 reach it).
        let mut cmd = match ulimit {
            None => Command::new(argus_bin()),
            Some(args) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit {args} && exec \"$0\" \"$@\""))
                    .arg(argus_bin());
                c
            }
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(cfg)
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--storage.path")
            .arg(dir.join("data"))
            .arg("--log.level")
            .arg("debug")
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut a = Argus {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            config: cfg.to_path_buf(),
            prefix: route_prefix(extra),
            _tmp: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(&format!("{}/-/ready", a.url())) {
                return Ok(a);
            }
            if let Some(Ok(Some(_))) = a.child.as_mut().map(|c| c.try_wait()) {
                a.child = None;
                return Err(format!("(exited)\n{}", a.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("(not ready after 20 s)\n{}", a.log()))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.port, self.prefix)
    }

    /// A kB figure of the process's `/proc/PID/status` (`VmRSS`, `VmHWM`).
    pub fn status_kb(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {status}"))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("argus-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// GET a JSON API path and return `data`.
    pub fn api(&self, path: &str) -> Value {
        let (code, body) = http_get(&format!("{}{}", self.url(), path)).unwrap();
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert_eq!(code, 200, "{path}: {body}");
        v["data"].clone()
    }

    /// [`wait_for`], with this process's log in the failure message.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {secs}s waiting for {what}; argus log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instant vector of a PromQL expression now (empty on no result).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", urlencode(expr)))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The value of the first sample of [`query`](Self::query), if any.
    pub fn query_value(&self, expr: &str) -> Option<f64> {
        self.query(expr)
            .first()?
            .get("value")?
            .get(1)?
            .as_str()?
            .parse()
            .ok()
    }

    /// GET a JSON path (the Alertmanager API has no `data` envelope).
    pub fn get_json(&self, path: &str) -> Value {
        let (code, body) = http_get(&format!("{}{}", self.url(), path)).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Active targets by scrape URL.
    pub fn target(&self, url_part: &str) -> Option<Value> {
        let t = self.api("/api/v1/targets?state=active");
        t["activeTargets"]
            .as_array()?
            .iter()
            .find(|x| x["scrapeUrl"].as_str().unwrap_or("").contains(url_part))
            .cloned()
    }

    /// Latest values of series matching `selector` via /federate.
    pub fn federate(&self, selector: &str) -> Vec<(String, f64)> {
        let url = format!("{}/federate?match[]={}", self.url(), urlencode(selector));
        let (code, body) = http_get(&url).unwrap();
        assert_eq!(code, 200, "{body}");
        parse_federate(&body)
    }

    /// Sends a signal by name (TERM, HUP, KILL).
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// SIGTERM and wait; returns the exit code and how long it took.
    pub fn stop(&mut self) -> (Option<i32>, Duration) {
        let t = Instant::now();
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st.code(), t.elapsed());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("argus did not stop within 15s; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Argus {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Parses `/federate` text into (series, value).
pub fn parse_federate(body: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        // name{labels} value timestamp
        let mut parts = line.rsplitn(3, ' ');
        let _ts = parts.next();
        let v = parts.next().unwrap();
        let s = parts.next().unwrap();
        let v = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            x => x.parse().unwrap(),
        };
        out.push((s.to_string(), v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Minimal blocking HTTP/1.1 GET over std, so tests need no async runtime.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    http_request("GET", url, None)
}

/// Minimal blocking HTTP/1.1 request.
pub fn http_request(method: &str, url: &str, body: Option<&str>) -> std::io::Result<(u16, String)> {
    http_request_with(method, url, body, &[])
}

/// An HTTP request with extra headers.
pub fn http_request_with(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// Polls `f` until it returns Some or `secs` pass.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a [`Target`] answers with.
#[derive(Clone)]
pub enum Reply {
    /// A normal response.
    Body { content_type: String, body: Vec<u8> },
    /// Close the connection after sending headers and `prefix` of a longer body.
    CloseMidBody { prefix: Vec<u8> },
    /// Send headers, then one byte per second forever.
    Trickle,
    /// Send `total` bytes of a valid exposition, streamed.
    Huge { total: usize },
    /// A gzip-compressed text body.
    Gzip { body: Vec<u8> },
    /// A text body, after a delay.
    Slow { delay: Duration, body: Vec<u8> },
    /// A chunked body of valid lines that never ends.
    Endless,
    /// A gzip stream of valid lines that never ends: a few kilobytes on
    /// the wire for each hundred megabytes unpacked.
    GzipBomb,
    /// `name N` where N is this request's number (1 for the first), and
    /// `extra` more series `name_load{i="k"} N`: what was served when can
    /// be checked against what was stored.
    Sequence { name: String, extra: usize },
}

/// A scrape target served by a thread on 127.0.0.1 with a swappable reply.
pub struct Target {
    pub port: u16,
    pub reply: Arc<Mutex<Reply>>,
    pub hits: Arc<Mutex<Vec<Instant>>>,
    /// Request heads received (request line and headers).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Target {
    pub fn text(body: &str) -> Target {
        Target::start(Reply::Body {
            content_type: "text/plain; version=0.0.4".into(),
            body: body.as_bytes().to_vec(),
        })
    }

    pub fn openmetrics(body: &str) -> Target {
        Target::start(Reply::Body {
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
        })
    }

    pub fn start(reply: Reply) -> Target {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let reply = Arc::new(Mutex::new(reply));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r2, h2, q2) = (reply.clone(), hits.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let r = r2.lock().unwrap().clone();
                let n = {
                    let mut h = h2.lock().unwrap();
                    h.push(Instant::now());
                    h.len()
                };
                let r = match r {
                    Reply::Sequence { name, extra } => {
                        let mut body = format!("{name} {n}\n");
                        for k in 0..extra {
                            body.push_str(&format!("{name}_load{{i=\"{k}\"}} {n}\n"));
                        }
                        Reply::Body {
                            content_type: "text/plain; version=0.0.4".into(),
                            body: body.into_bytes(),
                        }
                    }
                    r => r,
                };
                let q = q2.clone();
                std::thread::spawn(move || serve(conn, r, q));
            }
        });
        Target {
            port,
            reply,
            hits,
            requests,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Another handle on the same server (to change its reply from a
    /// thread).
    pub fn clone_handle(&self) -> Target {
        Target {
            port: self.port,
            reply: self.reply.clone(),
            hits: self.hits.clone(),
            requests: self.requests.clone(),
        }
    }

    pub fn set_text(&self, body: &str) {
        *self.reply.lock().unwrap() = Reply::Body {
            content_type: "text/plain; version=0.0.4".into(),
            body: body.as_bytes().to_vec(),
        };
    }

    pub fn set(&self, r: Reply) {
        *self.reply.lock().unwrap() = r;
    }

    pub fn hit_count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

fn serve(mut conn: std::net::TcpStream, reply: Reply, requests: Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    requests.lock().unwrap().push(head);
    let _ = match reply {
        Reply::Body { content_type, body } => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .and_then(|_| conn.write_all(&body)),
        Reply::CloseMidBody { prefix } => write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            prefix.len() * 10
        )
        .and_then(|_| conn.write_all(&prefix)),
        Reply::Gzip { body } => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body).unwrap();
            let z = enc.finish().unwrap();
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                z.len()
            )
            .and_then(|_| conn.write_all(&z))
        }
        Reply::Slow { delay, body } => {
            std::thread::sleep(delay);
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .and_then(|_| conn.write_all(&body))
        }
        Reply::Trickle => {
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
            for _ in 0..120 {
                if conn.write_all(b"a").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        }
        Reply::Endless => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            let chunk = endless_lines();
            loop {
                if write!(conn, "{:x}\r\n", chunk.len())
                    .and_then(|_| conn.write_all(&chunk))
                    .and_then(|_| conn.write_all(b"\r\n"))
                    .is_err()
                {
                    return;
                }
            }
        }
        Reply::GzipBomb => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\n"
            );
            // Repeated lines compress to a few hundred bytes per 64 KiB:
            // the target sends little while argus unpacks much.
            let mut enc = flate2::write::GzEncoder::new(conn, flate2::Compression::fast());
            let chunk = endless_lines();
            loop {
                if enc.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        // Turned into a body when the connection is accepted.
        Reply::Sequence { .. } => Ok(()),
        Reply::Huge { total } => {
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            );
            let line = b"huge_metric_with_a_long_name{label=\"value\"} 1\n";
            let mut sent = 0;
            let mut chunk = Vec::with_capacity(1 << 16);
            while chunk.len() + line.len() <= 1 << 16 {
                chunk.extend_from_slice(line);
            }
            while sent < total {
                let n = chunk.len().min(total - sent);
                if conn.write_all(&chunk[..n]).is_err() {
                    return;
                }
                sent += n;
            }
            Ok(())
        }
    };
}

/// 64 KiB of valid exposition lines.
fn endless_lines() -> Vec<u8> {
    let line = b"endless_metric{label=\"value\"} 1\n";
    let mut chunk = Vec::with_capacity(1 << 16);
    while chunk.len() + line.len() <= 1 << 16 {
        chunk.extend_from_slice(line);
    }
    chunk
}

/// Recorded requests: (request line and headers, body).
pub type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An HTTP server on 127.0.0.1 that records every request (head and
/// body) and answers with a settable status: stands in for a webhook or
/// an Alertmanager's API when the real one is not what is under test.
pub struct Recorder {
    pub port: u16,
    pub status: Arc<Mutex<u16>>,
    /// Content type, body and extra headers of the answer
    /// (`application/json`, `{}` by default).
    pub reply: ReplySpec,
    /// (request line and headers, body) of each request, in arrival order.
    pub requests: Requests,
}

impl Recorder {
    pub fn start() -> Recorder {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let status = Arc::new(Mutex::new(200u16));
        let reply: ReplySpec = Arc::new(Mutex::new((
            "application/json".to_string(),
            "{}".to_string(),
            Vec::new(),
        )));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s2, p2, r2) = (status.clone(), reply.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, p, r) = (s2.clone(), p2.clone(), r2.clone());
                std::thread::spawn(move || record(conn, s, p, r));
            }
        });
        Recorder {
            port,
            status,
            reply,
            requests,
        }
    }

    /// Sets the answer: status, content type, body and extra headers.
    pub fn respond(&self, status: u16, content_type: &str, body: &str, headers: &[(&str, &str)]) {
        *self.status.lock().unwrap() = status;
        *self.reply.lock().unwrap() = (
            content_type.to_string(),
            body.to_string(),
            headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
    }

    /// Requests received so far (head, body).
    pub fn taken(&self) -> Vec<(String, Vec<u8>)> {
        self.requests.lock().unwrap().clone()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bodies received so far, parsed as JSON.
    pub fn json_bodies(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, b)| serde_json::from_slice(b).ok())
            .collect()
    }
}

type ReplySpec = Arc<Mutex<(String, String, Vec<(String, String)>)>>;

fn record(
    mut conn: std::net::TcpStream,
    status: Arc<Mutex<u16>>,
    reply: ReplySpec,
    requests: Requests,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line
                .to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_string())
            {
                len = v.parse().unwrap_or(0);
            }
            head.push_str(&line);
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        requests.lock().unwrap().push((head, body));
        let code = *status.lock().unwrap();
        let (ct, text, extra) = reply.lock().unwrap().clone();
        let mut out = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n",
            text.len()
        );
        for (k, v) in extra {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&text);
        if conn.write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// A TCP server that accepts connections and never answers: a hung peer.
pub fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let l = StdListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    (port, h)
}

/// A protobuf writer for exposition bodies (`MetricFamily` messages), to
/// serve what argus's protobuf decoder reads from real targets.
#[derive(Default)]
pub struct Pb(pub Vec<u8>);

impl Pb {
    pub fn varint(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    pub fn uint(&mut self, field: u64, v: u64) -> &mut Self {
        self.varint(field << 3).varint(v)
    }
    pub fn sint(&mut self, field: u64, v: i64) -> &mut Self {
        self.uint(field, ((v << 1) ^ (v >> 63)) as u64)
    }
    pub fn double(&mut self, field: u64, v: f64) -> &mut Self {
        self.varint(field << 3 | 1);
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        self
    }
    pub fn bytes(&mut self, field: u64, b: &[u8]) -> &mut Self {
        self.varint(field << 3 | 2).varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn msg(&mut self, field: u64, f: impl FnOnce(&mut Pb)) -> &mut Self {
        let mut w = Pb::default();
        f(&mut w);
        self.bytes(field, &w.0)
    }
    /// Appends one length-delimited message.
    pub fn delimited(&mut self, f: impl FnOnce(&mut Pb)) -> &mut Self {
        let mut w = Pb::default();
        f(&mut w);
        self.varint(w.0.len() as u64);
        self.0.extend_from_slice(&w.0);
        self
    }
}

/// The protobuf exposition's content type.
pub const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// Two directories holding `tests/data/sloth-getting-started.test.yml`
/// with Sloth's committed rules for its getting-started example, and
/// with what `argus slo generate` makes of the same spec, each as
/// `rules.yml`: the unit tests must pass on both.
pub fn sloth_getting_started_dirs() -> Vec<(&'static str, tempfile::TempDir)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = root.join("../shared/conformance/sloth/examples");
    let ours = std::process::Command::new(argus_bin())
        .args(["slo", "generate", "--label", "cmd=examplesgen.sh"])
        .arg(examples.join("getting-started.yml"))
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let sloths = std::fs::read(examples.join("_gen/getting-started.yml")).unwrap();
    [("sloth", sloths), ("argus", ours.stdout)]
        .into_iter()
        .map(|(name, rules)| {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("rules.yml"), rules).unwrap();
            std::fs::copy(
                root.join("tests/data/sloth-getting-started.test.yml"),
                d.path().join("test.yml"),
            )
            .unwrap();
            (name, d)
        })
        .collect()
}

/// A TCP proxy on 127.0.0.1 to `upstream`, which a test can cut (new
/// connections are closed at once and open ones dropped) and heal: a
/// network partition between processes.
pub struct Proxy {
    pub port: u16,
    pub cut: Arc<std::sync::atomic::AtomicBool>,
    /// Bytes passed, both directions.
    pub bytes: Arc<std::sync::atomic::AtomicU64>,
    /// The port it forwards to (changeable, for a restart elsewhere).
    pub upstream: Arc<std::sync::atomic::AtomicU16>,
    /// Bumped on every cut, so connections opened before it end.
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let upstream = Arc::new(std::sync::atomic::AtomicU16::new(upstream));
        let (c2, e2, b2, u2) = (cut.clone(), epoch.clone(), bytes.clone(), upstream.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(down) = conn else { continue };
                if c2.load(Ordering::SeqCst) {
                    drop(down);
                    continue;
                }
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", u2.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                let born = e2.load(Ordering::SeqCst);
                let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
                    continue;
                };
                for (mut from, mut to) in [(down2, up2), (up, down)] {
                    let (e3, b3) = (e2.clone(), b2.clone());
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
                        let mut buf = [0u8; 16384];
                        loop {
                            if e3.load(Ordering::SeqCst) != born {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    b3.fetch_add(n as u64, Ordering::Relaxed);
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            port,
            cut,
            bytes,
            upstream,
            epoch,
        }
    }

    pub fn set_cut(&self, cut: bool) {
        use std::sync::atomic::Ordering;
        self.cut.store(cut, Ordering::SeqCst);
        if cut {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The shared secret of [`Pair`] peers.
pub const PEER_SECRET: &str = "s3cret-peer-key-for-tests";

/// Two peers, each behind a proxy its partner sends heartbeats through,
/// scraping one target whose `signal{n}` series make alerts fire, both
/// routing to one webhook.
pub struct Pair {
    pub dirs: Vec<tempfile::TempDir>,
    pub ports: Vec<u16>,
    pub proxies: Vec<Proxy>,
    pub peers: Vec<Option<Argus>>,
    pub hook: Recorder,
    pub target: Target,
}

/// Heartbeat interval and peer timeout of a [`Pair`].
#[derive(Clone, Copy)]
pub struct PairTiming {
    pub heartbeat: &'static str,
    pub timeout: &'static str,
}

impl PairTiming {
    /// For tests: detection within about 2.5 s.
    pub const FAST: PairTiming = PairTiming {
        heartbeat: "500ms",
        timeout: "2s",
    };
    /// argus's defaults.
    pub const DEFAULT: PairTiming = PairTiming {
        heartbeat: "5s",
        timeout: "15s",
    };
}

/// The ids of a [`Pair`]'s peers, in delivery order.
pub const PEER_IDS: [&str; 3] = ["argus-a", "argus-b", "argus-c"];

impl Pair {
    /// Two peers.
    pub fn start(timing: PairTiming) -> Pair {
        Pair::start_n(timing, 2)
    }

    /// `n` peers (up to 3).
    pub fn start_n(timing: PairTiming, n: usize) -> Pair {
        let hook = Recorder::start();
        let target = Target::text("signal{n=\"1\"} 1\n");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let proxies: Vec<Proxy> = ports.iter().map(|p| Proxy::start(*p)).collect();
        let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
        let members: String = proxies
            .iter()
            .zip(PEER_IDS)
            .map(|(x, id)| format!("    - {{id: {id}, url: 'http://127.0.0.1:{}'}}\n", x.port))
            .collect();
        // The same config for both; each is told its id on the command
        // line (`--peers.self`), as a StatefulSet does with pod names.
        for d in &dirs {
            std::fs::write(d.path().join("secret"), format!("{PEER_SECRET}\n")).unwrap();
            std::fs::write(
                d.path().join("rules.yml"),
                "groups:\n  - name: g\n    rules:\n      - alert: Signal\n        expr: signal > 0\n        labels: {severity: page}\n",
            )
            .unwrap();
            std::fs::write(
                d.path().join("alertmanager.yml"),
                format!(
                    "route:\n  receiver: hook\n  group_by: [alertname, n, peer]\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{}/hook\n        send_resolved: true\n",
                    hook.addr()
                ),
            )
            .unwrap();
            std::fs::write(
                d.path().join("argus.yml"),
                format!(
                    "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  routing_file: alertmanager.yml\nscrape_configs:\n  - job_name: sig\n    static_configs: [{{targets: ['{}']}}]\npeers:\n  self: argus-a\n  members:\n{members}  heartbeat_interval: {}\n  timeout: {}\n  secret_file: secret\n",
                    target.addr(),
                    timing.heartbeat,
                    timing.timeout
                ),
            )
            .unwrap();
        }
        let mut pair = Pair {
            dirs,
            ports,
            proxies,
            peers: (0..n).map(|_| None).collect(),
            hook,
            target,
        };
        for i in 0..n {
            pair.spawn(i);
        }
        pair
    }

    /// Starts peer `i`; if another process took its port meanwhile, on
    /// another port (its proxy, which its partners use, follows).
    pub fn spawn(&mut self, i: usize) {
        let d = self.dirs[i].path();
        let args = [
            "--rules.alert.resend-delay",
            "1s",
            "--peers.self",
            PEER_IDS[i],
        ];
        for _ in 0..3 {
            match Argus::try_spawn(d, &d.join("argus.yml"), self.ports[i], &args) {
                Ok(a) => {
                    self.peers[i] = Some(a);
                    return;
                }
                Err(log) if log.contains("cannot listen") => {
                    self.ports[i] = free_port();
                    self.proxies[i]
                        .upstream
                        .store(self.ports[i], std::sync::atomic::Ordering::SeqCst);
                }
                Err(log) => panic!("peer {i} did not start; log:\n{log}"),
            }
        }
        panic!("peer {i} found no free port");
    }

    pub fn peer(&self, i: usize) -> &Argus {
        self.peers[i].as_ref().unwrap()
    }

    pub fn logs(&self) -> String {
        self.peers
            .iter()
            .flatten()
            .map(|a| a.log())
            .collect::<Vec<_>>()
            .join("\n----\n")
    }

    /// Which peer sent a webhook body (by the port in its generator URL).
    pub fn sender(&self, body: &Value) -> Option<usize> {
        let url = body["alerts"][0]["generatorURL"].as_str()?;
        self.ports
            .iter()
            .position(|p| url.starts_with(&format!("http://127.0.0.1:{p}/")))
    }

    /// Firing notifications for the `Signal` alert of series `n`.
    pub fn firing(&self, n: &str) -> Vec<Value> {
        self.hook
            .json_bodies()
            .into_iter()
            .filter(|b| b["groupLabels"]["n"] == n && b["status"] == "firing")
            .collect()
    }

    pub fn signals(&self, ns: &[u32]) {
        let text: String = ns
            .iter()
            .map(|n| format!("signal{{n=\"{n}\"}} 1\n"))
            .collect();
        self.target.set_text(&text);
    }

    pub fn wait<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what}; webhook got {:#?}\nlogs:\n{}",
                self.hook.json_bodies(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The sum of the samples of `name` whose line contains `labels` on
/// `a`'s /metrics.
pub fn metric(a: &Argus, name: &str, labels: &str) -> f64 {
    let (_, body) = http_get(&format!("{}/metrics", a.url())).unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Runs `program test rules test.yml` (argus or promtool) in each of
/// [`sloth_getting_started_dirs`]; every run must pass.
pub fn sloth_unit_tests_pass_under(program: &str) {
    for (name, dir) in sloth_getting_started_dirs() {
        let out = Command::new(program)
            .args(["test", "rules", "test.yml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Every value of `wal_seq` stored, from the range query API.
pub fn stored_wal_seq(a: &Argus) -> Vec<u64> {
    let r = a.api("/api/v1/query?query=wal_seq%5B1h%5D");
    let mut out: Vec<u64> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().clone())
        .map(|p| p[1].as_str().unwrap().parse::<f64>().unwrap() as u64)
        .collect();
    out.sort_unstable();
    out
}

/// The values of `expected` that `got` (sorted) lacks.
pub fn missing_from<'a>(expected: impl IntoIterator<Item = &'a u64>, got: &[u64]) -> Vec<u64> {
    expected
        .into_iter()
        .filter(|v| got.binary_search(v).is_err())
        .copied()
        .collect()
}

/// A disk that fills and frees again: `start` runs argus in `dir` on the
/// config it is given, on storage that is (or soon becomes) full; `free`
/// makes room. Scraping and evaluation go on in memory, the failure is
/// logged once and counted, ArgusStorageWriteFailing fires; once there is
/// room, writes resume, a checkpoint writes what the log missed, and after
/// a kill -9 nothing is missing and nothing is damaged.
pub fn disk_full_scenario(
    dir: &Path,
    start: impl FnOnce(&Path, &str) -> Argus,
    free: impl FnOnce(&Argus),
) {
    let t = Target::start(Reply::Sequence {
        name: "wal_seq".into(),
        extra: 2000,
    });
    let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/argus.yml");
    let port_placeholder = "SELF";
    let cfg = |self_addr: &str| {
        format!(
            "global:\n  scrape_interval: 100ms\n  scrape_timeout: 100ms\n  evaluation_interval: 200ms\nrule_files: ['{}']\nscrape_configs:\n  - job_name: seq\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: argus\n    static_configs: [{{targets: ['{self_addr}']}}]\n",
            rules.display(),
            t.addr()
        )
    };
    let mut a = start(dir, &cfg(port_placeholder));
    // Point the self-scrape at the port it got, and reload.
    std::fs::write(&a.config, cfg(&format!("127.0.0.1:{}", a.port))).unwrap();
    a.signal("HUP");
    a.wait_for(60, "log writes failing", || {
        (metric(&a, "argus_wal_write_failures_total", "") >= 3.0).then_some(())
    });
    // Scraping goes on in memory.
    let before = stored_wal_seq(&a).len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_wal_seq(&a).len() <= before + 10 {
        // On failure, say what the scrapes and the store were doing.
        assert!(
            Instant::now() < deadline,
            "scrapes not stored while failing: {} samples before, {} now; targets: {}; argus log:\n{}",
            before,
            stored_wal_seq(&a).len(),
            a.api("/api/v1/targets")["activeTargets"],
            a.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let alerts = a.wait_for(60, "ArgusStorageWriteFailing firing", || {
        let r = a.api("/api/v1/alerts");
        let firing = r["alerts"].as_array().unwrap().iter().any(|x| {
            x["labels"]["alertname"] == "ArgusStorageWriteFailing" && x["state"] == "firing"
        });
        firing.then_some(r)
    });
    assert!(alerts.to_string().contains("cannot write"), "{alerts}");
    let log = a.log();
    let failed_lines = log
        .lines()
        .filter(|l| l.contains("write-ahead log write failed"))
        .count();
    assert_eq!(failed_lines, 1, "logged once per cause:\n{log}");

    free(&a);
    let failures = metric(&a, "argus_wal_write_failures_total", "");
    a.wait_for(20, "writes resumed and a checkpoint taken", || {
        let log = a.log();
        (log.contains("write-ahead log writes succeed again") && log.contains("checkpoint written"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        metric(&a, "argus_wal_write_failures_total", ""),
        failures,
        "no failures after the limit was lifted"
    );
    let seen = stored_wal_seq(&a);
    std::thread::sleep(Duration::from_millis(1200));
    a.kill9();
    drop(t);
    let b = Argus::start_in(dir, "scrape_configs: []\n", &[]);
    let log = b.log();
    assert!(!log.contains("damaged"), "no file left damaged:\n{log}");
    let got = stored_wal_seq(&b);
    let missing = missing_from(&seen, &got);
    assert!(
        missing.is_empty(),
        "{} of {} lost, first {:?}",
        missing.len(),
        seen.len(),
        &missing[..missing.len().min(10)]
    );
}
