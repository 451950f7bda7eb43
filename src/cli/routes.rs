//! `argus config routes [show|test]`: the route tree of an Alertmanager
//! configuration and where a label set goes, printed as `amtool config
//! routes` prints them.

use std::path::Path;

use crate::model::{Labels, MatchOp};
use crate::notify::{
    Route, Strictness, TreeNode, load_am_config, matching_tree, parse_matcher, print_tree,
};

/// Why routes could not be shown or tested.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// A label argument is not `name=value`.
    #[error("failed to parse labels: {0}")]
    Label(String),
}

fn load(path: &Path) -> Result<Route, RoutesError> {
    // Routing needs receivers only as names: files that use integrations
    // argus does not deliver to can still be tested.
    let cfg = load_am_config(path, Strictness::Routing)
        .map_err(|e| RoutesError::Config(e.to_string()))?;
    let root = cfg
        .route
        .as_ref()
        .ok_or_else(|| RoutesError::Config("no route provided in config".into()))?;
    Ok(Route::from_config(root))
}

/// The whole tree, as `amtool config routes show` prints it.
pub fn routes_show(path: &Path) -> Result<String, RoutesError> {
    fn add(r: &Route, into: &mut TreeNode) {
        let mut n = TreeNode {
            text: r.slug(true, true),
            children: Vec::new(),
        };
        for c in &r.routes {
            add(c, &mut n);
        }
        into.children.push(n);
    }
    let root = load(path)?;
    let mut t = TreeNode::default();
    add(&root, &mut t);
    Ok(format!("Routing tree:\n{}\n", print_tree(&t)))
}

/// Where `labels` (`name=value` each) go: the receivers joined by commas,
/// with the matching tree first when `tree` is set. Returns the text and
/// whether `expect` (when given) matched.
pub fn routes_test(
    path: &Path,
    labels: &[String],
    tree: bool,
    expect: Option<&str>,
) -> Result<(String, bool), RoutesError> {
    let root = load(path)?;
    let mut pairs = Vec::new();
    for l in labels {
        let m = parse_matcher(l).map_err(|e| RoutesError::Label(e.to_string()))?;
        if m.op != MatchOp::Equal {
            return Err(RoutesError::Label(
                "Labels must be specified as key=value pairs".into(),
            ));
        }
        pairs.push((m.name, m.value));
    }
    let ls = Labels::from_pairs(pairs);
    let mut out = String::new();
    if tree {
        let mut t = TreeNode::default();
        matching_tree(&root, &ls, &mut t);
        out.push_str(&format!("Matching routes:\n{}\n\n", print_tree(&t)));
    }
    let receivers: Vec<&str> = root
        .route(&ls)
        .iter()
        .map(|r| r.receiver.as_str())
        .collect();
    let slug = receivers.join(",");
    out.push_str(&slug);
    out.push('\n');
    let ok = match expect {
        Some(e) if !e.is_empty() && e != slug => {
            out.push_str("WARNING: Expected receivers did not match resolved receivers.\n");
            false
        }
        _ => true,
    };
    Ok((out, ok))
}
