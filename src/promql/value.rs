//! Query results and the annotations that travel with them.

use std::sync::Arc;

use crate::model::histogram::FloatHistogram;
use crate::model::{Labels, Timestamp};

/// One point of a series: a float, or a native histogram when `h` is set
/// (`v` is then meaningless).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Timestamp in ms.
    pub t: Timestamp,
    /// Float value.
    pub v: f64,
    /// Histogram value.
    pub h: Option<Arc<FloatHistogram>>,
}

impl Point {
    /// A float point.
    pub fn float(t: Timestamp, v: f64) -> Point {
        Point { t, v, h: None }
    }
}

/// One series of a range vector or of a range query's result.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// Points in time order.
    pub points: Vec<Point>,
    /// Prometheus 3 delayed name removal: the metric name is still present
    /// (so `by (__name__)` and label functions can see it) but must go
    /// before the result leaves the engine.
    pub drop_name: bool,
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct InstantSample {
    /// The series' labels.
    pub labels: Labels,
    /// Evaluation timestamp.
    pub t: Timestamp,
    /// Value.
    pub v: f64,
    /// Histogram value, when the sample is a native histogram.
    pub h: Option<Arc<FloatHistogram>>,
    /// See [`Series::drop_name`].
    pub drop_name: bool,
}

/// The result of a query, typed as the Prometheus API types it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A single number at a time.
    Scalar {
        /// Evaluation timestamp.
        t: Timestamp,
        /// Value.
        v: f64,
    },
    /// A string literal at a time.
    String {
        /// Evaluation timestamp.
        t: Timestamp,
        /// Value.
        s: String,
    },
    /// An instant vector.
    Vector(Vec<InstantSample>),
    /// A range vector, or the result of a range query.
    Matrix(Vec<Series>),
}

impl Value {
    /// The `resultType` the HTTP API reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Warnings and infos gathered while evaluating, deduplicated, in the
/// order first raised.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotations {
    /// `PromQL warning: …` messages.
    pub warnings: Vec<String>,
    /// `PromQL info: …` messages.
    pub infos: Vec<String>,
}

impl Annotations {
    /// Adds a warning unless the same text is already present.
    pub fn warn(&mut self, msg: String) {
        let msg = format!("PromQL warning: {msg}");
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// Adds an info unless the same text is already present.
    pub fn info(&mut self, msg: String) {
        let msg = format!("PromQL info: {msg}");
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// True when nothing was raised.
    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}
