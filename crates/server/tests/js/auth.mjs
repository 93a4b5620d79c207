// Drives a Livebase server's auth with the official Convex client: a valid token is accepted and its
// identity reaches a live query; an expired one is refused (AuthError), the client reports it through
// setAuth's onChange(false), and the query sees no identity again.
// Usage: node auth.mjs <server url> <valid token> <expired token> <subject>.
// Prints "OK" and exits 0, or exits 1 saying why.
import { ConvexClient } from "convex/browser";
import { anyApi } from "convex/server";
import WebSocket from "ws";

const TIMEOUT_MS = 20_000;
// Everything the client logs, verbose lines included: it logs why the server refused a token.
const logLines = [];

function fail(message) {
  console.error(`FAIL: ${message}\nclient log:\n${logLines.join("\n")}`);
  process.exit(1);
}

const [url, validToken, expiredToken, subject] = process.argv.slice(2);
if (!subject) fail("usage: node auth.mjs <server url> <valid token> <expired token> <subject>");
setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const record = (...args) => logLines.push(args.map(String).join(" "));
const logger = { log: record, warn: record, error: record, logVerbose: record };
const client = new ConvexClient(url, { webSocketConstructor: WebSocket, skipConvexDeploymentUrlCheck: true, logger });

// The latest result of `auth:whoami`, and the tests waiting on it.
let identity;
const waiting = new Set();
client.onUpdate(
  anyApi.auth.whoami,
  {},
  (result) => {
    identity = result;
    for (const check of waiting) check();
  },
  (error) => fail(`auth:whoami failed: ${error}`),
);

function identityWhere(predicate) {
  return new Promise((resolve) => {
    const check = () => {
      if (identity !== undefined && predicate(identity)) {
        waiting.delete(check);
        resolve(identity);
      }
    };
    waiting.add(check);
    check();
  });
}

// Calls `setAuth` with a fetcher always giving `token`; resolves with the first auth change it reports.
function signIn(token) {
  return new Promise((resolve) => client.setAuth(async () => token, resolve));
}

await identityWhere((seen) => seen === null);

if ((await signIn(validToken)) !== true) fail("the valid token was refused");
const me = await identityWhere((seen) => seen !== null);
if (me.subject !== subject) fail(`whoami gave subject ${JSON.stringify(me.subject)}, not ${subject}`);
if (!me.tokenIdentifier.endsWith(`|${subject}`)) fail(`unexpected tokenIdentifier ${me.tokenIdentifier}`);

if ((await signIn(expiredToken)) !== false) fail("the expired token was accepted");
if (!logLines.some((line) => line.includes("token expired"))) fail("the client was not told the token expired");
await identityWhere((seen) => seen === null);

console.log(`OK subject=${me.subject}`);
await client.close();
process.exit(0);
