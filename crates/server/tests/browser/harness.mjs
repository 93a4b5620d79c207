// What every browser test needs: headless Chromium (Debian's, installed by scripts/browser-env.sh),
// a page bundled by esbuild, a static file server for it, Node clients of the Livebase server, and
// bounded waits. Every wait has a deadline and the browser is always closed.
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { ConvexClient } from "convex/browser";
import * as esbuild from "esbuild";
import { chromium } from "playwright-core";
import WebSocket from "ws";

export const CHROMIUM_PATH = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// How long a test waits for anything the page or the server should do soon; failing beats hanging.
export const PATIENCE_MS = 10_000;
const LAUNCH_TIMEOUT_MS = 30_000;

export class TestFailure extends Error {}

export function check(condition, message) {
  if (!condition) throw new TestFailure(typeof message === "function" ? message() : message);
}

// Exits the process (playwright kills the browsers it launched on exit) if the test runs past
// `ms`: the last resort behind every bounded wait.
export function watchdog(ms) {
  setTimeout(() => {
    console.error(`FAIL: the test did not finish within ${ms} ms`);
    process.exit(1);
  }, ms).unref();
}

// Runs `test` and reports in the one format the Rust side reads: "OK ..." on stdout and exit 0,
// or "FAIL: ..." on stderr and exit 1.
export async function main(test) {
  try {
    const summary = await test();
    console.log(`OK ${summary ?? ""}`);
    process.exit(0);
  } catch (error) {
    console.error(`FAIL: ${error instanceof TestFailure ? error.message : (error?.stack ?? error)}`);
    process.exit(1);
  }
}

// Bundles a page's entry point (JSX allowed) into one browser script. React's development build
// is the default because it reports mistakes such as duplicate keys on the console.
export async function bundle(entryPoint, { mode = "development" } = {}) {
  const result = await esbuild.build({
    entryPoints: [entryPoint],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    jsx: "automatic",
    define: { "process.env.NODE_ENV": JSON.stringify(mode) },
    logLevel: "silent",
  });
  check(result.outputFiles.length === 1, `esbuild produced ${result.outputFiles.length} files for ${entryPoint}`);
  return result.outputFiles[0].text;
}

// A page with one bundled script, as the HTML that loads it.
export function htmlPage(title, scriptPath) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>${title}</title></head>
<body><div id="root"></div><script type="module" src="${scriptPath}"></script></body>
</html>`;
}

// Serves `files` (`{"/path": {type, body}}`) on a free loopback port; everything else is a 404.
export async function serveStatic(files) {
  const server = createServer((request, response) => {
    const file = files[new URL(request.url, "http://localhost").pathname];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": file.type, "cache-control": "no-store" }).end(file.body);
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// Launches headless Chromium (with `args` beyond the defaults), runs `use(browser)` and closes the
// browser whatever happens. A missing Chromium is a failure, never a skip: CI must run the browser tests.
export async function withChromium(use, { args = [] } = {}) {
  check(existsSync(CHROMIUM_PATH), `Chromium is not installed at ${CHROMIUM_PATH}: run scripts/browser-env.sh`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: LAUNCH_TIMEOUT_MS,
  });
  try {
    return await use(browser);
  } finally {
    await browser.close();
  }
}

// Opens a page that fails the test on any uncaught error or console error (React reports
// duplicate keys and failed queries there). Call `assertNoErrors()` before passing.
export async function openPage(browser, url) {
  const page = await browser.newPage();
  page.setDefaultTimeout(PATIENCE_MS);
  const errors = [];
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  await page.goto(url);
  return {
    page,
    assertNoErrors: () => check(errors.length === 0, () => `the page reported errors:\n${errors.join("\n")}`),
  };
}

// A Node client of the Livebase server at `url` (the official npm client over `ws`).
export function nodeClient(url) {
  return new ConvexClient(url, { webSocketConstructor: WebSocket, skipConvexDeploymentUrlCheck: true });
}
