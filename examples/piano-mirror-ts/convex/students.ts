// A center's students: the live, paginated list of the seed's document (`students.listByCenter`) and
// the admin calls that change it.
import { paginationOptsValidator } from "convex/server";
import { v } from "convex/values";
import { mutation, query } from "./_generated/server";
import { AppError } from "./lib/errors";
import { checkedName } from "./lib/fields";
import { MAX_NAME_CHARS } from "./lib/limits";
import { studentStatus } from "./schema";

export const get = query({
  args: { id: v.id("students") },
  handler: async (ctx, { id }) => {
    return await ctx.db.get(id);
  },
});

// Ordered by the index, newest first: by status (descending), then newest first within a status.
export const listByCenter = query({
  args: {
    centerId: v.id("centers"),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { centerId, paginationOpts }) => {
    return await ctx.db
      .query("students")
      .withIndex("by_center_status", (q) => q.eq("centerId", centerId))
      .order("desc")
      .paginate(paginationOpts);
  },
});

export const create = mutation({
  args: { centerId: v.id("centers"), name: v.string(), status: studentStatus },
  handler: async (ctx, { centerId, name, status }) => {
    if ((await ctx.db.get(centerId)) === null) throw new AppError("NOT_FOUND", `There is no center \`${centerId}\``);
    return await ctx.db.insert("students", {
      centerId,
      name: checkedName("A student's name", name, MAX_NAME_CHARS),
      status,
    });
  },
});

export const remove = mutation({
  args: { id: v.id("students") },
  handler: async (ctx, { id }) => {
    if ((await ctx.db.get(id)) === null) throw new AppError("NOT_FOUND", `There is no student \`${id}\``);
    await ctx.db.delete(id);
    return null;
  },
});
