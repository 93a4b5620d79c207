import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  notes: defineTable({ author: v.string(), text: v.string(), pinned: v.optional(v.boolean()) })
    .index("by_author", ["author"])
    .index("by_author_pinned", ["author", "pinned"])
    .searchIndex("search_text", { searchField: "text" }),
  anything: defineTable(v.any()),
});
