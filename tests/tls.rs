//! Scraping over TLS: CA file, client certificates and `server_name`,
//! against a real rustls server on 127.0.0.1.

mod common;

use std::sync::Arc;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

struct Pki {
    dir: tempfile::TempDir,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec![
        "metrics.argus.test".to_string(),
        "localhost".to_string(),
    ])
    .unwrap()
    .signed_by(&server_key, &ca)
    .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["scraper".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
    Pki {
        server_cert: server.der().clone(),
        server_key: server_key.serialize_der(),
        ca_der: ca.der().clone(),
        dir,
    }
}

/// A TLS metrics server that requires a client certificate from the CA.
fn serve(p: &Pki) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(p.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(p.server_key.clone().into());
    let cfg = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![p.server_cert.clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    serve_connections(move |sock| {
        let acc = acceptor.clone();
        async move {
            let Ok(mut tls) = acc.accept(sock).await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body = "tls_metric 7\n";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    })
}

#[test]
fn ca_client_cert_and_server_name() {
    let p = pki();
    let port = serve(&p);
    let d = p.dir.path().display();
    let tls = |extra: &str| {
        format!("    scheme: https\n    tls_config: {{ca_file: '{d}/ca.pem'{extra}}}\n")
    };
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: good\n{}    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  - job_name: noname\n{}    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n  - job_name: nocert\n{}    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n",
        tls(&format!(
            ", cert_file: '{d}/client.pem', key_file: '{d}/client.key', server_name: metrics.argus.test"
        )),
        tls(&format!(
            ", cert_file: '{d}/client.pem', key_file: '{d}/client.key'"
        )),
        tls(", server_name: metrics.argus.test"),
    );
    let a = Argus::start(&cfg, &[]);
    let got = wait_for(15, "TLS scrape", || {
        let f = a.federate("tls_metric");
        (!f.is_empty()).then_some(f)
    });
    assert_eq!(
        got,
        vec![(
            format!("tls_metric{{instance=\"127.0.0.1:{port}\",job=\"good\"}}"),
            7.0
        )]
    );
    for (job, why) in [("noname", "certificate"), ("nocert", "")] {
        let t = wait_for(15, job, || {
            let t = a.api(&format!("/api/v1/targets?scrapePool={job}"));
            let t = t["activeTargets"][0].clone();
            (t["health"] == "down").then_some(t)
        });
        let err = t["lastError"].as_str().unwrap().to_lowercase();
        assert!(err.contains(why), "{job}: {err}");
    }
}

/// A webhook over HTTPS with a CA and a client certificate
/// (`http_config.tls_config`): delivered; a rotated CA file takes effect
/// at the next delivery without a reload (the client is cached by the
/// files' contents), and so does its restoration.
#[test]
fn webhooks_over_tls_follow_rotated_ca_files() {
    let p = pki();
    let port = serve(&p);
    let d = p.dir.path().display();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: https://localhost:{port}/hook\n        http_config:\n          tls_config: {{ca_file: '{d}/ca.pem', cert_file: '{d}/client.pem', key_file: '{d}/client.key'}}\n"
        ),
    )
    .unwrap();
    let cfg = "alerting:\n  routing_file: alertmanager.yml\n  delivery:\n    retry_initial: 200ms\n    retry_max: 400ms\n";
    let a = Argus::start_in(tmp.path(), cfg, &[]);
    let metric = |name: &str| metric(&a, name, "");
    let fire = |name: &str| {
        let body = format!(r#"[{{"labels":{{"alertname":"{name}"}}}}]"#);
        let (code, out) = http_request_with(
            "POST",
            &format!("{}/api/v2/alerts", a.url()),
            Some(&body),
            &[("Content-Type", "application/json")],
        )
        .unwrap();
        assert_eq!(code, 200, "{out}");
    };
    fire("First");
    a.wait_for(15, "the first delivery", || {
        (metric("argus_receiver_notifications_total") == 1.0).then_some(())
    });
    // Another CA: the server's certificate no longer verifies.
    let ca = std::fs::read(p.dir.path().join("ca.pem")).unwrap();
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other = CertifiedIssuer::self_signed(other, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(p.dir.path().join("ca.pem"), other.pem()).unwrap();
    fire("Second");
    a.wait_for(15, "a failed attempt", || {
        (metric("argus_receiver_notifications_retried_total") >= 1.0).then_some(())
    });
    assert_eq!(metric("argus_receiver_notifications_total"), 1.0);
    std::fs::write(p.dir.path().join("ca.pem"), ca).unwrap();
    a.wait_for(15, "the retried delivery", || {
        (metric("argus_receiver_notifications_total") == 2.0).then_some(())
    });
}
