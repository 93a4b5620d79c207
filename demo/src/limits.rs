//! Every bound the demo app enforces, in one place. What one call may read and write is further bounded
//! by the store's transaction limits (`livebase_store::limits`).

use std::time::Duration;

/// Characters of a user's, center's or student's name, and of a display name in a room.
pub const MAX_NAME_CHARS: usize = 64;

/// Characters of a practice run's title.
pub const MAX_TITLE_CHARS: usize = 200;

/// Characters of a room slug (`ABC123`). Short enough to read out loud, long enough not to be guessed
/// by accident.
pub const MIN_SLUG_CHARS: usize = 4;
pub const MAX_SLUG_CHARS: usize = 16;

/// Peers in a `one-on-one` room: a teacher and a student.
pub const MAX_ONE_ON_ONE_PEERS: usize = 2;

/// Peers in a `class` room. Every peer connects to every other (a mesh), so the signaling and the
/// browsers' uplinks grow with the square of it.
pub const MAX_CLASS_PEERS: usize = 16;

/// Bytes of one signaling message's payload (an SDP offer is a few KiB; ICE candidates are tiny), as
/// the store encodes it.
pub const MAX_SIGNALING_PAYLOAD_BYTES: usize = 64 * 1_024;

/// Messages `signaling:inboxFor` returns at once, oldest first. A client that gets this many asks
/// again with `since` set to the last one's `_creationTime`.
pub const MAX_INBOX_MESSAGES: usize = 256;

/// How long a signaling message lives: long enough for any connection attempt, then purged.
pub const SIGNALING_MESSAGE_TTL: Duration = Duration::from_secs(60 * 60);

/// How often the cron purges expired signaling messages.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);

/// Expired messages one run of `signaling:purgeExpired` deletes; when more remain it schedules
/// itself again at once, so one run stays a small transaction whatever the backlog.
pub const MAX_PURGED_PER_RUN: usize = 1_000;

/// Centers `centers:list` returns.
pub const MAX_CENTERS_LISTED: usize = 100;

/// What the demo's seed data holds: `SEED_CENTERS` centers of `SEED_STUDENTS_PER_CENTER` students.
pub const SEED_CENTERS: usize = 4;
pub const SEED_STUDENTS_PER_CENTER: usize = 750;

/// Lifetime of the TURN credentials `signaling:turnConfig` asks the provider for (Cloudflare's default).
pub const TURN_CREDENTIAL_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Bytes of the TURN provider's response that are parsed; a longer one is refused.
pub const MAX_TURN_RESPONSE_BYTES: usize = 64 * 1_024;

/// ICE servers taken from the TURN provider's response.
pub const MAX_ICE_SERVERS: usize = 16;
