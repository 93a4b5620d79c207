// Scheduling from mutations (1.0/schedule, 1.0/cancel_job) and actions (1.0/actions/schedule,
// 1.0/actions/cancel_job); every job that runs leaves a row in `runs`.
import { v } from "convex/values";
import { action, internalMutation, mutation, query } from "./_generated/server";
import { internal } from "./_generated/api";

export const record = internalMutation({
  args: { label: v.string(), by: v.string() },
  handler: async (ctx, run) => {
    await ctx.db.insert("runs", run);
  },
});

// Schedules `keep` after `delayMs` and `drop` at `at`, then cancels `drop`.
export const scheduleFromMutation = mutation({
  args: { keep: v.string(), drop: v.string(), delayMs: v.number(), at: v.number() },
  handler: async (ctx, { keep, drop, delayMs, at }) => {
    await ctx.scheduler.runAfter(delayMs, internal.scheduling.record, { label: keep, by: "runAfter" });
    const dropped = await ctx.scheduler.runAt(at, internal.scheduling.record, { label: drop, by: "runAt" });
    await ctx.scheduler.cancel(dropped);
    return dropped;
  },
});

export const scheduleFromAction = action({
  args: { keep: v.string(), drop: v.string(), at: v.number() },
  handler: async (ctx, { keep, drop, at }) => {
    await ctx.scheduler.runAt(at, internal.scheduling.record, { label: keep, by: "action runAt" });
    const dropped = await ctx.scheduler.runAfter(60_000, internal.scheduling.record, { label: drop, by: "action" });
    await ctx.scheduler.cancel(dropped);
    return dropped;
  },
});

export const runs = query({
  args: {},
  handler: async (ctx) => {
    const runs = await ctx.db.query("runs").collect();
    return runs.map(({ label, by }) => ({ label, by }));
  },
});

export const job = query({
  args: { id: v.id("_scheduled_functions") },
  handler: async (ctx, { id }) => {
    const job = await ctx.db.system.get(id);
    if (job === null) return null;
    if (!job.name.includes("record") || !Array.isArray(job.args) || typeof job.args[0]?.label !== "string") {
      throw new Error(`not a scheduled call of \`record\`: ${JSON.stringify(job)}`);
    }
    return job.state.kind;
  },
});
