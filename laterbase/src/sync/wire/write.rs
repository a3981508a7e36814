//! Writing the fields of sync messages: cursors, summaries, pages, events,
//! ids and lists of losers, each as `docs/sync.md` lays it out, in the
//! version the message is in.

use bytes::{BufMut, Bytes, BytesMut};

use super::version::{VERSION, VERSION_OLDEST};
use crate::event::{Event, EventId};
use crate::sync::messages::{Cursor, Entries, ListFrom, LoserPage, Page, Summary};

/// A message being written, from its version on.
pub(super) struct Out {
    bytes: BytesMut,
    version: u8,
}

impl Out {
    pub(super) fn new(version: u8) -> Out {
        assert!(
            (VERSION_OLDEST..=VERSION).contains(&version),
            "wire version {version} is not spoken here"
        );
        let mut bytes = BytesMut::with_capacity(256);
        bytes.put_u8(version);
        Out { bytes, version }
    }

    /// Whether the message is in the current version (with its fields).
    pub(super) fn current(&self) -> bool {
        self.version >= 3
    }

    pub(super) fn list_from(&mut self, from: Option<ListFrom>) {
        match from {
            None => self.bytes.put_u8(0),
            Some(None) => self.bytes.put_u8(1),
            Some(Some(id)) => {
                self.bytes.put_u8(2);
                self.bytes.put_slice(&id.to_bytes());
            }
        }
    }

    pub(super) fn option_losers(&mut self, page: Option<&LoserPage>) {
        let Some(page) = page else {
            self.bytes.put_u8(0);
            return;
        };
        self.bytes.put_u8(1);
        self.list_from(Some(page.after));
        self.count(page.losers.len());
        for loser in &page.losers {
            self.bytes.put_slice(&loser.id.to_bytes());
            self.count(loser.data.len());
            self.bytes.put_slice(&loser.data);
        }
        self.bytes.put_u8(u8::from(page.more));
    }

    pub(super) fn done(self) -> Bytes {
        self.bytes.freeze()
    }

    pub(super) fn flag(&mut self, flag: bool) {
        self.bytes.put_u8(u8::from(flag));
    }

    pub(super) fn u64(&mut self, value: u64) {
        self.bytes.put_u64(value);
    }

    fn count(&mut self, count: usize) {
        self.bytes.put_u32(u32::try_from(count).unwrap_or(u32::MAX));
    }

    pub(super) fn cursor(&mut self, cursor: Cursor) {
        self.bytes.put_u128(cursor.incarnation);
        self.bytes.put_u128(cursor.epoch);
        self.bytes.put_u64(cursor.lc);
        self.bytes.put_u64(cursor.us);
    }

    pub(super) fn option_cursor(&mut self, cursor: Option<Cursor>) {
        match cursor {
            None => self.bytes.put_u8(0),
            Some(cursor) => {
                self.bytes.put_u8(1);
                self.cursor(cursor);
            }
        }
    }

    pub(super) fn summary(&mut self, summary: &Summary) {
        self.bytes.put_u128(summary.incarnation);
        self.bytes.put_u64(summary.head_lc);
        self.bytes.put_u64(summary.head_us);
        self.count(summary.history.len());
        for epoch in &summary.history {
            self.bytes.put_u128(epoch.epoch);
            self.bytes.put_u64(epoch.start_lc);
            self.bytes.put_u64(epoch.start_us);
        }
    }

    pub(super) fn ids(&mut self, ids: &[EventId]) {
        self.count(ids.len());
        for id in ids {
            self.bytes.put_slice(&id.to_bytes());
        }
    }

    pub(super) fn events(&mut self, events: &[Event]) {
        self.count(events.len());
        let data: usize = events.iter().map(|event| event.data.len()).sum();
        self.bytes.reserve(events.len() * 28 + data);
        for event in events {
            self.bytes.put_slice(&event.id.to_bytes());
            self.bytes.put_u64(event.recorded_at.0);
            self.count(event.data.len());
            self.bytes.put_slice(&event.data);
        }
    }

    pub(super) fn page(&mut self, page: &Page) {
        self.cursor(page.from);
        self.cursor(page.to);
        self.bytes.put_u8(u8::from(page.more));
        match &page.entries {
            Entries::Ids(entries) => {
                self.bytes.put_u8(0);
                self.count(entries.len());
                for entry in entries {
                    self.bytes.put_slice(&entry.id.to_bytes());
                    self.bytes.put_u64(entry.digest.0);
                }
            }
            Entries::Events(events) => {
                self.bytes.put_u8(1);
                self.events(events);
            }
        }
        if self.current() {
            self.count(page.held.len());
            for run in &page.held {
                self.bytes.put_u64(run.after_lc);
                self.bytes.put_u64(run.to_lc);
                self.bytes.put_u128(run.incarnation);
                self.bytes.put_u128(run.epoch);
            }
        } else {
            assert!(page.held.is_empty(), "version 2 names no held runs");
        }
    }
}
