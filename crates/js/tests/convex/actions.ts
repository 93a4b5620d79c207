import { ConvexError, v } from "convex/values";
import { action, internalAction } from "./_generated/server";
import { api, internal } from "./_generated/api";

// Runs a query, a mutation and another action, as the action's caller.
export const callEverything = action({
  args: { channel: v.string() },
  handler: async (ctx, { channel }) => {
    const id = await ctx.runMutation(api.messages.send, { channel, body: "from an action", n: 1 });
    const latest = await ctx.runQuery(api.messages.latest, { channel, count: 5 });
    const echoed = await ctx.runAction(internal.actions.echo, { said: "hi" });
    console.log("called everything");
    return { id, latest, echoed };
  },
});

export const echo = internalAction({
  args: { said: v.string() },
  handler: async (_ctx, { said }) => `echo: ${said}`,
});

// Several calls under way at once.
export const concurrently = action({
  args: { n: v.number() },
  handler: async (ctx, { n }) => {
    const identities = await Promise.all(Array.from({ length: n }, () => ctx.auth.getUserIdentity()));
    return identities.length;
  },
});

export const scheduleRecord = action({
  args: { note: v.string() },
  handler: async (ctx, { note }) => await ctx.scheduler.runAfter(0, internal.jobs.record, { note }),
});

export const scheduleAndCancel = action({
  args: {},
  handler: async (ctx) => {
    const id = await ctx.scheduler.runAfter(3_600_000, internal.jobs.record, { note: "never" });
    await ctx.scheduler.cancel(id);
    return id;
  },
});

export const failWithData = action({
  args: {},
  handler: async () => {
    throw new ConvexError({ code: "NOPE", retry: false });
  },
});

// A ConvexError thrown by a mutation the action runs: the action sees its data, and may rethrow it.
export const relayMutationError = action({
  args: {},
  handler: async (ctx) => {
    try {
      await ctx.runMutation(internal.jobs.failAfterInsert, {});
      return "no error";
    } catch (error: any) {
      return { name: error.constructor.name, data: error.data };
    }
  },
});

export const never = action({ args: {}, handler: () => new Promise(() => {}) });

export const spin = action({
  args: {},
  handler: async (ctx) => {
    // Waiting does not count as running JavaScript; the loop does.
    await ctx.auth.getUserIdentity();
    for (;;) {
      // Never ends.
    }
  },
});

export const hog = action({
  args: {},
  handler: async () => {
    const chunks: number[][] = [];
    for (;;) chunks.push(new Array(1 << 20).fill(7));
  },
});

export const throwString = action({
  args: {},
  handler: async () => {
    throw "a plain string";
  },
});

export const reject = action({ args: {}, handler: () => Promise.reject(new TypeError("rejected on purpose")) });

export const readInAction = action({
  args: {},
  handler: async () => (globalThis as any).Convex.syscall("1.0/db/normalizeId", "{}"),
});

export const unknownSyscall = action({
  args: {},
  handler: async () => (globalThis as any).Convex.asyncSyscall("1.0/notASyscall", "{}"),
});

export const fine = action({ args: {}, handler: async () => "still fine" });

// Queries under way at once, each run nested on this action's worker.
export const queriesAtOnce = action({
  args: { n: v.number() },
  handler: async (ctx, { n }) => {
    const counts = await Promise.all(Array.from({ length: n }, () => ctx.runQuery(api.jobs.nest, { n: 2 })));
    return counts.reduce((sum, count) => sum + count, 0);
  },
});

export const fetchPost = action({
  args: { url: v.string() },
  handler: async (_ctx, { url }) => {
    const response = await fetch(url, { method: "POST", headers: { "x-sent": "yes" }, body: "ping" });
    return { status: response.status, body: await response.text(), answer: response.headers.get("x-answer") };
  },
});
