//! What a node speaks: the wire versions, how a message and a peer's
//! refusal name theirs, the content type and headers sync messages travel
//! under, and [`WireError`], why bytes are not a sync message.

/// The content type of sync messages.
pub const CONTENT_TYPE: &str = "application/vnd.laterbase.sync";

/// The wire version this node speaks by choice.
pub const VERSION: u8 = 3;

/// The oldest wire version this node still speaks: the first release's.
pub const VERSION_OLDEST: u8 = 2;

/// The header that names the node answering, and the node syncing.
pub const NODE_HEADER: &str = "laterbase-node";

/// The header in which a node names the newest wire version it speaks, on
/// every answer (nodes of the first release send none).
pub const VERSION_HEADER: &str = "laterbase-sync-version";

/// Why bytes are not a sync message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed sync message: {0}")]
pub struct WireError(pub String);

/// The version a message is in, if this node speaks it.
pub fn version_of(bytes: &[u8]) -> Result<u8, WireError> {
    match bytes.first() {
        None => Err(WireError("the message is empty".to_owned())),
        Some(&version) if (VERSION_OLDEST..=VERSION).contains(&version) => Ok(version),
        Some(&version) => Err(WireError(format!(
            "version {version}, this node speaks {VERSION}"
        ))),
    }
}

/// The version a peer's refusal says it speaks, when it refused a message
/// for its version (`version N, this node speaks M`).
pub fn version_refused(answer: &str) -> Option<u8> {
    let (_, rest) = answer.split_once("this node speaks ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}
