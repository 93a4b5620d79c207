// What the npm `convex` server library expects of its host, over the two functions Rust installs
// on `globalThis.__livebase` before this script runs: `log(level, message)` and
// `syscall(op, argsJson)`, which answers `[true, resultJson]` or `[false, message, errorDataJson]`.
(() => {
  const host = globalThis.__livebase;
  delete globalThis.__livebase;

  const show = (value) => {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
    try {
      const json = JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v));
      return json === undefined ? String(value) : json;
    } catch {
      return String(value);
    }
  };
  const logger = (level) => (...values) => host.log(level, values.map(show).join(" "));
  globalThis.console = {
    log: logger("log"),
    debug: logger("log"),
    info: logger("info"),
    warn: logger("warn"),
    error: logger("error"),
  };

  const failure = (message, data) => {
    const error = new Error(message);
    // `performAsyncSyscall` turns an error with `data` into a `ConvexError` carrying it.
    if (data !== undefined) error.data = JSON.parse(data);
    return error;
  };
  globalThis.Convex = Object.freeze({
    syscall(op, args) {
      const [ok, result, data] = host.syscall(op, args);
      if (!ok) throw failure(result, data);
      return result;
    },
    // Every syscall is answered before this returns: the promise only keeps the library's `await`s.
    asyncSyscall(op, args) {
      const [ok, result, data] = host.syscall(op, args);
      return ok ? Promise.resolve(result) : Promise.reject(failure(result, data));
    },
  });

  // The functions the bundle exports, for registration: `modules` maps a module's path to its exports.
  globalThis.__livebaseManifest = (modules) => {
    const functions = [];
    for (const [module, exports] of Object.entries(modules)) {
      for (const [name, value] of Object.entries(exports)) {
        if (typeof value !== "function") continue;
        const kind = value.isQuery ? "query" : value.isMutation ? "mutation" : value.isAction ? "action" : null;
        if (kind === null) continue;
        functions.push({
          module,
          name,
          kind,
          visibility: value.isPublic ? "public" : "internal",
          args: JSON.parse(value.exportArgs()),
          returns: JSON.parse(value.exportReturns()),
        });
      }
    }
    return JSON.stringify(functions);
  };
})();
