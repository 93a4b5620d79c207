// Piano Mirror's rooms: a host creates one under a short code (the slug, `ABC123`) that peers type in
// to join. A room is open while it has peers; the last one to leave closes it, which frees its slug.
import { v } from "convex/values";
import type { Id } from "./_generated/dataModel";
import { mutation, query, type MutationCtx, type QueryCtx } from "./_generated/server";
import { AppError } from "./lib/errors";
import { checkedName } from "./lib/fields";
import { MAX_CLASS_PEERS, MAX_NAME_CHARS, MAX_ONE_ON_ONE_PEERS, MAX_SLUG_CHARS, MIN_SLUG_CHARS } from "./lib/limits";
import { roomKind } from "./schema";
import { currentUser, userName } from "./users";

const CAPACITY = { "one-on-one": MAX_ONE_ON_ONE_PEERS, class: MAX_CLASS_PEERS } as const;

/** The slug as stored: upper case, so `abc123` finds `ABC123`. */
function checkedSlug(slug: string): string {
  const upper = slug.trim().toUpperCase();
  const chars = [...upper].length;
  if (chars < MIN_SLUG_CHARS || chars > MAX_SLUG_CHARS || !/^[A-Z0-9]*$/.test(upper)) {
    throw new AppError(
      "INVALID",
      `A room code is ${MIN_SLUG_CHARS} to ${MAX_SLUG_CHARS} letters and digits, not \`${upper}\``,
    );
  }
  return upper;
}

/** The display name a peer gets: the one given, else the user's name. */
async function displayName(ctx: QueryCtx, user: Id<"users">, given: string | undefined): Promise<string> {
  return given === undefined ? await userName(ctx, user) : checkedName("A display name", given, MAX_NAME_CHARS);
}

// `unique`: slugs are unique among open rooms, so a second one is a bug worth failing on.
async function openRoom(ctx: QueryCtx, slug: string) {
  return await ctx.db
    .query("rooms")
    .withIndex("by_slug_status", (q) => q.eq("slug", slug).eq("status", "open"))
    .unique();
}

/** The user's row in `roomPeers` for `room`, if the user is in it. */
export async function peer(ctx: QueryCtx, room: Id<"rooms">, user: Id<"users">) {
  return await ctx.db
    .query("roomPeers")
    .withIndex("by_room_user", (q) => q.eq("roomId", room).eq("userId", user))
    .unique();
}

/** Peers of `room`, in the order they joined; at most `limit`. */
async function peersIn(ctx: QueryCtx, room: Id<"rooms">, limit: number) {
  return await ctx.db
    .query("roomPeers")
    .withIndex("by_room", (q) => q.eq("roomId", room))
    .take(limit);
}

async function addPeer(ctx: MutationCtx, roomId: Id<"rooms">, userId: Id<"users">, displayName: string) {
  await ctx.db.insert("roomPeers", { roomId, userId, displayName });
}

export const create = mutation({
  args: {
    slug: v.string(), // e.g. "ABC123", shared between peers
    kind: v.optional(roomKind),
    displayName: v.optional(v.string()),
  },
  handler: async (ctx, args) => {
    const user = await currentUser(ctx);
    const slug = checkedSlug(args.slug);
    const name = await displayName(ctx, user, args.displayName);
    if ((await openRoom(ctx, slug)) !== null) {
      throw new AppError("SLUG_TAKEN", `An open room already has the code \`${slug}\``);
    }
    const room = await ctx.db.insert("rooms", {
      slug,
      kind: args.kind ?? "one-on-one",
      hostUserId: user,
      status: "open",
    });
    await addPeer(ctx, room, user, name);
    return room;
  },
});

export const join = mutation({
  args: { slug: v.string(), displayName: v.optional(v.string()) },
  handler: async (ctx, args) => {
    const user = await currentUser(ctx);
    const slug = checkedSlug(args.slug);
    const room = await openRoom(ctx, slug);
    if (room === null) throw new AppError("NOT_FOUND", `No open room has the code \`${slug}\``);
    // Joining again (a reload) keeps the peer, renamed if a name is given.
    const existing = await peer(ctx, room._id, user);
    if (existing !== null) {
      if (args.displayName !== undefined) {
        const renamed = checkedName("A display name", args.displayName, MAX_NAME_CHARS);
        await ctx.db.patch(existing._id, { displayName: renamed });
      }
      return room._id;
    }
    const capacity = CAPACITY[room.kind];
    if ((await peersIn(ctx, room._id, capacity)).length >= capacity) {
      throw new AppError(
        "ROOM_FULL",
        `Room \`${slug}\` is full: it has ${capacity} peers, as many as its kind allows`,
      );
    }
    await addPeer(ctx, room._id, user, await displayName(ctx, user, args.displayName));
    return room._id;
  },
});

// Leaving a room one is not in does nothing: a page being closed may leave twice.
export const leave = mutation({
  args: { roomId: v.id("rooms") },
  handler: async (ctx, { roomId }) => {
    const user = await currentUser(ctx);
    const mine = await peer(ctx, roomId, user);
    if (mine === null) return null;
    await ctx.db.delete(mine._id);
    if ((await peersIn(ctx, roomId, 1)).length === 0) await ctx.db.patch(roomId, { status: "closed" });
    return null;
  },
});

export const peers = query({
  args: { roomId: v.id("rooms") },
  handler: async (ctx, { roomId }) => {
    const user = await currentUser(ctx);
    if ((await ctx.db.get(roomId)) === null) throw new AppError("NOT_FOUND", `There is no room \`${roomId}\``);
    if ((await peer(ctx, roomId, user)) === null) throw new AppError("NOT_IN_ROOM", "Join the room to see its peers");
    return await peersIn(ctx, roomId, MAX_CLASS_PEERS);
  },
});
