//! Events written out as JSON, as every read of them shows them: the
//! changes feed, reads by id and range, conflicts and the live feed.

use std::fmt::Write as _;

use base64::Engine as _;

use super::error::ApiError;
use crate::event::Event;

/// A piece of an answer that could not be written: the answer is an error
/// rather than a body that is not JSON.
pub(super) fn unwritten(error: std::fmt::Error) -> ApiError {
    ApiError::internal(&format_args!("an answer could not be written: {error}"))
}

/// `"name":<the bytes>` when they are JSON, `"name_b64":"<base64>"` otherwise.
pub(super) fn push_value(out: &mut String, name: &str, data: &[u8]) -> std::fmt::Result {
    match json_text(data) {
        Some(text) => write!(out, "\"{name}\":{text}"),
        None => {
            write!(out, "\"{name}_b64\":\"")?;
            base64::engine::general_purpose::STANDARD.encode_string(data, out);
            out.push('"');
            Ok(())
        }
    }
}

/// One event as the changes feed shows it.
pub(super) fn push_event(out: &mut String, event: &Event) -> Result<(), ApiError> {
    if !event.recorded_at.is_writable() {
        return Err(ApiError::internal(&format_args!(
            "event {} has a recorded_at of {} ms, which RFC 3339 cannot write",
            event.id, event.recorded_at.0
        )));
    }
    write!(out, "{{\"id\":\"{}\",", event.id).map_err(unwritten)?;
    push_value(out, "data", &event.data).map_err(unwritten)?;
    write!(
        out,
        ",\"recorded_at\":\"{}\",\"lc\":{}}}",
        event.recorded_at, event.lc
    )
    .map_err(unwritten)
}

/// The bytes as text when they are one JSON value.
fn json_text(data: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(data).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    Some(text)
}
