// Drives a Livebase server with the official Convex client: subscribe, mutate, act.
// Usage: node conformance.mjs http://127.0.0.1:PORT. Prints "OK" and exits 0, or exits 1 saying why.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";

const TIMEOUT_MS = 20_000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const url = process.argv[2] ?? fail("usage: node conformance.mjs <server url>");
setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const client = new ConvexClient(url, { webSocketConstructor: WebSocket, skipConvexDeploymentUrlCheck: true });
const updates = [];
let firstUpdate;
const subscribed = new Promise((resolve) => (firstUpdate = resolve));
client.onUpdate(
  anyApi.messages.list,
  {},
  (messages) => {
    updates.push(messages.map((message) => message.body));
    firstUpdate();
  },
  (error) => fail(`the subscription failed: ${error}`),
);
await subscribed;

const body = `hello from the npm client ${process.pid}`;
const id = await client.mutation(anyApi.messages.send, { body });
if (typeof id !== "string") fail(`messages:send returned ${JSON.stringify(id)}, not an id`);
// The client resolves a mutation only once the server's Transition reached its commit, and that
// Transition carries the new list: the subscription must have seen the message already.
const latest = updates.at(-1);
if (!latest.includes(body)) fail(`the mutation resolved before the subscription saw it: ${JSON.stringify(updates)}`);

const echoed = await client.action(anyApi.messages.echo, { text: "ping" });
if (echoed !== "ping") fail(`messages:echo returned ${JSON.stringify(echoed)}`);

await client.mutation(anyApi.messages.send, { body: 42 }).then(
  () => fail("a mutation with invalid arguments succeeded"),
  (error) => {
    if (!String(error).includes("ArgumentValidationError")) fail(`unexpected error: ${error}`);
  },
);

console.log(`OK updates=${updates.length}`);
await client.close();
process.exit(0);
