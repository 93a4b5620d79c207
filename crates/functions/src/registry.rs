//! The functions an app defines: each a query, mutation or action under a path, public or internal,
//! with an arguments validator, an optional return validator and its handler.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use livebase_value::{Object, Validator, Value};

use crate::context::{ActionCtx, FunctionCtx};
use crate::error::{FunctionError, RegistryError};
use crate::http::{HttpRoute, HttpRouter};
use crate::limits::MAX_CRON_JOBS;
use crate::path::FunctionPath;
use crate::scheduler::{Cron, CronSchedule};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FunctionKind {
    Query,
    Mutation,
    Action,
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FunctionKind::Query => "Query",
            FunctionKind::Mutation => "Mutation",
            FunctionKind::Action => "Action",
        })
    }
}

/// Who may call a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Clients and the server alike.
    Public,
    /// Only the server: actions, scheduled jobs, crons (Convex's `internalQuery` and friends).
    Internal,
}

/// What an action's handler returns: its work, run as a task of its own.
pub type ActionFuture = Pin<Box<dyn Future<Output = Result<Value, FunctionError>> + Send>>;

type TransactionHandler = Arc<dyn Fn(&mut FunctionCtx<'_>, Object) -> Result<Value, FunctionError> + Send + Sync>;
type ActionHandler = Arc<dyn Fn(ActionCtx, Object) -> ActionFuture + Send + Sync>;

/// Queries and mutations share a handler shape: they differ only in whether the context's database
/// accepts writes, which the runtime decides from the kind.
#[derive(Clone)]
pub(crate) enum Handler {
    Query(TransactionHandler),
    Mutation(TransactionHandler),
    Action(ActionHandler),
}

/// A function, ready to register. Build with [`Function::query`], [`Function::mutation`] or
/// [`Function::action`]; they are public until [`Function::internal`].
pub struct Function {
    path: String,
    visibility: Visibility,
    args: Validator,
    returns: Option<Validator>,
    handler: Handler,
}

impl Function {
    /// A query: reads the database at one snapshot, deterministically.
    pub fn query(
        path: &str,
        args: Validator,
        handler: impl Fn(&mut FunctionCtx<'_>, Object) -> Result<Value, FunctionError> + Send + Sync + 'static,
    ) -> Function {
        Function::new(path, args, Handler::Query(Arc::new(handler)))
    }

    /// A mutation: reads and writes in one serializable transaction, run again when it conflicts.
    pub fn mutation(
        path: &str,
        args: Validator,
        handler: impl Fn(&mut FunctionCtx<'_>, Object) -> Result<Value, FunctionError> + Send + Sync + 'static,
    ) -> Function {
        Function::new(path, args, Handler::Mutation(Arc::new(handler)))
    }

    /// An action: async, no database of its own; it runs queries, mutations and other actions.
    pub fn action<F, Fut>(path: &str, args: Validator, handler: F) -> Function
    where
        F: Fn(ActionCtx, Object) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, FunctionError>> + Send + 'static,
    {
        let handler: ActionHandler = Arc::new(move |ctx, args| Box::pin(handler(ctx, args)));
        Function::new(path, args, Handler::Action(handler))
    }

    fn new(path: &str, args: Validator, handler: Handler) -> Function {
        Function { path: path.to_owned(), visibility: Visibility::Public, args, returns: None, handler }
    }

    /// Callable only from the server, not by clients.
    pub fn internal(self) -> Function {
        Function { visibility: Visibility::Internal, ..self }
    }

    /// Checks every value the function returns against `validator` (Convex's `returns`).
    pub fn returns(self, validator: Validator) -> Function {
        Function { returns: Some(validator), ..self }
    }
}

/// A registered function, as the runtime sees it.
pub(crate) struct Registered {
    pub(crate) path: FunctionPath,
    pub(crate) visibility: Visibility,
    pub(crate) args: Validator,
    pub(crate) returns: Option<Validator>,
    pub(crate) handler: Handler,
}

impl Registered {
    pub(crate) fn kind(&self) -> FunctionKind {
        match self.handler {
            Handler::Query(_) => FunctionKind::Query,
            Handler::Mutation(_) => FunctionKind::Mutation,
            Handler::Action(_) => FunctionKind::Action,
        }
    }
}

/// Every function of an app, by path, its crons, by name, and its HTTP routes.
#[derive(Default)]
pub struct Registry {
    functions: BTreeMap<FunctionPath, Arc<Registered>>,
    crons: BTreeMap<String, Cron>,
    http: HttpRouter,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a function. Its path must be valid and new, and its arguments validator an object validator
    /// or a record (any object: what a TypeScript function declaring no `args` takes).
    pub fn register(&mut self, function: Function) -> Result<&mut Registry, RegistryError> {
        let Function { path, visibility, args, returns, handler } = function;
        let path = FunctionPath::parse(&path)?;
        if !matches!(args, Validator::Object(_) | Validator::Record(..)) {
            return Err(RegistryError::ArgsNotObject { path, validator: args.to_string() });
        }
        if self.functions.contains_key(&path) {
            return Err(RegistryError::Duplicate(path));
        }
        let registered = Registered { path: path.clone(), visibility, args, returns, handler };
        self.functions.insert(path, Arc::new(registered));
        Ok(self)
    }

    /// Declares a cron (Convex's `crons.interval` / `crons.cron`): `path` runs with `args` on `schedule`
    /// once the scheduler runs (`Runtime::start_scheduler`). Whether `path` names a mutation or an
    /// action is checked when it runs, as for any scheduled job.
    pub fn cron(
        &mut self,
        name: &str,
        schedule: CronSchedule,
        path: &str,
        args: Object,
    ) -> Result<&mut Registry, RegistryError> {
        if name.trim().is_empty() {
            return Err(RegistryError::InvalidCron { name: name.to_owned(), why: "its name is empty".to_owned() });
        }
        if self.crons.contains_key(name) {
            return Err(RegistryError::DuplicateCron(name.to_owned()));
        }
        if self.crons.len() >= MAX_CRON_JOBS {
            return Err(RegistryError::TooManyCrons(name.to_owned()));
        }
        let cron = Cron::new(name, schedule, path, args)?;
        self.crons.insert(name.to_owned(), cron);
        Ok(self)
    }

    /// Adds an HTTP action (Convex's `http.route`). Paths start with `/`, prefixes also end with it; a
    /// method and path (or prefix) may be routed once.
    pub fn route(&mut self, route: HttpRoute) -> Result<&mut Registry, RegistryError> {
        self.http.add(route)?;
        Ok(self)
    }

    pub(crate) fn http(&self) -> &HttpRouter {
        &self.http
    }

    pub(crate) fn crons(&self) -> &BTreeMap<String, Cron> {
        &self.crons
    }

    pub(crate) fn get(&self, path: &FunctionPath) -> Option<&Arc<Registered>> {
        self.functions.get(path)
    }
}
