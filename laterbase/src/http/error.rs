//! `ApiError`: every error the HTTP API answers, in the contract's shape.
//!
//! Each case maps to one status and one stable `error` code. Bad input gets a
//! precise message; an internal failure gets a generic one in the body and
//! the full error in the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::Error;
use crate::error::ErrorChain;

/// An error answered as `{"error": code, "message": text}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable, snake_case code.
    pub code: &'static str,
    /// One sentence for a person.
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: a missing or wrong token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this node requires the header `Authorization: Bearer <token>` with its access token",
        )
    }

    /// 403: a known token without the scope or the database the route
    /// needs.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400: malformed JSON.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 400: an event that is not an object or lacks `data`.
    pub fn invalid_event(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message)
    }

    /// 400: a name the route does not take (a database, a view, a backup
    /// directory).
    pub fn invalid_name(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", message)
    }

    /// 409: what the request would create exists already.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 404: the node serves no backups (no backup directory configured), as
    /// if the route did not exist.
    pub fn backups_off() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "backups are off on this node: start it with --backup-dir <directory>",
        )
    }

    /// 400: a malformed event id.
    pub fn invalid_id(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", message)
    }

    /// 400: a bad query parameter.
    pub fn invalid_query(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    /// 404: no such route.
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route matches {path}"),
        )
    }

    /// 404: the view has no row with that key.
    pub fn key_not_found(view: &str, key: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            format!("view {view:?} has no row with key {key:?}"),
        )
    }

    /// 404: the database has no such view.
    pub fn view_not_found(database: &str, view: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "view_not_found",
            format!("database {database:?} has no view {view:?}"),
        )
    }

    /// 405: the route exists, the method does not.
    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// 413: a body or batch over a limit.
    pub fn payload_too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// 415: a body of a content type the route does not take, which takes
    /// JSON or the binary encoding's `binary_type`. The caller names it: the
    /// encoding returns these errors, so they import nothing of it.
    pub fn unsupported_media_type(found: &str, binary_type: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "content type {found:?} is not accepted: send application/json or {binary_type}"
            ),
        )
    }

    /// 503: shutting down, timed out, or refusing writes.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: the message stays generic; the cause goes to the log.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node failed to answer; its log has the cause",
        )
    }
}

impl From<crate::event::InvalidName> for ApiError {
    fn from(invalid: crate::event::InvalidName) -> ApiError {
        ApiError::from(Error::from(invalid))
    }
}

impl From<crate::clock::FutureEvent> for ApiError {
    fn from(event: crate::clock::FutureEvent) -> ApiError {
        ApiError::from(Error::from(event))
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let message = error.to_string();
        match error {
            Error::InvalidName { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            Error::DatabaseNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "db_not_found", message)
            }
            Error::BatchTooLarge { .. } => ApiError::payload_too_large(message),
            Error::FutureEvent { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "future_event", message)
            }
            Error::Conflict { .. } => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            Error::StorageFull(_) | Error::LimitReached { .. } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                message,
            ),
            Error::Poisoned(_) | Error::Timeout { .. } | Error::Unavailable(_) => {
                ApiError::unavailable(message)
            }
            // A message that does not decode is the peer's mistake; the
            // answer to an unknown wire version is what older nodes fall
            // back on, word for word.
            Error::MalformedSync(_) => ApiError::invalid_event(message),
            // Storage failures answer as they do for writes, whichever
            // route (a sync step's reads included) met them.
            Error::Storage(ref storage) if storage.is_storage_full() => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                format!("the disk is full: {}", ErrorChain(&error)),
            ),
            Error::Storage(ref storage) if storage.is_poisoned() => {
                ApiError::unavailable("the store refuses writes after a failed write or fsync")
            }
            Error::ViewNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "view_not_found", message)
            }
            Error::InvalidKey { .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_key", message)
            }
            other => ApiError::internal(&ErrorChain(&other)),
        }
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            message: &self.message,
        };
        (self.status, Json(body)).into_response()
    }
}
