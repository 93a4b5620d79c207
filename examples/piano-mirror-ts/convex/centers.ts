import { v } from "convex/values";
import { mutation, query } from "./_generated/server";
import { checkedName } from "./lib/fields";
import { MAX_CENTERS_LISTED, MAX_NAME_CHARS } from "./lib/limits";

export const create = mutation({
  args: { name: v.string() },
  handler: async (ctx, { name }) => {
    return await ctx.db.insert("centers", { name: checkedName("A center's name", name, MAX_NAME_CHARS) });
  },
});

export const list = query({
  args: {},
  handler: async (ctx) => {
    return await ctx.db.query("centers").take(MAX_CENTERS_LISTED);
  },
});
