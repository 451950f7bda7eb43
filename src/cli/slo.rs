//! `argus slo generate` and `argus check slo`: Sloth-format SLO specs to
//! Prometheus rule files, and their validation.

use std::collections::BTreeMap;
use std::path::Path;

use crate::slo::{GenerateOptions, RuleGroup, SpecKind, generate, parse_spec, to_yaml};

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

fn load(path: &Path) -> Result<Vec<crate::slo::SloSpec>, SloCliError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| SloCliError::Read {
        file: file.clone(),
        msg: e.to_string(),
    })?;
    parse_spec(&src, &file).map_err(|errs| {
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
        match load(f) {
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

/// The rule file(s) for the specs: one Prometheus rule file holding every
/// group, followed by one `PrometheusRule` document per Kubernetes spec.
pub fn slo_generate(
    files: &[std::path::PathBuf],
    labels: &[String],
    extensions: bool,
) -> Result<String, SloCliError> {
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
    };
    let mut plain: Vec<RuleGroup> = Vec::new();
    let mut docs = Vec::new();
    for f in files {
        for spec in load(f)? {
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
