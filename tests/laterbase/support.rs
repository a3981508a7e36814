//! Helpers shared by the integration tests.

use laterbase::{ChangesPage, Database, Event, EventId};

/// A current-thread runtime for tests that drive async code from proptest.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Reads the whole changes feed in pages of `page`, checking that pages
/// chain (each starts after the `lc` the previous returned).
pub async fn read_feed(db: &Database, page: usize) -> Vec<Event> {
    let mut events = Vec::new();
    let mut lc = 0;
    loop {
        let ChangesPage {
            events: chunk,
            lc: next,
            more,
        } = db.changes(lc, page).await.expect("changes");
        assert!(chunk.len() <= page, "a page holds at most `limit` events");
        if let Some(last) = chunk.last() {
            assert_eq!(last.lc, next, "the page's lc is its last event's");
        } else {
            assert_eq!(next, lc, "an empty page keeps the lc asked from");
        }
        events.extend(chunk);
        lc = next;
        if !more {
            return events;
        }
    }
}

/// Reads every event by id range, in pages of `page`.
pub async fn read_range(db: &Database, page: usize) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut after: Option<EventId> = None;
    loop {
        let chunk = db.range(after, None, page).await.expect("range");
        assert!(chunk.events.len() <= page);
        after = chunk.events.last().map(|event| event.id).or(after);
        events.extend(chunk.events);
        if !chunk.more {
            return events;
        }
    }
}

/// Asserts that logical clocks run 1, 2, 3... with no gap or repeat.
pub fn assert_contiguous(events: &[Event]) {
    for (expected, event) in (1..).zip(events) {
        assert_eq!(event.lc, expected, "lc runs without gaps from 1");
    }
}
