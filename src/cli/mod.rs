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
pub use run::{RunError, RunOptions, run};
pub use slo::{SloCliError, check_slo, slo_generate};
pub use template::{TemplateRenderError, template_render};
pub use test_rules::{TestRulesArgs, TestRulesError, junit_xml, test_rules, untested_alerts};

use std::path::Path;

use crate::config::Config;

/// Checks rule files as `promtool check rules` does: prints
/// `Checking FILE` and `SUCCESS: N rules found` or `FAILED:` with each
/// error as `FILE:LINE:COL: group "g", rule N, "name": message`. Returns
/// true if all are valid.
pub fn check_rules(files: &[std::path::PathBuf], names: crate::rules::NameValidation) -> bool {
    let mut ok = true;
    for f in files {
        println!("Checking {}", f.display());
        match crate::rules::load_rule_file(f, names) {
            Ok(rf) => {
                let n: usize = rf.groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {n} rules found\n");
            }
            Err(errs) => {
                ok = false;
                println!("  FAILED:");
                for e in errs {
                    eprintln!("{e}");
                }
                println!();
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
pub fn check_config(files: &[std::path::PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        match Config::load(Path::new(f)) {
            // Rule files the config names are checked too, as promtool
            // check config does.
            Ok(c) => match crate::rules::load_groups(&c)
                .map_err(|e| e.to_string())
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
                Ok(groups) => println!(
                    "{}: SUCCESS: {} scrape config(s) and {} rule group(s) found",
                    f.display(),
                    c.scrape_configs.len(),
                    groups.len()
                ),
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
    ok
}
