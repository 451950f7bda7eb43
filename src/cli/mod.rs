//! Subcommands: `run` (the daemon), `check config` and `import openmetrics`.

mod import;
mod run;

pub use import::{ImportError, ImportSummary, import_openmetrics};
pub use run::{RunError, RunOptions, run};

use std::path::Path;

use crate::config::Config;

/// Checks config files; prints each error as `FILE:LINE:COL: path: message`
/// on stderr. Returns true if all are valid.
pub fn check_config(files: &[std::path::PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        match Config::load(Path::new(f)) {
            Ok(c) => println!(
                "{}: SUCCESS: {} scrape config(s) found",
                f.display(),
                c.scrape_configs.len()
            ),
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
