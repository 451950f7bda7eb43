//! HTTP clients for scraping: TLS settings, client certificates and
//! `server_name`.

use std::net::SocketAddr;

use crate::config::ScrapeConfig;

/// Builds a client for a job; see [`crate::net::build_client`] for `pin`.
pub fn build(
    sc: &ScrapeConfig,
    pin: Option<(&str, SocketAddr)>,
) -> Result<reqwest::Client, String> {
    crate::net::build_client(sc.tls_config.as_ref(), pin)
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
