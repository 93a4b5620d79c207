// The TypeScript twins of the benchmark app's Rust functions (bench/src/app.rs), for the js-calls
// scenario: the same reads and writes on the same tables and indexes.
import { v } from "convex/values";
import { mutation, query } from "./_generated/server";

// `items:get`: one document through the `by_key` index.
export const get = query({
  args: { key: v.number() },
  handler: async (ctx, { key }) =>
    await ctx.db
      .query("items")
      .withIndex("by_key", (q) => q.eq("key", key))
      .first(),
});

// `items:insert`: one small durable insert.
export const insert = mutation({
  args: { writer: v.number(), sequence: v.number() },
  handler: async (ctx, item) => await ctx.db.insert("items", item),
});

// Nothing at all: what a call costs the engine (a fresh context, the bundle evaluated in it).
export const empty = query({
  args: {},
  handler: async () => null,
});
