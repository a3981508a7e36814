//! What a view is: the trait `#[view]` implements, and why a fold fails.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::finite;
use super::key::{Key, KeyKind};
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
