// A React page (pages/paginated_messages.jsx) using `useQuery` and `usePaginatedQuery` of the
// official npm client, in headless Chromium, against a Livebase server: the first page renders,
// "Load more" works, the list updates live, and after concurrent inserts and deletes the rendered
// list is exactly the table's contents newest first (no duplicates, no gaps), first over the loaded
// range and then, loaded to the end, over the whole table.
// Usage: node paginated_messages.mjs <server url>. LIVEBASE_SCREENSHOT=<file.png> saves a screenshot.
import { fileURLToPath } from "node:url";
import { anyApi } from "convex/server";
import {
  PATIENCE_MS,
  TestFailure,
  bundle,
  check,
  htmlPage,
  main,
  nodeClient,
  openPage,
  serveStatic,
  watchdog,
  withChromium,
} from "./harness.mjs";

const PAGE_SIZE = 5;
const SEEDED_MESSAGES = 23;
const PAGES_LOADED_BEFORE_WRITES = 3;
const CONCURRENT_WRITERS = 4;
const OPERATIONS_PER_WRITER = 50;
const DELETE_SHARE = 0.4;
const LOADS_DURING_WRITES = 3;
const TEST_TIMEOUT_MS = 150_000;

const url = process.argv[2];
if (url === undefined) {
  console.error("usage: node paginated_messages.mjs <server url>");
  process.exit(2);
}
watchdog(TEST_TIMEOUT_MS);

// Deterministic choices of what to write (mulberry32); the interleaving is up to the scheduler.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function tableNewestFirst(client) {
  const messages = await client.query(anyApi.messages.list, {});
  return messages.map((message) => message._id).reverse();
}

function renderedState(page) {
  return page.evaluate(() => ({
    ids: [...document.querySelectorAll("#messages li")].map((item) => item.dataset.id),
    status: document.getElementById("status").textContent,
    total: document.getElementById("total").textContent,
    statusLog: window.statusLog,
  }));
}

function describeMismatch(ids, expected, what) {
  const expectedIds = new Set(expected);
  const renderedIds = new Set(ids);
  const duplicates = ids.filter((id, index) => ids.indexOf(id) !== index);
  const unknown = ids.filter((id) => !expectedIds.has(id));
  const missing = expected.slice(0, ids.length).filter((id) => !renderedIds.has(id));
  const firstDifference = ids.findIndex((id, index) => id !== expected[index]);
  return (
    `the rendered list is not ${what}: ${ids.length} rendered, ${expected.length} in the table, ` +
    `first difference at ${firstDifference}, duplicates ${JSON.stringify(duplicates)}, ` +
    `not in the table ${JSON.stringify(unknown)}, missing ${JSON.stringify(missing)}`
  );
}

// Waits until the page renders `expected` (newest first) with a status in `statuses` and the
// total from `useQuery` equal to `total`. With `atLeast`, a prefix of `expected` of at least that
// many items (the loaded range) is enough.
async function waitForRendered(page, { expected, statuses, total, atLeast = expected.length }) {
  const totalText = `${total} messages in total`;
  try {
    await page.waitForFunction(
      ({ expected, statuses, totalText, atLeast }) => {
        const ids = [...document.querySelectorAll("#messages li")].map((item) => item.dataset.id);
        return (
          statuses.includes(document.getElementById("status").textContent) &&
          document.getElementById("total").textContent === totalText &&
          ids.length >= atLeast &&
          ids.length <= expected.length &&
          ids.every((id, index) => id === expected[index])
        );
      },
      { expected, statuses, totalText, atLeast },
      { timeout: PATIENCE_MS },
    );
  } catch (error) {
    if (error.name !== "TimeoutError") throw error;
    const state = await renderedState(page);
    const what = atLeast === expected.length ? "the table" : `a prefix of the table of at least ${atLeast}`;
    throw new TestFailure(
      `${describeMismatch(state.ids, expected, what)}; status ${state.status} (expected one of ${statuses}), ` +
        `total "${state.total}" (expected "${totalText}")`,
    );
  }
}

// Clicks "Load more" up to `times` times, each once the previous load finished; stops at Exhausted.
async function loadMore(page, times) {
  for (let load = 0; load < times; load++) {
    const settled = await page.waitForFunction(() => {
      const status = document.getElementById("status").textContent;
      return ["CanLoadMore", "Exhausted"].includes(status) && status;
    });
    if ((await settled.jsonValue()) === "Exhausted") return;
    await page.click("#load-more");
  }
}

// Each writer inserts, or deletes a message some writer (or the seeding) created, chosen at random.
async function writeConcurrently(writers, pool, inserted) {
  const choose = random(5);
  await Promise.all(
    writers.map(async (writer, writerIndex) => {
      for (let operation = 0; operation < OPERATIONS_PER_WRITER; operation++) {
        if (pool.length > 0 && choose() < DELETE_SHARE) {
          const [id] = pool.splice(Math.floor(choose() * pool.length), 1);
          await writer.mutation(anyApi.messages.remove, { id });
        } else {
          const id = await writer.mutation(anyApi.messages.send, { body: `writer ${writerIndex} #${operation}` });
          pool.push(id);
          inserted.add(id);
        }
      }
    }),
  );
}

main(async () => {
  const script = await bundle(fileURLToPath(new URL("pages/paginated_messages.jsx", import.meta.url)));
  const site = await serveStatic({
    "/": { type: "text/html; charset=utf-8", body: htmlPage("Livebase messages", "/page.js") },
    "/page.js": { type: "text/javascript; charset=utf-8", body: script },
  });
  const writers = Array.from({ length: CONCURRENT_WRITERS }, () => nodeClient(url));
  const [writer] = writers;
  try {
    await Promise.all(
      Array.from({ length: SEEDED_MESSAGES }, (_, index) =>
        writer.mutation(anyApi.messages.send, { body: `seeded #${index}` }),
      ),
    );
    return await withChromium(async (browser) => {
      const pageUrl = `${site.origin}/?livebase=${encodeURIComponent(url)}&pageSize=${PAGE_SIZE}`;
      const { page, assertNoErrors } = await openPage(browser, pageUrl);

      // The first page, then "Load more" until three pages are loaded.
      let table = await tableNewestFirst(writer);
      await waitForRendered(page, {
        expected: table.slice(0, PAGE_SIZE),
        statuses: ["CanLoadMore"],
        total: table.length,
      });
      for (let pages = 2; pages <= PAGES_LOADED_BEFORE_WRITES; pages++) {
        await loadMore(page, 1);
        await waitForRendered(page, {
          expected: table.slice(0, pages * PAGE_SIZE),
          statuses: ["CanLoadMore"],
          total: table.length,
        });
      }
      const quietStatuses = (await renderedState(page)).statusLog;
      const expectedQuietStatuses = ["LoadingFirstPage", "CanLoadMore"];
      for (let pages = 2; pages <= PAGES_LOADED_BEFORE_WRITES; pages++) {
        expectedQuietStatuses.push("LoadingMore", "CanLoadMore");
      }
      check(
        JSON.stringify(quietStatuses) === JSON.stringify(expectedQuietStatuses),
        () => `statuses ${JSON.stringify(quietStatuses)}, expected ${JSON.stringify(expectedQuietStatuses)}`,
      );

      // Live: another client's insert appears on top, its delete disappears from the middle.
      const loaded = PAGES_LOADED_BEFORE_WRITES * PAGE_SIZE;
      const sent = await writer.mutation(anyApi.messages.send, { body: "sent while the page watches" });
      table = await tableNewestFirst(writer);
      check(table[0] === sent, "the newest message in the table is the one just sent");
      await waitForRendered(page, { expected: table.slice(0, loaded + 1), statuses: ["CanLoadMore"], total: table.length });
      const removed = table[Math.floor(loaded / 2)];
      await writer.mutation(anyApi.messages.remove, { id: removed });
      table = await tableNewestFirst(writer);
      check(!table.includes(removed), "the removed message is gone from the table");
      await waitForRendered(page, { expected: table.slice(0, loaded), statuses: ["CanLoadMore"], total: table.length });
      if (process.env.LIVEBASE_SCREENSHOT) await page.screenshot({ path: process.env.LIVEBASE_SCREENSHOT });

      // Concurrent inserts and deletes from several clients while the page loads more. Every
      // message that was loaded (or newer) and survives must stay rendered.
      const loadedBeforeWrites = new Set(table.slice(0, loaded));
      const inserted = new Set();
      await Promise.all([writeConcurrently(writers, [...table], inserted), loadMore(page, LOADS_DURING_WRITES)]);
      table = await tableNewestFirst(writer);
      const mustStayLoaded = table.filter((id) => inserted.has(id) || loadedBeforeWrites.has(id)).length;
      await waitForRendered(page, {
        expected: table,
        statuses: ["CanLoadMore", "Exhausted"],
        total: table.length,
        atLeast: mustStayLoaded,
      });

      // Load the rest: then the rendered list is the whole table.
      await loadMore(page, Math.ceil(table.length / PAGE_SIZE) + 1);
      await waitForRendered(page, { expected: table, statuses: ["Exhausted"], total: table.length });

      const { statusLog } = await renderedState(page);
      check(
        statusLog.lastIndexOf("LoadingFirstPage") === 0,
        () => `the list restarted from its first page: ${JSON.stringify(statusLog)}`,
      );
      assertNoErrors();
      return `rendered=${table.length} inserted=${inserted.size} statuses=${statusLog.length}`;
    });
  } finally {
    await Promise.all(writers.map((client) => client.close()));
    await site.close();
  }
});
