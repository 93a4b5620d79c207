// Screenshots for README, taken by the browser tests of Piano Mirror's page.
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const REPOSITORY_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

// Saves a screenshot of `page` as `<LIVEBASE_SCREENSHOT_DIR>/<name>` when that variable is set; a
// relative directory is relative to the repository's root (`docs` for README's screenshots).
export async function screenshot(page, name) {
  const dir = process.env.LIVEBASE_SCREENSHOT_DIR;
  if (dir !== undefined) await page.screenshot({ path: resolve(REPOSITORY_ROOT, dir, name) });
}
