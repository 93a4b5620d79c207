//! The `convex/` folder beside this file, bundled with esbuild and run on QuickJS through the
//! functions runtime against a real store in a temporary directory.

use std::path::Path;
use std::time::Instant;

use livebase_functions::{FunctionError, FunctionKind, Identity, Registry, Runtime, UserIdentity, Visibility};
use livebase_js::App;
use livebase_js::limits::{MAX_CALL_DURATION, MAX_CALL_MEMORY_BYTES};
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
    // The schema module and the generated ones export no functions.
    assert!(
        functions
            .iter()
            .all(|function| function.path.starts_with("messages:") || function.path.starts_with("isolation:"))
    );
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
    let failure = |path: &str| match deployment.query(path, Object::new()) {
        Err(FunctionError::Failed(message)) => message,
        other => panic!("{path}: {other:?}"),
    };
    assert_eq!(failure("isolation:throwString"), "Uncaught a plain string");
    assert_eq!(failure("isolation:reject"), "Uncaught TypeError: rejected on purpose");
    assert!(failure("isolation:forever").contains("never settles"));
    assert!(failure("isolation:unknownSyscall").contains("`1.0/notASyscall`"));
    assert!(failure("isolation:recurse").contains("stack"), "a recursion without end stops at MAX_JS_STACK_BYTES");
    assert_eq!(deployment.query("isolation:fine", Object::new()), Ok(Value::from("still fine")));
}
