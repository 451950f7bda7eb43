//! argus accepts and refuses the same YAML files as promtool 2.42 and
//! amtool 0.25: variants generated from a valid rule file, prometheus.yml,
//! alertmanager.yml and web configuration file by setting every key in turn to null, `~`,
//! nothing, an empty string, list or mapping, a number, a list, a mapping,
//! leaving it out, writing it twice, and adding an unknown key beside it.
//! Unit-test files generated the same way run under `argus test rules`
//! and `promtool test rules` with the same outcome.
//! Needs `promtool` and `amtool` on PATH (the Debian packages `prometheus`
//! and `prometheus-alertmanager`); run with `cargo test --features compat
//! --test compat_yaml`.
#![cfg(feature = "compat")]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A YAML document built for the variants: mappings keep their order and
/// may repeat a key; a scalar is written as given (`""` writes nothing
/// after the colon).
#[derive(Clone, Debug)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Raw(String),
}

fn raw(s: &str) -> Node {
    Node::Raw(s.to_string())
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn emit(n: &Node, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match n {
        Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Node::Raw(s) if s.is_empty() => out.push('\n'),
        Node::Raw(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Node::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&format!("{pad}{k}:"));
                emit(v, indent + 2, out);
            }
        }
        Node::Seq(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&format!("{pad}-"));
                match item {
                    // A mapping item starts on the dash's line.
                    Node::Map(entries) if !entries.is_empty() => {
                        let mut inner = String::new();
                        emit(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => emit(item, indent + 2, out),
                }
            }
        }
    }
}

fn document(n: &Node) -> String {
    let mut s = String::new();
    emit(n, 0, &mut s);
    s.trim_start().to_string()
}

/// A step into a node: a key of a mapping or an index of a list.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every key path of `n`.
fn key_paths(n: &Node, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match n {
        Node::Map(entries) => {
            for (k, v) in entries {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                key_paths(v, at, out);
                at.pop();
            }
        }
        Node::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                at.push(Step::Index(i));
                key_paths(v, at, out);
                at.pop();
            }
        }
        Node::Raw(_) => {}
    }
}

/// Applies `f` to the mapping that holds the last key of `path`, with
/// that key's index.
/// A mapping's entries, in order.
type Entries = Vec<(String, Node)>;

fn edit(n: &mut Node, path: &[Step], f: &mut dyn FnMut(&mut Entries, usize)) {
    match (n, path) {
        (Node::Map(entries), [Step::Key(k)]) => {
            if let Some(i) = entries.iter().position(|(e, _)| e == k) {
                f(entries, i);
            }
        }
        (Node::Map(entries), [Step::Key(k), rest @ ..]) => {
            if let Some((_, v)) = entries.iter_mut().find(|(e, _)| e == k) {
                edit(v, rest, f);
            }
        }
        (Node::Seq(items), [Step::Index(i), rest @ ..]) => {
            if let Some(v) = items.get_mut(*i) {
                edit(v, rest, f);
            }
        }
        _ => {}
    }
}

fn path_text(path: &[Step]) -> String {
    path.iter()
        .map(|s| match s {
            Step::Key(k) => format!(".{k}"),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// Every variant of `base`: (what was changed, the document).
fn variants(base: &Node) -> Vec<(String, String)> {
    let mut paths = Vec::new();
    key_paths(base, &mut Vec::new(), &mut paths);
    let mut out = vec![("unchanged".to_string(), document(base))];
    for p in &paths {
        let name = path_text(p);
        for value in [
            "null", "~", "", "\"\"", "[]", "{}", "5", "[a]", "{a: b}", "true",
        ] {
            let mut n = base.clone();
            edit(&mut n, p, &mut |entries, i| entries[i].1 = raw(value));
            out.push((format!("{name} = {value:?}"), document(&n)));
        }
        let mut n = base.clone();
        edit(&mut n, p, &mut |entries, i| {
            entries.remove(i);
        });
        out.push((format!("{name} left out"), document(&n)));
        let mut n = base.clone();
        edit(&mut n, p, &mut |entries, i| {
            let dup = entries[i].clone();
            entries.insert(i + 1, dup);
        });
        out.push((format!("{name} twice"), document(&n)));
        for unknown in ["bogus_key: 1", "bogus_key:"] {
            let mut n = base.clone();
            edit(&mut n, p, &mut |entries, i| {
                let (k, v) = unknown.split_once(':').unwrap_or_default();
                entries.insert(i + 1, (k.to_string(), raw(v.trim())));
            });
            out.push((format!("{unknown:?} beside {name}"), document(&n)));
        }
    }
    // The whole document null, empty, or a list.
    for doc in ["null\n", "~\n", "", "[]\n"] {
        out.push((format!("document {doc:?}"), doc.to_string()));
    }
    out.sort();
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

/// Exit status of a command, as accepted or not.
fn accepts(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Runs each variant under both tools; returns how many were compared,
/// how many `skip` left out, and the disagreements.
fn compare(
    base: &Node,
    file: &str,
    dir: &Path,
    theirs: &dyn Fn(&Path) -> Command,
    ours: &dyn Fn(&Path) -> Command,
    skip: &dyn Fn(&str) -> bool,
) -> (usize, usize, Vec<String>) {
    let mut n = 0;
    let mut skipped = 0;
    let mut bad = Vec::new();
    for (what, text) in variants(base) {
        if skip(&what) {
            skipped += 1;
            continue;
        }
        let f = dir.join(file);
        std::fs::write(&f, &text).unwrap();
        let (t_ok, t_out) = accepts(&mut theirs(&f));
        let (o_ok, o_out) = accepts(&mut ours(&f));
        n += 1;
        if t_ok != o_ok {
            bad.push(format!(
                "{file}: {what}: reference {} / argus {}\n--- file\n{text}--- reference\n{t_out}--- argus\n{o_out}",
                if t_ok { "accepts" } else { "refuses" },
                if o_ok { "accepts" } else { "refuses" },
            ));
        } else if t_ok {
            // Same rule count when both accept a rule file.
            let count = |s: &str| {
                s.lines()
                    .find_map(|l| l.trim().strip_prefix("SUCCESS: "))
                    .map(|r| r.split(' ').next().unwrap_or("").to_string())
            };
            if file.ends_with("rules.yml") && count(&t_out) != count(&o_out) {
                bad.push(format!(
                    "{file}: {what}: rule counts differ\n{text}--- reference\n{t_out}--- argus\n{o_out}"
                ));
            }
        }
    }
    (n, skipped, bad)
}

fn rule_file() -> Node {
    map(vec![(
        "groups",
        Node::Seq(vec![map(vec![
            ("name", raw("g")),
            ("interval", raw("1m")),
            (
                "rules",
                Node::Seq(vec![
                    map(vec![
                        ("alert", raw("HighErrors")),
                        ("expr", raw("up == 0")),
                        ("for", raw("5m")),
                        ("labels", map(vec![("severity", raw("page"))])),
                        ("annotations", map(vec![("summary", raw("down"))])),
                    ]),
                    map(vec![
                        ("record", raw("job:up:sum")),
                        ("expr", raw("sum by (job) (up)")),
                        ("labels", map(vec![("team", raw("sre"))])),
                    ]),
                ]),
            ),
        ])]),
    )])
}

/// Scrape configs naming files that promtool (without `--syntax-only`)
/// requires to exist, or does not look at.
fn files_yml() -> Node {
    let job = |name: &str, extra: Vec<(&str, Node)>| {
        let mut e = vec![("job_name", raw(name))];
        e.extend(extra);
        e.push((
            "static_configs",
            Node::Seq(vec![map(vec![("targets", Node::Seq(vec![raw("'a:1'")]))])]),
        ));
        map(e)
    };
    map(vec![(
        "scrape_configs",
        Node::Seq(vec![
            job(
                "credentials",
                vec![(
                    "authorization",
                    map(vec![("credentials_file", raw("present.token"))]),
                )],
            ),
            job("bearer", vec![("bearer_token_file", raw("missing.token"))]),
            job(
                "client_cert",
                vec![(
                    "tls_config",
                    map(vec![
                        ("cert_file", raw("missing.crt")),
                        ("key_file", raw("present.token")),
                        ("ca_file", raw("missing.ca")),
                    ]),
                )],
            ),
            job(
                "password",
                vec![(
                    "basic_auth",
                    map(vec![
                        ("username", raw("u")),
                        ("password_file", raw("missing.password")),
                    ]),
                )],
            ),
        ]),
    )])
}

fn prometheus_yml() -> Node {
    map(vec![
        (
            "global",
            map(vec![
                ("scrape_interval", raw("15s")),
                ("scrape_timeout", raw("10s")),
                ("evaluation_interval", raw("15s")),
                ("external_labels", map(vec![("site", raw("a"))])),
            ]),
        ),
        ("rule_files", Node::Seq(vec![raw("rules.yml")])),
        (
            "scrape_configs",
            Node::Seq(vec![map(vec![
                ("job_name", raw("j")),
                ("scrape_interval", raw("30s")),
                ("metrics_path", raw("/metrics")),
                ("honor_labels", raw("true")),
                (
                    "static_configs",
                    Node::Seq(vec![map(vec![
                        ("targets", Node::Seq(vec![raw("'localhost:9090'")])),
                        ("labels", map(vec![("env", raw("prod"))])),
                    ])]),
                ),
                (
                    "http_sd_configs",
                    Node::Seq(vec![map(vec![
                        ("url", raw("'http://127.0.0.1:1/sd'")),
                        ("refresh_interval", raw("30s")),
                        (
                            "basic_auth",
                            map(vec![("username", raw("u")), ("password", raw("p"))]),
                        ),
                    ])]),
                ),
                (
                    "dns_sd_configs",
                    Node::Seq(vec![map(vec![
                        ("names", Node::Seq(vec![raw("_metrics._tcp.example.org")])),
                        ("type", raw("A")),
                        ("port", raw("9100")),
                        ("refresh_interval", raw("30s")),
                    ])]),
                ),
                (
                    "relabel_configs",
                    Node::Seq(vec![map(vec![
                        ("source_labels", Node::Seq(vec![raw("env")])),
                        ("regex", raw("(.*)")),
                        ("target_label", raw("stage")),
                        ("action", raw("replace")),
                    ])]),
                ),
            ])]),
        ),
    ])
}

fn alertmanager_yml() -> Node {
    map(vec![
        ("global", map(vec![("resolve_timeout", raw("5m"))])),
        (
            "route",
            map(vec![
                ("receiver", raw("team")),
                ("group_by", Node::Seq(vec![raw("alertname")])),
                ("group_wait", raw("30s")),
                (
                    "routes",
                    Node::Seq(vec![map(vec![
                        ("receiver", raw("pager")),
                        ("matchers", Node::Seq(vec![raw("'severity=\"page\"'")])),
                    ])]),
                ),
            ]),
        ),
        (
            "receivers",
            Node::Seq(vec![
                map(vec![
                    ("name", raw("team")),
                    (
                        "webhook_configs",
                        Node::Seq(vec![map(vec![
                            ("url", raw("'http://127.0.0.1:1/hook'")),
                            ("send_resolved", raw("true")),
                        ])]),
                    ),
                ]),
                map(vec![
                    ("name", raw("pager")),
                    (
                        "opsgenie_configs",
                        Node::Seq(vec![map(vec![
                            ("api_key", raw("k3y")),
                            ("api_url", raw("'http://127.0.0.1:1/'")),
                            ("message", raw("'{{ .CommonLabels.alertname }}'")),
                            ("tags", raw("'db,{{ .CommonLabels.team }}'")),
                            ("priority", raw("P1")),
                            ("update_alerts", raw("true")),
                            ("details", map(vec![("runbook", raw("r"))])),
                            (
                                "responders",
                                Node::Seq(vec![map(vec![
                                    ("name", raw("dba")),
                                    ("type", raw("team")),
                                ])]),
                            ),
                        ])]),
                    ),
                    (
                        "victorops_configs",
                        Node::Seq(vec![map(vec![
                            ("api_key", raw("k3y")),
                            ("routing_key", raw("db")),
                            ("message_type", raw("WARNING")),
                            ("custom_fields", map(vec![("team", raw("t"))])),
                        ])]),
                    ),
                    (
                        "sns_configs",
                        Node::Seq(vec![map(vec![
                            ("api_url", raw("'http://127.0.0.1:1/'")),
                            ("topic_arn", raw("'arn:aws:sns:us-east-2:1:t'")),
                            ("subject", raw("'{{ .CommonLabels.alertname }}'")),
                            (
                                "sigv4",
                                map(vec![
                                    ("region", raw("us-east-2")),
                                    ("access_key", raw("AKID")),
                                    ("secret_key", raw("s3cr3t")),
                                ]),
                            ),
                            ("attributes", map(vec![("team", raw("t"))])),
                        ])]),
                    ),
                    (
                        "wechat_configs",
                        Node::Seq(vec![map(vec![
                            ("api_secret", raw("s3cr3t")),
                            ("corp_id", raw("corp")),
                            ("api_url", raw("'http://127.0.0.1:1/cgi-bin/'")),
                            ("to_party", raw("'2'")),
                            ("agent_id", raw("'1000002'")),
                            ("message_type", raw("markdown")),
                        ])]),
                    ),
                    (
                        "pushover_configs",
                        Node::Seq(vec![map(vec![
                            ("user_key", raw("u-key")),
                            ("token", raw("t-key")),
                            ("title", raw("'{{ .Status }}'")),
                            ("priority", raw("'1'")),
                            ("retry", raw("30s")),
                            ("expire", raw("2h")),
                            ("sound", raw("siren")),
                            ("html", raw("true")),
                        ])]),
                    ),
                ]),
            ]),
        ),
        (
            "inhibit_rules",
            Node::Seq(vec![map(vec![
                ("source_matchers", Node::Seq(vec![raw("'a=\"b\"'")])),
                ("target_matchers", Node::Seq(vec![raw("'c=\"d\"'")])),
                ("equal", Node::Seq(vec![raw("x")])),
            ])]),
        ),
    ])
}

/// A unit-test file for `rule_file()` that passes.
fn unit_test_file() -> Node {
    map(vec![
        ("rule_files", Node::Seq(vec![raw("rules.yml")])),
        ("evaluation_interval", raw("1m")),
        (
            "tests",
            Node::Seq(vec![map(vec![
                ("interval", raw("1m")),
                (
                    "input_series",
                    Node::Seq(vec![map(vec![
                        ("series", raw("'up{job=\"a\"}'")),
                        ("values", raw("'0x10'")),
                    ])]),
                ),
                (
                    "alert_rule_test",
                    Node::Seq(vec![map(vec![
                        ("eval_time", raw("10m")),
                        ("alertname", raw("HighErrors")),
                        (
                            "exp_alerts",
                            Node::Seq(vec![map(vec![
                                (
                                    "exp_labels",
                                    map(vec![("severity", raw("page")), ("job", raw("a"))]),
                                ),
                                ("exp_annotations", map(vec![("summary", raw("down"))])),
                            ])]),
                        ),
                    ])]),
                ),
                (
                    "promql_expr_test",
                    Node::Seq(vec![map(vec![
                        ("expr", raw("up")),
                        ("eval_time", raw("1m")),
                        (
                            "exp_samples",
                            Node::Seq(vec![map(vec![
                                ("labels", raw("'up{job=\"a\"}'")),
                                ("value", raw("0")),
                            ])]),
                        ),
                    ])]),
                ),
            ])]),
        ),
    ])
}

/// A web configuration file (`--web.config.file`) with every key
/// exporter-toolkit 0.8 (Prometheus 2.42's) reads; the certificate, key
/// and CA files it names are written beside it by the test.
fn web_config_yml() -> Node {
    map(vec![
        (
            "tls_server_config",
            map(vec![
                ("cert_file", raw("server.crt")),
                ("key_file", raw("server.key")),
                ("client_auth_type", raw("RequireAndVerifyClientCert")),
                ("client_ca_file", raw("ca.crt")),
                (
                    "cipher_suites",
                    Node::Seq(vec![raw("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")]),
                ),
                ("curve_preferences", Node::Seq(vec![raw("X25519")])),
                ("min_version", raw("TLS12")),
                ("max_version", raw("TLS13")),
                ("prefer_server_cipher_suites", raw("true")),
            ]),
        ),
        (
            "http_server_config",
            map(vec![
                ("http2", raw("true")),
                (
                    "headers",
                    map(vec![
                        ("X-Frame-Options", raw("deny")),
                        ("Content-Security-Policy", raw("\"default-src 'self'\"")),
                    ]),
                ),
            ]),
        ),
        (
            "basic_auth_users",
            map(vec![(
                "alice",
                raw("$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG"),
            )]),
        ),
    ])
}

/// A CA, and a server certificate and key it signed, as `ca.crt`,
/// `server.crt` and `server.key` in `dir`.
fn write_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

fn argus(args: &'static [&'static str]) -> impl Fn(&Path) -> Command {
    move |f| {
        let mut c = Command::new(argus_bin());
        c.args(args).arg(f);
        c
    }
}

fn tool(bin: &'static str, args: &'static [&'static str]) -> impl Fn(&Path) -> Command {
    move |f| {
        let mut c = Command::new(bin);
        c.args(args).arg(f);
        c
    }
}

#[test]
fn yaml_verdicts_match_promtool_and_amtool() {
    let dir = tempfile::tempdir().unwrap();
    // The rule file prometheus.yml and the unit tests name.
    std::fs::write(dir.path().join("rules.yml"), document(&rule_file())).unwrap();
    let mut total = 0;
    let mut skipped = 0;
    let mut bad = Vec::new();
    let mut run = |(n, s, b): (usize, usize, Vec<String>)| {
        total += n;
        skipped += s;
        bad.extend(b);
    };
    run(compare(
        &rule_file(),
        "v-rules.yml",
        dir.path(),
        &tool("promtool", &["check", "rules"]),
        // promtool 2.42 checks names as Prometheus 2 did.
        &argus(&["check", "rules", "--validation-scheme", "legacy"]),
        &|_| false,
    ));
    run(compare(
        &prometheus_yml(),
        "prometheus.yml",
        dir.path(),
        &tool("promtool", &["check", "config", "--syntax-only"]),
        &argus(&["check", "config", "--syntax-only"]),
        // argus takes Prometheus 3's UTF-8 label names in relabeling;
        // Prometheus 2.42 refuses a target label that is not a legacy name.
        &|what| what.ends_with("target_label = \"5\""),
    ));
    // Without --syntax-only, both check that the credentials and client
    // certificate files named exist (and neither checks CA or password
    // files): one existing and one missing file of each kind.
    std::fs::write(dir.path().join("present.token"), "t").unwrap();
    run(compare(
        &files_yml(),
        "files.yml",
        dir.path(),
        &tool("promtool", &["check", "config"]),
        &argus(&["check", "config"]),
        &|_| false,
    ));
    run(compare(
        &alertmanager_yml(),
        "alertmanager.yml",
        dir.path(),
        &tool("amtool", &["check-config"]),
        &argus(&["check", "alertmanager"]),
        &|_| false,
    ));
    write_pki(dir.path());
    run(compare(
        &web_config_yml(),
        "web.yml",
        dir.path(),
        &tool("promtool", &["check", "web-config"]),
        &argus(&["check", "web-config"]),
        &|_| false,
    ));
    run(compare(
        &unit_test_file(),
        "tests.yml",
        dir.path(),
        &tool("promtool", &["test", "rules"]),
        &argus(&["test", "rules"]),
        // Prometheus 3's promtool runs a group without an interval at the
        // evaluation interval (its testdata no-test-group-interval.yml),
        // which argus follows; 2.42's loads every sample at 0.
        &|what| {
            ["left out", "= \"null\"", "= \"~\"", "= \"\""]
                .iter()
                .any(|v| what == format!(".tests[0].interval {v}"))
        },
    ));
    println!(
        "{total} generated variants compared ({skipped} skipped: Prometheus 3 behaviour), {} disagreements",
        bad.len()
    );
    assert!(total > 1000, "{total} variants");
    assert!(
        bad.is_empty(),
        "{} disagreements:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The prometheus.yml Debian's `prometheus` package installs (with an
/// empty `rule_files:`) passes `check config` and runs unchanged.
#[test]
fn debian_default_prometheus_yml_runs_unchanged() {
    let cfg = Path::new("/etc/prometheus/prometheus.yml");
    let (ok, out) = accepts(Command::new(argus_bin()).args(["check", "config"]).arg(cfg));
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 2 scrape config(s)"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let argus = Argus::spawn(dir.path(), cfg, free_port(), &[]);
    let jobs: Vec<String> = argus.api("/api/v1/targets")["activeTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scrapePool"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        jobs.contains(&"prometheus".to_string()) && jobs.contains(&"node".to_string()),
        "{jobs:?}"
    );
}

/// `argus check rules` prints and exits as `promtool check rules` does
/// with each lint flag, on a file with duplicate rules.
#[test]
fn check_rules_lint_matches_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dup.yml");
    let mut rf = rule_file();
    edit(
        &mut rf,
        &[
            Step::Key("groups".into()),
            Step::Index(0),
            Step::Key("rules".into()),
        ],
        &mut |entries, i| {
            if let Node::Seq(rules) = &mut entries[i].1 {
                let copies: Vec<Node> = rules.clone();
                rules.extend(copies);
            }
        },
    );
    std::fs::write(&f, document(&rf)).unwrap();
    for flags in [
        &[][..],
        &["--lint=none"],
        &["--lint=all"],
        &["--lint=duplicate-rules", "--lint-fatal"],
        &["--lint=none", "--lint-fatal"],
    ] {
        let run = |bin: &str, legacy: bool| {
            let mut c = Command::new(bin);
            c.args(["check", "rules"]).args(flags);
            if legacy {
                c.args(["--validation-scheme", "legacy"]);
            }
            let o = c.arg(&f).current_dir(dir.path()).output().unwrap();
            (
                o.status.code(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let ours = run(argus_bin(), true);
        let theirs = run("promtool", false);
        assert_eq!(ours, theirs, "{flags:?}");
    }
}

/// The shipped alerting/alertmanager.yml is Alertmanager's format: amtool
/// 0.25 refuses only the webhook's `url_file` (newer than 0.25), and
/// accepts the file once that key is written as `url`.
#[test]
fn shipped_alertmanager_yml_passes_amtool_but_for_url_file() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("alerting");
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&shipped, dir.path());
    let f = dir.path().join("alertmanager.yml");
    let (ok, out) = accepts(Command::new("amtool").arg("check-config").arg(&f));
    assert!(!ok, "{out}");
    let errors: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("line "))
        .collect();
    assert_eq!(errors.len(), 1, "{out}");
    assert!(errors[0].contains("field url_file not found"), "{out}");
    let text = std::fs::read_to_string(&f).unwrap();
    let n = text.matches("url_file: secrets/deadman_url").count();
    assert_eq!(n, 1, "the webhook's url_file");
    std::fs::write(
        &f,
        text.replace(
            "url_file: secrets/deadman_url",
            "url: 'http://127.0.0.1:1/deadman'",
        ),
    )
    .unwrap();
    let (ok, out) = accepts(Command::new("amtool").arg("check-config").arg(&f));
    assert!(ok, "{out}");
}
