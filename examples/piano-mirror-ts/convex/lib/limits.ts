// Every bound the app enforces, in one place: the same values as the Rust demo's `demo/src/limits.rs`
// (the end-to-end tests run against both backends with the Rust constants, so a drift fails them).

/** Characters of a user's, center's or student's name, and of a display name in a room. */
export const MAX_NAME_CHARS = 64;
/** Characters of a practice run's title. */
export const MAX_TITLE_CHARS = 200;
/** Characters of a room slug (`ABC123`): short enough to read out loud, long enough not to be guessed. */
export const MIN_SLUG_CHARS = 4;
export const MAX_SLUG_CHARS = 16;
/** Peers in a `one-on-one` room: a teacher and a student. */
export const MAX_ONE_ON_ONE_PEERS = 2;
/** Peers in a `class` room: every peer connects to every other, so signaling grows with its square. */
export const MAX_CLASS_PEERS = 16;
/**
 * Bytes of one signaling message's payload as JSON (`convexToJson`, UTF-8). An SDP offer is a few KiB,
 * ICE candidates are tiny.
 */
export const MAX_SIGNALING_PAYLOAD_BYTES = 64 * 1024;
/** Messages `signaling.inboxFor` returns at once, oldest first; a client asks again from the last one. */
export const MAX_INBOX_MESSAGES = 256;
/** How long a signaling message lives: long enough for any connection attempt, then purged. */
export const SIGNALING_MESSAGE_TTL_MS = 60 * 60 * 1000;
/** How often the cron purges expired signaling messages. */
export const PURGE_INTERVAL_HOURS = 1;
/** Expired messages one purge deletes; with more left it schedules itself again at once. */
export const MAX_PURGED_PER_RUN = 1000;
/** Centers `centers.list` returns. */
export const MAX_CENTERS_LISTED = 100;
/** The seed data: `SEED_CENTERS` centers of `SEED_STUDENTS_PER_CENTER` students. */
export const SEED_CENTERS = 4;
export const SEED_STUDENTS_PER_CENTER = 750;
/** Lifetime of the TURN credentials `signaling.turnConfig` asks the provider for (Cloudflare's default). */
export const TURN_CREDENTIAL_TTL_SECONDS = 24 * 60 * 60;
/** Bytes of the TURN provider's response that are parsed; a longer one is refused. */
export const MAX_TURN_RESPONSE_BYTES = 64 * 1024;
/** ICE servers taken from the TURN provider's response. */
export const MAX_ICE_SERVERS = 16;
/** How long a token signed by `POST /auth/dev` is accepted. */
export const DEV_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;
/** Bytes of a sign-in request's body. */
export const MAX_SIGN_IN_BODY_BYTES = 1024;
