// The student list of Piano Mirror's page in headless Chromium against the demo binary: three pages
// load with "Load more", students inserted and deleted by another client show up live, and the rendered
// list is always the center's students in the list's order (status descending, newest first within a
// status) with no duplicates or gaps, while the status goes LoadingFirstPage -> CanLoadMore -> Exhausted.
// Usage: node students.mjs <api url> <site url>. LIVEBASE_SCREENSHOT_DIR=<dir> saves a screenshot.
import { anyApi } from "convex/server";
import {
  PATIENCE_MS,
  TestFailure,
  check,
  main,
  nodeClient,
  openPage,
  watchdog,
  withChromium,
} from "../../../crates/server/tests/browser/harness.mjs";
import { screenshot } from "./screenshot.mjs";

const PAGE_SIZE = 5;
const PAGES_LOADED = 3;
const STATUSES = ["active", "paused", "graduated"];
const STUDENTS = 17;
// Bounds the pages read when listing the whole center from the Node client.
const MAX_LISTED_PAGES = 100;
const TEST_TIMEOUT_MS = 120_000;

const [api, demoSite] = process.argv.slice(2);
if (demoSite === undefined) {
  console.error("usage: node students.mjs <api url> <site url>");
  process.exit(2);
}
watchdog(TEST_TIMEOUT_MS);

// The center's students as the list orders them, read page by page; checks that order independently.
async function centerStudents(client, centerId) {
  const students = [];
  let cursor = null;
  for (let page = 0; ; page++) {
    check(page < MAX_LISTED_PAGES, `the center has more than ${MAX_LISTED_PAGES} pages`);
    const result = await client.query(anyApi.students.listByCenter, {
      centerId,
      paginationOpts: { numItems: 50, cursor },
    });
    students.push(...result.page);
    if (result.isDone) break;
    cursor = result.continueCursor;
  }
  const ordered = students.every((student, index) => {
    if (index === 0) return true;
    const before = students[index - 1];
    return (
      before.status > student.status ||
      (before.status === student.status && before._creationTime > student._creationTime)
    );
  });
  check(ordered, () => `the list is not by status descending, newest first: ${JSON.stringify(students)}`);
  return students.map((student) => student._id);
}

function rendered(page) {
  return page.evaluate(() => ({
    ids: [...document.querySelectorAll("#students li")].map((item) => item.dataset.id),
    status: document.getElementById("status")?.textContent,
    statusLog: window.statusLog,
  }));
}

// Waits until the page renders a prefix of `expected` of `atLeast` to `atMost` items, with a status in
// `statuses`.
async function waitForRendered(page, { expected, statuses, atLeast, atMost = atLeast }) {
  try {
    await page.waitForFunction(
      ({ expected, statuses, atLeast, atMost }) => {
        const ids = [...document.querySelectorAll("#students li")].map((item) => item.dataset.id);
        return (
          statuses.includes(document.getElementById("status")?.textContent) &&
          ids.length >= atLeast &&
          ids.length <= atMost &&
          ids.every((id, index) => id === expected[index])
        );
      },
      { expected, statuses, atLeast, atMost },
      { timeout: PATIENCE_MS },
    );
  } catch (error) {
    if (error.name !== "TimeoutError") throw error;
    const state = await rendered(page);
    const duplicates = state.ids.filter((id, index) => state.ids.indexOf(id) !== index);
    throw new TestFailure(
      `expected ${atLeast}..${atMost} students of ${JSON.stringify(expected)} with status in ${statuses}, ` +
        `rendered ${JSON.stringify(state.ids)} (duplicates ${JSON.stringify(duplicates)}) with status ${state.status}`,
    );
  }
}

async function clickLoadMore(page) {
  await page.waitForSelector("#load-more:not([disabled])");
  await page.click("#load-more");
}

main(async () => {
  const admin = nodeClient(api);
  try {
    const centerId = await admin.mutation(anyApi.centers.create, { name: "Browser Test Music School" });
    for (let index = 0; index < STUDENTS; index++) {
      const status = STATUSES[index % STATUSES.length];
      await admin.mutation(anyApi.students.create, { centerId, name: `Student ${index}`, status });
    }
    return await withChromium(async (browser) => {
      // The page as the demo binary serves it, finding the API through the URL the binary writes into it.
      const url = `${demoSite}/?view=students&center=${centerId}&pageSize=${PAGE_SIZE}`;
      const { page, assertNoErrors } = await openPage(browser, url);

      let expected = await centerStudents(admin, centerId);
      check(expected.length === STUDENTS, `${expected.length} students listed, ${STUDENTS} inserted`);
      await waitForRendered(page, { expected, statuses: ["CanLoadMore"], atLeast: PAGE_SIZE });
      for (let pages = 2; pages <= PAGES_LOADED; pages++) {
        await clickLoadMore(page);
        await waitForRendered(page, { expected, statuses: ["CanLoadMore"], atLeast: pages * PAGE_SIZE });
      }
      const loaded = PAGES_LOADED * PAGE_SIZE;

      // Live, from another client: a new "paused" student lands inside the loaded range, and a
      // loaded student is deleted.
      const added = await admin.mutation(anyApi.students.create, { centerId, name: "Newcomer", status: "paused" });
      expected = await centerStudents(admin, centerId);
      check(expected.indexOf(added) < loaded, "the newcomer sorts into the loaded range");
      await waitForRendered(page, { expected, statuses: ["CanLoadMore"], atLeast: loaded + 1 });
      const removed = expected[2];
      await admin.mutation(anyApi.students.remove, { id: removed });
      expected = await centerStudents(admin, centerId);
      check(!expected.includes(removed), "the removed student is gone");
      await waitForRendered(page, { expected, statuses: ["CanLoadMore"], atLeast: loaded });
      await screenshot(page, "demo-students.png");

      // Load the rest: the whole center, in order, and nothing more to load.
      await clickLoadMore(page);
      await waitForRendered(page, { expected, statuses: ["Exhausted"], atLeast: expected.length });

      const { statusLog } = await rendered(page);
      const settled = statusLog.filter((status) => status !== "LoadingMore");
      const expectedSettled = ["LoadingFirstPage", ...Array(PAGES_LOADED).fill("CanLoadMore"), "Exhausted"];
      check(
        JSON.stringify(settled) === JSON.stringify(expectedSettled),
        () => `statuses ${JSON.stringify(statusLog)}, expected ${JSON.stringify(expectedSettled)} and LoadingMore`,
      );
      assertNoErrors();
      return `rendered=${expected.length} statuses=${statusLog.join(",")}`;
    });
  } finally {
    await admin.close();
  }
});
