//! The per-connection protocol state machine.
//!
//! A [`Connection`] holds what the protocol says about one socket: the query set and its version,
//! the identity version, the version the client's view is at, the mutation queue and the actions
//! in flight. Its inputs are client messages and the shell's reports (an identity checked, a call
//! finished, query results computed); its outputs are [`Effect`]s and Transitions. The rules, with
//! where the clients and Convex's server show them:
//!
//! - Every Transition starts where the previous one ended (`RemoteQuerySet.transition` in the
//!   JavaScript client throws otherwise; the Rust client reconnects).
//! - `ModifyQuerySet.baseVersion` must be the previous `newVersion`; Convex answers a mismatch
//!   with a `FatalError`. Its other query set and identity inconsistencies close with 1011.
//! - A Transition confirms every accepted `Authenticate` by raising the identity version, even
//!   when no result changed: the JavaScript client waits for that before it trusts a token.
//! - All results in one Transition are as of its timestamp: Convex picks the timestamp first,
//!   then reruns every query a commit up to it invalidated.
//! - A Transition carries only changed results (Convex hashes each result and its log lines).
//! - One mutation runs at a time per connection, answered in order; actions run concurrently.
//!   A successful mutation resolves in the JavaScript client only when a Transition reaches its
//!   timestamp after the response, so one must follow every success.
//! - A reconnecting client opens a new socket (a new `Connection`) and sends `Connect`, then
//!   `Authenticate` from version 0 if it has a token, then `ModifyQuerySet` 0 -> 1 re-adding every
//!   query with its journal, then its unanswered mutations again (the JavaScript client replays
//!   even answered ones whose Transition it did not see). The shell deduplicates replays by
//!   session and request id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem;
use std::sync::Arc;
use std::time::Duration;

use livebase_value::{Object, Value};

use crate::messages::{
    AddQuery, AuthToken, ClientMessage, Connect, FunctionCall, FunctionError, InvalidArgs, MutationSuccess, ParseError,
    QueryArgs, QueryId, QuerySetModification, RequestId, ResultDigest, ServerMessage, SessionId, SharedOutcome,
    StateModification, StateVersion, Timestamp, Transition, UdfPath, parse_client_message,
};

/// The most queries one connection may subscribe to. Each costs a read set the store checks every
/// commit against, and a rerun when the identity changes. Apps subscribe to tens, or hundreds
/// with long paginated lists (one query per page); past this a client is likely leaking
/// subscriptions.
pub const MAX_QUERIES_PER_CONNECTION: usize = 4_096;

/// The most mutations one connection may have waiting or running, as in Convex, which closes
/// the connection with 1013 `TooManyConcurrentMutations` past it.
pub const MAX_PENDING_MUTATIONS: usize = 1_000;

/// The most actions one connection may have running, as in Convex.
pub const MAX_INFLIGHT_ACTIONS: usize = 1_000;

/// How long a connection may go without a message to the client before it is sent a `Ping`, as
/// in Convex. Well inside the clients' patience: the Rust client reconnects after 30 s of
/// silence (checked every 5 s), the JavaScript client after 60 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// The longest reason a WebSocket close frame may carry, in bytes (RFC 6455, section 5.5.1).
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// One subscription: a query id for as long as the query stays in the query set. If the client
/// removes the query and adds the id again, that is another subscription, so a result computed
/// for the first can never be taken for the second's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId {
    query_id: QueryId,
    serial: u64,
}

impl SubscriptionId {
    pub fn query_id(self) -> QueryId {
        self.query_id
    }
}

/// A query to run for a Transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub udf_path: UdfPath,
    pub args: QueryArgs,
    /// The journal of the query's last result, which the run must continue from.
    pub journal: Option<String>,
    pub component_path: Option<String>,
}

/// A query's result, computed by the shell for a [`TransitionPlan`]. Subscriptions that got the
/// same run share its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub subscription: SubscriptionId,
    pub outcome: Arc<SharedOutcome>,
}

/// What the shell computes for the next Transition, from [`Connection::begin_transition`].
#[derive(Debug)]
pub struct TransitionPlan {
    ts: Timestamp,
    run: Vec<Subscription>,
    /// The versions as of planning. Results are computed with the identity current then, so the
    /// Transition must carry these even if the client moved on meanwhile.
    query_set: u32,
    identity: u32,
    /// Results the machine knows without running anything: queries whose arguments are invalid.
    known: Vec<QueryResult>,
}

impl TransitionPlan {
    /// The snapshot every result must be computed at: the Transition's timestamp.
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// The queries to run: those added since the last plan, those the shell reported
    /// invalidated ([`Connection::invalidate`]), all of them after an identity change, and any
    /// that a previous plan got no result for.
    pub fn run(&self) -> &[Subscription] {
        &self.run
    }
}

/// A mutation or action to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub request_id: RequestId,
    pub udf_path: UdfPath,
    pub args: Object,
    pub component_path: Option<String>,
}

/// A WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// Code 1000, after a `FatalError` or `AuthError` that says what went wrong. (Convex sends a
    /// close frame without a code here, which both clients treat like 1000.)
    Normal,
    /// Code 1011: the server failed, or the client's state is inconsistent in a way Convex does
    /// not blame on the client. The clients reconnect and start over.
    InternalError,
    /// Code 1013: the connection is overloaded. The clients reconnect after a backoff.
    TryAgainLater,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::InternalError => 1011,
            CloseCode::TryAgainLater => 1013,
        }
    }
}

/// An instruction to the shell, to carry out in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ServerMessage),
    /// Close the socket. The connection takes no more input: every later call returns nothing.
    Close {
        code: CloseCode,
        reason: &'static str,
    },
    /// The client said hello. The shell must fail the connection ([`Failure::Internal`]) if
    /// `max_observed_timestamp` is newer than the store's latest commit (the client saw writes
    /// this server does not have), and may compute the clock skew from `client_ts`.
    Connected(Connect),
    /// Check the token, then report with [`Connection::authenticated`] before feeding the next
    /// client message, so that later messages run with the identity the client asked for.
    Authenticate(AuthToken),
    /// Run the mutation, exactly once per `(session_id, request_id)`: a replay after a reconnect
    /// must get the original result and timestamp. Report with [`Connection::mutation_completed`].
    RunMutation {
        session_id: SessionId,
        call: Call,
    },
    /// Run the action and report with [`Connection::action_completed`].
    RunAction(Call),
    /// The subscription left the query set: stop tracking its read set (if it ever ran).
    Unsubscribe(SubscriptionId),
    /// Client telemetry, to log.
    ClientEvent {
        event_type: String,
        event: serde_json::Value,
    },
}

/// A client broke the protocol. The connection is closed; [`ProtocolError::answer`] says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("The first message on a connection must be Connect, not {message_type}.")]
    NotConnected { message_type: &'static str },
    #[error("Connect was sent twice on one connection.")]
    AlreadyConnected,
    #[error("ModifyQuerySet's baseVersion {base_version} does not match the current query set version {current}.")]
    QuerySetBaseMismatch { base_version: u32, current: u32 },
    #[error("ModifyQuerySet's newVersion {new_version} is not greater than its baseVersion {base_version}.")]
    QuerySetVersionNotIncreasing { base_version: u32, new_version: u32 },
    #[error("ModifyQuerySet adds query {0}, which is already in the query set.")]
    DuplicateQueryId(QueryId),
    #[error("ModifyQuerySet removes query {0}, which is not in the query set.")]
    UnknownQueryId(QueryId),
    #[error(
        "ModifyQuerySet would subscribe to more than {MAX_QUERIES_PER_CONNECTION} queries, the most one \
         connection may subscribe to."
    )]
    TooManyQueries,
    #[error("Authenticate's baseVersion {base_version} does not match the current identity version {current}.")]
    IdentityBaseMismatch { base_version: u32, current: u32 },
    #[error("Authenticate would raise the identity version past {}.", u32::MAX)]
    IdentityVersionExhausted,
    #[error("Request {0} is already in flight on this connection.")]
    DuplicateRequestId(RequestId),
    #[error("Too many concurrent mutations: at most {MAX_PENDING_MUTATIONS} may be pending on one connection.")]
    TooManyPendingMutations,
    #[error("Too many concurrent actions: at most {MAX_INFLIGHT_ACTIONS} may run on one connection.")]
    TooManyInflightActions,
}

impl ProtocolError {
    /// What the client is told: a `FatalError` for what is deterministically its fault, as
    /// Convex does; a 1011 close for inconsistencies that Convex lets the client recover from
    /// by reconnecting; a 1013 close when it is over a concurrency limit.
    pub fn answer(&self) -> Vec<Effect> {
        let fatal =
            |reason| closing(Some(ServerMessage::FatalError { error: self.to_string() }), CloseCode::Normal, reason);
        match self {
            ProtocolError::Parse(_) => fatal("WSMessageInvalidJson"),
            ProtocolError::NotConnected { .. } => fatal("NotConnected"),
            ProtocolError::AlreadyConnected => fatal("AlreadyConnected"),
            ProtocolError::QuerySetBaseMismatch { .. } => fatal("BaseVersionMismatch"),
            ProtocolError::TooManyQueries => fatal("TooManyQueries"),
            ProtocolError::DuplicateRequestId(_) => fatal("DuplicateRequestId"),
            ProtocolError::QuerySetVersionNotIncreasing { .. }
            | ProtocolError::DuplicateQueryId(_)
            | ProtocolError::UnknownQueryId(_)
            | ProtocolError::IdentityBaseMismatch { .. }
            | ProtocolError::IdentityVersionExhausted => closing(None, CloseCode::InternalError, INTERNAL_SERVER_ERROR),
            ProtocolError::TooManyPendingMutations => {
                closing(None, CloseCode::TryAgainLater, "TooManyConcurrentMutations")
            }
            ProtocolError::TooManyInflightActions => {
                closing(None, CloseCode::TryAgainLater, "TooManyConcurrentActions")
            }
        }
    }
}

/// Why the shell ends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The current identity's token expired; found when running a function with it.
    TokenExpired { message: String },
    /// The server cannot serve the connection: the store failed, or the client saw writes this
    /// server does not have.
    Internal,
}

/// The close reason Convex gives for failures of its own, which the JavaScript client recognizes
/// (and backs off from for 1 s).
const INTERNAL_SERVER_ERROR: &str = "InternalServerError";

struct Query {
    serial: u64,
    udf_path: UdfPath,
    args: Result<QueryArgs, InvalidArgs>,
    journal: Option<String>,
    component_path: Option<String>,
    /// The result last reported to the client, if any.
    sent: Option<ResultDigest>,
}

/// The protocol state of one client connection. Pure: the shell owns the socket and the clock.
#[derive(Default)]
pub struct Connection {
    session_id: Option<SessionId>,
    closed: bool,
    /// Where the last Transition left the client, and so where the next one starts.
    sent: StateVersion,
    /// The last `newVersion` the client sent.
    query_set_version: u32,
    /// How many `Authenticate`s the server accepted.
    identity_version: u32,
    /// The base version of the `Authenticate` the shell is checking.
    authenticating: Option<u32>,
    queries: BTreeMap<QueryId, Query>,
    next_serial: u64,
    /// Subscriptions whose result must be computed for the next Transition.
    stale: BTreeSet<SubscriptionId>,
    /// Removed queries whose removal no Transition has reported yet, with the query set version
    /// that removed them. Only queries the client got a result for are listed, which bounds the
    /// list: they were live when the last plan began, or got their result when it completed.
    removed: Vec<(u32, QueryId)>,
    /// Whether a [`TransitionPlan`] is out; there is one at a time.
    planning: bool,
    running_mutation: Option<RequestId>,
    queued_mutations: VecDeque<FunctionCall>,
    actions: BTreeSet<RequestId>,
    /// The newest timestamp of a mutation answered since a Transition last reached it: a
    /// successful mutation's commit, or for one that failed with error data the last Transition's.
    unconfirmed_mutation_ts: Option<Timestamp>,
}

impl Connection {
    pub fn new() -> Connection {
        Connection::default()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Parses and handles one text frame from the client, answering a broken message with the
    /// effects that close the connection.
    pub fn receive_text(&mut self, text: &str) -> Vec<Effect> {
        if self.closed {
            return Vec::new();
        }
        match parse_client_message(text).map_err(ProtocolError::from).and_then(|message| self.receive(message)) {
            Ok(effects) => effects,
            Err(error) => {
                self.closed = true;
                error.answer()
            }
        }
    }

    /// Handles one client message. On an error the connection is closed, and the client must be
    /// told with [`ProtocolError::answer`].
    pub fn receive(&mut self, message: ClientMessage) -> Result<Vec<Effect>, ProtocolError> {
        if self.closed {
            return Ok(Vec::new());
        }
        assert!(self.authenticating.is_none(), "the shell must report on Authenticate before the next message");
        let effects = self.handle(message);
        self.closed = effects.is_err();
        effects
    }

    fn handle(&mut self, message: ClientMessage) -> Result<Vec<Effect>, ProtocolError> {
        if self.session_id.is_none() && !matches!(message, ClientMessage::Connect(_)) {
            return Err(ProtocolError::NotConnected { message_type: message.message_type() });
        }
        match message {
            ClientMessage::Connect(connect) => {
                if self.session_id.is_some() {
                    return Err(ProtocolError::AlreadyConnected);
                }
                self.session_id = Some(connect.session_id);
                Ok(vec![Effect::Connected(connect)])
            }
            ClientMessage::ModifyQuerySet { base_version, new_version, modifications } => {
                self.modify_query_set(base_version, new_version, modifications)
            }
            ClientMessage::Mutation(call) => self.enqueue_mutation(call),
            ClientMessage::Action(call) => self.start_action(call),
            ClientMessage::Authenticate { base_version, token } => {
                if base_version != self.identity_version {
                    return Err(ProtocolError::IdentityBaseMismatch { base_version, current: self.identity_version });
                }
                if base_version == u32::MAX {
                    return Err(ProtocolError::IdentityVersionExhausted);
                }
                self.authenticating = Some(base_version);
                Ok(vec![Effect::Authenticate(token)])
            }
            ClientMessage::Event { event_type, event } => Ok(vec![Effect::ClientEvent { event_type, event }]),
        }
    }

    fn modify_query_set(
        &mut self,
        base_version: u32,
        new_version: u32,
        modifications: Vec<QuerySetModification>,
    ) -> Result<Vec<Effect>, ProtocolError> {
        if base_version != self.query_set_version {
            return Err(ProtocolError::QuerySetBaseMismatch { base_version, current: self.query_set_version });
        }
        if new_version <= base_version {
            return Err(ProtocolError::QuerySetVersionNotIncreasing { base_version, new_version });
        }
        let mut effects = Vec::new();
        for modification in modifications {
            match modification {
                QuerySetModification::Add(AddQuery { query_id, udf_path, args, journal, component_path }) => {
                    if self.queries.contains_key(&query_id) {
                        return Err(ProtocolError::DuplicateQueryId(query_id));
                    }
                    if self.queries.len() == MAX_QUERIES_PER_CONNECTION {
                        return Err(ProtocolError::TooManyQueries);
                    }
                    let serial = self.next_serial;
                    self.next_serial += 1;
                    self.stale.insert(SubscriptionId { query_id, serial });
                    let args = args.map(QueryArgs::new);
                    let query = Query { serial, udf_path, args, journal, component_path, sent: None };
                    self.queries.insert(query_id, query);
                }
                QuerySetModification::Remove { query_id } => {
                    let query = self.queries.remove(&query_id).ok_or(ProtocolError::UnknownQueryId(query_id))?;
                    let id = SubscriptionId { query_id, serial: query.serial };
                    self.stale.remove(&id);
                    // The client forgets a query's result when it removes the query; the server
                    // confirms only for queries the client got a result for.
                    if query.sent.is_some() {
                        self.removed.push((new_version, query_id));
                        assert!(self.removed.len() <= 2 * MAX_QUERIES_PER_CONNECTION);
                    }
                    effects.push(Effect::Unsubscribe(id));
                }
            }
        }
        assert!(self.queries.len() <= MAX_QUERIES_PER_CONNECTION);
        self.query_set_version = new_version;
        Ok(effects)
    }

    fn check_request_id(&self, request_id: RequestId) -> Result<(), ProtocolError> {
        let in_flight = self.running_mutation == Some(request_id)
            || self.queued_mutations.iter().any(|call| call.request_id == request_id)
            || self.actions.contains(&request_id);
        if in_flight { Err(ProtocolError::DuplicateRequestId(request_id)) } else { Ok(()) }
    }

    fn enqueue_mutation(&mut self, call: FunctionCall) -> Result<Vec<Effect>, ProtocolError> {
        self.check_request_id(call.request_id)?;
        let pending = self.queued_mutations.len() + usize::from(self.running_mutation.is_some());
        if pending == MAX_PENDING_MUTATIONS {
            return Err(ProtocolError::TooManyPendingMutations);
        }
        self.queued_mutations.push_back(call);
        let mut effects = Vec::new();
        self.start_next_mutation(&mut effects);
        Ok(effects)
    }

    /// Starts the next queued mutation if none is running, first answering (in order) any whose
    /// arguments are invalid.
    fn start_next_mutation(&mut self, effects: &mut Vec<Effect>) {
        while self.running_mutation.is_none()
            && let Some(FunctionCall { request_id, udf_path, args, component_path }) = self.queued_mutations.pop_front()
        {
            match args {
                Ok(args) => {
                    let session_id = self.session_id.expect("mutations are accepted only after Connect");
                    self.running_mutation = Some(request_id);
                    let call = Call { request_id, udf_path, args, component_path };
                    effects.push(Effect::RunMutation { session_id, call });
                }
                Err(invalid) => effects.push(Effect::Send(ServerMessage::MutationResponse {
                    request_id,
                    result: Err(FunctionError { message: invalid.to_string(), data: None }),
                    log_lines: Vec::new(),
                })),
            }
        }
    }

    fn start_action(&mut self, call: FunctionCall) -> Result<Vec<Effect>, ProtocolError> {
        self.check_request_id(call.request_id)?;
        let FunctionCall { request_id, udf_path, args, component_path } = call;
        match args {
            Ok(args) => {
                if self.actions.len() == MAX_INFLIGHT_ACTIONS {
                    return Err(ProtocolError::TooManyInflightActions);
                }
                self.actions.insert(request_id);
                Ok(vec![Effect::RunAction(Call { request_id, udf_path, args, component_path })])
            }
            Err(invalid) => Ok(vec![Effect::Send(ServerMessage::ActionResponse {
                request_id,
                result: Err(FunctionError { message: invalid.to_string(), data: None }),
                log_lines: Vec::new(),
            })]),
        }
    }

    /// Reports the check of the token from the last [`Effect::Authenticate`]: `Err` holds why it
    /// was rejected, for the client. Once accepted, the new identity applies to every later call,
    /// and every query is rerun with it for the next Transition, which confirms it.
    pub fn authenticated(&mut self, outcome: Result<(), String>) -> Vec<Effect> {
        let base_version = self.authenticating.take().expect("authenticated() answers an Effect::Authenticate");
        if self.closed {
            return Vec::new();
        }
        assert_eq!(base_version, self.identity_version);
        match outcome {
            Ok(()) => {
                self.identity_version = base_version + 1;
                let all =
                    self.queries.iter().map(|(&query_id, query)| SubscriptionId { query_id, serial: query.serial });
                self.stale.extend(all);
                Vec::new()
            }
            // `base_version` is the version the token would have replaced: the JavaScript client
            // acts on the error only if it is about its latest token. (Convex sends the identity
            // version of its last Transition, which is the same unless the client sent
            // Authenticates faster than Transitions came back.)
            Err(error) => self.close(
                Some(ServerMessage::AuthError { error, base_version, auth_update_attempted: true }),
                CloseCode::Normal,
                "AuthUpdateFailed",
            ),
        }
    }

    /// Reports the end of the running mutation from [`Effect::RunMutation`], and starts the next.
    pub fn mutation_completed(
        &mut self,
        request_id: RequestId,
        result: Result<MutationSuccess, FunctionError>,
        log_lines: Vec<String>,
    ) -> Vec<Effect> {
        if self.closed {
            return Vec::new();
        }
        assert_eq!(self.running_mutation, Some(request_id), "only the running mutation can complete");
        self.running_mutation = None;
        let confirm_at = match &result {
            Ok(success) => Some(success.ts),
            // The Rust client (and the Python client, which wraps it) settles a mutation that
            // failed with data only at the next Transition, whatever its timestamp.
            Err(error) if error.data.is_some() => Some(self.sent.ts),
            Err(_) => None,
        };
        self.unconfirmed_mutation_ts = self.unconfirmed_mutation_ts.max(confirm_at);
        let mut effects = vec![Effect::Send(ServerMessage::MutationResponse { request_id, result, log_lines })];
        self.start_next_mutation(&mut effects);
        effects
    }

    /// Reports the end of an action from [`Effect::RunAction`].
    pub fn action_completed(
        &mut self,
        request_id: RequestId,
        result: Result<Value, FunctionError>,
        log_lines: Vec<String>,
    ) -> Vec<Effect> {
        if self.closed {
            return Vec::new();
        }
        assert!(self.actions.remove(&request_id), "only a running action can complete");
        vec![Effect::Send(ServerMessage::ActionResponse { request_id, result, log_lines })]
    }

    /// Reports that a commit may have changed the subscription's result. Ignored if the query
    /// has left the query set.
    pub fn invalidate(&mut self, subscription: SubscriptionId) {
        if self.is_live(subscription) {
            self.stale.insert(subscription);
        }
    }

    /// Ends the connection for a reason found by the shell.
    pub fn fail(&mut self, failure: Failure) -> Vec<Effect> {
        if self.closed {
            return Vec::new();
        }
        match failure {
            Failure::TokenExpired { message } => self.close(
                Some(ServerMessage::AuthError {
                    error: message,
                    base_version: self.identity_version,
                    auth_update_attempted: false,
                }),
                CloseCode::Normal,
                "TokenExpired",
            ),
            Failure::Internal => self.close(None, CloseCode::InternalError, INTERNAL_SERVER_ERROR),
        }
    }

    /// A `Ping` if the client has heard nothing for `idle`, at least `interval` (normally
    /// [`HEARTBEAT_INTERVAL`]), so that it does not give up on the connection.
    pub fn heartbeat(&self, idle: Duration, interval: Duration) -> Option<ServerMessage> {
        (!self.closed && idle >= interval).then_some(ServerMessage::Ping)
    }

    /// Whether the client is owed a Transition: its query set or identity changed, a query's
    /// result may have, or a mutation it was answered awaits one. False while a plan is out.
    pub fn needs_transition(&self) -> bool {
        !self.closed
            && !self.planning
            && (self.query_set_version != self.sent.query_set
                || self.identity_version != self.sent.identity
                || !self.stale.is_empty()
                || self.unconfirmed_mutation_ts.is_some())
    }

    /// The earliest timestamp the next Transition may have: the previous Transition's, and
    /// that of every mutation answered since, so that the Transition shows the client its
    /// writes.
    pub fn min_transition_ts(&self) -> Timestamp {
        self.sent.ts.max(self.unconfirmed_mutation_ts.unwrap_or(Timestamp::ZERO))
    }

    /// Plans the next Transition, at `ts`. Every query result in it will be as of `ts`, so
    /// before planning the shell must have reported ([`Connection::invalidate`]) every query
    /// that a commit up to `ts` changed; `ts` must be at least [`Connection::min_transition_ts`].
    /// The shell then runs `plan.run()` at `ts` with the identity current now, and hands the
    /// results to [`Connection::transition`]. One plan at a time.
    pub fn begin_transition(&mut self, ts: Timestamp) -> TransitionPlan {
        assert!(!self.closed, "a closed connection needs no Transition");
        assert!(!self.planning, "one TransitionPlan at a time");
        let min_ts = self.min_transition_ts();
        assert!(ts >= min_ts, "the Transition's timestamp {ts} is before its minimum {min_ts}");
        self.planning = true;
        let mut run = Vec::new();
        let mut known = Vec::new();
        for id in mem::take(&mut self.stale) {
            let query = &self.queries[&id.query_id];
            assert_eq!(query.serial, id.serial, "removed subscriptions leave `stale`");
            match &query.args {
                Ok(args) => run.push(Subscription {
                    id,
                    udf_path: query.udf_path.clone(),
                    args: args.clone(),
                    journal: query.journal.clone(),
                    component_path: query.component_path.clone(),
                }),
                Err(invalid) => {
                    let error = FunctionError { message: invalid.to_string(), data: None };
                    let outcome = Arc::new(SharedOutcome::new(Err(error), Vec::new(), None));
                    known.push(QueryResult { subscription: id, outcome });
                }
            }
        }
        TransitionPlan { ts, run, query_set: self.query_set_version, identity: self.identity_version, known }
    }

    /// The Transition for `plan`, with `results` of its queries. Unchanged results and results
    /// of queries removed meanwhile are left out; queries of the plan without a result go into
    /// the next plan. `None` if the connection closed meanwhile.
    pub fn transition(&mut self, plan: TransitionPlan, results: Vec<QueryResult>) -> Option<ServerMessage> {
        assert!(self.planning, "a Transition answers a TransitionPlan");
        self.planning = false;
        if self.closed {
            return None;
        }
        let TransitionPlan { ts, run, query_set, identity, known } = plan;
        let end_version = StateVersion { query_set, identity, ts };
        assert!(query_set >= self.sent.query_set && identity >= self.sent.identity && ts >= self.sent.ts);

        let mut modifications = BTreeMap::new();
        self.removed.retain(|&(version, query_id)| {
            let included = version <= query_set;
            if included {
                modifications.insert(query_id, StateModification::QueryRemoved { query_id });
            }
            !included
        });
        let mut unanswered: BTreeSet<SubscriptionId> = run
            .iter()
            .map(|subscription| subscription.id)
            .chain(known.iter().map(|result| result.subscription))
            .collect();
        for QueryResult { subscription, outcome } in results.into_iter().chain(known) {
            assert!(unanswered.remove(&subscription), "one result per subscription of the plan");
            let Some(query) =
                self.queries.get_mut(&subscription.query_id).filter(|query| query.serial == subscription.serial)
            else {
                continue;
            };
            query.journal = outcome.journal().map(str::to_owned);
            if query.sent.as_ref() == Some(outcome.digest()) {
                continue;
            }
            query.sent = Some(*outcome.digest());
            let query_id = subscription.query_id;
            // Replaces the QueryRemoved of an earlier query with the same id, as in Convex.
            modifications.insert(query_id, StateModification::QueryChanged { query_id, outcome });
        }
        for subscription in unanswered {
            self.invalidate(subscription);
        }

        if self.unconfirmed_mutation_ts.is_some_and(|mutation_ts| mutation_ts <= ts) {
            self.unconfirmed_mutation_ts = None;
        }
        let transition = Transition {
            start_version: self.sent,
            end_version,
            modifications: modifications.into_values().collect(),
            client_clock_skew: None,
            server_ts: None,
        };
        self.sent = end_version;
        Some(ServerMessage::Transition(transition))
    }

    fn is_live(&self, subscription: SubscriptionId) -> bool {
        self.queries.get(&subscription.query_id).is_some_and(|query| query.serial == subscription.serial)
    }

    fn close(&mut self, message: Option<ServerMessage>, code: CloseCode, reason: &'static str) -> Vec<Effect> {
        self.closed = true;
        closing(message, code, reason)
    }
}

fn closing(message: Option<ServerMessage>, code: CloseCode, reason: &'static str) -> Vec<Effect> {
    assert!(reason.len() <= MAX_CLOSE_REASON_BYTES, "close reason `{reason}` is too long for a close frame");
    message.map(Effect::Send).into_iter().chain([Effect::Close { code, reason }]).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::*;

    const SESSION: &str = "0b7c4f02-39a4-4be1-9b3c-5d7e8f901a2b";

    fn ts(nanos: u64) -> Timestamp {
        Timestamp::from_nanos(nanos)
    }

    fn send(connection: &mut Connection, message: Json) -> Vec<Effect> {
        connection.receive_text(&message.to_string())
    }

    fn connected() -> Connection {
        let mut connection = Connection::new();
        let effects = send(
            &mut connection,
            json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0, "lastCloseReason": "InitialConnect",
                   "clientTs": 0}),
        );
        assert!(matches!(effects.as_slice(), [Effect::Connected(_)]));
        connection
    }

    fn add(query_id: u32, udf_path: &str) -> Json {
        json!({"type": "Add", "queryId": query_id, "udfPath": udf_path, "args": [{"q": query_id}]})
    }

    fn remove(query_id: u32) -> Json {
        json!({"type": "Remove", "queryId": query_id})
    }

    fn modify(base_version: u32, new_version: u32, modifications: Vec<Json>) -> Json {
        json!({"type": "ModifyQuerySet", "baseVersion": base_version, "newVersion": new_version,
               "modifications": modifications})
    }

    fn mutation(request_id: u32, args: Json) -> Json {
        json!({"type": "Mutation", "requestId": request_id, "udfPath": "m:write", "args": args})
    }

    fn action(request_id: u32, args: Json) -> Json {
        json!({"type": "Action", "requestId": request_id, "udfPath": "a:act", "args": args})
    }

    fn authenticate(base_version: u32) -> Json {
        json!({"type": "Authenticate", "baseVersion": base_version, "tokenType": "User", "value": "jwt"})
    }

    fn answer(subscription: &Subscription, value: Value) -> QueryResult {
        result_of(subscription, Ok(value), Vec::new(), None)
    }

    fn result_of(
        subscription: &Subscription,
        result: Result<Value, FunctionError>,
        log_lines: Vec<String>,
        journal: Option<String>,
    ) -> QueryResult {
        QueryResult { subscription: subscription.id, outcome: Arc::new(SharedOutcome::new(result, log_lines, journal)) }
    }

    /// Runs a whole plan, answering every query with `result`, and returns the Transition.
    fn transition_with(
        connection: &mut Connection,
        nanos: u64,
        mut result: impl FnMut(&Subscription) -> QueryResult,
    ) -> Transition {
        let plan = connection.begin_transition(ts(nanos));
        let results = plan.run().iter().map(&mut result).collect();
        match connection.transition(plan, results) {
            Some(ServerMessage::Transition(transition)) => transition,
            other => panic!("{other:?}"),
        }
    }

    fn updated(query_id: u32, value: Value) -> StateModification {
        changed(query_id, Ok(value), None)
    }

    fn changed(query_id: u32, result: Result<Value, FunctionError>, journal: Option<String>) -> StateModification {
        let outcome = Arc::new(SharedOutcome::new(result, Vec::new(), journal));
        StateModification::QueryChanged { query_id: QueryId(query_id), outcome }
    }

    fn fatal(error: &str, reason: &'static str) -> Vec<Effect> {
        vec![
            Effect::Send(ServerMessage::FatalError { error: error.to_owned() }),
            Effect::Close { code: CloseCode::Normal, reason },
        ]
    }

    fn internal_error() -> Vec<Effect> {
        vec![Effect::Close { code: CloseCode::InternalError, reason: "InternalServerError" }]
    }

    fn call(request_id: u32, udf_path: &str, args: Json) -> Call {
        let Ok(Value::Object(args)) = livebase_value::from_convex_json(&args) else { panic!() };
        Call {
            request_id: RequestId(request_id),
            udf_path: UdfPath::parse(udf_path).unwrap(),
            args,
            component_path: None,
        }
    }

    fn session() -> SessionId {
        SessionId::parse(SESSION).unwrap()
    }

    fn live(connection: &Connection) -> Vec<SubscriptionId> {
        connection.queries.iter().map(|(&query_id, query)| SubscriptionId { query_id, serial: query.serial }).collect()
    }

    #[test]
    fn connect_comes_first_and_once() {
        let mut connection = Connection::new();
        assert_eq!(
            send(&mut connection, mutation(0, json!([{}]))),
            fatal("The first message on a connection must be Connect, not Mutation.", "NotConnected")
        );
        assert!(connection.is_closed());
        assert_eq!(send(&mut connection, modify(0, 1, vec![])), vec![]);

        let mut connection = connected();
        assert_eq!(
            send(&mut connection, json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0})),
            fatal("Connect was sent twice on one connection.", "AlreadyConnected")
        );
    }

    #[test]
    fn unparsable_messages_are_fatal() {
        let mut connection = connected();
        assert_eq!(
            connection.receive_text("{\"type\": \"Mutation\", \"requestId\": 1}"),
            fatal("Invalid Mutation message: missing field `udfPath`.", "WSMessageInvalidJson")
        );
        assert!(connection.is_closed());
    }

    #[test]
    fn transitions_chain_and_carry_changed_results_only() {
        let mut connection = connected();
        assert!(!connection.needs_transition());
        assert_eq!(send(&mut connection, modify(0, 1, vec![add(0, "q:a"), add(1, "q:b")])), vec![]);
        assert!(connection.needs_transition());

        assert_eq!(connection.min_transition_ts(), Timestamp::ZERO);
        let plan = connection.begin_transition(ts(10));
        assert_eq!(
            plan.run().iter().map(|s| (s.id.query_id(), s.udf_path.to_string())).collect::<Vec<_>>(),
            [(QueryId(0), "q:a".to_owned()), (QueryId(1), "q:b".to_owned())]
        );
        assert_eq!(plan.run()[1].args.decode(), Object::from([("q".to_owned(), Value::Float64(1.0))]));
        assert!(!connection.needs_transition(), "one plan at a time");
        let results = plan.run().iter().map(|s| answer(s, Value::Int64(1))).collect();
        let Some(ServerMessage::Transition(first)) = connection.transition(plan, results) else { panic!() };
        assert_eq!(first.start_version, StateVersion::default());
        assert_eq!(first.end_version, StateVersion { query_set: 1, identity: 0, ts: ts(10) });
        assert_eq!(first.modifications, [updated(0, Value::Int64(1)), updated(1, Value::Int64(1))]);
        assert!(!connection.needs_transition());

        // A commit touched both; only query 1's result changed.
        live(&connection).into_iter().for_each(|id| connection.invalidate(id));
        let second = transition_with(&mut connection, 20, |s| {
            answer(s, Value::Int64(if s.id.query_id() == QueryId(1) { 2 } else { 1 }))
        });
        assert_eq!(second.start_version, first.end_version);
        assert_eq!(second.end_version, StateVersion { query_set: 1, identity: 0, ts: ts(20) });
        assert_eq!(second.modifications, [updated(1, Value::Int64(2))]);

        // Nothing changed: a Transition may still advance the timestamp.
        let third = transition_with(&mut connection, 30, |_| unreachable!());
        assert_eq!(third.start_version, second.end_version);
        assert_eq!(third.end_version.ts, ts(30));
        assert_eq!(third.modifications, []);
    }

    #[test]
    fn log_lines_and_errors_count_as_changes() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a")]));
        let mut id = None;
        transition_with(&mut connection, 1, |s| {
            id = Some(s.id);
            answer(s, Value::Int64(0))
        });
        let id = id.unwrap();
        let outcomes = [
            (Ok(Value::Null), vec![]),
            (Ok(Value::Null), vec!["[LOG] 'x'".to_owned()]),
            (Err(FunctionError { message: "e".to_owned(), data: None }), vec![]),
            (Err(FunctionError { message: "e".to_owned(), data: Some(Value::Null) }), vec![]),
            (Ok(Value::from("e")), vec![]),
        ];
        for (result, log_lines) in outcomes {
            for changed in [true, false] {
                connection.invalidate(id);
                let transition =
                    transition_with(&mut connection, 1, |s| result_of(s, result.clone(), log_lines.clone(), None));
                assert_eq!(transition.modifications.len(), usize::from(changed), "{result:?} {log_lines:?}");
            }
        }
    }

    #[test]
    fn journals_are_kept_and_reused() {
        let mut connection = connected();
        let with_journal = json!({"type": "Add", "queryId": 4, "udfPath": "p:page", "args": [{}], "journal": "j0"});
        send(&mut connection, modify(0, 1, vec![with_journal]));
        let transition = transition_with(&mut connection, 1, |s| {
            assert_eq!(s.journal.as_deref(), Some("j0"));
            result_of(s, Ok(Value::Null), vec![], Some("j1".to_owned()))
        });
        assert_eq!(transition.modifications, [changed(4, Ok(Value::Null), Some("j1".to_owned()))]);
        let id = SubscriptionId { query_id: QueryId(4), serial: 0 };
        connection.invalidate(id);
        let transition = transition_with(&mut connection, 2, |s| {
            assert_eq!(s.journal.as_deref(), Some("j1"));
            result_of(s, Ok(Value::Null), vec![], Some("j2".to_owned()))
        });
        assert_eq!(transition.modifications, []);
        connection.invalidate(id);
        transition_with(&mut connection, 3, |s| {
            assert_eq!(s.journal.as_deref(), Some("j2"), "kept even though the result was not sent");
            answer(s, Value::Null)
        });
    }

    #[test]
    fn query_set_versions_must_chain() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![]));
        assert_eq!(
            send(&mut connection, modify(0, 2, vec![])),
            fatal(
                "ModifyQuerySet's baseVersion 0 does not match the current query set version 1.",
                "BaseVersionMismatch"
            )
        );
        for (message, error) in [
            (modify(0, 0, vec![]), ProtocolError::QuerySetVersionNotIncreasing { base_version: 0, new_version: 0 }),
            (modify(0, 1, vec![add(1, "q:a"), add(1, "q:b")]), ProtocolError::DuplicateQueryId(QueryId(1))),
            (modify(0, 1, vec![remove(1)]), ProtocolError::UnknownQueryId(QueryId(1))),
        ] {
            let mut connection = connected();
            assert_eq!(connection.receive(parse_client_message(&message.to_string()).unwrap()), Err(error.clone()));
            assert_eq!(error.answer(), internal_error(), "{error}");
            assert!(connection.is_closed());
        }
    }

    #[test]
    fn a_transition_confirms_an_empty_query_set_change() {
        let mut connection = connected();
        send(&mut connection, modify(0, 3, vec![]));
        assert!(connection.needs_transition());
        let transition = transition_with(&mut connection, 5, |_| unreachable!());
        assert_eq!(transition.end_version, StateVersion { query_set: 3, identity: 0, ts: ts(5) });
    }

    #[test]
    fn the_query_set_size_is_limited() {
        let full = || {
            let mut connection = connected();
            let adds = (0..MAX_QUERIES_PER_CONNECTION as u32).map(|id| add(id, "q:a")).collect();
            assert_eq!(send(&mut connection, modify(0, 1, adds)), vec![]);
            connection
        };
        let next = MAX_QUERIES_PER_CONNECTION as u32;
        assert_eq!(
            send(&mut full(), modify(1, 2, vec![add(next, "q:a")])),
            fatal(
                "ModifyQuerySet would subscribe to more than 4096 queries, the most one connection may subscribe to.",
                "TooManyQueries"
            )
        );
        // Removing one first makes room.
        let effects = send(&mut full(), modify(1, 2, vec![remove(0), add(next, "q:a")]));
        assert!(matches!(effects.as_slice(), [Effect::Unsubscribe(_)]));
    }

    #[test]
    fn removals_are_reported_for_reported_queries() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a"), add(1, "q:b")]));
        transition_with(&mut connection, 1, |s| answer(s, Value::Null));
        send(&mut connection, modify(1, 2, vec![add(2, "q:c")]));
        assert_eq!(
            send(&mut connection, modify(2, 3, vec![remove(0), remove(2)])),
            [
                Effect::Unsubscribe(SubscriptionId { query_id: QueryId(0), serial: 0 }),
                Effect::Unsubscribe(SubscriptionId { query_id: QueryId(2), serial: 2 }),
            ]
        );
        // Query 2 never had a result: nothing to take back.
        let transition = transition_with(&mut connection, 2, |_| unreachable!());
        assert_eq!(transition.modifications, [StateModification::QueryRemoved { query_id: QueryId(0) }]);
        assert_eq!(transition.end_version.query_set, 3);
    }

    #[test]
    fn changes_during_a_plan_go_to_the_next_transition() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a"), add(1, "q:b")]));
        transition_with(&mut connection, 1, |s| answer(s, Value::Int64(0)));
        let both = live(&connection);
        both.iter().for_each(|&id| connection.invalidate(id));
        let plan = connection.begin_transition(ts(2));
        assert_eq!(plan.run().len(), 2);

        // Meanwhile the client removes query 0 and adds it again, with other arguments, and a
        // commit invalidates query 1 again.
        let readd = json!({"type": "Add", "queryId": 0, "udfPath": "q:a", "args": [{"other": true}]});
        send(&mut connection, modify(1, 2, vec![remove(0), readd]));
        connection.invalidate(both[1]);
        let results = plan.run().iter().map(|s| answer(s, Value::Int64(1))).collect();
        let Some(ServerMessage::Transition(transition)) = connection.transition(plan, results) else { panic!() };
        // The old query 0's result is dropped; its removal belongs to query set version 2.
        assert_eq!(transition.end_version.query_set, 1);
        assert_eq!(transition.modifications, [updated(1, Value::Int64(1))]);

        assert!(connection.needs_transition());
        let transition = transition_with(&mut connection, 3, |s| {
            if s.id.query_id() == QueryId(0) {
                assert_eq!(s.args.decode(), Object::from([("other".to_owned(), Value::Boolean(true))]));
            }
            answer(s, Value::Int64(1))
        });
        // The new query 0's result replaces the removal of the old one.
        assert_eq!(transition.end_version.query_set, 2);
        assert_eq!(transition.modifications, [updated(0, Value::Int64(1))]);
    }

    #[test]
    fn unanswered_queries_are_planned_again() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a"), add(1, "q:b")]));
        let plan = connection.begin_transition(ts(1));
        let results = vec![answer(&plan.run()[0], Value::Null)];
        connection.transition(plan, results);
        assert!(connection.needs_transition());
        let plan = connection.begin_transition(ts(1));
        assert_eq!(plan.run().iter().map(|s| s.id.query_id()).collect::<Vec<_>>(), [QueryId(1)]);
    }

    #[test]
    fn queries_with_invalid_arguments_fail_without_running() {
        let mut connection = connected();
        let bad = json!({"type": "Add", "queryId": 0, "udfPath": "q:a", "args": [1]});
        send(&mut connection, modify(0, 1, vec![bad, add(1, "q:b")]));
        let transition = transition_with(&mut connection, 1, |s| {
            assert_eq!(s.id.query_id(), QueryId(1));
            answer(s, Value::Null)
        });
        let error = FunctionError {
            message: "Invalid arguments: the arguments must be an object, got float64.".to_owned(),
            data: None,
        };
        assert_eq!(transition.modifications, [changed(0, Err(error), None), updated(1, Value::Null),]);
    }

    #[test]
    fn identity_changes_are_confirmed_and_rerun_every_query() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a")]));
        transition_with(&mut connection, 1, |s| answer(s, Value::Null));
        assert_eq!(send(&mut connection, authenticate(0)), [Effect::Authenticate(AuthToken::User("jwt".to_owned()))]);
        assert!(!connection.needs_transition(), "the identity changes once the shell accepts it");
        assert_eq!(connection.authenticated(Ok(())), []);
        assert!(connection.needs_transition());
        // The result did not change, but the Transition must still raise the identity version.
        let transition = transition_with(&mut connection, 1, |s| answer(s, Value::Null));
        assert_eq!(transition.end_version, StateVersion { query_set: 1, identity: 1, ts: ts(1) });
        assert_eq!(transition.modifications, []);

        assert_eq!(
            connection.receive(parse_client_message(&authenticate(0).to_string()).unwrap()),
            Err(ProtocolError::IdentityBaseMismatch { base_version: 0, current: 1 })
        );
        assert_eq!(ProtocolError::IdentityBaseMismatch { base_version: 0, current: 1 }.answer(), internal_error());
    }

    #[test]
    fn results_carry_the_identity_they_were_computed_with() {
        let mut connection = connected();
        send(&mut connection, modify(0, 1, vec![add(0, "q:a")]));
        let plan = connection.begin_transition(ts(1));
        send(&mut connection, authenticate(0));
        connection.authenticated(Ok(()));
        let results = vec![answer(&plan.run()[0], Value::from("anonymous"))];
        let Some(ServerMessage::Transition(transition)) = connection.transition(plan, results) else { panic!() };
        assert_eq!(transition.end_version.identity, 0);
        let transition = transition_with(&mut connection, 2, |s| answer(s, Value::from("user")));
        assert_eq!(transition.end_version.identity, 1);
        assert_eq!(transition.modifications, [updated(0, Value::from("user"))]);
    }

    #[test]
    fn rejected_tokens_get_an_auth_error() {
        let mut connection = connected();
        send(&mut connection, authenticate(0));
        connection.authenticated(Ok(()));
        send(&mut connection, authenticate(1));
        assert_eq!(
            connection.authenticated(Err("Invalid token".to_owned())),
            [
                Effect::Send(ServerMessage::AuthError {
                    error: "Invalid token".to_owned(),
                    base_version: 1,
                    auth_update_attempted: true
                }),
                Effect::Close { code: CloseCode::Normal, reason: "AuthUpdateFailed" },
            ]
        );
        assert!(connection.is_closed());
    }

    #[test]
    #[should_panic(expected = "the shell must report on Authenticate before the next message")]
    fn messages_wait_for_the_identity_check() {
        let mut connection = connected();
        send(&mut connection, authenticate(0));
        send(&mut connection, modify(0, 1, vec![]));
    }

    #[test]
    fn mutations_run_one_at_a_time_in_order() {
        let mut connection = connected();
        let session_id = session();
        assert_eq!(
            send(&mut connection, mutation(0, json!([{"n": 0}]))),
            [Effect::RunMutation { session_id, call: call(0, "m:write", json!({"n": 0})) }]
        );
        assert_eq!(send(&mut connection, mutation(1, json!([7]))), []);
        assert_eq!(send(&mut connection, mutation(2, json!([{"n": 2}]))), []);
        assert_eq!(
            send(&mut connection, mutation(2, json!([{}]))),
            fatal("Request 2 is already in flight on this connection.", "DuplicateRequestId")
        );

        let mut connection = connected();
        for request_id in 0..3 {
            send(&mut connection, mutation(request_id, if request_id == 1 { json!([7]) } else { json!([{}]) }));
        }
        let done = MutationSuccess { value: Value::Null, ts: ts(50) };
        assert_eq!(
            connection.mutation_completed(RequestId(0), Ok(done.clone()), vec!["[LOG] 'ok'".to_owned()]),
            [
                Effect::Send(ServerMessage::MutationResponse {
                    request_id: RequestId(0),
                    result: Ok(done),
                    log_lines: vec!["[LOG] 'ok'".to_owned()]
                }),
                // The next mutation's arguments are invalid: it is answered in its turn.
                Effect::Send(ServerMessage::MutationResponse {
                    request_id: RequestId(1),
                    result: Err(FunctionError {
                        message: "Invalid arguments: the arguments must be an object, got float64.".to_owned(),
                        data: None
                    }),
                    log_lines: vec![]
                }),
                Effect::RunMutation { session_id, call: call(2, "m:write", json!({})) },
            ]
        );
    }

    #[test]
    fn a_transition_follows_every_successful_mutation_and_every_error_with_data() {
        let mut connection = connected();
        send(&mut connection, mutation(0, json!([{}])));
        let failed = FunctionError { message: "no".to_owned(), data: None };
        connection.mutation_completed(RequestId(0), Err(failed), vec![]);
        assert!(!connection.needs_transition(), "failed mutations resolve without a Transition");

        send(&mut connection, mutation(3, json!([{}])));
        let failed = FunctionError { message: "no".to_owned(), data: Some(Value::from("why")) };
        connection.mutation_completed(RequestId(3), Err(failed), vec![]);
        assert!(connection.needs_transition(), "errors with data resolve at the next Transition");
        assert_eq!(connection.min_transition_ts(), ts(0));
        assert_eq!(transition_with(&mut connection, 0, |_| unreachable!()).end_version.ts, ts(0));
        assert!(!connection.needs_transition());

        send(&mut connection, mutation(1, json!([{}])));
        connection.mutation_completed(RequestId(1), Ok(MutationSuccess { value: Value::Null, ts: ts(40) }), vec![]);
        assert!(connection.needs_transition());
        assert_eq!(connection.min_transition_ts(), ts(40));
        let plan = connection.begin_transition(ts(40));
        connection.transition(plan, vec![]);
        assert!(!connection.needs_transition());

        // A replayed mutation is answered with its original, older timestamp: the client still
        // needs a Transition after the response.
        send(&mut connection, mutation(2, json!([{}])));
        connection.mutation_completed(RequestId(2), Ok(MutationSuccess { value: Value::Null, ts: ts(10) }), vec![]);
        assert!(connection.needs_transition());
        assert_eq!(transition_with(&mut connection, 40, |_| unreachable!()).end_version.ts, ts(40));
        assert!(!connection.needs_transition());
    }

    #[test]
    #[should_panic(expected = "the Transition's timestamp 39 is before its minimum 40")]
    fn transitions_cannot_go_before_an_answered_mutation() {
        let mut connection = connected();
        send(&mut connection, mutation(0, json!([{}])));
        connection.mutation_completed(RequestId(0), Ok(MutationSuccess { value: Value::Null, ts: ts(40) }), vec![]);
        connection.begin_transition(ts(39));
    }

    #[test]
    fn pending_mutations_are_limited() {
        let mut connection = connected();
        for request_id in 0..MAX_PENDING_MUTATIONS as u32 {
            assert!(
                !send(&mut connection, mutation(request_id, json!([{}])))
                    .iter()
                    .any(|e| matches!(e, Effect::Close { .. }))
            );
        }
        assert_eq!(
            send(&mut connection, mutation(MAX_PENDING_MUTATIONS as u32, json!([{}]))),
            [Effect::Close { code: CloseCode::TryAgainLater, reason: "TooManyConcurrentMutations" }]
        );
    }

    #[test]
    fn actions_run_concurrently() {
        let mut connection = connected();
        assert_eq!(
            send(&mut connection, action(0, json!([{"x": 1}]))),
            [Effect::RunAction(call(0, "a:act", json!({"x": 1})))]
        );
        assert_eq!(send(&mut connection, action(1, json!([{}]))), [Effect::RunAction(call(1, "a:act", json!({})))]);
        assert_eq!(
            send(&mut connection, action(2, json!({}))),
            [Effect::Send(ServerMessage::ActionResponse {
                request_id: RequestId(2),
                result: Err(FunctionError {
                    message: "Invalid arguments: expected an array holding one arguments object, got an object."
                        .to_owned(),
                    data: None
                }),
                log_lines: vec![]
            })]
        );
        assert_eq!(
            connection.action_completed(RequestId(1), Ok(Value::Int64(3)), vec![]),
            [Effect::Send(ServerMessage::ActionResponse {
                request_id: RequestId(1),
                result: Ok(Value::Int64(3)),
                log_lines: vec![]
            })]
        );
        assert!(!connection.needs_transition(), "actions are not tied to Transitions");
        assert_eq!(
            send(&mut connection, mutation(0, json!([{}]))),
            fatal("Request 0 is already in flight on this connection.", "DuplicateRequestId")
        );
    }

    #[test]
    fn inflight_actions_are_limited() {
        let mut connection = connected();
        for request_id in 0..MAX_INFLIGHT_ACTIONS as u32 {
            assert!(matches!(
                send(&mut connection, action(request_id, json!([{}]))).as_slice(),
                [Effect::RunAction(_)]
            ));
        }
        assert_eq!(
            send(&mut connection, action(MAX_INFLIGHT_ACTIONS as u32, json!([{}]))),
            [Effect::Close { code: CloseCode::TryAgainLater, reason: "TooManyConcurrentActions" }]
        );
    }

    #[test]
    fn shell_failures_close_the_connection() {
        let mut connection = connected();
        send(&mut connection, authenticate(0));
        connection.authenticated(Ok(()));
        send(&mut connection, mutation(0, json!([{}])));
        let plan = connection.begin_transition(ts(1));
        assert_eq!(
            connection.fail(Failure::TokenExpired { message: "Convex token identity expired".to_owned() }),
            [
                Effect::Send(ServerMessage::AuthError {
                    error: "Convex token identity expired".to_owned(),
                    base_version: 1,
                    auth_update_attempted: false
                }),
                Effect::Close { code: CloseCode::Normal, reason: "TokenExpired" },
            ]
        );
        // Whatever was in flight finishes into the void.
        assert_eq!(connection.transition(plan, vec![]), None);
        assert_eq!(
            connection.mutation_completed(RequestId(7), Ok(MutationSuccess { value: Value::Null, ts: ts(1) }), vec![]),
            []
        );
        assert_eq!(connection.fail(Failure::Internal), []);
        assert_eq!(send(&mut connection, modify(0, 1, vec![])), []);
        assert_eq!(connection.heartbeat(HEARTBEAT_INTERVAL, HEARTBEAT_INTERVAL), None);
        assert!(!connection.needs_transition());

        assert_eq!(connected().fail(Failure::Internal), internal_error());
    }

    #[test]
    fn idle_connections_are_pinged() {
        let connection = connected();
        let interval = HEARTBEAT_INTERVAL;
        assert_eq!(connection.heartbeat(interval - Duration::from_nanos(1), interval), None);
        assert_eq!(connection.heartbeat(interval, interval), Some(ServerMessage::Ping));
        let short = Duration::from_millis(10);
        assert_eq!(connection.heartbeat(short, short), Some(ServerMessage::Ping));
    }

    #[test]
    fn events_are_passed_on() {
        let mut connection = connected();
        let event = json!({"type": "Event", "eventType": "ClientReceivedTransition", "event": {"messageLength": 3}});
        assert_eq!(
            send(&mut connection, event),
            [Effect::ClientEvent {
                event_type: "ClientReceivedTransition".to_owned(),
                event: json!({"messageLength": 3})
            }]
        );
    }

    /// What the JavaScript client sends on a new socket after losing one: Connect, Authenticate
    /// from version 0, the whole query set with journals as version 0 -> 1, then its mutations.
    #[test]
    fn a_reconnecting_client_starts_over() {
        let mut connection = Connection::new();
        let connect = json!({"connectionCount": 1, "lastCloseReason": "InactiveServer", "clientTs": 9,
                             "type": "Connect",
                             "sessionId": SESSION, "maxObservedTimestamp": "Fc2FPf6clxc="});
        assert_eq!(
            send(&mut connection, connect),
            [Effect::Connected(Connect {
                session_id: session(),
                connection_count: 1,
                last_close_reason: Some("InactiveServer".to_owned()),
                max_observed_timestamp: Some(ts(1_700_000_000_123_456_789)),
                client_ts: Some(9),
            })]
        );
        assert!(matches!(send(&mut connection, authenticate(0)).as_slice(), [Effect::Authenticate(_)]));
        connection.authenticated(Ok(()));
        let queries = vec![
            json!({"type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{}], "journal": "page-end"}),
            json!({"type": "Add", "queryId": 3, "udfPath": "users:me", "args": [{}], "journal": null}),
        ];
        assert_eq!(send(&mut connection, modify(0, 1, queries)), []);
        assert_eq!(
            send(&mut connection, mutation(5, json!([{}]))),
            [Effect::RunMutation { session_id: session(), call: call(5, "m:write", json!({})) }]
        );
        assert_eq!(send(&mut connection, mutation(6, json!([{}]))), []);

        let plan = connection.begin_transition(ts(1_700_000_000_123_456_789));
        let journals: Vec<_> = plan.run().iter().map(|s| (s.id.query_id(), s.journal.clone())).collect();
        assert_eq!(journals, [(QueryId(0), Some("page-end".to_owned())), (QueryId(3), None)]);
        let results = plan.run().iter().map(|s| answer(s, Value::Null)).collect();
        let Some(ServerMessage::Transition(transition)) = connection.transition(plan, results) else { panic!() };
        assert_eq!(transition.start_version, StateVersion::default());
        assert_eq!(
            transition.end_version,
            StateVersion { query_set: 1, identity: 1, ts: ts(1_700_000_000_123_456_789) }
        );
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let errors = [
            ProtocolError::Parse(ParseError::TooLarge { bytes: 0 }),
            ProtocolError::NotConnected { message_type: "Event" },
            ProtocolError::AlreadyConnected,
            ProtocolError::QuerySetBaseMismatch { base_version: 0, current: 0 },
            ProtocolError::QuerySetVersionNotIncreasing { base_version: 0, new_version: 0 },
            ProtocolError::DuplicateQueryId(QueryId(0)),
            ProtocolError::UnknownQueryId(QueryId(0)),
            ProtocolError::TooManyQueries,
            ProtocolError::IdentityBaseMismatch { base_version: 0, current: 0 },
            ProtocolError::IdentityVersionExhausted,
            ProtocolError::DuplicateRequestId(RequestId(0)),
            ProtocolError::TooManyPendingMutations,
            ProtocolError::TooManyInflightActions,
        ];
        for error in errors {
            let effects = error.answer();
            let Some(Effect::Close { reason, .. }) = effects.last() else { panic!("{error}") };
            assert!(reason.len() <= MAX_CLOSE_REASON_BYTES);
        }
        let longest = "r".repeat(MAX_CLOSE_REASON_BYTES).leak();
        assert_eq!(
            closing(None, CloseCode::Normal, longest),
            [Effect::Close { code: CloseCode::Normal, reason: longest }]
        );
    }

    #[test]
    #[should_panic(expected = "is too long for a close frame")]
    fn close_reasons_past_the_limit_are_a_bug() {
        closing(None, CloseCode::Normal, "r".repeat(MAX_CLOSE_REASON_BYTES + 1).leak());
    }

    #[test]
    fn close_codes() {
        assert_eq!(
            [CloseCode::Normal, CloseCode::InternalError, CloseCode::TryAgainLater].map(CloseCode::code),
            [1000, 1011, 1013]
        );
    }

    #[test]
    fn identity_versions_cannot_overflow() {
        let mut connection = connected();
        connection.identity_version = u32::MAX;
        assert_eq!(
            connection.receive(parse_client_message(&authenticate(u32::MAX).to_string()).unwrap()),
            Err(ProtocolError::IdentityVersionExhausted)
        );
    }
}
