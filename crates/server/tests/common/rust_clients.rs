//! The official Rust client (the `convex` crate) as tests drive it: clients on a runtime of their
//! own, and the built-in app's `messages:list` results. Included with `#[path]` by the tests that
//! use it.

use std::collections::BTreeMap;
use std::time::Duration;

use convex::{ConvexClient, FunctionResult, QuerySubscription};
use futures_util::StreamExt;

pub fn args(fields: &[(&str, convex::Value)]) -> BTreeMap<String, convex::Value> {
    fields.iter().map(|(name, value)| (name.to_string(), value.clone())).collect()
}

/// The bodies of a `messages:list` result.
pub fn bodies(result: FunctionResult) -> Vec<String> {
    let FunctionResult::Value(convex::Value::Array(messages)) = result else { panic!("not a list: {result:?}") };
    let body = |message: convex::Value| match message {
        convex::Value::Object(mut fields) => match fields.remove("body") {
            Some(convex::Value::String(body)) => body,
            other => panic!("a message's body is a string, not {other:?}"),
        },
        other => panic!("a message is an object, not {other:?}"),
    };
    messages.into_iter().map(body).collect()
}

/// The Rust clients' tasks run on a runtime of their own, shut down before the server stops: a
/// `convex` 0.10 client dropped while its socket is open leaves a worker task that, once that socket
/// fails, polls its closed request channel in a loop without ever yielding, which would pin a
/// worker thread of the test's runtime for good. Shut down first, the workers are dropped while
/// they wait on their sockets.
pub struct RustClients {
    runtime: Option<tokio::runtime::Runtime>,
}

impl RustClients {
    pub fn new() -> RustClients {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        RustClients { runtime: Some(runtime) }
    }

    pub async fn connect(&self, url: &str) -> ConvexClient {
        let url = url.to_owned();
        let runtime = self.runtime.as_ref().expect("running until shut down");
        runtime.spawn(async move { ConvexClient::new(&url).await.unwrap() }).await.unwrap()
    }

    pub fn shut_down(mut self) {
        self.runtime.take().expect("shut down once").shutdown_background();
    }
}

/// The next result of a `messages:list` subscription, within `patience`.
pub async fn next_bodies(subscription: &mut QuerySubscription, patience: Duration) -> Vec<String> {
    let next = tokio::time::timeout(patience, subscription.next()).await.expect("a result arrives");
    bodies(next.expect("the subscription is open"))
}
