//! Where a TypeScript call's engine time goes, measured on QuickJS (rquickjs) directly with the
//! benchmark's real bundle: a fresh context alone, with the bundle's bytecode (precompiled, as
//! livebase-js does) loaded, then evaluated, then a call in it (what a call costs when livebase-js
//! must start a context: a new bundle, or one discarded after a failure or `MAX_CALLS_PER_CONTEXT`);
//! against the same calls in one context kept across calls (what livebase-js does otherwise). The calls go
//! through the library's own `invokeQuery`/`invokeMutation`: `js:empty`, and `js:insert` with its one
//! syscall answered at once by a stub, so only the engine's work is timed.

use std::time::{Duration, Instant};

use rquickjs::{Context, Ctx, Function, Module, Object, Promise, Runtime, WriteOptions};

use crate::Effort;
use crate::report::Report;

const SECTION: &str = "Where a TypeScript call's engine time goes (QuickJS directly, one thread, CPU time)";
const KEPT_MUTATION: &str = "mutation (js:insert) in a context kept across calls (livebase-js)";
const FRESH_MUTATION: &str = "mutation (js:insert) in a fresh context";

/// `Convex.asyncSyscall` answering `js:insert`'s `1.0/insert` at once; any other syscall fails.
const STUB_HOST: &str = r#"globalThis.Convex = {
  syscall(op) { throw new Error(`no syscall ${op} in this measurement`); },
  asyncSyscall(op) {
    if (op !== "1.0/insert") throw new Error(`no syscall ${op} in this measurement`);
    return Promise.resolve('{"_id":"stub"}');
  },
};"#;

/// A call of the bench's `js` module: function, entry point, argument list, expected result.
struct Call {
    function: &'static str,
    entry: &'static str,
    args: &'static str,
    result: &'static str,
}

const EMPTY: Call = Call { function: "empty", entry: "invokeQuery", args: "[{}]", result: "null" };
const INSERT: Call =
    Call { function: "insert", entry: "invokeMutation", args: r#"[{"writer":0,"sequence":0}]"#, result: r#""stub""# };

/// One part of a call measured in a fresh context.
type ContextWork<'a> = dyn Fn(&Ctx<'_>) + 'a;

pub fn measure(bundle: &str, effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let runtime = Runtime::new().expect("a QuickJS runtime");
    let bytecode = Context::full(&runtime)
        .and_then(|context| context.with(|ctx| Module::declare(ctx, "app.js", bundle)?.write(WriteOptions::default())))
        .expect("the bundle compiles");
    let sizes = format!("{} KiB source, {} KiB bytecode", bundle.len() >> 10, bytecode.len() >> 10);
    report.context("TypeScript bundle of bench/convex", &sizes);

    // Each step makes a context, does its part in it, and drops it, as livebase-js does per call.
    let in_fresh_context = |part: &dyn Fn(&Ctx<'_>)| {
        let context = Context::full(&runtime).expect("a context");
        context.with(|ctx| part(&ctx));
        drop(context);
        runtime.run_gc();
    };
    let load = |ctx: &Ctx<'_>| {
        // SAFETY: `bytecode` is what `Module::write` made of the bundle on this same runtime.
        drop(unsafe { Module::load(ctx.clone(), &bytecode) }.expect("the bytecode loads"));
    };
    let evaluate = |ctx: &Ctx<'_>| drop(evaluate_bundle(ctx, &bytecode));
    let call_in = |ctx: &Ctx<'_>, call: &Call| {
        ctx.eval::<(), _>(STUB_HOST).expect("the stub host");
        invoke(&evaluate_bundle(ctx, &bytecode), call);
    };
    let empty_call = |ctx: &Ctx<'_>| call_in(ctx, &EMPTY);
    let insert_call = |ctx: &Ctx<'_>| call_in(ctx, &INSERT);
    let fresh: [(&str, &ContextWork); 5] = [
        ("fresh context, created and dropped", &|_| {}),
        ("fresh context + the bundle's bytecode loaded", &load),
        ("fresh context + the bundle loaded and evaluated", &evaluate),
        ("empty query (js:empty) in a fresh context", &empty_call),
        (FRESH_MUTATION, &insert_call),
    ];
    let mut medians = Vec::new();
    for (name, part) in fresh {
        let runs = (0..effort.runs)
            .map(|_| cpu_micros_per(&|| in_fresh_context(part), effort.duration, THIS_THREAD))
            .collect();
        medians.push(report.add(SECTION, name, "µs of CPU", runs));
    }
    let kept = Context::full(&runtime).expect("a context");
    let kept_medians: Vec<f64> = kept.with(|ctx| {
        ctx.eval::<(), _>(STUB_HOST).expect("the stub host");
        let modules = evaluate_bundle(&ctx, &bytecode);
        [("empty query (js:empty) in a context kept across calls (livebase-js)", &EMPTY), (KEPT_MUTATION, &INSERT)]
            .into_iter()
            .map(|(name, call)| {
                let runs = (0..effort.runs)
                    .map(|_| cpu_micros_per(&|| invoke(&modules, call), effort.duration, THIS_THREAD))
                    .collect();
                report.add(SECTION, name, "µs of CPU", runs)
            })
            .collect()
    });
    // Each step is measured on its own, each including the ones before it: the figures are
    // cumulative (their differences are within the noise of separate runs).
    report.note(format!(
        "A fresh context per call costs {:.0} µs of engine CPU time for an empty query. Measured separately, each \
         including the steps before it: creating and dropping a context {:.0} µs, also loading the bundle's \
         bytecode {:.0} µs, also evaluating it (the npm library's top-level code) {:.0} µs. In a context kept across \
         calls the same call takes {:.0} µs, and a mutation {:.0} µs instead of {:.0} µs",
        medians[3], medians[0], medians[1], medians[2], kept_medians[0], kept_medians[1], medians[4],
    ));
}

/// Loads the bundle's bytecode in `ctx` and evaluates it; returns its `modules` export.
fn evaluate_bundle<'js>(ctx: &Ctx<'js>, bytecode: &[u8]) -> Object<'js> {
    // SAFETY: `bytecode` is what `Module::write` made of the bundle on this same runtime.
    let declared = unsafe { Module::load(ctx.clone(), bytecode) }.expect("the bytecode loads");
    let (module, evaluated) = declared.eval().expect("the bundle evaluates");
    evaluated.finish::<()>().expect("the bundle's top level settles");
    module.get("modules").expect("the bundle exports `modules`")
}

/// `modules.js.<function>.<entry>(args)`, settled and checked.
fn invoke(modules: &Object<'_>, call: &Call) {
    let exports: Object = modules.get("js").expect("the module `js`");
    let function: Object = exports.get(call.function).expect("the function");
    let entry: Function = function.get(call.entry).expect("its entry point");
    let promise: Promise = entry.call((call.args,)).expect("the call starts");
    let result: String = promise.finish().expect("the call settles");
    assert_eq!(result, call.result, "js:{}", call.function);
}

/// Microseconds of CPU per `step`, repeated for `duration`, by the accounting of `stat_path` (a
/// `/proc` stat file: this thread's, or the process's when the work happens on other threads too).
/// CPU time rather than elapsed time, because the machine may be running other work meanwhile.
pub fn cpu_micros_per(step: &dyn Fn(), duration: Duration, stat_path: &str) -> f64 {
    let (started, cpu_before) = (Instant::now(), crate::cpu_seconds(stat_path));
    let mut steps = 0u32;
    while started.elapsed() < duration {
        step();
        steps += 1;
    }
    (crate::cpu_seconds(stat_path) - cpu_before) * 1e6 / f64::from(steps)
}

/// This thread's CPU accounting: every step here runs on the calling thread.
const THIS_THREAD: &str = "/proc/thread-self/stat";
