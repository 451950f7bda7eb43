//! `--web.config.file`: the web configuration file of Prometheus's
//! exporter toolkit (TLS, basic auth users, response headers), in the
//! version Prometheus 2.42 reads. This module reads and checks the file;
//! `api::web_file` serves with it.
//!
//! Checked here, as `promtool check web-config` checks it: unknown and
//! duplicate keys, header names and values, the form of each bcrypt hash,
//! TLS versions, cipher suite and curve names, the client auth policy,
//! and that a TLS section names both a certificate and a key. Whether
//! those files load is checked where the TLS settings are built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, ConfigErrors, Pos, Positions, Secret, yaml, yaml_error_parts};

/// The whole web configuration file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebFile {
    /// TLS for the listener; absent (or without certificate, key, client
    /// auth and client CA) means plain HTTP.
    #[serde(default)]
    pub tls_server_config: TlsServer,
    /// HTTP settings.
    #[serde(default)]
    pub http_server_config: HttpServer,
    /// User name to bcrypt hash; when not empty, every request needs basic
    /// auth with one of them.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, Secret>,
    /// Directory relative file names are resolved against (the file's).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// `tls_server_config`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    /// The server's certificate chain (PEM).
    #[serde(default)]
    pub cert_file: String,
    /// The server's private key (PEM).
    #[serde(default)]
    pub key_file: String,
    /// Go's client auth policy name; empty is `NoClientCert`.
    #[serde(default)]
    pub client_auth_type: String,
    /// CAs client certificates are verified against (PEM).
    #[serde(default)]
    pub client_ca_file: String,
    /// TLS 1.2 cipher suites by Go's names; empty is the library's choice.
    #[serde(default)]
    pub cipher_suites: Vec<String>,
    /// Key exchange groups by Go's names, in preference order.
    #[serde(default)]
    pub curve_preferences: Vec<String>,
    /// `TLS10` … `TLS13`; unset is `TLS12`.
    #[serde(default)]
    pub min_version: Option<String>,
    /// `TLS10` … `TLS13`; unset is `TLS13`.
    #[serde(default)]
    pub max_version: Option<String>,
    /// Whether the server's cipher suite order wins (default true).
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<bool>,
}

/// `http_server_config`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServer {
    /// Accepted for compatibility: argus speaks HTTP/1.1 only.
    #[serde(default)]
    pub http2: Option<bool>,
    /// Security headers added to every response.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A client certificate policy, as Go's `tls.ClientAuthType` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    None,
    /// Asked for, not required, not verified.
    Request,
    /// Required, not verified.
    RequireAny,
    /// Verified when given.
    VerifyIfGiven,
    /// Required and verified.
    RequireAndVerify,
}

/// The headers the file may set, with the values allowed (any when empty).
const HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The TLS 1.2 and 1.3 cipher suites Go calls secure, by its names (the
/// only ones the file may name). [`supported_cipher`] says which argus
/// can offer.
pub const CIPHER_SUITES: [&str; 17] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
];

/// Curve names the file may give.
pub const CURVES: [&str; 4] = ["CurveP256", "CurveP384", "CurveP521", "X25519"];

/// A TLS version name as a number (`TLS12` → 12).
pub fn tls_version(s: &str) -> Option<u8> {
    match s {
        "TLS10" => Some(10),
        "TLS11" => Some(11),
        "TLS12" => Some(12),
        "TLS13" => Some(13),
        _ => None,
    }
}

impl TlsServer {
    /// False when the section asks for nothing: the listener stays plain
    /// HTTP.
    pub fn enabled(&self) -> bool {
        !(self.cert_file.is_empty()
            && self.key_file.is_empty()
            && self.client_auth_type.is_empty()
            && self.client_ca_file.is_empty())
    }

    /// The client certificate policy (checked by [`parse_web_file`]).
    pub fn client_auth(&self) -> ClientAuth {
        match self.client_auth_type.as_str() {
            "RequestClientCert" => ClientAuth::Request,
            // Go keeps the old name too.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAny,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
            _ => ClientAuth::None,
        }
    }

    /// Lowest and highest version allowed, as numbers.
    pub fn versions(&self) -> (u8, u8) {
        let v = |s: &Option<String>, d| s.as_deref().and_then(tls_version).unwrap_or(d);
        (v(&self.min_version, 12), v(&self.max_version, 13))
    }
}

impl WebFile {
    /// A file name from the config, resolved against its directory.
    pub fn path(&self, p: &str) -> PathBuf {
        if Path::new(p).is_relative() {
            self.dir.join(p)
        } else {
            PathBuf::from(p)
        }
    }
}

/// Whether `hash` has the form Go's bcrypt accepts (`$2a$10$…`, at least
/// 59 bytes, a cost from 4 to 31); the reason when not.
pub fn check_bcrypt(hash: &str) -> Result<(), String> {
    let b = hash.as_bytes();
    if b.len() < 59 {
        return Err("the bcrypt hash is too short (at least 59 characters)".into());
    }
    if b[0] != b'$' || b[1] > b'2' {
        return Err("not a bcrypt hash: it must start with $2a$, $2b$ or $2y$".into());
    }
    // `$2$` has no minor letter; the cost follows the version's `$`.
    let rest = if b[2] == b'$' { &b[3..] } else { &b[4..] };
    let cost = std::str::from_utf8(&rest[..2])
        .ok()
        .and_then(|s| s.parse::<u32>().ok());
    match cost {
        Some(c) if (4..=31).contains(&c) => Ok(()),
        Some(c) => Err(format!("bcrypt cost {c} is outside 4..31")),
        None => Err("the bcrypt hash has no cost".into()),
    }
}

/// Reads and checks a web configuration file.
pub fn load_web_file(path: &Path) -> Result<WebFile, ConfigErrors> {
    let (name, src) = super::read_config_file(path)?;
    let mut w = parse_web_file(&src, &name)?;
    w.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(w)
}

/// Parses and checks web configuration text; `file` names it in errors.
pub fn parse_web_file(src: &str, file: &str) -> Result<WebFile, ConfigErrors> {
    let positions = Positions::index(src);
    let at = |path: &str, msg: String, pos: Option<Pos>| ConfigError {
        file: file.to_string(),
        pos: pos.or_else(|| {
            positions
                .value_of_path(path)
                .or_else(|| positions.of_path(path))
        }),
        path: path.to_string(),
        msg,
    };
    let w: WebFile = yaml::from_str(src).map_err(|e| {
        let (pos, path, msg) = yaml_error_parts(&e, &positions);
        ConfigErrors(vec![at(&path, msg, pos)])
    })?;
    let mut errs = Vec::new();
    let mut err = |path: String, msg: String| errs.push(at(&path, msg, None));
    for (k, v) in &w.http_server_config.headers {
        let path = format!("http_server_config.headers.{k}");
        match HEADERS.iter().find(|(name, _)| name == k) {
            None => err(path, format!("HTTP header {k:?} can not be configured")),
            Some((_, allowed)) if !allowed.is_empty() && !allowed.contains(&v.as_str()) => err(
                path,
                format!("invalid value for {k}: expected one of {allowed:?}, got {v:?}"),
            ),
            Some(_) => {}
        }
    }
    for (user, hash) in &w.basic_auth_users {
        if let Err(m) = check_bcrypt(hash.expose()) {
            err(format!("basic_auth_users.{user}"), m);
        }
    }
    let t = &w.tls_server_config;
    for (key, v) in [
        ("min_version", &t.min_version),
        ("max_version", &t.max_version),
    ] {
        if let Some(s) = v.as_deref().filter(|s| tls_version(s).is_none()) {
            err(
                format!("tls_server_config.{key}"),
                format!("unknown TLS version {s:?} (TLS10, TLS11, TLS12 or TLS13)"),
            );
        }
    }
    for (i, c) in t.cipher_suites.iter().enumerate() {
        if !CIPHER_SUITES.contains(&c.as_str()) {
            err(
                format!("tls_server_config.cipher_suites[{i}]"),
                format!("unknown cipher suite {c:?}"),
            );
        }
    }
    for (i, c) in t.curve_preferences.iter().enumerate() {
        if !CURVES.contains(&c.as_str()) {
            err(
                format!("tls_server_config.curve_preferences[{i}]"),
                format!("unknown curve {c:?} (CurveP256, CurveP384, CurveP521 or X25519)"),
            );
        }
    }
    if t.enabled() {
        if t.cert_file.is_empty() {
            err("tls_server_config".into(), "missing cert_file".into());
        }
        if t.key_file.is_empty() {
            err("tls_server_config".into(), "missing key_file".into());
        }
        let known = [
            "",
            "NoClientCert",
            "RequestClientCert",
            "RequireAnyClientCert",
            "RequireClientCert",
            "VerifyClientCertIfGiven",
            "RequireAndVerifyClientCert",
        ];
        if !known.contains(&t.client_auth_type.as_str()) {
            err(
                "tls_server_config.client_auth_type".into(),
                format!(
                    "invalid client_auth_type {:?} (NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert)",
                    t.client_auth_type
                ),
            );
        } else if !t.client_ca_file.is_empty() && t.client_auth() == ClientAuth::None {
            err(
                "tls_server_config.client_ca_file".into(),
                "client_ca_file is set without a client_auth_type that asks for client certificates".into(),
            );
        }
    }
    if errs.is_empty() {
        Ok(w)
    } else {
        Err(ConfigErrors(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    #[test]
    fn reads_what_the_exporter_toolkit_reads() {
        let w = parse_web_file(
            &format!(
                "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n  curve_preferences: [X25519]\nhttp_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\nbasic_auth_users:\n  alice: {HASH}\n"
            ),
            "web.yml",
        )
        .unwrap();
        assert!(w.tls_server_config.enabled());
        assert_eq!(
            w.tls_server_config.client_auth(),
            ClientAuth::RequireAndVerify
        );
        assert_eq!(w.tls_server_config.versions(), (13, 13));
        assert_eq!(w.basic_auth_users["alice"].expose(), HASH);
        // Empty, null and only-comments files are an empty config.
        for src in [
            "",
            "null",
            "# nothing\n",
            "tls_server_config:\nbasic_auth_users: ~\n",
        ] {
            let w = parse_web_file(src, "web.yml").unwrap();
            assert!(!w.tls_server_config.enabled(), "{src:?}");
            assert!(w.basic_auth_users.is_empty());
        }
    }

    #[test]
    fn refusals_name_the_place() {
        for (src, want) in [
            ("tls_server_config:\n  cert: x\n", "web.yml:2:3"),
            (
                "http_server_config:\n  headers:\n    Server: argus\n",
                "web.yml:3:13: http_server_config.headers.Server: HTTP header \"Server\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                "invalid value for X-Frame-Options",
            ),
            (
                "basic_auth_users:\n  bob: plain\n",
                "web.yml:2:8: basic_auth_users.bob: the bcrypt hash is too short",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
                "web.yml:4:16: tls_server_config.min_version: unknown TLS version \"TLS14\"",
            ),
            (
                "tls_server_config:\n  cert_file: a\n",
                "tls_server_config: missing key_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "client_ca_file is set without a client_auth_type",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n",
                "invalid client_auth_type \"Maybe\"",
            ),
            (
                "tls_server_config:\n  cipher_suites: [TLS_RC4]\n",
                "tls_server_config.cipher_suites[0]: unknown cipher suite",
            ),
            ("basic_auth_users:\n  a: x\n  a: y\n", "web.yml:3:3"),
        ] {
            let e = parse_web_file(src, "web.yml").unwrap_err().to_string();
            assert!(e.contains(want), "{src:?}: {e}");
        }
    }

    #[test]
    fn bcrypt_forms() {
        assert!(check_bcrypt(HASH).is_ok());
        assert!(check_bcrypt(&HASH.replace("$10$", "$03$")).is_err());
        assert!(check_bcrypt(&HASH.replace("$2y$", "$3y$")).is_err());
        assert!(check_bcrypt("$2y$10$short").is_err());
    }
}
