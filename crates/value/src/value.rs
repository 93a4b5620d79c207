//! Convex values, their total order, and field paths into objects.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::ValueError;
use crate::limits::check_field_name;

/// An object's fields, kept sorted by name (byte order), which is also the order the value
/// order and the key encoding walk them in.
pub type Object = BTreeMap<String, Value>;

/// A Convex value.
///
/// Values are totally ordered across types, in Convex's order:
/// null < int64 < float64 < boolean < string < bytes < array < object.
/// (A missing field, "undefined", sorts before all of them; it is not a `Value` but
/// `Option::<&Value>::None` where it matters, as in [`crate::encode_key_value`].)
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Int64(i64),
    /// Compared with [`f64::total_cmp`], so equality is bit equality: `NaN == NaN` when the
    /// bits agree, and `-0.0 != 0.0`.
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Object(Object),
}

impl Value {
    /// The type's name as Convex spells it in errors and validators' JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int64(_) => "int64",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The position of the value's type in the cross-type order.
    fn type_rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Int64(_) => 1,
            Value::Float64(_) => 2,
            Value::Boolean(_) => 3,
            Value::String(_) => 4,
            Value::Bytes(_) => 5,
            Value::Array(_) => 6,
            Value::Object(_) => 7,
        }
    }
}

impl Ord for Value {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Int64(a), Value::Int64(b)) => a.cmp(b),
            (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::String(a), Value::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::Array(a), Value::Array(b)) => a.cmp(b),
            // Pairwise over the sorted fields: first name, first value, second name, ...;
            // a prefix sorts first.
            (Value::Object(a), Value::Object(b)) => a.iter().cmp(b.iter()),
            _ => {
                assert_ne!(self.type_rank(), other.type_rank());
                self.type_rank().cmp(&other.type_rank())
            }
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Int64(a), Value::Int64(b)) => a == b,
            // Bit equality is what `total_cmp` calls equal.
            (Value::Float64(a), Value::Float64(b)) => a.to_bits() == b.to_bits(),
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::String(a), Value::String(b)) => a == b,
            (Value::Bytes(a), Value::Bytes(b)) => a == b,
            (Value::Array(a), Value::Array(b)) => a == b,
            (Value::Object(a), Value::Object(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.type_rank());
        match self {
            Value::Null => {}
            Value::Int64(n) => n.hash(state),
            Value::Float64(n) => n.to_bits().hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::String(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::Array(items) => items.hash(state),
            Value::Object(fields) => fields.hash(state),
        }
    }
}

/// A JavaScript-like rendering for error messages: `null`, `5n` (an int64, as a JS bigint
/// literal), `1.5`, `NaN`, `"text"`, `b"<base64>"`, `[1, 2]`, `{a: 1}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Int64(n) => write!(f, "{n}n"),
            Value::Float64(n) if n.is_nan() => f.write_str("NaN"),
            Value::Float64(n) if n.is_infinite() => f.write_str(if *n > 0.0 { "Infinity" } else { "-Infinity" }),
            Value::Float64(n) => write!(f, "{n}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b\"{}\"", BASE64.encode(b)),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Object(fields) => {
                f.write_str("{")?;
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {value}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Int64(n)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Float64(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::Array(items)
    }
}

impl From<Object> for Value {
    fn from(fields: Object) -> Self {
        Value::Object(fields)
    }
}

/// A dotted path of field names into nested objects, such as `address.city`, as used by index
/// definitions and filters. Arrays are not traversed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// Parses `a.b.c`: one or more non-empty segments, each a valid field name. Names starting
    /// with `_` are allowed in every segment, so system fields like `_creationTime` can be
    /// indexed.
    pub fn parse(path: &str) -> Result<FieldPath, ValueError> {
        let mut segments = Vec::new();
        for segment in path.split('.') {
            if let Err(problem) = check_field_name(segment, false) {
                return Err(ValueError::InvalidFieldPath {
                    path: path.to_owned(),
                    segment: segment.to_owned(),
                    problem,
                });
            }
            segments.push(segment.to_owned());
        }
        assert!(!segments.is_empty());
        Ok(FieldPath(segments))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

impl FromStr for FieldPath {
    type Err = ValueError;

    fn from_str(path: &str) -> Result<Self, Self::Err> {
        FieldPath::parse(path)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// The value at `path`, or `None` if a segment is missing or passes through a non-object.
pub fn get_path<'a>(object: &'a Object, path: &FieldPath) -> Option<&'a Value> {
    let (first, rest) = path.segments().split_first()?;
    let mut value = object.get(first)?;
    for segment in rest {
        match value {
            Value::Object(fields) => value = fields.get(segment)?,
            _ => return None,
        }
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::FieldNameProblem;

    fn object(fields: &[(&str, Value)]) -> Object {
        fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
    }

    #[test]
    fn types_sort_in_convex_order() {
        let ascending = [
            Value::Null,
            Value::Int64(i64::MAX),
            Value::Float64(f64::NEG_INFINITY),
            Value::Boolean(false),
            Value::Boolean(true),
            Value::String(String::new()),
            Value::Bytes(Vec::new()),
            Value::Array(Vec::new()),
            Value::Object(Object::new()),
        ];
        for pair in ascending.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn floats_use_total_order() {
        let ascending = [
            -f64::NAN,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            f64::INFINITY,
            f64::NAN,
        ];
        for pair in ascending.windows(2) {
            assert!(Value::Float64(pair[0]) < Value::Float64(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(Value::Float64(f64::NAN), Value::Float64(f64::NAN));
        assert_ne!(Value::Float64(0.0), Value::Float64(-0.0));
    }

    #[test]
    fn strings_compare_by_utf8_bytes() {
        // U+FFFD is above U+10000 in UTF-16 code units but below it in UTF-8 bytes.
        assert!(Value::from("\u{FFFD}") < Value::from("\u{10000}"));
        assert!(Value::from("a") < Value::from("a\0"));
    }

    #[test]
    fn containers_compare_lexicographically() {
        let short = Value::from(vec![Value::from(1i64)]);
        let long = Value::from(vec![Value::from(1i64), Value::Null]);
        let bigger_first = Value::from(vec![Value::from(2i64)]);
        assert!(short < long && long < bigger_first);

        let a1 = Value::Object(object(&[("a", Value::from(1i64))]));
        let a1_b = Value::Object(object(&[("a", Value::from(1i64)), ("b", Value::Null)]));
        let a2 = Value::Object(object(&[("a", Value::from(2i64))]));
        let b0 = Value::Object(object(&[("b", Value::from(0i64))]));
        assert!(Value::Object(Object::new()) < a1);
        assert!(a1 < a1_b && a1_b < a2 && a2 < b0);
    }

    #[test]
    fn type_names() {
        assert_eq!(Value::Float64(1.0).type_name(), "float64");
        assert_eq!(Value::Object(Object::new()).type_name(), "object");
    }

    #[test]
    fn display_is_javascript_like() {
        let value = Value::Object(object(&[
            ("a", Value::from(vec![Value::from(5i64), Value::from(1.5), Value::from(f64::NAN)])),
            ("b", Value::from(vec![0u8, 1])),
            ("c", Value::from("x\"y")),
        ]));
        assert_eq!(value.to_string(), r#"{a: [5n, 1.5, NaN], b: b"AAE=", c: "x\"y"}"#);
    }

    #[test]
    fn field_paths_parse_and_display() {
        let path = FieldPath::parse("a._b.c").unwrap();
        assert_eq!(path.segments(), ["a", "_b", "c"]);
        assert_eq!(path.to_string(), "a._b.c");
        assert_eq!("x".parse::<FieldPath>().unwrap().segments(), ["x"]);
    }

    #[test]
    fn field_paths_reject_bad_segments() {
        for (path, problem) in [
            ("", FieldNameProblem::Empty),
            ("a..b", FieldNameProblem::Empty),
            ("a.", FieldNameProblem::Empty),
            ("a.$b", FieldNameProblem::StartsWithDollar),
            ("a.b\u{7f}", FieldNameProblem::InvalidCharacter { character: '\u{7f}' }),
        ] {
            match FieldPath::parse(path) {
                Err(ValueError::InvalidFieldPath { problem: found, .. }) => {
                    assert_eq!(found, problem, "{path}");
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        let message = FieldPath::parse("a.$b").unwrap_err().to_string();
        assert_eq!(
            message,
            "Invalid field path `a.$b`: segment `$b` is not a valid field name: field names must \
             not start with `$`, which is reserved."
        );
    }

    #[test]
    fn get_path_walks_objects_only() {
        let inner = Value::Object(object(&[("c", Value::from(3i64))]));
        let document = object(&[("a", Value::Object(object(&[("b", inner)]))), ("n", Value::from(1i64))]);
        let get = |path: &str| get_path(&document, &FieldPath::parse(path).unwrap());
        assert_eq!(get("a.b.c"), Some(&Value::from(3i64)));
        assert_eq!(get("n"), Some(&Value::from(1i64)));
        assert_eq!(get("a.x"), None);
        assert_eq!(get("n.x"), None);
        assert_eq!(get("a.b.c.d"), None);
    }
}
