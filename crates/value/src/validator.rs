//! Convex's `v` validators: checking values against them, and their JSON form.
//!
//! The JSON form is what Convex's npm package sends for schemas and function arguments (the
//! `json` getters in `convex/src/values/validators.ts`): `{"type": "string"}`,
//! `{"type": "number"}` for float64, `{"type": "bigint"}` for int64,
//! `{"type": "id", "tableName": ...}`, `{"type": "literal", "value": <Convex JSON>}`,
//! `{"type": "array", "value": ...}`, `{"type": "object", "value": {name: {"fieldType": ...,
//! "optional": bool}}}`, `{"type": "record", "keys": ..., "values": {"fieldType": ...,
//! "optional": false}}`, `{"type": "union", "value": [...]}`, and `any`, `null`, `boolean`,
//! `bytes`. Like Convex's server, parsing ignores keys it does not know.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value as Json};

use crate::error::ValueError;
use crate::id::DocumentId;
use crate::json::{from_convex_json, to_convex_json};
use crate::limits::{MAX_VALUE_NESTING, check_field_name, validate_identifier};
use crate::path::{Path, describe, quoted_path};
use crate::value::Value;

/// A validator, as built by Convex's `v` builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validator {
    Any,
    Null,
    Boolean,
    String,
    /// `v.number()` or `v.float64()`.
    Float64,
    /// `v.int64()` or `v.bigint()`.
    Int64,
    Bytes,
    /// A string that is the id of a document in the named table.
    Id(String),
    /// Exactly this value. Convex only makes literals of strings, numbers, int64s and booleans.
    Literal(Value),
    Array(Box<Validator>),
    /// An object with exactly these fields; optional ones may be absent.
    Object(BTreeMap<String, ObjectField>),
    /// An object with any field names, each matching the first validator as a string, and
    /// each value matching the second.
    Record(Box<Validator>, Box<Validator>),
    /// Any of the members.
    Union(Vec<Validator>),
}

/// One field of an object validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectField {
    pub validator: Validator,
    pub optional: bool,
}

impl ObjectField {
    pub fn required(validator: Validator) -> ObjectField {
        ObjectField { validator, optional: false }
    }

    pub fn optional(validator: Validator) -> ObjectField {
        ObjectField { validator, optional: true }
    }
}

/// Finds the table an id belongs to, for [`Validator::Id`].
pub trait IdTableResolver {
    /// The name of the id's table, or `None` if no table has its number.
    fn table_name_of(&self, id: &DocumentId) -> Option<String>;
}

/// Why a value does not match a validator. `path` locates the offending value relative to the
/// validated one, like `foo[2].bar`; the empty string is the validated value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Validation failed at {}: {message}", quoted_path(.path))]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl Validator {
    /// Checks `value`, resolving the tables of ids with `ids`.
    pub fn validate(&self, value: &Value, ids: &dyn IdTableResolver) -> Result<(), ValidationError> {
        self.check(value, ids, &Path::Root)
    }

    fn check(&self, value: &Value, ids: &dyn IdTableResolver, path: &Path<'_>) -> Result<(), ValidationError> {
        match (self, value) {
            (Validator::Any, _)
            | (Validator::Null, Value::Null)
            | (Validator::Boolean, Value::Boolean(_))
            | (Validator::String, Value::String(_))
            | (Validator::Float64, Value::Float64(_))
            | (Validator::Int64, Value::Int64(_))
            | (Validator::Bytes, Value::Bytes(_)) => Ok(()),
            (Validator::Literal(literal), value) if literal == value => Ok(()),
            (Validator::Id(table), Value::String(id)) => check_id(table, id, ids, path),
            (Validator::Array(element), Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    element.check(item, ids, &path.index(index))?;
                }
                Ok(())
            }
            (Validator::Object(fields), Value::Object(object)) => {
                for (name, field) in fields {
                    match object.get(name) {
                        Some(value) => field.validator.check(value, ids, &path.field(name))?,
                        None if field.optional => {}
                        None => {
                            return Err(error(
                                &path.field(name),
                                format!(
                                    "the required field `{}` is missing (expected {}).",
                                    describe(name),
                                    describe(&field.validator)
                                ),
                            ));
                        }
                    }
                }
                match object.keys().find(|name| !fields.contains_key(*name)) {
                    Some(extra) => Err(error(
                        &path.field(extra),
                        format!(
                            "the field `{}` is not in the object validator, which allows only {}.",
                            describe(extra),
                            describe(&FieldList(fields))
                        ),
                    )),
                    None => Ok(()),
                }
            }
            (Validator::Record(keys, values), Value::Object(object)) => {
                for (name, value) in object {
                    let field_path = path.field(name);
                    let key = Value::String(name.clone());
                    keys.check(&key, ids, &field_path).map_err(|key_error| {
                        error(
                            &field_path,
                            format!(
                                "the record key `{}` does not match {}: {}",
                                describe(name),
                                describe(keys),
                                key_error.message
                            ),
                        )
                    })?;
                    values.check(value, ids, &field_path)?;
                }
                Ok(())
            }
            (Validator::Union(members), value) => self.check_union(members, value, ids, path),
            _ => Err(mismatch(self, value, path)),
        }
    }

    fn check_union(
        &self,
        members: &[Validator],
        value: &Value,
        ids: &dyn IdTableResolver,
        path: &Path<'_>,
    ) -> Result<(), ValidationError> {
        if let [member] = members {
            return member.check(value, ids, path);
        }
        let mut failures = Vec::new();
        for (index, member) in members.iter().enumerate() {
            match member.check(value, ids, path) {
                Ok(()) => return Ok(()),
                Err(failure) => failures.push((index, failure)),
            }
        }
        // A member that failed deeper than the union itself (a field of an object member, say)
        // got far enough that its reason is worth reading; one that failed on the value's type
        // only repeats what the union's own description already says.
        let union_path = path.render();
        let details: Vec<String> = failures
            .into_iter()
            .filter(|(_, failure)| failure.path != union_path)
            .map(|(index, failure)| {
                format!("member {} failed at {}: {}", index + 1, quoted_path(&failure.path), failure.message)
            })
            .collect();
        let mut message =
            format!("found {} {}, which matches no member of {}", value.type_name(), describe(value), describe(self));
        if details.is_empty() {
            message.push('.');
        } else {
            message.push_str(": ");
            message.push_str(&details.join("; "));
        }
        Err(ValidationError { path: union_path, message })
    }

    /// The validator's JSON form, as Convex's npm package writes it.
    pub fn to_json(&self) -> Json {
        let typed = |name: &str| Map::from_iter([("type".to_owned(), Json::from(name))]);
        let with = |name: &str, key: &str, value: Json| {
            let mut map = typed(name);
            map.insert(key.to_owned(), value);
            Json::Object(map)
        };
        let field = |validator: &Validator, optional: bool| {
            Json::Object(Map::from_iter([
                ("fieldType".to_owned(), validator.to_json()),
                ("optional".to_owned(), Json::Bool(optional)),
            ]))
        };
        match self {
            Validator::Any => Json::Object(typed("any")),
            Validator::Null => Json::Object(typed("null")),
            Validator::Boolean => Json::Object(typed("boolean")),
            Validator::String => Json::Object(typed("string")),
            // Convex's server still expects the old names.
            Validator::Float64 => Json::Object(typed("number")),
            Validator::Int64 => Json::Object(typed("bigint")),
            Validator::Bytes => Json::Object(typed("bytes")),
            Validator::Id(table) => with("id", "tableName", Json::from(table.as_str())),
            Validator::Literal(value) => with("literal", "value", to_convex_json(value)),
            Validator::Array(element) => with("array", "value", element.to_json()),
            Validator::Object(fields) => with(
                "object",
                "value",
                Json::Object(fields.iter().map(|(name, f)| (name.clone(), field(&f.validator, f.optional))).collect()),
            ),
            Validator::Record(keys, values) => {
                let mut map = typed("record");
                map.insert("keys".to_owned(), keys.to_json());
                map.insert("values".to_owned(), field(values, false));
                Json::Object(map)
            }
            Validator::Union(members) => {
                with("union", "value", Json::Array(members.iter().map(Validator::to_json).collect()))
            }
        }
    }

    /// Parses a validator's JSON form, with Convex's rules: table names and object field
    /// names are identifiers, literals are strings, numbers, int64s or booleans, record keys
    /// are strings or ids (or unions of them) and record values are not optional.
    pub fn from_json(json: &Json) -> Result<Validator, ValueError> {
        parse_validator(json, &Path::Root, 1)
    }
}

fn check_id(table: &str, id: &str, ids: &dyn IdTableResolver, path: &Path<'_>) -> Result<(), ValidationError> {
    let Ok(document_id) = DocumentId::decode(id) else {
        return Err(error(
            path,
            format!(
                "expected {}, found string {}, which is not a document id.",
                describe(&Validator::Id(table.to_owned())),
                describe(&Value::String(id.to_owned()))
            ),
        ));
    };
    match ids.table_name_of(&document_id) {
        Some(found) if found == table => Ok(()),
        Some(found) => Err(error(
            path,
            format!(
                "expected an id of table `{}`, found the id {id} of table `{}`.",
                describe(&table),
                describe(&found)
            ),
        )),
        None => Err(error(
            path,
            format!(
                "expected an id of table `{}`, found the id {id} of table number {}, which does \
                 not exist.",
                describe(&table),
                document_id.table()
            ),
        )),
    }
}

fn mismatch(validator: &Validator, value: &Value, path: &Path<'_>) -> ValidationError {
    error(path, format!("expected {}, found {} {}.", describe(validator), value.type_name(), describe(value)))
}

fn error(path: &Path<'_>, message: String) -> ValidationError {
    ValidationError { path: path.render(), message }
}

/// Renders like Convex's `v` builder: `v.object({a: v.string(), b: v.optional(v.int64())})`.
impl fmt::Display for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validator::Any => f.write_str("v.any()"),
            Validator::Null => f.write_str("v.null()"),
            Validator::Boolean => f.write_str("v.boolean()"),
            Validator::String => f.write_str("v.string()"),
            Validator::Float64 => f.write_str("v.float64()"),
            Validator::Int64 => f.write_str("v.int64()"),
            Validator::Bytes => f.write_str("v.bytes()"),
            Validator::Id(table) => write!(f, "v.id({table:?})"),
            Validator::Literal(value) => write!(f, "v.literal({value})"),
            Validator::Array(element) => write!(f, "v.array({element})"),
            Validator::Object(fields) => write!(f, "v.object({})", FieldList(fields)),
            Validator::Record(keys, values) => write!(f, "v.record({keys}, {values})"),
            Validator::Union(members) => {
                f.write_str("v.union(")?;
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{member}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// An object validator's fields, as `{a: v.string(), b: v.optional(v.int64())}`.
struct FieldList<'a>(&'a BTreeMap<String, ObjectField>);

impl fmt::Display for FieldList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, field)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if field.optional {
                write!(f, "{name}: v.optional({})", field.validator)?;
            } else {
                write!(f, "{name}: {}", field.validator)?;
            }
        }
        f.write_str("}")
    }
}

fn json_error(path: &Path<'_>, problem: impl Into<String>) -> ValueError {
    ValueError::InvalidValidatorJson { path: path.render(), problem: problem.into() }
}

/// The member `key` of a validator's JSON object.
fn member<'a>(map: &'a Map<String, Json>, key: &str, path: &Path<'_>) -> Result<&'a Json, ValueError> {
    map.get(key).ok_or_else(|| json_error(path, format!("the `{key}` field is missing.")))
}

/// Parses a validator nested inside `nesting - 1` others.
fn parse_validator(json: &Json, path: &Path<'_>, nesting: usize) -> Result<Validator, ValueError> {
    // Checked before descending, so recursion depth stays bounded on any input.
    if nesting > MAX_VALUE_NESTING {
        return Err(json_error(path, format!("validators may nest at most {MAX_VALUE_NESTING} levels deep.")));
    }
    let Json::Object(map) = json else {
        return Err(json_error(
            path,
            format!("expected an object with a `type` field, found {}.", crate::json::describe_json_type(json)),
        ));
    };
    let Json::String(kind) = member(map, "type", path)? else {
        return Err(json_error(&path.field("type"), "the validator type must be a string."));
    };
    let validator = match kind.as_str() {
        "any" => Validator::Any,
        "null" => Validator::Null,
        "boolean" => Validator::Boolean,
        "string" => Validator::String,
        "number" => Validator::Float64,
        "bigint" => Validator::Int64,
        "bytes" => Validator::Bytes,
        "id" => {
            let table_path = path.field("tableName");
            let Json::String(table) = member(map, "tableName", path)? else {
                return Err(json_error(&table_path, "the table name must be a string."));
            };
            validate_identifier("table", table).map_err(|error| json_error(&table_path, error.to_string()))?;
            Validator::Id(table.clone())
        }
        "literal" => {
            let value_path = path.field("value");
            let value = from_convex_json(member(map, "value", path)?)
                .map_err(|error| json_error(&value_path, error.to_string()))?;
            match value {
                Value::String(_) | Value::Float64(_) | Value::Int64(_) | Value::Boolean(_) => {}
                _ => {
                    return Err(json_error(
                        &value_path,
                        format!("a literal must be a string, number, bigint or boolean, not {}.", value.type_name()),
                    ));
                }
            }
            Validator::Literal(value)
        }
        "array" => {
            let element = parse_validator(member(map, "value", path)?, &path.field("value"), nesting + 1)?;
            Validator::Array(Box::new(element))
        }
        "object" => {
            let value_path = path.field("value");
            let Json::Object(entries) = member(map, "value", path)? else {
                return Err(json_error(&value_path, "the fields must be an object."));
            };
            let mut fields = BTreeMap::new();
            for (name, entry) in entries {
                let field_path = value_path.field(name);
                // Convex requires object validator fields to be identifiers.
                check_field_name(name, false).map_err(|problem| json_error(&field_path, format!("{problem}.")))?;
                validate_identifier("field", name).map_err(|error| json_error(&field_path, error.to_string()))?;
                fields.insert(name.clone(), parse_field(entry, &field_path, nesting + 1)?);
            }
            Validator::Object(fields)
        }
        "record" => {
            let keys_path = path.field("keys");
            let keys = parse_validator(member(map, "keys", path)?, &keys_path, nesting + 1)?;
            if !is_record_key(&keys) {
                return Err(json_error(
                    &keys_path,
                    format!("record keys must be v.string(), v.id(...) or a union of those, not {}.", describe(&keys)),
                ));
            }
            let values_path = path.field("values");
            let values = parse_field(member(map, "values", path)?, &values_path, nesting + 1)?;
            if values.optional {
                return Err(json_error(&values_path, "record values cannot be optional."));
            }
            Validator::Record(Box::new(keys), Box::new(values.validator))
        }
        "union" => {
            let value_path = path.field("value");
            let Json::Array(items) = member(map, "value", path)? else {
                return Err(json_error(&value_path, "the members must be an array."));
            };
            let mut members = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                members.push(parse_validator(item, &value_path.index(index), nesting + 1)?);
            }
            Validator::Union(members)
        }
        other => {
            return Err(json_error(&path.field("type"), format!("unknown validator type `{}`.", describe(&other))));
        }
    };
    Ok(validator)
}

fn parse_field(json: &Json, path: &Path<'_>, nesting: usize) -> Result<ObjectField, ValueError> {
    let Json::Object(map) = json else {
        return Err(json_error(
            path,
            format!(
                "expected an object with `fieldType` and `optional` fields, found {}.",
                crate::json::describe_json_type(json)
            ),
        ));
    };
    let validator = parse_validator(member(map, "fieldType", path)?, &path.field("fieldType"), nesting)?;
    let Json::Bool(optional) = member(map, "optional", path)? else {
        return Err(json_error(&path.field("optional"), "`optional` must be a boolean."));
    };
    Ok(ObjectField { validator, optional: *optional })
}

/// Whether `keys` only accepts strings and is not a string literal, as Convex requires.
fn is_record_key(keys: &Validator) -> bool {
    match keys {
        Validator::String | Validator::Id(_) => true,
        Validator::Union(members) => members.iter().all(is_record_key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::id::TableNumber;
    use crate::value::Object;

    /// Tables 1 `users` and 2 `posts`; no others.
    struct Tables;

    impl IdTableResolver for Tables {
        fn table_name_of(&self, id: &DocumentId) -> Option<String> {
            match id.table().get() {
                1 => Some("users".to_owned()),
                2 => Some("posts".to_owned()),
                _ => None,
            }
        }
    }

    fn id_in(table: u32) -> String {
        DocumentId::new(TableNumber::new(table).unwrap(), [3; 16]).encode()
    }

    fn object_validator(fields: &[(&str, ObjectField)]) -> Validator {
        Validator::Object(fields.iter().map(|(name, f)| (name.to_string(), f.clone())).collect())
    }

    fn object(fields: &[(&str, Value)]) -> Value {
        Value::Object(fields.iter().map(|(name, v)| (name.to_string(), v.clone())).collect())
    }

    fn failure(validator: &Validator, value: &Value) -> ValidationError {
        validator.validate(value, &Tables).expect_err("the value should not validate")
    }

    #[test]
    fn scalar_types() {
        let values = [
            Value::Null,
            Value::Boolean(true),
            Value::from("s"),
            Value::Float64(1.0),
            Value::Int64(1),
            Value::Bytes(vec![1]),
        ];
        let validators = [
            Validator::Null,
            Validator::Boolean,
            Validator::String,
            Validator::Float64,
            Validator::Int64,
            Validator::Bytes,
        ];
        for (i, validator) in validators.iter().enumerate() {
            for (j, value) in values.iter().enumerate() {
                assert_eq!(validator.validate(value, &Tables).is_ok(), i == j, "{validator} {value}");
                assert!(Validator::Any.validate(value, &Tables).is_ok());
            }
        }
        let error = failure(&Validator::Float64, &Value::Int64(5));
        assert_eq!(error.to_string(), "Validation failed at (root): expected v.float64(), found int64 5n.");
    }

    #[test]
    fn literals() {
        let literal = Validator::Literal(Value::from("a"));
        assert!(literal.validate(&Value::from("a"), &Tables).is_ok());
        assert_eq!(failure(&literal, &Value::from("b")).message, "expected v.literal(\"a\"), found string \"b\".");
        let nan = Validator::Literal(Value::Float64(f64::NAN));
        assert!(nan.validate(&Value::Float64(f64::NAN), &Tables).is_ok());
        assert!(Validator::Literal(Value::Int64(1)).validate(&Value::Float64(1.0), &Tables).is_err());
    }

    #[test]
    fn ids() {
        let users = Validator::Id("users".to_owned());
        assert!(users.validate(&Value::String(id_in(1)), &Tables).is_ok());

        let nested = object_validator(&[("author", ObjectField::required(users.clone()))]);
        let error = failure(&nested, &object(&[("author", Value::String(id_in(2)))]));
        assert_eq!(error.path, "author");
        assert_eq!(
            error.message,
            format!("expected an id of table `users`, found the id {} of table `posts`.", id_in(2))
        );

        let error = failure(&users, &Value::String(id_in(9)));
        assert!(error.message.contains("table number 9, which does not exist"), "{error}");
        let error = failure(&users, &Value::from("not an id"));
        assert_eq!(error.message, "expected v.id(\"users\"), found string \"not an id\", which is not a document id.");
        assert!(failure(&users, &Value::Int64(1)).message.starts_with("expected v.id(\"users\")"));
    }

    #[test]
    fn objects_name_the_bad_field() {
        let validator = object_validator(&[
            ("name", ObjectField::required(Validator::String)),
            ("age", ObjectField::optional(Validator::Float64)),
            (
                "tags",
                ObjectField::required(Validator::Array(Box::new(object_validator(&[(
                    "label",
                    ObjectField::required(Validator::String),
                )])))),
            ),
        ]);
        let tag = |label: Value| object(&[("label", label)]);
        let valid = object(&[("name", Value::from("ada")), ("tags", Value::Array(vec![tag(Value::from("x"))]))]);
        assert!(validator.validate(&valid, &Tables).is_ok());

        let wrong_type = object(&[
            ("name", Value::from("ada")),
            ("tags", Value::Array(vec![tag(Value::from("x")), tag(Value::Int64(3))])),
        ]);
        let error = failure(&validator, &wrong_type);
        assert_eq!(error.to_string(), "Validation failed at `tags[1].label`: expected v.string(), found int64 3n.");

        let missing = object(&[("tags", Value::Array(vec![]))]);
        let error = failure(&validator, &missing);
        assert_eq!(error.path, "name");
        assert_eq!(error.message, "the required field `name` is missing (expected v.string()).");

        let mut extra = valid.clone();
        let Value::Object(fields) = &mut extra else { unreachable!() };
        fields.insert("nickname".to_owned(), Value::from("a"));
        let error = failure(&validator, &extra);
        assert_eq!(error.path, "nickname");
        assert!(error.message.starts_with("the field `nickname` is not in the object validator"));
        assert!(error.message.contains("{age: v.optional(v.float64()), name: v.string(), tags:"));
    }

    #[test]
    fn records() {
        let validator = Validator::Record(Box::new(Validator::Id("users".to_owned())), Box::new(Validator::Float64));
        let score = |key: String, value: Value| Value::Object(Object::from([(key, value)]));
        assert!(validator.validate(&score(id_in(1), Value::Float64(1.0)), &Tables).is_ok());
        assert!(validator.validate(&Value::Object(Object::new()), &Tables).is_ok());

        let error = failure(&validator, &score(id_in(1), Value::Null));
        assert_eq!(error.path, id_in(1));
        let error = failure(&validator, &score("bob".to_owned(), Value::Float64(1.0)));
        assert_eq!(error.path, "bob");
        assert!(error.message.starts_with("the record key `bob` does not match v.id(\"users\")"));
    }

    #[test]
    fn unions_explain_the_failure() {
        let simple = Validator::Union(vec![Validator::String, Validator::Null]);
        assert!(simple.validate(&Value::Null, &Tables).is_ok());
        assert_eq!(
            failure(&simple, &Value::Boolean(true)).message,
            "found boolean true, which matches no member of v.union(v.string(), v.null())."
        );

        let shapes = Validator::Union(vec![
            object_validator(&[
                ("kind", ObjectField::required(Validator::Literal(Value::from("circle")))),
                ("radius", ObjectField::required(Validator::Float64)),
            ]),
            object_validator(&[
                ("kind", ObjectField::required(Validator::Literal(Value::from("square")))),
                ("side", ObjectField::required(Validator::Float64)),
            ]),
        ]);
        let wrapped = object_validator(&[("shape", ObjectField::required(shapes))]);
        let value = object(&[("shape", object(&[("kind", Value::from("circle")), ("radius", Value::from("big"))]))]);
        let error = failure(&wrapped, &value);
        assert_eq!(error.path, "shape");
        assert!(
            error.message.contains("member 1 failed at `shape.radius`: expected v.float64(), found string \"big\"."),
            "{error}"
        );
        assert!(error.message.contains("member 2 failed at `shape.kind`"), "{error}");

        let single = Validator::Union(vec![Validator::String]);
        assert_eq!(failure(&single, &Value::Null).message, "expected v.string(), found null null.");
        assert!(Validator::Union(vec![]).validate(&Value::Null, &Tables).is_err());
    }

    #[test]
    fn json_shapes_match_convex() {
        let validator = object_validator(&[
            ("a", ObjectField::required(Validator::Int64)),
            ("b", ObjectField::optional(Validator::Array(Box::new(Validator::Float64)))),
            ("c", ObjectField::required(Validator::Id("users".to_owned()))),
            (
                "d",
                ObjectField::required(Validator::Record(
                    Box::new(Validator::String),
                    Box::new(Validator::Union(vec![Validator::Literal(Value::Int64(1)), Validator::Bytes])),
                )),
            ),
        ]);
        let json = json!({
            "type": "object",
            "value": {
                "a": {"fieldType": {"type": "bigint"}, "optional": false},
                "b": {"fieldType": {"type": "array", "value": {"type": "number"}}, "optional": true},
                "c": {"fieldType": {"type": "id", "tableName": "users"}, "optional": false},
                "d": {
                    "fieldType": {
                        "type": "record",
                        "keys": {"type": "string"},
                        "values": {
                            "fieldType": {
                                "type": "union",
                                "value": [
                                    {"type": "literal", "value": {"$integer": "AQAAAAAAAAA="}},
                                    {"type": "bytes"}
                                ]
                            },
                            "optional": false
                        }
                    },
                    "optional": false
                }
            }
        });
        assert_eq!(validator.to_json(), json);
        assert_eq!(Validator::from_json(&json), Ok(validator));
        for (validator, json) in [
            (Validator::Any, json!({"type": "any"})),
            (Validator::Null, json!({"type": "null"})),
            (Validator::Boolean, json!({"type": "boolean"})),
            (Validator::String, json!({"type": "string"})),
            (Validator::Literal(Value::from("x")), json!({"type": "literal", "value": "x"})),
        ] {
            assert_eq!(validator.to_json(), json);
            assert_eq!(Validator::from_json(&json), Ok(validator));
        }
        // Unknown keys are ignored, as Convex's server ignores them.
        assert_eq!(Validator::from_json(&json!({"type": "string", "description": "x"})), Ok(Validator::String));
    }

    #[test]
    fn json_rejections_name_the_place() {
        let cases = [
            (json!("string"), "", "expected an object with a `type` field, found a string."),
            (json!({}), "", "the `type` field is missing."),
            (json!({"type": "strin"}), "type", "unknown validator type `strin`."),
            (json!({"type": "array"}), "", "the `value` field is missing."),
            (
                json!({"type": "object", "value": {"a-b": {"fieldType": {"type": "null"}, "optional": false}}}),
                "value.a-b",
                "Invalid field name `a-b`",
            ),
            (
                json!({"type": "object", "value": {"a": {"fieldType": {"type": "null"}}}}),
                "value.a",
                "the `optional` field is missing.",
            ),
            (json!({"type": "id", "tableName": "9x"}), "tableName", "Invalid table name `9x`"),
            (json!({"type": "literal", "value": null}), "value", "not null."),
            (json!({"type": "literal", "value": {"$set": []}}), "value", "must not start with `$`"),
            (
                json!({"type": "record", "keys": {"type": "number"}, "values": {"fieldType": {"type": "null"}, "optional": false}}),
                "keys",
                "record keys must be v.string(), v.id(...) or a union of those, not v.float64().",
            ),
            (
                json!({"type": "record", "keys": {"type": "literal", "value": "a"}, "values": {"fieldType": {"type": "null"}, "optional": false}}),
                "keys",
                "record keys must be",
            ),
            (
                json!({"type": "record", "keys": {"type": "string"}, "values": {"fieldType": {"type": "null"}, "optional": true}}),
                "values",
                "record values cannot be optional.",
            ),
            (json!({"type": "union", "value": [{"type": "null"}, 5]}), "value[1]", "found a number."),
        ];
        for (json, path, problem_part) in cases {
            let error = Validator::from_json(&json).unwrap_err();
            let ValueError::InvalidValidatorJson { path: found, problem } = &error else {
                panic!("{error}");
            };
            assert_eq!(found, path, "{json}: {error}");
            assert!(problem.contains(problem_part), "{json}: {error}");
        }
        let error = Validator::from_json(&json!({"type": "strin"})).unwrap_err();
        assert_eq!(error.to_string(), "Invalid validator JSON at `type`: unknown validator type `strin`.");
    }

    #[test]
    fn json_nesting_is_bounded() {
        let nested = |levels: usize| {
            let mut json = json!({"type": "null"});
            for _ in 1..levels {
                json = json!({"type": "array", "value": json});
            }
            json
        };
        assert!(Validator::from_json(&nested(MAX_VALUE_NESTING)).is_ok());
        let error = Validator::from_json(&nested(MAX_VALUE_NESTING + 1)).unwrap_err();
        assert!(error.to_string().contains("at most 64 levels deep"), "{error}");
    }

    fn validator() -> impl Strategy<Value = Validator> {
        let literal = prop_oneof![
            any::<String>().prop_map(Value::String),
            any::<f64>().prop_map(Value::Float64),
            any::<i64>().prop_map(Value::Int64),
            any::<bool>().prop_map(Value::Boolean),
        ];
        let leaf = prop_oneof![
            Just(Validator::Any),
            Just(Validator::Null),
            Just(Validator::Boolean),
            Just(Validator::String),
            Just(Validator::Float64),
            Just(Validator::Int64),
            Just(Validator::Bytes),
            "[a-z][a-z0-9_]{0,5}".prop_map(Validator::Id),
            literal.prop_map(Validator::Literal),
        ];
        let record_key = prop_oneof![Just(Validator::String), "[a-z]{1,5}".prop_map(Validator::Id),];
        leaf.prop_recursive(3, 16, 4, move |inner| {
            prop_oneof![
                inner.clone().prop_map(|v| Validator::Array(Box::new(v))),
                proptest::collection::btree_map(
                    "[a-z_][a-z0-9_]{0,4}".prop_filter("not only underscores", |n| n.chars().any(|c| c != '_')),
                    (inner.clone(), any::<bool>())
                        .prop_map(|(validator, optional)| ObjectField { validator, optional }),
                    0..4,
                )
                .prop_map(Validator::Object),
                (proptest::collection::vec(record_key.clone(), 1..3), inner.clone())
                    .prop_map(|(keys, values)| Validator::Record(Box::new(Validator::Union(keys)), Box::new(values))),
                proptest::collection::vec(inner, 0..4).prop_map(Validator::Union),
            ]
        })
    }

    proptest! {
        #[test]
        fn json_round_trips(validator in validator()) {
            let json = validator.to_json();
            prop_assert_eq!(Validator::from_json(&json), Ok(validator));
        }
    }
}
