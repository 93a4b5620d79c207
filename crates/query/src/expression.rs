//! Filter expressions and their evaluation, with Convex's semantics: comparisons use the total order
//! of values, in which a missing field (undefined) sorts first; arithmetic works on two int64s (checked:
//! overflow and division by zero are errors) or two float64s (IEEE: division by zero gives an infinity
//! or NaN), never on a mix; `$and`, `$or` and `$not` take booleans only and short-circuit.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use livebase_value::{FieldPath, Object, Value, get_path};

use crate::QueryError;

/// An expression over one document, as built by Convex's `q` in `.filter(q => ...)`.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    Compare(Comparison, Box<Expression>, Box<Expression>),
    Arithmetic(Arithmetic, Box<Expression>, Box<Expression>),
    Negate(Box<Expression>),
    Not(Box<Expression>),
    /// True when every operand is; the empty conjunction is true.
    And(Vec<Expression>),
    /// True when some operand is; the empty disjunction is false.
    Or(Vec<Expression>),
    /// The value at a field path of the document, undefined when missing.
    Field(FieldPath),
    /// A constant; `None` is undefined.
    Literal(Option<Value>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl Comparison {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Comparison::Eq => ordering.is_eq(),
            Comparison::Neq => ordering.is_ne(),
            Comparison::Lt => ordering.is_lt(),
            Comparison::Lte => ordering.is_le(),
            Comparison::Gt => ordering.is_gt(),
            Comparison::Gte => ordering.is_ge(),
        }
    }
}

impl Arithmetic {
    /// The verb Convex's error messages use.
    fn verb(self) -> &'static str {
        match self {
            Arithmetic::Add => "add",
            Arithmetic::Sub => "subtract",
            Arithmetic::Mul => "multiply",
            Arithmetic::Div => "divide",
            Arithmetic::Mod => "mod",
        }
    }

    fn ints(self, left: i64, right: i64) -> Option<i64> {
        match self {
            Arithmetic::Add => left.checked_add(right),
            Arithmetic::Sub => left.checked_sub(right),
            Arithmetic::Mul => left.checked_mul(right),
            Arithmetic::Div => left.checked_div(right),
            Arithmetic::Mod => left.checked_rem(right),
        }
    }

    /// IEEE arithmetic; `%` is the remainder with the sign of the dividend, as in JavaScript.
    fn floats(self, left: f64, right: f64) -> f64 {
        match self {
            Arithmetic::Add => left + right,
            Arithmetic::Sub => left - right,
            Arithmetic::Mul => left * right,
            Arithmetic::Div => left / right,
            Arithmetic::Mod => left % right,
        }
    }
}

/// The value at `path` of the document (`q.field("a.b")`).
///
/// # Panics
///
/// When `path` is not a valid field path: paths in Rust code are literals, so that is a bug in the
/// caller. Queries from clients arrive as JSON, whose parser reports bad paths as errors.
pub fn field(path: &str) -> Expression {
    Expression::Field(FieldPath::parse(path).unwrap_or_else(|error| panic!("{error}")))
}

/// A constant.
pub fn literal(value: impl Into<Value>) -> Expression {
    Expression::Literal(Some(value.into()))
}

/// The undefined constant, which equals exactly the missing fields.
pub fn undefined() -> Expression {
    Expression::Literal(None)
}

macro_rules! literal_from {
    ($($type:ty),*) => {
        $(impl From<$type> for Expression {
            fn from(value: $type) -> Expression {
                literal(value)
            }
        })*
    };
}
literal_from!(Value, i64, f64, bool, &str, String);

// Arithmetic reads as arithmetic: `field("price") * field("count") + 1i64`.
macro_rules! arithmetic_operator {
    ($($trait:ident $method:ident $operation:ident),*) => {
        $(impl<T: Into<Expression>> std::ops::$trait<T> for Expression {
            type Output = Expression;
            fn $method(self, other: T) -> Expression {
                self.arithmetic(Arithmetic::$operation, other)
            }
        })*
    };
}
arithmetic_operator!(Add add Add, Sub sub Sub, Mul mul Mul, Div div Div, Rem rem Mod);

impl std::ops::Neg for Expression {
    type Output = Expression;
    fn neg(self) -> Expression {
        Expression::Negate(Box::new(self))
    }
}

impl std::ops::Not for Expression {
    type Output = Expression;
    fn not(self) -> Expression {
        Expression::Not(Box::new(self))
    }
}

impl Expression {
    pub fn eq(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Eq, other)
    }
    pub fn neq(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Neq, other)
    }
    pub fn lt(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Lt, other)
    }
    pub fn lte(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Lte, other)
    }
    pub fn gt(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Gt, other)
    }
    pub fn gte(self, other: impl Into<Expression>) -> Expression {
        self.compare(Comparison::Gte, other)
    }
    /// `self && other`, flattening chains into one `$and`.
    pub fn and(self, other: impl Into<Expression>) -> Expression {
        match self {
            Expression::And(mut operands) => {
                operands.push(other.into());
                Expression::And(operands)
            }
            first => Expression::And(vec![first, other.into()]),
        }
    }
    /// `self || other`, flattening chains into one `$or`.
    pub fn or(self, other: impl Into<Expression>) -> Expression {
        match self {
            Expression::Or(mut operands) => {
                operands.push(other.into());
                Expression::Or(operands)
            }
            first => Expression::Or(vec![first, other.into()]),
        }
    }

    pub fn compare(self, comparison: Comparison, other: impl Into<Expression>) -> Expression {
        Expression::Compare(comparison, Box::new(self), Box::new(other.into()))
    }

    pub fn arithmetic(self, operation: Arithmetic, other: impl Into<Expression>) -> Expression {
        Expression::Arithmetic(operation, Box::new(self), Box::new(other.into()))
    }

    /// Levels of nesting: 1 for a field or literal.
    pub fn depth(&self) -> usize {
        1 + match self {
            Expression::Compare(_, left, right) | Expression::Arithmetic(_, left, right) => {
                left.depth().max(right.depth())
            }
            Expression::Negate(operand) | Expression::Not(operand) => operand.depth(),
            Expression::And(operands) | Expression::Or(operands) => {
                operands.iter().map(Expression::depth).max().unwrap_or(0)
            }
            Expression::Field(_) | Expression::Literal(_) => 0,
        }
    }

    /// Whether a document passes this expression used as a filter: it must evaluate to a boolean.
    pub fn matches(&self, document: &Object) -> Result<bool, QueryError> {
        as_boolean(self.evaluate(document)?.as_deref())
    }

    /// The value of the expression on a document; `None` is undefined.
    pub fn evaluate<'a>(&'a self, document: &'a Object) -> Result<Option<Cow<'a, Value>>, QueryError> {
        let value = match self {
            Expression::Field(path) => return Ok(get_path(document, path).map(Cow::Borrowed)),
            Expression::Literal(value) => return Ok(value.as_ref().map(Cow::Borrowed)),
            Expression::Compare(comparison, left, right) => {
                let (left, right) = (left.evaluate(document)?, right.evaluate(document)?);
                // `Option`'s order puts `None` (undefined) first, as Convex's total order does.
                Value::Boolean(comparison.holds(left.as_deref().cmp(&right.as_deref())))
            }
            Expression::Arithmetic(operation, left, right) => {
                let (left, right) = (left.evaluate(document)?, right.evaluate(document)?);
                arithmetic(*operation, left.as_deref(), right.as_deref())?
            }
            Expression::Negate(operand) => match operand.evaluate(document)?.as_deref() {
                Some(Value::Int64(n)) => Value::Int64(n.checked_neg().ok_or_else(|| {
                    QueryError::Evaluation(format!("Cannot negate {n}n: the result is out of range for Int64"))
                })?),
                Some(Value::Float64(n)) => Value::Float64(-n),
                other => {
                    return Err(QueryError::Evaluation(format!(
                        "Cannot negate {} (type {})",
                        Shown(other),
                        type_name(other)
                    )));
                }
            },
            Expression::Not(operand) => Value::Boolean(!as_boolean(operand.evaluate(document)?.as_deref())?),
            Expression::And(operands) => {
                let mut all = true;
                for operand in operands {
                    if !as_boolean(operand.evaluate(document)?.as_deref())? {
                        all = false;
                        break;
                    }
                }
                Value::Boolean(all)
            }
            Expression::Or(operands) => {
                let mut any = false;
                for operand in operands {
                    if as_boolean(operand.evaluate(document)?.as_deref())? {
                        any = true;
                        break;
                    }
                }
                Value::Boolean(any)
            }
        };
        Ok(Some(Cow::Owned(value)))
    }
}

fn arithmetic(operation: Arithmetic, left: Option<&Value>, right: Option<&Value>) -> Result<Value, QueryError> {
    match (left, right) {
        (Some(Value::Int64(left)), Some(Value::Int64(right))) => {
            operation.ints(*left, *right).map(Value::Int64).ok_or_else(|| {
                QueryError::Evaluation(if *right == 0 {
                    format!("Cannot {} {left}n by zero", operation.verb())
                } else {
                    format!("Cannot {} {left}n and {right}n: the result is out of range for Int64", operation.verb())
                })
            })
        }
        (Some(Value::Float64(left)), Some(Value::Float64(right))) => {
            Ok(Value::Float64(operation.floats(*left, *right)))
        }
        _ => Err(QueryError::Evaluation(format!(
            "Cannot {} {} (type {}) and {} (type {})",
            operation.verb(),
            Shown(left),
            type_name(left),
            Shown(right),
            type_name(right)
        ))),
    }
}

fn as_boolean(value: Option<&Value>) -> Result<bool, QueryError> {
    match value {
        Some(Value::Boolean(b)) => Ok(*b),
        other => Err(QueryError::Evaluation(format!(
            "Cannot use value {} (type {}) as a Boolean",
            Shown(other),
            type_name(other)
        ))),
    }
}

fn type_name(value: Option<&Value>) -> &'static str {
    value.map_or("undefined", Value::type_name)
}

/// A possibly undefined value in an error message.
struct Shown<'a>(Option<&'a Value>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value}"),
            None => f.write_str("undefined"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Object {
        Object::from([
            ("i".to_owned(), Value::Int64(7)),
            ("f".to_owned(), Value::Float64(1.5)),
            ("s".to_owned(), Value::from("x")),
            ("t".to_owned(), Value::Boolean(true)),
            ("nested".to_owned(), Value::Object(Object::from([("n".to_owned(), Value::Null)]))),
        ])
    }

    fn eval(expression: Expression) -> Result<Option<Value>, QueryError> {
        let document = document();
        expression.evaluate(&document).map(|value| value.map(Cow::into_owned))
    }

    fn error(expression: Expression) -> String {
        eval(expression).unwrap_err().to_string()
    }

    #[test]
    fn comparisons_use_the_total_order_with_undefined_first() {
        let cases = [
            (field("missing").lt(Value::Null), true),
            (field("missing").eq(undefined()), true),
            (field("nested.n").eq(Value::Null), true),
            (field("nested.n").eq(undefined()), false),
            (field("i").lt(1.0), true), // every int64 sorts before every float64
            (field("i").gt(6i64), true),
            (field("f").gte(1.5), true),
            (field("s").neq("x"), false),
            (field("t").gt("a"), false), // booleans sort before strings
            (field("i.x").eq(undefined()), true),
            (literal(f64::NAN).eq(f64::NAN), true),
            (literal(0.0).eq(-0.0), false),
        ];
        for (expression, expected) in cases {
            assert_eq!(eval(expression.clone()), Ok(Some(Value::Boolean(expected))), "{expression:?}");
        }
    }

    #[test]
    fn integer_arithmetic_is_checked() {
        assert_eq!(eval(field("i") + 3i64), Ok(Some(Value::Int64(10))));
        assert_eq!(eval(field("i") % -4i64), Ok(Some(Value::Int64(3))));
        assert_eq!(eval(literal(-7i64) / 2i64), Ok(Some(Value::Int64(-3))));
        assert_eq!(eval(-field("i")), Ok(Some(Value::Int64(-7))));
        assert_eq!(error(field("i") / 0i64), "Cannot divide 7n by zero");
        assert_eq!(error(field("i") % 0i64), "Cannot mod 7n by zero");
        assert_eq!(
            error(literal(i64::MAX) + 1i64),
            format!("Cannot add {}n and 1n: the result is out of range for Int64", i64::MAX)
        );
        assert_eq!(
            error(literal(i64::MIN) / -1i64),
            format!("Cannot divide {}n and -1n: the result is out of range for Int64", i64::MIN)
        );
        assert_eq!(
            error(-literal(i64::MIN)),
            format!("Cannot negate {}n: the result is out of range for Int64", i64::MIN)
        );
    }

    #[test]
    fn float_arithmetic_is_ieee() {
        assert_eq!(eval(field("f") * 2.0), Ok(Some(Value::Float64(3.0))));
        assert_eq!(eval(literal(1.0) / 0.0), Ok(Some(Value::Float64(f64::INFINITY))));
        assert_eq!(eval(literal(-1.0) / 0.0), Ok(Some(Value::Float64(f64::NEG_INFINITY))));
        let Ok(Some(Value::Float64(nan))) = eval(literal(0.0) / 0.0) else { panic!() };
        assert!(nan.is_nan());
        assert_eq!(eval(literal(-5.5) % 2.0), Ok(Some(Value::Float64(-1.5))));
        assert_eq!(eval(-field("f")), Ok(Some(Value::Float64(-1.5))));
    }

    #[test]
    fn arithmetic_never_mixes_types() {
        assert_eq!(error(field("i") + 1.0), "Cannot add 7n (type int64) and 1 (type float64)");
        assert_eq!(error(field("missing") - 1i64), "Cannot subtract undefined (type undefined) and 1n (type int64)");
        assert_eq!(error(field("s") * "y"), "Cannot multiply \"x\" (type string) and \"y\" (type string)");
        assert_eq!(error(-field("s")), "Cannot negate \"x\" (type string)");
    }

    #[test]
    fn logic_takes_booleans_and_short_circuits() {
        assert_eq!(eval(Expression::And(vec![])), Ok(Some(Value::Boolean(true))));
        assert_eq!(eval(Expression::Or(vec![])), Ok(Some(Value::Boolean(false))));
        // The division by zero is never evaluated.
        assert_eq!(eval((!field("t")).and(field("i") / 0i64)), Ok(Some(Value::Boolean(false))));
        assert_eq!(eval(field("t").or(field("i") / 0i64)), Ok(Some(Value::Boolean(true))));
        assert_eq!(error(field("t").and(field("i"))), "Cannot use value 7n (type int64) as a Boolean");
        assert_eq!(error(!field("missing")), "Cannot use value undefined (type undefined) as a Boolean");
        let document = document();
        assert_eq!(
            field("s").matches(&document).unwrap_err().to_string(),
            "Cannot use value \"x\" (type string) as a Boolean"
        );
        assert_eq!(field("t").matches(&document), Ok(true));
    }

    #[test]
    fn builders_flatten_chains() {
        let expression = field("a").eq(1i64).and(field("b").eq(2i64)).and(field("c").eq(3i64));
        let Expression::And(operands) = &expression else { panic!("{expression:?}") };
        assert_eq!(operands.len(), 3);
        assert_eq!(expression.depth(), 3);
    }

    #[test]
    #[should_panic(expected = "Invalid field path `a..b`")]
    fn builder_paths_must_be_valid() {
        field("a..b");
    }
}
