// Practice runs: what a student played.
import { v } from "convex/values";
import { mutation } from "./_generated/server";
import { checkedName } from "./lib/fields";
import { MAX_TITLE_CHARS } from "./lib/limits";
import { currentUser } from "./users";

export const create = mutation({
  args: { title: v.string() },
  handler: async (ctx, { title }) => {
    const userId = await currentUser(ctx);
    return await ctx.db.insert("runs", { title: checkedName("A run's title", title, MAX_TITLE_CHARS), userId });
  },
});
