//! An app's configuration files (`schema.ts`, `crons.ts`, `auth.config.ts`) read from its bundle,
//! applied to a real store and registry, and refused with clear errors when they are wrong.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use livebase_auth::Provider;
use livebase_functions::{CRON_JOBS_TABLE, CronSchedule, FunctionError, Identity, Registry, Runtime};
use livebase_js::limits::MAX_BUNDLE_BYTES;
use livebase_js::{App, LoadError};
use livebase_store::{IndexSchema, Store, StoreConfig};
use livebase_value::{Object, Validator, Value};

const ISSUER: &str = "https://issuer.example.com";

fn fixture() -> App {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
    App::load(&folder, &livebase_js::default_npm_dir()).expect("loading the fixture folder")
}

fn env() -> BTreeMap<String, String> {
    BTreeMap::from([("AUTH_ISSUER".to_owned(), ISSUER.to_owned())])
}

/// An app made of `files`, written into a temporary folder.
fn app_of(files: &[(&str, &str)]) -> Result<App, LoadError> {
    let folder = tempfile::tempdir().expect("a temporary directory");
    for (name, source) in files {
        std::fs::write(folder.path().join(name), source).expect("writing a module");
    }
    App::load(folder.path(), &livebase_js::default_npm_dir())
}

const NOTES: &str = r#"
import { mutation } from "./_generated/server";
export const add = mutation({ handler: (ctx, args) => ctx.db.insert("notes", args) });
"#;

#[test]
fn the_schema_gives_tables_indexes_and_validators_and_is_no_function_module() {
    let app = fixture();
    assert!(app.functions().iter().all(|function| function.path.starts_with("notes:")), "{:?}", app.functions());
    let config = app.config(&env()).expect("reading the config");
    let schema = config.schema.expect("the fixture has a schema");
    let names: Vec<_> = schema.tables.iter().map(|table| table.name.as_str()).collect();
    assert_eq!(names, ["notes", "anything"]);
    let notes = &schema.tables[0];
    let index = |name: &str, fields: &[&str]| IndexSchema {
        name: name.to_owned(),
        fields: fields.iter().map(|field| (*field).to_owned()).collect(),
    };
    assert_eq!(notes.indexes, [index("by_author", &["author"]), index("by_author_pinned", &["author", "pinned"])]);
    let Some(Validator::Object(fields)) = &notes.document_validator else { panic!("{:?}", notes.document_validator) };
    assert_eq!(fields.keys().collect::<Vec<_>>(), ["author", "pinned", "text"]);
    assert!(fields["pinned"].optional && !fields["author"].optional);
    // `v.any()` documents: nothing to validate.
    assert_eq!(schema.tables[1].document_validator, None);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(
        config.warnings[0].contains("notes.search_text")
            && config.warnings[0].contains("search indexes are not supported")
    );
}

#[test]
fn crons_of_every_kind_are_read_with_their_function_and_arguments() {
    let config = fixture().config(&env()).expect("reading the config");
    let crons: BTreeMap<_, _> = config.crons.iter().map(|cron| (cron.name.as_str(), cron)).collect();
    let expression = |text: &str| CronSchedule::Expression(text.to_owned());
    let expected = [
        ("tidy", CronSchedule::Every(Duration::from_secs(300)), 10.0),
        ("hourly tidy", expression("15 * * * *"), 1.0),
        ("daily tidy", expression("30 3 * * *"), 2.0),
        ("weekly tidy", expression("0 9 * * 1"), 3.0),
        ("monthly tidy", expression("0 0 1 * *"), 4.0),
        ("expression tidy", expression("*/10 * * * *"), 5.0),
    ];
    assert_eq!(crons.len(), expected.len());
    for (name, schedule, keep) in expected {
        let cron = crons[name];
        assert_eq!(cron.schedule, schedule, "{name}");
        assert_eq!(cron.function, "notes:tidy");
        assert_eq!(cron.args, Object::from([("keep".to_owned(), Value::Float64(keep))]));
    }
}

#[test]
fn the_auth_config_reads_the_deployment_s_environment_variables() {
    let app = fixture();
    let auth = app.config(&env()).expect("reading the config").auth.expect("the fixture has an auth config");
    assert_eq!(auth.providers.len(), 1);
    let Provider::Oidc { .. } = &auth.providers[0] else { panic!("{:?}", auth.providers) };
    assert_eq!(auth.providers[0].issuer(), ISSUER);
    assert_eq!(auth.providers[0].application_id(), Some("notes-app"));
    let error = app.config(&BTreeMap::new()).expect_err("AUTH_ISSUER unset").to_string();
    assert!(error.starts_with("auth.config.ts: ") && error.contains("environment variables"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_applies_to_a_store_and_a_registry() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("opening the store");
    let app = fixture();
    let config = app.config(&env()).expect("reading the config");
    store.apply_schema(config.schema.as_ref().expect("a schema")).await.expect("applying the schema");
    let mut registry = Registry::new();
    app.register(&mut registry).expect("registering the functions");
    config.register_crons(&mut registry).expect("registering the crons");
    let runtime = Runtime::new(store.clone(), registry);
    let scheduler = runtime.start_scheduler().await.expect("starting the scheduler");
    assert_eq!(store.snapshot().documents(CRON_JOBS_TABLE).len(), 6);

    let add = |text: Value| {
        let args = Object::from([("author".to_owned(), Value::from("ada")), ("text".to_owned(), text)]);
        runtime.run_mutation("notes:add", args, &Identity::Unauthenticated)
    };
    add(Value::from("first")).await.result.expect("a note matching the schema");
    let refused = add(Value::Float64(1.0)).await.result.expect_err("`text` is a string in the schema");
    let FunctionError::Failed(message) = refused else { panic!("{refused:?}") };
    assert!(message.contains("text"), "{message}");
    let by_author = Object::from([("author".to_owned(), Value::from("ada"))]);
    let listed = runtime.run_query("notes:byAuthor", by_author, &Identity::Unauthenticated, None, None).result;
    assert_eq!(listed, Ok(Value::Array(vec![Value::from("first")])));

    // Another version of the app: its crons replace the stored ones, its functions the old ones.
    let version = runtime.registry_version();
    runtime.replace_registry(Registry::new()).await.expect("replacing the functions");
    assert!(version.has_changed().expect("the runtime is alive"));
    assert_eq!(store.snapshot().documents(CRON_JOBS_TABLE).len(), 0);
    let by_author = Object::from([("author".to_owned(), Value::from("ada"))]);
    let gone = runtime.run_query("notes:byAuthor", by_author, &Identity::Unauthenticated, None, None).result;
    assert!(matches!(gone, Err(FunctionError::Failed(message)) if message.contains("Could not find")));
    scheduler.stop().await;
}

#[test]
fn without_schema_validation_tables_have_no_validators() {
    let schema = r#"
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({ notes: defineTable({ text: v.string() }) }, { schemaValidation: false });
"#;
    let app = app_of(&[("schema.ts", schema), ("notes.ts", NOTES)]).expect("loading");
    let config = app.config(&BTreeMap::new()).expect("reading the config");
    let schema = config.schema.expect("a schema");
    assert_eq!(schema.tables[0].name, "notes");
    assert_eq!(schema.tables[0].document_validator, None);
    assert!(config.crons.is_empty() && config.auth.is_none());
}

#[test]
fn an_app_without_config_files_has_none() {
    let config = app_of(&[("notes.ts", NOTES)]).expect("loading").config(&BTreeMap::new()).expect("reading");
    assert!(config.schema.is_none() && config.crons.is_empty() && config.auth.is_none() && config.warnings.is_empty());
}

#[test]
fn wrong_config_files_are_refused_naming_the_file() {
    let not_a_schema =
        app_of(&[("schema.ts", "export default { tables: {} };"), ("notes.ts", NOTES)]).expect("loading");
    let error = not_a_schema.config(&BTreeMap::new()).expect_err("not defineSchema").to_string();
    assert!(error.contains("schema.ts: its default export must be `defineSchema({...})`"), "{error}");

    let bad_index = r#"
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({ notes: defineTable({ text: v.string() }).index("by_creation_time", ["text"]) });
"#;
    let reserved = app_of(&[("schema.ts", bad_index), ("notes.ts", NOTES)]).expect("loading");
    let error = reserved.config(&BTreeMap::new()).expect_err("a reserved index name").to_string();
    assert!(error.starts_with("schema.ts: "), "{error}");

    let bad_cron = r#"
import { cronJobs } from "convex/server";
import { internal } from "./_generated/api";
const crons = cronJobs();
crons.cron("never", "not a cron expression", internal.notes.add, {});
export default crons;
"#;
    let app = app_of(&[("crons.ts", bad_cron), ("notes.ts", NOTES)]).expect("loading");
    let config = app.config(&BTreeMap::new()).expect("crons are checked when registered");
    let error = config.register_crons(&mut Registry::new()).expect_err("a bad expression").to_string();
    assert!(error.contains("never") && error.contains("not a cron expression"), "{error}");

    let not_crons = app_of(&[("crons.ts", "export default 42;"), ("notes.ts", NOTES)]).expect("loading");
    let error = not_crons.config(&BTreeMap::new()).expect_err("not cronJobs()").to_string();
    assert!(error.contains("crons.ts: its default export must be the `cronJobs()` object"), "{error}");
}

#[test]
fn bundles_are_loaded_up_to_max_bundle_bytes() {
    let app = fixture();
    let source = app.source();
    assert!(source.len() < MAX_BUNDLE_BYTES);
    // Padding with a comment keeps the bundle what it was, only longer.
    let padded = |length: usize| format!("{source}//{}", "x".repeat(length - source.len() - 2));
    let at_limit = App::from_bundle(padded(MAX_BUNDLE_BYTES)).expect("a bundle of exactly MAX_BUNDLE_BYTES");
    assert_eq!(at_limit.functions().len(), app.functions().len());
    let error = App::from_bundle(padded(MAX_BUNDLE_BYTES + 1)).err().expect("one byte over MAX_BUNDLE_BYTES");
    assert!(matches!(error, LoadError::TooLarge { bytes } if bytes == MAX_BUNDLE_BYTES + 1), "{error}");
    assert!(error.to_string().contains("MAX_BUNDLE_BYTES"));
}
