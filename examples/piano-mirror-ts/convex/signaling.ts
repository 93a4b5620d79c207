// WebRTC signaling through the database: a peer inserts offers, answers and ICE candidates addressed to
// another peer of the room; the other peer's live `signaling.inboxFor` query delivers them. Messages
// expire after `SIGNALING_MESSAGE_TTL_MS` and an hourly cron (`crons.ts`) purges them.
import { convexToJson, v } from "convex/values";
import { internal } from "./_generated/api";
import { action, internalMutation, mutation, query } from "./_generated/server";
import { AppError } from "./lib/errors";
import {
  MAX_INBOX_MESSAGES,
  MAX_PURGED_PER_RUN,
  MAX_SIGNALING_PAYLOAD_BYTES,
  SIGNALING_MESSAGE_TTL_MS,
} from "./lib/limits";
import { type IceConfig, mintCredentials, stunOnly, turnProviderFromEnv } from "./lib/turn";
import { peer } from "./rooms";
import { messageType } from "./schema";
import { currentUser } from "./users";

export const sendMessage = mutation({
  args: {
    roomId: v.id("rooms"),
    toUserId: v.id("users"),
    type: messageType,
    payload: v.any(), // SDP for offer/answer; RTCIceCandidateInit for ice
  },
  handler: async (ctx, { roomId, toUserId, type, payload }) => {
    const from = await currentUser(ctx);
    if (toUserId === from) throw new AppError("INVALID", "A signaling message goes to another peer, not to oneself");
    if ((await ctx.db.get(roomId)) === null) throw new AppError("NOT_FOUND", `There is no room \`${roomId}\``);
    if ((await peer(ctx, roomId, from)) === null) {
      throw new AppError("NOT_IN_ROOM", "Join the room before sending signaling messages");
    }
    if ((await peer(ctx, roomId, toUserId)) === null) {
      throw new AppError("RECIPIENT_NOT_IN_ROOM", `User \`${toUserId}\` is not in this room`);
    }
    const bytes = new TextEncoder().encode(JSON.stringify(convexToJson(payload))).length;
    if (bytes > MAX_SIGNALING_PAYLOAD_BYTES) {
      throw new AppError(
        "INVALID",
        `The payload has ${bytes} bytes, more than the ${MAX_SIGNALING_PAYLOAD_BYTES} allowed (MAX_SIGNALING_PAYLOAD_BYTES)`,
      );
    }
    return await ctx.db.insert("signalingMessages", {
      roomId,
      fromUserId: from,
      toUserId,
      type,
      payload,
      expiresAt: Date.now() + SIGNALING_MESSAGE_TTL_MS,
    });
  },
});

// Oldest first, at most `MAX_INBOX_MESSAGES`: a client keeps the `_creationTime` of the last message it
// handled as its next `since`.
export const inboxFor = query({
  args: { roomId: v.id("rooms"), since: v.number() },
  handler: async (ctx, { roomId, since }) => {
    const me = await currentUser(ctx);
    return await ctx.db
      .query("signalingMessages")
      .withIndex("by_room_and_to_and_creation", (q) =>
        q.eq("roomId", roomId).eq("toUserId", me).gt("_creationTime", since),
      )
      .take(MAX_INBOX_MESSAGES);
  },
});

// Run by the hourly cron. One run deletes at most `MAX_PURGED_PER_RUN` messages and, when more remain,
// schedules itself again at once, so each run stays a small transaction whatever the backlog.
export const purgeExpired = internalMutation({
  args: {},
  handler: async (ctx) => {
    const expired = await ctx.db
      .query("signalingMessages")
      .withIndex("by_expires", (q) => q.lte("expiresAt", Date.now()))
      // One more than is deleted, to know whether more remain.
      .take(MAX_PURGED_PER_RUN + 1);
    const purged = expired.slice(0, MAX_PURGED_PER_RUN);
    for (const message of purged) await ctx.db.delete(message._id);
    if (expired.length > MAX_PURGED_PER_RUN) await ctx.scheduler.runAfter(0, internal.signaling.purgeExpired, {});
    return purged.length;
  },
});

// TURN relays cost the deployment bandwidth: only signed-in users get credentials. Without a provider
// (CLOUDFLARE_TURN_TOKEN_ID and CLOUDFLARE_TURN_API_TOKEN, set with `livebase env set`), or when it
// fails, browsers get STUN only, which connects peers on most networks.
export const turnConfig = action({
  args: {},
  handler: async (ctx): Promise<IceConfig> => {
    if ((await ctx.auth.getUserIdentity()) === null) throw new AppError("NOT_SIGNED_IN", "Sign in first");
    const provider = turnProviderFromEnv();
    if (provider === null) return stunOnly();
    try {
      return await mintCredentials(provider);
    } catch (why) {
      console.warn(`No TURN credentials, falling back to STUN only: ${why instanceof Error ? why.message : why}`);
      return stunOnly();
    }
  },
});
