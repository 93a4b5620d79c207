import { v } from "convex/values";
import { action, mutation, query } from "./_generated/server";

// Read when the module loads: while the functions are listed (no variables then), and again in a
// fresh context whenever a call finds the variable changed since.
const greetingAtLoad = process.env.GREETING ?? null;

export const atModuleLoad = query({
  args: {},
  handler: async () => greetingAtLoad,
});

// What a function sees of the deployment's environment variable `name`.
const variable = (name: string) => ({
  value: process.env[name] ?? null,
  type: typeof process.env[name],
  present: name in process.env,
});

// What assigning `process.env` does: it must fail, not change what later calls see.
const assignment = () => {
  try {
    process.env.ASSIGNED = "by a function";
    return "assigned";
  } catch (error) {
    return String(error);
  }
};

export const read = query({
  args: { name: v.string() },
  handler: async (_ctx, { name }) => variable(name),
});

export const names = query({
  args: {},
  handler: async () => Object.keys(process.env),
});

export const readInMutation = mutation({
  args: { name: v.string() },
  handler: async (_ctx, { name }) => ({ ...variable(name), assignment: assignment() }),
});

export const readInAction = action({
  args: { name: v.string() },
  handler: async (_ctx, { name }) => ({ ...variable(name), names: Object.keys(process.env), assignment: assignment() }),
});
