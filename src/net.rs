//! Outbound HTTP shared by every module that calls out (scraping,
//! forwarding alerts, receivers, probes): clients and rustls settings
//! built from a `tls_config`; the `basic_auth` / `authorization` / bearer
//! headers, whose `*_file` secrets are read on every request so rotated
//! credentials apply without a reload; and the one byte budget every
//! answer's body is read within ([`Budget`], [`gunzip_within`]).

use std::sync::Arc;

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
/// decompressed (reqwest decodes gzip on the way), so a server that
/// answers without end, or with a compression bomb, costs `limit` bytes
/// and no more. Returns whether the whole body fit; when it
/// does not, `out` holds the first `limit` bytes and the rest is left
/// unread (the connection is dropped with the response).
pub async fn read_body(
    resp: &mut reqwest::Response,
    out: &mut Vec<u8>,
    limit: u64,
) -> Result<bool, reqwest::Error> {
    let mut budget = Budget::new(limit);
    out.reserve(resp.content_length().unwrap_or(0).min(limit.min(1 << 24)) as usize);
    while let Some(chunk) = resp.chunk().await? {
        if !budget.take(&chunk, out) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The byte budget of a body read in chunks: [`read_body`]'s, and the
/// scrape client's (which reads through hyper directly).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    left: u64,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Budget {
        Budget { left: limit }
    }

    /// Appends `chunk` to `out` if it fits; if not, appends what fits and
    /// returns false (the body is over budget).
    pub fn take(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        if chunk.len() as u64 > self.left {
            out.extend_from_slice(&chunk[..self.left as usize]);
            self.left = 0;
            return false;
        }
        self.left -= chunk.len() as u64;
        out.extend_from_slice(chunk);
        true
    }
}

/// Decodes the gzip body `raw` onto `out`, at most `limit` bytes of it:
/// returns whether the whole body fit, so a compression bomb costs
/// `limit` bytes and no more.
pub fn gunzip_within(raw: &[u8], out: &mut Vec<u8>, limit: u64) -> std::io::Result<bool> {
    use std::io::Read;
    let start = out.len();
    // One byte past the budget tells a bomb from a body of exactly
    // `limit` bytes.
    flate2::read::GzDecoder::new(raw)
        .take(limit.saturating_add(1))
        .read_to_end(out)?;
    if (out.len() - start) as u64 > limit {
        out.truncate(start + limit as usize);
        return Ok(false);
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

/// Builds a client with `tls` settings (see [`client_from_material`]).
pub fn build_client(tls: Option<&TlsConfig>) -> Result<reqwest::Client, String> {
    client_from_material(&TlsMaterial::from_config(tls)?)
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

impl TlsMaterial {
    /// Reads the files a `tls_config` names; the error names the file.
    pub fn from_config(tls: Option<&TlsConfig>) -> Result<TlsMaterial, String> {
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
            let mut pem =
                std::fs::read(c).map_err(|e| format!("unable to read cert file {c}: {e}"))?;
            pem.extend(std::fs::read(k).map_err(|e| format!("unable to read key file {k}: {e}"))?);
            m.identity = Some(pem);
        }
        Ok(m)
    }
}

/// The system's trusted roots, read once per process: a config reload
/// with many jobs must not parse the whole store for each.
pub fn native_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            Arc::new(roots)
        })
        .clone()
}

/// The rustls settings of `m`, the one place argus's outbound TLS is set
/// up (the scrape client's, and reqwest's through
/// [`client_from_material`]): the CA bundle alone when one is given, else
/// the system's roots; the client certificate; no verification at all
/// with `insecure_skip_verify`, as Prometheus does; HTTP/1.1 offered by
/// ALPN, the one version argus's clients speak.
pub fn rustls_client_config(m: &TlsMaterial) -> Result<rustls::ClientConfig, String> {
    init_tls();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if m.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let roots = match &m.ca {
            Some((pem, name)) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pemfile::certs(&mut &pem[..]) {
                    let c = c.map_err(|e| format!("unable to use {name}: {e}"))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("unable to use {name}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("no certificates found in {name}"));
                }
                Arc::new(roots)
            }
            None => native_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut cfg = match &m.identity {
        Some(pem) => {
            let bad = |e: &dyn std::fmt::Display| format!("unable to use client certificate: {e}");
            let certs = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(&e))?;
            let key = rustls_pemfile::private_key(&mut &pem[..])
                .map_err(|e| bad(&e))?
                .ok_or_else(|| bad(&"no private key found"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad(&e))?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `insecure_skip_verify`: every certificate is taken; signatures are
/// still checked so the handshake itself stays sound.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The one way argus builds an outgoing reqwest client: redirects
/// limited, no proxy, TLS from [`rustls_client_config`].
pub fn client_from_material(m: &TlsMaterial) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_max_idle_per_host(2)
        .tcp_nodelay(true)
        .no_proxy()
        .tls_backend_preconfigured(rustls_client_config(m)?)
        .build()
        .map_err(|e| error_chain(&e))
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
    /// The `Authorization` header's value, if any; `Err` when a secret
    /// file cannot be read (the message names the file, never the secret).
    pub fn authorization(&self) -> Result<Option<String>, String> {
        let secret = |v: Option<&Secret>, file: Option<&str>| -> Result<Option<Secret>, String> {
            Ok(match (v, file) {
                (Some(c), _) => Some(c.clone()),
                (None, Some(f)) => Some(read_secret_file(f)?),
                _ => None,
            })
        };
        if let Some(b) = self.basic_auth {
            let pw = secret(b.password.as_ref(), b.password_file.as_deref())?.unwrap_or_default();
            let pair = format!("{}:{}", b.username, pw.expose());
            return Ok(Some(format!(
                "Basic {}",
                crate::model::base64_encode(pair.as_bytes())
            )));
        }
        if let Some(a) = self.authorization {
            return Ok(
                secret(a.credentials.as_ref(), a.credentials_file.as_deref())?
                    .map(|c| format!("{} {}", a.auth_type, c.expose())),
            );
        }
        Ok(secret(self.bearer_token, self.bearer_token_file)?
            .map(|c| format!("Bearer {}", c.expose())))
    }

    /// Adds the auth header to `req`; see [`Credentials::authorization`].
    pub fn apply(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, String> {
        Ok(match self.authorization()? {
            Some(v) => {
                let mut v = reqwest::header::HeaderValue::from_str(&v).map_err(|_| {
                    "credentials hold a character not allowed in a header".to_string()
                })?;
                v.set_sensitive(true);
                req.header(reqwest::header::AUTHORIZATION, v)
            }
            None => req,
        })
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
