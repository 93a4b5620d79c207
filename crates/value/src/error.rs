//! The error type shared by value validation, the JSON formats and validator parsing.

use std::fmt;

use crate::limits::{MAX_ARRAY_LEN, MAX_DOCUMENT_SIZE, MAX_FIELD_NAME_LEN, MAX_IDENTIFIER_LEN, MAX_OBJECT_FIELDS};
use crate::path::{Location, quoted_path, shorten};

/// Why a value, document, name or JSON input was rejected.
///
/// Every `path` is rendered like `a.b[3].c`, relative to the value being checked; the empty
/// string is the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "Invalid {kind} name `{}`: it must match [A-Za-z_][A-Za-z0-9_]*, must not consist only \
         of underscores, and must be at most {MAX_IDENTIFIER_LEN} characters long.",
        shorten(.name)
    )]
    InvalidIdentifier { kind: String, name: String },

    /// `path` names the field itself, except for [`FieldNameProblem::Empty`], where it names
    /// the object holding the empty name.
    #[error("{}", invalid_field_name(.path, .problem))]
    InvalidFieldName { path: String, problem: FieldNameProblem },

    #[error(
        "Value at {} is nested too deeply: values may be nested at most {limit} levels deep.",
        Location(.path)
    )]
    TooNested { path: String, limit: usize },

    #[error(
        "Object at {} has {count} fields, over the limit of {MAX_OBJECT_FIELDS} fields.",
        Location(.path)
    )]
    TooManyFields { path: String, count: usize },

    #[error(
        "Array at {} has {len} elements, over the limit of {MAX_ARRAY_LEN} elements.",
        Location(.path)
    )]
    ArrayTooLong { path: String, len: usize },

    #[error(
        "Document is too large: it encodes to {size} bytes, counting its system fields, over the \
         limit of {MAX_DOCUMENT_SIZE} bytes."
    )]
    DocumentTooLarge { size: usize },

    #[error("{}", invalid_field_path(.path, .segment, .problem))]
    InvalidFieldPath { path: String, segment: String, problem: FieldNameProblem },

    #[error("Invalid `{key}` object at {}: {problem}", Location(.path))]
    MalformedSpecialObject { path: String, key: &'static str, problem: String },

    #[error(
        "Invalid number at {}: {} cannot be represented as a 64-bit float.",
        Location(.path),
        shorten(.number)
    )]
    UnrepresentableNumber { path: String, number: String },

    #[error("Invalid validator JSON at {}: {problem}", quoted_path(.path))]
    InvalidValidatorJson { path: String, problem: String },
}

/// What is wrong with a field name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNameProblem {
    Empty,
    TooLong {
        len: usize,
    },
    StartsWithDollar,
    InvalidCharacter {
        character: char,
    },
    /// Top-level names starting with `_` belong to system fields.
    Reserved,
}

impl fmt::Display for FieldNameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldNameProblem::Empty => f.write_str("field names must not be empty"),
            FieldNameProblem::TooLong { len } => {
                write!(f, "the name is {len} bytes long, over the limit of {MAX_FIELD_NAME_LEN} bytes")
            }
            FieldNameProblem::StartsWithDollar => f.write_str("field names must not start with `$`, which is reserved"),
            FieldNameProblem::InvalidCharacter { character } => write!(
                f,
                "the name contains {character:?}, but field names may only contain printable \
                 ASCII characters (space through `~`)"
            ),
            FieldNameProblem::Reserved => f.write_str(
                "top-level field names starting with `_` are reserved for system fields such as \
                 `_id` and `_creationTime`",
            ),
        }
    }
}

fn invalid_field_name(path: &str, problem: &FieldNameProblem) -> String {
    match problem {
        FieldNameProblem::Empty if path.is_empty() => {
            format!("Invalid field name in the top-level object: {problem}.")
        }
        FieldNameProblem::Empty => {
            format!("Invalid field name in the object at {}: {problem}.", Location(path))
        }
        _ => format!("Invalid field name at {}: {problem}.", Location(path)),
    }
}

fn invalid_field_path(path: &str, segment: &str, problem: &FieldNameProblem) -> String {
    match problem {
        FieldNameProblem::Empty => {
            format!("Invalid field path `{}`: it has an empty segment.", shorten(path))
        }
        _ => format!(
            "Invalid field path `{}`: segment `{}` is not a valid field name: {problem}.",
            shorten(path),
            shorten(segment)
        ),
    }
}
