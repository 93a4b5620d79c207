//! Random sequences of client messages, well-formed and not, interleaved with the shell's reports,
//! checked against a model of the protocol: the connection never panics, closes exactly when
//! the model says the client broke the protocol and always says so, answers mutations in order,
//! and its Transitions chain and eventually confirm everything the client did.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use livebase_sync::{
    Connection, Effect, Failure, FunctionError, HEARTBEAT_INTERVAL, MutationSuccess, QueryId, QueryResult, RequestId,
    ServerMessage, SharedOutcome, StateModification, StateVersion, SubscriptionId, Timestamp, TransitionPlan,
    parse_client_message,
};
use livebase_value::Value;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

const SESSION: &str = "6a0f3c1e-2b4d-4e8f-a1b2-c3d4e5f60718";

/// What a well-behaved client and shell do. Ids are picked from the model's state (the smallest
/// free one, so that ids are reused after a removal or a response).
#[derive(Debug, Clone)]
enum Op {
    ModifyQuerySet { changes: Vec<(bool, usize)>, step: u32, bad_args: bool },
    Mutation { bad_args: bool },
    Action { bad_args: bool },
    Authenticate,
    Event,
    CompleteMutation { ok: bool, ts_back: u64 },
    CompleteAction { index: usize, ok: bool },
    Invalidate { index: usize },
    BeginTransition { ts_step: u64 },
    FinishTransition { answered: u64, seed: i64 },
    Heartbeat { seconds: u64 },
}

/// One way for a client to break the protocol, or for the shell to end the connection.
#[derive(Debug, Clone)]
enum Fault {
    Garbage(String),
    ConnectAgain,
    WrongQuerySetBase { offset: u32 },
    QuerySetVersionNotIncreasing,
    DuplicateQueryId,
    UnknownQueryId,
    DuplicateRequestId { action: bool },
    WrongIdentityBase { offset: u32 },
    RejectedToken,
    Fail { token_expired: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let changes = prop::collection::vec((prop::bool::weighted(0.6), any::<usize>()), 0..4);
    prop_oneof![
        6 => (changes, 1..3u32, prop::bool::weighted(0.1))
            .prop_map(|(changes, step, bad_args)| Op::ModifyQuerySet { changes, step, bad_args }),
        4 => prop::bool::weighted(0.15).prop_map(|bad_args| Op::Mutation { bad_args }),
        2 => prop::bool::weighted(0.15).prop_map(|bad_args| Op::Action { bad_args }),
        1 => Just(Op::Authenticate),
        1 => Just(Op::Event),
        4 => (prop::bool::weighted(0.8), 0..3u64).prop_map(|(ok, ts_back)| Op::CompleteMutation { ok, ts_back }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(index, ok)| Op::CompleteAction { index, ok }),
        3 => any::<usize>().prop_map(|index| Op::Invalidate { index }),
        4 => (0..3u64).prop_map(|ts_step| Op::BeginTransition { ts_step }),
        4 => (any::<u64>(), 0..3i64).prop_map(|(answered, seed)| Op::FinishTransition { answered, seed }),
        1 => (0..30u64).prop_map(|seconds| Op::Heartbeat { seconds }),
    ]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        prop_oneof![any::<String>(), "[\\[\\]{}\":,0-9a-zA-Z ]{0,30}"].prop_map(Fault::Garbage),
        Just(Fault::ConnectAgain),
        (1..3u32).prop_map(|offset| Fault::WrongQuerySetBase { offset }),
        Just(Fault::QuerySetVersionNotIncreasing),
        Just(Fault::DuplicateQueryId),
        Just(Fault::UnknownQueryId),
        any::<bool>().prop_map(|action| Fault::DuplicateRequestId { action }),
        (1..3u32).prop_map(|offset| Fault::WrongIdentityBase { offset }),
        Just(Fault::RejectedToken),
        any::<bool>().prop_map(|token_expired| Fault::Fail { token_expired }),
    ]
}

/// A shell that does everything right, and the model's expectations of the connection.
struct Shell {
    connection: Connection,
    closed: bool,
    connected: bool,
    /// The last accepted `newVersion`, and the number of accepted `Authenticate`s.
    query_set: u32,
    identity: u32,
    queries: BTreeSet<u32>,
    /// Accepted mutations not yet answered, in the order they arrived.
    mutations: VecDeque<RequestId>,
    running_mutation: Option<RequestId>,
    actions: Vec<RequestId>,
    /// The plan out, with the query set and identity versions when it was made.
    plan: Option<(TransitionPlan, u32, u32)>,
    subscriptions: Vec<SubscriptionId>,
    last_end: StateVersion,
    /// The newest successful mutation answered and not yet reached by a Transition.
    unconfirmed: Option<Timestamp>,
    clock: u64,
}

impl Shell {
    fn new() -> Shell {
        Shell {
            connection: Connection::new(),
            closed: false,
            connected: false,
            query_set: 0,
            identity: 0,
            queries: BTreeSet::new(),
            mutations: VecDeque::new(),
            running_mutation: None,
            actions: Vec::new(),
            plan: None,
            subscriptions: Vec::new(),
            last_end: StateVersion::default(),
            unconfirmed: None,
            clock: 1,
        }
    }

    fn in_flight(&self, request_id: RequestId) -> bool {
        self.mutations.contains(&request_id) || self.actions.contains(&request_id)
    }

    fn free_request_id(&self) -> RequestId {
        (0..).map(RequestId).find(|&request_id| !self.in_flight(request_id)).unwrap()
    }

    /// Sends a message; `rejected` says whether the model thinks it breaks the protocol.
    fn send(&mut self, message: Json, rejected: bool) {
        let effects = self.connection.receive_text(&message.to_string());
        if self.closed {
            assert_eq!(effects, [], "a closed connection is silent");
            return;
        }
        let rejected = rejected || !self.connected;
        let closes = effects.iter().filter(|effect| matches!(effect, Effect::Close { .. })).count();
        assert_eq!(closes, usize::from(rejected), "{message}: {effects:?}");
        if rejected {
            assert!(matches!(effects.last(), Some(Effect::Close { .. })), "the client is told: {effects:?}");
        }
        self.absorb(effects);
        assert_eq!((self.closed, self.connection.is_closed()), (rejected, rejected));
    }

    /// Carries out effects as the shell would, checking each.
    fn absorb(&mut self, effects: Vec<Effect>) {
        let count = effects.len();
        for (index, effect) in effects.into_iter().enumerate() {
            assert!(!self.closed, "nothing follows a Close");
            match effect {
                Effect::Close { .. } => self.closed = true,
                Effect::Send(ServerMessage::FatalError { .. } | ServerMessage::AuthError { .. }) => {
                    assert_eq!(index + 2, count, "an error is followed by the Close");
                }
                Effect::Send(ServerMessage::MutationResponse { request_id, result, .. }) => {
                    assert_eq!(self.mutations.pop_front(), Some(request_id), "mutations are answered in order");
                    assert_ne!(self.running_mutation, Some(request_id));
                    if let Ok(MutationSuccess { ts, .. }) = result {
                        self.unconfirmed = self.unconfirmed.max(Some(ts));
                    }
                }
                Effect::Send(ServerMessage::ActionResponse { request_id, .. }) => {
                    assert!(!self.actions.contains(&request_id), "only actions that never ran are answered here");
                }
                Effect::Send(other) => panic!("not an effect: {other:?}"),
                Effect::RunMutation { call, .. } => {
                    assert_eq!(self.running_mutation, None, "one mutation at a time");
                    assert_eq!(self.mutations.front(), Some(&call.request_id), "mutations run in order");
                    self.running_mutation = Some(call.request_id);
                }
                Effect::RunAction(call) => self.actions.push(call.request_id),
                Effect::Connected(_) | Effect::Unsubscribe(_) | Effect::ClientEvent { .. } => {}
                Effect::Authenticate(_) => panic!("answered in `authenticate`"),
            }
        }
    }

    /// Effects of a report from the shell; a closed connection ignores reports.
    fn absorb_report(&mut self, effects: Vec<Effect>) {
        if self.closed {
            assert_eq!(effects, []);
        } else {
            self.absorb(effects);
        }
    }

    fn connect(&mut self) {
        let message = json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0});
        let rejected = self.connected;
        self.connected = true;
        self.send(message, rejected);
    }

    fn modify_query_set(&mut self, base_version: u32, new_version: u32, modifications: Vec<Json>, rejected: bool) {
        let message = json!({"type": "ModifyQuerySet", "baseVersion": base_version, "newVersion": new_version,
                             "modifications": modifications});
        self.send(message, rejected);
    }

    fn call(&mut self, kind: &str, request_id: RequestId, bad_args: bool, rejected: bool) {
        let args = if bad_args { json!([1, 2]) } else { json!([{"n": request_id.0}]) };
        self.send(json!({"type": kind, "requestId": request_id.0, "udfPath": "f:run", "args": args}), rejected);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::ModifyQuerySet { changes, step, bad_args } => {
                let mut modifications = Vec::new();
                for (is_add, index) in changes {
                    if is_add || self.queries.is_empty() {
                        let query_id = (0..).find(|id| !self.queries.contains(id)).unwrap();
                        self.queries.insert(query_id);
                        let args = if bad_args { json!("bad") } else { json!([{"id": query_id}]) };
                        modifications
                            .push(json!({"type": "Add", "queryId": query_id, "udfPath": "q:get", "args": args}));
                    } else {
                        let query_id = *self.queries.iter().nth(index % self.queries.len()).unwrap();
                        self.queries.remove(&query_id);
                        modifications.push(json!({"type": "Remove", "queryId": query_id}));
                    }
                }
                let base_version = self.query_set;
                self.query_set += step;
                self.modify_query_set(base_version, self.query_set, modifications, false);
            }
            Op::Mutation { bad_args } => {
                let request_id = self.free_request_id();
                self.mutations.push_back(request_id);
                self.call("Mutation", request_id, bad_args, false);
            }
            Op::Action { bad_args } => {
                let request_id = self.free_request_id();
                self.call("Action", request_id, bad_args, false);
            }
            Op::Authenticate => self.authenticate(0, true),
            Op::Event => self.send(json!({"type": "Event", "eventType": "Test", "event": null}), false),
            Op::CompleteMutation { ok, ts_back } => {
                if let Some(request_id) = self.running_mutation.take() {
                    let result = if ok {
                        self.clock += 1;
                        Ok(MutationSuccess { value: Value::Null, ts: Timestamp::from_nanos(self.clock - ts_back) })
                    } else {
                        Err(FunctionError { message: "failed".to_owned(), data: None })
                    };
                    let effects = self.connection.mutation_completed(request_id, result, Vec::new());
                    self.absorb_report(effects);
                }
            }
            Op::CompleteAction { index, ok } => {
                if !self.actions.is_empty() {
                    let request_id = self.actions.remove(index % self.actions.len());
                    let result =
                        if ok { Ok(Value::Null) } else { Err(FunctionError { message: "no".to_owned(), data: None }) };
                    let effects = self.connection.action_completed(request_id, result, Vec::new());
                    self.absorb_report(effects);
                }
            }
            Op::Invalidate { index } => {
                if !self.subscriptions.is_empty() {
                    self.connection.invalidate(self.subscriptions[index % self.subscriptions.len()]);
                }
            }
            Op::BeginTransition { ts_step } => self.begin_transition(ts_step),
            Op::FinishTransition { answered, seed } => self.finish_transition(answered, seed),
            Op::Heartbeat { seconds } => {
                let idle = Duration::from_secs(seconds);
                let ping = self.connection.heartbeat(idle, HEARTBEAT_INTERVAL);
                assert_eq!(ping, (!self.closed && idle >= HEARTBEAT_INTERVAL).then_some(ServerMessage::Ping));
            }
        }
    }

    fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::Garbage(text) => {
                if parse_client_message(&text).is_err() {
                    self.send(Json::String(text), true);
                }
            }
            Fault::ConnectAgain => self.connect(),
            Fault::WrongQuerySetBase { offset } => {
                let base_version = self.query_set + offset;
                self.modify_query_set(base_version, base_version + 1, Vec::new(), true);
            }
            Fault::QuerySetVersionNotIncreasing => {
                self.modify_query_set(self.query_set, self.query_set, Vec::new(), true);
            }
            Fault::DuplicateQueryId => {
                let add = json!({"type": "Add", "queryId": 99, "udfPath": "q:get", "args": [{}]});
                self.modify_query_set(self.query_set, self.query_set + 1, vec![add.clone(), add], true);
            }
            Fault::UnknownQueryId => {
                let remove = json!({"type": "Remove", "queryId": 99});
                self.modify_query_set(self.query_set, self.query_set + 1, vec![remove], true);
            }
            Fault::DuplicateRequestId { action } => {
                let kind = if action { "Action" } else { "Mutation" };
                if let Some(&request_id) = self.mutations.front().or(self.actions.first()) {
                    self.call(kind, request_id, false, true);
                }
            }
            Fault::WrongIdentityBase { offset } => self.authenticate(offset, true),
            Fault::RejectedToken => self.authenticate(0, false),
            Fault::Fail { token_expired } => {
                let failure = if token_expired {
                    Failure::TokenExpired { message: "expired".to_owned() }
                } else {
                    Failure::Internal
                };
                let effects = self.connection.fail(failure);
                if self.closed {
                    assert_eq!(effects, []);
                } else {
                    assert!(matches!(effects.last(), Some(Effect::Close { .. })));
                    self.absorb(effects);
                }
            }
        }
    }

    fn authenticate(&mut self, base_offset: u32, accept: bool) {
        let base_version = self.identity + base_offset;
        let message = json!({"type": "Authenticate", "baseVersion": base_version, "tokenType": "User", "value": "t"});
        if base_offset != 0 || !self.connected || self.closed {
            return self.send(message, true);
        }
        let effects = self.connection.receive_text(&message.to_string());
        assert!(matches!(effects.as_slice(), [Effect::Authenticate(_)]), "{effects:?}");
        let outcome = if accept { Ok(()) } else { Err("rejected".to_owned()) };
        let effects = self.connection.authenticated(outcome);
        if accept {
            assert_eq!(effects, []);
            self.identity += 1;
        } else {
            let error =
                ServerMessage::AuthError { error: "rejected".to_owned(), base_version, auth_update_attempted: true };
            assert_eq!(effects.first(), Some(&Effect::Send(error)));
            self.absorb(effects);
        }
    }

    fn begin_transition(&mut self, ts_step: u64) {
        if self.closed || self.plan.is_some() {
            return;
        }
        let min_ts = self.connection.min_transition_ts();
        assert_eq!(min_ts, self.last_end.ts.max(self.unconfirmed.unwrap_or(Timestamp::ZERO)));
        self.clock = self.clock.max(min_ts.nanos()) + ts_step;
        let plan = self.connection.begin_transition(Timestamp::from_nanos(self.clock));
        self.subscriptions.extend(plan.run().iter().map(|subscription| subscription.id));
        self.plan = Some((plan, self.query_set, self.identity));
    }

    fn finish_transition(&mut self, answered: u64, seed: i64) {
        let Some((plan, query_set, identity)) = self.plan.take() else { return };
        let results = plan
            .run()
            .iter()
            .enumerate()
            .filter(|&(index, _)| answered & (1 << (index % 64)) != 0)
            .map(|(index, subscription)| QueryResult {
                subscription: subscription.id,
                outcome: Arc::new(SharedOutcome::new(Ok(Value::Int64((seed + index as i64) % 3)), Vec::new(), None)),
            })
            .collect();
        let ts = plan.ts();
        let message = self.connection.transition(plan, results);
        let Some(ServerMessage::Transition(transition)) = message else {
            assert!(self.closed && message.is_none(), "{message:?}");
            return;
        };
        assert!(!self.closed);
        let (start, end) = (transition.start_version, transition.end_version);
        assert_eq!(start, self.last_end, "Transitions chain");
        assert!(end.query_set >= start.query_set && end.identity >= start.identity && end.ts >= start.ts);
        assert_eq!(end.ts, ts);
        assert_eq!((end.query_set, end.identity), (query_set, identity), "the versions as of planning");
        let ids: Vec<QueryId> = transition
            .modifications
            .iter()
            .map(|modification| match modification {
                StateModification::QueryChanged { query_id, .. } | StateModification::QueryRemoved { query_id } => {
                    *query_id
                }
            })
            .collect();
        assert!(ids.is_sorted_by(|a, b| a < b), "at most one modification per query, in id order: {ids:?}");
        if self.unconfirmed.is_some_and(|ts| ts <= end.ts) {
            self.unconfirmed = None;
        }
        self.last_end = end;
    }

    /// Finishes everything in flight and transitions until the connection owes nothing, then
    /// checks that the client's view caught up with everything it did.
    fn settle(&mut self) {
        for _ in 0..1_000 {
            if self.closed {
                return;
            }
            if self.plan.is_some() {
                self.finish_transition(u64::MAX, 0);
            } else if self.running_mutation.is_some() {
                self.apply(Op::CompleteMutation { ok: true, ts_back: 0 });
            } else if !self.actions.is_empty() {
                self.apply(Op::CompleteAction { index: 0, ok: true });
            } else if self.connection.needs_transition() {
                // At the minimum timestamp, which must be enough.
                self.begin_transition(0);
            } else {
                assert!(self.mutations.is_empty(), "every mutation is answered");
                assert_eq!((self.last_end.query_set, self.last_end.identity), (self.query_set, self.identity));
                assert_eq!(self.unconfirmed, None, "a Transition reached every answered mutation");
                return;
            }
        }
        panic!("the connection did not settle");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_connection_follows_the_protocol(
        ops in prop::collection::vec(op(), 0..80),
        fault in prop::option::weighted(0.5, (fault(), any::<prop::sample::Index>())),
        connect_first in prop::bool::weighted(0.95),
    ) {
        let mut shell = Shell::new();
        if connect_first {
            shell.connect();
        }
        let fault = fault.map(|(fault, index)| (fault, index.index(ops.len() + 1)));
        for position in 0..=ops.len() {
            if let Some((fault, _)) = fault.as_ref().filter(|&&(_, at)| at == position) {
                shell.inject(fault.clone());
            }
            if let Some(op) = ops.get(position) {
                shell.apply(op.clone());
            }
        }
        shell.settle();
    }
}
