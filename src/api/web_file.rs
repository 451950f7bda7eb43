//! Serving with `--web.config.file` (read by `config::web_file`): TLS on
//! the listener, basic auth on every request, the configured response
//! headers.
//!
//! As in Prometheus, the file is read again while argus runs: a rotated
//! certificate, a new user or a changed header takes effect without a
//! restart (within a second: files are looked at, by modification time
//! and size, at most once a second). Whether the listener speaks TLS at
//! all is decided at start. A file that stops loading fails requests
//! (500) and handshakes, and is logged once, until it is fixed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use crate::config::web_file::{ClientAuth, WebFile, load_web_file};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the files are looked at for changes.
const RECHECK: Duration = Duration::from_secs(1);
/// Verdicts of bcrypt kept (each costs tens of milliseconds to compute).
const AUTH_CACHE: usize = 100;
/// Compared against when the user is unknown, so that the answer takes
/// as long as for a known one (a hash of a random password).
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// The web configuration as loaded, ready to serve with.
pub struct Loaded {
    /// The file.
    pub file: WebFile,
    /// The TLS settings, when the file asks for TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the file asks for that argus cannot do (cipher suites and
    /// curves it does not have); served without them.
    pub notes: Vec<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Modification time and size of each file the configuration reads.
type Stamp = Vec<Option<(SystemTime, u64)>>;

struct Current {
    checked: Instant,
    stamp: Stamp,
    loaded: Result<Arc<Loaded>, String>,
}

/// The web configuration file of a running server.
pub struct WebServer {
    path: PathBuf,
    current: Mutex<Current>,
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    /// One bcrypt at a time, as in Prometheus: a flood of bad passwords
    /// costs one core, not all.
    bcrypt: Mutex<()>,
}

fn stamp_of(paths: &[PathBuf]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

/// The files a configuration reads: itself, then its TLS files.
fn files_of(path: &Path, file: Option<&WebFile>) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    if let Some(w) = file {
        let t = &w.tls_server_config;
        for f in [&t.cert_file, &t.key_file, &t.client_ca_file] {
            if !f.is_empty() {
                v.push(w.path(f));
            }
        }
    }
    v
}

/// Reads the file and everything it names.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let file = load_web_file(path).map_err(|e| e.to_string())?;
    let mut notes = Vec::new();
    let tls = if file.tls_server_config.enabled() {
        Some(Arc::new(server_config(&file, &mut notes)?))
    } else {
        None
    };
    let headers = file
        .http_server_config
        .headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect();
    Ok(Loaded {
        file,
        tls,
        notes,
        headers,
    })
}

impl WebServer {
    /// Loads `path`; an error names the file and what is wrong.
    pub fn open(path: &Path) -> Result<Arc<WebServer>, String> {
        let loaded = load(path)?;
        for n in &loaded.notes {
            tracing::warn!(file = %path.display(), "{n}");
        }
        let stamp = stamp_of(&files_of(path, Some(&loaded.file)));
        Ok(Arc::new(WebServer {
            path: path.to_path_buf(),
            current: Mutex::new(Current {
                checked: Instant::now(),
                stamp,
                loaded: Ok(Arc::new(loaded)),
            }),
            verdicts: Mutex::new(HashMap::new()),
            bcrypt: Mutex::new(()),
        }))
    }

    /// The configuration now, loaded again if a file changed.
    pub fn current(&self) -> Result<Arc<Loaded>, String> {
        let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if c.checked.elapsed() >= RECHECK {
            c.checked = Instant::now();
            let file = c.loaded.as_ref().ok().map(|l| &l.file);
            let stamp = stamp_of(&files_of(&self.path, file));
            if stamp != c.stamp {
                c.loaded = load(&self.path).map(Arc::new);
                match &c.loaded {
                    Ok(l) => {
                        tracing::info!(file = %self.path.display(), "web config file loaded again");
                        for n in &l.notes {
                            tracing::warn!(file = %self.path.display(), "{n}");
                        }
                        // The TLS files are now known for the next look.
                        c.stamp = stamp_of(&files_of(&self.path, Some(&l.file)));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the web config file no longer loads: requests get 500 and TLS handshakes fail until it is fixed");
                        c.stamp = stamp;
                    }
                }
            }
        }
        c.loaded.clone()
    }

    /// Whether `user`/`pass` match the file's users, through the cache.
    fn check_password(&self, users: &WebFile, user: &str, pass: &str) -> bool {
        let hash = users.basic_auth_users.get(user);
        let h = hash.map_or(DUMMY_HASH, |s| s.expose());
        let mut d = Sha256::new();
        for part in [user, h, pass] {
            d.update((part.len() as u64).to_le_bytes());
            d.update(part.as_bytes());
        }
        let key: [u8; 32] = d.finalize().into();
        if let Some(v) = self
            .verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return *v;
        }
        let ok = {
            let _one = self.bcrypt.lock().unwrap_or_else(|e| e.into_inner());
            bcrypt::verify(pass, h).unwrap_or(false)
        } && hash.is_some();
        let mut v = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() >= AUTH_CACHE {
            v.clear();
        }
        v.insert(key, ok);
        ok
    }
}

/// The user and password of a basic `Authorization` header.
fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = crate::model::base64_decode(rest.trim())?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Middleware: the file's headers on every answer, and its basic auth
/// users' credentials required on every request when it has any.
pub async fn guard(State(web): State<Arc<WebServer>>, req: Request, next: Next) -> Response {
    let loaded = match web.current() {
        Ok(l) => l,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let allowed = if loaded.file.basic_auth_users.is_empty() {
        true
    } else if let Some((u, p)) = basic_credentials(&req) {
        let (w, l) = (web.clone(), loaded.clone());
        tokio::task::spawn_blocking(move || w.check_password(&l.file, &u, &p))
            .await
            .unwrap_or(false)
    } else {
        false
    };
    let mut resp = if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (k, v) in &loaded.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}

/// The rustls name of a Go cipher suite name (Go keeps two old names
/// for the ChaCha20 suites).
fn rustls_suite_name(go: &str) -> String {
    match go {
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            format!("{go}_SHA256")
        }
        _ => go.to_string(),
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn certs_of(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_pem(path)?;
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// Builds the TLS settings; what argus cannot offer of what the file
/// names goes to `notes`.
fn server_config(w: &WebFile, notes: &mut Vec<String>) -> Result<rustls::ServerConfig, String> {
    let t = &w.tls_server_config;
    let cert_path = w.path(&t.cert_file);
    let key_path = w.path(&t.key_file);
    let certs = certs_of(&cert_path)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &read_pem(&key_path)?[..])
        .map_err(|e| format!("{}: not a PEM private key: {e}", key_path.display()))?
        .ok_or_else(|| format!("{}: no private key found", key_path.display()))?;

    let mut provider = rustls::crypto::ring::default_provider();
    if !t.cipher_suites.is_empty() {
        // The list orders TLS 1.2's suites; TLS 1.3's are not configurable
        // (as in Go) and all stay.
        let all = std::mem::take(&mut provider.cipher_suites);
        let name = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        let mut kept: Vec<_> = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        let mut missing = Vec::new();
        for go in &t.cipher_suites {
            let want = rustls_suite_name(go);
            match all.iter().find(|s| name(s) == want) {
                Some(s) if s.version() == &rustls::version::TLS12 => kept.push(*s),
                Some(_) => {}
                None => missing.push(go.as_str()),
            }
        }
        if !missing.is_empty() {
            notes.push(format!(
                "tls_server_config.cipher_suites: argus cannot offer {}; served without them",
                missing.join(", ")
            ));
        }
        provider.cipher_suites = kept;
    }
    if !t.curve_preferences.is_empty() {
        let all = std::mem::take(&mut provider.kx_groups);
        let mut missing = Vec::new();
        for c in &t.curve_preferences {
            let want = match c.as_str() {
                "X25519" => Some(rustls::NamedGroup::X25519),
                "CurveP256" => Some(rustls::NamedGroup::secp256r1),
                "CurveP384" => Some(rustls::NamedGroup::secp384r1),
                _ => None,
            };
            match want.and_then(|n| all.iter().find(|g| g.name() == n)) {
                Some(g) => provider.kx_groups.push(*g),
                None => missing.push(c.as_str()),
            }
        }
        if !missing.is_empty() {
            notes.push(format!(
                "tls_server_config.curve_preferences: argus cannot offer {}; served without them",
                missing.join(", ")
            ));
        }
        if provider.kx_groups.is_empty() {
            return Err(
                "tls_server_config.curve_preferences: none of these curves can be offered".into(),
            );
        }
    }
    let (lo, hi) = t.versions();
    let mut versions = Vec::new();
    if (lo..=hi).contains(&12) {
        versions.push(&rustls::version::TLS12);
    }
    if (lo..=hi).contains(&13) {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err("tls_server_config: min_version and max_version allow neither TLS 1.2 nor TLS 1.3, the versions argus speaks".into());
    }
    if lo < 12 {
        notes.push("tls_server_config.min_version: argus speaks TLS 1.2 and 1.3 only".into());
    }
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let policy = t.client_auth();
    let builder = match policy {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Request | ClientAuth::RequireAny => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCert {
                mandatory: policy == ClientAuth::RequireAny,
                provider: provider.clone(),
            }))
        }
        ClientAuth::VerifyIfGiven | ClientAuth::RequireAndVerify => {
            let roots = if t.client_ca_file.is_empty() {
                // Go verifies against the system's roots then.
                crate::net::native_roots()
            } else {
                let mut roots = rustls::RootCertStore::empty();
                let ca = w.path(&t.client_ca_file);
                for c in certs_of(&ca)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
                }
                Arc::new(roots)
            };
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots,
                provider.clone(),
            );
            let v = if policy == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| format!("tls_server_config.client_ca_file: {e}"))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "{} and {}: unusable as a certificate and its key: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // No HTTP/2: the server speaks HTTP/1.1 only.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// `RequestClientCert` and `RequireAnyClientCert`: a client certificate
/// is asked for (or required) and its signature checked, but its chain is
/// not verified, as Go does for these policies.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
}

/// A listener that hands axum connections after their TLS handshake.
/// Handshakes run in their own tasks, so a slow client delays no other.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Serves TLS on `tcp` with the settings `web` has at each handshake.
    pub fn new(tcp: TcpListener, web: Arc<WebServer>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (sock, addr) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait, do not spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Some(cfg) = web.current().ok().and_then(|l| l.tls.clone()) else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, addr)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %addr, error = %e, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The acceptor ends only with this listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
