// Pagination with a filter: `.filter(...)` then `.paginate(...)`, over an index and over the table.
import { paginationOptsValidator } from "convex/server";
import { v } from "convex/values";
import { query } from "./_generated/server";

export const byTag = query({
  args: { author: v.string(), tag: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, { author, tag, paginationOpts }) =>
    await ctx.db
      .query("notes")
      .withIndex("by_author", (q) => q.eq("author", author))
      .filter((q) => q.eq(q.field("tag"), tag))
      .paginate(paginationOpts),
});

export const atLeast = query({
  args: { n: v.number(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, { n, paginationOpts }) => {
    const page = await ctx.db
      .query("notes")
      .filter((q) => q.and(q.gte(q.field("n"), n), q.neq(q.field("tag"), "hidden")))
      .order("desc")
      .paginate(paginationOpts);
    return { ...page, page: page.page.map((found) => found.n) };
  },
});
