//! Running queries: the operator pipeline, the one-shot terminals (`collect`, `take`, `first`,
//! `unique`) and resumable streams. Documents are pulled from the index scan one at a time and only as
//! long as the query needs more, so the scan records exactly what the query consumed: a `first()` with
//! a filter reads up to its first match and no further.

use std::sync::Arc;

use livebase_store::{Document, KeyRange, Transaction};

use crate::QueryError;
use crate::cursor::Position;
use crate::plan::Plan;
use crate::query::{Operator, Query};

/// How many documents have passed each operator so far.
#[derive(Debug)]
pub(crate) struct Pipeline {
    passed: Vec<usize>,
}

impl Pipeline {
    pub(crate) fn new(operators: &[Operator]) -> Pipeline {
        Pipeline { passed: vec![0; operators.len()] }
    }

    /// Whether some limit is reached: the query ends without reading another document.
    pub(crate) fn is_closed(&self, operators: &[Operator]) -> bool {
        assert_eq!(operators.len(), self.passed.len());
        operators
            .iter()
            .zip(&self.passed)
            .any(|(operator, passed)| matches!(operator, Operator::Limit(n) if passed >= n))
    }

    /// Runs a document through the operators in order; true when it comes out of the last one.
    /// Call only while the pipeline is open.
    pub(crate) fn admit(&mut self, operators: &[Operator], document: &Document) -> Result<bool, QueryError> {
        for (operator, passed) in operators.iter().zip(&mut self.passed) {
            match operator {
                Operator::Filter(predicate) => {
                    if !predicate.matches(document.object())? {
                        return Ok(false);
                    }
                }
                Operator::Limit(n) => assert!(*passed < *n, "a document went past a reached limit"),
            }
            *passed += 1;
        }
        Ok(true)
    }
}

/// Why a pull stopped.
enum Pulled {
    /// The range ran out, or a limit closed the pipeline: nothing more will come.
    Finished,
    /// `max` documents came out; reading stopped after this index key (`None` if nothing was read).
    Paused(Option<Vec<u8>>),
}

/// Reads `range` in the query's order through the pipeline into `out` until `max` documents came out or
/// nothing more can come.
fn pull(
    query: &Query,
    range: KeyRange,
    tx: &mut Transaction,
    pipeline: &mut Pipeline,
    max: usize,
    out: &mut Vec<Arc<Document>>,
) -> Result<Pulled, QueryError> {
    let mut scan = tx.scan(query.source.table(), query.source.index(), range, query.source.order())?;
    let wanted = out.len().saturating_add(max);
    loop {
        if out.len() == wanted {
            return Ok(Pulled::Paused(scan.last_key().map(|key| key.to_vec())));
        }
        if pipeline.is_closed(&query.operators) {
            return Ok(Pulled::Finished);
        }
        let Some(document) = scan.next().transpose()? else { return Ok(Pulled::Finished) };
        if pipeline.admit(&query.operators, &document)? {
            out.push(document);
        }
    }
}

impl Query {
    /// Every result (`.collect()`). Bounded by the transaction's read limits.
    pub fn collect(&self, tx: &mut Transaction) -> Result<Vec<Arc<Document>>, QueryError> {
        self.take(tx, usize::MAX)
    }

    /// The first `n` results (`.take(n)`), reading no further than the `n`-th.
    pub fn take(&self, tx: &mut Transaction, n: usize) -> Result<Vec<Arc<Document>>, QueryError> {
        let plan = Plan::new(self, tx)?;
        let mut out = Vec::new();
        pull(self, plan.range, tx, &mut Pipeline::new(&self.operators), n, &mut out)?;
        assert!(out.len() <= n);
        Ok(out)
    }

    /// The first result (`.first()`).
    pub fn first(&self, tx: &mut Transaction) -> Result<Option<Arc<Document>>, QueryError> {
        Ok(self.take(tx, 1)?.pop())
    }

    /// The only result, if any (`.unique()`); more than one is an error.
    pub fn unique(&self, tx: &mut Transaction) -> Result<Option<Arc<Document>>, QueryError> {
        match self.take(tx, 2)?.as_slice() {
            [] => Ok(None),
            [only] => Ok(Some(Arc::clone(only))),
            [first, second] => Err(QueryError::NotUnique {
                table: self.source.table().to_owned(),
                first: first.id(),
                second: second.id(),
            }),
            more => unreachable!("take(2) returned {} documents", more.len()),
        }
    }

    /// How many results there are (`.count()`), in O(log n) from the index's subtree counts, without
    /// reading the documents. Only for queries without filters, since a filter needs every document
    /// read. What it reads is exact: with a `limit(n)`, the range up to the `n`-th result (or all of it
    /// when there are fewer), so writes further on leave the count alone.
    pub fn count(&self, tx: &mut Transaction) -> Result<usize, QueryError> {
        if self.operators.iter().any(|operator| matches!(operator, Operator::Filter(_))) {
            return Err(QueryError::InvalidQuery(
                "count() needs a query without filters: a filter can only be counted by reading every document; \
                 use an index range instead"
                    .to_owned(),
            ));
        }
        let plan = Plan::new(self, tx)?;
        let (table, index, order) = (self.source.table(), self.source.index(), self.source.order());
        let limit = self.operators.iter().filter_map(|operator| match operator {
            Operator::Limit(n) => Some(*n),
            Operator::Filter(_) => None,
        });
        match limit.min() {
            Some(0) => Ok(0),
            Some(n) if tx.key_at_offset(table, index, plan.range.clone(), order, n - 1)?.is_some() => Ok(n),
            _ => Ok(tx.count(table, index, plan.range)?),
        }
    }

    /// Starts a stream of the results, for callers that fetch them one at a time across calls (the
    /// function runtime's `queryStreamNext`).
    pub fn stream(self, tx: &mut Transaction) -> Result<QueryStream, QueryError> {
        let plan = Plan::new(&self, tx)?;
        let pipeline = Pipeline::new(&self.operators);
        Ok(QueryStream { query: self, remaining: plan.range, pipeline, finished: false })
    }
}

/// A query being read one result at a time. It holds no borrow of the transaction: each `next` scans
/// from where the last one stopped, so what it records in the read set is exactly what was returned.
#[derive(Debug)]
pub struct QueryStream {
    query: Query,
    /// The part of the planned range not read yet.
    remaining: KeyRange,
    pipeline: Pipeline,
    finished: bool,
}

impl QueryStream {
    /// The next result. `tx` must be the transaction the stream was started in.
    pub fn next(&mut self, tx: &mut Transaction) -> Result<Option<Arc<Document>>, QueryError> {
        if self.finished {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(1);
        match pull(&self.query, self.remaining.clone(), tx, &mut self.pipeline, 1, &mut out)? {
            Pulled::Paused(last_key) => {
                let last_key = last_key.expect("a paused pull of one result read at least one document");
                let order = self.query.source.order();
                self.remaining =
                    Position::between(&self.remaining, &Position::after(&last_key, order), &Position::end(order));
            }
            Pulled::Finished => self.finished = true,
        }
        Ok(out.pop())
    }
}
