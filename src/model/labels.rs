//! Label sets: sorted, immutable, cheap to clone.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair. Names and values are shared `Arc<str>` so that the store
/// can intern them and label sets built from interned strings cost one
/// pointer pair per label.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    /// Label name.
    pub name: Arc<str>,
    /// Label value; never empty inside a `Labels` (empty means absent).
    pub value: Arc<str>,
}

impl Label {
    /// Builds a label from anything string-like.
    pub fn new(name: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}", self.name, self.value)
    }
}

/// A label set sorted by name with unique names and no empty values.
///
/// Cloning is a reference-count increment. Equality and hashing look at the
/// pairs, so two sets built from different allocations compare equal.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Labels(Arc<[Label]>);

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.stable_hash());
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Self {
        Labels(Arc::from(Vec::new()))
    }

    /// Builds a label set from pairs in any order. Later duplicates win and
    /// empty values are dropped, as Prometheus's label builder does.
    pub fn from_pairs<N, V, I>(pairs: I) -> Self
    where
        N: Into<Arc<str>>,
        V: Into<Arc<str>>,
        I: IntoIterator<Item = (N, V)>,
    {
        let mut b = LabelsBuilder::new();
        for (n, v) in pairs {
            b.set(n.into(), v.into());
        }
        b.build()
    }

    /// Builds from labels that are already sorted, unique and non-empty.
    /// Callers that cannot promise this use [`Labels::from_pairs`].
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        Labels(Arc::from(labels))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.0[i].value)
    }

    /// The metric name, if any.
    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Iterates the labels in name order.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// The labels as a slice.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// A builder primed with these labels.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    /// A hash for in-process deduplication, word at a time: several times
    /// faster than [`stable_hash`](Self::stable_hash), but not stable
    /// across versions.
    pub fn fast_hash(&self) -> u64 {
        use std::hash::Hasher as _;
        let mut h = crate::model::hash::FastHasher::default();
        for l in self.0.iter() {
            h.write(l.name.as_bytes());
            h.write_u64(0xff);
            h.write(l.value.as_bytes());
            h.write_u64(0xfe);
        }
        h.finish()
    }

    /// A hash that is stable across processes and versions (FNV-1a over
    /// name/value bytes with separators), used for target offsets, hashmod
    /// and snapshot identity.
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv64::new();
        for l in self.0.iter() {
            h.write(l.name.as_bytes());
            h.write(&[0xff]);
            h.write(l.value.as_bytes());
            h.write(&[0xff]);
        }
        h.finish()
    }
}

impl fmt::Display for Labels {
    /// Prints `name{a="b", …}` the way Prometheus prints series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for l in self.0.iter().filter(|l| &*l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}=\"{}\"", l.name, escape_label_value(&l.value))?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Escapes `\`, `"` and newline as the exposition format requires.
pub fn escape_label_value(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    std::borrow::Cow::Owned(s)
}

/// Mutable label set used while relabeling and while building series.
#[derive(Clone, Debug, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        LabelsBuilder { labels: Vec::new() }
    }

    /// An empty builder with room for `n` labels.
    pub fn with_capacity(n: usize) -> Self {
        LabelsBuilder {
            labels: Vec::with_capacity(n),
        }
    }

    /// A builder over labels already sorted by name with unique names.
    pub fn from_sorted(labels: Vec<Label>) -> Self {
        debug_assert!(labels.windows(2).all(|w| w[0].name < w[1].name));
        LabelsBuilder { labels }
    }

    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: Arc<str>, value: Arc<str>) {
        match self.labels.binary_search_by(|l| l.name.cmp(&name)) {
            Ok(i) => {
                if value.is_empty() {
                    self.labels.remove(i);
                } else {
                    self.labels[i].value = value;
                }
            }
            Err(i) => {
                if !value.is_empty() {
                    self.labels.insert(i, Label { name, value });
                }
            }
        }
    }

    /// Convenience form of [`LabelsBuilder::set`] for `&str`.
    pub fn set_str(&mut self, name: &str, value: &str) {
        self.set(Arc::from(name), Arc::from(value));
    }

    /// Removes `name`.
    pub fn del(&mut self, name: &str) {
        if let Ok(i) = self.labels.binary_search_by(|l| (*l.name).cmp(name)) {
            self.labels.remove(i);
        }
    }

    /// The current value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.labels[i].value)
    }

    /// Keeps only labels for which `f` returns true.
    pub fn retain(&mut self, mut f: impl FnMut(&Label) -> bool) {
        self.labels.retain(|l| f(l));
    }

    /// Current labels in name order.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Freezes into an immutable [`Labels`].
    pub fn build(self) -> Labels {
        Labels(Arc::from(self.labels))
    }
}

/// FNV-1a 64-bit: small, fast and stable, which is all label hashing needs.
#[derive(Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    /// A fresh hasher.
    pub fn new() -> Self {
        Fnv64(0xcbf29ce484222325)
    }
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x100000001b3);
        }
    }
    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64::new()
    }
}

/// True if `s` is a legacy (pre-UTF-8) Prometheus metric name.
pub fn is_legacy_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().enumerate().all(|(i, &c)| {
            c.is_ascii_alphabetic() || c == b'_' || c == b':' || (i > 0 && c.is_ascii_digit())
        })
}

/// True if `s` is a legacy (pre-UTF-8) Prometheus label name.
pub fn is_legacy_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .enumerate()
            .all(|(i, &c)| c.is_ascii_alphabetic() || c == b'_' || (i > 0 && c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sorts_dedups_and_drops_empty() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.len(), 2);
        assert_eq!(l.get("b"), Some("3"));
        assert_eq!(l.get("c"), None);
        assert_eq!(l.to_string(), "{a=\"1\", b=\"3\"}");
    }

    #[test]
    fn display_escapes_and_names() {
        let l = Labels::from_pairs([("__name__", "up"), ("x", "a\"b\\\n")]);
        assert_eq!(l.to_string(), "up{x=\"a\\\"b\\\\\\n\"}");
    }

    #[test]
    fn stable_hash_is_value_based() {
        let a = Labels::from_pairs([("a", "1"), ("b", "2")]);
        let b = Labels::from_pairs([("b", "2"), ("a", "1")]);
        assert_eq!(a.stable_hash(), b.stable_hash());
        assert_ne!(
            a.stable_hash(),
            Labels::from_pairs([("a", "12")]).stable_hash()
        );
        // Separators keep ("ab","c") apart from ("a","bc").
        assert_ne!(
            Labels::from_pairs([("ab", "c")]).stable_hash(),
            Labels::from_pairs([("a", "bc")]).stable_hash()
        );
    }

    #[test]
    fn legacy_names() {
        assert!(is_legacy_metric_name("a:b_c1"));
        assert!(!is_legacy_metric_name("1a"));
        assert!(!is_legacy_metric_name("a.b"));
        assert!(is_legacy_label_name("_a1"));
        assert!(!is_legacy_label_name("a:b"));
    }
}
