// The web APIs Convex functions use, over the natives `web.rs` puts on `globalThis.__livebaseWeb`.
// Evaluated in every call's fresh context, after the prelude, so it stays small: `crypto` and the
// helpers here, and for every other API a global that loads its group (`web/*.js`, parsed only then)
// the first time a function touches it. Most calls use none and pay for none.
(() => {
  const native = globalThis.__livebaseWeb;
  delete globalThis.__livebaseWeb;

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  // A `Uint8Array` over the bytes of an ArrayBuffer or a view, sharing them; `null` for anything else.
  const viewOf = (data) => {
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
  };
  // Lone surrogates have no UTF-8: WebIDL's USVString replaces them with U+FFFD.
  const usv = (value) => String(value).toWellFormed();
  const encode = (text) => native.encodeUtf8(usv(text));
  const decode = (bytes) => native.decodeUtf8(bytes, false, false);

  // `list` of `[name, value]` pairs with the first pair named `name` given `value` and the others of
  // that name dropped, or the pair appended: `set` of Headers and URLSearchParams.
  const setPair = (list, name, value) => {
    const first = list.findIndex(([n]) => n === name);
    if (first === -1) return [...list, [name, value]];
    return list.flatMap((pair, i) => (i === first ? [[name, value]] : pair[0] === name ? [] : [pair]));
  };

  // Each `[name, value]` pair of `init` (an iterable of pairs or a record), checked.
  const pairsOf = (init, what) => {
    if (init === undefined || init === null) return [];
    if (typeof init !== "object" && typeof init !== "function") {
      throw new TypeError(`${what} takes an iterable of [name, value] pairs or an object`);
    }
    if (typeof init[Symbol.iterator] !== "function") return Object.entries(init);
    return Array.from(init, (pair) => {
      const entry = Array.from(pair);
      if (entry.length !== 2) throw new TypeError(`${what} takes [name, value] pairs, not ${entry.length} items`);
      return entry;
    });
  };

  define("crypto", {
    getRandomValues(array) {
      if (!ArrayBuffer.isView(array) || array instanceof DataView || array instanceof Float32Array ||
          array instanceof Float64Array) {
        throw new DOMException("crypto.getRandomValues takes an integer typed array", "TypeMismatchError");
      }
      viewOf(array).set(native.randomBytes(array.byteLength));
      return array;
    },
    randomUUID: () => native.randomUuid(),
  });

  // Each group module's default export is a function of these helpers returning its globals.
  const helpers = { native, viewOf, usv, encode, decode, pairsOf, setPair };
  const GROUPS = {
    encoding: ["TextEncoder", "TextDecoder"],
    url: ["URL", "URLSearchParams"],
    http: ["Headers", "Blob", "Request", "Response", "fetch"],
  };
  for (const [group, names] of Object.entries(GROUPS)) {
    const load = () => {
      const globals = native.loadGroup(group)(helpers);
      for (const name of names) define(name, globals[name]);
    };
    for (const name of names) {
      Object.defineProperty(globalThis, name, {
        get() {
          load();
          return globalThis[name];
        },
        set(value) {
          define(name, value);
        },
        configurable: true,
        enumerable: false,
      });
    }
  }
})();
