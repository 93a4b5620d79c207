//! The shell around one WebSocket: feeds its frames to the protocol state machine
//! ([`livebase_sync::Connection`]), carries out the effects, reruns stale queries and sends their
//! Transitions, keeps the client from timing out, and drops clients that read too slowly.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::mem;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::{Duration, SystemTime};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, StreamExt};
use futures_util::{FutureExt, SinkExt};
use livebase_auth::AuthError;
use livebase_functions::{FunctionError, Identity, RequestKey};
use livebase_store::Timestamp;
use livebase_sync::{
    AuthToken, Call, Connection, Effect, Failure, MAX_INFLIGHT_ACTIONS, MutationSuccess, QueryResult, RequestId,
    ServerMessage, SessionId, Subscription, SubscriptionId,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::forward::{CallKind, CallOutcome, ForwardError, ForwardIdentity, REPLICA_CATCH_UP_TIMEOUT};
use crate::hub::Registration;
use crate::wake_gated::WakeGated;

/// The most messages waiting to be written to one client. A client that falls this far behind
/// (a Transition per commit it watches) reads slower than it is written to, and would hold ever
/// more memory: it is disconnected, and reconnects to a fresh state.
pub const MAX_OUTGOING_MESSAGES: usize = 1_024;

/// The close reason of a client disconnected for falling [`MAX_OUTGOING_MESSAGES`] behind, with
/// code 1013 (try again later) so that it reconnects after a backoff.
pub const SLOW_CLIENT_CLOSE_REASON: &str = "ClientTooSlow";

/// The close reason when the server shuts down, with code 1001 (going away).
pub const SHUTDOWN_CLOSE_REASON: &str = "ServerShutdown";

/// How long a closing connection tries to deliver what is queued and its close frame, to a client
/// that may have stopped reading.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

const GOING_AWAY: u16 = 1001;
const UNSUPPORTED_DATA: u16 = 1003;
const TRY_AGAIN_LATER: u16 = 1013;

/// Who a connection acts as, and until when its token is accepted.
struct CheckedIdentity {
    identity: Identity,
    /// The user's token, which a read replica hands on to the writer with forwarded calls.
    token: Option<String>,
    expires_at: Option<SystemTime>,
}

/// A mutation, action or token check that finished in its own task.
enum Completion {
    /// A mutation's outcome, or why a replica could not forward it.
    Mutation(RequestId, Result<CallOutcome, ForwardError>),
    Action(RequestId, CallOutcome),
    /// The identity of an `Authenticate`'s token, or why it was rejected.
    Authenticated(Result<CheckedIdentity, String>),
}

struct Socket {
    shared: Arc<Shared>,
    connection: Connection,
    identity: Identity,
    token: Option<String>,
    /// A token is being checked: no client message is read until it is, so that later messages
    /// run with the identity the client asked for.
    authenticating: bool,
    /// When the identity's token expires: the connection then ends with an `AuthError`, and the
    /// client comes back with a fresh token.
    identity_expires: Option<Instant>,
    registration: Registration,
    outbox: Outbox,
    /// The client fell [`MAX_OUTGOING_MESSAGES`] behind.
    slow: bool,
    completions: mpsc::Sender<Completion>,
    /// Tasks spawned that have not reported their [`Completion`] yet: until one is, the channel is
    /// not polled (a connection that only watches queries never is).
    awaited_completions: usize,
    last_sent: Instant,
    /// Set when the hub reported stale subscriptions not yet collected.
    notified: bool,
    /// The connection owes a Transition at a timestamp the hub has not matched commits up to yet.
    awaiting_watermark: bool,
    /// A timestamp the hub must reach before the next Transition, with a deadline: on a read replica
    /// the newest timestamp the client saw before it reconnected (timestamps only move forward for a
    /// client); on any node the latest commit when the client asked for new queries (a query asked
    /// for after a write was acknowledged, over any path, sees it). The connection fails if the hub
    /// has not reached it by the deadline.
    catch_up: Option<(Timestamp, Instant)>,
    closed: bool,
}

type Sender = SplitSink<WebSocket, Message>;

/// Messages on their way to the client. Written by the connection's own task between its other
/// work (not by a task of its own, which could fall behind a busy connection task and have a
/// client that reads as fast as it asks taken for a slow one).
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Message>,
    /// Handed to the socket but not yet flushed.
    unflushed: bool,
}

impl Outbox {
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && !self.unflushed
    }

    /// Writes and flushes what is queued. Cancel-safe: a message leaves the queue only once the
    /// socket took it.
    async fn write(&mut self, sender: &mut Sender) -> Result<(), axum::Error> {
        poll_fn(|cx| {
            while !self.queue.is_empty() {
                ready!(sender.poll_ready_unpin(cx))?;
                sender.start_send_unpin(self.queue.pop_front().expect("not empty"))?;
                self.unflushed = true;
            }
            ready!(sender.poll_flush_unpin(cx))?;
            self.unflushed = false;
            Poll::Ready(Ok(()))
        })
        .await
    }
}

pub(crate) async fn run(socket: WebSocket, shared: Arc<Shared>) {
    let (mut sender, stream) = socket.split();
    let mut stream = WakeGated::new(stream);
    // Each running mutation, action or token check holds at most one completion.
    let (completions, mut completed) = mpsc::channel(MAX_INFLIGHT_ACTIONS + 2);
    let registration = shared.hub.connect();
    let mut watermark = registration.watermark.clone();
    let notify = Arc::clone(&registration.notify);
    let mut socket = Socket {
        shared,
        connection: Connection::new(),
        identity: Identity::Unauthenticated,
        token: None,
        authenticating: false,
        identity_expires: None,
        registration,
        outbox: Outbox::default(),
        slow: false,
        completions,
        awaited_completions: 0,
        last_sent: Instant::now(),
        notified: false,
        awaiting_watermark: false,
        catch_up: None,
        closed: false,
    };
    // Long-lived futures, made once: each poll of a fresh one would register it anew (the shutdown
    // token's waiter list, the timer wheel), for every message the connection sends.
    let shutdown = socket.shared.shutdown.clone().cancelled_owned();
    let notified = notify.notified();
    let timer = tokio::time::sleep_until(socket.next_deadline());
    tokio::pin!(shutdown, notified, timer);
    while !socket.closed {
        socket.transition_if_due();
        if socket.closed {
            break;
        }
        // What was just queued usually fits in the socket's buffer: writing it now saves the select
        // below a round (of polling every other branch) per message.
        if !socket.outbox.is_idle()
            && let Some(Err(error)) = socket.outbox.write(&mut sender).now_or_never()
        {
            tracing::debug!(%error, "WebSocket write failed");
            return;
        }
        // The timer is moved earlier at once, but not later: a heartbeat pushed back by each message
        // sent is re-armed only when it fires early.
        let deadline = socket.next_deadline();
        if deadline < timer.deadline() || timer.is_elapsed() {
            timer.as_mut().reset(deadline);
        }
        let writing = !socket.outbox.is_idle();
        tokio::select! {
            () = &mut shutdown => socket.close(GOING_AWAY, SHUTDOWN_CLOSE_REASON),
            frame = stream.next(), if !socket.authenticating => match frame {
                Some(Ok(Message::Text(text))) => {
                    let effects = socket.connection.receive_text(&text);
                    if socket.connection.needs_transition() {
                        socket.reach_latest_commit();
                    }
                    socket.carry_out(effects);
                }
                Some(Ok(Message::Binary(_))) => socket.close(UNSUPPORTED_DATA, "BinaryMessagesNotSupported"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | None => return,
                Some(Err(error)) => {
                    tracing::debug!(%error, "WebSocket read failed");
                    return;
                }
            },
            written = socket.outbox.write(&mut sender), if writing => {
                if let Err(error) = written {
                    tracing::debug!(%error, "WebSocket write failed");
                    return;
                }
            }
            Some(completion) = completed.recv(), if socket.awaited_completions > 0 => socket.complete(completion),
            () = &mut notified => {
                socket.notified = true;
                notified.set(notify.notified());
            }
            Ok(()) = watermark.changed(), if socket.awaiting_watermark => {}
            () = &mut timer => socket.deadlines_passed(*watermark.borrow()),
        }
    }
    // A slow client gets only the close frame, in place of all it did not read.
    if socket.slow {
        socket.outbox.queue = VecDeque::from([close_frame(TRY_AGAIN_LATER, SLOW_CLIENT_CLOSE_REASON)]);
    }
    let mut outbox = mem::take(&mut socket.outbox);
    drop(socket);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, outbox.write(&mut sender)).await;
}

impl Socket {
    /// The earliest of the moments the connection must act on without a message: a Ping after
    /// silence, the end of a catch-up's patience, the identity's expiry.
    fn next_deadline(&self) -> Instant {
        let heartbeat = self.last_sent + self.shared.heartbeat_interval;
        [self.catch_up.map(|(_, deadline)| deadline), self.identity_expires]
            .into_iter()
            .flatten()
            .fold(heartbeat, Instant::min)
    }

    /// Acts on whichever of [`Socket::next_deadline`]'s moments have passed; `watermark` is the
    /// hub's, for a catch-up that timed out.
    fn deadlines_passed(&mut self, watermark: Timestamp) {
        let now = Instant::now();
        if let Some((seen, deadline)) = self.catch_up
            && deadline <= now
        {
            self.catch_up = None;
            if watermark < seen {
                tracing::warn!(
                    %seen,
                    "this node's subscriptions did not reach a commit a client needs (one it saw, or the \
                     latest when it asked for queries) within {REPLICA_CATCH_UP_TIMEOUT:?} \
                     (REPLICA_CATCH_UP_TIMEOUT): closing its connection, it reconnects"
                );
                let effects = self.connection.fail(Failure::Internal);
                self.carry_out(effects);
            }
        }
        if self.identity_expires.is_some_and(|expires| expires <= now) {
            self.identity_expires = None;
            let effects = self.connection.fail(Failure::TokenExpired { message: AuthError::Expired.to_string() });
            self.carry_out(effects);
        }
        let interval = self.shared.heartbeat_interval;
        if let Some(ping) = self.connection.heartbeat(self.last_sent.elapsed(), interval) {
            self.send(ping);
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        let mut effects = VecDeque::from(effects);
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Send(message) => self.send(message),
                Effect::Close { code, reason } => self.close(code.code(), reason),
                Effect::Connected(connect) => {
                    let latest = self.shared.store.snapshot().ts();
                    let Some(seen) = connect.max_observed_timestamp.map(|seen| Timestamp::from_nanos(seen.nanos()))
                    else {
                        continue;
                    };
                    if self.shared.store.is_replica() {
                        // A replica may be behind the node the client was on: wait for it, bounded.
                        self.catch_up_to(seen);
                    } else if seen > latest {
                        tracing::warn!("a client saw writes newer than this server's latest commit");
                        effects.extend(self.connection.fail(Failure::Internal));
                    }
                }
                Effect::Authenticate(token) => {
                    if let Some(outcome) = self.authenticate(token) {
                        effects.extend(self.identity_checked(outcome));
                    }
                }
                Effect::RunMutation { session_id, call } => self.spawn_mutation(session_id, call),
                Effect::RunAction(call) => self.spawn_action(call),
                Effect::Unsubscribe(subscription) => self.registration.unregister(subscription),
                Effect::ClientEvent { event_type, event } => tracing::debug!(event_type, %event, "client event"),
            }
        }
    }

    /// Checks an `Authenticate`'s token: at once, or, for a user's token, in a task of its own
    /// (checking may fetch the issuer's keys), which reports a [`Completion::Authenticated`].
    fn authenticate(&mut self, token: AuthToken) -> Option<Result<CheckedIdentity, String>> {
        let token = match token {
            AuthToken::None => {
                return Some(Ok(CheckedIdentity {
                    identity: Identity::Unauthenticated,
                    token: None,
                    expires_at: None,
                }));
            }
            AuthToken::Admin { .. } => return Some(Err("This server does not accept admin keys yet.".to_owned())),
            AuthToken::User(token) => token,
        };
        let Some(verifier) = self.shared.auth.clone() else {
            return Some(Err("This server has no auth providers configured: user tokens are refused.".to_owned()));
        };
        self.authenticating = true;
        self.awaited_completions += 1;
        let completions = self.completions.clone();
        tokio::spawn(async move {
            let outcome = verifier.verify_token(&token).await.map_err(|error| error.to_string());
            let outcome = outcome.map(|verified| CheckedIdentity {
                identity: Identity::User(verified.identity),
                token: Some(token),
                expires_at: Some(verified.expires_at),
            });
            let _ = completions.send(Completion::Authenticated(outcome)).await;
        });
        None
    }

    fn identity_checked(&mut self, outcome: Result<CheckedIdentity, String>) -> Vec<Effect> {
        self.authenticating = false;
        let outcome = outcome.map(|CheckedIdentity { identity, token, expires_at }| {
            self.identity = identity;
            self.token = token;
            // An `Instant` so that the deadline keeps its distance when the wall clock is set.
            self.identity_expires = expires_at
                .map(|expires_at| Instant::now() + expires_at.duration_since(SystemTime::now()).unwrap_or_default());
        });
        self.connection.authenticated(outcome)
    }

    /// Who the writer runs this connection's forwarded calls as.
    fn forward_identity(&self) -> ForwardIdentity {
        match (&self.identity, &self.token) {
            (Identity::User(_), Some(token)) => ForwardIdentity::User(token.clone()),
            (Identity::Admin | Identity::System, _) => ForwardIdentity::Admin,
            _ => ForwardIdentity::Unauthenticated,
        }
    }

    fn spawn_mutation(&mut self, session_id: SessionId, call: Call) {
        let (shared, identity, completions) =
            (Arc::clone(&self.shared), self.identity.clone(), self.completions.clone());
        let forward_identity = self.forward_identity();
        self.awaited_completions += 1;
        // A client replays the mutations it has no answer for after a reconnect, with the same key.
        let request = RequestKey { session: session_id.to_string(), request: call.request_id.0 };
        tokio::spawn(async move {
            let path = call.udf_path.to_string();
            let outcome = match &shared.forwarder {
                Some(forwarder) => {
                    forwarder.call(CallKind::Mutation, &path, call.args, forward_identity, Some(&request)).await
                }
                None => Ok(shared.runtime.run_mutation_once(&path, call.args, &identity, &request).await.into()),
            };
            // The connection may be gone; its client replays the mutation when it reconnects.
            let _ = completions.send(Completion::Mutation(call.request_id, outcome)).await;
        });
    }

    fn spawn_action(&mut self, call: Call) {
        let (shared, identity, completions) =
            (Arc::clone(&self.shared), self.identity.clone(), self.completions.clone());
        let forward_identity = self.forward_identity();
        self.awaited_completions += 1;
        tokio::spawn(async move {
            let path = call.udf_path.to_string();
            let outcome = match &shared.forwarder {
                // Clients do not replay actions: the reason goes to the caller, who may retry.
                Some(forwarder) => forwarder
                    .call(CallKind::Action, &path, call.args, forward_identity, None)
                    .await
                    .unwrap_or_else(|error| CallOutcome {
                        result: Err(FunctionError::failed(error.to_string())),
                        log_lines: Vec::new(),
                        ts: None,
                    }),
                None => shared.runtime.run_action(&path, call.args, &identity).await.into(),
            };
            let _ = completions.send(Completion::Action(call.request_id, outcome)).await;
        });
    }

    fn complete(&mut self, completion: Completion) {
        self.awaited_completions -= 1;
        let effects = match completion {
            Completion::Mutation(request_id, Ok(CallOutcome { result, log_lines, ts })) => {
                let result = match result {
                    Ok(value) => {
                        let ts = ts.expect("a successful mutation has a commit timestamp");
                        Ok(MutationSuccess { value, ts: wire_ts(ts) })
                    }
                    Err(error) => Err(wire_error(&error)),
                };
                self.connection.mutation_completed(request_id, result, log_lines)
            }
            Completion::Mutation(_, Err(error)) => {
                // The mutation may have committed, or may yet: the client reconnects and replays it
                // with its key, and the writer runs it at most once.
                tracing::warn!(%error, "closing a replica connection whose mutation could not be forwarded");
                self.connection.fail(Failure::Internal)
            }
            Completion::Action(request_id, CallOutcome { result, log_lines, .. }) => {
                let result = result.map_err(|error| wire_error(&error));
                self.connection.action_completed(request_id, result, log_lines)
            }
            Completion::Authenticated(outcome) => self.identity_checked(outcome),
        };
        self.carry_out(effects);
    }

    /// Holds the next Transition until the hub has matched every commit published by now.
    fn reach_latest_commit(&mut self) {
        self.catch_up_to(self.shared.store.snapshot().ts());
    }

    fn catch_up_to(&mut self, ts: Timestamp) {
        let floor = self.catch_up.map_or(ts, |(floor, _)| floor.max(ts));
        self.catch_up = Some((floor, Instant::now() + REPLICA_CATCH_UP_TIMEOUT));
    }

    /// Sends the Transition the connection is owed, if it is owed one and the hub has matched
    /// commits far enough to compute it.
    fn transition_if_due(&mut self) {
        if !self.notified && !self.connection.needs_transition() {
            return;
        }
        self.notified = false;
        let (watermark, stale) = self.registration.take_stale();
        for subscription in stale {
            self.connection.invalidate(subscription);
        }
        if !self.connection.needs_transition() {
            return;
        }
        // A mutation's Transition must reach its commit, which the hub may not have matched yet, and
        // a reconnected client's first must reach what it saw before.
        let floor = self.catch_up.map_or(Timestamp::ZERO, |(seen, _)| seen);
        self.awaiting_watermark = watermark.nanos() < self.connection.min_transition_ts().nanos() || watermark < floor;
        if self.awaiting_watermark {
            return;
        }
        self.catch_up = None;
        let plan = self.connection.begin_transition(wire_ts(watermark));
        let mut rerun = Vec::new();
        let results =
            plan.run().iter().map(|subscription| self.run_query(subscription, watermark, &mut rerun)).collect();
        let transition = self.connection.transition(plan, results);
        for subscription in rerun {
            self.connection.invalidate(subscription);
        }
        if let Some(transition) = transition {
            self.send(transition);
        }
    }

    /// Runs one query at `ts` (or takes the run another connection made of the same query) and
    /// tracks its read set; pushes it to `rerun` if a commit since `ts` already changed what it read.
    fn run_query(&self, subscription: &Subscription, ts: Timestamp, rerun: &mut Vec<SubscriptionId>) -> QueryResult {
        let run = self.registration.shared_runs().run(&self.shared.runtime, subscription, &self.identity, ts);
        if !self.registration.register(subscription.id, &run.read_set, run.ts) {
            rerun.push(subscription.id);
        }
        QueryResult { subscription: subscription.id, outcome: Arc::clone(&run.outcome) }
    }

    fn send(&mut self, message: ServerMessage) {
        self.enqueue(Message::Text(message.to_text().into()));
        self.last_sent = Instant::now();
    }

    fn close(&mut self, code: u16, reason: &'static str) {
        self.enqueue(close_frame(code, reason));
        self.closed = true;
    }

    fn enqueue(&mut self, message: Message) {
        if self.closed {
            return;
        }
        if self.outbox.queue.len() == MAX_OUTGOING_MESSAGES {
            tracing::info!("disconnecting a client {MAX_OUTGOING_MESSAGES} messages behind");
            self.slow = true;
            self.closed = true;
            return;
        }
        self.outbox.queue.push_back(message);
    }
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

fn wire_ts(ts: Timestamp) -> livebase_sync::Timestamp {
    livebase_sync::Timestamp::from_nanos(ts.nanos())
}

pub(crate) fn wire_error(error: &FunctionError) -> livebase_sync::FunctionError {
    livebase_sync::FunctionError { message: error.client_message().to_owned(), data: error.data().cloned() }
}
