// What the npm `convex` server library expects of its host, over the functions Rust installs on
// `globalThis.__livebase` before this script runs: `log(level, message)`, `syscall(op, argsJson)`,
// which answers `[true, resultJson]` or `[false, message, errorDataJson]`, and
// `startSyscall(id, op, argsJson)`, which starts an action's async syscall (or answers why not) that
// Rust later settles through the `settle(id, ok, resultOrMessage, errorDataJson)` this script adds.
// The context outlives a call (the engine keeps it for the next calls of the same bundle), so what
// differs per call comes through `begin(envJson, isAction)`, which this script adds too, before each;
// `loaded()` marks the end of loading the bundle.
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
  // An action's async syscalls, by id, until Rust settles them through `host.settle`.
  const pending = new Map();
  let nextSyscall = 0;
  // The running call's: whether its async syscalls stay pending (an action's), and its `process.env`
  // as an object when it has it whole (`undefined`: read through syscalls).
  let action = false;
  let wholeEnv;
  // What the bundle read of `process.env` while loading (`names` for the list of names), by
  // variable: module-level values made of them are right only while the variables are unchanged.
  // `null` before loading; recorded until `loaded()`.
  let readAtLoad = null;
  let loading = false;
  const names = Symbol("names");
  const reread = (key) => (key === names ? JSON.stringify(listVariables()) : variable(key));
  // Sets up a call; answers whether what the bundle read of `process.env` while loading is still
  // what the call sees (re-read, so that a query's read set has it), or the context must be replaced.
  host.begin = (envJson, isAction) => {
    action = isAction;
    wholeEnv = envJson === undefined ? undefined : Object.freeze(Object.assign(Object.create(null), JSON.parse(envJson)));
    if (readAtLoad === null) {
      readAtLoad = new Map();
      loading = true;
      return true;
    }
    for (const [key, value] of readAtLoad) if (reread(key) !== value) return false;
    return true;
  };
  host.loaded = () => {
    loading = false;
  };
  host.settle = (id, ok, result, data) => {
    const { resolve, reject } = pending.get(id);
    pending.delete(id);
    if (ok) resolve(result);
    else reject(failure(result, data));
  };
  const syscall = (op, args) => {
    const [ok, result, data] = host.syscall(op, args);
    if (!ok) throw failure(result, data);
    return result;
  };
  globalThis.Convex = Object.freeze({
    syscall,
    asyncSyscall(op, args) {
      if (!action) {
        // A query or mutation: answered before this returns, the promise only keeps the library's `await`s.
        const [ok, result, data] = host.syscall(op, args);
        return ok ? Promise.resolve(result) : Promise.reject(failure(result, data));
      }
      const id = nextSyscall++;
      const refused = host.startSyscall(id, op, args);
      if (refused != null) return Promise.reject(new Error(refused));
      return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
    },
  });

  // `process.env`: the deployment's environment variables, string values by name, `undefined` when
  // unset. An action's are read when it starts (its syscalls are async, `process.env` is not); the
  // config files get the deployment's, and listing the functions none. A query or mutation reads a
  // variable through a syscall when the function does, so the read lands in its read set and the
  // query re-runs when the variable changes; enumerating lists every name.
  // Read-only either way: a function's assignment would leak into later calls or vanish.
  const readOnly = () => {
    throw new TypeError("process.env is read-only: set the deployment's variables with `livebase env set`");
  };
  const variable = (name) => {
    if (typeof name !== "string") return undefined;
    const value =
      wholeEnv !== undefined
        ? wholeEnv[name]
        : (JSON.parse(syscall("1.0/livebase/env", JSON.stringify({ name }))) ?? undefined);
    if (loading) readAtLoad.set(name, value);
    return value;
  };
  const listVariables = () => {
    const list =
      wholeEnv !== undefined ? Object.keys(wholeEnv) : JSON.parse(syscall("1.0/livebase/envNames", "{}"));
    if (loading) readAtLoad.set(names, JSON.stringify(list));
    return list;
  };
  const env = new Proxy(
    {},
    {
      get: (_, name) => variable(name),
      has: (_, name) => variable(name) !== undefined,
      ownKeys: listVariables,
      getOwnPropertyDescriptor: (_, name) => {
        const value = variable(name);
        return value === undefined ? undefined : { value, writable: false, enumerable: true, configurable: true };
      },
      set: readOnly,
      defineProperty: readOnly,
      deleteProperty: readOnly,
    },
  );
  globalThis.process = { env };

  // An HTTP action: the route `router` (the `http` module's default export) has for the request, run
  // with a standard `Request`; its `Response` read whole.
  globalThis.__livebaseHttp = async (router, path, url, method, headers, body) => {
    const route = router.lookup(path, method);
    if (route === null) throw new Error(`No HttpAction routed for ${method} ${path}`);
    const bodyless = method === "GET" || method === "HEAD";
    const request = new Request(url, { method, headers, body: bodyless ? undefined : body });
    const response = await route[0].invokeHttpAction(request);
    if (!(response instanceof Response)) {
      throw new Error(`The HTTP action for ${method} ${path} returned ${show(response)}, not a Response`);
    }
    return { status: response.status, headers: [...response.headers], body: await response.arrayBuffer() };
  };

  // The functions the bundle exports and the routes of the router `http.ts` exports, for
  // registration: `modules` maps a module's path to its exports.
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
    const routes = [];
    const router = modules.http?.default;
    if (router?.isRouter === true) {
      for (const [path, methods] of router.exactRoutes) {
        for (const method of methods.keys()) routes.push({ method, path, prefix: false });
      }
      for (const [method, prefixes] of router.prefixRoutes) {
        for (const path of prefixes.keys()) routes.push({ method, path, prefix: true });
      }
    }
    return JSON.stringify({ functions, routes });
  };
})();
