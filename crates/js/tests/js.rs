//! The `convex/` folder beside this file, bundled with esbuild and run on QuickJS through the
//! functions runtime against a real store in a temporary directory.

use std::path::Path;
use std::time::Instant;

use livebase_functions::limits::MAX_NESTED_CALL_DEPTH;
use livebase_functions::{
    FunctionError, FunctionKind, HttpRequest, Identity, JobState, Registry, Runtime, ScheduledJob, UserIdentity,
    Visibility,
};
use livebase_js::App;
use livebase_js::limits::{
    MAX_CALL_DURATION, MAX_CALL_MEMORY_BYTES, MAX_CALLS_PER_CONTEXT, MAX_JS_WORKERS, MAX_PENDING_ASYNC_SYSCALLS,
    MAX_RUNNING_JS_ACTIONS,
};
use livebase_store::{Schema, Store, StoreConfig, TableSchema};
use livebase_value::{Object, Validator, Value};

struct Deployment {
    runtime: Runtime,
    app: App,
    _directory: tempfile::TempDir,
}

async fn deploy() -> Deployment {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("opening the store");
    store
        .apply_schema(&Schema { tables: vec![TableSchema::new("messages").index("by_channel", &["channel"])] })
        .await
        .expect("applying the schema");
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convex");
    let app = App::load(&folder, &livebase_js::default_npm_dir()).expect("loading the convex folder");
    let mut registry = Registry::new();
    app.register(&mut registry).expect("registering its functions");
    Deployment { runtime: Runtime::new(store, registry), app, _directory: directory }
}

fn args<const N: usize>(fields: [(&str, Value); N]) -> Object {
    fields.into_iter().map(|(name, value)| (name.to_owned(), value)).collect()
}

fn strings(values: &[&str]) -> Value {
    Value::Array(values.iter().map(|value| Value::from(*value)).collect())
}

impl Deployment {
    fn query(&self, path: &str, arguments: Object) -> Result<Value, FunctionError> {
        self.runtime.run_query(path, arguments, &Identity::Unauthenticated, None, None).result
    }

    async fn action(&self, path: &str, arguments: Object) -> Result<Value, FunctionError> {
        self.runtime.run_action(path, arguments, &Identity::Unauthenticated).await.result
    }

    async fn mutation(&self, path: &str, arguments: Object) -> Result<Value, FunctionError> {
        self.runtime.run_mutation(path, arguments, &Identity::Unauthenticated).await.result
    }

    fn jobs_count(&self) -> Result<Value, FunctionError> {
        self.query("jobs:count", Object::new())
    }

    /// The job `id` once it has finished, watching the commits to `_scheduled_functions`.
    async fn finished_job(&self, id: &Value) -> ScheduledJob {
        let Value::String(id) = id else { panic!("a job id: {id:?}") };
        loop {
            // Subscribed before looking, so the commit that settles the job is seen either way.
            let mut commits = self.runtime.store().subscribe();
            let job = self.runtime.scheduled_jobs().into_iter().find(|job| job.id.encode() == *id).expect("the job");
            if !matches!(job.state, JobState::Pending | JobState::InProgress) {
                return job;
            }
            commits.recv().await.expect("the store's commits");
        }
    }

    async fn send(&self, channel: &str, body: &str, n: f64) -> String {
        let arguments =
            args([("channel", Value::from(channel)), ("body", Value::from(body)), ("n", Value::Float64(n))]);
        let outcome = self.runtime.run_mutation("messages:send", arguments, &Identity::Unauthenticated).await;
        let Ok(Value::String(id)) = outcome.result else { panic!("send: {:?}", outcome.result) };
        id
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_functions_are_listed_with_kind_visibility_and_validators() {
    let deployment = deploy().await;
    let functions = deployment.app.functions();
    let find = |path: &str| functions.iter().find(|function| function.path == path).expect(path);
    let send = find("messages:send");
    assert_eq!((send.kind, send.visibility), (FunctionKind::Mutation, Visibility::Public));
    let Validator::Object(fields) = &send.args else { panic!("{:?}", send.args) };
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["body", "channel", "n"]);
    assert_eq!(fields["n"].validator, Validator::Float64);
    let internal = find("messages:internalCount");
    assert_eq!((internal.kind, internal.visibility), (FunctionKind::Query, Visibility::Internal));
    assert!(matches!(find("messages:argumentNames").args, Validator::Record(..)));
    assert_eq!(find("actions:callEverything").kind, FunctionKind::Action);
    assert_eq!(find("actions:echo").visibility, Visibility::Internal);
    // The schema module, the router and the generated modules export no functions.
    let modules = ["messages:", "isolation:", "web:", "actions:", "jobs:", "env:"];
    assert!(functions.iter().all(|function| modules.iter().any(|module| function.path.starts_with(module))));
    let routes: Vec<String> = deployment.app.routes().iter().map(|(method, path)| format!("{method} {path}")).collect();
    assert_eq!(routes, ["GET /hello", "GET /env", "POST /messages/*"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_and_mutations_read_and_write_the_store() {
    let deployment = deploy().await;
    let first = deployment.send("general", "one", 1.0).await;
    deployment.send("general", "two", 2.0).await;
    deployment.send("general", "hidden", 3.0).await;
    deployment.send("general", "four", 4.0).await;
    deployment.send("random", "elsewhere", 5.0).await;

    let latest =
        deployment.query("messages:latest", args([("channel", "general".into()), ("count", Value::Float64(2.0))]));
    assert_eq!(latest, Ok(strings(&["four", "hidden"])));
    let at_least = deployment.query("messages:atLeast", args([("n", Value::Float64(4.0))]));
    assert_eq!(at_least, Ok(Value::Array(vec![Value::Float64(4.0), Value::Float64(5.0)])));

    // Pages with a filter: the hidden message is skipped, and the second page starts at the cursor.
    let options = |cursor: Value| Value::Object(args([("numItems", Value::Float64(2.0)), ("cursor", cursor)]));
    let page = |cursor: Value| {
        let arguments = args([("channel", "general".into()), ("paginationOpts", options(cursor))]);
        let Ok(Value::Object(page)) = deployment.query("messages:page", arguments) else { panic!("a page") };
        page
    };
    let first_page = page(Value::Null);
    assert_eq!(first_page["page"], strings(&["one", "two"]));
    assert_eq!(first_page["isDone"], Value::Boolean(false));
    let second_page = page(first_page["continueCursor"].clone());
    assert_eq!(second_page["page"], strings(&["four"]));
    assert_eq!(second_page["isDone"], Value::Boolean(true));

    // Patch (a field set to undefined is removed), replace, delete.
    let edit = args([("id", Value::from(first.as_str())), ("body", "edited".into())]);
    let edited = deployment.runtime.run_mutation("messages:edit", edit, &Identity::Unauthenticated).await;
    let Ok(Value::Object(edited)) = edited.result else { panic!("{:?}", edited.result) };
    assert_eq!(edited["body"], Value::from("edited"));
    assert!(!edited.contains_key("n"), "{edited:?}");
    let rewrite = args([("id", Value::from(first.as_str()))]);
    let rewritten = deployment.runtime.run_mutation("messages:rewrite", rewrite, &Identity::Unauthenticated).await;
    assert_eq!(rewritten.result, Ok(Value::Null));
    let archive =
        deployment.query("messages:latest", args([("channel", "archive".into()), ("count", Value::Float64(9.0))]));
    assert_eq!(archive, Ok(strings(&["rewritten"])));
    let remove = args([("id", Value::from(first.as_str()))]);
    let removed = deployment.runtime.run_mutation("messages:remove", remove, &Identity::Unauthenticated).await;
    assert_eq!(removed.result, Ok(Value::Null), "a deleted document reads as null in its own mutation");

    // ConvexError: the data reaches the caller, and the failed mutation commits nothing.
    let edit = args([("id", Value::from(first.as_str())), ("body", "again".into())]);
    let missing = deployment.runtime.run_mutation("messages:edit", edit, &Identity::Unauthenticated).await;
    let Err(FunctionError::User { data: Value::Object(data), .. }) = &missing.result else {
        panic!("{:?}", missing.result)
    };
    assert_eq!(data["code"], Value::from("NOT_FOUND"));
    assert_eq!(data["id"], Value::from(first.as_str()));
    assert_eq!(missing.ts, None);

    // normalizeId: an id of the table, or null.
    let second = deployment.send("general", "five", 6.0).await;
    assert_eq!(
        deployment.query("messages:normalize", args([("id", Value::from(second.as_str()))])),
        Ok(Value::from(second.as_str()))
    );
    assert_eq!(deployment.query("messages:normalize", args([("id", "not an id".into())])), Ok(Value::Null));

    // Internal functions are the server's; functions without `args` take any object.
    assert!(deployment.query("messages:internalCount", Object::new()).is_err());
    let count = deployment.runtime.run_query("messages:internalCount", Object::new(), &Identity::System, None, None);
    assert_eq!(count.result, Ok(Value::Float64(5.0)));
    let names = deployment.query("messages:argumentNames", args([("b", Value::Null), ("a", Value::Null)]));
    assert_eq!(names, Ok(strings(&["a", "b"])));
}

#[tokio::test(flavor = "multi_thread")]
async fn console_lines_are_the_calls_log_lines() {
    let deployment = deploy().await;
    let arguments = args([("channel", "general".into()), ("body", "hello".into()), ("n", Value::Float64(7.0))]);
    let outcome = deployment.runtime.run_mutation("messages:send", arguments, &Identity::Unauthenticated).await;
    assert!(outcome.result.is_ok());
    let lines: Vec<String> = outcome.log_lines.iter().map(ToString::to_string).collect();
    assert_eq!(lines, [r#"[LOG] sending hello {"n":7}"#]);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_user_identity_sees_the_callers_token() {
    let deployment = deploy().await;
    let user = UserIdentity {
        token_identifier: "https://issuer.example|ada".to_owned(),
        subject: "ada".to_owned(),
        issuer: "https://issuer.example".to_owned(),
        claims: args([("name", "Ada Lovelace".into())]),
    };
    let outcome = deployment.runtime.run_query("messages:whoami", Object::new(), &Identity::User(user), None, None);
    let expected = Value::Object(args([("subject", "ada".into()), ("name", "Ada Lovelace".into())]));
    assert_eq!(outcome.result, Ok(expected));
    assert!(outcome.read_identity, "the run depends on who calls");
    assert_eq!(deployment.query("messages:whoami", Object::new()), Ok(Value::Null));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_querys_read_set_is_invalidated_by_matching_writes_only() {
    let deployment = deploy().await;
    deployment.send("general", "one", 1.0).await;
    let arguments = args([("channel", "general".into()), ("count", Value::Float64(10.0))]);
    let mut outcome =
        deployment.runtime.run_query("messages:latest", arguments, &Identity::Unauthenticated, None, None);
    assert_eq!(outcome.result, Ok(strings(&["one"])));
    outcome.read_set.normalize();
    let mut commits = deployment.runtime.store().subscribe();

    deployment.send("random", "elsewhere", 2.0).await;
    let unrelated = commits.recv().await.expect("the commit");
    assert!(!unrelated.keys.iter().any(|key| outcome.read_set.contains(key)), "another channel's message");

    deployment.send("general", "two", 3.0).await;
    let related = commits.recv().await.expect("the commit");
    assert!(related.keys.iter().any(|key| outcome.read_set.contains(key)), "a message of the channel read");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_loop_fails_its_call_at_the_time_limit() {
    let deployment = deploy().await;
    let started = Instant::now();
    let Err(FunctionError::Failed(message)) = deployment.query("isolation:spin", Object::new()) else {
        panic!("the loop must fail")
    };
    assert!(message.contains("MAX_CALL_DURATION"), "{message}");
    assert!(started.elapsed() >= MAX_CALL_DURATION);
    assert_eq!(deployment.query("isolation:fine", Object::new()), Ok(Value::from("still fine")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_allocation_fails_its_call_at_the_memory_limit() {
    let deployment = deploy().await;
    let Err(FunctionError::Failed(message)) = deployment.query("isolation:hog", Object::new()) else {
        panic!("the allocation must fail")
    };
    assert!(message.contains(&format!("{MAX_CALL_MEMORY_BYTES} bytes")), "{message}");
    assert!(message.contains("MAX_CALL_MEMORY_BYTES"), "{message}");
    assert_eq!(deployment.query("isolation:fine", Object::new()), Ok(Value::from("still fine")));
}

#[tokio::test(flavor = "multi_thread")]
async fn thrown_values_rejections_and_unsettled_promises_fail_only_their_call() {
    let deployment = deploy().await;
    // The worker that ran the failing call may keep or replace its context: the next call works either way.
    let failure = |path: &str| {
        let message = match deployment.query(path, Object::new()) {
            Err(FunctionError::Failed(message)) => message,
            other => panic!("{path}: {other:?}"),
        };
        assert_eq!(deployment.query("isolation:fine", Object::new()), Ok(Value::from("still fine")), "after {path}");
        message
    };
    assert_eq!(failure("isolation:throwString"), "Uncaught a plain string");
    assert_eq!(failure("isolation:reject"), "Uncaught TypeError: rejected on purpose");
    assert!(failure("isolation:forever").contains("never settles"));
    assert!(failure("isolation:unknownSyscall").contains("`1.0/notASyscall`"));
    assert!(failure("isolation:recurse").contains("stack"), "a recursion without end stops at MAX_JS_STACK_BYTES");
}

#[tokio::test(flavor = "multi_thread")]
async fn module_level_state_lives_at_most_max_calls_per_context_calls() {
    let deployment = deploy().await;
    let count = |n: f64| {
        let Ok(Value::Object(result)) = deployment.query("isolation:countCalls", args([("n", Value::from(n))])) else {
            panic!("countCalls must answer an object")
        };
        assert_eq!(result["double"], Value::from(2.0 * n), "the result is the call's own");
        let Value::Float64(calls) = result["calls"] else { panic!("{result:?}") };
        calls as usize
    };
    // One more call than the workers' contexts can serve in all: some worker serves more than
    // MAX_CALLS_PER_CONTEXT, so its context is replaced after that many calls, one of which may
    // have been the listing of the functions when the app was loaded.
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(MAX_JS_WORKERS);
    let most = (0..workers * MAX_CALLS_PER_CONTEXT + 1).map(|n| count(n as f64)).max().expect("calls were made");
    assert!((MAX_CALLS_PER_CONTEXT - 1..=MAX_CALLS_PER_CONTEXT).contains(&most), "{most}");
    // A failed call, however it failed, leaves the next calls correct.
    for failing in ["isolation:throwString", "isolation:hog", "isolation:forever", "isolation:recurse"] {
        assert!(deployment.query(failing, Object::new()).is_err(), "{failing}");
        assert!((1..=MAX_CALLS_PER_CONTEXT).contains(&count(21.0)), "after {failing}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_runs_a_query_a_mutation_and_another_action() {
    let deployment = deploy().await;
    let arguments = args([("channel", "a".into())]);
    let outcome = deployment.runtime.run_action("actions:callEverything", arguments, &Identity::Unauthenticated).await;
    let Ok(Value::Object(result)) = &outcome.result else { panic!("{:?}", outcome.result) };
    assert!(matches!(&result["id"], Value::String(_)), "{result:?}");
    assert_eq!(result["latest"], strings(&["from an action"]), "the mutation committed before the query ran");
    assert_eq!(result["echoed"], Value::from("echo: hi"));
    let lines: Vec<String> = outcome.log_lines.iter().map(ToString::to_string).collect();
    assert!(lines.contains(&r#"[LOG] sending from an action {"n":1}"#.to_owned()), "{lines:?}");
    assert!(lines.contains(&"[LOG] called everything".to_owned()), "{lines:?}");
    // Internal functions are the server's, even when they are actions.
    assert!(deployment.action("actions:echo", args([("said", "x".into())])).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_has_at_most_max_pending_async_syscalls_under_way() {
    let deployment = deploy().await;
    let limit = MAX_PENDING_ASYNC_SYSCALLS as f64;
    let at_limit = deployment.action("actions:concurrently", args([("n", Value::Float64(limit))])).await;
    assert_eq!(at_limit, Ok(Value::Float64(limit)));
    let over = deployment.action("actions:concurrently", args([("n", Value::Float64(limit + 1.0))])).await;
    let Err(FunctionError::Failed(message)) = over else { panic!("one call too many must fail: {over:?}") };
    assert!(message.contains("MAX_PENDING_ASYNC_SYSCALLS"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mutations_and_actions_schedule_jobs_that_run_and_cancel_them() {
    let deployment = deploy().await;
    let scheduler = deployment.runtime.start_scheduler().await.expect("the scheduler starts");
    let from_mutation = deployment.mutation("jobs:scheduleRecord", args([("note", "from a mutation".into())])).await;
    let from_action = deployment.action("actions:scheduleRecord", args([("note", "from an action".into())])).await;
    for id in [from_mutation.unwrap(), from_action.unwrap()] {
        let job = deployment.finished_job(&id).await;
        assert_eq!((job.name.as_str(), job.state), ("jobs:record", JobState::Success), "{job:?}");
    }
    assert_eq!(deployment.jobs_count(), Ok(Value::Float64(2.0)));

    for canceled in [
        deployment.mutation("jobs:scheduleAndCancel", Object::new()).await,
        deployment.action("actions:scheduleAndCancel", Object::new()).await,
    ] {
        let job = deployment.finished_job(&canceled.unwrap()).await;
        assert_eq!(job.state, JobState::Canceled);
    }
    scheduler.stop().await;
    assert_eq!(deployment.jobs_count(), Ok(Value::Float64(2.0)), "canceled jobs never ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_udf_runs_the_other_function_in_the_same_transaction() {
    let deployment = deploy().await;
    let counted = deployment.mutation("jobs:recordAndCount", args([("note", "one".into())])).await;
    assert_eq!(counted, Ok(Value::Float64(1.0)), "the nested query reads the nested mutation's write");

    // A nested mutation that fails fails its caller, caught or not, and nothing of the call commits.
    let failed = deployment.mutation("jobs:recordThenCatchFailure", Object::new()).await;
    let Err(FunctionError::User { data: Value::Object(data), .. }) = &failed else { panic!("{failed:?}") };
    assert_eq!(data["code"], Value::from("NESTED_FAILED"));
    assert_eq!(deployment.jobs_count(), Ok(Value::Float64(1.0)));
}

#[tokio::test(flavor = "multi_thread")]
async fn convex_errors_reach_an_actions_caller_with_their_data() {
    let deployment = deploy().await;
    let failed = deployment.action("actions:failWithData", Object::new()).await;
    let Err(FunctionError::User { data: Value::Object(data), .. }) = &failed else { panic!("{failed:?}") };
    assert_eq!((&data["code"], &data["retry"]), (&Value::from("NOPE"), &Value::Boolean(false)));

    let relayed = deployment.action("actions:relayMutationError", Object::new()).await;
    let Ok(Value::Object(relayed)) = &relayed else { panic!("{relayed:?}") };
    assert_eq!(relayed["name"], Value::from("ConvexError"));
    assert_eq!(relayed["data"], Value::Object(args([("code", "NESTED_FAILED".into())])));
    assert_eq!(deployment.jobs_count(), Ok(Value::Float64(0.0)), "the failed mutation committed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_action_fails_only_its_call() {
    let deployment = deploy().await;
    let failure = async |path: &str| match deployment.action(path, Object::new()).await {
        Err(FunctionError::Failed(message)) => message,
        other => panic!("{path}: {other:?}"),
    };
    assert!(failure("actions:never").await.contains("never settles"));
    let started = Instant::now();
    let spun = failure("actions:spin").await;
    assert!(spun.contains("MAX_CALL_DURATION"), "{spun}");
    assert!(started.elapsed() >= MAX_CALL_DURATION);
    assert!(failure("actions:hog").await.contains("MAX_CALL_MEMORY_BYTES"));
    assert_eq!(failure("actions:throwString").await, "Uncaught a plain string");
    assert_eq!(failure("actions:reject").await, "Uncaught TypeError: rejected on purpose");
    assert!(failure("actions:readInAction").await.contains("`1.0/db/normalizeId` is not available in actions"));
    assert!(failure("actions:unknownSyscall").await.contains("`1.0/notASyscall`"));
    assert_eq!(deployment.action("actions:fine", Object::new()).await, Ok(Value::from("still fine")));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_routes_answer_get_and_post_with_standard_requests_and_responses() {
    let deployment = deploy().await;
    let request = HttpRequest::get("http://localhost:3211/hello?name=Ada");
    let outcome = deployment.runtime.run_http_action(request, &Identity::Unauthenticated).await;
    assert_eq!((outcome.response.status, outcome.response.body.as_slice()), (200, &b"hello Ada"[..]));
    assert_eq!(outcome.response.header("content-type"), Some("text/plain"));

    let request = HttpRequest::post("http://localhost:3211/messages/general", "posted").header("x-test", "1");
    let outcome = deployment.runtime.run_http_action(request, &Identity::Unauthenticated).await;
    assert_eq!(outcome.response.status, 201, "{:?}", String::from_utf8_lossy(&outcome.response.body));
    assert_eq!(outcome.response.header("x-method"), Some("POST"));
    let body = outcome.response.json().expect("a JSON body");
    assert_eq!((&body["channel"], &body["body"]), (&serde_json::json!("general"), &serde_json::json!("posted")));
    let arguments = args([("channel", "general".into()), ("count", Value::Float64(1.0))]);
    assert_eq!(
        deployment.query("messages:latest", arguments),
        Ok(strings(&["posted"])),
        "the route's mutation committed"
    );

    let unrouted = HttpRequest::get("http://localhost:3211/nowhere");
    let outcome = deployment.runtime.run_http_action(unrouted, &Identity::Unauthenticated).await;
    assert_eq!(outcome.response.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_in_a_query_fails_clearly() {
    let deployment = deploy().await;
    let Err(FunctionError::Failed(message)) = deployment.query("jobs:fetchInQuery", Object::new()) else {
        panic!("fetch in a query must fail")
    };
    assert!(message.contains("fetch is only available in actions"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nested_calls_run_on_their_callers_worker_up_to_max_nested_call_depth() {
    let deployment = deploy().await;
    // More levels than the machine has workers: each runs on the worker of the call it is nested in.
    let deepest = (MAX_NESTED_CALL_DEPTH - 1) as f64;
    assert_eq!(deployment.query("jobs:nest", args([("n", Value::Float64(deepest))])), Ok(Value::Float64(deepest)));
    let Err(FunctionError::Failed(message)) =
        deployment.query("jobs:nest", args([("n", Value::Float64(deepest + 1.0))]))
    else {
        panic!("one level too many must fail")
    };
    assert!(message.contains("MAX_NESTED_CALL_DEPTH"), "{message}");

    // Actions running at once, each with queries under way at once.
    let mut actions = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let runtime = deployment.runtime.clone();
        let arguments = args([("n", Value::Float64(8.0))]);
        actions.spawn(async move {
            runtime.run_action("actions:queriesAtOnce", arguments, &Identity::Unauthenticated).await.result
        });
    }
    while let Some(result) = actions.join_next().await {
        assert_eq!(result.expect("the action's task"), Ok(Value::Float64(16.0)));
    }
}

/// A one-request HTTP server on a real socket: answers `pong: <body>`, and hands over what it received.
fn serve_one_request() -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}/echo", listener.local_addr().expect("its address"));
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the action's connection");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            assert!(reader.read_line(&mut head).expect("the request's head") > 0, "the head ends early: {head}");
        }
        let length = head
            .lines()
            .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
            .map_or(0, |length| length.trim().parse().expect("a length"));
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("the request's body");
        let answer = format!("pong: {}", String::from_utf8_lossy(&body));
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-answer: 42\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        reader.get_mut().write_all(response.as_bytes()).expect("answering");
        head.to_ascii_lowercase()
    });
    (url, server)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_actions_fetch_goes_through_the_action_context() {
    let deployment = deploy().await;
    let (url, server) = serve_one_request();
    let fetched = deployment.action("actions:fetchPost", args([("url", Value::from(url.as_str()))])).await;
    let expected = args([("status", Value::Float64(200.0)), ("body", "pong: ping".into()), ("answer", "42".into())]);
    assert_eq!(fetched, Ok(Value::Object(expected)));
    let head = server.join().expect("the server");
    assert!(head.starts_with("post /echo http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nx-sent: yes\r\n"), "{head}");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_max_running_js_actions_run_at_once() {
    let deployment = deploy().await;
    // A server that accepts connections and never answers: each action waits on its fetch.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}/hold", listener.local_addr().expect("its address"));
    let accepting = tokio::task::spawn_blocking(move || {
        (0..MAX_RUNNING_JS_ACTIONS).map(|_| listener.accept().expect("an action's connection").0).collect::<Vec<_>>()
    });
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..MAX_RUNNING_JS_ACTIONS {
        let runtime = deployment.runtime.clone();
        let arguments = args([("url", Value::from(url.as_str()))]);
        running.spawn(async move {
            runtime.run_action("actions:fetchPost", arguments, &Identity::Unauthenticated).await.result
        });
    }
    // Every action has connected, so every one is running.
    let held = accepting.await.expect("the server");

    let Err(FunctionError::Failed(message)) = deployment.action("actions:fine", Object::new()).await else {
        panic!("one action too many must fail")
    };
    assert!(message.contains("MAX_RUNNING_JS_ACTIONS"), "{message}");

    drop(held);
    while let Some(result) = running.join_next().await {
        let result = result.expect("the action's task");
        assert!(matches!(&result, Err(FunctionError::Failed(message)) if message.contains("fetch")), "{result:?}");
    }
    assert_eq!(deployment.action("actions:fine", Object::new()).await, Ok(Value::from("still fine")));
}

/// What `env.ts`'s `variable(name)` answers: the value, its `typeof`, and whether `name in process.env`.
fn variable(value: Option<&str>) -> Object {
    args([
        ("value", value.map_or(Value::Null, Value::from)),
        ("type", Value::from(if value.is_some() { "string" } else { "undefined" })),
        ("present", Value::Boolean(value.is_some())),
    ])
}

const READ_ONLY: &str = "TypeError: process.env is read-only";

#[tokio::test(flavor = "multi_thread")]
async fn a_querys_process_env_reads_the_deployments_variables_reactively() {
    let deployment = deploy().await;
    let read = |name: &str| {
        deployment.runtime.run_query("env:read", args([("name", name.into())]), &Identity::Unauthenticated, None, None)
    };
    let mut unset = read("GREETING");
    assert_eq!(unset.result, Ok(Value::Object(variable(None))));
    assert_eq!(deployment.query("env:atModuleLoad", Object::new()), Ok(Value::Null));
    assert_eq!(deployment.query("env:names", Object::new()), Ok(strings(&[])));

    // Setting the variable writes what the query read: a live query re-runs.
    unset.read_set.normalize();
    let mut commits = deployment.runtime.store().subscribe();
    deployment.runtime.set_env("GREETING", "hello").await.expect("setting a variable");
    let commit = commits.recv().await.expect("the commit");
    assert!(commit.keys.iter().any(|key| unset.read_set.contains(key)), "the query's read set covers the variable");
    assert_eq!(read("GREETING").result, Ok(Value::Object(variable(Some("hello")))));
    assert_eq!(deployment.query("env:atModuleLoad", Object::new()), Ok(Value::from("hello")), "read in the call");
    assert_eq!(read("OTHER").result, Ok(Value::Object(variable(None))));

    deployment.runtime.set_env("OTHER", "").await.expect("setting a variable");
    assert_eq!(read("OTHER").result, Ok(Value::Object(variable(Some("")))), "an empty value is set");
    assert_eq!(deployment.query("env:names", Object::new()), Ok(strings(&["GREETING", "OTHER"])));
}

#[tokio::test(flavor = "multi_thread")]
async fn mutations_and_actions_see_process_env_read_only() {
    let deployment = deploy().await;
    let name = args([("name", "TURN_SECRET".into())]);
    let with_assignment = |value: Option<&str>, assignment: &str| {
        let mut expected = variable(value);
        expected.insert("assignment".to_owned(), Value::from(assignment));
        expected
    };
    let Ok(Value::Object(unset)) = deployment.mutation("env:readInMutation", name.clone()).await else {
        panic!("the mutation runs")
    };
    let assignment = unset["assignment"].clone();
    assert!(matches!(&assignment, Value::String(message) if message.starts_with(READ_ONLY)), "{assignment:?}");
    let Value::String(assignment) = assignment else { unreachable!() };
    assert_eq!(unset, with_assignment(None, &assignment));

    deployment.runtime.set_env("TURN_SECRET", "s3cret").await.expect("setting a variable");
    assert_eq!(
        deployment.mutation("env:readInMutation", name.clone()).await,
        Ok(Value::Object(with_assignment(Some("s3cret"), &assignment)))
    );

    let Ok(Value::Object(mut from_action)) = deployment.action("env:readInAction", name.clone()).await else {
        panic!("the action runs")
    };
    assert_eq!(from_action.remove("names"), Some(strings(&["TURN_SECRET"])), "no variable a function assigned");
    let action_assignment = from_action["assignment"].clone();
    assert!(matches!(&action_assignment, Value::String(message) if message.starts_with(READ_ONLY)));
    let Value::String(action_assignment) = action_assignment else { unreachable!() };
    assert_eq!(from_action, with_assignment(Some("s3cret"), &action_assignment));

    assert_eq!(deployment.runtime.remove_env("TURN_SECRET").await, Ok(true));
    let Ok(Value::Object(mut from_action)) = deployment.action("env:readInAction", name).await else {
        panic!("the action runs")
    };
    assert_eq!(from_action.remove("names"), Some(strings(&[])));
    assert_eq!(from_action, with_assignment(None, &action_assignment), "an action reads the variables when it starts");

    let http_env = || async {
        let request = HttpRequest::get("http://localhost:3211/env?name=TURN_SECRET");
        let outcome = deployment.runtime.run_http_action(request, &Identity::Unauthenticated).await;
        String::from_utf8(outcome.response.body).expect("a text body")
    };
    assert_eq!(http_env().await, "(unset)");
    deployment.runtime.set_env("TURN_SECRET", "for http").await.expect("setting a variable");
    assert_eq!(http_env().await, "for http", "an HTTP action's process.env is the deployment's");
}
