//! `argus slo generate` and `argus check slo`: Sloth-format SLO specs to
//! Prometheus rule files, and their validation.

use std::collections::BTreeMap;
use std::path::Path;

use crate::slo::{
    AlertWindow, GenerateOptions, RuleGroup, SpecKind, generate, parse_alert_windows,
    parse_spec_with, to_yaml,
};

/// Why a spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SloCliError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {msg}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        msg: String,
    },
    /// The spec is invalid (each error on its own line).
    #[error("{0}")]
    Spec(String),
    /// A `--label` is not `name=value`.
    #[error("invalid label {0:?}: want name=value")]
    Label(String),
}

fn load(path: &Path, default_period_days: u32) -> Result<Vec<crate::slo::SloSpec>, SloCliError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| SloCliError::Read {
        file: file.clone(),
        msg: e.to_string(),
    })?;
    parse_spec_with(&src, &file, default_period_days).map_err(|errs| {
        SloCliError::Spec(
            errs.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })
}

/// Validates spec files; prints `FILE: SUCCESS: N SLO(s)` or the errors.
pub fn check_slo(files: &[std::path::PathBuf]) -> bool {
    let mut ok = true;
    for f in files {
        match load(f, 30) {
            Ok(specs) => println!(
                "{}: SUCCESS: {} SLO(s)",
                f.display(),
                specs.iter().map(|s| s.slos.len()).sum::<usize>()
            ),
            Err(e) => {
                ok = false;
                eprintln!("{e}");
            }
        }
    }
    ok
}

/// How `argus slo generate` generates, as its flags (Sloth's) set it.
#[derive(Clone, Debug, Default)]
pub struct SloGenerateArgs {
    /// Extra labels, `name=value`.
    pub labels: Vec<String>,
    /// argus's series beside Sloth's.
    pub extensions: bool,
    /// The period of SLOs that give none (`--default-slo-period`; 30d).
    pub default_period: Option<String>,
    /// A directory of Sloth `AlertWindows` files
    /// (`--slo-period-windows-path`).
    pub windows_dir: Option<std::path::PathBuf>,
}

/// Reads every `AlertWindows` file (`.yml`, `.yaml`) of a directory.
fn load_windows(dir: &Path) -> Result<BTreeMap<u32, [AlertWindow; 4]>, SloCliError> {
    let read_err = |file: &Path, e: std::io::Error| SloCliError::Read {
        file: file.display().to_string(),
        msg: e.to_string(),
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| read_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    for f in files {
        let src = std::fs::read_to_string(&f).map_err(|e| read_err(&f, e))?;
        let (days, w) =
            parse_alert_windows(&src, &f.display().to_string()).map_err(SloCliError::Spec)?;
        if out.insert(days, w).is_some() {
            return Err(SloCliError::Spec(format!(
                "{}: a second set of windows for {days}d",
                f.display()
            )));
        }
    }
    Ok(out)
}

/// The rule file(s) for the specs: one Prometheus rule file holding every
/// group, followed by one `PrometheusRule` document per Kubernetes spec.
pub fn slo_generate(
    files: &[std::path::PathBuf],
    args: &SloGenerateArgs,
) -> Result<String, SloCliError> {
    let (labels, extensions) = (&args.labels, args.extensions);
    let default_days = match &args.default_period {
        None => 30,
        Some(p) => crate::slo::period_days(p)
            .map_err(|e| SloCliError::Spec(format!("--default-slo-period: {e}")))?,
    };
    let windows = match &args.windows_dir {
        None => BTreeMap::new(),
        Some(d) => load_windows(d)?,
    };
    let mut extra = BTreeMap::new();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .filter(|(k, _)| crate::model::is_legacy_label_name(k))
            .ok_or_else(|| SloCliError::Label(l.clone()))?;
        extra.insert(k.to_string(), v.to_string());
    }
    let opts = GenerateOptions {
        extra_labels: extra,
        extensions,
        native: false,
        windows,
    };
    let mut plain: Vec<RuleGroup> = Vec::new();
    let mut docs = Vec::new();
    for f in files {
        for spec in load(f, default_days)? {
            let groups = generate(&spec, &opts).map_err(SloCliError::Spec)?;
            match &spec.kind {
                SpecKind::Kubernetes { .. } => {
                    docs.push(to_yaml(&spec.kind, &groups).map_err(SloCliError::Spec)?)
                }
                _ => plain.extend(groups),
            }
        }
    }
    let mut out = Vec::new();
    if !plain.is_empty() || docs.is_empty() {
        out.push(to_yaml(&SpecKind::Prometheus, &plain).map_err(SloCliError::Spec)?);
    }
    out.extend(docs);
    Ok(out.join("---\n"))
}
