//! Outbound HTTP shared by every module that calls out (scraping,
//! forwarding alerts, receivers, probes): clients built from a
//! `tls_config`; the `basic_auth` / `authorization` / bearer headers, whose
//! `*_file` secrets are read on every request so rotated credentials apply
//! without a reload; and the one way an answer's body is read, within a
//! byte budget.

use std::net::SocketAddr;

use crate::config::{Authorization, BasicAuth, Secret, TlsConfig, read_secret_file};

/// Installs the ring crypto provider for rustls once per process.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The most of an answer read where only its first words matter (a
/// receiver's or an Alertmanager's reply, a health check).
pub const REPLY_BUDGET: u64 = 64 << 10;

/// Reads the body of `resp` onto `out`, at most `limit` bytes of it as
/// decompressed: the one place argus reads what another server sends, so a
/// server that answers without end, or with a compression bomb, costs
/// `limit` bytes and no more. Returns whether the whole body fit; when it
/// does not, `out` holds the first `limit` bytes and the rest is left
/// unread (the connection is dropped with the response).
pub async fn read_body(
    resp: &mut reqwest::Response,
    out: &mut Vec<u8>,
    limit: u64,
) -> Result<bool, reqwest::Error> {
    let mut taken = 0u64;
    out.reserve(resp.content_length().unwrap_or(0).min(limit.min(1 << 24)) as usize);
    while let Some(chunk) = resp.chunk().await? {
        let room = limit - taken;
        if chunk.len() as u64 > room {
            out.extend_from_slice(&chunk[..room as usize]);
            return Ok(false);
        }
        taken += chunk.len() as u64;
        out.extend_from_slice(&chunk);
    }
    Ok(true)
}

/// [`read_body`] of a reply whose first [`REPLY_BUDGET`] bytes are all
/// that is looked at; a body that cannot be read counts as empty.
pub async fn read_reply(mut resp: reqwest::Response) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = read_body(&mut resp, &mut out, REPLY_BUDGET).await;
    out
}

/// The text of an error and its sources, joined by ": ", so a connection
/// failure says why (refused, timed out, certificate) and not only that.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Builds a client with `tls` settings. With `pin`, requests to the host
/// `pin.0` go to `pin.1`: that is how `tls_config.server_name` is
/// honoured, since the client verifies the certificate against the URL's
/// host.
pub fn build_client(
    tls: Option<&TlsConfig>,
    pin: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    let t: TlsConfig = tls.cloned().unwrap_or_default();
    let mut m = TlsMaterial {
        insecure_skip_verify: t.insecure_skip_verify,
        ..TlsMaterial::default()
    };
    if let Some(ca) = &t.ca_file {
        m.ca = Some((
            std::fs::read(ca).map_err(|e| format!("unable to read CA file {ca}: {e}"))?,
            format!("CA file {ca}"),
        ));
    }
    if let (Some(c), Some(k)) = (&t.cert_file, &t.key_file) {
        let mut pem = std::fs::read(c).map_err(|e| format!("unable to read cert file {c}: {e}"))?;
        pem.extend(std::fs::read(k).map_err(|e| format!("unable to read key file {k}: {e}"))?);
        m.identity = Some(pem);
    }
    client_from_material(&m, pin)
}

/// TLS settings as PEM bytes, wherever they came from (files named by a
/// `tls_config`, or a kubeconfig's inline data).
#[derive(Clone, Debug, Default)]
pub struct TlsMaterial {
    /// CA bundle and how errors name it.
    pub ca: Option<(Vec<u8>, String)>,
    /// Client certificate chain followed by its key.
    pub identity: Option<Vec<u8>>,
    /// Skip certificate verification.
    pub insecure_skip_verify: bool,
}

/// The one way argus builds an outgoing HTTP client: redirects limited,
/// no proxy, TLS from `m`, and `pin` resolving a host to a fixed address.
pub fn client_from_material(
    m: &TlsMaterial,
    pin: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    init_tls();
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_max_idle_per_host(2)
        .tcp_nodelay(true)
        .no_proxy();
    if let Some((pem, name)) = &m.ca {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("unable to use {name}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("no certificates found in {name}"));
        }
        b = b.tls_certs_only(certs);
    }
    if let Some(pem) = &m.identity {
        let id = reqwest::Identity::from_pem(pem)
            .map_err(|e| format!("unable to use client certificate: {e}"))?;
        b = b.identity(id);
    }
    if m.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some((host, addr)) = pin {
        b = b.resolve(host, addr);
    }
    b.build().map_err(|e| error_chain(&e))
}

/// The [`Credentials`] of a config section with Prometheus's four auth
/// keys (`basic_auth`, `authorization`, `bearer_token`,
/// `bearer_token_file`), whatever the section's type: scrape configs,
/// `http_sd_configs` and integrations' `http_config` all have them.
#[macro_export]
macro_rules! credentials_of {
    ($c:expr) => {
        $crate::net::Credentials {
            basic_auth: $c.basic_auth.as_ref(),
            authorization: $c.authorization.as_ref(),
            bearer_token: $c.bearer_token.as_ref(),
            bearer_token_file: $c.bearer_token_file.as_deref(),
        }
    };
}

/// The credentials of an outbound request, as a config section gives them.
#[derive(Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// `basic_auth`
    pub basic_auth: Option<&'a BasicAuth>,
    /// `authorization`
    pub authorization: Option<&'a Authorization>,
    /// `bearer_token`
    pub bearer_token: Option<&'a Secret>,
    /// `bearer_token_file`
    pub bearer_token_file: Option<&'a str>,
}

impl Credentials<'_> {
    /// Adds the auth header to `req`; `Err` when a secret file cannot be
    /// read (the message names the file, never the secret).
    pub fn apply(
        &self,
        mut req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, String> {
        let secret = |v: Option<&Secret>, file: Option<&str>| -> Result<Option<Secret>, String> {
            Ok(match (v, file) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(f)) => Some(read_secret_file(f)?),
                _ => None,
            })
        };
        if let Some(b) = self.basic_auth {
            let pw = secret(b.password.as_ref(), b.password_file.as_deref())?.unwrap_or_default();
            req = req.basic_auth(&b.username, Some(pw.expose()));
        }
        if let Some(a) = self.authorization {
            if let Some(c) = secret(a.credentials.as_ref(), a.credentials_file.as_deref())? {
                req = req.header("Authorization", format!("{} {}", a.auth_type, c.expose()));
            }
        } else if let Some(c) = secret(self.bearer_token, self.bearer_token_file)? {
            req = req.header("Authorization", format!("Bearer {}", c.expose()));
        }
        Ok(req)
    }
}

/// `base` and `path` joined, with `query` percent-encoded after a `?`
/// (none when it is empty): the URL of an API call of a discovery.
pub fn api_url(base: &str, path: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return format!("{base}{path}");
    }
    let q: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    format!("{base}{path}?{}", q.join("&"))
}

/// Percent-encodes a URL component: every byte but the unreserved
/// (`A-Z a-z 0-9 - _ . ~`) as `%XX` in upper case. This is also the
/// encoding AWS Signature V4 signs.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
