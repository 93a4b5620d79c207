//! Livebase's TypeScript functions: a Convex `convex/` folder, bundled with esbuild (`bundle.rs`) and
//! run on embedded QuickJS (`engine.rs`: a pool of worker threads, a fresh context per call, memory
//! and time limits per call), registered in a `livebase_functions::Registry` beside Rust functions.
//! Every call goes through the functions crate's one call interface: a TypeScript query is a Rust
//! query whose handler runs the exported function's `invokeQuery`, answering the npm `convex`
//! library's syscalls (`syscalls.rs`) on the same database calls Rust handlers use, so its reads land
//! in the same read set and its pages in the same journal. A TypeScript action is a Rust action whose
//! task answers the `invokeAction`'s async syscalls on its `ActionCtx`; the routes of the router
//! `http.ts` exports are HTTP routes whose handler runs the route's `invokeHttpAction` with a
//! standard `Request`.
//!
//! ```no_run
//! use livebase_functions::Registry;
//!
//! let app = livebase_js::App::load("./convex".as_ref(), &livebase_js::default_npm_dir())?;
//! let mut registry = Registry::new();
//! app.register(&mut registry)?;
//! # Ok::<(), livebase_js::LoadError>(())
//! ```

mod bundle;
mod config;
mod engine;
pub mod limits;
mod syscalls;
mod web;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use livebase_functions::{
    ActionCtx, Function, FunctionCtx, FunctionError, FunctionKind, HttpMethod, HttpRequest, HttpResponse, HttpRoute,
    Registry, RoutePath, Visibility,
};
use livebase_value::{Object, Validator, Value, from_convex_json, to_convex_json};
use serde_json::Value as Json;

pub use bundle::LoadError;
pub use config::{AppConfig, CronJob};
use engine::{Engine, Entry, Invocation, Output};
use syscalls::Syscalls;

/// Where the npm packages livebase-js bundles with (esbuild, `convex`) are installed by the project's
/// scripts: the `npm` folder of this crate.
pub fn default_npm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("npm")
}

/// A function a `convex/` folder exports.
#[derive(Clone, Debug)]
pub struct Exported {
    /// `module/path:name`.
    pub path: String,
    pub kind: FunctionKind,
    pub visibility: Visibility,
    /// From the function's `exportArgs()`; functions declaring no `args` take any object.
    pub args: Validator,
    /// From `exportReturns()`, when the function declares one.
    pub returns: Option<Validator>,
}

/// A loaded `convex/` folder: its bundle, the functions it exports, and the engines that run them.
pub struct App {
    engine: Arc<Engine>,
    bundle: Arc<str>,
    functions: Vec<Exported>,
    routes: Vec<(HttpMethod, RoutePath)>,
}

impl App {
    /// Bundles `convex_dir` with the packages in `npm_dir` and lists its functions (by evaluating the
    /// bundle once).
    pub fn load(convex_dir: &Path, npm_dir: &Path) -> Result<App, LoadError> {
        App::from_bundle(bundle(convex_dir, npm_dir)?)
    }

    /// Lists the functions of a bundle [`bundle`] made (by evaluating it once), as `load` does.
    pub fn from_bundle(source: String) -> Result<App, LoadError> {
        bundle::check_size(&source)?;
        let bundle: Arc<str> = source.into();
        let engine = Arc::new(Engine::start());
        let manifest = engine
            .run(&bundle, Invocation::Manifest, &mut LoadingHost)
            .map_err(|error| LoadError::Evaluation(error.to_string()))?;
        let manifest: Json = serde_json::from_str(&manifest)
            .map_err(|error| LoadError::Evaluation(format!("the manifest is not JSON: {error}")))?;
        let list = |name: &str| manifest.get(name).and_then(Json::as_array).map_or(&[][..], Vec::as_slice);
        let functions = list("functions").iter().map(exported).collect::<Result<_, _>>()?;
        let routes = list("routes").iter().map(route).collect::<Result<_, _>>()?;
        Ok(App { engine, bundle, functions, routes })
    }

    pub fn functions(&self) -> &[Exported] {
        &self.functions
    }

    /// The routes of the router `http.ts` exports, if it has one.
    pub fn routes(&self) -> &[(HttpMethod, RoutePath)] {
        &self.routes
    }

    /// The bundle's source, as [`bundle`] made it.
    pub fn source(&self) -> &str {
        &self.bundle
    }

    /// Reads the app's `schema.ts`, `crons.ts` and `auth.config.ts`, with `env` as `process.env` (Convex
    /// reads them with the deployment's environment variables).
    pub fn config(&self, env: &BTreeMap<String, String>) -> Result<AppConfig, LoadError> {
        let env = serde_json::to_string(env).expect("a map of strings serializes");
        let config = self
            .engine
            .run(&self.bundle, Invocation::Config { env }, &mut LoadingHost)
            .map_err(|error| LoadError::Evaluation(error.to_string()))?;
        config::parse(&config)
    }

    /// Registers every query, mutation and action of the app, and the routes of its `http.ts` router.
    pub fn register(&self, registry: &mut Registry) -> Result<(), LoadError> {
        for function in &self.functions {
            let (module, name) = function.path.split_once(':').expect("manifest paths are `module:name`");
            let call = |entry| {
                Arc::new(JsCall {
                    engine: Arc::clone(&self.engine),
                    bundle: Arc::clone(&self.bundle),
                    module: module.to_owned(),
                    name: name.to_owned(),
                    entry,
                })
            };
            let args = function.args.clone();
            let mut registered = match function.kind {
                FunctionKind::Query => {
                    let call = call(Entry::Query);
                    Function::query(&function.path, args, move |ctx, args| call.run(ctx, args))
                }
                FunctionKind::Mutation => {
                    let call = call(Entry::Mutation);
                    Function::mutation(&function.path, args, move |ctx, args| call.run(ctx, args))
                }
                FunctionKind::Action => {
                    let call = call(Entry::Action);
                    Function::action(&function.path, args, move |ctx, args| {
                        let call = Arc::clone(&call);
                        async move { call.run_action(ctx, args).await }
                    })
                }
            };
            if function.visibility == Visibility::Internal {
                registered = registered.internal();
            }
            if let Some(returns) = &function.returns {
                registered = registered.returns(returns.clone());
            }
            registry.register(registered)?;
        }
        for (method, path) in &self.routes {
            let (engine, bundle) = (Arc::clone(&self.engine), Arc::clone(&self.bundle));
            let handler = move |ctx: ActionCtx, request: HttpRequest| {
                let (engine, bundle) = (Arc::clone(&engine), Arc::clone(&bundle));
                async move { run_http_action(&engine, &bundle, ctx, request).await }
            };
            registry.route(match path {
                RoutePath::Exact(path) => HttpRoute::exact(*method, path, handler),
                RoutePath::Prefix(prefix) => HttpRoute::prefix(*method, prefix, handler),
            })?;
        }
        Ok(())
    }
}

/// Bundles `convex_dir` with the packages in `npm_dir` (esbuild and `convex`) into one ES module, at
/// most `MAX_BUNDLE_BYTES`: what [`App::from_bundle`] loads, here or on the server `livebase deploy`
/// sends it to.
pub fn bundle(convex_dir: &Path, npm_dir: &Path) -> Result<String, LoadError> {
    Ok(bundle::bundle(convex_dir, npm_dir)?.source)
}

/// What a registered handler runs: one exported function of the bundle.
struct JsCall {
    engine: Arc<Engine>,
    bundle: Arc<str>,
    module: String,
    name: String,
    entry: Entry,
}

impl JsCall {
    fn run(&self, ctx: &mut FunctionCtx<'_>, args: Object) -> Result<Value, FunctionError> {
        // The library's entry points take the argument list.
        let args = Json::Array(vec![to_convex_json(&Value::Object(args))]).to_string();
        let invocation =
            Invocation::Call { module: self.module.clone(), name: self.name.clone(), entry: self.entry, args };
        let mut syscalls = Syscalls::new(ctx);
        let result = self.engine.run(&self.bundle, invocation, &mut syscalls);
        if let Some(fault) = syscalls.into_fault() {
            return Err(fault);
        }
        result_value(&result?)
    }

    async fn run_action(&self, ctx: ActionCtx, args: Object) -> Result<Value, FunctionError> {
        let args = Json::Array(vec![to_convex_json(&Value::Object(args))]).to_string();
        let invocation =
            Invocation::Call { module: self.module.clone(), name: self.name.clone(), entry: self.entry, args };
        match self.engine.run_async(&self.bundle, invocation, &ctx).await? {
            Output::Json(result) => result_value(&result),
            Output::Response(_) => unreachable!("a function call's output is its JSON result"),
        }
    }
}

/// The route of the `http` module's router for `request`, run with `ctx`.
async fn run_http_action(
    engine: &Engine,
    bundle: &Arc<str>,
    ctx: ActionCtx,
    request: HttpRequest,
) -> Result<HttpResponse, FunctionError> {
    match engine.run_async(bundle, Invocation::Http(request), &ctx).await? {
        Output::Response(response) => Ok(response),
        Output::Json(_) => unreachable!("an HTTP action's output is its response"),
    }
}

/// A function's result, the `convex_encoded_json` its entry point returns.
fn result_value(result: &str) -> Result<Value, FunctionError> {
    let json: Json = serde_json::from_str(result)
        .map_err(|error| FunctionError::internal(format!("A function's result is not JSON: {error}")))?;
    from_convex_json(&json)
        .map_err(|error| FunctionError::failed(format!("The function returned an invalid value: {error}")))
}

/// One route of the manifest: `{method, path, prefix}`.
fn route(entry: &Json) -> Result<(HttpMethod, RoutePath), LoadError> {
    let text = |name: &str| entry.get(name).and_then(Json::as_str).unwrap_or_default();
    let invalid = |why: String| LoadError::Function { path: format!("http:{} {}", text("method"), text("path")), why };
    let method = match HttpMethod::route_of(text("method")) {
        Some(method) if method.as_str() == text("method") => method,
        _ => return Err(invalid("not a method routes can have".to_owned())),
    };
    let path = text("path").to_owned();
    let path =
        if entry.get("prefix") == Some(&Json::Bool(true)) { RoutePath::Prefix(path) } else { RoutePath::Exact(path) };
    Ok((method, path))
}

/// The host while listing functions: the bundle's top-level code has no database.
struct LoadingHost;

impl engine::Host for LoadingHost {
    fn syscall(&mut self, op: &str, _args: &str) -> Result<String, FunctionError> {
        Err(FunctionError::failed(format!("The syscall `{op}` is not available while a module loads")))
    }

    fn log(&mut self, level: livebase_functions::LogLevel, message: &str) {
        tracing::info!(target: "livebase_js::load", ?level, "{message}");
    }
}

/// One entry of the manifest the prelude's `__livebaseManifest` writes.
fn exported(entry: &Json) -> Result<Exported, LoadError> {
    let text = |name: &str| entry.get(name).and_then(Json::as_str).unwrap_or_default();
    let path = format!("{}:{}", text("module"), text("name"));
    let invalid = |why: String| LoadError::Function { path: path.clone(), why };
    let kind = match text("kind") {
        "query" => FunctionKind::Query,
        "mutation" => FunctionKind::Mutation,
        "action" => FunctionKind::Action,
        other => return Err(invalid(format!("unknown kind `{other}`"))),
    };
    let visibility = if text("visibility") == "public" { Visibility::Public } else { Visibility::Internal };
    let validator = |name: &str| {
        Validator::from_json(entry.get(name).unwrap_or(&Json::Null))
            .map_err(|error| invalid(format!("its `{name}` validator is invalid: {error}")))
    };
    let args = match validator("args")? {
        // No `args`: any object, as Convex takes it.
        Validator::Any => Validator::Record(Box::new(Validator::String), Box::new(Validator::Any)),
        args => args,
    };
    let returns = match entry.get("returns") {
        None | Some(Json::Null) => None,
        Some(_) => Some(validator("returns")?),
    };
    Ok(Exported { path, kind, visibility, args, returns })
}
