import { v } from "convex/values";
import { query } from "./_generated/server";

export const spin = query({
  args: {},
  handler: async () => {
    for (;;) {
      // Never ends.
    }
  },
});

export const hog = query({
  args: {},
  handler: async () => {
    const chunks: number[][] = [];
    for (;;) chunks.push(new Array(1 << 20).fill(7));
  },
});

export const throwString = query({
  args: {},
  handler: async () => {
    throw "a plain string";
  },
});

export const reject = query({
  args: {},
  handler: () => Promise.reject(new TypeError("rejected on purpose")),
});

export const forever = query({
  args: {},
  handler: () => new Promise(() => {}),
});

export const unknownSyscall = query({
  args: {},
  handler: async () => (globalThis as any).Convex.syscall("1.0/notASyscall", "{}"),
});

export const fine = query({ args: {}, handler: async () => "still fine" });

const down = (n: number): number => down(n + 1) + 1;

export const recurse = query({ args: {}, handler: async () => down(0) });

// Module-level state, which lives as long as the engine keeps this bundle's context (as in a Convex
// isolate): `calls` counts the calls the context served.
let calls = 0;

export const countCalls = query({
  args: { n: v.number() },
  handler: async (_, { n }) => {
    calls += 1;
    return { double: 2 * n, calls };
  },
});
