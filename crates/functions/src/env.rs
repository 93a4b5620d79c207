//! Environment variables stored in the deployment: rows `{name, value}` of a system table, so setting
//! one is a logged, transactional write like any other, and a query that read one re-runs when it
//! changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use livebase_store::{BY_CREATION_TIME, Document, KeyRange, Order, Transaction, TransactionError};
use livebase_value::{Object, Value};

use crate::error::FunctionError;
use crate::limits::{MAX_ENV_VAR_NAME_LEN, MAX_ENV_VAR_VALUE_BYTES, MAX_ENV_VARS};

/// The system table holding the deployment's environment variables.
pub const ENVIRONMENT_VARIABLES_TABLE: &str = "_environment_variables";

const NAME: &str = "name";
const VALUE: &str = "value";

/// Every variable as `(name, value, document)`. Reads the whole table: without an index on `name`
/// (system tables cannot declare one yet) that is the only way to find one, and the table is small
/// (`MAX_ENV_VARS`). It also means a query reading one variable re-runs when any changes.
fn all(tx: &mut Transaction) -> Result<Vec<(String, String, Arc<Document>)>, TransactionError> {
    let mut variables = Vec::new();
    for document in tx.scan(ENVIRONMENT_VARIABLES_TABLE, BY_CREATION_TIME, KeyRange::all(), Order::Asc)? {
        let document = document?;
        let (Some(Value::String(name)), Some(Value::String(value))) = (document.get(NAME), document.get(VALUE)) else {
            panic!("`{ENVIRONMENT_VARIABLES_TABLE}` holds `{{name: string, value: string}}`, not {document:?}");
        };
        variables.push((name.clone(), value.clone(), Arc::clone(&document)));
    }
    Ok(variables)
}

pub(crate) fn get(tx: &mut Transaction, name: &str) -> Result<Option<String>, TransactionError> {
    Ok(all(tx)?.into_iter().find(|(found, ..)| found == name).map(|(_, value, _)| value))
}

pub(crate) fn list(tx: &mut Transaction) -> Result<BTreeMap<String, String>, TransactionError> {
    Ok(all(tx)?.into_iter().map(|(name, value, _)| (name, value)).collect())
}

/// Sets `name` to `value`; `Ok(false)` when that would be one variable more than `MAX_ENV_VARS`.
pub(crate) fn set(tx: &mut Transaction, name: &str, value: &str) -> Result<bool, TransactionError> {
    let variables = all(tx)?;
    let fields = Object::from([(NAME.to_owned(), Value::from(name)), (VALUE.to_owned(), Value::from(value))]);
    match variables.iter().find(|(found, ..)| found == name) {
        Some((.., document)) => tx.system_tables().replace(document.id(), fields)?,
        None if variables.len() >= MAX_ENV_VARS => return Ok(false),
        None => {
            tx.system_tables().insert(ENVIRONMENT_VARIABLES_TABLE, fields)?;
        }
    }
    Ok(true)
}

/// Removes `name`; `Ok(false)` when it was not set.
pub(crate) fn remove(tx: &mut Transaction, name: &str) -> Result<bool, TransactionError> {
    let Some((.., document)) = all(tx)?.into_iter().find(|(found, ..)| found == name) else { return Ok(false) };
    tx.system_tables().delete(document.id())?;
    Ok(true)
}

/// Checks a name as Convex does: `[A-Za-z_][A-Za-z0-9_]*`, at most `MAX_ENV_VAR_NAME_LEN` characters.
pub(crate) fn check_name(name: &str) -> Result<(), FunctionError> {
    let valid_chars = name.chars().enumerate().all(|(position, c)| {
        c == '_' || if position == 0 { c.is_ascii_alphabetic() } else { c.is_ascii_alphanumeric() }
    });
    if name.is_empty() || !valid_chars {
        return Err(FunctionError::failed(format!(
            "Invalid environment variable name `{name}`: names match [A-Za-z_][A-Za-z0-9_]*"
        )));
    }
    if name.len() > MAX_ENV_VAR_NAME_LEN {
        return Err(FunctionError::failed(format!(
            "Environment variable name `{name}` has {} characters, more than the {MAX_ENV_VAR_NAME_LEN} allowed \
             (MAX_ENV_VAR_NAME_LEN)",
            name.len()
        )));
    }
    Ok(())
}

pub(crate) fn check_value(name: &str, value: &str) -> Result<(), FunctionError> {
    if value.len() > MAX_ENV_VAR_VALUE_BYTES {
        return Err(FunctionError::failed(format!(
            "The value of environment variable `{name}` has {} bytes, more than the {MAX_ENV_VAR_VALUE_BYTES} \
             allowed (MAX_ENV_VAR_VALUE_BYTES)",
            value.len()
        )));
    }
    Ok(())
}

pub(crate) fn too_many(name: &str) -> FunctionError {
    FunctionError::failed(format!(
        "Can't set environment variable `{name}`: the deployment already has {MAX_ENV_VARS} (MAX_ENV_VARS)"
    ))
}
