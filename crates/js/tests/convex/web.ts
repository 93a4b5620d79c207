// The web APIs, exercised from real queries: each returns what it saw as a JSON string.
import { v } from "convex/values";
import { query } from "./_generated/server";

// What `run` returned, or the error it threw as `Name: message`.
const attempt = async (run: () => unknown) => {
  try {
    return await run();
  } catch (error: any) {
    return `${error.name}: ${error.message}`;
  }
};

const report = (value: unknown) => JSON.stringify(value);

export const randomValues = query({
  args: { bytes: v.number() },
  handler: async (_, { bytes }) =>
    report(
      await attempt(() => {
        const filled = crypto.getRandomValues(new Uint8Array(bytes));
        return { length: filled.length, anyNonZero: filled.some((byte) => byte !== 0) };
      }),
    ),
});

export const randomUuid = query({
  args: {},
  handler: async () => report([crypto.randomUUID(), crypto.randomUUID()]),
});

export const text = query({
  args: {},
  handler: async () => {
    const bytes = new TextEncoder().encode("héllo €");
    return report({
      bytes: [...bytes],
      decoded: new TextDecoder().decode(bytes),
      fromBuffer: new TextDecoder().decode(bytes.buffer),
      lenient: new TextDecoder().decode(new Uint8Array([0x61, 0xc3, 0x28])),
      fatal: await attempt(() => new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0x61, 0xc3, 0x28]))),
      base64: btoa("hi there"),
      fromBase64: atob("aGkgdGhlcmU="),
      notLatin1: await attempt(() => btoa("€")),
    });
  },
});

export const url = query({
  args: { input: v.string(), base: v.optional(v.string()) },
  handler: async (_, { input, base }) =>
    report(
      await attempt(() => {
        const url = new URL(input, base);
        url.searchParams.append("added", "a b");
        return {
          href: url.href,
          origin: url.origin,
          host: url.host,
          pathname: url.pathname,
          search: url.search,
          hash: url.hash,
          params: [...url.searchParams],
          json: JSON.stringify({ url }),
        };
      }),
    ),
});

export const invalidUrl = query({
  args: {},
  handler: async () => new URL("not a url").href,
});

export const headers = query({
  args: {},
  handler: async () => {
    const headers = new Headers({ "Content-Type": "text/plain", "X-Multi": "one" });
    headers.append("x-multi", "two");
    headers.append("Set-Cookie", "a=1");
    headers.append("set-cookie", "b=2");
    const before = { has: headers.has("CONTENT-TYPE"), multi: headers.get("X-MULTI"), cookies: headers.getSetCookie() };
    const seen: string[] = [];
    headers.forEach((value, name) => seen.push(`${name}: ${value}`));
    headers.set("x-multi", "three");
    headers.delete("Content-type");
    return report({
      before,
      seen,
      after: [...headers.entries()],
      invalidName: await attempt(() => headers.set("bad name", "x")),
      invalidValue: await attempt(() => new Headers([["x", "a\nb"]])),
    });
  },
});

export const requests = query({
  args: {},
  handler: async () => {
    const json = new Request("https://api.test/items?q=1", {
      method: "post",
      headers: { "x-token": "t" },
      body: JSON.stringify({ a: 1 }),
    });
    const copy = json.clone();
    const parsed = await json.json();
    const bodies = {
      buffer: await new Request("https://x.test/", { method: "PUT", body: new Uint8Array([1, 2, 3]).buffer }).arrayBuffer(),
      bytes: await new Request("https://x.test/", { method: "PUT", body: new Uint8Array([104, 105]) }).text(),
      form: new Request("https://x.test/", { method: "POST", body: new URLSearchParams({ a: "1 2" }) }),
      none: new Request("https://x.test/", { body: null }),
    };
    return report({
      url: json.url,
      method: json.method,
      contentType: json.headers.get("content-type"),
      parsed,
      used: json.bodyUsed,
      readTwice: await attempt(() => json.text()),
      cloneText: await copy.text(),
      buffer: [...new Uint8Array(bodies.buffer)],
      bytes: bodies.bytes,
      form: [bodies.form.headers.get("content-type"), await bodies.form.text()],
      none: [bodies.none.method, bodies.none.body, await bodies.none.text()],
      getWithBody: await attempt(() => new Request("https://x.test/", { body: "x" })),
      relative: await attempt(() => new Request("/relative")),
      stream: await attempt(() => new Request("https://x.test/", { method: "POST", body: "x" }).body),
    });
  },
});

export const responses = query({
  args: {},
  handler: async () => {
    const plain = new Response("created", { status: 201, statusText: "Created", headers: { "X-Id": "7" } });
    const json = Response.json({ ok: true }, { status: 400 });
    const redirect = Response.redirect("https://x.test/next", 307);
    const blob = await new Response(new Blob(["a", new Uint8Array([98])], { type: "text/x-ab" })).blob();
    return report({
      plain: [plain.status, plain.statusText, plain.ok, plain.headers.get("x-id"), await plain.clone().text()],
      json: [json.status, json.ok, json.headers.get("content-type"), await json.json()],
      redirect: [redirect.status, redirect.headers.get("location"), redirect.body],
      blob: [blob.size, blob.type, await blob.text()],
      empty: await new Response().text(),
      badStatus: await attempt(() => new Response("x", { status: 99 })),
      nullBodyStatus: await attempt(() => new Response("x", { status: 204 })),
      badRedirect: await attempt(() => Response.redirect("https://x.test/", 200)),
    });
  },
});
