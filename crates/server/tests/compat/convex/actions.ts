// Actions calling other functions: 1.0/actions/query, 1.0/actions/mutation, 1.0/actions/action.
import { v } from "convex/values";
import { action, internalAction } from "./_generated/server";
import { api, internal } from "./_generated/api";

export const double = internalAction({
  args: { n: v.number() },
  handler: async (_ctx, { n }) => n * 2,
});

// Adds a note through a mutation, reads it back through a query, and doubles through an action.
export const addThenRead = action({
  args: { author: v.string(), text: v.string(), n: v.number() },
  handler: async (ctx, { author, text, n }) => {
    const id = await ctx.runMutation(api.db.add, { author, text, tag: "action", n });
    const stored = await ctx.runQuery(api.db.get, { id });
    const doubled = await ctx.runAction(internal.actions.double, { n });
    return { id, text: stored?.text ?? null, doubled };
  },
});

// The caller's identity reaches the action and the functions it calls.
export const whoami = action({
  args: {},
  handler: async (ctx) => {
    const inAction = await ctx.auth.getUserIdentity();
    const inQuery = await ctx.runQuery(api.db.whoami, {});
    return { action: inAction?.subject ?? null, query: inQuery?.subject ?? null };
  },
});
