import { v } from "convex/values";
import { internalMutation, mutation, query } from "./_generated/server";

export const add = mutation({
  args: { author: v.string(), text: v.any() },
  handler: (ctx, { author, text }) => ctx.db.insert("notes", { author, text }),
});

export const byAuthor = query({
  args: { author: v.string() },
  handler: (ctx, { author }) =>
    ctx.db
      .query("notes")
      .withIndex("by_author", (q) => q.eq("author", author))
      .collect()
      .then((notes) => notes.map((note) => note.text)),
});

export const tidy = internalMutation({
  args: { keep: v.number() },
  handler: async () => null,
});
