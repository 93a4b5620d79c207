// URL and URLSearchParams (WHATWG), parsed by the `url` crate natively; loaded by web.js when a function
// first uses one.
export default ({ native, usv, pairsOf, setPair }) => {
  // Lets a URL and its `searchParams` keep each other current.
  let adoptQuery; // (params, search) => void: the URL's query changed.
  let linkParams; // (params, onChange) => params

  class URLSearchParams {
    #list = [];
    #onChange = null;
    static {
      adoptQuery = (params, search) => {
        params.#list = URLSearchParams.#parse(search);
      };
      linkParams = (params, onChange) => {
        params.#onChange = onChange;
        return params;
      };
    }
    static #parse(query) {
      const flat = native.parseForm(query.startsWith("?") ? query.slice(1) : query);
      const list = [];
      for (let i = 0; i < flat.length; i += 2) list.push([flat[i], flat[i + 1]]);
      return list;
    }
    constructor(init = "") {
      if (init instanceof URLSearchParams) {
        this.#list = init.#list.map(([name, value]) => [name, value]);
      } else if (typeof init === "object" && init !== null) {
        this.#list = pairsOf(init, "URLSearchParams").map(([name, value]) => [usv(name), usv(value)]);
      } else {
        this.#list = URLSearchParams.#parse(usv(init));
      }
    }
    #changed() {
      this.#onChange?.(this.toString());
    }
    get size() {
      return this.#list.length;
    }
    append(name, value) {
      this.#list.push([usv(name), usv(value)]);
      this.#changed();
    }
    delete(name, value) {
      const [key, only] = [usv(name), value === undefined ? undefined : usv(value)];
      this.#list = this.#list.filter(([n, v]) => n !== key || (only !== undefined && v !== only));
      this.#changed();
    }
    get(name) {
      const key = usv(name);
      return this.#list.find(([n]) => n === key)?.[1] ?? null;
    }
    getAll(name) {
      const key = usv(name);
      return this.#list.filter(([n]) => n === key).map(([, v]) => v);
    }
    has(name, value) {
      const [key, only] = [usv(name), value === undefined ? undefined : usv(value)];
      return this.#list.some(([n, v]) => n === key && (only === undefined || v === only));
    }
    set(name, value) {
      this.#list = setPair(this.#list, usv(name), usv(value));
      this.#changed();
    }
    sort() {
      // Stable, by UTF-16 code units, as specified.
      this.#list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      this.#changed();
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    *entries() {
      for (let i = 0; i < this.#list.length; i++) yield [...this.#list[i]];
    }
    *keys() {
      for (const [name] of this.entries()) yield name;
    }
    *values() {
      for (const [, value] of this.entries()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
    toString() {
      return native.serializeForm(this.#list.flat());
    }
  }
  const URL_COMPONENTS = ["href", "origin", "protocol", "username", "password", "host", "hostname", "port",
    "pathname", "search", "hash"];

  class URL {
    #parts;
    #params = null;
    constructor(url, base) {
      this.#parts = native.parseUrl(usv(url), base === undefined ? undefined : usv(base));
    }
    static canParse(url, base) {
      return URL.parse(url, base) !== null;
    }
    static parse(url, base) {
      try {
        return new URL(url, base);
      } catch {
        return null;
      }
    }
    static {
      for (const name of URL_COMPONENTS) {
        const set = name === "origin" ? undefined : function (value) {
          this.#parts = native.setUrl(this.#parts.href, name, usv(value));
          if (this.#params !== null && (name === "href" || name === "search")) adoptQuery(this.#params, this.#parts.search);
        };
        Object.defineProperty(URL.prototype, name, {
          get() {
            return this.#parts[name];
          },
          set,
          configurable: true,
        });
      }
    }
    get searchParams() {
      this.#params ??= linkParams(new URLSearchParams(this.#parts.search), (query) => {
        this.#parts = native.setUrl(this.#parts.href, "search", query);
      });
      return this.#params;
    }
    toString() {
      return this.#parts.href;
    }
    toJSON() {
      return this.#parts.href;
    }
  }

  return { URLSearchParams, URL };
};
