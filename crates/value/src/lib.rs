//! Livebase's values: the Convex value model and its total order, the order-preserving key and
//! document encoding, Convex's JSON wire formats, limits on documents and names, document ids,
//! and `v` validators.
//!
//! Pure data and functions: nothing here does IO.

mod error;
mod id;
mod json;
mod key;
mod limits;
mod path;
pub use path::Path;
#[cfg(test)]
mod strategies;
mod validator;
mod value;

pub use error::{FieldNameProblem, ValueError};
pub use id::{DocumentId, INTERNAL_ID_LEN, IdError, MAX_ENCODED_ID_LEN, MIN_ENCODED_ID_LEN, TableNumber};
pub use json::{describe_json_type, from_convex_json, from_plain_json, to_convex_json, to_plain_json};
pub use key::{
    KeyDecodeError, decode_document, decode_key_value, encode_document, encode_key_value, encoded_key_value_len,
};
pub use limits::{
    MAX_ARRAY_LEN, MAX_DOCUMENT_SIZE, MAX_FIELD_NAME_LEN, MAX_IDENTIFIER_LEN, MAX_KEY_NESTING, MAX_NESTING,
    MAX_OBJECT_FIELDS, MAX_VALUE_NESTING, SYSTEM_FIELDS_MAX_SIZE, check_document_size, document_size,
    validate_document, validate_field_name, validate_identifier,
};
pub use validator::{IdTableResolver, ObjectField, ValidationError, Validator};
pub use value::{FieldPath, Object, Value, get_path};
