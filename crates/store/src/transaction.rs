//! Transactions: reads at one snapshot with their read set recorded, writes buffered in a private
//! copy of that snapshot (so the transaction reads its own writes), committed by the committer.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use livebase_value::{DocumentId, FieldPath, Object, Value, encode_key_value, validate_document, validate_identifier};

use crate::btree::CountedTree;
use crate::document::{CREATION_TIME_FIELD, Document, ID_FIELD};
use crate::index::{KeyInterval, KeyRange, Order, global_interval, id_key, index_prefix, successor};
use crate::limits::{
    MAX_TRANSACTION_BYTES_READ, MAX_TRANSACTION_BYTES_WRITTEN, MAX_TRANSACTION_DOCS_READ, MAX_TRANSACTION_DOCS_WRITTEN,
};
use crate::read_set::ReadSet;
use crate::snapshot::{
    FIRST_USER_TABLE_NUMBER, INDEXES_TABLE_NUMBER, IndexMetadata, Snapshot, TABLES_TABLE_NUMBER, TableMetadata,
    table_number,
};
use crate::timestamp::wall_clock_millis_f64;
use crate::{Timestamp, TransactionError};

/// Documents fetched from an index per step of a scan. Only the documents a caller consumes count as
/// read, so this is a speed knob, not a semantic one.
const SCAN_CHUNK: usize = 32;

/// One document's final state in a transaction, with its storage encoding (`None`: deleted).
pub(crate) struct PendingWrite {
    pub(crate) new: Option<(Arc<Document>, Arc<[u8]>)>,
}

/// A serializable transaction. Reads see the snapshot it began at plus its own writes.
pub struct Transaction {
    begin_ts: Timestamp,
    /// The begin snapshot with this transaction's writes applied, except those in `unapplied`.
    snapshot: Snapshot,
    /// User documents written but not yet applied to `snapshot`: applying is deferred until a scan
    /// needs it, so transactions that never scan after writing never pay for index updates twice.
    unapplied: Vec<DocumentId>,
    read_set: ReadSet,
    writes: BTreeMap<DocumentId, PendingWrite>,
    docs_read: usize,
    bytes_read: usize,
    user_docs_written: usize,
    bytes_written: usize,
    last_creation_time: f64,
    /// Tables looked up so far (the lookup is in the read set already), and what the lookup found.
    resolved_tables: Vec<(Box<str>, Option<livebase_value::TableNumber>)>,
    /// A limit broken where no error could be returned (a scan's drop); fails every later call.
    deferred_error: Option<TransactionError>,
}

impl Transaction {
    pub(crate) fn new(snapshot: Snapshot) -> Transaction {
        Transaction {
            begin_ts: snapshot.ts(),
            snapshot,
            unapplied: Vec::new(),
            read_set: ReadSet::new(),
            writes: BTreeMap::new(),
            docs_read: 0,
            bytes_read: 0,
            user_docs_written: 0,
            bytes_written: 0,
            last_creation_time: 0.0,
            resolved_tables: Vec::new(),
            deferred_error: None,
        }
    }

    pub fn begin_ts(&self) -> Timestamp {
        self.begin_ts
    }

    /// The name of a table as this transaction sees it (tables it created included).
    pub fn table_name(&self, number: livebase_value::TableNumber) -> Option<&str> {
        self.snapshot.table_name(number)
    }

    pub fn read_set(&self) -> &ReadSet {
        &self.read_set
    }

    pub fn is_read_only(&self) -> bool {
        self.writes.is_empty()
    }

    pub fn docs_read(&self) -> usize {
        self.docs_read
    }

    pub fn bytes_read(&self) -> usize {
        self.bytes_read
    }

    /// Reads one document by id.
    pub fn get(&mut self, id: DocumentId) -> Result<Option<Arc<Document>>, TransactionError> {
        self.check_deferred()?;
        let Some(table) = self.snapshot.table(id.table()) else {
            // Record that the table was absent: creating it could make this read see a document.
            self.record_table_number_lookup(id.table().get())?;
            return Ok(None);
        };
        let key = id_key(id);
        let interval = global_interval(
            &table.by_id().prefix,
            &KeyRange::from_bounds(std::ops::Bound::Included(key.clone()), std::ops::Bound::Included(key.clone())),
        );
        let document = match self.writes.get(&id) {
            Some(pending) => pending.new.as_ref().map(|(document, _)| Arc::clone(document)),
            None => table.get(id).cloned(),
        };
        self.read_set.record(interval)?;
        if let Some(document) = &document {
            self.count_read(document)?;
        }
        Ok(document)
    }

    /// Scans `range` of an index in `order`. Only the documents the caller takes from the scan count
    /// as read: the scan records the interval from where it started to the last key it returned, or
    /// the whole range once it returns `None`.
    pub fn scan(
        &mut self,
        table: &str,
        index: &str,
        range: KeyRange,
        order: Order,
    ) -> Result<Scan<'_>, TransactionError> {
        let source = self.locate_index(table, index)?;
        Ok(Scan {
            source,
            range,
            order,
            buffer: VecDeque::new(),
            fetched_up_to: None,
            source_exhausted: false,
            last_returned: None,
            state: ScanState::Running,
            tx: self,
        })
    }

    /// The fields of an index's keys in order, the implicit `_creationTime, _id` included (`by_id`:
    /// just `_id`), or `None` when the index does not exist. Every table, even one not created yet,
    /// has `by_id` and `by_creation_time`. The lookup is recorded, so declaring, redeclaring or
    /// dropping the index conflicts with this transaction.
    pub fn index_fields(&mut self, table: &str, index: &str) -> Result<Option<Vec<FieldPath>>, TransactionError> {
        self.check_deferred()?;
        if self.resolve_table(table)?.is_none() {
            return Ok(Snapshot::built_in_index_key_fields(index));
        }
        let mut key = Vec::new();
        encode_key_value(&mut key, Some(&Value::String(table.to_owned())));
        encode_key_value(&mut key, Some(&Value::String(index.to_owned())));
        let catalog = index_prefix(table_number(INDEXES_TABLE_NUMBER), "by_table");
        self.read_set.record(global_interval(&catalog, &KeyRange::prefix(key)))?;
        Ok(self.snapshot.index_key_fields(table, index))
    }

    /// Counts the documents in `range` of an index without reading them, in O(log n). The whole range
    /// is recorded as read: a write anywhere in it changes the count.
    pub fn count(&mut self, table: &str, index: &str, range: KeyRange) -> Result<usize, TransactionError> {
        let Some(source) = self.locate_index(table, index)? else { return Ok(0) };
        let count = self.entries(&source).count(range_start(&range), range_end(&range));
        self.read_set.record(global_interval(&source.prefix, &range))?;
        Ok(count)
    }

    /// The index key of the document `offset` places from the start of `range` in `order` (0 is the
    /// first), without reading the documents before it, in O(log n); `None` when the range holds no
    /// more than `offset` documents. Records as read the range from its start up to that key, since
    /// a write there moves which document is at `offset` (the whole range when there is none).
    pub fn key_at_offset(
        &mut self,
        table: &str,
        index: &str,
        range: KeyRange,
        order: Order,
        offset: usize,
    ) -> Result<Option<Vec<u8>>, TransactionError> {
        let Some(source) = self.locate_index(table, index)? else { return Ok(None) };
        let entries = self.entries(&source);
        let (start, end) = (range_start(&range), range_end(&range));
        let before = entries.count(std::ops::Bound::Unbounded, std::ops::Bound::Excluded(&range.start));
        let inside = entries.count(start, end);
        let key = (offset < inside).then(|| {
            let position = match order {
                Order::Asc => before + offset,
                Order::Desc => before + inside - 1 - offset,
            };
            entries.select(position).expect("positions inside the range exist").0.to_vec()
        });
        let read = match (&key, order) {
            (None, _) => range,
            (Some(key), Order::Asc) => KeyRange { start: range.start, end: Some(successor(key.clone())) },
            (Some(key), Order::Desc) => KeyRange { start: key.clone(), end: range.end },
        };
        self.read_set.record(global_interval(&source.prefix, &read))?;
        Ok(key)
    }

    /// Inserts a document into `table`, creating the table on first use, and returns its new id.
    pub fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, TransactionError> {
        self.insert_with(Access::User, table, fields)
    }

    /// Shallow-merges `changes` into a document: `Some(value)` sets a field, `None` removes it
    /// (Convex's `undefined`). System fields may be given only with their current values.
    pub fn patch(&mut self, id: DocumentId, changes: BTreeMap<String, Option<Value>>) -> Result<(), TransactionError> {
        self.patch_with(Access::User, id, changes)
    }

    /// Replaces a document's fields, keeping its id and creation time. `_id` and `_creationTime` may
    /// be present only with their current values.
    pub fn replace(&mut self, id: DocumentId, fields: Object) -> Result<(), TransactionError> {
        self.replace_with(Access::User, id, fields)
    }

    pub fn delete(&mut self, id: DocumentId) -> Result<(), TransactionError> {
        self.get_for_write(Access::User, id)?;
        self.write(id, None)
    }

    /// Writes to system tables (names starting with `_`), which the user-facing methods refuse. For
    /// the layers above the store (scheduled jobs, environment variables, ...), never for user code.
    pub fn system_tables(&mut self) -> SystemTables<'_> {
        SystemTables { transaction: self }
    }

    fn insert_with(&mut self, access: Access, table: &str, fields: Object) -> Result<DocumentId, TransactionError> {
        self.check_deferred()?;
        access.check_table_name(table)?;
        validate_document(&fields)?;
        let number = match self.resolve_table(table)? {
            Some(number) => number,
            None => self.create_table(table)?,
        };
        let id = DocumentId::generate(number, &mut rand::rng(), wall_clock_millis_f64() as u64);
        let creation_time = self.next_creation_time();
        let (document, encoded) = Document::build(id, creation_time, fields)?;
        self.validate_against_schema(table, &document)?;
        self.write(id, Some((Arc::new(document), encoded.into())))?;
        Ok(id)
    }

    fn patch_with(
        &mut self,
        access: Access,
        id: DocumentId,
        changes: BTreeMap<String, Option<Value>>,
    ) -> Result<(), TransactionError> {
        let old = self.get_for_write(access, id)?;
        let mut fields = old.user_fields();
        for (field, value) in changes {
            if field == ID_FIELD || field == CREATION_TIME_FIELD {
                check_system_field_unchanged(&old, &field, value.as_ref())?;
                continue;
            }
            match value {
                Some(value) => fields.insert(field, value),
                None => fields.remove(&field),
            };
        }
        self.rewrite(&old, fields)
    }

    fn replace_with(&mut self, access: Access, id: DocumentId, mut fields: Object) -> Result<(), TransactionError> {
        let old = self.get_for_write(access, id)?;
        for system_field in [ID_FIELD, CREATION_TIME_FIELD] {
            if let Some(value) = fields.remove(system_field) {
                check_system_field_unchanged(&old, system_field, Some(&value))?;
            }
        }
        self.rewrite(&old, fields)
    }

    /// Hands the transaction to the committer.
    pub(crate) fn into_commit(
        mut self,
    ) -> Result<(Timestamp, ReadSet, BTreeMap<DocumentId, PendingWrite>), TransactionError> {
        self.check_deferred()?;
        self.read_set.normalize();
        Ok((self.begin_ts, self.read_set, self.writes))
    }

    // Schema changes, used by `Store::apply_schema` inside an ordinary transaction.

    /// Creates a table of the schema if it does not exist yet (`Schema` checked its name).
    pub(crate) fn ensure_table(&mut self, table: &str) -> Result<(), TransactionError> {
        if self.resolve_table(table)?.is_none() {
            self.create_table(table)?;
        }
        Ok(())
    }

    pub(crate) fn set_table_validator(
        &mut self,
        table: &str,
        validator_json: Option<String>,
    ) -> Result<(), TransactionError> {
        let metadata = self.table_metadata_document(table)?;
        let mut fields = metadata.user_fields();
        match &validator_json {
            Some(json) => fields.insert(TableMetadata::VALIDATOR.to_owned(), Value::String(json.clone())),
            None => fields.remove(TableMetadata::VALIDATOR),
        };
        if fields == metadata.user_fields() {
            return Ok(());
        }
        if let Some(json) = &validator_json {
            self.check_existing_documents(table, json)?;
        }
        self.rewrite_system(&metadata, fields)
    }

    /// The declared indexes of a table as (name, fields), from `_indexes`.
    pub(crate) fn declared_indexes(
        &mut self,
        table: &str,
    ) -> Result<Vec<(DocumentId, String, Vec<String>)>, TransactionError> {
        let mut prefix = Vec::new();
        encode_key_value(&mut prefix, Some(&Value::String(table.to_owned())));
        let mut declared = Vec::new();
        let mut scan = self.scan(crate::snapshot::INDEXES_TABLE, "by_table", KeyRange::prefix(prefix), Order::Asc)?;
        for document in scan.by_ref() {
            let document = document?;
            let metadata = IndexMetadata::parse(&document);
            declared.push((document.id(), metadata.name, metadata.fields.iter().map(ToString::to_string).collect()));
        }
        Ok(declared)
    }

    /// Declares an index, or redeclares an existing one (`existing`, its catalog document) with other
    /// fields. Redeclaring rewrites the one catalog document, so the old index leaves and the new one
    /// arrives in a single write: two writes would be applied in id order, not in the order made.
    pub(crate) fn declare_index(
        &mut self,
        table: &str,
        index: &str,
        fields: &[String],
        existing: Option<DocumentId>,
    ) -> Result<(), TransactionError> {
        validate_identifier("index", index)?;
        let fields_value = fields.iter().map(|field| Value::String(field.clone())).collect();
        let metadata = Object::from([
            (IndexMetadata::TABLE.to_owned(), Value::String(table.to_owned())),
            (IndexMetadata::NAME.to_owned(), Value::String(index.to_owned())),
            (IndexMetadata::FIELDS.to_owned(), Value::Array(fields_value)),
        ]);
        match existing {
            None => self.insert_system(table_number(INDEXES_TABLE_NUMBER), metadata).map(drop),
            Some(id) => {
                assert_eq!(id.table().get(), INDEXES_TABLE_NUMBER);
                let old = self.get(id)?.expect("declared indexes exist");
                self.rewrite_system(&old, metadata)
            }
        }
    }

    pub(crate) fn remove_index(&mut self, metadata_id: DocumentId) -> Result<(), TransactionError> {
        assert_eq!(metadata_id.table().get(), INDEXES_TABLE_NUMBER);
        self.get(metadata_id)?.expect("declared indexes exist");
        self.write(metadata_id, None)
    }

    // Internals.

    /// Finds an index for reading it: `None` when the table does not exist (the lookup is recorded,
    /// so creating the table conflicts), an error when the index does not.
    fn locate_index(&mut self, table: &str, index: &str) -> Result<Option<ScanSource>, TransactionError> {
        self.check_deferred()?;
        self.apply_pending_writes();
        let Some(number) = self.resolve_table(table)? else { return Ok(None) };
        let table_state = self.snapshot.table(number).expect("resolved tables exist");
        let Some(position) = table_state.indexes.iter().position(|candidate| &*candidate.name == index) else {
            return Err(TransactionError::IndexNotFound { table: table.to_owned(), index: index.to_owned() });
        };
        let prefix = Arc::clone(&table_state.indexes[position].prefix);
        Ok(Some(ScanSource { table: number, index_position: position, prefix }))
    }

    fn entries(&self, source: &ScanSource) -> &CountedTree<Arc<Document>> {
        let table = self.snapshot.table(source.table).expect("located tables exist while the transaction lives");
        &table.indexes[source.index_position].entries
    }

    fn check_deferred(&self) -> Result<(), TransactionError> {
        match &self.deferred_error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn count_read(&mut self, document: &Document) -> Result<(), TransactionError> {
        self.docs_read += 1;
        self.bytes_read += document.size();
        if self.docs_read > MAX_TRANSACTION_DOCS_READ {
            return Err(TransactionError::ReadLimit { what: "documents", limit: MAX_TRANSACTION_DOCS_READ });
        }
        if self.bytes_read > MAX_TRANSACTION_BYTES_READ {
            return Err(TransactionError::ReadLimit { what: "bytes", limit: MAX_TRANSACTION_BYTES_READ });
        }
        Ok(())
    }

    /// Looks a table up by name, recording the lookup so that creating or changing the table (its
    /// schema validator) later conflicts with this transaction.
    fn resolve_table(&mut self, name: &str) -> Result<Option<livebase_value::TableNumber>, TransactionError> {
        if let Some((_, number)) = self.resolved_tables.iter().find(|(resolved, _)| **resolved == *name) {
            return Ok(*number);
        }
        let number = self.snapshot.table_number(name);
        let mut key = Vec::new();
        encode_key_value(&mut key, Some(&Value::String(name.to_owned())));
        let prefix = index_prefix(table_number(TABLES_TABLE_NUMBER), "by_name");
        self.read_set.record(global_interval(&prefix, &KeyRange::prefix(key)))?;
        self.resolved_tables.push((name.into(), number));
        Ok(number)
    }

    fn record_table_number_lookup(&mut self, number: u32) -> Result<(), TransactionError> {
        let mut key = Vec::new();
        encode_key_value(&mut key, Some(&Value::Int64(i64::from(number))));
        let prefix = index_prefix(table_number(TABLES_TABLE_NUMBER), "by_number");
        self.read_set.record(global_interval(&prefix, &KeyRange::prefix(key)))
    }

    fn create_table(&mut self, name: &str) -> Result<livebase_value::TableNumber, TransactionError> {
        // Reading every table's number makes concurrent creations of tables conflict, so two never
        // pick the same number.
        let mut highest = FIRST_USER_TABLE_NUMBER - 1;
        let mut scan = self.scan(crate::snapshot::TABLES_TABLE, "by_number", KeyRange::all(), Order::Desc)?;
        if let Some(document) = scan.next() {
            highest = highest.max(TableMetadata::parse(&*document?).number.get());
        }
        drop(scan);
        let number = table_number(
            highest.checked_add(1).ok_or_else(|| TransactionError::InvalidSchema("out of table numbers".into()))?,
        );
        let metadata = Object::from([
            (TableMetadata::NAME.to_owned(), Value::String(name.to_owned())),
            (TableMetadata::NUMBER.to_owned(), Value::Int64(i64::from(number.get()))),
        ]);
        self.insert_system(table_number(TABLES_TABLE_NUMBER), metadata)?;
        if let Some(resolved) = self.resolved_tables.iter_mut().find(|(resolved, _)| **resolved == *name) {
            resolved.1 = Some(number);
        }
        Ok(number)
    }

    fn insert_system(
        &mut self,
        table: livebase_value::TableNumber,
        fields: Object,
    ) -> Result<DocumentId, TransactionError> {
        let id = DocumentId::generate(table, &mut rand::rng(), wall_clock_millis_f64() as u64);
        let creation_time = self.next_creation_time();
        let (document, encoded) = Document::build(id, creation_time, fields)?;
        self.write(id, Some((Arc::new(document), encoded.into())))?;
        Ok(id)
    }

    fn table_metadata_document(&mut self, table: &str) -> Result<Arc<Document>, TransactionError> {
        let mut key = Vec::new();
        encode_key_value(&mut key, Some(&Value::String(table.to_owned())));
        let mut scan = self.scan(crate::snapshot::TABLES_TABLE, "by_name", KeyRange::prefix(key), Order::Asc)?;
        let document = scan.next().transpose()?;
        drop(scan);
        document.ok_or_else(|| TransactionError::InvalidSchema(format!("table `{table}` does not exist")))
    }

    fn rewrite_system(&mut self, old: &Document, fields: Object) -> Result<(), TransactionError> {
        let (document, encoded) = Document::build(old.id(), old.creation_time(), fields)?;
        self.write(old.id(), Some((Arc::new(document), encoded.into())))
    }

    fn check_existing_documents(&mut self, table: &str, validator_json: &str) -> Result<(), TransactionError> {
        let json: serde_json::Value = serde_json::from_str(validator_json)
            .map_err(|error| TransactionError::InvalidSchema(format!("validator of `{table}` is not JSON: {error}")))?;
        let validator = livebase_value::Validator::from_json(&json)?;
        self.apply_pending_writes();
        let number = self.snapshot.table_number(table).expect("table exists");
        let documents: Vec<Arc<Document>> = self.snapshot.table(number).expect("table exists").by_id().entries.values();
        for document in documents {
            validator.validate(&Value::Object(document.user_fields()), &self.snapshot).map_err(|error| {
                TransactionError::InvalidSchema(format!(
                    "existing document {} of `{table}` does not match the new schema: {error}",
                    document.id()
                ))
            })?;
        }
        Ok(())
    }

    fn get_for_write(&mut self, access: Access, id: DocumentId) -> Result<Arc<Document>, TransactionError> {
        let Some(table) = self.snapshot.table_name(id.table()) else {
            return Err(TransactionError::TableNotFound(id));
        };
        access.check_table_name(table)?;
        self.get(id)?.ok_or(TransactionError::DocumentNotFound(id))
    }

    fn rewrite(&mut self, old: &Document, fields: Object) -> Result<(), TransactionError> {
        validate_document(&fields)?;
        let table = self.snapshot.table_name(old.id().table()).expect("documents live in tables").to_owned();
        let (document, encoded) = Document::build(old.id(), old.creation_time(), fields)?;
        self.validate_against_schema(&table, &document)?;
        self.write(old.id(), Some((Arc::new(document), encoded.into())))
    }

    fn validate_against_schema(&mut self, table: &str, document: &Document) -> Result<(), TransactionError> {
        // The lookup is recorded so a concurrent schema change conflicts with this write.
        let number = self.resolve_table(table)?.expect("writes go to existing tables");
        let Some(validator) = self.snapshot.table(number).and_then(|table| table.validator.clone()) else {
            return Ok(());
        };
        validator
            .validate(&Value::Object(document.user_fields()), &self.snapshot)
            .map_err(|error| TransactionError::SchemaValidation { table: table.to_owned(), error })
    }

    fn write(&mut self, id: DocumentId, new: Option<(Arc<Document>, Arc<[u8]>)>) -> Result<(), TransactionError> {
        if id.table().get() >= FIRST_USER_TABLE_NUMBER {
            // Catalog writes the engine makes on the caller's behalf do not count against its limits.
            self.count_write(id, new.as_ref().map(|(document, _)| document.size()))?;
            self.unapplied.push(id);
        } else {
            // The catalog must be current at once: later calls resolve tables through it.
            self.snapshot.apply_write(id, new.as_ref().map(|(document, _)| Arc::clone(document)), None);
        }
        self.writes.insert(id, PendingWrite { new });
        Ok(())
    }

    fn apply_pending_writes(&mut self) {
        for id in std::mem::take(&mut self.unapplied) {
            let new = self.writes[&id].new.as_ref().map(|(document, _)| Arc::clone(document));
            // Idempotent: a document written twice is put in place twice, with the same final version.
            self.snapshot.apply_write(id, new, None);
        }
    }

    fn count_write(&mut self, id: DocumentId, new_size: Option<usize>) -> Result<(), TransactionError> {
        let previous = self.writes.get(&id);
        let previous_size =
            previous.and_then(|previous| previous.new.as_ref()).map_or(0, |(document, _)| document.size());
        let bytes_written = self.bytes_written - previous_size + new_size.unwrap_or(0);
        if bytes_written > MAX_TRANSACTION_BYTES_WRITTEN {
            return Err(TransactionError::WriteLimit { what: "bytes", limit: MAX_TRANSACTION_BYTES_WRITTEN });
        }
        if previous.is_none() {
            if self.user_docs_written == MAX_TRANSACTION_DOCS_WRITTEN {
                return Err(TransactionError::WriteLimit { what: "documents", limit: MAX_TRANSACTION_DOCS_WRITTEN });
            }
            self.user_docs_written += 1;
        }
        self.bytes_written = bytes_written;
        Ok(())
    }

    /// Creation times are strictly increasing within a transaction, so documents it inserts keep
    /// their insertion order in `by_creation_time`.
    fn next_creation_time(&mut self) -> f64 {
        let now = wall_clock_millis_f64();
        self.last_creation_time = if now > self.last_creation_time { now } else { self.last_creation_time.next_up() };
        self.last_creation_time
    }
}

/// Validators check `v.id("table")` against the tables this transaction sees.
impl livebase_value::IdTableResolver for Transaction {
    fn table_name_of(&self, id: &DocumentId) -> Option<String> {
        self.table_name(id.table()).map(str::to_owned)
    }
}

/// Who is writing: user code may write only tables whose names do not start with `_`; the layers
/// above the store write their own `_` tables; nobody writes the catalog except the engine.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    User,
    System,
}

impl Access {
    fn check_table_name(self, table: &str) -> Result<(), TransactionError> {
        validate_identifier("table", table)?;
        let system = table.starts_with('_');
        let catalog = table == crate::snapshot::TABLES_TABLE || table == crate::snapshot::INDEXES_TABLE;
        match self {
            Access::User if system => Err(TransactionError::SystemTable(table.to_owned())),
            Access::User => Ok(()),
            Access::System => {
                // Layers above the store name their tables; getting it wrong is a bug, not bad input.
                assert!(system && !catalog, "system writes go to `_` tables other than the catalog, not `{table}`");
                Ok(())
            }
        }
    }
}

/// Write access to system tables (see `Transaction::system_tables`).
pub struct SystemTables<'tx> {
    transaction: &'tx mut Transaction,
}

impl SystemTables<'_> {
    pub fn insert(&mut self, table: &str, fields: Object) -> Result<DocumentId, TransactionError> {
        self.transaction.insert_with(Access::System, table, fields)
    }

    pub fn patch(&mut self, id: DocumentId, changes: BTreeMap<String, Option<Value>>) -> Result<(), TransactionError> {
        self.transaction.patch_with(Access::System, id, changes)
    }

    pub fn replace(&mut self, id: DocumentId, fields: Object) -> Result<(), TransactionError> {
        self.transaction.replace_with(Access::System, id, fields)
    }

    pub fn delete(&mut self, id: DocumentId) -> Result<(), TransactionError> {
        self.transaction.get_for_write(Access::System, id)?;
        self.transaction.write(id, None)
    }
}

fn check_system_field_unchanged(
    document: &Document,
    field: &str,
    value: Option<&Value>,
) -> Result<(), TransactionError> {
    if value == document.get(field) {
        return Ok(());
    }
    Err(TransactionError::SystemFieldChanged { field: field.to_owned(), id: document.id() })
}

struct ScanSource {
    table: livebase_value::TableNumber,
    index_position: usize,
    prefix: Arc<[u8]>,
}

/// An index scan in progress. Dropping it records what it read in the transaction's read set.
pub struct Scan<'tx> {
    tx: &'tx mut Transaction,
    /// `None` when the table does not exist (the lookup was already recorded).
    source: Option<ScanSource>,
    range: KeyRange,
    order: Order,
    buffer: VecDeque<(Arc<[u8]>, Arc<Document>)>,
    /// The last key moved into `buffer`: the next fetch continues after it.
    fetched_up_to: Option<Arc<[u8]>>,
    source_exhausted: bool,
    last_returned: Option<Arc<[u8]>>,
    state: ScanState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScanState {
    Running,
    /// Returned `None`: the whole range was read.
    Exhausted,
    /// Returned an error; what it read is up to `last_returned`.
    Failed,
}

impl<'tx> Scan<'tx> {
    /// The index key of the last document returned.
    pub fn last_key(&self) -> Option<&Arc<[u8]>> {
        self.last_returned.as_ref()
    }

    fn fetch(&mut self) {
        let Some(source) = &self.source else { return };
        use std::ops::Bound::Excluded;
        let (lower, upper) = match (self.order, &self.fetched_up_to) {
            (_, None) => (range_start(&self.range), range_end(&self.range)),
            (Order::Asc, Some(key)) => (Excluded(&**key), range_end(&self.range)),
            (Order::Desc, Some(key)) => (range_start(&self.range), Excluded(&**key)),
        };
        let chunk = self.tx.entries(source).range(lower, upper, self.order == Order::Desc, SCAN_CHUNK);
        self.source_exhausted = chunk.len() < SCAN_CHUNK;
        self.fetched_up_to = chunk.last().map(|(key, _)| key.clone()).or(self.fetched_up_to.take());
        self.buffer.extend(chunk);
    }

    fn consumed_interval(&self) -> Option<KeyInterval> {
        let source = self.source.as_ref()?;
        let consumed = if self.state == ScanState::Exhausted {
            self.range.clone()
        } else {
            let last = self.last_returned.as_deref()?.to_vec();
            match self.order {
                Order::Asc => KeyRange { start: self.range.start.clone(), end: Some(successor(last)) },
                Order::Desc => KeyRange { start: last, end: self.range.end.clone() },
            }
        };
        Some(global_interval(&source.prefix, &consumed))
    }
}

impl Iterator for Scan<'_> {
    type Item = Result<Arc<Document>, TransactionError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.state != ScanState::Running {
            return None;
        }
        if self.buffer.is_empty() && !self.source_exhausted {
            self.fetch();
        }
        let Some((key, document)) = self.buffer.pop_front() else {
            self.state = ScanState::Exhausted;
            return None;
        };
        self.last_returned = Some(key);
        if let Err(error) = self.tx.count_read(&document) {
            self.state = ScanState::Failed;
            return Some(Err(error));
        }
        Some(Ok(document))
    }
}

impl Drop for Scan<'_> {
    fn drop(&mut self) {
        if let Some(interval) = self.consumed_interval()
            && let Err(error) = self.tx.read_set.record(interval)
        {
            self.tx.deferred_error.get_or_insert(error);
        }
    }
}

fn range_start(range: &KeyRange) -> std::ops::Bound<&[u8]> {
    std::ops::Bound::Included(&range.start)
}

fn range_end(range: &KeyRange) -> std::ops::Bound<&[u8]> {
    range.end.as_deref().map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded)
}
