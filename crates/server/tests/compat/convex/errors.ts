// ConvexError data from every kind of function, and errors that are not ConvexErrors.
import { ConvexError, v } from "convex/values";
import { action, mutation, query } from "./_generated/server";

const data = v.any();

export const failQuery = query({
  args: { data },
  handler: async (_ctx, { data }) => {
    throw new ConvexError(data);
  },
});

// The insert before the throw is never committed.
export const failMutation = mutation({
  args: { data, author: v.string() },
  handler: async (ctx, { data, author }) => {
    await ctx.db.insert("notes", { author, text: "never committed", tag: "error", n: 0 });
    throw new ConvexError(data);
  },
});

export const failAction = action({
  args: { data },
  handler: async (_ctx, { data }) => {
    throw new ConvexError(data);
  },
});

export const plainError = mutation({
  args: {},
  handler: async () => {
    throw new Error("a plain error");
  },
});
