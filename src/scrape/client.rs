//! HTTP clients for scraping: TLS settings, client certificates and
//! `server_name`.

use std::net::SocketAddr;

use crate::config::{ScrapeConfig, TlsConfig};

use super::manager::init_tls;
use super::scrape_loop::error_chain;

/// Builds a client for a job. With `pin`, requests to the host `pin.0` go
/// to `pin.1`: that is how `tls_config.server_name` is honoured, since the
/// client verifies the certificate against the URL's host.
pub fn build(
    sc: &ScrapeConfig,
    pin: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    init_tls();
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_max_idle_per_host(2)
        .tcp_nodelay(true)
        .no_proxy();
    let t: TlsConfig = sc.tls_config.clone().unwrap_or_default();
    if let Some(ca) = &t.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("unable to read CA file {ca}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("unable to use CA file {ca}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("no certificates found in CA file {ca}"));
        }
        b = b.tls_certs_only(certs);
    }
    if let (Some(c), Some(k)) = (&t.cert_file, &t.key_file) {
        let mut pem = std::fs::read(c).map_err(|e| format!("unable to read cert file {c}: {e}"))?;
        pem.extend(std::fs::read(k).map_err(|e| format!("unable to read key file {k}: {e}"))?);
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("unable to use client certificate: {e}"))?;
        b = b.identity(id);
    }
    if t.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    if let Some((host, addr)) = pin {
        b = b.resolve(host, addr);
    }
    b.build().map_err(|e| error_chain(&e))
}

/// For a target with `tls_config.server_name`, resolves its address and
/// returns a client pinned to it plus the URL rewritten to carry the
/// server name. `Ok(None)` when no rewrite is needed.
pub async fn for_server_name(
    sc: &ScrapeConfig,
    url: &str,
) -> Result<Option<(reqwest::Client, String)>, String> {
    let Some(name) = sc
        .tls_config
        .as_ref()
        .and_then(|t| t.server_name.as_deref())
    else {
        return Ok(None);
    };
    let Some(rest) = url.strip_prefix("https://") else {
        return Ok(None);
    };
    let hostport = rest.split(['/', '?']).next().unwrap_or(rest);
    let addr = tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {hostport}: no addresses"))?;
    let client = build(sc, Some((name, addr)))?;
    let new_url = format!("https://{name}:{}{}", addr.port(), &rest[hostport.len()..]);
    Ok(Some((client, new_url)))
}
