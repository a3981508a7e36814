//! Folding a view without a node, for tests and snapshot tests.
//!
//! These folds are the definition a node's views are held to: events in id
//! order, grouped by key, rows sorted by key.
//!
//! ```
//! use laterbase::{EventId, view};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Reading { sensor: String, celsius: f64 }
//!
//! #[view(db = "readings", event = Reading, key = sensor)]
//! struct Hottest {
//!     #[max(celsius)] hottest: f64,
//! }
//!
//! let id = |ms| EventId::from_parts(ms, 0);
//! let rows = laterbase::testing::fold::<Hottest>([
//!     (id(1), Reading { sensor: "dock-1".into(), celsius: 4.5 }),
//!     (id(2), Reading { sensor: "dock-1".into(), celsius: 7.0 }),
//! ]);
//! assert_eq!(rows[0].value["hottest"], 7.0);
//! ```

use std::collections::BTreeMap;

use crate::event::EventId;
use crate::limits::VIEW_KEY_BYTES_MAX;
use crate::views::{Row, View};

/// Folds `events` into `V`'s rows, in id order whatever their order here;
/// of two events with one id, the first given counts. An event whose key is
/// longer than [`VIEW_KEY_BYTES_MAX`] bytes, or that does not fold (a
/// non-finite number, a state that cannot be stored), is skipped, as a
/// node skips it.
pub fn fold<V: View>(events: impl IntoIterator<Item = (EventId, V::Event)>) -> Vec<Row> {
    let mut events: Vec<(EventId, V::Event)> = events.into_iter().collect();
    // A stable sort keeps the first of equal ids first.
    events.sort_by_key(|(id, _)| *id);
    events.dedup_by_key(|(id, _)| *id);
    let mut rows: BTreeMap<crate::views::Key, (V::State, Vec<u8>)> = BTreeMap::new();
    for (id, event) in &events {
        let key = V::key(event);
        // As on a node: a key too long to store skips its event.
        if key.to_bytes().len() > VIEW_KEY_BYTES_MAX {
            continue;
        }
        let (state, stored) = rows.entry(key).or_default();
        // As on a node: an event that does not fold is skipped, and the
        // state stays as it was.
        let folded = crate::views::fold::fold_one::<V>(state, stored, *id, event);
        assert!(folded.is_ok(), "a state stored a moment ago reads back");
    }
    rows.into_iter()
        // As on a node: a row none of whose events folded does not exist.
        .filter(|(_, (_, stored))| !stored.is_empty())
        .map(|(key, (state, _))| Row {
            key: key.to_json(),
            value: V::value(&state),
        })
        .collect()
}

/// Folds stored events (their JSON bytes) as a node does: an event that
/// does not decode into `V::Event` is skipped.
pub fn fold_json<V: View, B: AsRef<[u8]>>(
    events: impl IntoIterator<Item = (EventId, B)>,
) -> Vec<Row> {
    fold::<V>(events.into_iter().filter_map(|(id, data)| {
        serde_json::from_slice::<V::Event>(data.as_ref())
            .ok()
            .map(|event| (id, event))
    }))
}
