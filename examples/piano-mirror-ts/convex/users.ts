// Users and who is calling. A user is a row of `users`; a client's token carries the user's id as its
// subject (`POST /auth/dev` signs one after `users.signIn`), so "the current user" is the document the
// identity's subject names.
import { v } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { internalMutation, query, type QueryCtx } from "./_generated/server";
import { AppError } from "./lib/errors";
import { checkedName } from "./lib/fields";
import { MAX_NAME_CHARS } from "./lib/limits";

/** The calling user's id: the identity's subject, when it is the id of a user that exists. */
export async function currentUser(ctx: QueryCtx): Promise<Id<"users">> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) throw new AppError("NOT_SIGNED_IN", "Sign in first");
  const user = ctx.db.normalizeId("users", identity.subject);
  if (user === null || (await ctx.db.get(user)) === null) {
    throw new AppError("NOT_SIGNED_IN", "The token's subject is not a user of this app: sign in again");
  }
  return user;
}

/** A user's name. */
export async function userName(ctx: QueryCtx, user: Id<"users">): Promise<string> {
  const found = await ctx.db.get(user);
  if (found === null) throw new Error(`callers pass the id of a user that exists, not ${user}`);
  return found.name;
}

// Internal: the `/auth/dev` route calls it, then signs a token whose subject is the id returned. A demo
// sign-in: the name is the account, so signing in again as "Ada" is Ada again.
export const signIn = internalMutation({
  args: { name: v.string() },
  handler: async (ctx, args) => {
    const name = checkedName("A user's name", args.name, MAX_NAME_CHARS);
    const existing = await ctx.db
      .query("users")
      .withIndex("by_name", (q) => q.eq("name", name))
      .first();
    if (existing !== null) return existing._id;
    return await ctx.db.insert("users", { name });
  },
});

export const me = query({
  args: {},
  handler: async (ctx) => {
    if ((await ctx.auth.getUserIdentity()) === null) return null;
    return await ctx.db.get(await currentUser(ctx));
  },
});
