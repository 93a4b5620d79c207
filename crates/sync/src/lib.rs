//! Livebase's sync protocol: the WebSocket protocol of Convex, which the official Convex clients
//! (the `convex` npm package, and the `convex` crate that the Python client wraps) speak unmodified.
//!
//! Owns the protocol's messages ([`ClientMessage`], [`ServerMessage`], parsed from and encoded to
//! JSON text) and the per-connection protocol state machine ([`Connection`]): query set and
//! identity versions, subscriptions, in-flight mutations and actions, and the Transitions that
//! report query results. Does no IO: the socket shell feeds it messages and completions, and
//! carries out the [`Effect`]s it returns.
//!
//! Must never depend on: the store, queries, functions, an async runtime. It talks to them
//! through the types here ([`Effect`], [`TransitionPlan`], [`QueryResult`]).

mod messages;
mod state;

pub use messages::{
    AddQuery, Args, AuthToken, ClientMessage, Connect, FunctionCall, FunctionError, InvalidArgs,
    MAX_ERROR_MESSAGE_CHARS, MAX_MESSAGE_BYTES, MutationSuccess, ParseError, QueryArgs, QueryId, QuerySetModification,
    RequestId, ServerMessage, SessionId, SharedOutcome, StateModification, StateVersion, Timestamp, Transition,
    UdfPath, parse_client_message,
};
pub use state::{
    Call, CloseCode, Connection, Effect, Failure, HEARTBEAT_INTERVAL, MAX_CLOSE_REASON_BYTES, MAX_INFLIGHT_ACTIONS,
    MAX_PENDING_MUTATIONS, MAX_QUERIES_PER_CONNECTION, ProtocolError, QueryResult, Subscription, SubscriptionId,
    TransitionPlan,
};
