//! The scrape client against real keep-alive servers on 127.0.0.1: one
//! connection serves a target's scrapes, a scrape given up half way never
//! leaves its answer to the next, redirects are followed with the
//! credentials kept on their origin, and `insecure_skip_verify` takes any
//! certificate.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What a route answers.
struct Answer {
    status: &'static str,
    headers: String,
    body: String,
    delay: Duration,
    /// Close the connection instead of answering.
    hang_up: bool,
}

fn ok(body: String) -> Answer {
    Answer {
        status: "200 OK",
        headers: "Content-Type: text/plain; version=0.0.4\r\n".into(),
        body,
        delay: Duration::ZERO,
        hang_up: false,
    }
}

fn redirect(status: &'static str, to: &str) -> Answer {
    Answer {
        status,
        headers: format!("Location: {to}\r\n"),
        body: "moved".into(),
        delay: Duration::ZERO,
        hang_up: false,
    }
}

/// A server that keeps connections alive and answers each request by
/// `route(path, request number from 1, number on its connection from 1)`.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
}

type Route = Arc<dyn Fn(&str, usize, usize) -> Answer + Send + Sync>;

fn server(route: impl Fn(&str, usize, usize) -> Answer + Send + Sync + 'static) -> Server {
    server_on(route, None)
}

fn server_on(
    route: impl Fn(&str, usize, usize) -> Answer + Send + Sync + 'static,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Server {
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let route: Route = Arc::new(route);
    let (c, h) = (connections.clone(), heads.clone());
    let port = serve_connections(move |sock| {
        c.fetch_add(1, Ordering::SeqCst);
        let (h, route, tls) = (h.clone(), route.clone(), tls.clone());
        async move {
            match tls {
                Some(acc) => {
                    if let Ok(s) = acc.accept(sock).await {
                        answer_all(s, h, route).await;
                    }
                }
                None => answer_all(sock, h, route).await,
            }
        }
    });
    Server {
        port,
        connections,
        heads,
    }
}

async fn answer_all<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    heads: Arc<Mutex<Vec<String>>>,
    route: Route,
) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let mut on_this = 0;
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let n = {
            let mut h = heads.lock().unwrap();
            h.push(head);
            h.len()
        };
        on_this += 1;
        let a = route(&path, n, on_this);
        if a.hang_up {
            return;
        }
        tokio::time::sleep(a.delay).await;
        let resp = format!(
            "HTTP/1.1 {}\r\n{}Content-Length: {}\r\n\r\n{}",
            a.status,
            a.headers,
            a.body.len(),
            a.body
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

impl Server {
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn heads_for(&self, path: &str) -> Vec<String> {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.split(' ').nth(1) == Some(path))
            .map(|h| h.to_lowercase())
            .collect()
    }
}

fn config(jobs: &str) -> String {
    format!("global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n{jobs}")
}

#[test]
fn one_connection_serves_every_scrape_of_a_target() {
    let s = server(|_, n, _| ok(format!("served {n}\n")));
    let a = Argus::start(
        &config(&format!(
            "  - job_name: kept\n    static_configs: [{{targets: ['{}']}}]\n",
            s.addr()
        )),
        &[],
    );
    let v = a.wait_for(20, "six scrapes", || {
        a.query_value("served").filter(|v| *v >= 6.0)
    });
    assert!(s.requests() >= 6, "{v}");
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
}

/// A server that drops each kept connection when the next request comes
/// (its idle timeout passing just then): the request is sent again on a
/// new connection and no scrape fails.
#[test]
fn a_kept_connection_closed_by_the_server_costs_no_scrape() {
    let s = server(|_, n, on_this| {
        let mut a = ok(format!("served {n}\n"));
        a.hang_up = on_this == 2;
        a
    });
    let a = Argus::start(
        &config(&format!(
            "  - job_name: idle\n    static_configs: [{{targets: ['{}']}}]\n",
            s.addr()
        )),
        &[],
    );
    a.wait_for(20, "five scrapes", || {
        a.query_value("count_over_time(up{job=\"idle\"}[1m])")
            .filter(|v| *v >= 5.0)
    });
    assert_eq!(
        a.query_value("min_over_time(up{job=\"idle\"}[1m])"),
        Some(1.0),
        "a scrape failed"
    );
    assert!(s.connections.load(Ordering::SeqCst) >= 3);
}

/// The second request is answered after the scrape timeout: that scrape
/// fails, its connection is dropped with the unread answer, and the
/// next scrape, on a new connection, reads its own answer.
#[test]
fn a_scrape_given_up_half_way_never_leaves_its_answer_to_the_next() {
    let s = server(|_, n, _| {
        let mut a = ok(format!("served {n}\n"));
        if n == 2 {
            a.delay = Duration::from_millis(600);
        }
        a
    });
    let a = Argus::start(
        &config(&format!(
            "  - job_name: slow\n    static_configs: [{{targets: ['{}']}}]\n",
            s.addr()
        )),
        &[],
    );
    a.wait_for(20, "two scrapes after the timeout", || {
        a.query_value("served").filter(|v| *v >= 4.0)
    });
    // Every value stored is the answer to its own request: the late answer
    // to request 2 was never read as that of request 3.
    let r = a.api("/api/v1/query?query=served%5B1m%5D");
    let got: Vec<f64> = r["result"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(got[..3], [1.0, 3.0, 4.0], "{got:?}");
    assert!(
        got.windows(2).all(|w| w[1] == w[0] + 1.0 || w[0] == 1.0),
        "{got:?}"
    );
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
}

#[test]
fn redirects_are_followed_with_credentials_kept_on_their_origin_unless_switched_off() {
    let other = server(|_, n, _| ok(format!("moved_metric {n}\n")));
    let to = format!("http://{}/final", other.addr());
    let first = server(move |path, _, _| match path {
        "/metrics" => redirect("302 Found", "/next?step=2"),
        "/next?step=2" => redirect("301 Moved Permanently", &to),
        _ => ok("unexpected 1\n".into()),
    });
    let looping = server(|_, _, _| redirect("307 Temporary Redirect", "/metrics"));
    let a = Argus::start(
        &config(&format!(
            "  - job_name: moved\n    basic_auth: {{username: alice, password: s3cret}}\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: looping\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: unfollowed\n    follow_redirects: false\n    enable_http2: false\n    static_configs: [{{targets: ['{}']}}]\n",
            first.addr(),
            looping.addr(),
            first.addr()
        )),
        &[],
    );
    a.wait_for(20, "the redirected scrape", || {
        a.query_value("moved_metric").filter(|v| *v >= 1.0)
    });
    let auth = "authorization: basic ywxpy2u6cznjcmv0";
    let step = first.heads_for("/next?step=2");
    assert!(step[0].contains(auth), "{step:?}");
    let fin = other.heads_for("/final");
    assert!(!fin[0].contains("authorization"), "{fin:?}");
    let t = a.wait_for(20, "the looping target down", || {
        let t = a.target(&looping.addr())?;
        (t["health"] == "down").then_some(t)
    });
    let err = t["lastError"].as_str().unwrap();
    assert!(err.contains("stopped after 10 redirects"), "{err}");
    // `follow_redirects: false`: the redirect is the answer, a failed scrape.
    let t = a.wait_for(20, "the unfollowed target down", || {
        let t = a.api("/api/v1/targets?scrapePool=unfollowed");
        let t = t["activeTargets"][0].clone();
        (t["health"] == "down").then_some(t)
    });
    assert_eq!(t["lastError"], "server returned HTTP status 302 Found");
    assert!(a.query("unexpected").is_empty());
}

#[test]
fn insecure_skip_verify_takes_any_certificate() {
    let (acceptor, _ca) = tls_acceptor(&["metrics.argus.test"]);
    let s = server_on(|_, n, _| ok(format!("tls_served {n}\n")), Some(acceptor));
    let job = |name: &str, tls: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {{{tls}}}\n    static_configs: [{{targets: ['{}']}}]\n",
            s.addr()
        )
    };
    let a = Argus::start(
        &config(
            &(job("skip", "insecure_skip_verify: true")
                + &job("verify", "server_name: metrics.argus.test")),
        ),
        &[],
    );
    a.wait_for(20, "the unverified scrape", || {
        a.query_value("tls_served{job=\"skip\"}")
            .filter(|v| *v >= 1.0)
    });
    let t = a.wait_for(20, "the verifying job down", || {
        let t = a.api("/api/v1/targets?scrapePool=verify");
        let t = t["activeTargets"][0].clone();
        (t["health"] == "down").then_some(t)
    });
    let err = t["lastError"].as_str().unwrap().to_lowercase();
    assert!(err.contains("certificate"), "{err}");
}

/// An error answer's body is not the scrape's: one longer than the job's
/// `body_size_limit` still fails the scrape with its status; one up to
/// 64 KiB keeps its connection, a longer one costs it.
#[test]
fn an_error_answer_fails_with_its_status_whatever_its_body() {
    let failing = |len: usize| {
        server(move |_, _, _| Answer {
            status: "500 Internal Server Error",
            headers: String::new(),
            body: "e".repeat(len),
            delay: Duration::ZERO,
            hang_up: false,
        })
    };
    let (short, long) = (failing(2_000), failing(100_000));
    let a = Argus::start(
        &config(&format!(
            "  - job_name: short\n    body_size_limit: 1KB\n    static_configs: [{{targets: ['{}']}}]\n  - job_name: long\n    body_size_limit: 1KB\n    static_configs: [{{targets: ['{}']}}]\n",
            short.addr(),
            long.addr()
        )),
        &[],
    );
    for (job, s) in [("short", &short), ("long", &long)] {
        let t = a.wait_for(20, &format!("{job}: three failed scrapes"), || {
            let t = a.api(&format!("/api/v1/targets?scrapePool={job}"));
            let t = t["activeTargets"][0].clone();
            (t["health"] == "down" && s.requests() >= 3).then_some(t)
        });
        assert_eq!(
            t["lastError"], "server returned HTTP status 500 Internal Server Error",
            "{job}"
        );
    }
    assert_eq!(short.connections.load(Ordering::SeqCst), 1);
    let (n, c) = (long.requests(), long.connections.load(Ordering::SeqCst));
    assert!(c + 1 >= n && c >= 3, "{c} connections for {n} requests");
}
