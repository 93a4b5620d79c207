// Every validator of `v`, as an argument and as a return value, stored and read back.
import { v } from "convex/values";
import { mutation, query } from "./_generated/server";

const everything = v.object({
  id: v.id("kinds"),
  nothing: v.null(),
  big: v.int64(),
  number: v.number(),
  flag: v.boolean(),
  text: v.string(),
  raw: v.bytes(),
  list: v.array(v.number()),
  nested: v.object({ inner: v.string() }),
  scores: v.record(v.string(), v.number()),
  either: v.union(v.string(), v.number()),
  exactly: v.literal("exactly"),
  maybe: v.optional(v.string()),
  anything: v.any(),
});

export const placeholder = mutation({
  args: {},
  handler: async (ctx) => await ctx.db.insert("kinds", { value: null }),
});

export const roundTrip = mutation({
  args: { value: everything },
  returns: everything,
  handler: async (ctx, { value }) => {
    await ctx.db.replace(value.id, { value });
    const stored = await ctx.db.get(value.id);
    return stored!.value;
  },
});

export const describe = query({
  args: { value: everything },
  handler: async (_ctx, { value }) =>
    Object.fromEntries(
      Object.entries(value).map(([name, field]) => [
        name,
        field === null
          ? "null"
          : typeof field === "object"
            ? field instanceof ArrayBuffer
              ? "ArrayBuffer"
              : Array.isArray(field)
                ? "array"
                : "object"
            : typeof field,
      ]),
    ),
});

// A declared return type the handler does not keep: the call fails, its result goes nowhere.
export const badReturn = query({
  args: {},
  returns: v.number(),
  handler: async () => "not a number" as unknown as number,
});
