//! Livebase's TypeScript functions: a Convex `convex/` folder, bundled with esbuild (`bundle.rs`) and
//! run on embedded QuickJS (`engine.rs`: a pool of worker threads, a fresh context per call, memory
//! and time limits per call), registered in a `livebase_functions::Registry` beside Rust functions.
//! Every call goes through the functions crate's one call interface: a TypeScript query is a Rust
//! query whose handler runs the exported function's `invokeQuery`, answering the npm `convex`
//! library's syscalls (`syscalls.rs`) on the same database calls Rust handlers use, so its reads land
//! in the same read set and its pages in the same journal.
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
mod engine;
pub mod limits;
mod syscalls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use livebase_functions::{Function, FunctionCtx, FunctionError, FunctionKind, Registry, Visibility};
use livebase_value::{Object, Validator, Value, from_convex_json, to_convex_json};
use serde_json::Value as Json;

pub use bundle::LoadError;
use engine::{Engine, Entry, Invocation};
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
}

impl App {
    /// Bundles `convex_dir` with the packages in `npm_dir` and lists its functions (by evaluating the
    /// bundle once).
    pub fn load(convex_dir: &Path, npm_dir: &Path) -> Result<App, LoadError> {
        let bundle: Arc<str> = bundle::bundle(convex_dir, npm_dir)?.source.into();
        let engine = Arc::new(Engine::start());
        let manifest = engine
            .run(&bundle, Invocation::Manifest, &mut LoadingHost)
            .map_err(|error| LoadError::Evaluation(error.to_string()))?;
        let manifest: Vec<Json> = serde_json::from_str(&manifest)
            .map_err(|error| LoadError::Evaluation(format!("the manifest is not JSON: {error}")))?;
        let functions = manifest.iter().map(exported).collect::<Result<_, _>>()?;
        Ok(App { engine, bundle, functions })
    }

    pub fn functions(&self) -> &[Exported] {
        &self.functions
    }

    /// Registers every query and mutation of the app. Actions are not run yet: they are left out, with
    /// a warning each.
    pub fn register(&self, registry: &mut Registry) -> Result<(), LoadError> {
        for function in &self.functions {
            let entry = match function.kind {
                FunctionKind::Query => Entry::Query,
                FunctionKind::Mutation => Entry::Mutation,
                FunctionKind::Action => {
                    tracing::warn!(function = %function.path, "TypeScript actions are not supported yet: not registered");
                    continue;
                }
            };
            let (module, name) = function.path.split_once(':').expect("manifest paths are `module:name`");
            let call = JsCall {
                engine: Arc::clone(&self.engine),
                bundle: Arc::clone(&self.bundle),
                module: module.to_owned(),
                name: name.to_owned(),
                entry,
            };
            let handler = move |ctx: &mut FunctionCtx<'_>, args: Object| call.run(ctx, args);
            let mut registered = match entry {
                Entry::Query => Function::query(&function.path, function.args.clone(), handler),
                Entry::Mutation => Function::mutation(&function.path, function.args.clone(), handler),
            };
            if function.visibility == Visibility::Internal {
                registered = registered.internal();
            }
            if let Some(returns) = &function.returns {
                registered = registered.returns(returns.clone());
            }
            registry.register(registered)?;
        }
        Ok(())
    }
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
        let result = result?;
        let json: Json = serde_json::from_str(&result)
            .map_err(|error| FunctionError::internal(format!("A function's result is not JSON: {error}")))?;
        from_convex_json(&json)
            .map_err(|error| FunctionError::failed(format!("The function returned an invalid value: {error}")))
    }
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
