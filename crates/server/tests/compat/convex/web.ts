// The web APIs functions commonly use: crypto, TextEncoder/TextDecoder, URL, and in actions
// fetch/Request/Response/Headers.
import { v } from "convex/values";
import { action, query } from "./_generated/server";

export const basics = query({
  args: {},
  handler: async () => {
    const uuid = crypto.randomUUID();
    const random = crypto.getRandomValues(new Uint8Array(16));
    const encoded = new TextEncoder().encode("héllo");
    const decoded = new TextDecoder().decode(encoded);
    const url = new URL("/path/to?x=1&y=two#frag", "https://example.com:8443");
    url.searchParams.append("z", "3");
    return {
      uuidOk: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(uuid),
      randomLength: random.length,
      encodedLength: encoded.length,
      decoded,
      host: url.host,
      pathname: url.pathname,
      y: url.searchParams.get("y"),
      href: url.href,
    };
  },
});

// Fetches `url` (the deployment's own HTTP route) with a JSON body; also builds a Response itself.
export const fetchEcho = action({
  args: { url: v.string(), text: v.string() },
  handler: async (_ctx, { url, text }) => {
    const headers = new Headers({ "content-type": "application/json" });
    headers.set("x-compat", "yes");
    const request = new Request(url, { method: "POST", headers, body: JSON.stringify({ text }) });
    const response = await fetch(request);
    const made = new Response("made here", { status: 201, headers: { "x-made": "1" } });
    return {
      status: response.status,
      echoed: await response.json(),
      contentType: response.headers.get("content-type"),
      made: { status: made.status, text: await made.text(), header: made.headers.get("x-made") },
    };
  },
});
