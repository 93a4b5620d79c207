// Headers, Blob, Request, Response and fetch, loaded by web.js when a function first uses one. Bodies are
// read whole: ReadableStream bodies are not supported.
export default ({ encode, decode, viewOf, pairsOf, setPair }) => {
  const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const headerName = (name) => {
    const text = String(name);
    if (!HEADER_NAME.test(text)) throw new TypeError(`Invalid header name "${text}"`);
    return text.toLowerCase();
  };
  const headerValue = (value) => {
    const text = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(text)) throw new TypeError(`Invalid header value ${JSON.stringify(text)}`);
    return text;
  };

  class Headers {
    // `[lowercase name, value]` in insertion order; iteration sorts and combines.
    #list = [];
    constructor(init) {
      const pairs = init instanceof Headers ? init.#list : pairsOf(init, "Headers");
      for (const [name, value] of pairs) this.append(name, value);
    }
    append(name, value) {
      this.#list.push([headerName(name), headerValue(value)]);
    }
    delete(name) {
      const key = headerName(name);
      this.#list = this.#list.filter(([n]) => n !== key);
    }
    get(name) {
      const values = this.#values(headerName(name));
      return values.length === 0 ? null : values.join(", ");
    }
    getSetCookie() {
      return this.#values("set-cookie");
    }
    has(name) {
      const key = headerName(name);
      return this.#list.some(([n]) => n === key);
    }
    set(name, value) {
      this.#list = setPair(this.#list, headerName(name), headerValue(value));
    }
    #values(key) {
      return this.#list.filter(([n]) => n === key).map(([, v]) => v);
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    *entries() {
      const names = [...new Set(this.#list.map(([n]) => n))].sort();
      for (const name of names) {
        if (name === "set-cookie") {
          for (const value of this.#values(name)) yield [name, value];
        } else {
          yield [name, this.#values(name).join(", ")];
        }
      }
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
  }

  let blobBytes; // (blob) => its Uint8Array, not copied

  class Blob {
    #bytes;
    #type;
    static {
      blobBytes = (blob) => blob.#bytes;
    }
    constructor(parts = [], options = {}) {
      const chunks = Array.from(parts, (part) =>
        part instanceof Blob ? part.#bytes : viewOf(part) ?? encode(part));
      this.#bytes = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
      let offset = 0;
      for (const chunk of chunks) {
        this.#bytes.set(chunk, offset);
        offset += chunk.length;
      }
      const type = String(options.type ?? "");
      this.#type = /^[\x20-\x7E]*$/.test(type) ? type.toLowerCase() : "";
    }
    get size() {
      return this.#bytes.length;
    }
    get type() {
      return this.#type;
    }
    slice(start = 0, end = this.size, type = "") {
      return new Blob([this.#bytes.subarray(start, end)], { type });
    }
    async arrayBuffer() {
      return this.#bytes.slice().buffer;
    }
    async bytes() {
      return this.#bytes.slice();
    }
    async text() {
      return decode(this.#bytes);
    }
    stream() {
      throw new TypeError(
        "Blob.stream() is not supported: ReadableStream is not available; use text() or arrayBuffer()",
      );
    }
  }

  const UNSUPPORTED_BODY =
    "is not a supported body: ReadableStream bodies are not supported; use a string, ArrayBuffer, typed array, " +
    "DataView, Blob, URLSearchParams or null";

  // A body init's bytes (a copy) and the content type it implies: `[Uint8Array | null, string | null]`.
  const extractBody = (body) => {
    if (body === undefined || body === null) return [null, null];
    if (typeof body === "string") return [encode(body), "text/plain;charset=UTF-8"];
    if (body instanceof URLSearchParams) return [encode(body), "application/x-www-form-urlencoded;charset=UTF-8"];
    if (body instanceof Blob) return [blobBytes(body).slice(), body.type || null];
    const view = viewOf(body);
    if (view !== null) return [view.slice(), null];
    if (typeof body.getReader === "function") {
      throw new TypeError(`${Object.prototype.toString.call(body)} ${UNSUPPORTED_BODY}`);
    }
    return [encode(body), "text/plain;charset=UTF-8"];
  };

  let bodyBytes; // (body) => its Uint8Array or null, not consumed

  // What Request and Response share: a body read once, whole.
  class Body {
    #bytes;
    #used = false;
    static {
      bodyBytes = (body) => body.#bytes;
    }
    constructor(bytes) {
      this.#bytes = bytes;
    }
    get body() {
      if (this.#bytes === null) return null;
      throw new TypeError(
        "Streaming bodies (ReadableStream) are not supported: read the body with text(), json(), arrayBuffer(), " +
          "bytes() or blob()",
      );
    }
    get bodyUsed() {
      return this.#used;
    }
    #consume() {
      if (this.#used) throw new TypeError("The body has already been read");
      this.#used = true;
      const bytes = this.#bytes ?? new Uint8Array(0);
      this.#bytes = null;
      return bytes;
    }
    async arrayBuffer() {
      return this.#consume().buffer;
    }
    async bytes() {
      return this.#consume();
    }
    async text() {
      return decode(this.#consume());
    }
    async json() {
      return JSON.parse(await this.text());
    }
    async blob() {
      return new Blob([this.#consume()], { type: this.headers.get("content-type") ?? "" });
    }
    async formData() {
      throw new TypeError("formData() is not supported: read the body with text() and parse it");
    }
  }

  // A fresh copy of a body's bytes, for clones; a read body cannot be cloned.
  const copyBody = (body, what) => {
    if (body.bodyUsed) throw new TypeError(`Cannot clone a ${what} whose body has been read`);
    return bodyBytes(body)?.slice() ?? null;
  };
  const withContentType = (headers, type) => {
    if (type !== null && !headers.has("content-type")) headers.set("content-type", type);
    return headers;
  };

  const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];
  const NORMALIZED_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];

  class Request extends Body {
    #url;
    #method;
    #headers;
    #redirect;
    constructor(input, init) {
      init ??= {};
      const source = input instanceof Request ? input : null;
      const url = source?.url ?? new URL(input).href;
      let method = init.method === undefined ? source?.method ?? "GET" : String(init.method);
      if (!HEADER_NAME.test(method)) throw new TypeError(`Invalid HTTP method "${method}"`);
      if (NORMALIZED_METHODS.includes(method.toUpperCase())) method = method.toUpperCase();
      if (FORBIDDEN_METHODS.includes(method.toUpperCase())) throw new TypeError(`HTTP method ${method} is forbidden`);
      const headers = new Headers(init.headers ?? source?.headers);
      let [bytes, type] = extractBody(init.body);
      if (bytes === null && init.body === undefined && source !== null) bytes = copyBody(source, "Request");
      if (bytes !== null && (method === "GET" || method === "HEAD")) {
        throw new TypeError(`A ${method} request cannot have a body`);
      }
      super(bytes);
      this.#url = url;
      this.#method = method;
      this.#headers = withContentType(headers, type);
      this.#redirect = init.redirect ?? source?.redirect ?? "follow";
    }
    get url() {
      return this.#url;
    }
    get method() {
      return this.#method;
    }
    get headers() {
      return this.#headers;
    }
    get redirect() {
      return this.#redirect;
    }
    clone() {
      const body = copyBody(this, "Request");
      return new Request(this.#url, { method: this.#method, headers: this.#headers, body, redirect: this.#redirect });
    }
  }

  const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];
  const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

  let setOrigin; // (response, {status, statusText, url, type}) => response: what only fetch may set

  class Response extends Body {
    #status;
    #statusText;
    #headers;
    #url = "";
    #type = "default";
    static {
      setOrigin = (response, { status, url, type }) => {
        response.#status = status;
        response.#url = url;
        response.#type = type;
        return response;
      };
    }
    constructor(body = null, init) {
      init ??= {};
      const status = init.status ?? 200;
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`A Response's status must be an integer from 200 to 599, not ${status}`);
      }
      const [bytes, type] = extractBody(body);
      if (bytes !== null && NULL_BODY_STATUSES.includes(status)) {
        throw new TypeError(`A Response with status ${status} cannot have a body`);
      }
      super(bytes);
      this.#status = status;
      this.#statusText = String(init.statusText ?? "");
      this.#headers = withContentType(new Headers(init.headers), type);
    }
    static json(data, init = {}) {
      const text = JSON.stringify(data);
      if (text === undefined) throw new TypeError("Response.json takes a value JSON can represent");
      const headers = withContentType(new Headers(init.headers), "application/json");
      return new Response(text, { ...init, headers });
    }
    static redirect(url, status = 302) {
      if (!REDIRECT_STATUSES.includes(status)) {
        throw new RangeError(`A redirect's status must be one of ${REDIRECT_STATUSES.join(", ")}, not ${status}`);
      }
      return new Response(null, { status, headers: { location: new URL(url).href } });
    }
    static error() {
      return setOrigin(new Response(), { status: 0, url: "", type: "error" });
    }
    get status() {
      return this.#status;
    }
    get statusText() {
      return this.#statusText;
    }
    get ok() {
      return this.#status >= 200 && this.#status <= 299;
    }
    get headers() {
      return this.#headers;
    }
    get url() {
      return this.#url;
    }
    get type() {
      return this.#type;
    }
    get redirected() {
      return false;
    }
    clone() {
      const copy = new Response(copyBody(this, "Response"), { statusText: this.#statusText, headers: this.#headers });
      return setOrigin(copy, { status: this.#status, url: this.#url, type: this.#type });
    }
  }

  // The host does the HTTP (in actions; elsewhere it refuses): the request and its answer travel as JSON,
  // bodies in base64.
  const fetch = async (input, init) => {
    const request = new Request(input, init);
    const body = bodyBytes(request);
    const answer = JSON.parse(
      await globalThis.Convex.asyncSyscall(
        "1.0/livebase/fetch",
        JSON.stringify({
          url: request.url,
          method: request.method,
          headers: [...request.headers],
          body: body === null ? null : body.toBase64(),
        }),
      ),
    );
    // A null body status's (empty) body stays null, as a browser's fetch gives it.
    const bytes = NULL_BODY_STATUSES.includes(answer.status) ? null : Uint8Array.fromBase64(answer.body);
    const response = new Response(bytes, {
      statusText: answer.statusText,
      headers: answer.headers,
    });
    return setOrigin(response, { status: answer.status, url: request.url, type: "basic" });
  };

  return { Headers, Blob, Request, Response, fetch };
};
