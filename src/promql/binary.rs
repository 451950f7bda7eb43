//! Binary operators: arithmetic, comparison (with and without `bool`),
//! set operators, and vector matching with `on`/`ignoring` and
//! `group_left`/`group_right`.

use std::collections::HashMap;

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::QueryError;
use super::eval::{Evaluator, Out, StepArg, Val};
use super::value::Series;
use crate::model::histogram::{CounterResetHint, FloatHistogram};
use crate::model::{Labels, METRIC_NAME};
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    fn is_set(self) -> bool {
        matches!(self, Op::And | Op::Or | Op::Unless)
    }

    /// Applies the operator to two floats: the value and whether a
    /// comparison keeps the element.
    pub fn apply(self, l: f64, r: f64) -> (f64, bool) {
        match self {
            Op::Add => (l + r, true),
            Op::Sub => (l - r, true),
            Op::Mul => (l * r, true),
            Op::Div => (l / r, true),
            Op::Mod => (go_mod(l, r), true),
            Op::Pow => (l.powf(r), true),
            Op::Atan2 => (l.atan2(r), true),
            Op::Eq => (l, l == r),
            Op::Ne => (l, l != r),
            Op::Gt => (l, l > r),
            Op::Lt => (l, l < r),
            Op::Ge => (l, l >= r),
            Op::Le => (l, l <= r),
            Op::And | Op::Or | Op::Unless => (l, true),
        }
    }
}

/// Go's math.Mod: result has the sign of the dividend.
fn go_mod(l: f64, r: f64) -> f64 {
    l % r
}

/// The outcome of applying an operator to two samples that may be
/// histograms.
pub(crate) enum ElemResult {
    /// Value, histogram value, and whether a comparison keeps it.
    Val(f64, Option<Arc<FloatHistogram>>, bool),
    /// Incompatible sample types: an info naming them, no result.
    Incompatible(&'static str, &'static str),
    /// Histograms whose bucket layouts cannot be combined.
    IncompatibleLayout,
}

/// Notes raised while combining histograms.
#[derive(Default)]
pub(crate) struct ElemNotes {
    pub collision: Option<&'static str>,
    pub reconciled: Option<&'static str>,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Mod => "%",
            Op::Pow => "^",
            Op::Atan2 => "atan2",
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::And => "and",
            Op::Or => "or",
            Op::Unless => "unless",
        }
    }

    /// Applies the operator to two samples, floats or histograms.
    pub fn apply_elem(
        self,
        lf: f64,
        lh: Option<&Arc<FloatHistogram>>,
        rf: f64,
        rh: Option<&Arc<FloatHistogram>>,
        notes: &mut ElemNotes,
    ) -> ElemResult {
        match (lh, rh) {
            (None, None) => {
                let (v, keep) = self.apply(lf, rf);
                ElemResult::Val(v, None, keep)
            }
            (None, Some(h)) => match self {
                Op::Mul => {
                    let mut x = (**h).clone();
                    x.mul(lf);
                    x.compact();
                    ElemResult::Val(0.0, Some(Arc::new(x)), true)
                }
                _ => ElemResult::Incompatible("float", "histogram"),
            },
            (Some(h), None) => match self {
                Op::Mul | Op::Div => {
                    let mut x = (**h).clone();
                    if self == Op::Mul {
                        x.mul(rf);
                    } else {
                        x.div(rf);
                    }
                    x.compact();
                    ElemResult::Val(0.0, Some(Arc::new(x)), true)
                }
                _ => ElemResult::Incompatible("histogram", "float"),
            },
            (Some(a), Some(b)) => match self {
                Op::Add | Op::Sub => {
                    let mut x = (**a).clone();
                    let r = if self == Op::Add { x.add(b) } else { x.sub(b) };
                    let Ok((collision, reconciled)) = r else {
                        return ElemResult::IncompatibleLayout;
                    };
                    let what = if self == Op::Add {
                        "addition"
                    } else {
                        "subtraction"
                    };
                    if collision {
                        notes.collision = Some(what);
                    }
                    if reconciled {
                        notes.reconciled = Some(what);
                    }
                    if self == Op::Sub {
                        x.counter_reset_hint = CounterResetHint::Gauge;
                    }
                    x.compact();
                    ElemResult::Val(0.0, Some(Arc::new(x)), true)
                }
                Op::Eq => ElemResult::Val(0.0, Some(a.clone()), a.equals(b)),
                Op::Ne => ElemResult::Val(0.0, Some(a.clone()), !a.equals(b)),
                _ => ElemResult::Incompatible("histogram", "histogram"),
            },
        }
    }
}

/// Raises the annotations an element operation asked for.
pub(crate) fn raise_elem_notes(
    ev: &mut Evaluator<'_>,
    op: Op,
    notes: &ElemNotes,
    incompatible: &[(&'static str, &'static str)],
    layout: bool,
    pos: &str,
) {
    for (l, r) in incompatible {
        let s = op.symbol();
        ev.annos.info(format!(
            "incompatible sample types encountered for binary operator {s:?}: {l} {s} {r}{pos}"
        ));
    }
    if layout {
        ev.annos.warn(format!(
            "incompatible bucket layout encountered for binary operator {}{pos}",
            op.symbol()
        ));
    }
    if let Some(w) = notes.collision {
        ev.annos.warn(format!(
            "conflicting counter resets during histogram {w}{pos}"
        ));
    }
    if let Some(w) = notes.reconciled {
        ev.annos.info(format!(
            "mismatched custom buckets were reconciled during {w}{pos}"
        ));
    }
}

/// Prometheus's `labels.String()`: every label inside the braces.
pub(crate) fn labels_string(l: &Labels) -> String {
    let mut s = String::from("{");
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&x.name);
        s.push_str("=\"");
        s.push_str(&crate::model::escape_label_value(&x.value));
        s.push('"');
    }
    s.push('}');
    s
}

pub(crate) fn eval(ev: &mut Evaluator<'_>, b: &BinaryExpr) -> Result<Val, QueryError> {
    let op_s = b.op.to_string();
    let op = Op::parse(&op_s)
        .ok_or_else(|| QueryError::Execution(format!("unsupported binary operator {op_s:?}")))?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let pos = ev.pos_node(b);
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(r.iter())
                .map(|(&a, &b)| {
                    let (v, keep) = op.apply(a, b);
                    if op.is_comparison() {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(l), Val::Scalar(r)) => vector_scalar(ev, op, l, r, false, return_bool, &pos),
        (Val::Scalar(l), Val::Vector(r)) => vector_scalar(ev, op, r, l, true, return_bool, &pos),
        (Val::Vector(l), Val::Vector(r)) => vector_vector(ev, op, b, l, r, return_bool, &pos),
        _ => Err(QueryError::Execution(format!(
            "binary expression must contain only scalar and instant vector types, in {op_s}"
        ))),
    }
}

fn vector_scalar(
    ev: &mut Evaluator<'_>,
    op: Op,
    v: Vec<Series>,
    s: Vec<f64>,
    swap: bool,
    return_bool: bool,
    pos: &str,
) -> Result<Val, QueryError> {
    let args = [Val::Vector(v), Val::Scalar(s)];
    let out = ev.range_eval(&args, |ev, _, a| {
        let (StepArg::Vector { series, els }, StepArg::Scalar(sc)) = (&a[0], &a[1]) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(els.len());
        let mut notes = ElemNotes::default();
        let mut incompatible = Vec::new();
        let mut layout = false;
        for e in els.iter() {
            let r = if swap {
                op.apply_elem(*sc, None, e.v, e.h.as_ref(), &mut notes)
            } else {
                op.apply_elem(e.v, e.h.as_ref(), *sc, None, &mut notes)
            };
            let (mut val, mut h, keep) = match r {
                ElemResult::Val(v, h, k) => (v, h, k),
                ElemResult::Incompatible(l, r) => {
                    if !incompatible.contains(&(l, r)) {
                        incompatible.push((l, r));
                    }
                    continue;
                }
                ElemResult::IncompatibleLayout => {
                    layout = true;
                    continue;
                }
            };
            if op.is_comparison() {
                val = e.v;
                h = e.h.clone();
            }
            let s = &series[e.s];
            if return_bool {
                out.push(Out::f(s.labels.clone(), if keep { 1.0 } else { 0.0 }, true));
            } else if keep {
                out.push(Out {
                    labels: s.labels.clone(),
                    v: val,
                    h,
                    drop_name: s.drop_name || !op.is_comparison(),
                });
            }
        }
        raise_elem_notes(ev, op, &notes, &incompatible, layout, pos);
        Ok(out)
    })?;
    Ok(Val::Vector(out))
}

/// The labels two sides are matched on.
fn signature(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(names)) => Labels::from_sorted(
            l.iter()
                .filter(|x| names.labels.iter().any(|n| **n == *x.name))
                .cloned()
                .collect(),
        ),
        Some(LabelModifier::Exclude(names)) => Labels::from_sorted(
            l.iter()
                .filter(|x| &*x.name != METRIC_NAME && !names.labels.iter().any(|n| **n == *x.name))
                .cloned()
                .collect(),
        ),
        None => Labels::from_sorted(
            l.iter()
                .filter(|x| &*x.name != METRIC_NAME)
                .cloned()
                .collect(),
        ),
    }
}

fn vector_vector(
    ev: &mut Evaluator<'_>,
    op: Op,
    b: &BinaryExpr,
    l: Vec<Series>,
    r: Vec<Series>,
    return_bool: bool,
    pos: &str,
) -> Result<Val, QueryError> {
    let matching = b.modifier.as_ref().and_then(|m| m.matching.clone());
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    if op.is_set() {
        return set_op(ev, op, &matching, l, r);
    }
    if matches!(card, VectorMatchCardinality::ManyToMany) {
        return Err(QueryError::Execution(
            "many-to-many only allowed for set operators".into(),
        ));
    }
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let include: Vec<String> = super::eval::card_include(&card);
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, &matching)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, &matching)).collect();
    let on = matches!(matching, Some(LabelModifier::Include(_)));
    let match_names: Vec<String> = matching
        .as_ref()
        .map(|m| m.labels().labels.clone())
        .unwrap_or_default();
    let changes_schema = !op.is_comparison();
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // As in Prometheus, after the sides are swapped for group_right the
    // right-hand fill stands in for the "one" side and the left-hand fill
    // for the "many" side.
    let fills = b
        .modifier
        .as_ref()
        .map(|m| m.fill_values.clone())
        .unwrap_or_default();
    let (fill_one, fill_many) = (fills.rhs, fills.lhs);
    let mut result_cache: HashMap<(Labels, Labels), Labels> = HashMap::new();
    let args = [Val::Vector(l), Val::Vector(r)];
    let out = ev.range_eval(&args, |ev, _, a| {
        let (Some((ls, le)), Some((rs, re))) = (a[0].vector(), a[1].vector()) else {
            return Ok(Vec::new());
        };
        // The "many" side is iterated, the "one" side indexed.
        let (many_s, many_e, many_sig, one_s, one_e, one_sig) = if one_to_many {
            (rs, re, &rsig, ls, le, &lsig)
        } else {
            (ls, le, &lsig, rs, re, &rsig)
        };
        if (many_e.is_empty() || one_e.is_empty()) && fill_one.is_none() && fill_many.is_none() {
            return Ok(Vec::new());
        }
        let mut one: HashMap<&Labels, usize> = HashMap::with_capacity(one_e.len());
        for (k, e) in one_e.iter().enumerate() {
            if let Some(&prev) = one.get(&one_sig[e.s]) {
                let side = if one_to_many { "left" } else { "right" };
                let mut d1 = labels_string(&one_s[e.s].labels);
                let mut d2 = labels_string(&one_s[one_e[prev].s].labels);
                if d1 > d2 {
                    std::mem::swap(&mut d1, &mut d2);
                }
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{d1}, {d2}];many-to-many matching not allowed: matching labels must be unique on one side",
                    labels_string(&one_sig[e.s])
                )));
            }
            one.insert(&one_sig[e.s], k);
        }
        // Pairs to combine: (many-side sample, one-side sample, signature).
        // A `fill` value stands in for a missing side.
        let mut pairs: Vec<(Side, Side, Labels)> = Vec::with_capacity(many_e.len());
        let mut matched: std::collections::HashSet<Labels> = Default::default();
        for e in many_e.iter() {
            let sig = &many_sig[e.s];
            let m = Side::of(&many_s[e.s], e);
            match one.get(sig) {
                Some(&k) => {
                    let oe = &one_e[k];
                    matched.insert(sig.clone());
                    pairs.push((m, Side::of(&one_s[oe.s], oe), sig.clone()));
                }
                None => {
                    if let Some(f) = fill_one {
                        let l = sig_labels(&many_s[e.s].labels, &matching);
                        pairs.push((m, Side::fill(l, f), sig.clone()));
                    }
                }
            }
        }
        if let Some(f) = fill_many {
            for e in one_e.iter() {
                let sig = &one_sig[e.s];
                if matched.contains(sig) {
                    continue;
                }
                let l = sig_labels(&one_s[e.s].labels, &matching);
                pairs.push((Side::fill(l, f), Side::of(&one_s[e.s], e), sig.clone()));
            }
        }
        let mut matched_one: std::collections::HashSet<Labels> = Default::default();
        let mut matched_many: std::collections::HashSet<Labels> = Default::default();
        let mut out = Vec::new();
        let mut notes = ElemNotes::default();
        let mut incompatible = Vec::new();
        let mut layout = false;
        for (m, o, sig) in pairs {
            let r = if one_to_many {
                op.apply_elem(o.v, o.h.as_ref(), m.v, m.h.as_ref(), &mut notes)
            } else {
                op.apply_elem(m.v, m.h.as_ref(), o.v, o.h.as_ref(), &mut notes)
            };
            let key = (m.labels.clone(), o.labels.clone());
            let metric = match result_cache.get(&key) {
                Some(x) => x.clone(),
                None => {
                    let x = result_metric(
                        &m.labels,
                        &o.labels,
                        changes_schema,
                        one_to_one,
                        on,
                        &match_names,
                        &include,
                    );
                    result_cache.insert(key, x.clone());
                    x
                }
            };
            if one_to_one {
                if !matched_one.insert(sig) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else if !matched_many.insert(metric.clone()) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            let (val, h, keep) = match r {
                ElemResult::Val(v, h, k) => (v, h, k),
                ElemResult::Incompatible(l, r) => {
                    if !incompatible.contains(&(l, r)) {
                        incompatible.push((l, r));
                    }
                    continue;
                }
                ElemResult::IncompatibleLayout => {
                    layout = true;
                    continue;
                }
            };
            if return_bool {
                out.push(Out::f(metric, if keep { 1.0 } else { 0.0 }, true));
            } else if keep {
                let dn = !changes_schema && m.drop_name;
                out.push(Out {
                    labels: metric,
                    v: val,
                    h,
                    drop_name: dn,
                });
            }
        }
        raise_elem_notes(ev, op, &notes, &incompatible, layout, pos);
        Ok(out)
    })?;
    Ok(Val::Vector(out))
}

/// One side of a pair: a real sample or a fill value.
struct Side {
    labels: Labels,
    v: f64,
    h: Option<Arc<FloatHistogram>>,
    drop_name: bool,
}

impl Side {
    fn of(s: &Series, e: &super::eval::El) -> Side {
        Side {
            labels: s.labels.clone(),
            v: e.v,
            h: e.h.clone(),
            drop_name: s.drop_name,
        }
    }

    fn fill(labels: Labels, v: f64) -> Side {
        Side {
            labels,
            v,
            h: None,
            drop_name: false,
        }
    }
}

/// The labels a fill value carries: those the sides are matched on.
fn sig_labels(l: &Labels, matching: &Option<LabelModifier>) -> Labels {
    signature(l, matching)
}

fn result_metric(
    lhs: &Labels,
    rhs: &Labels,
    drop_name: bool,
    one_to_one: bool,
    on: bool,
    names: &[String],
    include: &[String],
) -> Labels {
    let mut b = lhs.builder();
    if drop_name {
        for n in super::eval::METADATA_LABELS {
            b.del(n);
        }
    }
    if one_to_one {
        if on {
            b.retain(|l| names.iter().any(|n| **n == *l.name));
        } else {
            for n in names {
                b.del(n);
            }
        }
    }
    for n in include {
        match rhs.get(n) {
            Some(v) if !v.is_empty() => b.set(n.as_str().into(), v.into()),
            _ => b.del(n),
        }
    }
    b.build()
}

fn set_op(
    ev: &mut Evaluator<'_>,
    op: Op,
    matching: &Option<LabelModifier>,
    l: Vec<Series>,
    r: Vec<Series>,
) -> Result<Val, QueryError> {
    let lsig: Vec<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    let args = [Val::Vector(l), Val::Vector(r)];
    let out = ev.range_eval(&args, |_, _, a| {
        let (Some((ls, le)), Some((rs, re))) = (a[0].vector(), a[1].vector()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let emit = |s: &Series, e: &super::eval::El| Out {
            labels: s.labels.clone(),
            v: e.v,
            h: e.h.clone(),
            drop_name: s.drop_name,
        };
        match op {
            Op::And => {
                let rset: std::collections::HashSet<&Labels> =
                    re.iter().map(|e| &rsig[e.s]).collect();
                for e in le.iter() {
                    if rset.contains(&lsig[e.s]) {
                        out.push(emit(&ls[e.s], e));
                    }
                }
            }
            Op::Unless => {
                let rset: std::collections::HashSet<&Labels> =
                    re.iter().map(|e| &rsig[e.s]).collect();
                for e in le.iter() {
                    if !rset.contains(&lsig[e.s]) {
                        out.push(emit(&ls[e.s], e));
                    }
                }
            }
            _ => {
                let lset: std::collections::HashSet<&Labels> =
                    le.iter().map(|e| &lsig[e.s]).collect();
                for e in le.iter() {
                    out.push(emit(&ls[e.s], e));
                }
                for e in re.iter() {
                    if !lset.contains(&rsig[e.s]) {
                        out.push(emit(&rs[e.s], e));
                    }
                }
            }
        }
        Ok(out)
    })?;
    Ok(Val::Vector(out))
}
