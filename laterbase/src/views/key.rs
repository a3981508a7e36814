//! How a view's rows are keyed: the kinds of keys, and keys, as routes
//! parse them and stores order them.

use std::fmt;

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
                let raw = u64::from_be_bytes(bytes.try_into().ok()?);
                Some(Key::Int((raw ^ (1 << 63)) as i64))
            }
            KeyKind::UInt => Some(Key::UInt(u64::from_be_bytes(bytes.try_into().ok()?))),
            KeyKind::Bool => match bytes {
                [0] => Some(Key::Bool(false)),
                [1] => Some(Key::Bool(true)),
                _ => None,
            },
        }
    }
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
