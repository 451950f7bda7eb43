//! `--web.config.file`: argus serving HTTPS with basic auth users and
//! security headers, client certificates, and the file read again while
//! it runs (a rotated certificate, changed users, a broken then fixed
//! file), talked to by a real TLS client on 127.0.0.1.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join(name), ca.pem()).unwrap();
    Ca {
        der: ca.der().clone(),
        issuer: ca,
    }
}

/// A certificate for `names` signed by `ca`, written as `stem.crt` and
/// `stem.key`; its DER.
fn leaf(dir: &Path, ca: &Ca, names: &[&str], stem: &str) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    cert.der().clone()
}

/// What one HTTPS request got: status, headers (lower-case names), body,
/// and the server's certificate.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    server_cert: CertificateDer<'static>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `path` over HTTPS from argus on `port`, trusting `ca`, with basic
/// auth and a client certificate when given.
fn https_get(
    port: u16,
    ca: &CertificateDer<'static>,
    path: &str,
    auth: Option<(&str, &str)>,
    client: Option<(&Path, &str)>,
) -> Result<Answer, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let b = rustls::ClientConfig::builder().with_root_certificates(roots);
    let cfg = match client {
        None => b.with_no_client_auth(),
        Some((dir, stem)) => {
            let certs =
                vec![CertificateDer::from_pem_file(dir.join(format!("{stem}.crt"))).unwrap()];
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))).unwrap();
            b.with_client_auth_cert(certs, key).unwrap()
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let auth_header = auth
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}\r\n",
                argus::model::base64_encode(format!("{u}:{p}").as_bytes())
            )
        })
        .unwrap_or_default();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth_header}Connection: close\r\n\r\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map_err(|e| format!("handshake: {e}"))?;
        let server_cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
        tls.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut raw))
            .await
            .map_err(|_| "read timed out".to_string())?
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or("no status line")?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: body.to_string(),
            server_cert,
        })
    })
}

struct Running {
    child: Child,
    dir: std::path::PathBuf,
    port: u16,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("argus.log")).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts argus in `dir` with `web.yml` there as its web config file and
/// waits until `ready` says it answers.
fn start(dir: &Path, ready: impl Fn(u16) -> bool) -> Running {
    std::fs::write(dir.join("argus.yml"), "global:\n  scrape_interval: 1m\n").unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("argus.log")).unwrap();
    let child = Command::new(argus_bin())
        .arg("run")
        .arg("--config")
        .arg(dir.join("argus.yml"))
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--storage.path")
        .arg(dir.join("data"))
        .arg("--web.config.file")
        .arg(dir.join("web.yml"))
        .arg("--log.level")
        .arg("debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut r = Running {
        child,
        dir: dir.to_path_buf(),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ready(port) {
            return r;
        }
        if let Ok(Some(st)) = r.child.try_wait() {
            panic!("argus exited ({st}):\n{}", r.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("argus not ready:\n{}", r.log());
}

fn hash(password: &str) -> String {
    // The lowest cost keeps the test fast; argus handles any.
    bcrypt::hash(password, 4).unwrap()
}

#[test]
fn https_with_basic_auth_headers_and_files_read_again() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = ca(d, "ca.crt");
    let first = leaf(d, &ca, &["localhost"], "server");
    // Relative names: resolved against the web config file's directory.
    let web = |users: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Strict-Transport-Security: max-age=31536000\nbasic_auth_users:\n{users}"
        )
    };
    std::fs::write(
        d.join("web.yml"),
        web(&format!("  alice: {}\n", hash("s3cret"))),
    )
    .unwrap();
    let ca_der = ca.der.clone();
    let a = start(d, |port| {
        https_get(port, &ca_der, "/-/ready", Some(("alice", "s3cret")), None)
            .is_ok_and(|r| r.status == 200)
    });
    let get = |auth| https_get(a.port, &ca.der, "/api/v1/status/buildinfo", auth, None);

    let ok = get(Some(("alice", "s3cret"))).unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("\"version\""), "{}", ok.body);
    assert_eq!(ok.server_cert, first);
    assert_eq!(ok.header("x-frame-options"), Some("deny"));
    assert_eq!(
        ok.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    for auth in [None, Some(("alice", "wrong")), Some(("mallory", "s3cret"))] {
        let r = get(auth).unwrap();
        assert_eq!(r.status, 401, "{auth:?}: {}", r.body);
        assert_eq!(r.header("www-authenticate"), Some("Basic"), "{auth:?}");
        // The headers go on refusals too.
        assert_eq!(r.header("x-frame-options"), Some("deny"));
    }
    // Every path is behind the users, health and metrics included.
    for p in ["/-/healthy", "/metrics", "/api/v2/alerts"] {
        let r = https_get(a.port, &ca.der, p, None, None).unwrap();
        assert_eq!(r.status, 401, "{p}");
    }
    // Plain HTTP on the TLS port gets no answer.
    assert!(!matches!(
        http_get(&format!("http://127.0.0.1:{}/-/healthy", a.port)),
        Ok((200, _))
    ));

    // A rotated certificate is served to new connections.
    let second = leaf(d, &ca, &["localhost"], "server");
    assert_ne!(first, second);
    wait_for(10, "the rotated certificate", || {
        get(Some(("alice", "s3cret")))
            .ok()
            .filter(|r| r.server_cert == second)
    });

    // Users change without a restart.
    std::fs::write(
        d.join("web.yml"),
        web(&format!("  bob: {}\n", hash("hunter2"))),
    )
    .unwrap();
    wait_for(10, "bob let in", || {
        get(Some(("bob", "hunter2")))
            .ok()
            .filter(|r| r.status == 200)
    });
    assert_eq!(get(Some(("alice", "s3cret"))).unwrap().status, 401);

    // A file that stops loading fails closed, is logged, and a fix is
    // picked up.
    std::fs::write(d.join("web.yml"), "basic_auth_users:\n  bob: [\n").unwrap();
    wait_for(10, "handshakes refused", || {
        get(Some(("bob", "hunter2"))).err()
    });
    assert!(
        a.log().contains("web config file no longer loads"),
        "{}",
        a.log()
    );
    std::fs::write(
        d.join("web.yml"),
        web(&format!("  bob: {}\n", hash("hunter2"))),
    )
    .unwrap();
    wait_for(10, "served again", || {
        get(Some(("bob", "hunter2")))
            .ok()
            .filter(|r| r.status == 200)
    });
}

#[test]
fn client_certificates_required_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let ca = ca(d, "ca.crt");
    leaf(d, &ca, &["localhost"], "server");
    leaf(d, &ca, &["prometheus"], "client");
    let other = self::ca(d, "other-ca.crt");
    leaf(d, &other, &["intruder"], "intruder");
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
    )
    .unwrap();
    let ca_der = ca.der.clone();
    let dir = d.to_path_buf();
    let a = start(d, move |port| {
        https_get(port, &ca_der, "/-/ready", None, Some((&dir, "client")))
            .is_ok_and(|r| r.status == 200)
    });
    let r = https_get(a.port, &ca.der, "/-/healthy", None, Some((d, "client"))).unwrap();
    assert_eq!(r.status, 200);
    for who in [None, Some((d, "intruder"))] {
        // TLS 1.3 reports a refused client certificate after the
        // handshake: the request then gets no answer.
        let r = https_get(a.port, &ca.der, "/-/healthy", None, who);
        assert!(r.is_err(), "{:?}", r.map(|r| r.status));
    }
}

#[test]
fn a_bad_web_config_file_is_refused_where_it_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("web.yml"),
        "basic_auth_users:\n  alice: plain-text-password\n",
    )
    .unwrap();
    let out = Command::new(argus_bin())
        .arg("run")
        .arg("--web.listen-address")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--storage.path")
        .arg(d.join("data"))
        .arg("--web.config.file")
        .arg(d.join("web.yml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("web.yml:2:10: basic_auth_users.alice: the bcrypt hash is too short"),
        "{err}"
    );
    // A certificate that is not there is named.
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
    )
    .unwrap();
    let (code, out) = argus_cli([
        "check".as_ref(),
        "web-config".as_ref(),
        d.join("web.yml").as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("missing.crt"), "{out}");
    // What argus cannot offer is said, and the rest served.
    let ca = ca(d, "ca.crt");
    leaf(d, &ca, &["localhost"], "server");
    std::fs::write(
        d.join("web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [CurveP521, X25519]\n",
    )
    .unwrap();
    let (code, out) = argus_cli([
        "check".as_ref(),
        "web-config".as_ref(),
        d.join("web.yml").as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    assert!(
        out.contains("argus cannot offer TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"),
        "{out}"
    );
    assert!(out.contains("argus cannot offer CurveP521"), "{out}");
}
