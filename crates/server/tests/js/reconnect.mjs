// The client's half of the restart test in tests/npm_client.rs. It subscribes to messages:list and
// calls gated:send, which the server holds while it restarts: the mutation commits after its
// connection is gone, so its answer is lost and the client must replay it on the new connection.
// Checks that the mutation resolves, that its message is there exactly once, and that the
// subscription is live again after the reconnect.
// Usage: node reconnect.mjs http://127.0.0.1:PORT BODY. Prints "OK" and exits 0, or exits 1 saying why.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";

const TIMEOUT_MS = 30_000;

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

const [url, body] = process.argv.slice(2);
if (!url || !body) fail("usage: node reconnect.mjs <server url> <message body>");
setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const client = new ConvexClient(url, { webSocketConstructor: WebSocket, skipConvexDeploymentUrlCheck: true });
let latest;
let firstUpdate;
const subscribed = new Promise((resolve) => (firstUpdate = resolve));
client.onUpdate(
  anyApi.messages.list,
  {},
  (messages) => {
    latest = messages.map((message) => message.body);
    firstUpdate();
  },
  (error) => fail(`the subscription failed: ${error}`),
);
await subscribed;

const id = await client.mutation(anyApi.gated.send, { body });
if (typeof id !== "string") fail(`gated:send returned ${JSON.stringify(id)}, not an id`);
const { connectionCount } = client.connectionState();
if (connectionCount < 2) fail(`the mutation resolved on connection ${connectionCount}: the server did not restart`);
const copies = latest.filter((seen) => seen === body).length;
if (copies !== 1) fail(`after the replay the list holds the message ${copies} times: ${JSON.stringify(latest)}`);

// The subscription is live on the new connection: it sees the next mutation.
const after = `${body} (after the restart)`;
await client.mutation(anyApi.messages.send, { body: after });
if (!latest.includes(after)) fail(`the subscription did not resume: ${JSON.stringify(latest)}`);

console.log(`OK connections=${connectionCount}`);
await client.close();
process.exit(0);
