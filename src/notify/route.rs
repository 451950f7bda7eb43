//! The route tree with Alertmanager's semantics: a node matches when all
//! its matchers do; children are tried in order, a matching child stops
//! the search unless it has `continue`; a node whose children all miss is
//! itself the match. Settings a node does not set come from its parent
//! (the root's from Alertmanager's defaults).

use super::amconfig::RouteConfig;
use super::matchers::{matchers_string, parse_matchers, sort_matchers};
use crate::model::{Labels, MatchOp, Matcher};

/// Alertmanager's defaults for the root route.
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;
/// Default `group_interval`.
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60_000;
/// Default `repeat_interval`.
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// A node of the route tree with its settings resolved.
#[derive(Clone, Debug)]
pub struct Route {
    /// Receiver of alerts routed here.
    pub receiver: String,
    /// Grouping labels, sorted.
    pub group_by: Vec<String>,
    /// `group_by: ['...']`: every label.
    pub group_by_all: bool,
    /// `group_wait` in ms.
    pub group_wait_ms: i64,
    /// `group_interval` in ms.
    pub group_interval_ms: i64,
    /// `repeat_interval` in ms.
    pub repeat_interval_ms: i64,
    /// Matchers of this node, in Alertmanager's order.
    pub matchers: Vec<Matcher>,
    /// Keep matching siblings after this node matched.
    pub continue_matching: bool,
    /// Mute time intervals (not inherited).
    pub mute_time_intervals: Vec<String>,
    /// Active time intervals (not inherited).
    pub active_time_intervals: Vec<String>,
    /// Labels added to alerts routed here (the parent's, then this
    /// node's).
    pub labels: std::collections::BTreeMap<String, String>,
    /// Children in order.
    pub routes: Vec<Route>,
}

impl Route {
    /// Builds the tree from a validated config.
    pub fn from_config(cfg: &RouteConfig) -> Route {
        let root = Route {
            receiver: String::new(),
            group_by: Vec::new(),
            group_by_all: false,
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
            matchers: Vec::new(),
            continue_matching: false,
            mute_time_intervals: Vec::new(),
            active_time_intervals: Vec::new(),
            labels: Default::default(),
            routes: Vec::new(),
        };
        Route::child(cfg, &root)
    }

    fn child(cfg: &RouteConfig, parent: &Route) -> Route {
        let mut r = parent.clone();
        r.routes = Vec::new();
        if !cfg.receiver.is_empty() {
            r.receiver = cfg.receiver.clone();
        }
        r.labels.extend(cfg.labels.clone());
        match &cfg.group_by {
            Some(gb) if gb.iter().any(|l| l == "...") => {
                r.group_by_all = true;
                r.group_by.clear();
            }
            Some(gb) => {
                r.group_by_all = false;
                r.group_by = gb.clone();
                r.group_by.sort();
                r.group_by.dedup();
            }
            None => {}
        }
        if let Some(d) = cfg.group_wait {
            r.group_wait_ms = d.as_millis();
        }
        if let Some(d) = cfg.group_interval {
            r.group_interval_ms = d.as_millis();
        }
        if let Some(d) = cfg.repeat_interval {
            r.repeat_interval_ms = d.as_millis();
        }
        let mut ms = Vec::new();
        for (k, v) in &cfg.match_eq {
            if let Ok(m) = Matcher::new(MatchOp::Equal, k.clone(), v.clone()) {
                ms.push(m);
            }
        }
        // Alertmanager keeps a `match_re` value as its anchored form, and
        // prints it that way.
        for (k, v) in &cfg.match_re {
            let anchored = v.as_ref().map(|v| format!("^(?:{v})$"));
            if let Some(Ok(m)) = anchored.map(|v| Matcher::new(MatchOp::Regex, k.clone(), v)) {
                ms.push(m);
            }
        }
        for line in &cfg.matchers {
            ms.extend(parse_matchers(line).unwrap_or_default());
        }
        sort_matchers(&mut ms);
        r.matchers = ms;
        r.continue_matching = cfg.continue_matching;
        r.mute_time_intervals = cfg.mute_time_intervals.clone();
        r.active_time_intervals = cfg.active_time_intervals.clone();
        r.routes = cfg.routes.iter().map(|c| Route::child(c, &r)).collect();
        r
    }

    /// True when every matcher of this node accepts `labels`.
    pub fn matches_here(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches_labels(labels))
    }

    /// The nodes `labels` are routed to, in tree order.
    pub fn route<'a>(&'a self, labels: &Labels) -> Vec<&'a Route> {
        if !self.matches_here(labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for c in &self.routes {
            let m = c.route(labels);
            let matched = !m.is_empty();
            all.extend(m);
            if matched && !c.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// How amtool names a node: its matchers, or `default-route`.
    pub fn slug(&self, show_continue: bool, show_receiver: bool) -> String {
        let mut s = if self.matchers.is_empty() {
            "default-route".to_string()
        } else {
            matchers_string(&self.matchers)
        };
        if self.continue_matching && show_continue {
            s.push_str("  continue: true");
        }
        if show_receiver {
            s.push_str("  receiver: ");
            s.push_str(&self.receiver);
        }
        s
    }
}

/// Prints a tree as amtool does (its treeprint layout): `.` then each
/// branch with `├── `/`└── ` and bar/space indentation.
pub fn print_tree(root: &TreeNode) -> String {
    fn walk(n: &TreeNode, prefix: &str, out: &mut String) {
        for (i, c) in n.children.iter().enumerate() {
            let last = i + 1 == n.children.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&c.text);
            out.push('\n');
            // treeprint's continuation is a bar and two no-break spaces.
            let next = format!("{prefix}{}", if last { "    " } else { "│\u{a0}\u{a0} " });
            walk(c, &next, out);
        }
    }
    let mut out = String::from(".\n");
    walk(root, "", &mut out);
    out
}

/// A node of a printed tree.
#[derive(Debug, Default)]
pub struct TreeNode {
    /// The line for this node.
    pub text: String,
    /// Its children.
    pub children: Vec<TreeNode>,
}

/// The routes `labels` pass through, as amtool's `--tree` shows them.
pub fn matching_tree(route: &Route, labels: &Labels, into: &mut TreeNode) {
    let mut branch = TreeNode {
        text: route.slug(false, false),
        children: Vec::new(),
    };
    // As amtool: children are tried by their own matchers only, and a node
    // none of whose children matched shows its receiver.
    let mut last = true;
    for c in &route.routes {
        if c.matches_here(labels) {
            matching_tree(c, labels, &mut branch);
            last = false;
            if !c.continue_matching {
                break;
            }
        }
    }
    if last {
        branch.text = route.slug(false, true);
    }
    into.children.push(branch);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::amconfig::{Strictness, parse_am_config};

    #[test]
    fn routes_like_alertmanager() {
        let cfg = parse_am_config(
            "route:\n  receiver: default\n  group_by: [alertname]\n  routes:\n    - match_re: {test: '[12]'}\n      receiver: test1\n      continue: true\n    - match: {test: '2'}\n      receiver: test2\n      group_wait: 1s\n    - matchers: ['team=~\"a|b\"', 'sev!=\"info\"']\n      receiver: team\n      group_by: ['...']\nreceivers: [{name: default}, {name: test1}, {name: test2}, {name: team}]\n",
            "am.yml",
            Strictness::Deliver,
        )
        .unwrap();
        let root = Route::from_config(cfg.route.as_ref().unwrap());
        let recv = |pairs: &[(&str, &str)]| -> Vec<String> {
            root.route(&Labels::from_pairs(pairs.iter().copied()))
                .iter()
                .map(|r| r.receiver.clone())
                .collect()
        };
        assert_eq!(recv(&[("test", "1")]), ["test1"]);
        assert_eq!(recv(&[("test", "2")]), ["test1", "test2"]);
        assert_eq!(recv(&[("test", "12")]), ["default"]);
        assert_eq!(recv(&[("team", "a")]), ["team"]);
        assert_eq!(recv(&[("team", "a"), ("sev", "info")]), ["default"]);
        let r = root.route(&Labels::from_pairs([("test", "2")]));
        assert_eq!(r[1].group_wait_ms, 1000);
        assert_eq!(r[1].group_by, ["alertname"]);
        assert_eq!(r[0].group_interval_ms, DEFAULT_GROUP_INTERVAL_MS);
        assert!(root.routes[2].group_by_all);
        assert_eq!(
            root.routes[2].slug(true, true),
            "{sev!=\"info\",team=~\"a|b\"}  receiver: team"
        );
    }
}
