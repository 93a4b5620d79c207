// The TypeScript compatibility suite (`tests/compat/convex`), checked through the official clients:
// `ConvexClient` over WebSocket (subscriptions, mutations, actions), `ConvexHttpClient` over the
// HTTP API, and plain `fetch` for the app's HTTP routes. One area per run, so a failure names it.
// Usage: node compat.mjs <area> <server url> <site url> <user token> <user subject>.
// Prints "OK <area>" and exits 0, or exits 1 saying why.
import { ConvexClient, ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";
import WebSocket from "ws";

const TIMEOUT_MS = 20_000;
const api = anyApi;

function fail(message) {
  console.error(`FAIL ${area}: ${message}`);
  process.exit(1);
}

// Objects with their keys sorted: the server returns fields in key order.
function stringify(value) {
  return JSON.stringify(value, (_, item) => {
    if (typeof item === "bigint") return `${item}n`;
    if (item instanceof ArrayBuffer) return `bytes:${Buffer.from(item).toString("hex")}`;
    if (item !== null && typeof item === "object" && !Array.isArray(item)) {
      return Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return item;
  });
}

function expectEqual(actual, expected, what) {
  const [a, e] = [stringify(actual), stringify(expected)];
  if (a !== e) fail(`${what}: got ${a}, expected ${e}`);
}

/** Resolves with the error `promise` rejects with; fails if it resolves. */
async function rejection(promise, what) {
  return await promise.then(
    (value) => fail(`${what} succeeded with ${stringify(value)}`),
    (error) => error,
  );
}

function expectConvexError(error, data, what) {
  if (!(error instanceof ConvexError)) fail(`${what} threw ${error}, not a ConvexError`);
  expectEqual(error.data, data, `${what}: the ConvexError's data`);
}

const [area, url, siteUrl, userToken, userSubject] = process.argv.slice(2);
if (!userSubject) fail("usage: node compat.mjs <area> <server url> <site url> <user token> <user subject>");
setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const clientOptions = { webSocketConstructor: WebSocket, skipConvexDeploymentUrlCheck: true, logger: false };
const client = new ConvexClient(url, clientOptions);
const http = new ConvexHttpClient(url, { skipConvexDeploymentUrlCheck: true, logger: false });

/** Subscribes to `query(args)` and resolves with its first result that `accept`s. */
function until(query, args, accept, what) {
  return new Promise((resolve) => {
    const unsubscribe = client.onUpdate(
      query,
      args,
      (value) => {
        if (accept(value)) {
          unsubscribe();
          resolve(value);
        }
      },
      (error) => fail(`${what}: the subscription failed: ${error}`),
    );
  });
}

const note = (author, text, n, tag = "plain") => ({ author, text, tag, n });

const areas = {
  // Every database syscall, and runUdf, through a live subscription, mutations and queries.
  async syscalls() {
    const author = "syscalls";
    const seen = [];
    let firstUpdate;
    const subscribed = new Promise((resolve) => (firstUpdate = resolve));
    client.onUpdate(
      api.db.byAuthor,
      { author },
      (texts) => {
        seen.push(texts);
        firstUpdate();
      },
      (error) => fail(`db:byAuthor failed: ${error}`),
    );
    await subscribed;
    expectEqual(seen.at(-1), [], "db:byAuthor at first");
    const id = await client.mutation(api.db.add, note(author, "one", 1));
    if (typeof id !== "string") fail(`db:add returned ${stringify(id)}, not an id`);
    // The mutation resolves once the Transition with its commit arrived: the subscription has it.
    expectEqual(seen.at(-1), ["one"], "db:byAuthor once db:add resolved");
    await client.mutation(api.db.add, note(author, "two", 2));
    await client.mutation(api.db.add, note(author, "three", 3));
    expectEqual(seen.at(-1), ["one", "two", "three"], "db:byAuthor after three inserts");

    const stored = await client.query(api.db.get, { id });
    expectEqual([stored._id, stored.text, stored.n, typeof stored._creationTime], [id, "one", 1, "number"], "db:get");
    expectEqual(await http.query(api.db.firstTexts, { count: 2 }), ["three", "two"], "db:firstTexts (queryCleanup)");

    const retagged = await client.mutation(api.db.retag, { id, tag: "new" });
    expectEqual([retagged.tag, "n" in retagged], ["new", false], "db:retag (shallowMerge, a field removed)");
    expectEqual(await client.mutation(api.db.rewrite, { id, text: "rewritten" }), null, "db:rewrite");
    const rewritten = await client.query(api.db.get, { id });
    expectEqual([rewritten.author, rewritten.text, rewritten.tag], ["editor", "rewritten", "rewritten"], "db:replace");
    expectEqual(seen.at(-1), ["two", "three"], "db:byAuthor after the replace moved the note away");
    expectEqual(await client.mutation(api.db.remove, { id }), null, "db:remove reads its deleted note as null");
    expectEqual(await client.query(api.db.get, { id }), null, "db:get after db:remove");

    expectEqual(await client.query(api.db.normalize, { table: "notes", id }), id, "db:normalize of a notes id");
    expectEqual(await client.query(api.db.normalize, { table: "runs", id }), null, "db:normalize of another table");
    expectEqual(await client.query(api.db.normalize, { table: "notes", id: "nope" }), null, "db:normalize of junk");

    expectEqual(await client.query(api.db.whoami, {}), null, "db:whoami without a token");
    const signedIn = new ConvexClient(url, clientOptions);
    signedIn.setAuth(async () => userToken);
    const user = await signedIn.query(api.db.whoami, {});
    expectEqual(user?.subject, userSubject, "db:whoami with a token (getUserIdentity)");
    await signedIn.close();

    expectEqual(await client.mutation(api.db.addAndCount, note(author, "four", 4)), 3, "db:addAndCount (runUdf)");
    const internalCall = await rejection(client.query(api.db.count, { author }), "a client calling an internal query");
    if (!String(internalCall).includes("Could not find public function")) fail(`internal query: ${internalCall}`);
  },

  // Every `v` validator as arguments and as a declared return value, stored and read back.
  async validators() {
    const id = await client.mutation(api.validators.placeholder, {});
    const value = {
      id,
      nothing: null,
      big: 9007199254740993n,
      number: -0.5,
      flag: true,
      text: "tëxt",
      raw: new Uint8Array([0, 1, 254, 255]).buffer,
      list: [1, 2.5, 3],
      nested: { inner: "in" },
      scores: { ada: 1, grace: 2 },
      either: 7,
      exactly: "exactly",
      anything: { deep: [null, 1n, "x"] },
    };
    const back = await client.mutation(api.validators.roundTrip, { value });
    expectEqual(back, value, "validators:roundTrip (over WebSocket)");
    const withOptional = { ...value, maybe: "here", either: "seven" };
    expectEqual(await http.mutation(api.validators.roundTrip, { value: withOptional }), withOptional, "over HTTP");
    const kinds = await client.query(api.validators.describe, { value });
    const expectedKinds = {
      id: "string",
      nothing: "null",
      big: "bigint",
      number: "number",
      flag: "boolean",
      text: "string",
      raw: "ArrayBuffer",
      list: "array",
      nested: "object",
      scores: "object",
      either: "number",
      exactly: "string",
      anything: "object",
    };
    expectEqual(kinds, expectedKinds, "what the handler receives for each validator");

    const invalid = [
      ["id of another table", { id: "not-an-id" }],
      ["a float for an int64", { big: 1 }],
      ["a string for bytes", { raw: "AAE=" }],
      ["a string in an array of numbers", { list: [1, "2"] }],
      ["a missing nested field", { nested: {} }],
      ["a record value of the wrong type", { scores: { ada: "one" } }],
      ["a boolean for a union of string and number", { either: false }],
      ["another literal", { exactly: "roughly" }],
      ["null for an optional string", { maybe: null }],
      ["an extra field", { extra: 1 }],
    ];
    for (const [what, change] of invalid) {
      const error = await rejection(client.query(api.validators.describe, { value: { ...value, ...change } }), what);
      if (!String(error).includes("ArgumentValidationError")) fail(`${what}: unexpected error ${error}`);
    }
    const missing = { ...value };
    delete missing.flag;
    const error = await rejection(client.query(api.validators.describe, { value: missing }), "a missing field");
    if (!String(error).includes("ArgumentValidationError")) fail(`a missing field: unexpected error ${error}`);
    const returned = await rejection(client.query(api.validators.badReturn, {}), "a result against `returns`");
    if (!String(returned).includes("ReturnsValidationError")) fail(`a bad result: unexpected error ${returned}`);
  },

  // ConvexError data from queries, mutations and actions, over WebSocket and HTTP.
  async errors() {
    const data = { code: "NOPE", count: 3n, list: [1, "two", null], nested: { ok: false } };
    expectConvexError(await rejection(client.query(api.errors.failQuery, { data }), "errors:failQuery"), data, "query");
    expectConvexError(await rejection(http.query(api.errors.failQuery, { data }), "over HTTP"), data, "HTTP query");
    const subscribed = new Promise((resolve) =>
      client.onUpdate(
        api.errors.failQuery,
        { data: "a string" },
        (value) => fail(`the failing subscription got ${stringify(value)}`),
        resolve,
      ),
    );
    expectConvexError(await subscribed, "a string", "a subscription's error");

    const author = "errors";
    const failed = await rejection(client.mutation(api.errors.failMutation, { data, author }), "errors:failMutation");
    expectConvexError(failed, data, "mutation");
    expectConvexError(await rejection(http.mutation(api.errors.failMutation, { data: 7, author }), "HTTP"), 7, "HTTP");
    expectEqual(await client.query(api.db.byAuthor, { author }), [], "the failed mutations' inserts");
    expectConvexError(
      await rejection(client.action(api.errors.failAction, { data }), "errors:failAction"),
      data,
      "action",
    );
    expectConvexError(
      await rejection(http.action(api.errors.failAction, { data }), "errors:failAction"),
      data,
      "action",
    );

    const plain = await rejection(client.mutation(api.errors.plainError, {}), "errors:plainError");
    if (plain instanceof ConvexError) fail("a plain Error reached the client as a ConvexError");
    if (!String(plain).includes("a plain error")) fail(`errors:plainError: ${plain}`);
  },

  // `.filter(...).paginate(...)`: pages by hand, and as the client's paginated subscription.
  async pagination() {
    const author = "pages";
    for (let n = 1; n <= 12; n++) {
      const tag = n % 3 === 0 ? "hidden" : n % 2 === 0 ? "even" : "odd";
      await client.mutation(api.db.add, note(author, `note ${n}`, n, tag));
    }
    await client.mutation(api.db.add, note("someone else", "not mine", 100, "even"));
    const pages = [];
    let cursor = null;
    for (;;) {
      const page = await http.query(api.paging.byTag, { author, tag: "even", paginationOpts: { numItems: 2, cursor } });
      pages.push(page.page.map((found) => found.n));
      if (page.isDone) break;
      cursor = page.continueCursor;
      if (pages.length > 10) fail(`paging:byTag never ends: ${stringify(pages)}`);
    }
    expectEqual(pages.flat(), [2, 4, 8, 10], "paging:byTag's pages together");
    if (pages.some((page) => page.length > 2)) fail(`a page longer than numItems: ${stringify(pages)}`);

    const first = await client.query(api.paging.atLeast, { n: 5, paginationOpts: { numItems: 3, cursor: null } });
    expectEqual([first.page, first.isDone], [[100, 11, 10], false], "paging:atLeast's first page (descending)");
    const second = await client.query(api.paging.atLeast, {
      n: 5,
      paginationOpts: { numItems: 3, cursor: first.continueCursor },
    });
    expectEqual(second.page, [8, 7, 5], "paging:atLeast's second page");

    // The client's own paginated subscription: loads more, and sees a new matching note live.
    let latest;
    let notify = () => {};
    client.onPaginatedUpdate_experimental(
      api.paging.byTag,
      { author, tag: "odd" },
      { initialNumItems: 2 },
      (result) => {
        latest = result;
        notify();
      },
      (error) => fail(`the paginated subscription failed: ${error}`),
    );
    const reached = (accept) =>
      new Promise((resolve) => {
        notify = () => latest !== undefined && accept(latest) && resolve(latest);
        notify();
      });
    const odd = (result) => result.results.map((found) => found.n);
    await reached((result) => result.status === "CanLoadMore" && result.results.length === 2);
    expectEqual(odd(latest), [1, 5], "the first page of odd notes");
    latest.loadMore(10);
    await reached((result) => result.status === "Exhausted");
    expectEqual(odd(latest), [1, 5, 7, 11], "every odd note once loaded");
    await client.mutation(api.db.add, note(author, "late", 13, "odd"));
    await reached((result) => odd(result).includes(13));
    expectEqual(odd(latest), [1, 5, 7, 11, 13], "a new odd note, live");
  },

  // runAfter/runAt/cancel from a mutation and an action; jobs run and are seen live.
  async scheduling() {
    const far = Date.now() + 3_600_000;
    const dropped = await client.mutation(api.scheduling.scheduleFromMutation, {
      keep: "kept",
      drop: "dropped",
      delayMs: 0,
      at: far,
    });
    expectEqual(await http.query(api.scheduling.job, { id: dropped }), "canceled", "the canceled job's state");
    const droppedByAction = await client.action(api.scheduling.scheduleFromAction, {
      keep: "kept by the action",
      drop: "dropped by the action",
      at: Date.now(),
    });
    expectEqual(await http.query(api.scheduling.job, { id: droppedByAction }), "canceled", "the action's canceled job");
    const runs = await until(api.scheduling.runs, {}, (runs) => runs.length >= 2, "scheduling:runs");
    const sorted = runs.map(({ label, by }) => `${label} (${by})`).sort();
    expectEqual(sorted, ["kept (runAfter)", "kept by the action (action runAt)"], "the jobs that ran");
  },

  // Actions calling queries, mutations and actions, with the caller's identity.
  async actions() {
    const result = await client.action(api.actions.addThenRead, { author: "actions", text: "from an action", n: 21 });
    expectEqual([result.text, result.doubled], ["from an action", 42], "actions:addThenRead");
    expectEqual(await client.query(api.db.byAuthor, { author: "actions" }), ["from an action"], "its mutation");
    expectEqual(
      await http.action(api.actions.addThenRead, { author: "actions", text: "again", n: 1 }).then((r) => r.doubled),
      2,
      "over HTTP",
    );
    expectEqual(await client.action(api.actions.whoami, {}), { action: null, query: null }, "actions:whoami alone");
    http.setAuth(userToken);
    const user = { action: userSubject, query: userSubject };
    expectEqual(await http.action(api.actions.whoami, {}), user, "actions:whoami with a token");
  },

  // The app's HTTP routes, with plain fetch on the site port.
  async http() {
    const hello = await fetch(`${siteUrl}/hello?name=compat`);
    expectEqual([hello.status, await hello.text()], [200, "hello compat"], "GET /hello");
    expectEqual(hello.headers.get("content-type"), "text/plain", "GET /hello's content type");
    const echo = await fetch(`${siteUrl}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-compat": "yes" },
      body: JSON.stringify({ list: [1, 2] }),
    });
    expectEqual([echo.status, await echo.json()], [200, { got: { list: [1, 2] }, compat: "yes" }], "POST /echo");
    const put = await fetch(`${siteUrl}/notes/routed`, { method: "PUT", body: "through a route" });
    expectEqual(put.status, 201, "PUT /notes/routed");
    const { id } = await put.json();
    expectEqual((await client.query(api.db.get, { id }))?.text, "through a route", "the route's mutation");
    expectEqual(await client.query(api.db.byAuthor, { author: "routed" }), ["through a route"], "by its author");
    expectEqual((await fetch(`${siteUrl}/nowhere`)).status, 404, "GET /nowhere");
    expectEqual((await fetch(`${siteUrl}/hello`, { method: "DELETE" })).status, 404, "DELETE /hello");
  },

  // crypto, TextEncoder/TextDecoder, URL in a query; fetch/Request/Response/Headers in an action.
  async web() {
    const basics = await client.query(api.web.basics, {});
    expectEqual(
      basics,
      {
        uuidOk: true,
        randomLength: 16,
        encodedLength: 6,
        decoded: "héllo",
        host: "example.com:8443",
        pathname: "/path/to",
        y: "two",
        href: "https://example.com:8443/path/to?x=1&y=two&z=3#frag",
      },
      "web:basics",
    );
    const fetched = await client.action(api.web.fetchEcho, { url: `${siteUrl}/echo`, text: "round trip" });
    expectEqual(
      fetched,
      {
        status: 200,
        echoed: { got: { text: "round trip" }, compat: "yes" },
        contentType: "application/json",
        made: { status: 201, text: "made here", header: "1" },
      },
      "web:fetchEcho",
    );
  },
};

const run = areas[area] ?? fail(`no area ${area}; the areas are ${Object.keys(areas).join(", ")}`);
await run();
console.log(`OK ${area}`);
await client.close();
process.exit(0);
