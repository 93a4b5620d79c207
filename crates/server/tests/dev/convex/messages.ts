import { v } from "convex/values";
import { mutation, query } from "./_generated/server";

export const VERSION = "one";

export const version = query({ args: {}, handler: () => VERSION });

export const list = query({
  args: {},
  handler: async (ctx) => (await ctx.db.query("messages").collect()).map((message) => ({ body: message.body })),
});

export const send = mutation({
  args: { body: v.string() },
  handler: (ctx, { body }) => ctx.db.insert("messages", { body }),
});
