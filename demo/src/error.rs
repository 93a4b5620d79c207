//! The app's errors as clients see them: user errors whose data is `{code, message}`, so a client
//! catching Convex's `ConvexError` can switch on `error.data.code`.

use livebase_functions::FunctionError;
use livebase_value::{Object, Value};

/// What went wrong, as a stable string for clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No identity, or one that is not a user of this app.
    NotSignedIn,
    /// An argument is well-typed but not acceptable (an empty name, a slug with spaces, ...).
    Invalid,
    /// The document the call refers to does not exist (any more).
    NotFound,
    /// Another open room has the slug.
    SlugTaken,
    /// The room has as many peers as its kind allows.
    RoomFull,
    /// The caller is not a peer of the room.
    NotInRoom,
    /// The recipient of a signaling message is not a peer of the room.
    RecipientNotInRoom,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotSignedIn => "NOT_SIGNED_IN",
            ErrorCode::Invalid => "INVALID",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::SlugTaken => "SLUG_TAKEN",
            ErrorCode::RoomFull => "ROOM_FULL",
            ErrorCode::NotInRoom => "NOT_IN_ROOM",
            ErrorCode::RecipientNotInRoom => "RECIPIENT_NOT_IN_ROOM",
        }
    }
}

/// A user error with data `{code, message}`; its message is `message`.
pub(crate) fn app_error(code: ErrorCode, message: impl Into<String>) -> FunctionError {
    let message = message.into();
    let data = Object::from([
        ("code".to_owned(), Value::from(code.as_str())),
        ("message".to_owned(), Value::from(message.as_str())),
    ]);
    FunctionError::User { message, data: Value::Object(data) }
}
