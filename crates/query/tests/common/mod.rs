//! Helpers shared by the query layer's integration tests: a real store in a temporary directory.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::sync::Arc;

use livebase_query::{CursorKey, Journal, PaginationOptions, PaginationResult, Query, QueryError};
use livebase_store::{Document, KeyRange, Order, Schema, Store, StoreConfig, TableSchema, index_prefix};
use livebase_value::{Object, Value};

pub struct TestStore {
    pub store: Store,
    _directory: tempfile::TempDir,
}

pub fn open() -> TestStore {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("open store");
    TestStore { store, _directory: directory }
}

impl TestStore {
    pub fn key(&self) -> CursorKey {
        CursorKey::new(self.store.secret())
    }

    pub fn schema(&self, tables: Vec<TableSchema>) {
        self.store.apply_schema_blocking(&Schema { tables }).expect("apply schema");
    }

    pub fn insert_all(
        &self,
        table: &str,
        documents: impl IntoIterator<Item = Object>,
    ) -> Vec<livebase_value::DocumentId> {
        let documents: Vec<Object> = documents.into_iter().collect();
        let (ids, _) = self
            .store
            .transact_blocking(|tx| documents.iter().map(|document| tx.insert(table, document.clone())).collect())
            .expect("insert");
        ids
    }

    pub fn collect(&self, query: &Query) -> Result<Vec<Arc<Document>>, QueryError> {
        query.collect(&mut self.store.begin())
    }

    /// Loads a page the way the sync layer re-runs a subscription: with the journal of its last run,
    /// which it then replaces.
    pub fn load(
        &self,
        query: &Query,
        journal: &mut Option<String>,
        options: &PaginationOptions,
    ) -> Result<PaginationResult, QueryError> {
        let mut run = Journal::new(self.key(), journal.as_deref())?;
        let result = query.paginate(&mut self.store.begin(), &mut run, options)?;
        *journal = run.finish();
        Ok(result)
    }

    /// Every document of an index in `order` with its global key (what read sets are made of), read
    /// straight from the store.
    pub fn index_entries(&self, table: &str, index: &str, order: Order) -> Vec<(Vec<u8>, Arc<Document>)> {
        let snapshot = self.store.snapshot();
        let Some(number) = snapshot.table_number(table) else { return Vec::new() };
        let prefix = index_prefix(number, index);
        let mut tx = self.store.begin();
        let mut scan = tx.scan(table, index, KeyRange::all(), order).expect("scan");
        let mut entries = Vec::new();
        while let Some(document) = scan.next() {
            let key = [prefix.as_slice(), scan.last_key().expect("key of returned document")].concat();
            entries.push((key, document.expect("read")));
        }
        entries
    }
}

pub fn object(fields: &[(&str, Value)]) -> Object {
    fields.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

pub fn string(document: &Document, field: &str) -> String {
    match document.get(field) {
        Some(Value::String(value)) => value.clone(),
        other => panic!("field {field} is {other:?}"),
    }
}

pub fn int(document: &Document, field: &str) -> i64 {
    match document.get(field) {
        Some(Value::Int64(value)) => *value,
        other => panic!("field {field} is {other:?}"),
    }
}
