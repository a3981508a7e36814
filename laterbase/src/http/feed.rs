//! The shared tail of a database's live changes feeds. One task per
//! database with live streams open reads its new events once and writes
//! each out once, as the message every stream sends; it keeps the last
//! `LIVE_RECENT_BYTES` of them. A stream at the head sends those very bytes
//! (shared, never copied) and reads nothing from the store itself; a stream
//! behind what the tail keeps catches up on a subscription of its own, then
//! joins it. A thousand streams of a database cost one read and one
//! encoding per event, and a socket write each.
//!
//! What a stream sends is the same either way: every event after its `lc`,
//! in clock order, each once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::error::ApiError;
use super::pump::{Background, Items, LIVE_CHUNK_BYTES, Pump, gather};
use crate::actors::Database;
use crate::event::Event;

/// The most bytes of messages a database's tail keeps for its streams.
pub(super) const LIVE_RECENT_BYTES: usize = 8 * 1024 * 1024;

/// How an event is written out as a message.
type Write = fn(&Event) -> Result<Bytes, ApiError>;

/// The tails of the databases with live streams open, by name.
#[derive(Debug, Default)]
pub(super) struct Feeds {
    by_database: Mutex<HashMap<String, Weak<Feed>>>,
}

impl Feeds {
    /// The tail of `database`'s changes, started if none runs: it ends once
    /// the last stream holding it is gone.
    pub(super) fn of(
        &self,
        database: &Database,
        background: &Background,
        write: Write,
    ) -> Arc<Feed> {
        let mut feeds = self
            .by_database
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        feeds.retain(|_, feed| feed.strong_count() > 0);
        let running = feeds
            .get(database.name())
            .and_then(Weak::upgrade)
            .filter(|feed| feed.recent.has_changed().is_ok());
        if let Some(feed) = running {
            return feed;
        }
        let start = database.lc();
        let (sender, recent) = watch::channel(Recent::at(start));
        background.spawn(tail(database.clone(), start, write, sender));
        let feed = Arc::new(Feed { recent });
        feeds.insert(database.name().to_owned(), Arc::downgrade(&feed));
        feed
    }
}

/// What the tail of one database's changes keeps, as its streams see it.
#[derive(Debug)]
pub(super) struct Feed {
    recent: watch::Receiver<Recent>,
}

/// The messages of a database's recent events, in chunks.
#[derive(Debug)]
struct Recent {
    chunks: VecDeque<Arc<Chunk>>,
    bytes: usize,
    /// Every event after this `lc`, up to `lc`, is in the chunks.
    floor: u64,
    /// The `lc` of the last event in the chunks (`floor` when none are).
    lc: u64,
    /// The tail stopped (the node shut down, most often): streams go on on
    /// their own, and end as their own subscriptions say.
    ended: bool,
}

/// Messages of consecutive events, as one piece of bytes.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    /// Each message's event `lc`, and where in `bytes` it starts.
    messages: Vec<(u64, usize)>,
}

impl Chunk {
    fn last_lc(&self) -> u64 {
        self.messages.last().map_or(0, |(lc, _)| *lc)
    }
}

/// What a stream after an `lc` does next, from what the tail keeps.
#[derive(Debug, PartialEq)]
enum Next {
    /// Sends these messages, up to this `lc`.
    Send(Vec<Bytes>, u64),
    /// Waits for the tail: the stream is at its head, or ahead.
    Wait,
    /// Reads on its own: the events it needs next are no longer kept, or
    /// the tail stopped.
    OnItsOwn,
}

impl Recent {
    fn at(lc: u64) -> Recent {
        Recent {
            chunks: VecDeque::new(),
            bytes: 0,
            floor: lc,
            lc,
            ended: false,
        }
    }

    /// Adds `chunk`, forgetting the oldest ones beyond `bytes_max`.
    fn push(&mut self, chunk: Chunk, bytes_max: usize) {
        self.lc = chunk.last_lc();
        self.bytes += chunk.bytes.len();
        self.chunks.push_back(Arc::new(chunk));
        while self.bytes > bytes_max && self.chunks.len() > 1 {
            if let Some(oldest) = self.chunks.pop_front() {
                self.bytes -= oldest.bytes.len();
                self.floor = oldest.last_lc();
            }
        }
    }

    /// What a stream that sent every event up to `after_lc` does next: at
    /// most `LIVE_CHUNK_BYTES` of messages at a time (and the first chunk
    /// after it whole), so that a stream holds no more than a chunk or two.
    fn next(&self, after_lc: u64) -> Next {
        if self.ended || after_lc < self.floor {
            return Next::OnItsOwn;
        }
        if after_lc >= self.lc {
            return Next::Wait;
        }
        let first = self
            .chunks
            .partition_point(|chunk| chunk.last_lc() <= after_lc);
        let mut send = Vec::new();
        let mut bytes = 0;
        let mut lc = after_lc;
        for chunk in self.chunks.range(first..) {
            if bytes >= LIVE_CHUNK_BYTES {
                break;
            }
            let from = chunk.messages.partition_point(|(lc, _)| *lc <= after_lc);
            let start = chunk.messages.get(from).map_or(0, |(_, start)| *start);
            let message = chunk.bytes.slice(start..);
            bytes += message.len();
            send.push(message);
            lc = chunk.last_lc();
        }
        Next::Send(send, lc)
    }
}

/// Reads `database`'s events after `start`, writes each out once (by
/// `write`), and
/// keeps the recent ones for the streams; until no stream holds the feed.
async fn tail(database: Database, start: u64, write: Write, recent: watch::Sender<Recent>) {
    let mut events: Items<Event> = Box::pin(database.subscribe(start));
    loop {
        let first = tokio::select! {
            first = events.next() => first,
            () = recent.closed() => return,
        };
        let mut messages = Vec::new();
        let mut out = BytesMut::new();
        let finished = gather(&mut events, first, &mut out, |event, out| {
            let message = write(event)?;
            messages.push((event.lc, out.len()));
            out.extend_from_slice(&message);
            Ok(())
        });
        let chunk = Chunk {
            bytes: out.freeze(),
            messages,
        };
        recent.send_modify(|recent| {
            if !chunk.messages.is_empty() {
                recent.push(chunk, LIVE_RECENT_BYTES);
            }
            recent.ended = finished.is_some();
        });
        if let Some(finished) = finished {
            finished.log(&format!("the shared tail of {}", database.name()));
            return;
        }
    }
}

/// The work of one live changes stream of `database` after `after_lc`:
/// from the tail when it keeps what comes next, else on its own.
pub(super) struct ChangesPump {
    pub(super) database: Database,
    pub(super) after_lc: u64,
    pub(super) feed: Arc<Feed>,
    pub(super) pump: Pump<Event>,
}

impl ChangesPump {
    pub(super) async fn run(mut self) {
        let mut recent = self.feed.recent.clone();
        // The stream's own subscription, while it reads on its own.
        let mut own: Option<Items<Event>> = None;
        let mut alone = false;
        loop {
            if self.pump.is_ending() {
                return;
            }
            // Marked seen before it is read: a chunk after it wakes the wait.
            let next = if alone {
                Next::OnItsOwn
            } else {
                recent.borrow_and_update().next(self.after_lc)
            };
            match next {
                Next::Send(messages, lc) => {
                    own = None;
                    for message in messages {
                        if !self.pump.send(message).await {
                            return;
                        }
                    }
                    self.after_lc = lc;
                }
                Next::Wait => match self.pump.wait_for(recent.changed()).await {
                    Some(Ok(())) => {}
                    // The tail is gone without a word (its runtime
                    // stopped): the stream goes on alone.
                    Some(Err(_)) => alone = true,
                    None => return,
                },
                Next::OnItsOwn => {
                    let after_lc = self.after_lc;
                    let database = &self.database;
                    let items = own.get_or_insert_with(|| Box::pin(database.subscribe(after_lc)));
                    let mut sent = None;
                    if self
                        .pump
                        .forward(items, |event| sent = Some(event.lc))
                        .await
                        .is_none()
                    {
                        return;
                    }
                    if let Some(lc) = sent {
                        self.after_lc = lc;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk of the messages `"<lc>;"` of these events.
    fn chunk(lcs: &[u64]) -> Chunk {
        let mut bytes = String::new();
        let mut messages = Vec::new();
        for lc in lcs {
            messages.push((*lc, bytes.len()));
            bytes.push_str(&format!("{lc};"));
        }
        Chunk {
            bytes: Bytes::from(bytes),
            messages,
        }
    }

    fn sent(next: Next) -> (String, u64) {
        match next {
            Next::Send(messages, lc) => (
                messages
                    .iter()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                    .collect(),
                lc,
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stream_gets_the_messages_after_its_lc_from_within_a_chunk() {
        let mut recent = Recent::at(10);
        recent.push(chunk(&[11, 12, 13]), usize::MAX);
        recent.push(chunk(&[14, 15]), usize::MAX);
        assert_eq!(sent(recent.next(10)), ("11;12;13;14;15;".to_owned(), 15));
        assert_eq!(sent(recent.next(12)), ("13;14;15;".to_owned(), 15));
        assert_eq!(sent(recent.next(13)), ("14;15;".to_owned(), 15));
        assert_eq!(sent(recent.next(14)), ("15;".to_owned(), 15));
        assert_eq!(recent.next(15), Next::Wait);
        // A stream ahead of the tail (it read on its own) waits for it.
        assert_eq!(recent.next(16), Next::Wait);
        assert_eq!(recent.next(9), Next::OnItsOwn);
    }

    #[test]
    fn a_stream_behind_what_is_kept_reads_on_its_own() {
        let mut recent = Recent::at(0);
        recent.push(chunk(&[1, 2]), 9);
        recent.push(chunk(&[3, 4]), 9);
        // Each chunk is 4 bytes: the third pushes the first out.
        recent.push(chunk(&[5, 6]), 9);
        assert_eq!(recent.floor, 2);
        assert_eq!(recent.next(1), Next::OnItsOwn);
        assert_eq!(sent(recent.next(2)), ("3;4;5;6;".to_owned(), 6));
        // The newest chunk is kept, however large.
        recent.push(chunk(&[7, 8, 9, 10, 11]), 9);
        assert_eq!(recent.floor, 6);
        assert_eq!(sent(recent.next(6)), ("7;8;9;10;11;".to_owned(), 11));
    }

    #[test]
    fn a_stream_behind_gets_a_chunk_at_a_time() {
        let mut recent = Recent::at(0);
        let big = |lc: u64| Chunk {
            bytes: Bytes::from(vec![b'x'; LIVE_CHUNK_BYTES / 2]),
            messages: vec![(lc, 0)],
        };
        for lc in 1..=5 {
            recent.push(big(lc), usize::MAX);
        }
        let Next::Send(messages, lc) = recent.next(0) else {
            panic!("messages to send");
        };
        assert_eq!((messages.len(), lc), (2, 2));
        let Next::Send(messages, lc) = recent.next(4) else {
            panic!("messages to send");
        };
        assert_eq!((messages.len(), lc), (1, 5));
    }

    #[test]
    fn a_tail_that_stopped_sends_everyone_on_their_own() {
        let mut recent = Recent::at(0);
        recent.push(chunk(&[1]), usize::MAX);
        recent.ended = true;
        assert_eq!(recent.next(0), Next::OnItsOwn);
        assert_eq!(recent.next(1), Next::OnItsOwn);
    }
}
