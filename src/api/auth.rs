//! `web.auth`: the credentials argus's write endpoints (posting alerts,
//! silences, reload) require. Compared in constant time over SHA-256
//! digests, so neither the content nor the length of a secret leaks
//! through timing; secrets in files are read per request.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::ApiState;
use crate::config::{Secret, WebAuth, read_secret_file};

/// Equality of two byte strings in time independent of where they
/// differ and of their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

fn secret(inline: &Option<Secret>, file: &Option<String>) -> Option<Secret> {
    match (inline, file) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(f)) => match read_secret_file(f) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot read a web.auth secret; refusing writes");
                None
            }
        },
        _ => None,
    }
}

/// Whether `headers` carry the credentials `auth` asks for.
fn authorized(auth: &WebAuth, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let (scheme, value) = given.split_once(' ').unwrap_or((given, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if let Some(t) = secret(&auth.bearer_token, &auth.bearer_token_file) {
            return !t.is_empty() && constant_time_eq(value.as_bytes(), t.expose().as_bytes());
        }
    }
    if scheme.eq_ignore_ascii_case("basic") {
        if let (Some(b), Some(raw)) = (&auth.basic_auth, crate::model::base64_decode(value)) {
            if let Some(pw) = secret(&b.password, &b.password_file) {
                let want = format!("{}:{}", b.username, pw.expose());
                return constant_time_eq(&raw, want.as_bytes());
            }
        }
    }
    false
}

/// `Ok` when the request may write; otherwise the 401 to answer with.
pub(crate) fn check_write(st: &ApiState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let auth = st
        .config
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .config
        .web
        .auth
        .clone();
    match auth {
        None => Ok(()),
        Some(a) if authorized(&a, headers) => Ok(()),
        Some(a) => {
            let challenge = if a.basic_auth.is_some() {
                "Basic realm=\"argus\""
            } else {
                "Bearer"
            };
            Err(Box::new(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, challenge)],
                    "unauthorized\n",
                )
                    .into_response(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_credentials() {
        let auth = WebAuth {
            bearer_token: Some(Secret::new("t0ken")),
            bearer_token_file: None,
            basic_auth: Some(crate::config::BasicAuth {
                username: "admin".into(),
                password: Some(Secret::new("pw")),
                password_file: None,
            }),
        };
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, v.parse().unwrap());
            m
        };
        assert!(authorized(&auth, &h("Bearer t0ken")));
        assert!(!authorized(&auth, &h("Bearer t0ke")));
        // admin:pw
        assert!(authorized(&auth, &h("Basic YWRtaW46cHc=")));
        // admin:px
        assert!(!authorized(&auth, &h("Basic YWRtaW46cHg=")));
        assert!(!authorized(&auth, &HeaderMap::new()));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
