//! The protocol's messages, as the official clients send and expect them.
//!
//! The facts come from the clients' sources: the `convex` npm package 1.48.0
//! (`src/browser/sync/protocol.ts` and its callers) and the `convex_sync_types` crate 0.10.4
//! (`src/types/json.rs`), which the Rust and Python clients use. Where the two differ, both forms
//! are accepted.
//!
//! - A message is one JSON object in a text frame, tagged by `type`, its fields in camelCase.
//!   Unknown fields are ignored, as the Convex server ignores them, so newer clients keep working.
//! - A function's `args` are Convex JSON (`convex_encoded_json`) for an array holding one object,
//!   the arguments object.
//! - Timestamps (`ts`, `maxObservedTimestamp`) are nanoseconds since the epoch, at most
//!   `i64::MAX`, sent as their 8 little-endian bytes in standard padded base64 so that JavaScript
//!   does not round them. `serverTs` is the exception: a plain JSON number.
//! - A query journal is a string or null.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use livebase_value::{
    MAX_IDENTIFIER_LEN, Object, Value, encode_key_value, from_convex_json, to_convex_json, validate_identifier,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest as _, Sha256};

/// The longest client message accepted, in bytes of JSON text. Convex caps a function's
/// arguments at 16 MiB (`FUNCTION_MAX_ARGS_SIZE`); the extra 64 KiB leave room for the rest of a
/// `Mutation` or `Action` (path, ids, component path) around arguments of that size. A
/// reconnecting client re-sends all of its queries in one `ModifyQuerySet`, which fits unless
/// their arguments together approach the same 16 MiB. The shell should configure its WebSocket
/// library with this limit too, so that a larger frame is refused before it is buffered.
pub const MAX_MESSAGE_BYTES: usize = (16 << 20) + (64 << 10);

/// Error messages quote client input (serde's messages quote whole strings); past this many
/// characters they elide the rest, so that a 16 MiB string cannot become a 16 MiB error.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1_000;

/// A commit timestamp: nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    /// The largest timestamp the clients and Convex accept: both store timestamps in signed
    /// 64-bit integers in places.
    pub const MAX: Timestamp = Timestamp(i64::MAX as u64);

    /// Panics past [`Timestamp::MAX`], which wall-clock nanoseconds reach in the year 2262.
    pub const fn from_nanos(nanos: u64) -> Timestamp {
        assert!(nanos <= Timestamp::MAX.0, "timestamps are at most i64::MAX nanoseconds");
        Timestamp(nanos)
    }

    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The wire form: the 8 little-endian bytes in standard padded base64.
    pub fn encode(self) -> String {
        BASE64.encode(self.0.to_le_bytes())
    }

    /// Parses the wire form; the error says what is wrong with `text`.
    pub fn decode(text: &str) -> Result<Timestamp, String> {
        let bytes = BASE64.decode(text).map_err(|error| format!("it is not standard base64 with padding: {error}"))?;
        let eight: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
            format!("it encodes {} bytes, but a timestamp is exactly 8 (a little-endian u64)", bytes.len())
        })?;
        let nanos = u64::from_le_bytes(eight);
        if nanos > Timestamp::MAX.0 {
            return Err(format!("{nanos} is past the largest timestamp, {}", Timestamp::MAX.0));
        }
        Ok(Timestamp(nanos))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client's handle for one query in its query set. Clients number queries from 0 per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u32);

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client's handle for one mutation or action. Clients number them from 0 per session, with one
/// counter for both kinds, and keep the numbers when they replay requests after a reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u32);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A client session, a random UUID. The JavaScript client keeps one for its lifetime, across
/// reconnects; the Rust client makes a new one for every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(u128);

impl SessionId {
    /// Parses the hyphenated form (`8-4-4-4-12` hex digits), the only one the clients send.
    pub(crate) fn parse(text: &str) -> Option<SessionId> {
        let groups: Vec<&str> = text.split('-').collect();
        let lengths_match = groups.iter().map(|group| group.len()).eq([8, 4, 4, 4, 12]);
        if !lengths_match || !groups.iter().all(|group| group.bytes().all(|b| b.is_ascii_hexdigit())) {
            return None;
        }
        let id = u128::from_str_radix(&groups.concat(), 16).expect("32 hex digits fit in a u128");
        Some(SessionId(id))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = format!("{:032x}", self.0);
        write!(f, "{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
    }
}

/// A function's path, canonicalized as the JavaScript client does: `module:function`, where the
/// module path may have `/` segments and a `.js` suffix (dropped), and a missing function name
/// means `default`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UdfPath {
    module: String,
    function: String,
}

impl UdfPath {
    /// Checks the path as Convex does when it reads a message: every module segment is at most
    /// [`MAX_IDENTIFIER_LEN`] bytes of letters, digits, `_` and `.`, with at least one letter or
    /// digit (so neither `.` nor `..`), and the function name is an identifier.
    pub fn parse(text: &str) -> Result<UdfPath, String> {
        let (module, function) = text.rsplit_once(':').unwrap_or((text, "default"));
        let module = module.strip_suffix(".js").unwrap_or(module);
        for segment in module.split('/') {
            let valid = segment.len() <= MAX_IDENTIFIER_LEN
                && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                && segment.bytes().any(|b| b.is_ascii_alphanumeric());
            if !valid {
                return Err(format!(
                    "udfPath `{}` has the module path segment `{}`: segments must be 1 to \
                     {MAX_IDENTIFIER_LEN} letters, digits, `_` or `.`, with at least one letter or digit",
                    shorten(text, MAX_QUOTE_CHARS),
                    shorten(segment, MAX_QUOTE_CHARS),
                ));
            }
        }
        validate_identifier("function", function)
            .map_err(|error| format!("udfPath `{}`: {error}", shorten(text, MAX_QUOTE_CHARS)))?;
        Ok(UdfPath { module: module.to_owned(), function: function.to_owned() })
    }

    /// The module path, without a `.js` suffix.
    pub fn module(&self) -> &str {
        &self.module
    }

    pub fn function(&self) -> &str {
        &self.function
    }
}

impl fmt::Display for UdfPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.module, self.function)
    }
}

/// Why a call's arguments could not be decoded. Like Convex, the server answers this with a
/// failed call, not by closing the connection: the arguments are the app's, not the protocol's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgs(String);

/// A call's arguments object, decoded from the wire's one-element array.
pub type Args = Result<Object, InvalidArgs>;

/// A subscribed query's arguments, kept as their Convex JSON text for as long as the query is in
/// the query set: a decoded [`Object`] costs a B-tree node of over 600 bytes even for one field,
/// the text a few bytes, and the text is also what tells identical subscriptions apart. Decoded
/// again only when the query runs (a query many clients share runs once).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueryArgs(Arc<str>);

impl QueryArgs {
    pub fn new(args: Object) -> QueryArgs {
        QueryArgs(to_convex_json(&Value::Object(args)).to_string().into())
    }

    /// The arguments' Convex JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn decode(&self) -> Object {
        let json: Json = serde_json::from_str(&self.0).expect("the text was encoded from arguments");
        match from_convex_json(&json) {
            Ok(Value::Object(args)) => args,
            other => panic!("arguments encoded from an object decode to it, not {other:?}"),
        }
    }
}

fn decode_args(json: &Json) -> Args {
    let Json::Array(items) = json else {
        return Err(InvalidArgs(format!(
            "Invalid arguments: expected an array holding one arguments object, got {}.",
            livebase_value::describe_json_type(json)
        )));
    };
    let [item] = items.as_slice() else {
        return Err(InvalidArgs(format!(
            "Invalid arguments: expected an array holding one arguments object, got {} elements.",
            items.len()
        )));
    };
    match from_convex_json(item) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => {
            Err(InvalidArgs(format!("Invalid arguments: the arguments must be an object, got {}.", other.type_name())))
        }
        Err(error) => Err(InvalidArgs(format!("Invalid arguments: {error}"))),
    }
}

/// A message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// The first message on every socket.
    Connect(Connect),
    /// Changes the query set, from the version in the previous `ModifyQuerySet` (0 at first) to
    /// `new_version`.
    ModifyQuerySet {
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    },
    Mutation(FunctionCall),
    Action(FunctionCall),
    /// Sets the identity for later calls and queries, from identity version `base_version` (the
    /// number of `Authenticate`s the server accepted on this socket).
    Authenticate {
        base_version: u32,
        token: AuthToken,
    },
    /// Client telemetry, for logs only.
    Event {
        event_type: String,
        event: Json,
    },
}

impl ClientMessage {
    /// The message's `type`.
    pub fn message_type(&self) -> &'static str {
        match self {
            ClientMessage::Connect(_) => "Connect",
            ClientMessage::ModifyQuerySet { .. } => "ModifyQuerySet",
            ClientMessage::Mutation(_) => "Mutation",
            ClientMessage::Action(_) => "Action",
            ClientMessage::Authenticate { .. } => "Authenticate",
            ClientMessage::Event { .. } => "Event",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub session_id: SessionId,
    /// Sockets this client opened before this one.
    pub connection_count: u32,
    /// `"InitialConnect"` on a client's first socket, else why the previous one closed. The
    /// JavaScript client sends null when its socket opened while it waited for a first token.
    pub last_close_reason: Option<String>,
    /// The newest timestamp the client saw on earlier sockets. A server that is behind it has
    /// lost writes the client saw, and must not serve it.
    pub max_observed_timestamp: Option<Timestamp>,
    /// The client's clock in milliseconds (the Rust client sends 0), for `clientClockSkew`.
    pub client_ts: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QuerySetModification {
    Add(AddQuery),
    Remove { query_id: QueryId },
}

#[derive(Debug, Clone, PartialEq)]
pub struct AddQuery {
    pub query_id: QueryId,
    pub udf_path: UdfPath,
    pub args: Args,
    /// The journal of the query's last result, which the clients send back when they re-add a
    /// query after a reconnect (the JavaScript client does; the Rust client never does).
    pub journal: Option<String>,
    /// Runs the function in a component; only admins may.
    pub component_path: Option<String>,
}

/// A `Mutation` or `Action` message.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    pub request_id: RequestId,
    pub udf_path: UdfPath,
    pub args: Args,
    /// Runs the function in a component; only admins may.
    pub component_path: Option<String>,
}

/// The credentials an `Authenticate` message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthToken {
    /// Logged out.
    None,
    /// A JWT (OpenID Connect identity token).
    User(String),
    /// An admin key, possibly acting as a user whose identity attributes are given (in the
    /// JavaScript client's `impersonating`, or the Rust client's `acting_as`).
    Admin { key: String, impersonating: Option<Map<String, Json>> },
}

/// Why a client message was rejected. Every message names the message type and field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("The message is {bytes} bytes long, over the limit of {MAX_MESSAGE_BYTES} bytes.")]
    TooLarge { bytes: usize },
    #[error("The message is not valid JSON: {0}.")]
    NotJson(String),
    #[error("The message must be a JSON object with a string field `type`; it is {0}.")]
    NotAMessage(String),
    #[error(
        "The message has the unknown type `{0}`; expected Connect, ModifyQuerySet, Mutation, Action, \
         Authenticate or Event."
    )]
    UnknownType(String),
    #[error("Invalid {message_type} message: {problem}.")]
    Invalid { message_type: &'static str, problem: String },
}

/// Parses one text frame from a client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge { bytes: text.len() });
    }
    // serde_json stops at 128 levels of nesting, so this cannot exhaust the stack.
    let json: Json = serde_json::from_str(text)
        .map_err(|error| ParseError::NotJson(shorten(&error.to_string(), MAX_ERROR_MESSAGE_CHARS)))?;
    let message_type = match json.get("type") {
        Some(Json::String(message_type)) => message_type.clone(),
        Some(_) => return Err(ParseError::NotAMessage("an object whose `type` is not a string".to_owned())),
        None if json.is_object() => return Err(ParseError::NotAMessage("an object without `type`".to_owned())),
        None => return Err(ParseError::NotAMessage(livebase_value::describe_json_type(&json).to_owned())),
    };
    match message_type.as_str() {
        "Connect" => parse_connect(json),
        "ModifyQuerySet" => parse_modify_query_set(json),
        "Mutation" => parse_function_call("Mutation", json).map(ClientMessage::Mutation),
        "Action" => parse_function_call("Action", json).map(ClientMessage::Action),
        "Authenticate" => parse_authenticate(json),
        "Event" => {
            let EventJson { event_type, event } = fields("Event", json)?;
            Ok(ClientMessage::Event { event_type, event })
        }
        other => Err(ParseError::UnknownType(shorten(other, MAX_QUOTE_CHARS))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConnectJson {
    session_id: String,
    connection_count: u32,
    #[serde(default)]
    last_close_reason: Option<String>,
    #[serde(default)]
    max_observed_timestamp: Option<String>,
    #[serde(default)]
    client_ts: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModifyQuerySetJson {
    base_version: u32,
    new_version: u32,
    modifications: Vec<Json>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum ModificationJson {
    #[serde(rename_all = "camelCase")]
    Add {
        query_id: u32,
        udf_path: String,
        args: Json,
        #[serde(default)]
        journal: Option<String>,
        #[serde(default)]
        component_path: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Remove { query_id: u32 },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallJson {
    request_id: u32,
    udf_path: String,
    args: Json,
    #[serde(default)]
    component_path: Option<String>,
}

#[derive(Deserialize)]
enum TokenType {
    None,
    User,
    Admin,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticateJson {
    base_version: u32,
    token_type: TokenType,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    impersonating: Option<Map<String, Json>>,
    #[serde(default, rename = "acting_as")]
    acting_as: Option<Map<String, Json>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventJson {
    event_type: String,
    event: Json,
}

fn fields<T: DeserializeOwned>(message_type: &'static str, json: Json) -> Result<T, ParseError> {
    serde_json::from_value(json).map_err(|error| invalid(message_type, error.to_string()))
}

fn invalid(message_type: &'static str, problem: String) -> ParseError {
    ParseError::Invalid { message_type, problem: shorten(&problem, MAX_ERROR_MESSAGE_CHARS) }
}

fn udf_path(message_type: &'static str, text: &str) -> Result<UdfPath, ParseError> {
    UdfPath::parse(text).map_err(|problem| invalid(message_type, problem))
}

fn parse_connect(json: Json) -> Result<ClientMessage, ParseError> {
    let connect: ConnectJson = fields("Connect", json)?;
    let session_id = SessionId::parse(&connect.session_id).ok_or_else(|| {
        invalid(
            "Connect",
            format!("sessionId `{}` is not a hyphenated UUID", shorten(&connect.session_id, MAX_QUOTE_CHARS)),
        )
    })?;
    let max_observed_timestamp = connect
        .max_observed_timestamp
        .map(|text| Timestamp::decode(&text))
        .transpose()
        .map_err(|problem| invalid("Connect", format!("maxObservedTimestamp is not a timestamp: {problem}")))?;
    Ok(ClientMessage::Connect(Connect {
        session_id,
        connection_count: connect.connection_count,
        last_close_reason: connect.last_close_reason,
        max_observed_timestamp,
        client_ts: connect.client_ts,
    }))
}

fn parse_modify_query_set(json: Json) -> Result<ClientMessage, ParseError> {
    let message: ModifyQuerySetJson = fields("ModifyQuerySet", json)?;
    let mut modifications = Vec::with_capacity(message.modifications.len());
    for (index, modification) in message.modifications.into_iter().enumerate() {
        let at_index = |problem: String| invalid("ModifyQuerySet", format!("modifications[{index}]: {problem}"));
        let modification: ModificationJson =
            serde_json::from_value(modification).map_err(|error| at_index(error.to_string()))?;
        modifications.push(match modification {
            ModificationJson::Add { query_id, udf_path, args, journal, component_path } => {
                QuerySetModification::Add(AddQuery {
                    query_id: QueryId(query_id),
                    udf_path: UdfPath::parse(&udf_path).map_err(at_index)?,
                    args: decode_args(&args),
                    journal,
                    component_path,
                })
            }
            ModificationJson::Remove { query_id } => QuerySetModification::Remove { query_id: QueryId(query_id) },
        });
    }
    Ok(ClientMessage::ModifyQuerySet {
        base_version: message.base_version,
        new_version: message.new_version,
        modifications,
    })
}

fn parse_function_call(message_type: &'static str, json: Json) -> Result<FunctionCall, ParseError> {
    let call: FunctionCallJson = fields(message_type, json)?;
    Ok(FunctionCall {
        request_id: RequestId(call.request_id),
        udf_path: udf_path(message_type, &call.udf_path)?,
        args: decode_args(&call.args),
        component_path: call.component_path,
    })
}

fn parse_authenticate(json: Json) -> Result<ClientMessage, ParseError> {
    let message: AuthenticateJson = fields("Authenticate", json)?;
    let value = |token_type: &str| {
        message
            .value
            .clone()
            .ok_or_else(|| invalid("Authenticate", format!("tokenType {token_type} requires a `value`")))
    };
    let token = match message.token_type {
        TokenType::None => AuthToken::None,
        TokenType::User => AuthToken::User(value("User")?),
        TokenType::Admin => {
            let impersonating = match (message.impersonating.clone(), message.acting_as.clone()) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "Authenticate",
                        "only one of `impersonating` and `acting_as` may be given".to_owned(),
                    ));
                }
                (impersonating, acting_as) => impersonating.or(acting_as),
            };
            AuthToken::Admin { key: value("Admin")?, impersonating }
        }
    };
    Ok(ClientMessage::Authenticate { base_version: message.base_version, token })
}

/// The identity and query-set versions and timestamp a client's view is at. Every Transition
/// moves the client from its `start_version`, which must be the previous Transition's
/// `end_version` (all zero at first), to its `end_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateVersion {
    pub query_set: u32,
    pub identity: u32,
    pub ts: Timestamp,
}

/// A function's failure as the client sees it: a message, and the data of a `ConvexError`.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionError {
    pub message: String,
    pub data: Option<Value>,
}

/// A digest of what a client sees of a query's result, to tell a changed result from the one sent.
pub(crate) type ResultDigest = [u8; 32];

/// One run of a query as clients are told it, serialized and digested once, when it is made. A
/// commit often changes a query that many clients watch, and they all get the same run (the
/// server shares identical runs): each client's Transition copies these bytes after its own query
/// id, and compares the digest with the one it sent last, instead of serializing and hashing the
/// result once per client.
#[derive(Debug, PartialEq)]
pub struct SharedOutcome {
    journal: Option<String>,
    /// The modification as a JSON object without its `queryId`: `{"type":"QueryUpdated",…}`.
    text: String,
    digest: ResultDigest,
}

impl SharedOutcome {
    pub fn new(result: Result<Value, FunctionError>, log_lines: Vec<String>, journal: Option<String>) -> SharedOutcome {
        let mut modification = match &result {
            Ok(value) => json!({"type": "QueryUpdated", "value": to_convex_json(value)}),
            Err(error) => {
                let mut modification = json!({"type": "QueryFailed", "errorMessage": error.message});
                if let Some(data) = &error.data {
                    modification["errorData"] = to_convex_json(data);
                }
                modification
            }
        };
        modification["logLines"] = json!(log_lines);
        modification["journal"] = json!(journal);
        let text = modification.to_string();
        assert!(text.starts_with('{') && text.len() > 2, "a modification is a JSON object with members");
        let digest = digest(&result, &log_lines);
        SharedOutcome { journal, text, digest }
    }

    /// The journal to continue from when the query runs again.
    pub fn journal(&self) -> Option<&str> {
        self.journal.as_deref()
    }

    pub(crate) fn digest(&self) -> &ResultDigest {
        &self.digest
    }

    /// Appends the modification for `query_id`: the shared text with the id spliced in first.
    fn write_modification(&self, query_id: QueryId, out: &mut String) {
        write!(out, "{{\"queryId\":{},", query_id.0).expect("a String takes any text");
        out.push_str(&self.text[1..]);
    }
}

/// A collision-resistant digest of what a client sees of a result. The parts are framed (a tag,
/// self-delimiting value encodings, length-prefixed strings) so that different results cannot
/// encode to the same bytes.
fn digest(result: &Result<Value, FunctionError>, log_lines: &[String]) -> ResultDigest {
    fn string(bytes: &mut Vec<u8>, text: &str) {
        bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    let mut bytes = Vec::new();
    match result {
        Ok(value) => {
            bytes.push(0);
            encode_key_value(&mut bytes, Some(value));
        }
        Err(FunctionError { message, data }) => {
            bytes.push(1);
            string(&mut bytes, message);
            // Undefined marks "no data": it is not a value, so it differs from every data.
            encode_key_value(&mut bytes, data.as_ref());
        }
    }
    for line in log_lines {
        string(&mut bytes, line);
    }
    Sha256::digest(&bytes).into()
}

#[derive(Debug, Clone, PartialEq)]
pub enum StateModification {
    /// `QueryUpdated` with the query's value, or `QueryFailed` with its error.
    QueryChanged {
        query_id: QueryId,
        outcome: Arc<SharedOutcome>,
    },
    QueryRemoved {
        query_id: QueryId,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub start_version: StateVersion,
    pub end_version: StateVersion,
    /// At most one per query, in query id order.
    pub modifications: Vec<StateModification>,
    /// The client's clock minus the server's, in milliseconds, from `Connect.clientTs`; the
    /// shell stamps it. The JavaScript client uses it to time token refreshes.
    pub client_clock_skew: Option<i64>,
    /// When the message was sent; the shell stamps it. Used by clients for logs only.
    pub server_ts: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MutationSuccess {
    pub value: Value,
    /// The mutation's commit timestamp. The client resolves the mutation once a Transition
    /// reaches it.
    pub ts: Timestamp,
}

/// A message to a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Transition(Transition),
    MutationResponse {
        request_id: RequestId,
        result: Result<MutationSuccess, FunctionError>,
        log_lines: Vec<String>,
    },
    ActionResponse {
        request_id: RequestId,
        result: Result<Value, FunctionError>,
        log_lines: Vec<String>,
    },
    /// An identity was rejected. `base_version` is the identity version the rejected token would
    /// have replaced; `auth_update_attempted` tells a rejected `Authenticate` from a token that
    /// expired later. The connection closes after it.
    AuthError {
        error: String,
        base_version: u32,
        auth_update_attempted: bool,
    },
    /// The client broke the protocol. The JavaScript client stops for good; the Rust client
    /// reconnects. The connection closes after it.
    FatalError {
        error: String,
    },
    /// Keeps an idle connection alive: the JavaScript client reconnects after 60 s without a
    /// message, the Rust client after 30 s.
    Ping,
}

impl ServerMessage {
    pub fn to_json(&self) -> Json {
        match self {
            ServerMessage::Transition(_) => serde_json::from_str(&self.to_text()).expect("a Transition's text is JSON"),
            ServerMessage::MutationResponse { request_id, result, log_lines } => {
                let mut message = json!({"type": "MutationResponse", "requestId": request_id.0, "logLines": log_lines});
                match result {
                    Ok(MutationSuccess { value, ts }) => {
                        set_outcome(&mut message, Ok(value));
                        message["ts"] = Json::from(ts.encode());
                    }
                    Err(error) => set_outcome(&mut message, Err(error)),
                }
                message
            }
            ServerMessage::ActionResponse { request_id, result, log_lines } => {
                let mut message = json!({"type": "ActionResponse", "requestId": request_id.0, "logLines": log_lines});
                set_outcome(&mut message, result.as_ref());
                message
            }
            ServerMessage::AuthError { error, base_version, auth_update_attempted } => json!({
                "type": "AuthError",
                "error": error,
                "baseVersion": base_version,
                "authUpdateAttempted": auth_update_attempted,
            }),
            ServerMessage::FatalError { error } => json!({"type": "FatalError", "error": error}),
            ServerMessage::Ping => json!({"type": "Ping"}),
        }
    }

    /// The text frame to send.
    pub fn to_text(&self) -> String {
        match self {
            ServerMessage::Transition(transition) => transition_text(transition),
            _ => self.to_json().to_string(),
        }
    }
}

/// A Transition's text, written directly: a client's versions are numbers and base64, which need
/// no escaping, and its results' text is copied in (see [`SharedOutcome`]). One is written per
/// client for every commit that changes what it watches.
fn transition_text(transition: &Transition) -> String {
    let mut text = String::from("{\"type\":\"Transition\",\"startVersion\":");
    write_state_version(&transition.start_version, &mut text);
    text.push_str(",\"endVersion\":");
    write_state_version(&transition.end_version, &mut text);
    if let Some(skew) = transition.client_clock_skew {
        write!(text, ",\"clientClockSkew\":{skew}").expect("a String takes any text");
    }
    if let Some(ts) = transition.server_ts {
        write!(text, ",\"serverTs\":{}", ts.nanos()).expect("a String takes any text");
    }
    text.push_str(",\"modifications\":[");
    for (index, modification) in transition.modifications.iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        match modification {
            StateModification::QueryChanged { query_id, outcome } => outcome.write_modification(*query_id, &mut text),
            StateModification::QueryRemoved { query_id } => {
                write!(text, "{{\"type\":\"QueryRemoved\",\"queryId\":{}}}", query_id.0)
                    .expect("a String takes any text");
            }
        }
    }
    text.push_str("]}");
    text
}

fn write_state_version(version: &StateVersion, out: &mut String) {
    let StateVersion { query_set, identity, ts } = version;
    write!(out, "{{\"querySet\":{query_set},\"identity\":{identity},\"ts\":\"{}\"}}", ts.encode())
        .expect("a String takes any text");
}

/// Sets `success` and `result`, and `errorData` for a `ConvexError`: on failure `result` is the
/// error message.
fn set_outcome(message: &mut Json, outcome: Result<&Value, &FunctionError>) {
    match outcome {
        Ok(value) => {
            message["success"] = Json::Bool(true);
            message["result"] = to_convex_json(value);
        }
        Err(error) => {
            message["success"] = Json::Bool(false);
            message["result"] = Json::from(error.message.as_str());
            if let Some(data) = &error.data {
                message["errorData"] = to_convex_json(data);
            }
        }
    }
}

/// How much of a single quoted name (a type, a path) an error message shows.
const MAX_QUOTE_CHARS: usize = 100;

/// Cuts `text` to `max_chars` characters, marking the cut with an ellipsis.
fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SESSION: &str = "1f0e2c9a-4b3d-4c5e-8f7a-9b0c1d2e3f40";

    fn session() -> SessionId {
        SessionId::parse(SESSION).unwrap()
    }

    fn path(text: &str) -> UdfPath {
        UdfPath::parse(text).unwrap()
    }

    fn object(json: Json) -> Object {
        let Ok(Value::Object(object)) = from_convex_json(&json) else { panic!("{json}") };
        object
    }

    fn parse(json: Json) -> Result<ClientMessage, ParseError> {
        parse_client_message(&json.to_string())
    }

    fn problem(json: Json) -> (&'static str, String) {
        match parse(json) {
            Err(ParseError::Invalid { message_type, problem }) => (message_type, problem),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_arguments_kept_as_text_decode_to_what_was_subscribed() {
        let args = Object::from([
            ("int".to_owned(), Value::Int64(i64::MIN)),
            ("negativeZero".to_owned(), Value::Float64(-0.0)),
            ("nan".to_owned(), Value::Float64(f64::NAN)),
            ("tenth".to_owned(), Value::Float64(0.1)),
            ("bytes".to_owned(), Value::Bytes(vec![0, 255, 7])),
            ("text".to_owned(), Value::String("é \" \u{0}".to_owned())),
            ("nested".to_owned(), Value::Array(vec![Value::Null, Value::Object(object(json!({"a": [true]})))])),
        ]);
        let kept = QueryArgs::new(args.clone());
        assert_eq!(kept.decode(), args);
        assert_eq!(kept, QueryArgs::new(args.clone()), "the same arguments, the same text");
        let other = Object::from([("int".to_owned(), Value::Float64(i64::MIN as f64))]);
        assert_ne!(QueryArgs::new(other).text(), kept.text());
    }

    #[test]
    fn connect_as_the_clients_send_it() {
        // The JavaScript client's first socket: `{...reconnectMetadata, type, sessionId,
        // maxObservedTimestamp}` with the timestamp undefined, so JSON.stringify drops it.
        let javascript = json!({
            "connectionCount": 0, "lastCloseReason": "InitialConnect", "clientTs": 1_717_000_000_000i64,
            "type": "Connect", "sessionId": SESSION,
        });
        assert_eq!(
            parse(javascript),
            Ok(ClientMessage::Connect(Connect {
                session_id: session(),
                connection_count: 0,
                last_close_reason: Some("InitialConnect".to_owned()),
                max_observed_timestamp: None,
                client_ts: Some(1_717_000_000_000),
            }))
        );
        // After a reconnect it has seen a timestamp, and its last close reason may be null.
        let javascript = json!({
            "connectionCount": 3, "lastCloseReason": null, "clientTs": 5, "type": "Connect",
            "sessionId": SESSION, "maxObservedTimestamp": "Fc2FPf6clxc=",
        });
        let Ok(ClientMessage::Connect(connect)) = parse(javascript) else { panic!() };
        assert_eq!(connect.last_close_reason, None);
        assert_eq!(connect.max_observed_timestamp, Some(Timestamp::from_nanos(1_700_000_000_123_456_789)));
        // The Rust client always sends a reason and `clientTs: 0`.
        let rust = json!({
            "clientTs": 0, "connectionCount": 1, "lastCloseReason": "InactiveServer",
            "maxObservedTimestamp": "AQAAAAAAAAA=", "sessionId": SESSION, "type": "Connect",
        });
        assert_eq!(
            parse(rust),
            Ok(ClientMessage::Connect(Connect {
                session_id: session(),
                connection_count: 1,
                last_close_reason: Some("InactiveServer".to_owned()),
                max_observed_timestamp: Some(Timestamp::from_nanos(1)),
                client_ts: Some(0),
            }))
        );
    }

    #[test]
    fn modify_query_set_as_the_clients_send_it() {
        // The JavaScript client re-adding its queries after a reconnect: journals are strings or
        // null, undefined ones are dropped; `args` is `[convexToJson(args)]`.
        let javascript = json!({
            "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
            "modifications": [
                {"type": "Add", "queryId": 0, "udfPath": "messages:list",
                 "args": [{"channel": "general", "limit": {"$integer": "CgAAAAAAAAA="}}], "journal": "eyJlbmQiOjF9"},
                {"type": "Add", "queryId": 2, "udfPath": "users", "args": [{}], "journal": null},
                {"type": "Add", "queryId": 3, "udfPath": "admin/stats.js:count", "args": [{}],
                 "componentPath": "waitlist"},
                {"type": "Remove", "queryId": 1},
            ],
        });
        let add = |query_id, udf_path: &str, args: Json, journal: Option<&str>, component_path: Option<&str>| {
            QuerySetModification::Add(AddQuery {
                query_id: QueryId(query_id),
                udf_path: path(udf_path),
                args: Ok(object(args)),
                journal: journal.map(str::to_owned),
                component_path: component_path.map(str::to_owned),
            })
        };
        assert_eq!(
            parse(javascript),
            Ok(ClientMessage::ModifyQuerySet {
                base_version: 0,
                new_version: 1,
                modifications: vec![
                    add(
                        0,
                        "messages:list",
                        json!({"channel": "general", "limit": {"$integer": "CgAAAAAAAAA="}}),
                        Some("eyJlbmQiOjF9"),
                        None
                    ),
                    add(2, "users:default", json!({}), None, None),
                    add(3, "admin/stats:count", json!({}), None, Some("waitlist")),
                    QuerySetModification::Remove { query_id: QueryId(1) },
                ],
            })
        );
        // The Rust client: `args` is lifted out of the tagged part, and no journal is sent.
        let rust = json!({
            "baseVersion": 4, "modifications": [{"args": [{"n": 1.5}], "queryId": 7, "type": "Add", "udfPath": "m:q"}],
            "newVersion": 5, "type": "ModifyQuerySet",
        });
        assert_eq!(
            parse(rust),
            Ok(ClientMessage::ModifyQuerySet {
                base_version: 4,
                new_version: 5,
                modifications: vec![add(7, "m:q", json!({"n": 1.5}), None, None)],
            })
        );
    }

    #[test]
    fn mutations_and_actions_as_the_clients_send_them() {
        let call = |request_id, args: Json, component_path: Option<&str>| FunctionCall {
            request_id: RequestId(request_id),
            udf_path: path("messages:send"),
            args: Ok(object(args)),
            component_path: component_path.map(str::to_owned),
        };
        let javascript = json!({"type": "Mutation", "requestId": 0, "udfPath": "messages:send",
                                "args": [{"body": "hi", "at": {"$float": "AAAAAAAA8H8="}}]});
        assert_eq!(
            parse(javascript),
            Ok(ClientMessage::Mutation(call(0, json!({"body": "hi", "at": {"$float": "AAAAAAAA8H8="}}), None)))
        );
        let rust = json!({"args": [{"body": "hi"}], "requestId": 3, "type": "Mutation", "udfPath": "messages:send"});
        assert_eq!(parse(rust), Ok(ClientMessage::Mutation(call(3, json!({"body": "hi"}), None))));
        let action = json!({"type": "Action", "requestId": 9, "udfPath": "messages:send", "componentPath": "c",
                            "args": [{"data": {"$bytes": "AAE="}}]});
        assert_eq!(parse(action), Ok(ClientMessage::Action(call(9, json!({"data": {"$bytes": "AAE="}}), Some("c")))));
    }

    #[test]
    fn authenticate_and_event_as_the_clients_send_them() {
        let user = json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User",
                          "value": "eyJhbGciOiJSUzI1NiJ9.e30.sig"});
        assert_eq!(
            parse(user),
            Ok(ClientMessage::Authenticate {
                base_version: 0,
                token: AuthToken::User("eyJhbGciOiJSUzI1NiJ9.e30.sig".to_owned())
            })
        );
        let none = json!({"type": "Authenticate", "tokenType": "None", "baseVersion": 2});
        assert_eq!(parse(none), Ok(ClientMessage::Authenticate { base_version: 2, token: AuthToken::None }));

        let identity =
            json!({"tokenIdentifier": "https://issuer|user1", "subject": "user1", "issuer": "https://issuer"});
        let Json::Object(identity_map) = identity.clone() else { panic!() };
        let admin = |impersonating: Option<Map<String, Json>>| {
            Ok(ClientMessage::Authenticate {
                base_version: 1,
                token: AuthToken::Admin { key: "local:key".to_owned(), impersonating },
            })
        };
        let javascript = json!({"type": "Authenticate", "baseVersion": 1, "tokenType": "Admin", "value": "local:key",
                                "impersonating": identity});
        assert_eq!(parse(javascript), admin(Some(identity_map.clone())));
        // The Rust client's field is snake_case.
        let rust = json!({"acting_as": identity, "baseVersion": 1, "tokenType": "Admin", "type": "Authenticate",
                          "value": "local:key"});
        assert_eq!(parse(rust), admin(Some(identity_map)));
        let plain = json!({"baseVersion": 1, "tokenType": "Admin", "type": "Authenticate", "value": "local:key"});
        assert_eq!(parse(plain), admin(None));

        let event = json!({"type": "Event", "eventType": "ClientConnect", "event": {"marks": []}});
        assert_eq!(
            parse(event),
            Ok(ClientMessage::Event { event_type: "ClientConnect".to_owned(), event: json!({"marks": []}) })
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let message = json!({"type": "Action", "requestId": 1, "udfPath": "a:b", "args": [{}], "futureField": [1]});
        assert!(matches!(parse(message), Ok(ClientMessage::Action(_))));
    }

    #[test]
    fn broken_messages_say_what_is_wrong() {
        assert_eq!(
            parse_client_message("{\"type\": \"Connect\""),
            Err(ParseError::NotJson("EOF while parsing an object at line 1 column 18".to_owned()))
        );
        assert_eq!(parse(json!([1])), Err(ParseError::NotAMessage("an array".to_owned())));
        assert_eq!(parse(json!({"a": 1})), Err(ParseError::NotAMessage("an object without `type`".to_owned())));
        assert_eq!(
            parse(json!({"type": 1})),
            Err(ParseError::NotAMessage("an object whose `type` is not a string".to_owned()))
        );
        assert_eq!(parse(json!({"type": "Query"})), Err(ParseError::UnknownType("Query".to_owned())));
        assert_eq!(
            parse(json!({"type": "Query"})).unwrap_err().to_string(),
            "The message has the unknown type `Query`; expected Connect, ModifyQuerySet, Mutation, Action, \
             Authenticate or Event."
        );

        assert_eq!(
            problem(json!({"type": "Mutation", "requestId": 1, "args": [{}]})),
            ("Mutation", "missing field `udfPath`".to_owned())
        );
        assert_eq!(
            problem(json!({"type": "Action", "requestId": -1, "udfPath": "a:b", "args": [{}]})),
            ("Action", "invalid value: integer `-1`, expected u32".to_owned())
        );
        assert_eq!(
            problem(json!({"type": "Mutation", "requestId": 1, "udfPath": "a:b c", "args": [{}]})).1,
            "udfPath `a:b c`: Invalid function name `b c`: it must match [A-Za-z_][A-Za-z0-9_]*, must not consist only \
             of underscores, and must be at most 64 characters long."
        );
        let modify = json!({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Remove", "queryId": 0}, {"type": "Replace", "queryId": 1}]});
        assert_eq!(
            problem(modify),
            ("ModifyQuerySet", "modifications[1]: unknown variant `Replace`, expected `Add` or `Remove`".to_owned())
        );
        assert_eq!(
            problem(json!({"type": "Connect", "sessionId": "abc", "connectionCount": 0})).1,
            "sessionId `abc` is not a hyphenated UUID"
        );
        assert_eq!(
            problem(
                json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0, "maxObservedTimestamp": "AQ=="})
            )
            .1,
            "maxObservedTimestamp is not a timestamp: it encodes 1 bytes, but a timestamp is exactly 8 (a \
             little-endian u64)"
        );
        assert_eq!(
            problem(json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User"})).1,
            "tokenType User requires a `value`"
        );
        assert_eq!(
            problem(json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Guest"})).1,
            "unknown variant `Guest`, expected one of `None`, `User`, `Admin`"
        );
        let both = json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "Admin", "value": "k",
                          "impersonating": {}, "acting_as": {}});
        assert_eq!(problem(both).1, "only one of `impersonating` and `acting_as` may be given");
        assert_eq!(
            parse(json!({"type": "Event", "eventType": "x"})).unwrap_err().to_string(),
            "Invalid Event message: missing field `event`."
        );
    }

    #[test]
    fn message_size_is_limited() {
        let message = |bytes: usize| {
            let envelope = json!({"type": "Event", "eventType": "x", "event": ""}).to_string();
            let padding = "a".repeat(bytes - envelope.len());
            json!({"type": "Event", "eventType": "x", "event": padding}).to_string()
        };
        let largest = message(MAX_MESSAGE_BYTES);
        assert_eq!(largest.len(), MAX_MESSAGE_BYTES);
        assert!(matches!(parse_client_message(&largest), Ok(ClientMessage::Event { .. })));
        assert_eq!(
            parse_client_message(&message(MAX_MESSAGE_BYTES + 1)),
            Err(ParseError::TooLarge { bytes: MAX_MESSAGE_BYTES + 1 })
        );
    }

    #[test]
    fn error_messages_are_bounded() {
        let quoted = |len: usize| {
            let (_, problem) =
                problem(json!({"type": "Mutation", "requestId": "x".repeat(len), "udfPath": "a", "args": []}));
            problem
        };
        // serde's message is `invalid type: string "xx…", expected u32`, 37 characters around the string.
        let at_limit = quoted(MAX_ERROR_MESSAGE_CHARS - 37);
        assert_eq!(at_limit.chars().count(), MAX_ERROR_MESSAGE_CHARS, "{at_limit}");
        assert!(!at_limit.ends_with('…'));
        let over = quoted(MAX_ERROR_MESSAGE_CHARS - 36);
        assert_eq!(over.chars().count(), MAX_ERROR_MESSAGE_CHARS + 1);
        assert!(over.ends_with('…'));
        assert!(quoted(1 << 20).chars().count() == MAX_ERROR_MESSAGE_CHARS + 1);
    }

    #[test]
    fn invalid_arguments_fail_the_call_not_the_message() {
        let args = |args: Json| {
            let message = json!({"type": "Mutation", "requestId": 1, "udfPath": "a:b", "args": args});
            let Ok(ClientMessage::Mutation(call)) = parse(message) else { panic!() };
            call.args.map_err(|invalid| invalid.to_string())
        };
        assert_eq!(args(json!([{"a": null}])), Ok(object(json!({"a": null}))));
        assert_eq!(
            args(json!({})),
            Err("Invalid arguments: expected an array holding one arguments object, got an object.".to_owned())
        );
        assert_eq!(
            args(json!([])),
            Err("Invalid arguments: expected an array holding one arguments object, got 0 elements.".to_owned())
        );
        assert_eq!(
            args(json!([{}, {}])),
            Err("Invalid arguments: expected an array holding one arguments object, got 2 elements.".to_owned())
        );
        assert_eq!(
            args(json!([7])),
            Err("Invalid arguments: the arguments must be an object, got float64.".to_owned())
        );
        assert_eq!(
            args(json!([{"$set": 1}])),
            Err("Invalid arguments: Invalid field name at field \"$set\": field names must not start with `$`, which \
                 is reserved."
                .to_owned())
        );
    }

    #[test]
    fn timestamps_are_little_endian_base64() {
        for (nanos, text) in [(0, "AAAAAAAAAAA="), (1, "AQAAAAAAAAA="), (1_700_000_000_123_456_789, "Fc2FPf6clxc=")] {
            assert_eq!(Timestamp::from_nanos(nanos).encode(), text);
            assert_eq!(Timestamp::decode(text), Ok(Timestamp::from_nanos(nanos)));
        }
        assert_eq!(Timestamp::MAX.encode(), "/////////38=");
        assert_eq!(Timestamp::decode("/////////38="), Ok(Timestamp::MAX));
        assert_eq!(
            Timestamp::decode("AAAAAAAAAIA="),
            Err("9223372036854775808 is past the largest timestamp, 9223372036854775807".to_owned())
        );
        assert!(Timestamp::decode("AAAAAAAAAAA").unwrap_err().starts_with("it is not standard base64 with padding"));
        assert!(Timestamp::decode("AAAAAAAAAA-_").is_err());
    }

    #[test]
    #[should_panic(expected = "timestamps are at most i64::MAX nanoseconds")]
    fn timestamps_past_the_maximum_are_a_bug() {
        Timestamp::from_nanos(Timestamp::MAX.nanos() + 1);
    }

    #[test]
    fn session_ids_are_hyphenated_uuids() {
        let id = SessionId::parse("1F0E2C9A-4B3D-4C5E-8F7A-9B0C1D2E3F40").unwrap();
        assert_eq!(id.to_string(), SESSION);
        assert_eq!(SessionId::parse(SESSION), Some(id));
        for bad in [
            "1f0e2c9a4b3d4c5e8f7a9b0c1d2e3f40",
            "1f0e2c9a-4b3d-4c5e-8f7a-9b0c1d2e3f4",
            "1f0e2c9a-4b3d-4c5e-8f7a-9b0c1d2e3f4g",
            "",
            "{1f0e2c9a-4b3d-4c5e-8f7a-9b0c1d2e3f40}",
            "+f0e2c9a-4b3d-4c5e-8f7a-9b0c1d2e3f40",
        ] {
            assert_eq!(SessionId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn udf_paths_are_canonicalized_and_checked() {
        for (text, module, function) in [
            ("messages:list", "messages", "list"),
            ("messages", "messages", "default"),
            ("messages.js:list", "messages", "list"),
            ("dir/sub_2/file.v2:_private", "dir/sub_2/file.v2", "_private"),
        ] {
            let path = UdfPath::parse(text).unwrap();
            assert_eq!((path.module(), path.function()), (module, function), "{text}");
            assert_eq!(path.to_string(), format!("{module}:{function}"));
        }
        let segment = "s".repeat(MAX_IDENTIFIER_LEN);
        assert!(UdfPath::parse(&format!("{segment}:f")).is_ok());
        let too_long = format!("{segment}s:f");
        assert!(UdfPath::parse(&too_long).unwrap_err().contains("segments must be 1 to 64"));
        for bad in
            ["", ":list", "/abs:list", "a//b:f", "a/:f", "../x:f", "a/./b:f", "a b:f", "a:b:c", "a:", "a:1f", "a:__"]
        {
            assert!(UdfPath::parse(bad).is_err(), "{bad}");
        }
    }

    fn changed(
        query_id: u32,
        result: Result<Value, FunctionError>,
        log_lines: Vec<String>,
        journal: Option<String>,
    ) -> StateModification {
        let outcome = Arc::new(SharedOutcome::new(result, log_lines, journal));
        StateModification::QueryChanged { query_id: QueryId(query_id), outcome }
    }

    #[test]
    fn one_outcome_serves_every_client_with_its_own_ids_and_versions() {
        let outcome = Arc::new(SharedOutcome::new(Ok(Value::from("shared")), vec!["[LOG] 'x'".to_owned()], None));
        for (query_id, nanos) in [(0, 1), (7, 2)] {
            let version = StateVersion { query_set: query_id, identity: 0, ts: Timestamp::from_nanos(nanos) };
            let transition = ServerMessage::Transition(Transition {
                start_version: StateVersion::default(),
                end_version: version,
                modifications: vec![StateModification::QueryChanged {
                    query_id: QueryId(query_id),
                    outcome: Arc::clone(&outcome),
                }],
                client_clock_skew: None,
                server_ts: None,
            });
            let text = transition.to_text();
            assert_eq!(
                serde_json::from_str::<Json>(&text).unwrap(),
                json!({
                    "type": "Transition",
                    "startVersion": {"querySet": 0, "identity": 0, "ts": Timestamp::default().encode()},
                    "endVersion": {"querySet": query_id, "identity": 0, "ts": Timestamp::from_nanos(nanos).encode()},
                    "modifications": [{"type": "QueryUpdated", "queryId": query_id, "value": "shared",
                                       "logLines": ["[LOG] 'x'"], "journal": null}],
                }),
                "{text}"
            );
        }
    }

    #[test]
    fn server_messages_as_the_clients_expect_them() {
        let version =
            |query_set, identity, nanos| StateVersion { query_set, identity, ts: Timestamp::from_nanos(nanos) };
        let transition = ServerMessage::Transition(Transition {
            start_version: version(0, 0, 0),
            end_version: version(1, 1, 1_700_000_000_123_456_789),
            modifications: vec![
                changed(
                    0,
                    Ok(Value::Array(vec![Value::Int64(10), Value::Float64(1.5)])),
                    vec!["[LOG] 'listing'".to_owned()],
                    None,
                ),
                changed(
                    2,
                    Err(FunctionError { message: "Uncaught Error: nope".to_owned(), data: None }),
                    vec![],
                    Some("j".to_owned()),
                ),
                changed(
                    3,
                    Err(FunctionError { message: "ConvexError".to_owned(), data: Some(Value::Null) }),
                    vec![],
                    None,
                ),
                StateModification::QueryRemoved { query_id: QueryId(4) },
            ],
            client_clock_skew: Some(-12),
            server_ts: Some(Timestamp::from_nanos(1_700_000_000_200_000_000)),
        });
        assert_eq!(
            transition.to_json(),
            json!({
                "type": "Transition",
                "startVersion": {"querySet": 0, "identity": 0, "ts": "AAAAAAAAAAA="},
                "endVersion": {"querySet": 1, "identity": 1, "ts": "Fc2FPf6clxc="},
                "modifications": [
                    {"type": "QueryUpdated", "queryId": 0, "value": [{"$integer": "CgAAAAAAAAA="}, 1.5],
                     "logLines": ["[LOG] 'listing'"], "journal": null},
                    {"type": "QueryFailed", "queryId": 2, "errorMessage": "Uncaught Error: nope", "logLines": [],
                     "journal": "j"},
                    {"type": "QueryFailed", "queryId": 3, "errorMessage": "ConvexError", "logLines": [],
                     "journal": null, "errorData": null},
                    {"type": "QueryRemoved", "queryId": 4},
                ],
                "clientClockSkew": -12,
                "serverTs": 1_700_000_000_200_000_000u64,
            })
        );
        let bare = ServerMessage::Transition(Transition {
            start_version: version(1, 1, 5),
            end_version: version(1, 1, 5),
            modifications: vec![],
            client_clock_skew: None,
            server_ts: None,
        });
        // Optional fields are left out. Compared as JSON, not text: key order is serde_json's, and a
        // dependency's `preserve_order` (the `convex` crate's, in the workspace's test builds) changes it.
        let version_5 = json!({"querySet": 1, "identity": 1, "ts": "BQAAAAAAAAA="});
        assert_eq!(
            serde_json::from_str::<Json>(&bare.to_text()).unwrap(),
            json!({"type": "Transition", "startVersion": version_5, "endVersion": version_5, "modifications": []})
        );

        let mutation_ok = ServerMessage::MutationResponse {
            request_id: RequestId(3),
            result: Ok(MutationSuccess { value: Value::from("id1"), ts: Timestamp::from_nanos(1) }),
            log_lines: vec![],
        };
        assert_eq!(
            mutation_ok.to_json(),
            json!({"type": "MutationResponse", "requestId": 3, "success": true, "result": "id1", "ts": "AQAAAAAAAAA=",
                   "logLines": []})
        );
        let mutation_failed = ServerMessage::MutationResponse {
            request_id: RequestId(4),
            result: Err(FunctionError {
                message: "Uncaught ConvexError: taken".to_owned(),
                data: Some(Value::from("taken")),
            }),
            log_lines: vec!["[ERROR] x".to_owned()],
        };
        assert_eq!(
            mutation_failed.to_json(),
            json!({"type": "MutationResponse", "requestId": 4, "success": false,
                   "result": "Uncaught ConvexError: taken",
                   "errorData": "taken", "logLines": ["[ERROR] x"]})
        );
        let action_ok =
            ServerMessage::ActionResponse { request_id: RequestId(5), result: Ok(Value::Null), log_lines: vec![] };
        assert_eq!(
            action_ok.to_json(),
            json!({"type": "ActionResponse", "requestId": 5, "success": true, "result": null, "logLines": []})
        );
        let action_failed = ServerMessage::ActionResponse {
            request_id: RequestId(6),
            result: Err(FunctionError { message: "boom".to_owned(), data: None }),
            log_lines: vec![],
        };
        assert_eq!(
            action_failed.to_json(),
            json!({"type": "ActionResponse", "requestId": 6, "success": false, "result": "boom", "logLines": []})
        );
        let auth = ServerMessage::AuthError {
            error: "Token expired".to_owned(),
            base_version: 2,
            auth_update_attempted: false,
        };
        assert_eq!(
            auth.to_json(),
            json!({"type": "AuthError", "error": "Token expired", "baseVersion": 2, "authUpdateAttempted": false})
        );
        assert_eq!(
            ServerMessage::FatalError { error: "bad".to_owned() }.to_json(),
            json!({"type": "FatalError", "error": "bad"})
        );
        assert_eq!(ServerMessage::Ping.to_text(), r#"{"type":"Ping"}"#);
    }
}
