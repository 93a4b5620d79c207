//! The JSON form of queries that Convex's npm server library sends with `1.0/queryStream` and
//! `1.0/queryPage` (`query_impl.ts`, `filter_builder_impl.ts`, `index_range_builder_impl.ts`):
//!
//! ```json
//! {"source": {"type": "FullTableScan", "tableName": "t", "order": "asc" | "desc" | null}
//!          | {"type": "IndexRange", "indexName": "t.index", "order": ...,
//!             "range": [{"type": "Eq" | "Gt" | "Gte" | "Lt" | "Lte", "fieldPath": "a.b", "value": <value>}]},
//!  "operators": [{"filter": <expression>} | {"limit": n}]}
//! ```
//!
//! An expression is `{"$eq": [l, r]}` (also `$neq $lt $lte $gt $gte $add $sub $mul $div $mod`),
//! `{"$neg": x}`, `{"$not": x}`, `{"$and": [..]}`, `{"$or": [..]}`, `{"$field": "a.b"}` or
//! `{"$literal": <value>}`. Values are `convex_encoded_json`, plus `{"$undefined": null}` for undefined.
//! Keys this format does not define are ignored, as Convex's server does.

use livebase_store::Order;
use livebase_value::Path;
use livebase_value::{FieldPath, Value, from_convex_json, to_convex_json};
use serde_json::{Map, Value as Json, json};

use crate::QueryError;
use crate::expression::{Arithmetic, Comparison, Expression};
use crate::limits::{MAX_EXPRESSION_DEPTH, MAX_QUERY_OPERATORS};
use crate::query::{Operator, Query, RangeComparison, RangeExpression, Source};

impl Query {
    /// Parses Convex's JSON description of a query.
    pub fn from_json(json: &Json) -> Result<Query, QueryError> {
        let object = as_object(json, &Path::Root)?;
        let source_path = Path::Field(&Path::Root, "source");
        let source =
            source_from_json(as_object(required(object, "source", &Path::Root)?, &source_path)?, &source_path)?;
        let operators_path = Path::Field(&Path::Root, "operators");
        let operators = as_array(required(object, "operators", &Path::Root)?, &operators_path)?;
        if operators.len() > MAX_QUERY_OPERATORS {
            return Err(problem(
                &operators_path,
                format!("{} operators, more than the {MAX_QUERY_OPERATORS} a query may have", operators.len()),
            ));
        }
        let operators = operators
            .iter()
            .enumerate()
            .map(|(index, operator)| operator_from_json(operator, &Path::Index(&operators_path, index)))
            .collect::<Result<_, _>>()?;
        Ok(Query { source, operators })
    }

    /// The JSON description Convex's npm library would send for this query.
    pub fn to_json(&self) -> Json {
        let order = match self.source.order() {
            Order::Asc => "asc",
            Order::Desc => "desc",
        };
        let source = match &self.source {
            Source::FullTableScan { table, .. } => json!({"type": "FullTableScan", "tableName": table, "order": order}),
            Source::IndexRange { table, index, range, .. } => json!({
                "type": "IndexRange",
                "indexName": format!("{table}.{index}"),
                "range": range.iter().map(|expression| json!({
                    "type": name_of(&RANGE_COMPARISONS, expression.comparison),
                    "fieldPath": expression.field.to_string(),
                    "value": maybe_value_to_json(expression.value.as_ref()),
                })).collect::<Vec<_>>(),
                "order": order,
            }),
        };
        let operators: Vec<Json> = self
            .operators
            .iter()
            .map(|operator| match operator {
                Operator::Filter(expression) => json!({"filter": expression_to_json(expression)}),
                Operator::Limit(n) => json!({"limit": n}),
            })
            .collect();
        json!({"source": source, "operators": operators})
    }
}

fn problem(path: &Path<'_>, problem: impl Into<String>) -> QueryError {
    let path = match path {
        Path::Root => "the top level".to_owned(),
        path => format!("`{path}`"),
    };
    QueryError::InvalidJson { path, problem: problem.into() }
}

fn as_object<'j>(json: &'j Json, path: &Path<'_>) -> Result<&'j Map<String, Json>, QueryError> {
    json.as_object()
        .ok_or_else(|| problem(path, format!("expected an object, got {}", livebase_value::describe_json_type(json))))
}

fn as_array<'j>(json: &'j Json, path: &Path<'_>) -> Result<&'j Vec<Json>, QueryError> {
    json.as_array()
        .ok_or_else(|| problem(path, format!("expected an array, got {}", livebase_value::describe_json_type(json))))
}

fn as_str<'j>(json: &'j Json, path: &Path<'_>) -> Result<&'j str, QueryError> {
    json.as_str()
        .ok_or_else(|| problem(path, format!("expected a string, got {}", livebase_value::describe_json_type(json))))
}

fn required<'j>(object: &'j Map<String, Json>, key: &str, path: &Path<'_>) -> Result<&'j Json, QueryError> {
    object.get(key).ok_or_else(|| problem(path, format!("the key `{key}` is missing")))
}

fn field_path(json: &Json, path: &Path<'_>) -> Result<FieldPath, QueryError> {
    FieldPath::parse(as_str(json, path)?).map_err(|error| problem(path, error.to_string()))
}

fn source_from_json(source: &Map<String, Json>, path: &Path<'_>) -> Result<Source, QueryError> {
    let order = match source.get("order") {
        None | Some(Json::Null) => Order::Asc,
        Some(Json::String(order)) if order == "asc" => Order::Asc,
        Some(Json::String(order)) if order == "desc" => Order::Desc,
        Some(other) => {
            return Err(problem(
                &Path::Field(path, "order"),
                format!("expected \"asc\", \"desc\" or null, got {other}"),
            ));
        }
    };
    let type_path = Path::Field(path, "type");
    match as_str(required(source, "type", path)?, &type_path)? {
        "FullTableScan" => {
            let table = as_str(required(source, "tableName", path)?, &Path::Field(path, "tableName"))?;
            Ok(Source::FullTableScan { table: table.to_owned(), order })
        }
        "IndexRange" => {
            let name_path = Path::Field(path, "indexName");
            let name = as_str(required(source, "indexName", path)?, &name_path)?;
            let Some((table, index)) = name.split_once('.') else {
                return Err(problem(&name_path, format!("expected \"table.index\", got {name:?}")));
            };
            let range_path = Path::Field(path, "range");
            let range = as_array(required(source, "range", path)?, &range_path)?
                .iter()
                .enumerate()
                .map(|(index, expression)| range_expression_from_json(expression, &Path::Index(&range_path, index)))
                .collect::<Result<_, _>>()?;
            Ok(Source::IndexRange { table: table.to_owned(), index: index.to_owned(), range, order })
        }
        "Search" => Err(problem(&type_path, "search queries (`withSearchIndex`) are not supported yet")),
        other => Err(problem(&type_path, format!("expected \"FullTableScan\" or \"IndexRange\", got {other:?}"))),
    }
}

const RANGE_COMPARISONS: [(RangeComparison, &str); 5] = [
    (RangeComparison::Eq, "Eq"),
    (RangeComparison::Gt, "Gt"),
    (RangeComparison::Gte, "Gte"),
    (RangeComparison::Lt, "Lt"),
    (RangeComparison::Lte, "Lte"),
];

fn range_expression_from_json(json: &Json, path: &Path<'_>) -> Result<RangeExpression, QueryError> {
    let object = as_object(json, path)?;
    let type_path = Path::Field(path, "type");
    let name = as_str(required(object, "type", path)?, &type_path)?;
    let Some((comparison, _)) = RANGE_COMPARISONS.iter().find(|(_, candidate)| *candidate == name) else {
        return Err(problem(&type_path, format!("expected one of Eq, Gt, Gte, Lt, Lte, got {name:?}")));
    };
    let field = field_path(required(object, "fieldPath", path)?, &Path::Field(path, "fieldPath"))?;
    let value = maybe_value_from_json(required(object, "value", path)?, &Path::Field(path, "value"))?;
    Ok(RangeExpression { comparison: *comparison, field, value })
}

fn operator_from_json(json: &Json, path: &Path<'_>) -> Result<Operator, QueryError> {
    let object = as_object(json, path)?;
    match (object.get("filter"), object.get("limit")) {
        (Some(filter), None) => Ok(Operator::Filter(expression_from_json(filter, &Path::Field(path, "filter"), 1)?)),
        (None, Some(limit)) => match limit.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Operator::Limit(n)),
            None => Err(problem(&Path::Field(path, "limit"), format!("expected a non-negative integer, got {limit}"))),
        },
        _ => Err(problem(path, "expected exactly one of `filter` and `limit`")),
    }
}

/// `{"$undefined": null}`, how Convex's npm library writes undefined in filters and index ranges.
fn is_undefined(json: &Json) -> bool {
    json.as_object().is_some_and(|object| object.len() == 1 && object.get("$undefined") == Some(&Json::Null))
}

fn maybe_value_from_json(json: &Json, path: &Path<'_>) -> Result<Option<Value>, QueryError> {
    if is_undefined(json) {
        return Ok(None);
    }
    from_convex_json(json).map(Some).map_err(|error| problem(path, error.to_string()))
}

fn maybe_value_to_json(value: Option<&Value>) -> Json {
    match value {
        Some(value) => to_convex_json(value),
        None => json!({"$undefined": null}),
    }
}

const COMPARISONS: [(Comparison, &str); 6] = [
    (Comparison::Eq, "$eq"),
    (Comparison::Neq, "$neq"),
    (Comparison::Lt, "$lt"),
    (Comparison::Lte, "$lte"),
    (Comparison::Gt, "$gt"),
    (Comparison::Gte, "$gte"),
];
const ARITHMETIC: [(Arithmetic, &str); 5] = [
    (Arithmetic::Add, "$add"),
    (Arithmetic::Sub, "$sub"),
    (Arithmetic::Mul, "$mul"),
    (Arithmetic::Div, "$div"),
    (Arithmetic::Mod, "$mod"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], operation: T) -> &'static str {
    table.iter().find(|(candidate, _)| *candidate == operation).expect("every operation is listed").1
}

fn expression_from_json(json: &Json, path: &Path<'_>, depth: usize) -> Result<Expression, QueryError> {
    // Checked before descending, so the recursion is bounded whatever the input.
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(problem(path, format!("the expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep")));
    }
    let object = as_object(json, path)?;
    let mut entries = object.iter();
    let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
        return Err(problem(path, format!("an expression is an object with one key, got {} keys", object.len())));
    };
    let operand_path = Path::Field(path, operator);
    let operand_path = &operand_path;
    let pair = || -> Result<(Box<Expression>, Box<Expression>), QueryError> {
        match as_array(operand, operand_path)?.as_slice() {
            [left, right] => Ok((
                Box::new(expression_from_json(left, &Path::Index(operand_path, 0), depth + 1)?),
                Box::new(expression_from_json(right, &Path::Index(operand_path, 1), depth + 1)?),
            )),
            other => Err(problem(operand_path, format!("expected 2 operands, got {}", other.len()))),
        }
    };
    let list = || -> Result<Vec<Expression>, QueryError> {
        as_array(operand, operand_path)?
            .iter()
            .enumerate()
            .map(|(index, item)| expression_from_json(item, &Path::Index(operand_path, index), depth + 1))
            .collect()
    };
    let single = || expression_from_json(operand, operand_path, depth + 1).map(Box::new);
    if let Some((comparison, _)) = COMPARISONS.iter().find(|(_, name)| name == operator) {
        let (left, right) = pair()?;
        return Ok(Expression::Compare(*comparison, left, right));
    }
    if let Some((operation, _)) = ARITHMETIC.iter().find(|(_, name)| name == operator) {
        let (left, right) = pair()?;
        return Ok(Expression::Arithmetic(*operation, left, right));
    }
    match operator.as_str() {
        "$neg" => Ok(Expression::Negate(single()?)),
        "$not" => Ok(Expression::Not(single()?)),
        "$and" => Ok(Expression::And(list()?)),
        "$or" => Ok(Expression::Or(list()?)),
        "$field" => Ok(Expression::Field(field_path(operand, operand_path)?)),
        "$literal" => Ok(Expression::Literal(maybe_value_from_json(operand, operand_path)?)),
        other => Err(problem(path, format!("unknown expression operator {other:?}"))),
    }
}

pub(crate) fn expression_to_json(expression: &Expression) -> Json {
    let mut object = Map::new();
    let (key, operand) = match expression {
        Expression::Compare(comparison, left, right) => {
            (name_of(&COMPARISONS, *comparison), json!([expression_to_json(left), expression_to_json(right)]))
        }
        Expression::Arithmetic(operation, left, right) => {
            (name_of(&ARITHMETIC, *operation), json!([expression_to_json(left), expression_to_json(right)]))
        }
        Expression::Negate(operand) => ("$neg", expression_to_json(operand)),
        Expression::Not(operand) => ("$not", expression_to_json(operand)),
        Expression::And(operands) => ("$and", Json::Array(operands.iter().map(expression_to_json).collect())),
        Expression::Or(operands) => ("$or", Json::Array(operands.iter().map(expression_to_json).collect())),
        Expression::Field(path) => ("$field", Json::String(path.to_string())),
        Expression::Literal(value) => ("$literal", maybe_value_to_json(value.as_ref())),
    };
    object.insert(key.to_owned(), operand);
    Json::Object(object)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{field, literal, undefined};

    fn parse(json: Json) -> Result<Query, QueryError> {
        Query::from_json(&json)
    }

    fn error(json: Json) -> String {
        parse(json).unwrap_err().to_string()
    }

    fn full_scan_with(operators: Json) -> Json {
        json!({"source": {"type": "FullTableScan", "tableName": "t", "order": null}, "operators": operators})
    }

    #[test]
    fn parses_what_the_npm_library_sends() {
        // db.query("messages").withIndex("by_channel", q => q.eq("channel", "general").gt("n", 5n))
        //   .filter(q => q.and(q.neq(q.field("author"), undefined), q.gte(q.add(q.field("n"), 1), 2.5)))
        //   .order("desc")
        let json = json!({
            "source": {
                "type": "IndexRange",
                "indexName": "messages.by_channel",
                "range": [
                    {"type": "Eq", "fieldPath": "channel", "value": "general"},
                    {"type": "Gt", "fieldPath": "n", "value": {"$integer": "BQAAAAAAAAA="}},
                ],
                "order": "desc",
            },
            "operators": [
                {"filter": {"$and": [
                    {"$neq": [{"$field": "author"}, {"$literal": {"$undefined": null}}]},
                    {"$gte": [{"$add": [{"$field": "n"}, {"$literal": 1.0}]}, {"$literal": 2.5}]},
                ]}},
                {"limit": 10},
            ],
        });
        let expected = Query::table("messages")
            .with_index("by_channel", |q| q.eq("channel", "general").gt("n", 5i64))
            .filter(field("author").neq(undefined()).and((field("n") + 1.0).gte(2.5)))
            .limit(10)
            .order(Order::Desc);
        assert_eq!(parse(json.clone()), Ok(expected.clone()));
        assert_eq!(expected.to_json(), json);

        let all = parse(full_scan_with(json!([]))).unwrap();
        assert_eq!(all, Query::table("t"));
        assert_eq!(all.to_json()["source"]["order"], "asc");
    }

    #[test]
    fn every_operator_has_a_json_name() {
        let operands = || (field("a"), literal(1i64));
        let mut expressions = vec![
            -field("a"),
            !field("b"),
            Expression::Or(vec![field("c"), literal(true)]),
            Expression::And(vec![]),
            Expression::Literal(Some(Value::Bytes(vec![1, 2]))),
        ];
        for comparison in
            [Comparison::Eq, Comparison::Neq, Comparison::Lt, Comparison::Lte, Comparison::Gt, Comparison::Gte]
        {
            let (left, right) = operands();
            expressions.push(left.compare(comparison, right));
        }
        for operation in [Arithmetic::Add, Arithmetic::Sub, Arithmetic::Mul, Arithmetic::Div, Arithmetic::Mod] {
            let (left, right) = operands();
            expressions.push(left.arithmetic(operation, right));
        }
        for expression in expressions {
            let query = Query::table("t").filter(expression);
            assert_eq!(Query::from_json(&query.to_json()), Ok(query.clone()), "{}", query.to_json());
        }
    }

    #[test]
    fn bad_json_gets_an_error_that_points_at_it() {
        let cases = [
            (json!([]), "Invalid query JSON at the top level: expected an object, got an array"),
            (json!({"operators": []}), "Invalid query JSON at the top level: the key `source` is missing"),
            (
                json!({"source": {"type": "FullTableScan", "tableName": "t"}}),
                "Invalid query JSON at the top level: the key `operators` is missing",
            ),
            (
                json!({"source": {"type": "Nope"}, "operators": []}),
                "Invalid query JSON at `source.type`: expected \"FullTableScan\" or \"IndexRange\", got \"Nope\"",
            ),
            (
                json!({"source": {"type": "Search", "indexName": "t.s", "filters": []}, "operators": []}),
                "Invalid query JSON at `source.type`: search queries (`withSearchIndex`) are not supported yet",
            ),
            (
                json!({"source": {"type": "FullTableScan", "tableName": 5}, "operators": []}),
                "Invalid query JSON at `source.tableName`: expected a string, got a number",
            ),
            (
                json!({"source": {"type": "FullTableScan", "tableName": "t", "order": "up"}, "operators": []}),
                "Invalid query JSON at `source.order`: expected \"asc\", \"desc\" or null, got \"up\"",
            ),
            (
                json!({"source": {"type": "IndexRange", "indexName": "t", "range": [], "order": null}, "operators": []}),
                "Invalid query JSON at `source.indexName`: expected \"table.index\", got \"t\"",
            ),
            (
                json!({"source": {"type": "IndexRange", "indexName": "t.i", "range": [
                    {"type": "Eq", "fieldPath": "a", "value": 1}, {"type": "Ne", "fieldPath": "a", "value": 1}
                ]}, "operators": []}),
                "Invalid query JSON at `source.range[1].type`: expected one of Eq, Gt, Gte, Lt, Lte, got \"Ne\"",
            ),
            (
                json!({"source": {"type": "IndexRange", "indexName": "t.i", "range": [
                    {"type": "Eq", "fieldPath": "a..b", "value": 1}
                ]}, "operators": []}),
                "Invalid query JSON at `source.range[0].fieldPath`: Invalid field path `a..b`: it has an empty segment.",
            ),
            (
                json!({"source": {"type": "IndexRange", "indexName": "t.i", "range": [
                    {"type": "Eq", "fieldPath": "a", "value": {"$integer": 5}}
                ]}, "operators": []}),
                "Invalid query JSON at `source.range[0].value`: Invalid `$integer` object at the top level: its value \
                 must be a string of standard base64 with padding.",
            ),
            (
                full_scan_with(json!([{"limit": -1}])),
                "Invalid query JSON at `operators[0].limit`: expected a non-negative integer, got -1",
            ),
            (
                full_scan_with(json!([{"limit": 1.5}])),
                "Invalid query JSON at `operators[0].limit`: expected a non-negative integer, got 1.5",
            ),
            (
                full_scan_with(json!([{"limit": 1, "filter": {"$literal": true}}])),
                "Invalid query JSON at `operators[0]`: expected exactly one of `filter` and `limit`",
            ),
            (
                full_scan_with(json!([{"filter": {"$eq": [{"$field": "a"}]}}])),
                "Invalid query JSON at `operators[0].filter.$eq`: expected 2 operands, got 1",
            ),
            (
                full_scan_with(json!([{"filter": {"$and": [{"$literal": true}, {"$xor": []}]}}])),
                "Invalid query JSON at `operators[0].filter.$and[1]`: unknown expression operator \"$xor\"",
            ),
            (
                full_scan_with(json!([{"filter": {"$field": "a", "$literal": 1}}])),
                "Invalid query JSON at `operators[0].filter`: an expression is an object with one key, got 2 keys",
            ),
            (
                full_scan_with(json!([{"filter": {"$literal": {"$undefined": 1}}}])),
                "Invalid query JSON at `operators[0].filter.$literal`: Invalid field name at field \"$undefined\": \
                 field names must not start with `$`, which is reserved.",
            ),
        ];
        for (json, message) in cases {
            assert_eq!(error(json.clone()), message, "{json}");
        }
    }

    #[test]
    fn limits_are_enforced_at_the_boundary() {
        let nested = |depth: usize| {
            let mut expression = json!({"$literal": true});
            for _ in 1..depth {
                expression = json!({"$not": expression});
            }
            full_scan_with(json!([{"filter": expression}]))
        };
        assert!(parse(nested(MAX_EXPRESSION_DEPTH)).is_ok());
        assert!(
            error(nested(MAX_EXPRESSION_DEPTH + 1))
                .ends_with(&format!("the expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep"))
        );
        let limits = |count: usize| full_scan_with(Json::Array(vec![json!({"limit": 1}); count]));
        assert!(parse(limits(MAX_QUERY_OPERATORS)).is_ok());
        assert_eq!(
            error(limits(MAX_QUERY_OPERATORS + 1)),
            format!(
                "Invalid query JSON at `operators`: 257 operators, more than the {MAX_QUERY_OPERATORS} a query may have"
            )
        );
    }

    fn leaf() -> impl Strategy<Value = Expression> {
        prop_oneof![
            prop::sample::select(vec!["a", "b.c", "_id"]).prop_map(field),
            any::<i64>().prop_map(literal),
            any::<f64>().prop_map(literal),
            ".{0,4}".prop_map(|text: String| literal(text)),
            Just(undefined()),
        ]
    }

    fn expression() -> impl Strategy<Value = Expression> {
        leaf().prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                (0..6usize, inner.clone(), inner.clone()).prop_map(|(which, left, right)| {
                    let comparisons = [
                        Comparison::Eq,
                        Comparison::Neq,
                        Comparison::Lt,
                        Comparison::Lte,
                        Comparison::Gt,
                        Comparison::Gte,
                    ];
                    left.compare(comparisons[which], right)
                }),
                (0..5usize, inner.clone(), inner.clone()).prop_map(|(which, left, right)| {
                    let operations =
                        [Arithmetic::Add, Arithmetic::Sub, Arithmetic::Mul, Arithmetic::Div, Arithmetic::Mod];
                    left.arithmetic(operations[which], right)
                }),
                inner.clone().prop_map(|operand| -operand),
                inner.clone().prop_map(|operand| !operand),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expression::And),
                prop::collection::vec(inner, 0..3).prop_map(Expression::Or),
            ]
        })
    }

    proptest! {
        #[test]
        fn queries_round_trip_through_json_text(
            predicates in prop::collection::vec(expression(), 0..3),
            limit in prop::option::of(0usize..100),
            descending: bool,
            bounded: bool,
        ) {
            let mut query = if bounded {
                Query::table("t").with_index("by_ab", |q| q.eq("a", "x").lte("b", -1.5))
            } else {
                Query::table("t")
            };
            query = query.order(if descending { Order::Desc } else { Order::Asc });
            for predicate in predicates {
                query = query.filter(predicate);
            }
            if let Some(n) = limit {
                query = query.limit(n);
            }
            let text = query.to_json().to_string();
            prop_assert_eq!(Query::from_json(&serde_json::from_str(&text).unwrap()), Ok(query));
        }
    }
}
