// Piano Mirror's room page in headless Chromium against the demo binary: two pages sign in as two
// users, one creates room "ABC123", the other joins it, they exchange offer, answer and ICE candidates
// through `signaling:*`, the data channel opens, and a key pressed on one page lights up on the other
// (both ways).
// Usage: node piano.mjs <api url> <site url>. LIVEBASE_SCREENSHOT_DIR=<dir> saves screenshots.
import { TestFailure, main, openPage, watchdog, withChromium } from "../../../crates/server/tests/browser/harness.mjs";
import { screenshot } from "./screenshot.mjs";

const SLUG = "ABC123";
// Plain host candidates instead of mDNS names, so connecting does not depend on multicast DNS working on
// the test machine.
const WEBRTC_ARGS = ["--disable-features=WebRtcHideLocalIpsWithMdns"];
const NOTE_FROM_HOST = 64;
const NOTE_FROM_GUEST = 67;
const TEST_TIMEOUT_MS = 120_000;

// The page finds the API (the first argument) on its own, in what the demo binary serves.
const demoSite = process.argv[3];
if (demoSite === undefined) {
  console.error("usage: node piano.mjs <api url> <site url>");
  process.exit(2);
}
watchdog(TEST_TIMEOUT_MS);

// The page as the demo binary serves it, finding the API through the URL the binary writes into it.
function roomUrl(name) {
  return `${demoSite}/?view=room&name=${name}&slug=${SLUG}`;
}

async function enterRoom(browser, name, button) {
  const opened = await openPage(browser, roomUrl(name));
  await opened.page.click(button);
  await opened.page.waitForFunction((slug) => document.getElementById("room")?.textContent === slug, SLUG);
  return opened;
}

async function pressAndSee(from, to, note) {
  await from.page.click(`#keyboard [data-note="${note}"]`);
  try {
    await to.page.waitForSelector(`#keyboard [data-note="${note}"][data-lit="remote"]`);
  } catch (error) {
    if (error.name !== "TimeoutError") throw error;
    const lit = await to.page.$$eval("#keyboard [data-lit=remote]", (keys) => keys.map((key) => key.dataset.note));
    throw new TestFailure(`key ${note} pressed on one side did not light up on the other (lit there: [${lit}])`);
  }
}

main(async () =>
  withChromium(
    async (browser) => {
      // Joining before the room exists is refused with the server's message, and changes nothing.
      const early = await openPage(browser, roomUrl("Ben"));
      await early.page.click("#join");
      await early.page.waitForFunction(
        (slug) => document.getElementById("error")?.textContent === `No open room has the code \`${slug}\``,
        SLUG,
      );
      await early.page.close();

      const host = await enterRoom(browser, "Ada", "#create");
      const guest = await enterRoom(browser, "Ben", "#join");
      for (const { page } of [host, guest]) {
        await page.waitForFunction(() => document.getElementById("peers")?.textContent === "Ada, Ben");
        await page.waitForFunction(() => document.getElementById("channel")?.textContent === "open");
      }
      await pressAndSee(host, guest, NOTE_FROM_HOST);
      await pressAndSee(guest, host, NOTE_FROM_GUEST);
      await screenshot(host.page, "demo-room-host.png");
      await screenshot(guest.page, "demo-room-guest.png");
      host.assertNoErrors();
      guest.assertNoErrors();
      return `room ${SLUG}: keys mirrored both ways`;
    },
    { args: WEBRTC_ARGS },
  ),
);
