import { ConvexError, v } from "convex/values";
import { internalMutation, mutation, query } from "./_generated/server";
import { api, internal } from "./_generated/api";

export const record = internalMutation({
  args: { note: v.string() },
  handler: async (ctx, { note }) => {
    await ctx.db.insert("messages", { channel: "jobs", body: note });
  },
});

export const scheduleRecord = mutation({
  args: { note: v.string() },
  handler: async (ctx, { note }) => await ctx.scheduler.runAfter(0, internal.jobs.record, { note }),
});

export const scheduleAndCancel = mutation({
  args: {},
  handler: async (ctx) => {
    const id = await ctx.scheduler.runAfter(3_600_000, internal.jobs.record, { note: "never" });
    await ctx.scheduler.cancel(id);
    return id;
  },
});

// `ctx.runMutation` and `ctx.runQuery` inside a mutation: one transaction.
export const recordAndCount = mutation({
  args: { note: v.string() },
  handler: async (ctx, { note }) => {
    await ctx.runMutation(internal.jobs.record, { note });
    return await ctx.runQuery(api.jobs.count, {});
  },
});

export const count = query({
  args: {},
  handler: async (ctx) =>
    (
      await ctx.db
        .query("messages")
        .withIndex("by_channel", (q) => q.eq("channel", "jobs"))
        .collect()
    ).length,
});

export const failAfterInsert = internalMutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert("messages", { channel: "jobs", body: "half done" });
    throw new ConvexError({ code: "NESTED_FAILED" });
  },
});

// Catches a nested mutation's failure: the call still fails, and nothing of it commits.
export const recordThenCatchFailure = mutation({
  args: {},
  handler: async (ctx) => {
    await ctx.db.insert("messages", { channel: "jobs", body: "before" });
    try {
      await ctx.runMutation(internal.jobs.failAfterInsert, {});
    } catch {
      return "caught";
    }
    return "no error";
  },
});

export const fetchInQuery = query({
  args: {},
  handler: async () => (await fetch("http://127.0.0.1:9/")).status,
});

// Calls itself `n` more times, each call nested in the one before.
export const nest = query({
  args: { n: v.number() },
  handler: async (ctx, { n }): Promise<number> => (n === 0 ? 0 : 1 + (await ctx.runQuery(api.jobs.nest, { n: n - 1 }))),
});
