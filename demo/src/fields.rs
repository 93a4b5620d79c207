//! Small pieces every module of the app uses: checked names, ids the validators already checked, and
//! documents as values.

use std::sync::Arc;

use livebase_functions::{FunctionCtx, FunctionError};
use livebase_store::Document;
use livebase_value::{DocumentId, Value};

use crate::error::{ErrorCode, app_error};

/// `name` without surrounding whitespace, refused when that is empty or longer than `max_chars`.
/// `what` names the argument in the error ("A student's name").
pub(crate) fn checked_name(what: &str, name: &str, max_chars: usize) -> Result<String, FunctionError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(app_error(ErrorCode::Invalid, format!("{what} can't be empty")));
    }
    let chars = name.chars().count();
    if chars > max_chars {
        return Err(app_error(
            ErrorCode::Invalid,
            format!("{what} has {chars} characters, more than the {max_chars} allowed"),
        ));
    }
    Ok(name.to_owned())
}

/// The id in an argument that a `Validator::Id(table)` already checked.
pub(crate) fn validated_id(ctx: &mut FunctionCtx<'_>, table: &str, id: &str) -> DocumentId {
    ctx.db().normalize_id(table, id).unwrap_or_else(|| panic!("`{id}` was validated as an id of `{table}`"))
}

pub(crate) fn document_value(document: &Arc<Document>) -> Value {
    Value::Object(document.object().clone())
}

/// A string field of a document the app wrote.
pub(crate) fn string_field<'d>(document: &'d Document, field: &str) -> &'d str {
    match document.get(field) {
        Some(Value::String(value)) => value,
        other => panic!("the app writes `{field}` as a string, not {other:?}, in {document:?}"),
    }
}
