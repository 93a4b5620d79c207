use livebase_value::{DocumentId, Object, Value, decode_document, encode_document};

use crate::TransactionError;

/// System field holding the document's id as a string.
pub const ID_FIELD: &str = "_id";
/// System field holding the creation time in float64 milliseconds since the Unix epoch.
pub const CREATION_TIME_FIELD: &str = "_creationTime";

/// A stored document: the user's fields plus the system fields `_id` and `_creationTime`.
///
/// Documents are immutable once built; a write replaces the whole `Arc<Document>`, which is what lets
/// snapshots share them.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    id: DocumentId,
    creation_time: f64,
    object: Object,
    size: usize,
}

impl Document {
    /// Builds a document from user fields (already validated by `validate_document`) and returns it
    /// with its storage encoding, so the encoding is computed once per write.
    pub(crate) fn build(
        id: DocumentId,
        creation_time: f64,
        mut fields: Object,
    ) -> Result<(Document, Vec<u8>), TransactionError> {
        assert!(!fields.contains_key(ID_FIELD) && !fields.contains_key(CREATION_TIME_FIELD));
        fields.insert(ID_FIELD.to_owned(), Value::String(id.encode()));
        fields.insert(CREATION_TIME_FIELD.to_owned(), Value::Float64(creation_time));
        let encoded = encode_document(&fields);
        livebase_value::check_document_size(encoded.len())?;
        let document = Document { id, creation_time, object: fields, size: encoded.len() };
        Ok((document, encoded))
    }

    /// Decodes a document from its storage encoding, checking that its system fields are intact.
    pub(crate) fn decode(id: DocumentId, bytes: &[u8]) -> Result<Document, String> {
        let object = decode_document(bytes).map_err(|error| format!("document {id}: {error}"))?;
        match object.get(ID_FIELD) {
            Some(Value::String(stored)) if *stored == id.encode() => {}
            other => return Err(format!("document {id}: `_id` is {other:?}")),
        }
        let creation_time = match object.get(CREATION_TIME_FIELD) {
            Some(Value::Float64(time)) => *time,
            other => return Err(format!("document {id}: `_creationTime` is {other:?}")),
        };
        Ok(Document { id, creation_time, object, size: bytes.len() })
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn creation_time(&self) -> f64 {
        self.creation_time
    }

    /// All fields, system fields included.
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// The user's fields, without `_id` and `_creationTime`.
    pub fn user_fields(&self) -> Object {
        let mut fields = self.object.clone();
        fields.remove(ID_FIELD);
        fields.remove(CREATION_TIME_FIELD);
        fields
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.object.get(field)
    }

    /// Size of the storage encoding in bytes: what the document limits and read/write limits count.
    pub fn size(&self) -> usize {
        self.size
    }
}
