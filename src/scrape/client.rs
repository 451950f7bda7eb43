//! The scrape client: one kept-alive HTTP/1.1 connection per target,
//! plain or TLS (a job's `tls_config`, with `server_name`), redirects
//! followed as Prometheus follows them, gzip bodies decoded, and every
//! body read within its byte budget.
//!
//! Scraping is the one hot path of argus's outbound HTTP (a hundred
//! thousand samples a second arrive through it), so it does not go
//! through the general client in [`crate::net`]: a target's connection is
//! owned by its loop (no pool to check out of, nothing shared between
//! targets), and hyper reads it through a buffer of fixed size. reqwest's
//! buffer grows to 256 KiB and is reallocated whenever a body chunk is
//! still held, which left glibc's heap fragmented at one such block a
//! scrape (docs/benchmarks.md).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use reqwest::Url;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::config::ScrapeConfig;
use crate::net::{
    Budget, REPLY_BUDGET, TlsMaterial, error_chain, gunzip_within, rustls_client_config,
};

/// How much one read of a connection asks of the socket: a scrape body of
/// 100 KB takes two reads, and the buffer never grows past it.
const READ_BUF: usize = 64 << 10;

/// Redirects followed before a scrape fails, as Prometheus's (Go's) client.
const MAX_REDIRECTS: usize = 10;

/// How a job's targets are reached: its TLS settings, read and checked once
/// per config load.
pub struct ScrapeClient {
    tls: tokio_rustls::TlsConnector,
    /// `tls_config.server_name`: the name the certificate is checked
    /// against (and sent in SNI), whatever the target's address.
    server_name: Option<ServerName<'static>>,
    /// `follow_redirects`.
    follow_redirects: bool,
}

impl ScrapeClient {
    /// The client of a job; `Err` names the CA, certificate or key file
    /// that cannot be used.
    pub fn new(sc: &ScrapeConfig) -> Result<ScrapeClient, String> {
        let tls = sc.tls_config.as_ref();
        let cfg = rustls_client_config(&TlsMaterial::from_config(tls)?)?;
        let server_name = match tls.and_then(|t| t.server_name.as_deref()) {
            Some(n) => Some(
                ServerName::try_from(n.to_string())
                    .map_err(|e| format!("invalid server_name {n:?}: {e}"))?,
            ),
            None => None,
        };
        Ok(ScrapeClient {
            tls: tokio_rustls::TlsConnector::from(Arc::new(cfg)),
            server_name,
            follow_redirects: sc.follow_redirects,
        })
    }

    /// GETs `url` over `conn` (connecting, or reconnecting to another
    /// origin, as needed) and reads the body onto `body`, at most `limit`
    /// bytes of it once decompressed. `headers` go with every request;
    /// `authorization` only while redirects stay on the first origin.
    ///
    /// The connection is put back only after a whole answer was read: a
    /// scrape given up half way (its timeout) drops it, so the next scrape
    /// never reads the rest of an old answer.
    pub async fn get(
        &self,
        conn: &mut Connection,
        url: &Url,
        headers: &[(&str, &str)],
        authorization: Option<&str>,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<Answer, FetchError> {
        let first = Origin::of(url)?;
        // Owned only once a redirect points elsewhere.
        let mut url = std::borrow::Cow::Borrowed(url);
        let mut origin = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            let (mut c, reused) = match conn.0.take() {
                Some(c) if c.origin == origin && !c.send.is_closed() => (c, true),
                _ => (self.connect(&origin).await?, false),
            };
            let auth = authorization.filter(|_| origin == first);
            let answer = match c.request(&origin, &url, headers, auth, body, limit).await {
                Ok(a) => a,
                // A kept connection the server closed while it was idle (its
                // keep-alive timeout passing as the request went out) fails
                // before any answer: the GET is sent once more on a new
                // connection, as Go's and hyper's pooled clients do, so
                // the race never shows as a failed scrape.
                Err(Failed::Unanswered(_)) if reused => {
                    c = self.connect(&origin).await?;
                    c.request(&origin, &url, headers, auth, body, limit)
                        .await
                        .map_err(Failed::into_inner)?
                }
                Err(e) => return Err(e.into_inner()),
            };
            if answer.keep_alive {
                conn.0 = Some(c);
            }
            match answer.redirect {
                Some(loc) if self.follow_redirects => {
                    url = std::borrow::Cow::Owned(
                        url.join(&loc)
                            .map_err(|e| FetchError::Http(format!("redirect to {loc:?}: {e}")))?,
                    );
                    origin = Origin::of(&url)?;
                }
                _ => return Ok(answer.answer),
            }
        }
        Err(FetchError::Http(format!(
            "stopped after {MAX_REDIRECTS} redirects"
        )))
    }

    async fn connect(&self, o: &Origin) -> Result<Kept, FetchError> {
        let addr = format!("{}:{}", o.connect_host(), o.port);
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|e| FetchError::Http(format!("dial tcp {addr}: {e}")))?;
        // The request is one small write; Nagle would hold it for nothing.
        let _ = tcp.set_nodelay(true);
        let mut b = http1::Builder::new();
        b.read_buf_exact_size(Some(READ_BUF));
        let handshake = |e: hyper::Error| {
            FetchError::Http(format!("connection to {addr}: {}", error_chain(&e)))
        };
        let send = if o.https {
            let name = match &self.server_name {
                Some(n) => n.clone(),
                None => ServerName::try_from(o.host.trim_matches(['[', ']']).to_string())
                    .map_err(|e| FetchError::Http(format!("invalid host {:?}: {e}", o.host)))?,
            };
            let tls = self.tls.connect(name, tcp).await.map_err(|e| {
                FetchError::Http(format!("TLS handshake with {addr}: {}", error_chain(&e)))
            })?;
            let (send, run) = b.handshake(TokioIo::new(tls)).await.map_err(handshake)?;
            tokio::spawn(run);
            send
        } else {
            let (send, run) = b.handshake(TokioIo::new(tcp)).await.map_err(handshake)?;
            tokio::spawn(run);
            send
        };
        Ok(Kept {
            origin: o.clone(),
            send,
        })
    }
}

/// A target's kept-alive connection, owned by its scrape loop.
#[derive(Default)]
pub struct Connection(Option<Kept>);

struct Kept {
    origin: Origin,
    send: http1::SendRequest<Empty<Bytes>>,
}

/// Scheme, host and port: what a kept connection can serve.
#[derive(Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    /// As in the URL (an IPv6 address in brackets).
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Result<Origin, FetchError> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            s => {
                return Err(FetchError::Http(format!(
                    "unsupported scheme {s:?} in {url}"
                )));
            }
        };
        // IPv6 addresses come in brackets, as in the URL.
        let host = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => return Err(FetchError::Http(format!("no host in {url}"))),
        };
        Ok(Origin {
            https,
            host,
            port: url
                .port_or_known_default()
                .unwrap_or(if https { 443 } else { 80 }),
        })
    }

    fn connect_host(&self) -> &str {
        self.host.trim_matches(['[', ']'])
    }

    /// The `Host` header: the port only when it is not the scheme's own.
    fn host_header(&self) -> String {
        if self.port == if self.https { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What one request gave.
struct Exchange {
    answer: Answer,
    /// Where a 3xx with a `Location` points.
    redirect: Option<String>,
    /// The answer was read whole and the server keeps the connection.
    keep_alive: bool,
}

/// A scrape's answer; the body is in the caller's buffer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: hyper::StatusCode,
    /// The `Content-Type` header, if any and readable.
    pub content_type: Option<String>,
}

/// Why a scrape's request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connecting, TLS, or the exchange itself.
    #[error("{0}")]
    Http(String),
    /// The body, decoded, is larger than the budget.
    #[error("body size limit exceeded ({0} bytes)")]
    TooLarge(u64),
}

/// How a request on a connection failed.
enum Failed {
    /// Before an answer's head arrived: nothing of the request was acted
    /// on that a GET could not repeat.
    Unanswered(FetchError),
    /// While or after the answer was read.
    Answered(FetchError),
}

impl Failed {
    fn into_inner(self) -> FetchError {
        match self {
            Failed::Unanswered(e) | Failed::Answered(e) => e,
        }
    }
}

impl From<FetchError> for Failed {
    fn from(e: FetchError) -> Failed {
        Failed::Answered(e)
    }
}

impl Kept {
    async fn request(
        &mut self,
        origin: &Origin,
        url: &Url,
        headers: &[(&str, &str)],
        authorization: Option<&str>,
        body: &mut Vec<u8>,
        limit: u64,
    ) -> Result<Exchange, Failed> {
        let http = |what: &str, e: &dyn std::error::Error| {
            FetchError::Http(format!("{what} {url}: {}", error_chain(e)))
        };
        self.send
            .ready()
            .await
            .map_err(|e| Failed::Unanswered(http("connection for", &e)))?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut req = hyper::Request::get(target)
            .header(hyper::header::HOST, origin.host_header())
            .header(hyper::header::ACCEPT_ENCODING, "gzip");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = authorization {
            let mut v = hyper::header::HeaderValue::from_str(a).map_err(|_| {
                FetchError::Http("credentials hold a character not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            req = req.header(hyper::header::AUTHORIZATION, v);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| FetchError::Http(format!("request for {url}: {e}")))?;
        let resp = self
            .send
            .send_request(req)
            .await
            .map_err(|e| Failed::Unanswered(http("GET", &e)))?;
        let status = resp.status();
        let h = resp.headers();
        let text = |name| {
            h.get(name)
                .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
        };
        let content_type = text(hyper::header::CONTENT_TYPE).map(str::to_string);
        let redirect = if status.is_redirection() {
            text(hyper::header::LOCATION).map(str::to_string)
        } else {
            None
        };
        let gzip =
            text(hyper::header::CONTENT_ENCODING).is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
        let length = text(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let keep_alive =
            !text(hyper::header::CONNECTION).is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let mut incoming = resp.into_body();
        let wanted = redirect.is_none() && status.is_success();
        if !wanted {
            // A redirect's or an error's body is read and dropped, so the
            // connection can be kept, but only its first
            // [`REPLY_BUDGET`] bytes: a longer one costs the connection,
            // never the scrape's byte budget (the status is the error).
            let mut left = REPLY_BUDGET;
            let mut keep_alive = keep_alive;
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|e| http("reading the body of", &e))?;
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if n > left {
                    keep_alive = false;
                    break;
                }
                left -= n;
            }
            return Ok(Exchange {
                answer: Answer {
                    status,
                    content_type,
                },
                redirect,
                keep_alive,
            });
        }
        let mut raw = Vec::new();
        let to: &mut Vec<u8> = if gzip { &mut raw } else { body };
        to.reserve(length.unwrap_or(0).min(limit).min(1 << 24) as usize);
        let mut budget = Budget::new(limit);
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| http("reading the body of", &e))?;
            if let Ok(chunk) = frame.into_data()
                && !budget.take(&chunk, to)
            {
                return Err(FetchError::TooLarge(limit).into());
            }
        }
        if gzip {
            let whole = gunzip_within(&raw, body, limit)
                .map_err(|e| FetchError::Http(format!("decoding the gzip body of {url}: {e}")))?;
            if !whole {
                return Err(FetchError::TooLarge(limit).into());
            }
        }
        Ok(Exchange {
            answer: Answer {
                status,
                content_type,
            },
            redirect,
            keep_alive,
        })
    }
}
