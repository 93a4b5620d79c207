use livebase_value::{FieldPath, Validator, validate_identifier};

use crate::TransactionError;
use crate::document::{CREATION_TIME_FIELD, ID_FIELD};
use crate::index::{BY_CREATION_TIME, BY_ID};

/// Fields one index may declare (Convex: 16), before the implicit `_creationTime, _id`.
pub const MAX_INDEX_FIELDS: usize = 16;
/// Indexes one table may declare (Convex: 32).
pub const MAX_INDEXES_PER_TABLE: usize = 32;

/// The tables, indexes and document validators an app declares, like Convex's `defineSchema`.
/// Applying a schema adds and back-fills new indexes, drops undeclared ones and sets validators;
/// tables it does not mention are left as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Schema {
    pub tables: Vec<TableSchema>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub indexes: Vec<IndexSchema>,
    /// When set, every write to the table must match it (Convex's `schemaValidation: true`).
    pub document_validator: Option<Validator>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSchema {
    pub name: String,
    /// Field paths such as `author.name`; `_creationTime` and `_id` are appended implicitly.
    pub fields: Vec<String>,
}

impl TableSchema {
    pub fn new(name: &str) -> TableSchema {
        TableSchema { name: name.to_owned(), indexes: Vec::new(), document_validator: None }
    }

    pub fn index(mut self, name: &str, fields: &[&str]) -> TableSchema {
        self.indexes.push(IndexSchema {
            name: name.to_owned(),
            fields: fields.iter().map(|field| (*field).to_owned()).collect(),
        });
        self
    }

    pub fn validator(mut self, validator: Validator) -> TableSchema {
        self.document_validator = Some(validator);
        self
    }
}

impl Schema {
    /// Checks an app's schema: names, duplicates and limits, before anything is written.
    pub fn check(&self) -> Result<(), TransactionError> {
        self.check_tables(false)
    }

    /// Checks a schema of system tables (see `Store::apply_system_schema`): every table name starts
    /// with `_` and none is the catalog.
    pub(crate) fn check_system(&self) -> Result<(), TransactionError> {
        self.check_tables(true)
    }

    fn check_tables(&self, system: bool) -> Result<(), TransactionError> {
        let invalid = |message: String| Err(TransactionError::InvalidSchema(message));
        let mut table_names = std::collections::HashSet::new();
        for table in &self.tables {
            validate_identifier("table", &table.name)?;
            let catalog = table.name == crate::snapshot::TABLES_TABLE || table.name == crate::snapshot::INDEXES_TABLE;
            if table.name.starts_with('_') != system || catalog {
                return invalid(format!(
                    "table `{}`: names starting with `_` are for system tables, and only they may use them",
                    table.name
                ));
            }
            if !table_names.insert(&table.name) {
                return invalid(format!("table `{}` is declared twice", table.name));
            }
            if table.indexes.len() > MAX_INDEXES_PER_TABLE {
                return invalid(format!(
                    "table `{}` declares {} indexes, more than {MAX_INDEXES_PER_TABLE}",
                    table.name,
                    table.indexes.len()
                ));
            }
            let mut index_names = std::collections::HashSet::new();
            for index in &table.indexes {
                validate_identifier("index", &index.name)?;
                let qualified = format!("{}.{}", table.name, index.name);
                if index.name == BY_ID || index.name == BY_CREATION_TIME || index.name.starts_with('_') {
                    return invalid(format!("index `{qualified}`: the name is reserved"));
                }
                if !index_names.insert(&index.name) {
                    return invalid(format!("index `{qualified}` is declared twice"));
                }
                if index.fields.is_empty() || index.fields.len() > MAX_INDEX_FIELDS {
                    return invalid(format!("index `{qualified}` must have 1 to {MAX_INDEX_FIELDS} fields"));
                }
                for field in &index.fields {
                    if field == ID_FIELD || field == CREATION_TIME_FIELD {
                        return invalid(format!(
                            "index `{qualified}`: `{field}` is implicitly the last field of every index"
                        ));
                    }
                    FieldPath::parse(field)?;
                }
            }
        }
        Ok(())
    }
}
