//! What a query is: a source (a whole table, or a range of one index, in an order) and a chain of
//! operators (filters and limits) applied to the documents the source yields, in order. The Rust
//! builder and Convex's JSON (see `json.rs`) both produce this one description.

use livebase_store::{BY_CREATION_TIME, Order};
use livebase_value::{FieldPath, Value};

use crate::Expression;

/// A query: build one with [`Query::table`], or parse Convex's JSON with [`Query::from_json`].
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub source: Source,
    pub operators: Vec<Operator>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Every document of the table, in `_creationTime` order (the `by_creation_time` index).
    FullTableScan { table: String, order: Order },
    /// A range of an index: equalities on a prefix of its fields, then at most one lower and one upper
    /// bound on the next field.
    IndexRange { table: String, index: String, range: Vec<RangeExpression>, order: Order },
}

/// One restriction of an index range: `field <comparison> value`; `value: None` is undefined.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeExpression {
    pub comparison: RangeComparison,
    pub field: FieldPath,
    pub value: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeComparison {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Operator {
    /// Keeps the documents for which the expression is true.
    Filter(Expression),
    /// Ends the query after this many documents have passed this point.
    Limit(usize),
}

impl Source {
    pub fn table(&self) -> &str {
        match self {
            Source::FullTableScan { table, .. } | Source::IndexRange { table, .. } => table,
        }
    }

    pub fn index(&self) -> &str {
        match self {
            Source::FullTableScan { .. } => BY_CREATION_TIME,
            Source::IndexRange { index, .. } => index,
        }
    }

    pub fn order(&self) -> Order {
        match self {
            Source::FullTableScan { order, .. } | Source::IndexRange { order, .. } => *order,
        }
    }

    pub fn range(&self) -> &[RangeExpression] {
        match self {
            Source::FullTableScan { .. } => &[],
            Source::IndexRange { range, .. } => range,
        }
    }
}

impl Query {
    /// All documents of `table` in creation order (`ctx.db.query("table")`).
    pub fn table(table: &str) -> Query {
        Query { source: Source::FullTableScan { table: table.to_owned(), order: Order::Asc }, operators: Vec::new() }
    }

    /// Reads a range of an index instead of the whole table (`.withIndex("index", q => q.eq(..))`).
    pub fn with_index(self, index: &str, range: impl FnOnce(IndexRangeBuilder) -> IndexRangeBuilder) -> Query {
        let source = Source::IndexRange {
            table: self.source.table().to_owned(),
            index: index.to_owned(),
            range: range(IndexRangeBuilder::default()).expressions,
            order: self.source.order(),
        };
        Query { source, ..self }
    }

    pub fn order(mut self, order: Order) -> Query {
        match &mut self.source {
            Source::FullTableScan { order: current, .. } | Source::IndexRange { order: current, .. } => {
                *current = order;
            }
        }
        self
    }

    pub fn filter(mut self, predicate: Expression) -> Query {
        self.operators.push(Operator::Filter(predicate));
        self
    }

    pub fn limit(mut self, n: usize) -> Query {
        self.operators.push(Operator::Limit(n));
        self
    }
}

/// Builds the range of `Query::with_index`, like Convex's `q` in `.withIndex("i", q => q.eq("a", 1))`.
/// Field paths are literals in Rust code: an invalid one panics (see [`crate::field`]).
#[derive(Default)]
pub struct IndexRangeBuilder {
    expressions: Vec<RangeExpression>,
}

impl IndexRangeBuilder {
    pub fn eq(self, field: &str, value: impl Into<Value>) -> IndexRangeBuilder {
        self.bound(RangeComparison::Eq, field, Some(value.into()))
    }
    pub fn gt(self, field: &str, value: impl Into<Value>) -> IndexRangeBuilder {
        self.bound(RangeComparison::Gt, field, Some(value.into()))
    }
    pub fn gte(self, field: &str, value: impl Into<Value>) -> IndexRangeBuilder {
        self.bound(RangeComparison::Gte, field, Some(value.into()))
    }
    pub fn lt(self, field: &str, value: impl Into<Value>) -> IndexRangeBuilder {
        self.bound(RangeComparison::Lt, field, Some(value.into()))
    }
    pub fn lte(self, field: &str, value: impl Into<Value>) -> IndexRangeBuilder {
        self.bound(RangeComparison::Lte, field, Some(value.into()))
    }

    /// Any restriction, including ones on undefined (`value: None`).
    pub fn bound(mut self, comparison: RangeComparison, field: &str, value: Option<Value>) -> IndexRangeBuilder {
        let field = FieldPath::parse(field).unwrap_or_else(|error| panic!("{error}"));
        self.expressions.push(RangeExpression { comparison, field, value });
        self
    }
}
