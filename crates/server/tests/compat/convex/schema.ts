import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export default defineSchema({
  notes: defineTable({ author: v.string(), text: v.string(), tag: v.string(), n: v.optional(v.number()) })
    .index("by_author", ["author"])
    .index("by_n", ["n"]),
  kinds: defineTable({ value: v.any() }),
  runs: defineTable({ label: v.string(), by: v.string() }).index("by_label", ["label"]),
});
