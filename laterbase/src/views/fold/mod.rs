//! Folding events into a view's store.
//!
//! A view's store holds, under one-byte prefixes:
//!
//! ```text
//! p                      position: lc, update number, fingerprint, counters
//! r key                  a row: the id of its latest event, events since its
//!                        last checkpoint, its state (JSON)
//! i len key id           ordered views: the ids of each key's events
//! c len key id           ordered views: the key's state after event `id`
//! ```
//!
//! An event that does not decode, whose key is longer than
//! [`VIEW_KEY_BYTES_MAX`](crate::limits::VIEW_KEY_BYTES_MAX), or that does not fold (a non-finite number, a
//! state that cannot be stored: see [`fold_one`]) is skipped and counted.
//!
//! Built-in aggregators keep exact state (`#[sum]` in an `i128` or an
//! [`ExactSum`](super::exact::ExactSum)), so a row is a function of the set
//! of its events, whatever their order. The layout of that state is
//! `VIEW_STATE_FORMAT` (`row.rs`), mixed into every view's fingerprint: a view
//! stored in another format is rebuilt rather than misread.
//!
//! Events come in `lc` order, which is arrival order. Order-insensitive
//! views fold them as they come. An ordered view (a custom fold) folds an
//! event in place when it is the newest of its key; an older one (backdated)
//! refolds its key from the last checkpoint before it, over the key's newer
//! events: a cost of at most
//! [`VIEW_CHECKPOINT_EVENTS`](crate::limits::VIEW_CHECKPOINT_EVENTS) plus those events,
//! never the whole history. Each batch of events is one atomic write with
//! the position, so a crash leaves rows and position agreeing.
//!
//! A stored event whose bytes are rewritten (a conflict's smaller value
//! wins) was folded in its older form. The view refolds only the keys its
//! forms belong to, old and new ([`Engine::refold_rewritten`]): an ordered
//! view from each key's checkpoint before the event, over its index; an
//! order-insensitive view, which keeps no index, by reading the log once
//! for all of them and folding only those keys' events. Other rows are
//! not touched, and the view answers as it did.
//!
//! ```text
//! engine.rs       Engine: a batch folded, a backdated event, rewritten events
//! ├─ refold.rs    a key refolded from its checkpoint, or keys from the log
//! ├─ row.rs       a row as stored, and the fold of one event into it
//! ├─ position.rs  how far the view has folded
//! └─ layout.rs    the keys above, and the error of what does not decode
//! ```

mod engine;
mod layout;
mod position;
mod refold;
mod row;

pub(crate) use engine::{Engine, engine};
pub(crate) use layout::{row_bounds, row_key, row_of};
pub(crate) use position::Position;
pub(crate) use row::fold_one;
