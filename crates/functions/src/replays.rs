//! Mutations that run at most once per client request. A client that loses its connection replays
//! the mutations it has no answer for, and some of them may have committed: each successful
//! mutation called with a [`RequestKey`] records its result in `_mutation_replays`, in its own
//! transaction, so the record exists exactly when the mutation's writes do. A replay finds the
//! record and gets the recorded result instead of running again.
//!
//! Failed mutations record nothing: they committed nothing, so running one again is no duplicate.
//!
//! Records are kept for [`MUTATION_REPLAY_RETENTION`](crate::limits::MUTATION_REPLAY_RETENTION), and a session keeps only its newest
//! [`MAX_MUTATION_REPLAYS_PER_SESSION`], pruned by the mutation that records the next one. Clients
//! answer mutations in order, so what a client replays is its newest requests.

use livebase_store::{BY_CREATION_TIME, KeyRange, Order, Schema, TableSchema, Transaction, TransactionError};
use livebase_value::{Object, Value, decode_key_value, encode_key_value};

use crate::error::FunctionError;
use crate::limits::{MAX_MUTATION_REPLAYS_PER_SESSION, MAX_REPLAYABLE_RESULT_BYTES, MAX_REPLAYS_PRUNED_PER_COMMIT};

/// The system table of recorded mutation results.
pub const MUTATION_REPLAYS_TABLE: &str = "_mutation_replays";

const BY_REQUEST: &str = "by_request";
const SESSION_ID: &str = "sessionId";
const REQUEST_ID: &str = "requestId";
const RESULT: &str = "result";

/// A client's name for one call: the same when the client replays the call after a reconnect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestKey {
    /// The client's session (the sync protocol's `sessionId`).
    pub session: String,
    /// The call's number within the session (`requestId`).
    pub request: u32,
}

pub(crate) fn schema() -> Schema {
    Schema { tables: vec![TableSchema::new(MUTATION_REPLAYS_TABLE).index(BY_REQUEST, &[SESSION_ID, REQUEST_ID])] }
}

/// The result recorded for `key`, if its mutation committed.
pub(crate) fn find(tx: &mut Transaction, key: &RequestKey) -> Result<Option<Value>, TransactionError> {
    let mut prefix = session_prefix(&key.session);
    encode_key_value(&mut prefix, Some(&Value::Int64(key.request.into())));
    let mut scan = tx.scan(MUTATION_REPLAYS_TABLE, BY_REQUEST, KeyRange::prefix(prefix), Order::Asc)?;
    let Some(record) = scan.next().transpose()? else { return Ok(None) };
    let Some(Value::Bytes(encoded)) = record.get(RESULT) else {
        panic!("`{MUTATION_REPLAYS_TABLE}` holds only records this module writes: {record:?}");
    };
    match decode_key_value(encoded) {
        Ok((Some(value), _)) => Ok(Some(value)),
        other => panic!("`{MUTATION_REPLAYS_TABLE}` holds encoded values, not {other:?}"),
    }
}

/// Records `result` as the outcome of `key` in the mutation's transaction, and drops the session's
/// oldest record past [`MAX_MUTATION_REPLAYS_PER_SESSION`]. `Ok(Err(..))` when the result is too
/// large to record: the mutation must fail, since it could not be replayed safely.
pub(crate) fn record(
    tx: &mut Transaction,
    key: &RequestKey,
    result: &Value,
) -> Result<Result<(), FunctionError>, TransactionError> {
    let mut encoded = Vec::new();
    encode_key_value(&mut encoded, Some(result));
    if encoded.len() > MAX_REPLAYABLE_RESULT_BYTES {
        return Ok(Err(FunctionError::failed(format!(
            "The mutation returned {} bytes, more than the {MAX_REPLAYABLE_RESULT_BYTES} a mutation's result may have \
             (MAX_REPLAYABLE_RESULT_BYTES)",
            encoded.len()
        ))));
    }
    let fields = Object::from([
        (SESSION_ID.to_owned(), Value::String(key.session.clone())),
        (REQUEST_ID.to_owned(), Value::Int64(key.request.into())),
        (RESULT.to_owned(), Value::Bytes(encoded)),
    ]);
    tx.system_tables().insert(MUTATION_REPLAYS_TABLE, fields)?;
    let session = KeyRange::prefix(session_prefix(&key.session));
    // Reads only this session's records, so mutations of different sessions never conflict here.
    if tx.count(MUTATION_REPLAYS_TABLE, BY_REQUEST, session.clone())? > MAX_MUTATION_REPLAYS_PER_SESSION {
        let oldest = {
            let mut scan = tx.scan(MUTATION_REPLAYS_TABLE, BY_REQUEST, session, Order::Asc)?;
            scan.next().transpose()?.expect("the session has records: it just got one").id()
        };
        tx.system_tables().delete(oldest)?;
    }
    Ok(Ok(()))
}

/// Deletes up to [`MAX_REPLAYS_PRUNED_PER_COMMIT`] records created before `cutoff_millis`, oldest
/// first; returns how many.
pub(crate) fn prune(tx: &mut Transaction, cutoff_millis: f64) -> Result<usize, TransactionError> {
    let mut expired = Vec::new();
    {
        let mut scan = tx.scan(MUTATION_REPLAYS_TABLE, BY_CREATION_TIME, KeyRange::all(), Order::Asc)?;
        while expired.len() < MAX_REPLAYS_PRUNED_PER_COMMIT
            && let Some(record) = scan.next().transpose()?
            && record.creation_time() < cutoff_millis
        {
            expired.push(record.id());
        }
    }
    for &id in &expired {
        tx.system_tables().delete(id)?;
    }
    Ok(expired.len())
}

fn session_prefix(session: &str) -> Vec<u8> {
    let mut prefix = Vec::new();
    encode_key_value(&mut prefix, Some(&Value::String(session.to_owned())));
    prefix
}
