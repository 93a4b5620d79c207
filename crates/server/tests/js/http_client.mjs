// Drives a Livebase server with the official ConvexHttpClient: query, mutation, action, an error
// with data, consistent queries at one timestamp, a user token and the admin key.
// Usage: node http_client.mjs http://127.0.0.1:PORT ADMIN_KEY USER_TOKEN USER_SUBJECT.
// Prints "OK" and exits 0, or exits 1 saying why.
import { ConvexHttpClient } from "convex/browser";
import { anyApi } from "convex/server";
import { ConvexError } from "convex/values";

const TIMEOUT_MS = 20_000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function expectEqual(actual, expected, what) {
  const [a, e] = [stringify(actual), stringify(expected)];
  if (a !== e) fail(`${what}: got ${a}, expected ${e}`);
}

function stringify(value) {
  return JSON.stringify(value, (_, item) => (typeof item === "bigint" ? `${item}n` : item));
}

const [url, adminKey, userToken, userSubject] = process.argv.slice(2);
if (!userSubject) fail("usage: node http_client.mjs <server url> <admin key> <user token> <user subject>");
setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const options = { skipConvexDeploymentUrlCheck: true, logger: false };
const client = new ConvexHttpClient(url, options);

expectEqual(await client.query(anyApi.notes.count, {}), 0n, "notes:count at first (an int64)");
const id = await client.mutation(anyApi.notes.add, { text: "hello" });
if (typeof id !== "string") fail(`notes:add returned ${stringify(id)}, not an id`);
expectEqual(await client.query(anyApi.notes.list), ["hello"], "the mutation's note, seen by the next query");

// Keys in order: objects come back with their fields sorted.
const value = { list: [1.5, null, true], n: 7n, nested: { text: "é" } };
expectEqual(await client.action(anyApi.notes.echo, { value }), value, "notes:echo's answer");

await client.mutation(anyApi.notes.reject, {}).then(
  () => fail("notes:reject succeeded"),
  (error) => {
    if (!(error instanceof ConvexError)) fail(`notes:reject threw ${error}, not a ConvexError`);
    expectEqual(error.data, { code: "NOPE", count: 3n }, "the ConvexError's data");
  },
);
await client.mutation(anyApi.notes.add, { text: 42 }).then(
  () => fail("a mutation with invalid arguments succeeded"),
  (error) => {
    if (!String(error).includes("ArgumentValidationError")) fail(`unexpected error: ${error}`);
  },
);

// A consistent query pins the timestamp of the client's first one: later commits stay unseen.
const pinned = new ConvexHttpClient(url, options);
expectEqual(await pinned.consistentQuery(anyApi.notes.list, {}), ["hello"], "the first consistent query");
await client.mutation(anyApi.notes.add, { text: "later" });
expectEqual(await pinned.consistentQuery(anyApi.notes.list, {}), ["hello"], "a consistent query after a commit");
expectEqual(await pinned.query(anyApi.notes.list, {}), ["hello", "later"], "a plain query after the commit");

client.setAuth(userToken);
expectEqual(await client.query(anyApi.notes.whoami, {}), userSubject, "notes:whoami with a user token");
await client.query(anyApi.notes.secret, {}).then(
  () => fail("a user called an internal query"),
  (error) => {
    if (!String(error).includes("Could not find public function")) fail(`unexpected error: ${error}`);
  },
);
client.setAdminAuth(adminKey);
expectEqual(await client.query(anyApi.notes.secret, {}), "the secret", "an internal query with the admin key");

console.log("OK");
