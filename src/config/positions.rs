//! Maps YAML key paths (`scrape_configs[2].relabel_configs[0].action`) to
//! line/column positions and back, so that both serde errors (which know a
//! position) and validation errors (which know a path) name both.

use serde_saphyr::granit_parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
}

#[derive(Debug)]
struct Node {
    path: String,
    key: Option<Pos>,
    value: Pos,
}

/// Every mapping key and sequence item of one YAML document, with its path.
#[derive(Debug, Default)]
pub struct Positions {
    nodes: Vec<Node>,
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        index: usize,
    },
}

fn join_key(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

impl Positions {
    /// Indexes `src`. YAML errors leave the index partial; the caller reports
    /// those through the deserializer, which has the better message.
    pub fn index(src: &str) -> Positions {
        let mut p = Parser::new_from_str(src);
        let mut out = Positions::default();
        let mut stack: Vec<Frame> = Vec::new();
        while let Some(Ok((ev, span))) = p.next_event() {
            let pos = Pos {
                line: span.start.line(),
                col: span.start.col() + 1,
            };
            // Where does this node sit?
            let (node_path, key_pos, is_key) = match stack.last_mut() {
                None => (String::new(), None, false),
                Some(Frame::Seq { path, index }) => {
                    let np = format!("{path}[{index}]");
                    *index += 1;
                    (np, None, false)
                }
                Some(Frame::Map { path, key }) => match key.take() {
                    None => (path.clone(), None, true),
                    Some((k, kp)) => (join_key(path, &k), Some(kp), false),
                },
            };
            match ev {
                Event::Scalar(v, ..) => {
                    if is_key {
                        if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                            *key = Some((v.to_string(), pos));
                        }
                    } else {
                        out.nodes.push(Node {
                            path: node_path,
                            key: key_pos,
                            value: pos,
                        });
                    }
                }
                Event::Alias(_) if !is_key => out.nodes.push(Node {
                    path: node_path,
                    key: key_pos,
                    value: pos,
                }),
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    if is_key {
                        // Complex keys do not occur in our configs; index them under a placeholder.
                        if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                            *key = Some(("?".to_string(), pos));
                        }
                    }
                    out.nodes.push(Node {
                        path: node_path.clone(),
                        key: key_pos,
                        value: pos,
                    });
                    stack.push(if matches!(ev, Event::MappingStart(..)) {
                        Frame::Map {
                            path: node_path,
                            key: None,
                        }
                    } else {
                        Frame::Seq {
                            path: node_path,
                            index: 0,
                        }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        out
    }

    /// Position of the key (or, for sequence items, the item) at `path`.
    /// Falls back to the nearest ancestor that exists.
    pub fn of_path(&self, path: &str) -> Option<Pos> {
        let mut p = path.to_string();
        loop {
            if let Some(n) = self.nodes.iter().find(|n| n.path == p) {
                return Some(n.key.unwrap_or(n.value));
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }

    /// Position of the value at `path`.
    pub fn value_of_path(&self, path: &str) -> Option<Pos> {
        self.nodes.iter().find(|n| n.path == path).map(|n| n.value)
    }

    /// The path of the mapping key `key` written at `pos` (a mapping that
    /// starts at the same place has the same position).
    pub fn key_path_at(&self, pos: Pos, key: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n.key == Some(pos) && n.path.ends_with(key))
            .map(|n| n.path.as_str())
    }

    /// The path of the key or value at `pos`, or of the nearest before it.
    pub fn path_at(&self, pos: Pos) -> Option<&str> {
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| n.key == Some(pos) || n.value == pos)
        {
            return Some(&n.path);
        }
        self.nodes
            .iter()
            .filter(|n| n.key.unwrap_or(n.value) <= pos)
            .max_by_key(|n| n.key.unwrap_or(n.value))
            .map(|n| n.path.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_positions() {
        let src = "global:\n  scrape_interval: 5s\nscrape_configs:\n  - job_name: a\n  - job_name: b\n    relabel_configs:\n      - action: keep\n        regex: x\n";
        let p = Positions::index(src);
        assert_eq!(
            p.of_path("global.scrape_interval"),
            Some(Pos { line: 2, col: 3 })
        );
        assert_eq!(
            p.value_of_path("global.scrape_interval"),
            Some(Pos { line: 2, col: 20 })
        );
        assert_eq!(
            p.of_path("scrape_configs[1].relabel_configs[0].action"),
            Some(Pos { line: 7, col: 9 })
        );
        assert_eq!(
            p.path_at(Pos { line: 8, col: 9 }),
            Some("scrape_configs[1].relabel_configs[0].regex")
        );
        assert_eq!(
            p.path_at(Pos { line: 5, col: 17 }),
            Some("scrape_configs[1].job_name")
        );
        // Missing leaf: nearest ancestor.
        assert_eq!(
            p.of_path("scrape_configs[1].relabel_configs[0].target_label"),
            Some(Pos { line: 7, col: 9 })
        );
    }
}
