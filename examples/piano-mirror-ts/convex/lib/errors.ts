// The app's refusals as clients see them: a `ConvexError` whose data is `{code, message}`, so a client
// can switch on `error.data.code` and show `error.data.message`.
import { ConvexError } from "convex/values";

export type ErrorCode =
  /** No identity, or one that is not a user of this app. */
  | "NOT_SIGNED_IN"
  /** An argument is well-typed but not acceptable (an empty name, a slug with spaces, ...). */
  | "INVALID"
  /** The document the call refers to does not exist (any more). */
  | "NOT_FOUND"
  /** Another open room has the slug. */
  | "SLUG_TAKEN"
  /** The room has as many peers as its kind allows. */
  | "ROOM_FULL"
  /** The caller is not a peer of the room. */
  | "NOT_IN_ROOM"
  /** The recipient of a signaling message is not a peer of the room. */
  | "RECIPIENT_NOT_IN_ROOM";

/** A `ConvexError` with data `{code, message}`; its message is `message` (not the data as JSON). */
export class AppError extends ConvexError<{ code: ErrorCode; message: string }> {
  constructor(code: ErrorCode, message: string) {
    super({ code, message });
    this.message = message;
  }
}
