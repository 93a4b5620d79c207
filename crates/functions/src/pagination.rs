//! Pagination options and results as function arguments and return values (Convex's
//! `paginationOptsValidator` and `PaginationResult`).

use livebase_query::{PaginationOptions, PaginationResult};
use livebase_value::{ObjectField, Validator, Value, from_convex_json};

use crate::error::FunctionError;
use crate::object_validator;

/// Convex's `paginationOptsValidator`: `{numItems, cursor, endCursor?, id?, maximumRowsRead?,
/// maximumBytesRead?}`.
pub fn pagination_opts_validator() -> Validator {
    let string_or_null = || Validator::Union(vec![Validator::String, Validator::Null]);
    object_validator([
        ("numItems", ObjectField::required(Validator::Float64)),
        ("cursor", ObjectField::required(string_or_null())),
        ("endCursor", ObjectField::optional(string_or_null())),
        ("id", ObjectField::optional(Validator::Float64)),
        ("maximumRowsRead", ObjectField::optional(Validator::Float64)),
        ("maximumBytesRead", ObjectField::optional(Validator::Float64)),
    ])
}

/// Reads options that passed `pagination_opts_validator`. Counts must be whole and not negative; the
/// query layer checks their ranges.
pub fn pagination_options(options: &Value) -> Result<PaginationOptions, FunctionError> {
    let Value::Object(fields) = options else {
        return Err(FunctionError::failed(format!(
            "Pagination options must be an object, not {}",
            options.type_name()
        )));
    };
    let string = |name: &str| match fields.get(name) {
        Some(Value::String(cursor)) => Some(cursor.clone()),
        _ => None,
    };
    let count = |name: &str| -> Result<Option<usize>, FunctionError> {
        match fields.get(name) {
            None => Ok(None),
            Some(Value::Float64(n)) if n.fract() == 0.0 && *n >= 0.0 => Ok(Some(*n as usize)),
            Some(other) => {
                Err(FunctionError::failed(format!("Pagination option `{name}` must be a whole number, not {other}")))
            }
        }
    };
    let mut parsed = PaginationOptions::new(count("numItems")?.unwrap_or(0), string("cursor"));
    parsed.end_cursor = string("endCursor");
    parsed.maximum_rows_read = count("maximumRowsRead")?;
    parsed.maximum_bytes_read = count("maximumBytesRead")?;
    Ok(parsed)
}

/// A page as a function returns it to Convex's clients.
pub fn pagination_result(result: &PaginationResult) -> Value {
    from_convex_json(&result.to_json()).expect("a pagination result's JSON holds only valid values")
}
