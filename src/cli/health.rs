//! `argus check health`: the instance's readiness for scripts, systemd
//! and Kubernetes probes — exit 0 when ready, 1 with the reasons.

use std::time::Duration;

/// Asks `url`'s `/-/ready`; returns whether the instance is ready and
/// what to print (its answer, or why it could not be asked).
pub fn check_health(url: &str, timeout: Duration) -> (bool, String) {
    let url = format!("{}/-/ready", url.trim_end_matches('/'));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return (false, format!("cannot start: {e}")),
    };
    rt.block_on(async {
        let client = match crate::net::build_client(None) {
            Ok(c) => c,
            Err(e) => return (false, format!("cannot build an HTTP client: {e}")),
        };
        match client.get(&url).timeout(timeout).send().await {
            Ok(r) => {
                let ok = r.status().is_success();
                let status = r.status();
                let body = crate::net::read_reply(r).await;
                let body = String::from_utf8_lossy(&body);
                let body = body.trim();
                if ok {
                    (true, body.to_string())
                } else if body.is_empty() {
                    (false, format!("{url}: HTTP {status}"))
                } else {
                    (false, body.to_string())
                }
            }
            Err(e) => (
                false,
                format!("cannot reach {url}: {}", crate::net::error_chain(&e)),
            ),
        }
    })
}
