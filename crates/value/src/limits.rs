//! Limits on documents, values and names, and the checks that enforce them.
//!
//! The numbers are Convex's, so that a document Convex accepts is accepted here too.

use crate::error::{FieldNameProblem, ValueError};
use crate::id::MAX_ENCODED_ID_LEN;
use crate::key::{FLOAT64_ENCODED_LEN, encoded_object_len, field_encoded_len, string_encoded_len};
use crate::path::Path;
use crate::value::{Object, Value};

/// The largest stored document, in bytes, measured as the length of
/// [`crate::encode_document`] of the document including its system fields.
pub const MAX_DOCUMENT_SIZE: usize = 1 << 20;

/// How deeply a document may nest. A document (an object) has nesting 1, and every array or
/// object inside it adds a level: `{a: [{}]}` has nesting 3. Scalars add nothing.
pub const MAX_NESTING: usize = 16;

/// How deeply any other value, such as function arguments, may nest; counted like
/// [`MAX_NESTING`]. Arguments often wrap whole documents, so this is looser.
pub const MAX_VALUE_NESTING: usize = 64;

/// How deeply [`crate::decode_key_value`] lets an encoding nest before rejecting it: a full
/// document, plus one level so that a document can itself be an element of a key or array.
pub const MAX_KEY_NESTING: usize = MAX_NESTING + 1;

/// The most fields one object may have, at any level.
pub const MAX_OBJECT_FIELDS: usize = 1024;

/// The most elements one array may have, at any level.
pub const MAX_ARRAY_LEN: usize = 8192;

/// The longest table or index name, in bytes (identifiers are ASCII).
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// The longest field name, in bytes (field names are ASCII).
pub const MAX_FIELD_NAME_LEN: usize = 1024;

/// The most that the system fields add to a document's encoded size: `_id` as a string of the
/// longest id encoding, and `_creationTime` as a float64. [`validate_document`] reserves this
/// much, so a document it accepts still fits once the store adds those fields.
pub const SYSTEM_FIELDS_MAX_SIZE: usize = field_encoded_len("_id".len(), string_encoded_len(MAX_ENCODED_ID_LEN))
    + field_encoded_len("_creationTime".len(), FLOAT64_ENCODED_LEN);

/// Checks a table or index name: `[A-Za-z_][A-Za-z0-9_]*`, not only underscores, and at most
/// [`MAX_IDENTIFIER_LEN`] characters. `kind` names what is being checked in the error, such as
/// `"table"` or `"index"`.
pub fn validate_identifier(kind: &str, name: &str) -> Result<(), ValueError> {
    let bytes = name.as_bytes();
    let valid = match bytes.split_first() {
        None => false,
        Some((first, rest)) => {
            bytes.len() <= MAX_IDENTIFIER_LEN
                && (first.is_ascii_alphabetic() || *first == b'_')
                && rest.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
                // Convex forbids these: they are indistinguishable from placeholders.
                && !bytes.iter().all(|b| *b == b'_')
        }
    };
    if valid { Ok(()) } else { Err(ValueError::InvalidIdentifier { kind: kind.to_owned(), name: name.to_owned() }) }
}

/// Checks a field name: non-empty, at most [`MAX_FIELD_NAME_LEN`] bytes, printable ASCII, no
/// leading `$`; and, for a document's top-level fields, no leading `_`, which marks system
/// fields. Nested field names may start with `_`, as in Convex.
pub fn validate_field_name(name: &str, top_level: bool) -> Result<(), ValueError> {
    check_field_name(name, top_level).map_err(|problem| ValueError::InvalidFieldName {
        path: if problem == FieldNameProblem::Empty { String::new() } else { name.to_owned() },
        problem,
    })
}

pub(crate) fn check_field_name(name: &str, top_level: bool) -> Result<(), FieldNameProblem> {
    if name.is_empty() {
        return Err(FieldNameProblem::Empty);
    }
    if name.len() > MAX_FIELD_NAME_LEN {
        return Err(FieldNameProblem::TooLong { len: name.len() });
    }
    if name.starts_with('$') {
        return Err(FieldNameProblem::StartsWithDollar);
    }
    if let Some(character) = name.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(FieldNameProblem::InvalidCharacter { character });
    }
    if top_level && name.starts_with('_') {
        return Err(FieldNameProblem::Reserved);
    }
    Ok(())
}

/// The error for a bad field name met while walking a value: an empty name is reported at the
/// object that holds it, any other problem at the field itself.
pub(crate) fn field_name_error(problem: FieldNameProblem, object_path: &Path<'_>, field_path: &Path<'_>) -> ValueError {
    let path = if problem == FieldNameProblem::Empty { object_path } else { field_path };
    ValueError::InvalidFieldName { path: path.render(), problem }
}

/// Checks a document as a user supplies it, before the store adds `_id` and `_creationTime`:
/// field names at every level (no system fields at the top level), nesting up to
/// [`MAX_NESTING`], object and array sizes, and the encoded size plus
/// [`SYSTEM_FIELDS_MAX_SIZE`] against [`MAX_DOCUMENT_SIZE`].
pub fn validate_document(object: &Object) -> Result<(), ValueError> {
    check_object(object, &Path::Root, 1, true)?;
    check_document_size(document_size(object) + SYSTEM_FIELDS_MAX_SIZE)
}

/// The exact length of [`crate::encode_document`] of `object`, computed without encoding.
pub fn document_size(object: &Object) -> usize {
    encoded_object_len(object)
}

/// Checks an encoded document size (see [`document_size`]) against [`MAX_DOCUMENT_SIZE`].
pub fn check_document_size(size: usize) -> Result<(), ValueError> {
    if size > MAX_DOCUMENT_SIZE {
        return Err(ValueError::DocumentTooLarge { size });
    }
    Ok(())
}

fn check_object(fields: &Object, path: &Path<'_>, nesting: usize, top_level: bool) -> Result<(), ValueError> {
    // Checked before descending, so recursion depth stays bounded on any input.
    if nesting > MAX_NESTING {
        return Err(ValueError::TooNested { path: path.render(), limit: MAX_NESTING });
    }
    if fields.len() > MAX_OBJECT_FIELDS {
        return Err(ValueError::TooManyFields { path: path.render(), count: fields.len() });
    }
    for (name, value) in fields {
        let field_path = path.field(name);
        check_field_name(name, top_level).map_err(|problem| field_name_error(problem, path, &field_path))?;
        check_value(value, &field_path, nesting)?;
    }
    Ok(())
}

fn check_value(value: &Value, path: &Path<'_>, parent_nesting: usize) -> Result<(), ValueError> {
    match value {
        Value::Object(fields) => check_object(fields, path, parent_nesting + 1, false),
        Value::Array(items) => {
            let nesting = parent_nesting + 1;
            if nesting > MAX_NESTING {
                return Err(ValueError::TooNested { path: path.render(), limit: MAX_NESTING });
            }
            if items.len() > MAX_ARRAY_LEN {
                return Err(ValueError::ArrayTooLong { path: path.render(), len: items.len() });
            }
            for (index, item) in items.iter().enumerate() {
                check_value(item, &path.index(index), nesting)?;
            }
            Ok(())
        }
        Value::Null | Value::Int64(_) | Value::Float64(_) | Value::Boolean(_) | Value::String(_) | Value::Bytes(_) => {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{DocumentId, TableNumber};
    use crate::key::encode_document;

    fn single(name: &str, value: Value) -> Object {
        Object::from([(name.to_owned(), value)])
    }

    /// A document whose fields nest `levels` deep in total, alternating objects and arrays.
    fn nested_document(levels: usize) -> Object {
        assert!(levels >= 1);
        let mut value = Value::Null;
        for level in (2..=levels).rev() {
            value = if level % 2 == 0 { Value::Object(single("x", value)) } else { Value::Array(vec![value]) };
        }
        single("x", value)
    }

    /// A one-field document whose [`document_size`] is exactly `size`.
    fn document_of_size(size: usize) -> Object {
        // Object tag and terminator, field marker, "a" and its terminator, string tag and
        // terminator: nine bytes around the string's content.
        let document = single("a", Value::String("s".repeat(size - 9)));
        assert_eq!(document_size(&document), size);
        document
    }

    #[test]
    fn identifiers() {
        for valid in ["a", "_a", "A_1", "users", &"x".repeat(MAX_IDENTIFIER_LEN)] {
            assert_eq!(validate_identifier("table", valid), Ok(()), "{valid}");
        }
        for invalid in ["", "9x", "a-b", "a b", "é", "_", "___", &"x".repeat(MAX_IDENTIFIER_LEN + 1)] {
            assert_eq!(
                validate_identifier("table", invalid),
                Err(ValueError::InvalidIdentifier { kind: "table".to_owned(), name: invalid.to_owned() }),
                "{invalid}"
            );
        }
        assert_eq!(
            validate_identifier("table", "9x").unwrap_err().to_string(),
            "Invalid table name `9x`: it must match [A-Za-z_][A-Za-z0-9_]*, must not consist only \
             of underscores, and must be at most 64 characters long."
        );
    }

    #[test]
    fn field_names() {
        let at_limit = "f".repeat(MAX_FIELD_NAME_LEN);
        let over_limit = "f".repeat(MAX_FIELD_NAME_LEN + 1);
        assert_eq!(validate_field_name(&at_limit, true), Ok(()));
        assert_eq!(validate_field_name(" ~!a.b[0]", true), Ok(()));
        assert_eq!(validate_field_name("_nested", false), Ok(()));
        for (name, top_level, problem) in [
            ("", false, FieldNameProblem::Empty),
            (&over_limit, false, FieldNameProblem::TooLong { len: MAX_FIELD_NAME_LEN + 1 }),
            ("$a", false, FieldNameProblem::StartsWithDollar),
            ("a\u{7f}", false, FieldNameProblem::InvalidCharacter { character: '\u{7f}' }),
            ("a\nb", false, FieldNameProblem::InvalidCharacter { character: '\n' }),
            ("é", false, FieldNameProblem::InvalidCharacter { character: 'é' }),
            ("_id", true, FieldNameProblem::Reserved),
            ("_creationTime", true, FieldNameProblem::Reserved),
        ] {
            assert_eq!(
                validate_field_name(name, top_level).unwrap_err(),
                ValueError::InvalidFieldName {
                    path: if name.is_empty() { String::new() } else { name.to_owned() },
                    problem
                },
                "{name:?}"
            );
        }
        assert_eq!(
            validate_field_name("$a", false).unwrap_err().to_string(),
            "Invalid field name at field \"$a\": field names must not start with `$`, which is \
             reserved."
        );
    }

    #[test]
    fn document_nesting_at_the_limit() {
        assert_eq!(validate_document(&nested_document(MAX_NESTING)), Ok(()));
        let error = validate_document(&nested_document(MAX_NESTING + 1)).unwrap_err();
        let ValueError::TooNested { path, limit } = &error else { panic!("{error}") };
        assert_eq!(*limit, MAX_NESTING);
        assert_eq!(path, "x.x[0].x[0].x[0].x[0].x[0].x[0].x[0].x");
        assert!(error.to_string().contains("at most 16 levels deep"), "{error}");
    }

    #[test]
    fn object_fields_at_the_limit() {
        let fields = |count: usize| -> Object { (0..count).map(|i| (format!("f{i}"), Value::Null)).collect() };
        assert_eq!(validate_document(&fields(MAX_OBJECT_FIELDS)), Ok(()));
        assert_eq!(
            validate_document(&fields(MAX_OBJECT_FIELDS + 1)),
            Err(ValueError::TooManyFields { path: String::new(), count: MAX_OBJECT_FIELDS + 1 })
        );
        let nested = single("inner", Value::Object(fields(MAX_OBJECT_FIELDS + 1)));
        let error = validate_document(&nested).unwrap_err();
        assert_eq!(error.to_string(), "Object at field \"inner\" has 1025 fields, over the limit of 1024 fields.");
    }

    #[test]
    fn array_length_at_the_limit() {
        let array = |len: usize| single("a", Value::Array(vec![Value::Null; len]));
        assert_eq!(validate_document(&array(MAX_ARRAY_LEN)), Ok(()));
        assert_eq!(
            validate_document(&array(MAX_ARRAY_LEN + 1)),
            Err(ValueError::ArrayTooLong { path: "a".to_owned(), len: MAX_ARRAY_LEN + 1 })
        );
    }

    #[test]
    fn document_size_at_the_limit() {
        let largest = MAX_DOCUMENT_SIZE - SYSTEM_FIELDS_MAX_SIZE;
        assert_eq!(validate_document(&document_of_size(largest)), Ok(()));
        assert_eq!(
            validate_document(&document_of_size(largest + 1)),
            Err(ValueError::DocumentTooLarge { size: MAX_DOCUMENT_SIZE + 1 })
        );
        assert_eq!(check_document_size(MAX_DOCUMENT_SIZE), Ok(()));
        assert_eq!(
            check_document_size(MAX_DOCUMENT_SIZE + 1),
            Err(ValueError::DocumentTooLarge { size: MAX_DOCUMENT_SIZE + 1 })
        );
    }

    #[test]
    fn system_fields_reserve_matches_their_encoding() {
        let user = document_of_size(100);
        let table = TableNumber::new(u32::MAX).unwrap();
        let id = DocumentId::new(table, [0xAB; 16]).encode();
        assert_eq!(id.len(), MAX_ENCODED_ID_LEN);
        let mut stored = user.clone();
        stored.insert("_id".to_owned(), Value::String(id));
        stored.insert("_creationTime".to_owned(), Value::Float64(1.7e12));
        assert_eq!(document_size(&stored), document_size(&user) + SYSTEM_FIELDS_MAX_SIZE);
        assert_eq!(encode_document(&stored).len(), document_size(&stored));
    }

    #[test]
    fn field_names_are_checked_at_every_level() {
        assert_eq!(
            validate_document(&single("_id", Value::Null)),
            Err(ValueError::InvalidFieldName { path: "_id".to_owned(), problem: FieldNameProblem::Reserved })
        );
        let nested_underscore = single("a", Value::Object(single("_b", Value::Null)));
        assert_eq!(validate_document(&nested_underscore), Ok(()));

        let deep = single("a", Value::Array(vec![Value::Null, Value::Object(single("$b", Value::Null))]));
        let error = validate_document(&deep).unwrap_err();
        assert_eq!(
            error,
            ValueError::InvalidFieldName { path: "a[1].$b".to_owned(), problem: FieldNameProblem::StartsWithDollar }
        );
        let empty = single("a", Value::Object(single("", Value::Null)));
        assert_eq!(
            validate_document(&empty).unwrap_err().to_string(),
            "Invalid field name in the object at field \"a\": field names must not be empty."
        );
    }
}
