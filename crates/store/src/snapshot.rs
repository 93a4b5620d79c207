//! The in-memory state of the database at one commit timestamp.
//!
//! All maps are persistent (`imbl`): cloning a snapshot is O(1) and a write copies only the O(log n)
//! path it touches. That is the whole multi-version story: readers hold a clone of the snapshot of
//! the timestamp they read at, a transaction writes into its own private clone, and the committer
//! applies accepted writes to the latest one. Nothing is ever locked for reading.

use std::sync::Arc;

use livebase_value::{DocumentId, FieldPath, IdTableResolver, TableNumber, Validator, Value};

use crate::Timestamp;
use crate::btree::{CountedTree, Key};
use crate::document::Document;
use crate::index::{BY_CREATION_TIME, BY_ID, IndexKind, id_key, index_prefix};

/// The system table listing user tables: `{name, number, documentValidator?}`.
pub const TABLES_TABLE: &str = "_tables";
/// The system table listing declared indexes: `{table, name, fields: [path, ..]}`.
pub const INDEXES_TABLE: &str = "_indexes";
pub(crate) const TABLES_TABLE_NUMBER: u32 = 1;
pub(crate) const INDEXES_TABLE_NUMBER: u32 = 2;
/// User table numbers start here, as Convex's do, so ids look alike.
pub(crate) const FIRST_USER_TABLE_NUMBER: u32 = 10_001;

#[derive(Clone)]
pub(crate) struct IndexState {
    pub(crate) name: Arc<str>,
    pub(crate) kind: IndexKind,
    /// Global-key prefix of this index (see `index.rs`).
    pub(crate) prefix: Arc<[u8]>,
    /// Keys are shared slices: copying a B-tree node on write then copies pointers, not bytes.
    pub(crate) entries: CountedTree<Arc<Document>>,
}

#[derive(Clone)]
pub(crate) struct TableState {
    pub(crate) name: Arc<str>,
    /// `by_id` first, `by_creation_time` second, then declared indexes.
    pub(crate) indexes: Vec<IndexState>,
    pub(crate) validator: Option<Arc<Validator>>,
}

impl TableState {
    fn new(number: TableNumber, name: &str) -> TableState {
        let index = |name: &str, kind| IndexState {
            name: name.into(),
            kind,
            prefix: index_prefix(number, name).into(),
            entries: CountedTree::default(),
        };
        TableState {
            name: name.into(),
            indexes: vec![index(BY_ID, IndexKind::Id), index(BY_CREATION_TIME, IndexKind::Fields(Vec::new()))],
            validator: None,
        }
    }

    pub(crate) fn by_id(&self) -> &IndexState {
        &self.indexes[0]
    }

    pub(crate) fn index(&self, name: &str) -> Option<&IndexState> {
        self.indexes.iter().find(|index| &*index.name == name)
    }

    pub(crate) fn get(&self, id: DocumentId) -> Option<&Arc<Document>> {
        self.by_id().entries.get(id_key(id).as_slice())
    }

    pub(crate) fn len(&self) -> usize {
        self.by_id().entries.len()
    }
}

/// The database as of one commit.
#[derive(Clone)]
pub struct Snapshot {
    ts: Timestamp,
    tables: imbl::OrdMap<TableNumber, TableState>,
    table_numbers: imbl::HashMap<Arc<str>, TableNumber>,
}

impl Snapshot {
    /// A database with only the system tables.
    pub(crate) fn empty() -> Snapshot {
        let mut snapshot =
            Snapshot { ts: Timestamp::ZERO, tables: imbl::OrdMap::new(), table_numbers: imbl::HashMap::new() };
        snapshot.create_table(table_number(TABLES_TABLE_NUMBER), TABLES_TABLE, None);
        snapshot.create_table(table_number(INDEXES_TABLE_NUMBER), INDEXES_TABLE, None);
        let system_index = |name: &str, fields: &[&str]| {
            (
                name.to_owned(),
                fields.iter().map(|field| FieldPath::parse(field).expect("system field paths are valid")).collect(),
            )
        };
        let (name, fields) = system_index("by_name", &["name"]);
        snapshot.add_index(table_number(TABLES_TABLE_NUMBER), &name, fields);
        let (name, fields) = system_index("by_number", &["number"]);
        snapshot.add_index(table_number(TABLES_TABLE_NUMBER), &name, fields);
        let (name, fields) = system_index("by_table", &["table", "name"]);
        snapshot.add_index(table_number(INDEXES_TABLE_NUMBER), &name, fields);
        snapshot
    }

    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    pub(crate) fn set_ts(&mut self, ts: Timestamp) {
        assert!(ts >= self.ts, "snapshots only move forward: {} -> {}", self.ts, ts);
        self.ts = ts;
    }

    pub fn table_number(&self, name: &str) -> Option<TableNumber> {
        self.table_numbers.get(name).copied()
    }

    pub fn table_name(&self, number: TableNumber) -> Option<&str> {
        self.tables.get(&number).map(|table| &*table.name)
    }

    /// Names of the user tables, sorted.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .values()
            .filter(|table| !table.name.starts_with('_'))
            .map(|table| table.name.to_string())
            .collect();
        names.sort();
        names
    }

    /// Names of a table's indexes, built-in ones first, or `None` if there is no such table.
    pub fn index_names(&self, table: &str) -> Option<Vec<String>> {
        let table = self.tables.get(&self.table_number(table)?)?;
        Some(table.indexes.iter().map(|index| index.name.to_string()).collect())
    }

    /// The fields of an index's keys in order, the implicit `_creationTime, _id` included (`by_id`:
    /// just `_id`), or `None` if the table or index does not exist.
    pub fn index_key_fields(&self, table: &str, index: &str) -> Option<Vec<FieldPath>> {
        let table = self.tables.get(&self.table_number(table)?)?;
        Some(table.index(index)?.kind.key_fields())
    }

    /// The key fields of `by_id` and `by_creation_time`, which every table has.
    pub(crate) fn built_in_index_key_fields(index: &str) -> Option<Vec<FieldPath>> {
        match index {
            BY_ID => Some(IndexKind::Id.key_fields()),
            BY_CREATION_TIME => Some(IndexKind::Fields(Vec::new()).key_fields()),
            _ => None,
        }
    }

    /// Number of documents in a table (0 for a table that does not exist).
    pub fn document_count(&self, table: &str) -> usize {
        self.table_number(table).and_then(|number| self.tables.get(&number)).map_or(0, TableState::len)
    }

    /// Reads a document without recording the read: for tools and tests, not for transactions.
    pub fn get(&self, id: DocumentId) -> Option<Arc<Document>> {
        self.tables.get(&id.table())?.get(id).cloned()
    }

    /// Every document of a table in `_creationTime` order, without recording reads.
    pub fn documents(&self, table: &str) -> Vec<Arc<Document>> {
        let Some(table) = self.table_number(table).and_then(|number| self.tables.get(&number)) else {
            return Vec::new();
        };
        table.indexes[1].entries.values()
    }

    pub(crate) fn table(&self, number: TableNumber) -> Option<&TableState> {
        self.tables.get(&number)
    }

    /// Puts `new` (or nothing) where document `id` was, in every index of its table, and keeps the
    /// catalog in step when the write is to a system table. Returns the previous version. When `keys`
    /// is given, appends the global keys the write touched (old and new key in every index).
    pub(crate) fn apply_write(
        &mut self,
        id: DocumentId,
        new: Option<Arc<Document>>,
        keys: Option<&mut Vec<Vec<u8>>>,
    ) -> Option<Arc<Document>> {
        if let Some(new) = &new {
            assert_eq!(new.id(), id);
        }
        let table =
            self.tables.get_mut(&id.table()).unwrap_or_else(|| panic!("write to {id} in a table that does not exist"));
        let mut touched = keys;
        let global = |prefix: &[u8], key: &[u8]| [prefix, key].concat();
        // `by_id` first: putting the new version there (or taking the id out) hands back the old
        // version, so finding it costs no lookup of its own.
        let (by_id, indexes) = table.indexes.split_first_mut().expect("every table has by_id");
        let id_key: Key = match &new {
            Some(new) => by_id.kind.key(new).into(),
            None => id_key(id).into(),
        };
        let old = match &new {
            Some(new) => by_id.entries.insert(Arc::clone(&id_key), Arc::clone(new)),
            None => by_id.entries.remove(&id_key),
        };
        if let Some(keys) = touched.as_deref_mut()
            && (old.is_some() || new.is_some())
        {
            keys.push(global(&by_id.prefix, &id_key));
        }
        for index in indexes {
            let old_key = old.as_ref().map(|old| index.kind.key(old));
            let new_key = new.as_ref().map(|new| index.kind.key(new));
            if let Some(keys) = touched.as_deref_mut() {
                keys.extend(old_key.iter().chain(&new_key).map(|key| global(&index.prefix, key)));
            }
            match (old_key, &new) {
                // The indexed fields did not change: one pass down the tree replaces the entry.
                (Some(old_key), Some(new)) if new_key.as_ref() == Some(&old_key) => {
                    let replaced = index.entries.insert(old_key.into(), Arc::clone(new));
                    assert!(replaced.is_some(), "index {} lost the entry of {id}", index.name);
                }
                (old_key, new) => {
                    if let Some(old_key) = old_key {
                        let removed = index.entries.remove(&old_key);
                        assert!(removed.is_some(), "index {} lost the entry of {id}", index.name);
                    }
                    if let (Some(new_key), Some(new)) = (new_key, new) {
                        let replaced = index.entries.insert(new_key.into(), Arc::clone(new));
                        assert!(replaced.is_none(), "index {} has two documents under one key", index.name);
                    }
                }
            }
        }
        match id.table().get() {
            TABLES_TABLE_NUMBER => self.apply_table_metadata(old.as_deref(), new.as_deref()),
            INDEXES_TABLE_NUMBER => self.apply_index_metadata(old.as_deref(), new.as_deref()),
            _ => {}
        }
        old
    }

    fn apply_table_metadata(&mut self, old: Option<&Document>, new: Option<&Document>) {
        match (old, new) {
            (None, Some(new)) => {
                let metadata = TableMetadata::parse(new);
                self.create_table(metadata.number, &metadata.name, metadata.validator);
            }
            (Some(old), Some(new)) => {
                let (old, new) = (TableMetadata::parse(old), TableMetadata::parse(new));
                assert_eq!((old.number, &old.name), (new.number, &new.name), "a table's name and number never change");
                self.tables.get_mut(&new.number).expect("table of metadata exists").validator = new.validator;
            }
            (Some(old), None) => {
                let metadata = TableMetadata::parse(old);
                let table = self.tables.remove(&metadata.number).expect("table of metadata exists");
                assert_eq!(table.len(), 0, "only empty tables are dropped");
                self.table_numbers.remove(&*metadata.name);
            }
            (None, None) => {}
        }
    }

    fn apply_index_metadata(&mut self, old: Option<&Document>, new: Option<&Document>) {
        if let Some(old) = old {
            let metadata = IndexMetadata::parse(old);
            // The table may already be gone when it is dropped in the same commit.
            if let Some(number) = self.table_number(&metadata.table) {
                let table = self.tables.get_mut(&number).expect("numbered table exists");
                table.indexes.retain(|index| *index.name != *metadata.name);
            }
        }
        if let Some(new) = new {
            let metadata = IndexMetadata::parse(new);
            let number = self.table_number(&metadata.table).expect("indexes are declared on existing tables");
            self.add_index(number, &metadata.name, metadata.fields);
        }
    }

    fn create_table(&mut self, number: TableNumber, name: &str, validator: Option<Arc<Validator>>) {
        let mut table = TableState::new(number, name);
        table.validator = validator;
        let previous = self.tables.insert(number, table);
        assert!(previous.is_none(), "table number {number} used twice");
        let previous = self.table_numbers.insert(name.into(), number);
        assert!(previous.is_none(), "table name {name} used twice");
    }

    /// Adds an index and back-fills it from the table's documents.
    fn add_index(&mut self, number: TableNumber, name: &str, fields: Vec<FieldPath>) {
        let table = self.tables.get_mut(&number).expect("index on an existing table");
        assert!(table.index(name).is_none(), "index {name} declared twice");
        let kind = IndexKind::Fields(fields);
        let entries = table
            .by_id()
            .entries
            .values()
            .into_iter()
            .map(|document| (Arc::<[u8]>::from(kind.key(&document)), document))
            .collect();
        table.indexes.push(IndexState { name: name.into(), kind, prefix: index_prefix(number, name).into(), entries });
    }
}

impl IdTableResolver for Snapshot {
    fn table_name_of(&self, id: &DocumentId) -> Option<String> {
        self.table_name(id.table()).map(str::to_owned)
    }
}

pub(crate) fn table_number(number: u32) -> TableNumber {
    TableNumber::new(number).expect("table numbers are non-zero")
}

/// The contents of a `_tables` document.
pub(crate) struct TableMetadata {
    pub(crate) name: String,
    pub(crate) number: TableNumber,
    pub(crate) validator: Option<Arc<Validator>>,
}

impl TableMetadata {
    pub(crate) const NAME: &str = "name";
    pub(crate) const NUMBER: &str = "number";
    pub(crate) const VALIDATOR: &str = "documentValidator";

    /// Panics on malformed metadata: only the engine writes system tables, so it is a bug.
    pub(crate) fn parse(document: &Document) -> TableMetadata {
        let Some(Value::String(name)) = document.get(Self::NAME) else { panic!("_tables document without a name") };
        let Some(Value::Int64(number)) = document.get(Self::NUMBER) else {
            panic!("_tables document without a number")
        };
        let number =
            u32::try_from(*number).ok().and_then(TableNumber::new).expect("table numbers fit u32 and are non-zero");
        let validator = match document.get(Self::VALIDATOR) {
            None => None,
            Some(Value::String(json)) => {
                let json: serde_json::Value = serde_json::from_str(json).expect("stored validators are JSON");
                Some(Arc::new(Validator::from_json(&json).expect("stored validators are valid")))
            }
            Some(other) => panic!("_tables validator is a {}", other.type_name()),
        };
        TableMetadata { name: name.clone(), number, validator }
    }
}

/// The contents of an `_indexes` document.
pub(crate) struct IndexMetadata {
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) fields: Vec<FieldPath>,
}

impl IndexMetadata {
    pub(crate) const TABLE: &str = "table";
    pub(crate) const NAME: &str = "name";
    pub(crate) const FIELDS: &str = "fields";

    pub(crate) fn parse(document: &Document) -> IndexMetadata {
        let (Some(Value::String(table)), Some(Value::String(name)), Some(Value::Array(fields))) =
            (document.get(Self::TABLE), document.get(Self::NAME), document.get(Self::FIELDS))
        else {
            panic!("malformed _indexes document {}", document.id());
        };
        let fields = fields
            .iter()
            .map(|field| match field {
                Value::String(path) => FieldPath::parse(path).expect("stored index fields are valid paths"),
                other => panic!("_indexes field path is a {}", other.type_name()),
            })
            .collect();
        IndexMetadata { table: table.clone(), name: name.clone(), fields }
    }
}
