// Every database syscall, one function each (the syscall a function makes is named beside it).
import { v } from "convex/values";
import { internalQuery, mutation, query } from "./_generated/server";
import { internal } from "./_generated/api";

const note = { author: v.string(), text: v.string(), tag: v.string(), n: v.number() };

// 1.0/insert
export const add = mutation({
  args: note,
  handler: async (ctx, fields) => await ctx.db.insert("notes", fields),
});

// 1.0/get
export const get = query({
  args: { id: v.id("notes") },
  handler: async (ctx, { id }) => await ctx.db.get(id),
});

// 1.0/queryStream + 1.0/queryStreamNext, to the end of an index range.
export const byAuthor = query({
  args: { author: v.string() },
  handler: async (ctx, { author }) => {
    const notes = await ctx.db
      .query("notes")
      .withIndex("by_author", (q) => q.eq("author", author))
      .collect();
    return notes.map((found) => found.text);
  },
});

// 1.0/queryCleanup: a stream left before its end.
export const firstTexts = query({
  args: { count: v.number() },
  handler: async (ctx, { count }) => {
    const texts = [];
    for await (const found of ctx.db.query("notes").withIndex("by_n").order("desc")) {
      if (texts.length === count) break;
      texts.push(found.text);
    }
    return texts;
  },
});

// 1.0/shallowMerge: a field set to undefined is removed.
export const retag = mutation({
  args: { id: v.id("notes"), tag: v.optional(v.string()) },
  handler: async (ctx, { id, tag }) => {
    await ctx.db.patch(id, { tag: tag ?? "untagged", n: undefined });
    return await ctx.db.get(id);
  },
});

// 1.0/replace
export const rewrite = mutation({
  args: { id: v.id("notes"), text: v.string() },
  handler: async (ctx, { id, text }) => {
    await ctx.db.replace(id, { author: "editor", text, tag: "rewritten", n: 0 });
  },
});

// 1.0/remove: gone within its own mutation already.
export const remove = mutation({
  args: { id: v.id("notes") },
  handler: async (ctx, { id }) => {
    await ctx.db.delete(id);
    return await ctx.db.get(id);
  },
});

// 1.0/db/normalizeId: an id of the table, or null.
export const normalize = query({
  args: { table: v.union(v.literal("notes"), v.literal("runs")), id: v.string() },
  handler: async (ctx, { table, id }) => ctx.db.normalizeId(table, id),
});

// 1.0/getUserIdentity
export const whoami = query({
  args: {},
  handler: async (ctx) => {
    const user = await ctx.auth.getUserIdentity();
    return user === null ? null : { subject: user.subject, issuer: user.issuer };
  },
});

export const count = internalQuery({
  args: { author: v.string() },
  handler: async (ctx, { author }) =>
    (
      await ctx.db
        .query("notes")
        .withIndex("by_author", (q) => q.eq("author", author))
        .collect()
    ).length,
});

// 1.0/runUdf: a mutation running an internal query in its transaction, which sees its write.
export const addAndCount = mutation({
  args: note,
  handler: async (ctx, fields) => {
    await ctx.db.insert("notes", fields);
    return await ctx.runQuery(internal.db.count, { author: fields.author });
  },
});
