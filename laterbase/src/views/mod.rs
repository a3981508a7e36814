//! The runtime behind `#[view]`: what a view is, how its rows are keyed,
//! and the registry of every view compiled into the binary.
//!
//! A view is a fold over one database's events, grouped by a key. The
//! `#[view]` macro turns a user's struct into an implementation of [`View`]
//! and registers it at build time; a node serves every registered view of
//! each database it holds. The pipeline of one event:
//!
//! ```text
//! event bytes ─ decode (V::Event) ─ key ─ fold into the key's state ─ row
//!      │            └─ fails: skipped and counted
//!      └─ read from the durable log in lc order by the view's actor
//! ```
//!
//! [`fold`](self::fold) keeps a view's rows in its store; the actor that
//! drives it lives in `actors::view`; [`crate::testing::fold`] folds a view
//! over a list of events without a node.

pub mod exact;
pub(crate) mod finite;
pub(crate) mod fold;
#[doc(hidden)]
pub mod private;

pub use finite::NotFinite;

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// One row of a view, as queries and [`crate::testing::fold`] return it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The row's key (`null` for a view without a key).
    pub key: serde_json::Value,
    /// The row's value.
    pub value: serde_json::Value,
}

/// A view compiled into the binary, as `#[view]` registers it.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The database it folds.
    pub db: &'static str,
    /// Its name.
    pub name: &'static str,
    /// The struct's path, to name it in errors.
    pub type_name: &'static str,
    pub(crate) engine: fn() -> Box<dyn fold::Engine>,
}

impl Registration {
    /// The registration of `V`, named `type_name` in errors.
    pub const fn of<V: View>(type_name: &'static str) -> Registration {
        Registration {
            db: V::DB,
            name: V::NAME,
            type_name,
            engine: fold::engine::<V>,
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("db", &self.db)
            .field("name", &self.name)
            .field("type_name", &self.type_name)
            .finish()
    }
}

inventory::collect!(Registration);

/// Every view compiled into this binary, sorted by database and name.
/// Fails naming both structs when two views of one database share a name.
pub fn registered() -> crate::Result<Vec<Registration>> {
    let mut views: Vec<Registration> = inventory::iter::<Registration>
        .into_iter()
        .copied()
        .collect();
    views.sort_by(|a, b| (a.db, a.name, a.type_name).cmp(&(b.db, b.name, b.type_name)));
    for pair in views.windows(2) {
        if let [first, second] = pair
            && first.db == second.db
            && first.name == second.name
        {
            return Err(crate::Error::DuplicateView {
                db: first.db.to_owned(),
                view: first.name.to_owned(),
                first: first.type_name.to_owned(),
                second: second.type_name.to_owned(),
            });
        }
    }
    Ok(views)
}

/// Where a view stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ViewStatus {
    /// The database.
    pub db: String,
    /// The view.
    pub view: String,
    /// The database's logical clock the view has folded up to.
    pub lc: u64,
    /// Events folded since the view was (re)built.
    pub folded: u64,
    /// Events that did not decode into the view's event type, skipped.
    pub skipped: u64,
    /// Whether the view is rebuilding (its definition changed, or a stored
    /// event was rewritten).
    pub rebuilding: bool,
}
