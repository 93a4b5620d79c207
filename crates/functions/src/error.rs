use livebase_query::QueryError;
use livebase_store::{CommitError, TransactionError};
use livebase_value::Value;

use crate::path::{FunctionPath, PathError};

/// What a client sees in place of an internal error's message, which may hold server details.
pub const INTERNAL_ERROR_MESSAGE: &str = "Server Error";

/// Why a function call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FunctionError {
    /// Raised by the handler on purpose, with structured data for the client (Convex's `ConvexError`).
    #[error("{message}")]
    User { message: String, data: Value },
    /// The call was wrong (unknown function, bad arguments) or the function failed on its own terms (a
    /// missing document, a write in a query). Deterministic: the message goes to the client.
    #[error("{0}")]
    Failed(String),
    /// A fault of the server or a bug in the function (a panic, the store down). Logged; the client
    /// sees only `INTERNAL_ERROR_MESSAGE`.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl FunctionError {
    /// An error carrying `data` to the client. Its message is the data itself when that is a string,
    /// else the data rendered, as Convex's `new ConvexError(data)`.
    pub fn user(data: impl Into<Value>) -> FunctionError {
        let data = data.into();
        let message = match &data {
            Value::String(message) => message.clone(),
            other => other.to_string(),
        };
        FunctionError::User { message, data }
    }

    pub fn failed(message: impl Into<String>) -> FunctionError {
        FunctionError::Failed(message.into())
    }

    pub fn internal(message: impl Into<String>) -> FunctionError {
        FunctionError::Internal(message.into())
    }

    /// The message a client may see (`errorMessage` on the wire).
    pub fn client_message(&self) -> &str {
        match self {
            FunctionError::User { message, .. } | FunctionError::Failed(message) => message,
            FunctionError::Internal(_) => INTERNAL_ERROR_MESSAGE,
        }
    }

    /// The structured data for the client (`errorData` on the wire), only for user errors.
    pub fn data(&self) -> Option<&Value> {
        match self {
            FunctionError::User { data, .. } => Some(data),
            FunctionError::Failed(_) | FunctionError::Internal(_) => None,
        }
    }
}

impl From<TransactionError> for FunctionError {
    fn from(error: TransactionError) -> FunctionError {
        FunctionError::Failed(error.to_string())
    }
}

impl From<QueryError> for FunctionError {
    fn from(error: QueryError) -> FunctionError {
        FunctionError::Failed(error.to_string())
    }
}

impl From<CommitError> for FunctionError {
    fn from(error: CommitError) -> FunctionError {
        match error {
            CommitError::Transaction(error) => error.into(),
            // Still conflicting after every retry: the caller may try again later, so it is theirs to see.
            CommitError::Conflict { .. } | CommitError::Yielded | CommitError::TooOld { .. } => {
                FunctionError::Failed(error.to_string())
            }
            CommitError::Unavailable(_) => FunctionError::Internal(error.to_string()),
            // The caller wrote to a read replica, or to a writer that another took over from: the
            // message says where writes go.
            CommitError::ReadOnlyReplica | CommitError::LeaseLost(_) => FunctionError::Failed(error.to_string()),
        }
    }
}

impl From<PathError> for FunctionError {
    fn from(error: PathError) -> FunctionError {
        FunctionError::Failed(error.to_string())
    }
}

/// Why a function could not be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidPath(#[from] PathError),
    #[error("Function `{0}` is registered twice")]
    Duplicate(FunctionPath),
    #[error("Cron `{0}` is declared twice")]
    DuplicateCron(String),
    #[error("Can't declare cron `{0}`: an app declares at most {max} crons (MAX_CRON_JOBS)", max = crate::limits::MAX_CRON_JOBS)]
    TooManyCrons(String),
    #[error("Invalid cron `{name}`: {why}")]
    InvalidCron { name: String, why: String },
    #[error("The arguments validator of `{path}` must be an object validator (`v.object({{...}})`), not `{validator}`")]
    ArgsNotObject { path: FunctionPath, validator: String },
    #[error("Invalid HTTP route `{route}`: {why}")]
    InvalidRoute { route: String, why: String },
    #[error("HTTP route `{0}` is registered twice")]
    DuplicateRoute(String),
    #[error("Can't add HTTP route `{0}`: an app defines at most {max} routes (MAX_HTTP_ROUTES)", max = crate::limits::MAX_HTTP_ROUTES)]
    TooManyRoutes(String),
}
