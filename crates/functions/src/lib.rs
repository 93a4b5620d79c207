//! Livebase's server functions.
//!
//! Owns the function registry (`registry.rs`: named queries, mutations and actions, public or
//! internal, with argument and return validators), the contexts handlers run in (`context.rs`: the
//! database inside one transaction, the caller's identity, logging), and the one function-call
//! interface every language goes through (`runtime.rs`: Rust handlers now, TypeScript through QuickJS
//! later): resolve the path, check the caller and the arguments, run the handler (catching panics),
//! check the result, return it with the call's log lines. HTTP actions (`http.rs`) are routes of the
//! registry, run by the same runtime. Scheduled jobs and crons (`scheduler.rs`)
//! and environment variables (`env.rs`) live in system tables of the store. Values cross it as [`Value`]s. No sockets:
//! the sync and HTTP layers call [`Runtime`].
//!
//! ```
//! use livebase_functions::{
//!     Function, FunctionError, Identity, Registry, Runtime, from_args, object_validator, pagination_options,
//!     pagination_opts_validator, pagination_result,
//! };
//! use livebase_query::{Order, Query};
//! use livebase_store::{Schema, Store, StoreConfig, TableSchema};
//! use livebase_value::{Object, ObjectField, Validator, Value};
//!
//! #[derive(serde::Deserialize)]
//! struct GetArgs {
//!     id: String,
//! }
//!
//! let mut registry = Registry::new();
//! registry
//!     .register(Function::query(
//!         "students:get",
//!         object_validator([("id", ObjectField::required(Validator::Id("students".into())))]),
//!         |ctx, args| {
//!             let GetArgs { id } = from_args(args)?;
//!             let id = ctx.db().normalize_id("students", &id).expect("validated as a students id");
//!             Ok(ctx.db().get(id)?.map_or(Value::Null, |student| Value::Object(student.object().clone())))
//!         },
//!     ))?
//!     .register(Function::query(
//!         "students:listByCenter",
//!         object_validator([
//!             ("centerId", ObjectField::required(Validator::Id("centers".into()))),
//!             ("paginationOpts", ObjectField::required(pagination_opts_validator())),
//!         ]),
//!         |ctx, args| {
//!             let center = args["centerId"].clone();
//!             let students = Query::table("students")
//!                 .with_index("by_center_status", |q| q.eq("centerId", center))
//!                 .order(Order::Desc);
//!             let page = ctx.db().query(students).paginate(&pagination_options(&args["paginationOpts"])?)?;
//!             Ok(pagination_result(&page))
//!         },
//!     ))?
//!     .register(Function::mutation(
//!         "students:create",
//!         object_validator([
//!             ("centerId", ObjectField::required(Validator::Id("centers".into()))),
//!             ("name", ObjectField::required(Validator::String)),
//!         ]),
//!         |ctx, args| {
//!             let Some(Value::String(name)) = args.get("name") else { unreachable!("validated") };
//!             if name.trim().is_empty() {
//!                 return Err(FunctionError::user("A student needs a name"));
//!             }
//!             let mut student = args.clone();
//!             student.insert("status".into(), Value::from("active"));
//!             Ok(Value::String(ctx.db().insert("students", student)?.encode()))
//!         },
//!     ))?;
//!
//! # let directory = tempfile::tempdir()?;
//! let store = Store::open(StoreConfig::new(directory.path()))?;
//! store.apply_schema_blocking(&Schema {
//!     tables: vec![
//!         TableSchema::new("centers"),
//!         TableSchema::new("students").index("by_center_status", &["centerId", "status"]),
//!     ],
//! })?;
//! let (center, _) = store.transact_blocking(|tx| tx.insert("centers", Object::new()))?;
//! let runtime = Runtime::new(store, registry);
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let args = Object::from([
//!     ("centerId".to_owned(), Value::String(center.encode())),
//!     ("name".to_owned(), Value::from("Ada")),
//! ]);
//! let created = runtime.run_mutation("students:create", args, &Identity::Unauthenticated).await;
//! assert!(created.result.is_ok() && created.ts.is_some());
//! # });
//! let options = Object::from([
//!     ("numItems".to_owned(), Value::Float64(20.0)),
//!     ("cursor".to_owned(), Value::Null),
//! ]);
//! let args = Object::from([
//!     ("centerId".to_owned(), Value::String(center.encode())),
//!     ("paginationOpts".to_owned(), Value::Object(options)),
//! ]);
//! let page = runtime.run_query("students:listByCenter", args, &Identity::Unauthenticated, None, None);
//! let Ok(Value::Object(page_fields)) = &page.result else { panic!("{:?}", page.result) };
//! assert!(matches!(&page_fields["page"], Value::Array(students) if students.len() == 1));
//! // The sync layer keeps the journal and hands it to the next run, so the page keeps its end.
//! assert!(page.journal.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod context;
mod env;
mod error;
mod fetch;
mod http;
pub mod limits;
mod log;
mod pagination;
mod path;
mod registry;
mod replays;
mod runtime;
mod scheduler;
mod typed;

pub use context::{
    ActionCtx, ActionScheduler, Auth, Database, FunctionCtx, Identity, QueryRun, Scheduler, UserIdentity,
};
pub use env::ENVIRONMENT_VARIABLES_TABLE;
pub use error::{FunctionError, INTERNAL_ERROR_MESSAGE, RegistryError};
pub use fetch::{HttpRequest, HttpResponse};
pub use http::{HttpActionFuture, HttpMethod, HttpRoute, RoutePath};
pub use log::{LogLevel, LogLine};
pub use pagination::{pagination_options, pagination_opts_validator, pagination_result};
pub use path::{DEFAULT_FUNCTION_NAME, FunctionPath, PathError};
pub use registry::{ActionFuture, Function, FunctionKind, Registry, Visibility};
pub use replays::{MUTATION_REPLAYS_TABLE, RequestKey};
pub use runtime::{ActionOutcome, HttpActionOutcome, MutationOutcome, QueryOutcome, Runtime};
pub use scheduler::{
    CRON_JOBS_TABLE, CronSchedule, JobState, SCHEDULED_FUNCTIONS_TABLE, ScheduledJob, SchedulerHandle,
};
pub use typed::from_args;

use livebase_value::{ObjectField, Validator};

/// An object validator from its fields, the shape of a function's `args` (`{id: v.id("students")}`).
pub fn object_validator<'a>(fields: impl IntoIterator<Item = (&'a str, ObjectField)>) -> Validator {
    Validator::Object(fields.into_iter().map(|(name, field)| (name.to_owned(), field)).collect())
}

/// Compiles the README's examples (this crate depends on every crate they use), so they keep
/// matching the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeExamples;
