//! The names a route's path carries, checked.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;

use super::error::ApiError;

/// The database name of a path, checked; a segment that does not decode is
/// an invalid name too.
pub(super) fn database_name(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path.map_err(|_| undecodable_name())?;
    crate::event::validate_name(&name)?;
    Ok(name)
}

pub(super) fn undecodable_name() -> ApiError {
    ApiError::from(crate::error::Error::InvalidName {
        name: String::new(),
        reason: "the path segment is not valid percent-encoded UTF-8",
    })
}
