//! Typed arguments: a function's validated arguments read into a Rust type with serde, so a handler
//! can take `CreateArgs { name: String, .. }` rather than pick fields out of an `Object` by hand. Only
//! the handler's view changes: calls still carry `Value`s, and the args validator still runs first.

use std::fmt;

use livebase_value::{Object, Value};
use serde::de::value::{MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

use crate::error::FunctionError;

/// Reads arguments into `T`. Int64s read as any integer type, float64s as `f64` (and int64s too),
/// strings, bytes (`serde_bytes`-style byte buffers), arrays as sequences, objects as structs or maps,
/// null as `()` or `None`, and a string as a unit enum variant (a union of literals). An absent
/// optional field reads as `None` through serde's own rules for `Option` fields.
pub fn from_args<T: DeserializeOwned>(args: Object) -> Result<T, FunctionError> {
    T::deserialize(ValueDeserializer(Value::Object(args)))
        .map_err(|error| FunctionError::failed(format!("The arguments don't fit the handler's type: {error}")))
}

/// Why a value does not fit a Rust type.
#[derive(Debug)]
struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(message: T) -> DecodeError {
        DecodeError(message.to_string())
    }
}

struct ValueDeserializer(Value);

impl IntoDeserializer<'_, DecodeError> for ValueDeserializer {
    type Deserializer = ValueDeserializer;

    fn into_deserializer(self) -> ValueDeserializer {
        self
    }
}

impl<'de> de::Deserializer<'de> for ValueDeserializer {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Int64(n) => visitor.visit_i64(n),
            Value::Float64(n) => visitor.visit_f64(n),
            Value::Boolean(b) => visitor.visit_bool(b),
            Value::String(s) => visitor.visit_string(s),
            Value::Bytes(bytes) => visitor.visit_byte_buf(bytes),
            Value::Array(items) => {
                let mut items = SeqDeserializer::new(items.into_iter().map(ValueDeserializer));
                let value = visitor.visit_seq(&mut items)?;
                items.end()?;
                Ok(value)
            }
            Value::Object(fields) => {
                let mut fields = MapDeserializer::new(fields.into_iter().map(|(name, v)| (name, ValueDeserializer(v))));
                let value = visitor.visit_map(&mut fields)?;
                fields.end()?;
                Ok(value)
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(ValueDeserializer(other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            other => Err(de::Error::invalid_type(unexpected(&other), &"a string naming a variant")),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct identifier ignored_any
    }
}

fn unexpected(value: &Value) -> de::Unexpected<'_> {
    match value {
        Value::Null => de::Unexpected::Unit,
        Value::Int64(n) => de::Unexpected::Signed(*n),
        Value::Float64(n) => de::Unexpected::Float(*n),
        Value::Boolean(b) => de::Unexpected::Bool(*b),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Bytes(bytes) => de::Unexpected::Bytes(bytes),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Offer,
        Answer,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Id(String);

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Args {
        room_id: Id,
        kind: Kind,
        count: u32,
        ratio: f64,
        whole_ratio: f64,
        tags: Vec<String>,
        note: Option<String>,
        cleared: Option<String>,
        flag: bool,
        nothing: (),
    }

    fn args(fields: &[(&str, Value)]) -> Object {
        fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
    }

    fn full() -> Object {
        args(&[
            ("roomId", Value::from("r1")),
            ("kind", Value::from("answer")),
            ("count", Value::Int64(3)),
            ("ratio", Value::Float64(0.5)),
            ("wholeRatio", Value::Int64(2)),
            ("tags", Value::Array(vec![Value::from("a"), Value::from("b")])),
            ("cleared", Value::Null),
            ("flag", Value::Boolean(true)),
            ("nothing", Value::Null),
        ])
    }

    #[test]
    fn arguments_read_into_rust_types() {
        let parsed: Args = from_args(full()).unwrap();
        let expected = Args {
            room_id: Id("r1".to_owned()),
            kind: Kind::Answer,
            count: 3,
            ratio: 0.5,
            whole_ratio: 2.0,
            tags: vec!["a".to_owned(), "b".to_owned()],
            note: None,
            cleared: None,
            flag: true,
            nothing: (),
        };
        assert_eq!(parsed, expected);
    }

    #[test]
    fn arguments_that_do_not_fit_say_why() {
        let error = |field: &str, value: Value| {
            let mut fields = full();
            fields.insert(field.to_owned(), value);
            from_args::<Args>(fields).unwrap_err().to_string()
        };
        let message = error("count", Value::Int64(-1));
        assert!(message.starts_with("The arguments don't fit the handler's type: "), "{message}");
        assert!(message.contains("-1"), "{message}");
        assert!(error("kind", Value::from("ice")).contains("unknown variant `ice`"));
        assert!(error("kind", Value::Int64(1)).contains("a string naming a variant"));
        assert!(error("count", Value::Float64(1.0)).contains("floating point"));
        assert!(error("extra", Value::Null).contains("unknown field `extra`"));
        let mut missing = full();
        missing.remove("flag");
        assert!(from_args::<Args>(missing).unwrap_err().to_string().contains("missing field `flag`"));
    }
}
