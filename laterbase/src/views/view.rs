//! What a view is: the [`View`] trait the `#[view]` macro implements, the
//! keys of its rows ([`Key`], of a [`KeyKind`]) with their order-preserving
//! bytes, and [`FoldError`], why one event was not folded. Folding and
//! storing rows is `fold`'s; the registry of views is `registry.rs`'s.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::finite;
use crate::codec::Reader;
use crate::event::EventId;

/// A view, as the `#[view]` macro implements it for a user's struct.
///
/// Implement it by hand only to do what the macro cannot; the macro's
/// version is the contract of `views.md`.
pub trait View: 'static {
    /// The database the view folds.
    const DB: &'static str;
    /// The view's name in routes: the struct's name in snake case unless
    /// the attribute says otherwise.
    const NAME: &'static str;
    /// A hash of the view's definition: when it changes, the view is
    /// rebuilt from the events.
    const FINGERPRINT: u64;
    /// Whether the fold depends on the order of events (custom folds): then
    /// a backdated event refolds its key from a checkpoint.
    const ORDERED: bool;

    /// What each event's JSON decodes into.
    type Event: DeserializeOwned;
    /// What a row keeps between events.
    type State: Default + Serialize + DeserializeOwned + Send + 'static;

    /// The type of the key, from the event's key field.
    fn key_kind() -> KeyKind;
    /// The row an event belongs to.
    fn key(event: &Self::Event) -> Key;
    /// Folds one event into its row's state. An error skips the event (it
    /// is counted) and leaves the state as it was before it. A fold must be
    /// deterministic: the same events in id order give the same state, on
    /// every node and after every rebuild.
    fn fold(state: &mut Self::State, id: EventId, event: &Self::Event) -> Result<(), FoldError>;
    /// A row's value as queries return it.
    fn value(state: &Self::State) -> serde_json::Value;
}

/// Why one event was not folded into its row: it is skipped and counted,
/// and the view goes on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FoldError {
    /// A field the view folds holds a value it cannot fold.
    #[error("a field the view folds cannot be folded")]
    Input(#[source] finite::NotFinite),
    /// The state the fold left cannot be stored.
    #[error("the row's state cannot be stored")]
    State(#[source] finite::NotFinite),
}

/// The type of a view's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// One global row, keyed `null`.
    Null,
    /// Strings.
    Str,
    /// Signed integers.
    Int,
    /// Unsigned integers.
    UInt,
    /// Booleans.
    Bool,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::Null => "null (the view has one row)",
            KeyKind::Str => "a string",
            KeyKind::Int => "an integer",
            KeyKind::UInt => "a non-negative integer",
            KeyKind::Bool => "true or false",
        })
    }
}

/// A row's key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The one row of a view without a key.
    Null,
    /// A string key.
    Str(String),
    /// A signed integer key.
    Int(i64),
    /// An unsigned integer key.
    UInt(u64),
    /// A boolean key.
    Bool(bool),
}

impl Key {
    /// Parses a key as a query gives it: a string as it is, a number or a
    /// boolean in its JSON form, `null` for a view without a key.
    pub fn parse(kind: KeyKind, text: &str) -> Option<Key> {
        match kind {
            KeyKind::Null => (text == "null").then_some(Key::Null),
            KeyKind::Str => Some(Key::Str(text.to_owned())),
            KeyKind::Int => text.parse().ok().map(Key::Int),
            KeyKind::UInt => text.parse().ok().map(Key::UInt),
            KeyKind::Bool => text.parse().ok().map(Key::Bool),
        }
    }

    /// The key as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Key::Null => serde_json::Value::Null,
            Key::Str(text) => serde_json::Value::from(text.as_str()),
            Key::Int(value) => serde_json::Value::from(*value),
            Key::UInt(value) => serde_json::Value::from(*value),
            Key::Bool(value) => serde_json::Value::from(*value),
        }
    }

    /// The key's bytes in the view's store, which sort as the keys do.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Key::Null => Vec::new(),
            Key::Str(text) => text.as_bytes().to_vec(),
            Key::Int(value) => ((*value as u64) ^ (1 << 63)).to_be_bytes().to_vec(),
            Key::UInt(value) => value.to_be_bytes().to_vec(),
            Key::Bool(value) => vec![u8::from(*value)],
        }
    }

    /// The key of `bytes` from [`Key::to_bytes`], for a view of `kind`.
    pub(crate) fn from_bytes(kind: KeyKind, bytes: &[u8]) -> Option<Key> {
        match kind {
            KeyKind::Null => bytes.is_empty().then_some(Key::Null),
            KeyKind::Str => String::from_utf8(bytes.to_vec()).ok().map(Key::Str),
            KeyKind::Int => {
                let raw = whole_u64(bytes)?;
                Some(Key::Int((raw ^ (1 << 63)) as i64))
            }
            KeyKind::UInt => Some(Key::UInt(whole_u64(bytes)?)),
            KeyKind::Bool => match bytes {
                [0] => Some(Key::Bool(false)),
                [1] => Some(Key::Bool(true)),
                _ => None,
            },
        }
    }
}

/// `bytes` as one big-endian `u64`, if they are exactly that.
fn whole_u64(bytes: &[u8]) -> Option<u64> {
    let mut reader = Reader::new(bytes);
    let value = reader.u64("the key").ok()?;
    reader.end().ok()?;
    Some(value)
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Null => f.write_str("null"),
            Key::Str(text) => f.write_str(text),
            Key::Int(value) => write!(f, "{value}"),
            Key::UInt(value) => write!(f, "{value}"),
            Key::Bool(value) => write!(f, "{value}"),
        }
    }
}
