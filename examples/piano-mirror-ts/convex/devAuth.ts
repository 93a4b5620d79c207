// The dev sign-in's signing key, kept in the deployment (table `devAuthKeys`) so tokens stay valid
// across restarts. Internal: only the routes of `http.ts` read it.
import { v } from "convex/values";
import { internal } from "./_generated/api";
import { internalMutation, internalQuery, type ActionCtx } from "./_generated/server";
import { generateSigningKey, publicJwk, type SigningKey } from "./lib/es256";

export const signingKey = internalQuery({
  args: {},
  handler: async (ctx) => {
    const key = await ctx.db.query("devAuthKeys").first();
    return key === null ? null : { d: key.d, x: key.x, y: key.y };
  },
});

// The first key stored wins: two first sign-ins racing both get the one that committed first.
export const keepSigningKey = internalMutation({
  args: { d: v.string(), x: v.string(), y: v.string() },
  handler: async (ctx, candidate) => {
    const existing = await ctx.db.query("devAuthKeys").first();
    if (existing !== null) return { d: existing.d, x: existing.x, y: existing.y };
    await ctx.db.insert("devAuthKeys", { kid: publicJwk(candidate).kid, ...candidate });
    return candidate;
  },
});

/** The deployment's signing key, made on first use. */
export async function deploymentKey(ctx: ActionCtx): Promise<SigningKey> {
  const stored = await ctx.runQuery(internal.devAuth.signingKey, {});
  return stored ?? (await ctx.runMutation(internal.devAuth.keepSigningKey, generateSigningKey()));
}
