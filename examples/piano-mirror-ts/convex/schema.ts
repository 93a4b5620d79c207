import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export const studentStatus = v.union(v.literal("active"), v.literal("paused"), v.literal("graduated"));
export const roomKind = v.union(v.literal("one-on-one"), v.literal("class"));
export const messageType = v.union(v.literal("offer"), v.literal("answer"), v.literal("ice"));

export default defineSchema({
  users: defineTable({ name: v.string() }).index("by_name", ["name"]),
  centers: defineTable({ name: v.string() }),
  students: defineTable({ centerId: v.id("centers"), name: v.string(), status: studentStatus }).index(
    "by_center_status",
    ["centerId", "status"],
  ),
  rooms: defineTable({
    slug: v.string(),
    kind: roomKind,
    hostUserId: v.id("users"),
    status: v.union(v.literal("open"), v.literal("closed")),
  }).index("by_slug_status", ["slug", "status"]),
  roomPeers: defineTable({ roomId: v.id("rooms"), userId: v.id("users"), displayName: v.string() })
    .index("by_room", ["roomId"])
    .index("by_room_user", ["roomId", "userId"]),
  signalingMessages: defineTable({
    roomId: v.id("rooms"),
    fromUserId: v.id("users"),
    toUserId: v.id("users"),
    type: messageType,
    payload: v.any(),
    expiresAt: v.number(),
  })
    .index("by_room_and_to_and_creation", ["roomId", "toUserId"])
    .index("by_expires", ["expiresAt"]),
  runs: defineTable({ title: v.string(), userId: v.id("users") }),
  // The key `POST /auth/dev` signs tokens with (one document, made by the first sign-in); only
  // internal functions read it.
  devAuthKeys: defineTable({ kid: v.string(), d: v.string(), x: v.string(), y: v.string() }),
});
