import { ConvexError, v } from "convex/values";
import { paginationOptsValidator } from "convex/server";
import { internalQuery, mutation, query } from "./_generated/server";

export const send = mutation({
  args: { channel: v.string(), body: v.string(), n: v.number() },
  handler: async (ctx, message) => {
    console.log("sending", message.body, { n: message.n });
    return await ctx.db.insert("messages", message);
  },
});

export const latest = query({
  args: { channel: v.string(), count: v.number() },
  handler: async (ctx, { channel, count }) => {
    const messages = await ctx.db
      .query("messages")
      .withIndex("by_channel", (q) => q.eq("channel", channel))
      .order("desc")
      .take(count);
    return messages.map((message) => message.body);
  },
});

export const atLeast = query({
  args: { n: v.number() },
  handler: async (ctx, { n }) => {
    const messages = await ctx.db
      .query("messages")
      .filter((q) => q.gte(q.field("n"), n))
      .collect();
    return messages.map((message) => message.n);
  },
});

export const page = query({
  args: { channel: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, { channel, paginationOpts }) => {
    const page = await ctx.db
      .query("messages")
      .withIndex("by_channel", (q) => q.eq("channel", channel))
      .filter((q) => q.neq(q.field("body"), "hidden"))
      .paginate(paginationOpts);
    return { ...page, page: page.page.map((message) => message.body) };
  },
});

export const edit = mutation({
  args: { id: v.id("messages"), body: v.string() },
  handler: async (ctx, { id, body }) => {
    const message = await ctx.db.get(id);
    if (message === null) {
      throw new ConvexError({ code: "NOT_FOUND", id });
    }
    await ctx.db.patch(id, { body, n: undefined });
    return await ctx.db.get(id);
  },
});

export const rewrite = mutation({
  args: { id: v.id("messages") },
  handler: async (ctx, { id }) => {
    await ctx.db.replace(id, { channel: "archive", body: "rewritten" });
  },
});

export const remove = mutation({
  args: { id: v.id("messages") },
  handler: async (ctx, { id }) => {
    await ctx.db.delete(id);
    return await ctx.db.get(id);
  },
});

export const normalize = query({
  args: { id: v.string() },
  handler: async (ctx, { id }) => ctx.db.normalizeId("messages", id),
});

export const whoami = query({
  args: {},
  handler: async (ctx) => {
    const user = await ctx.auth.getUserIdentity();
    return user === null ? null : { subject: user.subject, name: user.name ?? null };
  },
});

export const internalCount = internalQuery({
  args: {},
  handler: async (ctx) => (await ctx.db.query("messages").collect()).length,
});

// No `args`: takes any object.
export const argumentNames = query(async (_ctx, args: Record<string, unknown>) => Object.keys(args).sort());
