//! Helpers shared by the store's integration tests.
#![allow(dead_code)] // Each test binary uses a different subset.

use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};

pub fn open(directory: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(directory)).expect("open store")
}

pub fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

pub fn int(document: &livebase_store::Document, field: &str) -> i64 {
    match document.get(field) {
        Some(Value::Int64(value)) => *value,
        other => panic!("field {field} is {other:?}"),
    }
}
