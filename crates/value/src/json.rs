//! Convex's two JSON formats for values.
//!
//! *Convex JSON* (`convex_encoded_json`, the sync protocol's format) is lossless:
//!
//! - null, booleans, strings and arrays are themselves;
//! - a JSON number is always a float64, even when written as an integer;
//! - an int64 is `{"$integer": base64(8 bytes, little-endian)}`;
//! - a float64 that JSON cannot carry exactly (NaN, ±Infinity, -0) is
//!   `{"$float": base64(8 bytes, little-endian)}`;
//! - bytes are `{"$bytes": base64(bytes)}`;
//! - objects are objects whose keys are valid field names, so none start with `$`.
//!
//! Base64 is the standard alphabet with padding, and must be canonical on input. `$float` is
//! accepted only for the values that need it, as both Convex's JavaScript client
//! (`jsonToConvex`) and its server do, except that the server also takes `+0` (an accident of
//! its check); keeping one spelling per value is simpler, so `+0` is rejected here.
//!
//! *Plain JSON* (`format: "json"`, Convex's "clean" export) is for humans and is lossy: an
//! int64 is a decimal string, bytes are a base64 string, NaN and infinities are the strings
//! `"NaN"`, `"Infinity"` and `"-Infinity"`. Reading it back, numbers become float64 and
//! strings stay strings.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value as Json};

use crate::error::ValueError;
use crate::limits::{MAX_ARRAY_LEN, MAX_OBJECT_FIELDS, MAX_VALUE_NESTING, check_field_name, field_name_error};
use crate::path::Path;
use crate::value::{Object, Value};

const INTEGER_KEY: &str = "$integer";
const FLOAT_KEY: &str = "$float";
const BYTES_KEY: &str = "$bytes";

/// Encodes a value in Convex JSON.
pub fn to_convex_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int64(n) => special(INTEGER_KEY, &n.to_le_bytes()),
        Value::Float64(n) => match Number::from_f64(*n) {
            Some(number) if !is_negative_zero(*n) => Json::Number(number),
            _ => special(FLOAT_KEY, &n.to_le_bytes()),
        },
        Value::Boolean(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => special(BYTES_KEY, b),
        Value::Array(items) => Json::Array(items.iter().map(to_convex_json).collect()),
        Value::Object(fields) => {
            Json::Object(fields.iter().map(|(name, value)| (name.clone(), to_convex_json(value))).collect())
        }
    }
}

/// Decodes Convex JSON. Checks field names, object and array sizes, and nesting up to
/// [`MAX_VALUE_NESTING`], but not document rules (see [`crate::validate_document`]).
pub fn from_convex_json(json: &Json) -> Result<Value, ValueError> {
    Parser { format: Format::Convex }.value(json, &Path::Root, 0)
}

/// Encodes a value in plain JSON.
pub fn to_plain_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Int64(n) => Json::String(n.to_string()),
        Value::Float64(n) if n.is_nan() => Json::String("NaN".to_owned()),
        Value::Float64(n) if n.is_infinite() => {
            Json::String(if *n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned())
        }
        Value::Float64(n) => Json::Number(Number::from_f64(*n).expect("finite floats are numbers")),
        Value::Boolean(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(BASE64.encode(b)),
        Value::Array(items) => Json::Array(items.iter().map(to_plain_json).collect()),
        Value::Object(fields) => {
            Json::Object(fields.iter().map(|(name, value)| (name.clone(), to_plain_json(value))).collect())
        }
    }
}

/// Decodes plain JSON: numbers become float64, everything else maps directly. Keys starting
/// with `$` are rejected like any invalid field name; there are no special objects.
pub fn from_plain_json(json: &Json) -> Result<Value, ValueError> {
    Parser { format: Format::Plain }.value(json, &Path::Root, 0)
}

fn special(key: &str, bytes: &[u8]) -> Json {
    Json::Object(Map::from_iter([(key.to_owned(), Json::String(BASE64.encode(bytes)))]))
}

fn is_negative_zero(n: f64) -> bool {
    n == 0.0 && n.is_sign_negative()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Convex,
    Plain,
}

struct Parser {
    format: Format,
}

impl Parser {
    /// Parses a value that sits inside `nesting` arrays and objects.
    fn value(&self, json: &Json, path: &Path<'_>, nesting: usize) -> Result<Value, ValueError> {
        match json {
            Json::Null => Ok(Value::Null),
            Json::Bool(b) => Ok(Value::Boolean(*b)),
            Json::Number(number) => match number.as_f64() {
                Some(n) => Ok(Value::Float64(n)),
                None => Err(ValueError::UnrepresentableNumber { path: path.render(), number: number.to_string() }),
            },
            Json::String(s) => Ok(Value::String(s.clone())),
            Json::Array(items) => {
                // Checked before descending, so recursion depth stays bounded on any input.
                self.check_nesting(path, nesting + 1)?;
                if items.len() > MAX_ARRAY_LEN {
                    return Err(ValueError::ArrayTooLong { path: path.render(), len: items.len() });
                }
                let mut values = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    values.push(self.value(item, &path.index(index), nesting + 1)?);
                }
                Ok(Value::Array(values))
            }
            Json::Object(fields) => {
                if self.format == Format::Convex
                    && let Some(value) = special_value(fields, path)?
                {
                    return Ok(value);
                }
                self.check_nesting(path, nesting + 1)?;
                if fields.len() > MAX_OBJECT_FIELDS {
                    return Err(ValueError::TooManyFields { path: path.render(), count: fields.len() });
                }
                let mut object = Object::new();
                for (name, field) in fields {
                    let field_path = path.field(name);
                    check_field_name(name, false).map_err(|problem| field_name_error(problem, path, &field_path))?;
                    object.insert(name.clone(), self.value(field, &field_path, nesting + 1)?);
                }
                Ok(Value::Object(object))
            }
        }
    }

    fn check_nesting(&self, path: &Path<'_>, nesting: usize) -> Result<(), ValueError> {
        if nesting > MAX_VALUE_NESTING {
            return Err(ValueError::TooNested { path: path.render(), limit: MAX_VALUE_NESTING });
        }
        Ok(())
    }
}

/// The value of a Convex JSON special object (`$integer`, `$float`, `$bytes`), or `None` if
/// `fields` is not one.
fn special_value(fields: &Map<String, Json>, path: &Path<'_>) -> Result<Option<Value>, ValueError> {
    let mut entries = fields.iter();
    let (Some((key, encoded)), None) = (entries.next(), entries.next()) else {
        return Ok(None);
    };
    let key = match key.as_str() {
        INTEGER_KEY => INTEGER_KEY,
        FLOAT_KEY => FLOAT_KEY,
        BYTES_KEY => BYTES_KEY,
        _ => return Ok(None),
    };
    let malformed = |problem: String| ValueError::MalformedSpecialObject { path: path.render(), key, problem };
    let Json::String(encoded) = encoded else {
        return Err(malformed("its value must be a string of standard base64 with padding.".to_owned()));
    };
    let bytes = BASE64
        .decode(encoded)
        .map_err(|error| malformed(format!("its value is not standard base64 with padding: {error}.")))?;
    if key == BYTES_KEY {
        return Ok(Some(Value::Bytes(bytes)));
    }
    let eight: [u8; 8] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| malformed(format!("it encodes {} bytes, but exactly 8 are required.", bytes.len())))?;
    if key == INTEGER_KEY {
        return Ok(Some(Value::Int64(i64::from_le_bytes(eight))));
    }
    assert_eq!(key, FLOAT_KEY);
    let n = f64::from_le_bytes(eight);
    if n.is_finite() && !is_negative_zero(n) {
        return Err(malformed(format!(
            "{n:?} must be written as a plain JSON number; `$float` is only for NaN, Infinity, \
             -Infinity and -0."
        )));
    }
    Ok(Some(Value::Float64(n)))
}

/// What kind of JSON value this is, for error messages ("expected a string, got an array").
pub fn describe_json_type(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::error::FieldNameProblem;
    use crate::strategies::{json_value, plain_json_value};

    fn nested_json(levels: usize) -> Json {
        let mut json = Json::Null;
        for _ in 0..levels {
            json = json!([json]);
        }
        json
    }

    #[test]
    fn convex_json_examples() {
        let cases = [
            (Value::Int64(1), json!({"$integer": "AQAAAAAAAAA="})),
            (Value::Int64(-1), json!({"$integer": "//////////8="})),
            (Value::Float64(1.5), json!(1.5)),
            (Value::Float64(0.0), json!(0.0)),
            (Value::Float64(-0.0), json!({"$float": "AAAAAAAAAIA="})),
            (Value::Float64(f64::INFINITY), json!({"$float": "AAAAAAAA8H8="})),
            (Value::Float64(f64::NEG_INFINITY), json!({"$float": "AAAAAAAA8P8="})),
            (Value::Float64(f64::NAN), json!({"$float": "AAAAAAAA+H8="})),
            (Value::Bytes(vec![0, 16, 131]), json!({"$bytes": "ABCD"})),
            (
                Value::Object(Object::from([(
                    "a".to_owned(),
                    Value::Array(vec![Value::Null, Value::Boolean(true), Value::from("s")]),
                )])),
                json!({"a": [null, true, "s"]}),
            ),
        ];
        for (value, json) in cases {
            assert_eq!(to_convex_json(&value), json, "{value}");
            assert_eq!(from_convex_json(&json), Ok(value));
        }
        // Integers in JSON are float64, even past 2^53.
        assert_eq!(from_convex_json(&json!(3)), Ok(Value::Float64(3.0)));
        assert_eq!(from_convex_json(&json!(u64::MAX)), Ok(Value::Float64(18_446_744_073_709_551_615.0)));
    }

    #[test]
    fn convex_json_rejections() {
        let malformed = |json: Json, key: &str, problem_part: &str| {
            let error = from_convex_json(&json!({"x": json})).unwrap_err();
            let ValueError::MalformedSpecialObject { path, key: found, problem } = &error else {
                panic!("{error}");
            };
            assert_eq!((path.as_str(), *found), ("x", key), "{error}");
            assert!(problem.contains(problem_part), "{error}");
        };
        malformed(json!({"$integer": 5}), "$integer", "must be a string");
        malformed(json!({"$integer": "AQAAAAAAAA=="}), "$integer", "encodes 7 bytes");
        malformed(json!({"$integer": "AQAAAAAAAAA"}), "$integer", "not standard base64");
        malformed(json!({"$bytes": "AB-_"}), "$bytes", "not standard base64");
        malformed(json!({"$bytes": "AB=="}), "$bytes", "not standard base64");
        malformed(json!({"$float": "AAAAAAAA+D8="}), "$float", "1.5 must be written");
        malformed(json!({"$float": "AAAAAAAAAAA="}), "$float", "0.0 must be written");

        let error = from_convex_json(&json!({"$float": "AAAAAAAA+D8="})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Invalid `$float` object at the top level: 1.5 must be written as a plain JSON \
             number; `$float` is only for NaN, Infinity, -Infinity and -0."
        );

        for json in [json!({"$set": []}), json!({"$integer": "AQAAAAAAAAA=", "a": 1})] {
            let error = from_convex_json(&json).unwrap_err();
            let ValueError::InvalidFieldName { problem, .. } = error else { panic!("{error}") };
            assert_eq!(problem, FieldNameProblem::StartsWithDollar);
        }
        assert_eq!(
            from_convex_json(&json!({"a": [{"": 1}]})),
            Err(ValueError::InvalidFieldName { path: "a[0]".to_owned(), problem: FieldNameProblem::Empty })
        );
    }

    #[test]
    fn plain_json_examples() {
        let cases = [
            (Value::Int64(-42), json!("-42")),
            (Value::Float64(1.5), json!(1.5)),
            (Value::Float64(-0.0), json!(-0.0)),
            (Value::Float64(f64::NAN), json!("NaN")),
            (Value::Float64(f64::INFINITY), json!("Infinity")),
            (Value::Float64(f64::NEG_INFINITY), json!("-Infinity")),
            (Value::Bytes(vec![0, 16, 131]), json!("ABCD")),
        ];
        for (value, json) in cases {
            assert_eq!(to_plain_json(&value), json, "{value}");
        }
        assert_eq!(from_plain_json(&json!(-0.0)), Ok(Value::Float64(-0.0)));
        assert_eq!(from_plain_json(&json!("42")), Ok(Value::from("42")));
        assert_eq!(from_plain_json(&json!(42)), Ok(Value::Float64(42.0)));
        assert_eq!(
            from_plain_json(&json!({"$integer": "AQAAAAAAAAA="})),
            Err(ValueError::InvalidFieldName {
                path: "$integer".to_owned(),
                problem: FieldNameProblem::StartsWithDollar
            })
        );
    }

    #[test]
    fn limits_are_enforced_while_parsing() {
        for parse in [from_convex_json, from_plain_json] {
            assert!(parse(&nested_json(MAX_VALUE_NESTING)).is_ok());
            let error = parse(&nested_json(MAX_VALUE_NESTING + 1)).unwrap_err();
            assert!(matches!(error, ValueError::TooNested { limit: MAX_VALUE_NESTING, .. }), "{error}");

            assert!(parse(&Json::Array(vec![Json::Null; MAX_ARRAY_LEN])).is_ok());
            assert_eq!(
                parse(&json!({"a": vec![Json::Null; MAX_ARRAY_LEN + 1]})),
                Err(ValueError::ArrayTooLong { path: "a".to_owned(), len: MAX_ARRAY_LEN + 1 })
            );
            let fields =
                |count: usize| -> Json { Json::Object((0..count).map(|i| (format!("f{i}"), Json::Null)).collect()) };
            assert!(parse(&fields(MAX_OBJECT_FIELDS)).is_ok());
            assert_eq!(
                parse(&fields(MAX_OBJECT_FIELDS + 1)),
                Err(ValueError::TooManyFields { path: String::new(), count: MAX_OBJECT_FIELDS + 1 })
            );
        }
    }

    #[test]
    fn deep_input_does_not_overflow_the_stack() {
        // Built and dropped iteratively: serde_json's own drop would recurse this deep.
        let mut json = Json::Null;
        for _ in 0..100_000 {
            json = Json::Array(vec![json]);
        }
        for parse in [from_convex_json, from_plain_json] {
            assert!(matches!(parse(&json), Err(ValueError::TooNested { .. })));
        }
        while let Json::Array(mut items) = json {
            json = items.pop().unwrap_or(Json::Null);
        }
    }

    proptest! {
        #[test]
        fn convex_json_round_trips(value in json_value()) {
            let json = to_convex_json(&value);
            prop_assert_eq!(from_convex_json(&json), Ok(value.clone()));
            // And through text, as it travels on the wire.
            let text = serde_json::to_string(&json).unwrap();
            let reparsed: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(from_convex_json(&reparsed), Ok(value));
        }

        #[test]
        fn plain_json_round_trips_where_lossless(value in plain_json_value()) {
            let json = to_plain_json(&value);
            prop_assert_eq!(from_plain_json(&json), Ok(value.clone()));
            let text = serde_json::to_string(&json).unwrap();
            let reparsed: Json = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(from_plain_json(&reparsed), Ok(value));
        }

        #[test]
        fn plain_json_never_fails_to_parse_its_own_output(value in json_value()) {
            prop_assert!(from_plain_json(&to_plain_json(&value)).is_ok());
        }
    }
}
