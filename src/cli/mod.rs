//! Subcommands: `run` (the daemon), `check config`, `check rules`,
//! `check health`, `test rules`, `config routes` and `import openmetrics`.

mod health;
mod import;
mod routes;
mod run;
mod slo;
mod template;
mod test_rules;

pub use health::check_health;
pub use import::{ImportError, ImportSummary, import_openmetrics};
pub use routes::{RoutesError, routes_show, routes_test};
pub use run::{RunError, RunOptions, route_prefix, run};
pub use slo::{SloCliError, SloGenerateArgs, check_slo, slo_generate};
pub use template::{TemplateRenderError, template_render};
pub use test_rules::{TestRulesArgs, TestRulesError, junit_xml, test_rules, untested_alerts};

use std::path::Path;

use crate::config::Config;

/// Which lint checks `argus check rules` applies (promtool's `--lint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lint {
    /// None.
    None,
    /// Rules with the same name and labels (the default).
    DuplicateRules,
    /// Every check (today the duplicate-rules one).
    All,
}

/// How `argus check rules` checks, as promtool's flags set it.
#[derive(Clone, Copy, Debug)]
pub struct CheckRulesOptions {
    /// Metric and label name rules.
    pub names: crate::rules::NameValidation,
    /// Lint checks.
    pub lint: Lint,
    /// Lint findings fail the check with exit code 3.
    pub lint_fatal: bool,
    /// Keys Prometheus does not read are ignored rather than refused.
    pub ignore_unknown_fields: bool,
}

/// Checks rule files as `promtool check rules` does (standard input when
/// `files` is empty): `Checking FILE` and `SUCCESS: N rules found` on
/// stdout, errors and lint findings on stderr. Returns promtool's exit
/// code: 0, 1 for an invalid file, 3 for lint findings under
/// `lint_fatal` only.
pub fn check_rules(files: &[std::path::PathBuf], o: CheckRulesOptions) -> u8 {
    let mut failed = false;
    let mut errors = false;
    let inputs: Vec<Option<&std::path::PathBuf>> = if files.is_empty() {
        vec![None]
    } else {
        files.iter().map(Some).collect()
    };
    for f in inputs {
        let parsed = match f {
            Some(f) => {
                println!("Checking {}", f.display());
                crate::rules::load_rule_file_with(f, o.names, o.ignore_unknown_fields)
            }
            None => {
                println!("Checking standard input");
                let mut src = String::new();
                match std::io::Read::read_to_string(&mut std::io::stdin(), &mut src) {
                    Ok(_) => crate::rules::parse_rule_file_with(
                        &src,
                        "standard input",
                        o.names,
                        o.ignore_unknown_fields,
                    ),
                    Err(e) => Err(vec![crate::rules::RuleError {
                        file: "standard input".into(),
                        pos: None,
                        context: String::new(),
                        msg: format!("cannot read: {e}"),
                    }]),
                }
            }
        };
        match parsed {
            Ok(rf) => {
                let dups = match o.lint {
                    Lint::None => Vec::new(),
                    Lint::DuplicateRules | Lint::All => crate::rules::duplicate_rules(&rf),
                };
                if dups.is_empty() {
                    let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
                    println!("  SUCCESS: {n} rules found\n");
                } else {
                    failed = true;
                    eprintln!("  FAILED:");
                    eprintln!("{}", crate::rules::duplicate_rules_message(&dups));
                    println!();
                }
            }
            Err(errs) => {
                failed = true;
                errors = true;
                println!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
                println!();
            }
        }
    }
    match (failed, errors, o.lint_fatal) {
        (true, true, _) => 1,
        (true, false, true) => 3,
        _ => 0,
    }
}

/// Checks web configuration files (`--web.config.file`) as `promtool
/// check web-config` does, loading the TLS files they name: prints
/// `FILE: SUCCESS` (with what argus cannot offer of what the file asks
/// for) or the errors on stderr. Returns true if all are valid.
pub fn check_web_config(files: &[std::path::PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        match crate::api::web_file::load(f) {
            Ok(l) => {
                println!("{}: SUCCESS", f.display());
                for n in l.notes {
                    println!("{}: note: {n}", f.display());
                }
            }
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    ok
}

/// Checks Alertmanager configuration files as argus reads them for
/// delivery: prints `FILE: SUCCESS: N receivers` or each error as
/// `FILE:LINE:COL: path: message` on stderr. Returns true if all are valid.
pub fn check_alertmanager(files: &[std::path::PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        match crate::notify::load_am_config(f, crate::notify::Strictness::Deliver).and_then(|c| {
            // A secret file that cannot be read would fail the first page.
            let missing = c.unreadable_files();
            if missing.is_empty() {
                Ok(c)
            } else {
                Err(crate::config::ConfigErrors(missing))
            }
        }) {
            Ok(c) => match crate::notify::Templates::load(&c.templates, &c.base_dir) {
                Ok(t) => println!(
                    "{}: SUCCESS: {} receiver(s), {} template(s)",
                    f.display(),
                    c.receivers.len(),
                    t.names().len()
                ),
                Err(e) => {
                    ok = false;
                    eprintln!("{}: {e}", f.display());
                }
            },
            Err(errs) => {
                ok = false;
                for e in errs.0 {
                    eprintln!("{e}");
                }
            }
        }
    }
    ok
}

/// Checks config files; prints each error as `FILE:LINE:COL: path: message`
/// on stderr. Returns true if all are valid.
pub fn check_config(
    files: &[std::path::PathBuf],
    lint: Lint,
    lint_fatal: bool,
    syntax_only: bool,
) -> u8 {
    let mut ok = true;
    let mut linted = false;
    for f in files {
        match Config::load(Path::new(f)) {
            // Rule files the config names are checked too, as promtool
            // check config does.
            Ok(c) => match crate::rules::load_groups(&c)
                .map_err(|e| e.to_string())
                .and_then(|g| {
                    if syntax_only {
                        return Ok(g);
                    }
                    referenced_files_exist(&c)
                        .map(|()| g)
                        .map_err(|e| format!("{}: {e}", f.display()))
                })
                .and_then(|g| {
                    let routing = crate::notify::routing_of(&c).map_err(|e| e.to_string())?;
                    let missing = routing.map(|r| r.unreadable_files()).unwrap_or_default();
                    if missing.is_empty() {
                        Ok(g)
                    } else {
                        Err(crate::config::ConfigErrors(missing).to_string())
                    }
                })
                .and_then(|g| match &c.peers {
                    Some(p) => crate::ha::read_secret(p).map(|_| g),
                    None => Ok(g),
                }) {
                Ok(groups) => {
                    println!(
                        "{}: SUCCESS: {} scrape config(s) and {} rule group(s) found",
                        f.display(),
                        c.scrape_configs.len(),
                        groups.len()
                    );
                    if lint != Lint::None {
                        linted |= lint_rule_files(&c);
                    }
                }
                Err(e) => {
                    ok = false;
                    eprintln!("{e}");
                }
            },
            Err(errs) => {
                ok = false;
                for e in errs.0 {
                    eprintln!("{e}");
                }
            }
        }
    }
    match (ok, linted && lint_fatal) {
        (false, _) => 1,
        (true, true) => 3,
        (true, false) => 0,
    }
}

/// What promtool checks besides the syntax: the credentials file of a
/// scrape config's `authorization` (or `bearer_token_file`) and the client
/// certificate and key of its `tls_config` and of its Kubernetes
/// discovery's must exist. CA files and password files are not checked,
/// as promtool does not check them.
fn referenced_files_exist(c: &Config) -> Result<(), String> {
    let exists = |f: &Option<String>, what: &str, path: String| -> Result<(), String> {
        match f.as_deref().filter(|f| !f.is_empty()) {
            Some(f) => std::fs::metadata(f)
                .map(|_| ())
                .map_err(|e| format!("{path}: error checking {what} {f:?}: {e}")),
            None => Ok(()),
        }
    };
    for (i, sc) in c.scrape_configs.iter().enumerate() {
        let p = format!("scrape_configs[{i}]");
        let creds = sc
            .authorization
            .as_ref()
            .and_then(|a| a.credentials_file.clone())
            .or_else(|| sc.bearer_token_file.clone());
        exists(
            &creds,
            "authorization credentials or bearer token file",
            format!("{p}.authorization.credentials_file"),
        )?;
        let mut tls = vec![(p.clone(), sc.tls_config.as_ref())];
        for (j, k) in sc.kubernetes_sd_configs.iter().enumerate() {
            tls.push((
                format!("{p}.kubernetes_sd_configs[{j}]"),
                k.tls_config.as_ref(),
            ));
        }
        for (tp, t) in tls {
            let Some(t) = t else { continue };
            exists(
                &t.cert_file,
                "client cert file",
                format!("{tp}.tls_config.cert_file"),
            )?;
            exists(
                &t.key_file,
                "client key file",
                format!("{tp}.tls_config.key_file"),
            )?;
        }
    }
    Ok(())
}

/// The duplicate-rules lint over the rule files a loaded config names, as
/// `promtool check config` runs it; true if it found something.
fn lint_rule_files(c: &Config) -> bool {
    let mut found = false;
    for path in crate::rules::rule_file_paths(c).unwrap_or_default() {
        // The files loaded a moment ago; one that no longer does was
        // reported by the load.
        let Ok(rf) = crate::rules::load_rule_file(&path, crate::rules::NameValidation::Utf8) else {
            continue;
        };
        let dups = crate::rules::duplicate_rules(&rf);
        if !dups.is_empty() {
            found = true;
            println!("Checking {}", path.display());
            eprintln!("  FAILED:");
            eprintln!("{}", crate::rules::duplicate_rules_message(&dups));
            println!();
        }
    }
    found
}
