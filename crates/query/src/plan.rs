//! Planning: from a query description to the index range to scan. The pure part (`key_range`) turns
//! range expressions into a range of index keys; `Plan::new` adds what only the transaction knows (the
//! index's fields) and checks the query's limits.

use std::collections::BTreeMap;

use livebase_store::{KeyRange, Transaction, TransactionError, prefix_successor};
use livebase_value::{FieldPath, Value, encode_key_value, validate_identifier};

use crate::QueryError;
use crate::limits::{MAX_EXPRESSION_DEPTH, MAX_QUERY_OPERATORS};
use crate::query::{Operator, Query, RangeComparison, RangeExpression};

/// The index range a query scans, resolved against one transaction's catalog.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Every field of the index key in order, the implicit `_creationTime, _id` included.
    pub(crate) fields: Vec<FieldPath>,
    pub(crate) range: KeyRange,
}

impl Plan {
    pub(crate) fn new(query: &Query, tx: &mut Transaction) -> Result<Plan, QueryError> {
        let (table, index) = (query.source.table(), query.source.index());
        for (kind, name) in [("table", table), ("index", index)] {
            validate_identifier(kind, name).map_err(|error| QueryError::InvalidQuery(error.to_string()))?;
        }
        if query.operators.len() > MAX_QUERY_OPERATORS {
            return Err(QueryError::InvalidQuery(format!(
                "the query has {} operators (filters and limits), more than {MAX_QUERY_OPERATORS}",
                query.operators.len()
            )));
        }
        for operator in &query.operators {
            if let Operator::Filter(expression) = operator
                && expression.depth() > MAX_EXPRESSION_DEPTH
            {
                return Err(QueryError::InvalidQuery(format!(
                    "a filter expression is nested {} levels deep, more than {MAX_EXPRESSION_DEPTH}",
                    expression.depth()
                )));
            }
        }
        let fields = index_fields(tx, table, index)?;
        let range = key_range(&format!("{table}.{index}"), &fields, query.source.range())?;
        Ok(Plan { fields, range })
    }
}

/// The fields of an index key, `_creationTime, _id` included. The lookup is in the transaction's read set:
/// redefining the index invalidates the query.
fn index_fields(tx: &mut Transaction, table: &str, index: &str) -> Result<Vec<FieldPath>, QueryError> {
    tx.index_fields(table, index)?
        .ok_or_else(|| TransactionError::IndexNotFound { table: table.to_owned(), index: index.to_owned() }.into())
}

/// Turns range expressions into the range of keys of the index `name` whose key fields are `fields`.
///
/// The equalities must cover a prefix of the fields (in any order, as in Convex) and the bounds, at most
/// one lower and one upper, the field right after it. Bounds apply to a prefix of the key, so they use
/// prefix successors: with `a == 5` encoded as `P`, every key of such a document starts with `P`, so
/// `a <= 5` ends before `prefix_successor(P)` and `a > 5` starts there.
pub(crate) fn key_range(name: &str, fields: &[FieldPath], range: &[RangeExpression]) -> Result<KeyRange, QueryError> {
    let invalid = |message: String| Err(QueryError::InvalidIndexRange(message));
    let mut equalities: BTreeMap<&FieldPath, &Option<Value>> = BTreeMap::new();
    let mut lower: Option<&RangeExpression> = None;
    let mut upper: Option<&RangeExpression> = None;
    for expression in range {
        let field = &expression.field;
        if !fields.contains(field) {
            return invalid(format!("index `{name}` with fields {} does not index field `{field}`", FieldList(fields)));
        }
        let slot = match expression.comparison {
            RangeComparison::Eq => {
                if equalities.insert(field, &expression.value).is_some() {
                    return invalid(format!("the range of index `{name}` has two equalities on field `{field}`"));
                }
                continue;
            }
            RangeComparison::Gt | RangeComparison::Gte => &mut lower,
            RangeComparison::Lt | RangeComparison::Lte => &mut upper,
        };
        if slot.is_some() {
            return invalid(format!(
                "the range of index `{name}` has two {} bounds (on field `{field}`)",
                if matches!(expression.comparison, RangeComparison::Gt | RangeComparison::Gte) {
                    "lower"
                } else {
                    "upper"
                }
            ));
        }
        *slot = Some(expression);
    }
    let inequality_field = match (lower, upper) {
        (Some(lower), Some(upper)) if lower.field != upper.field => {
            return invalid(format!(
                "the range of index `{name}` bounds two fields, `{}` and `{}`; bounds may apply to one field only \
                 (use a filter for the other)",
                lower.field, upper.field
            ));
        }
        (Some(bound), _) | (None, Some(bound)) => Some(&bound.field),
        (None, None) => None,
    };
    if let Some(field) = inequality_field
        && equalities.contains_key(field)
    {
        return invalid(format!("the range of index `{name}` has both an equality and a bound on field `{field}`"));
    }
    // Equalities on the first fields in index order, then the bounded field.
    let used = fields.iter().take_while(|field| equalities.contains_key(field)).count();
    let out_of_order = fields
        .iter()
        .skip(used)
        .find(|field| equalities.contains_key(field))
        .or(inequality_field.filter(|field| fields.get(used) != Some(*field)));
    if let Some(field) = out_of_order {
        return invalid(format!(
            "the range of index `{name}` must use its fields in order ({}): equalities on a prefix of them, then \
             bounds on the next one; field `{field}` is out of place",
            FieldList(fields)
        ));
    }

    let mut prefix = Vec::new();
    for field in &fields[..used] {
        encode_key_value(&mut prefix, equalities[field].as_ref());
    }
    let with_value = |bound: &RangeExpression| {
        let mut key = prefix.clone();
        encode_key_value(&mut key, bound.value.as_ref());
        key
    };
    let past = |key: &[u8]| prefix_successor(key).expect("keys of values start with a type tag below 0xFF");
    let start = match lower {
        None => prefix.clone(),
        Some(bound) if bound.comparison == RangeComparison::Gte => with_value(bound),
        Some(bound) => past(&with_value(bound)),
    };
    let end = match upper {
        None => prefix_successor(&prefix),
        Some(bound) if bound.comparison == RangeComparison::Lt => Some(with_value(bound)),
        Some(bound) => Some(past(&with_value(bound))),
    };
    Ok(KeyRange { start, end })
}

struct FieldList<'a>(&'a [FieldPath]);

impl std::fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "[{}]", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(names: &[&str]) -> Vec<FieldPath> {
        names.iter().map(|name| FieldPath::parse(name).unwrap()).collect()
    }

    fn expression(comparison: RangeComparison, field: &str, value: i64) -> RangeExpression {
        RangeExpression { comparison, field: FieldPath::parse(field).unwrap(), value: Some(Value::Int64(value)) }
    }

    fn encoded(values: &[i64]) -> Vec<u8> {
        let mut key = Vec::new();
        for value in values {
            encode_key_value(&mut key, Some(&Value::Int64(*value)));
        }
        key
    }

    /// A key of a document whose indexed values are `values`, with some suffix (creation time, id).
    fn key(values: &[i64], suffix: &[u8]) -> Vec<u8> {
        [encoded(values), suffix.to_vec()].concat()
    }

    const ABC: [&str; 5] = ["a", "b", "c", "_creationTime", "_id"];
    use RangeComparison::{Eq, Gt, Gte, Lt, Lte};

    #[test]
    fn bounds_on_a_prefix_cover_every_key_with_that_prefix() {
        let fields = fields(&ABC);
        let range = |expressions: &[RangeExpression]| key_range("t.abc", &fields, expressions).unwrap();
        let low = [0x01u8];
        let high = [0xFFu8, 0xFF];

        let a_is_5 = range(&[expression(Eq, "a", 5)]);
        assert!(a_is_5.contains(&key(&[5], &low)) && a_is_5.contains(&key(&[5, i64::MAX], &high)));
        assert!(!a_is_5.contains(&key(&[4, i64::MAX], &high)) && !a_is_5.contains(&key(&[6], &low)));

        let at_most_5 = range(&[expression(Lte, "a", 5)]);
        assert!(at_most_5.contains(&key(&[5, i64::MAX], &high)) && !at_most_5.contains(&key(&[6], &low)));
        let below_5 = range(&[expression(Lt, "a", 5)]);
        assert!(below_5.contains(&key(&[4, i64::MAX], &high)) && !below_5.contains(&key(&[5, i64::MIN], &low)));
        let above_5 = range(&[expression(Gt, "a", 5)]);
        assert!(!above_5.contains(&key(&[5, i64::MAX], &high)) && above_5.contains(&key(&[6, i64::MIN], &low)));
        let from_5 = range(&[expression(Gte, "a", 5)]);
        assert!(from_5.contains(&key(&[5, i64::MIN], &[])) && !from_5.contains(&key(&[4, i64::MAX], &high)));

        // Equalities in any order, then both bounds on the next field.
        let both =
            range(&[expression(Lte, "c", 9), expression(Eq, "b", 2), expression(Eq, "a", 1), expression(Gt, "c", 3)]);
        assert!(both.contains(&key(&[1, 2, 9], &high)) && both.contains(&key(&[1, 2, 4], &low)));
        assert!(!both.contains(&key(&[1, 2, 3], &high)) && !both.contains(&key(&[1, 2, 10], &low)));
        assert!(!both.contains(&key(&[1, 3, 5], &low)));

        assert_eq!(range(&[]), KeyRange::all());
        assert!(range(&[expression(Gt, "a", 5), expression(Lt, "a", 5)]).is_empty());
    }

    #[test]
    fn undefined_sorts_first() {
        let fields = fields(&ABC);
        let undefined = RangeExpression { comparison: Eq, field: FieldPath::parse("a").unwrap(), value: None };
        let range = key_range("t.abc", &fields, &[undefined]).unwrap();
        let mut missing = Vec::new();
        encode_key_value(&mut missing, None);
        assert!(range.contains(&[missing, vec![0x04]].concat()));
        assert!(!range.contains(&key(&[i64::MIN], &[])));
    }

    #[test]
    fn ranges_that_do_not_fit_the_index_name_index_and_field() {
        let fields = fields(&ABC);
        let error = |expressions: &[RangeExpression]| key_range("t.abc", &fields, expressions).unwrap_err().to_string();
        assert_eq!(
            error(&[expression(Eq, "x", 1)]),
            "Invalid index range: index `t.abc` with fields [a, b, c, _creationTime, _id] does not index field `x`"
        );
        assert_eq!(
            error(&[expression(Eq, "b", 1)]),
            "Invalid index range: the range of index `t.abc` must use its fields in order ([a, b, c, _creationTime, \
             _id]): equalities on a prefix of them, then bounds on the next one; field `b` is out of place"
        );
        assert!(error(&[expression(Eq, "a", 1), expression(Gt, "c", 1)]).contains("field `c` is out of place"));
        assert!(error(&[expression(Eq, "a", 1), expression(Eq, "c", 1)]).contains("field `c` is out of place"));
        assert_eq!(
            error(&[expression(Eq, "a", 1), expression(Eq, "a", 2)]),
            "Invalid index range: the range of index `t.abc` has two equalities on field `a`"
        );
        assert_eq!(
            error(&[expression(Gt, "a", 1), expression(Gte, "a", 2)]),
            "Invalid index range: the range of index `t.abc` has two lower bounds (on field `a`)"
        );
        assert_eq!(
            error(&[expression(Lt, "a", 1), expression(Lte, "a", 2)]),
            "Invalid index range: the range of index `t.abc` has two upper bounds (on field `a`)"
        );
        assert_eq!(
            error(&[expression(Gt, "a", 1), expression(Lt, "b", 2)]),
            "Invalid index range: the range of index `t.abc` bounds two fields, `a` and `b`; bounds may apply to one \
             field only (use a filter for the other)"
        );
        assert_eq!(
            error(&[expression(Eq, "a", 1), expression(Gt, "a", 2)]),
            "Invalid index range: the range of index `t.abc` has both an equality and a bound on field `a`"
        );
    }
}
