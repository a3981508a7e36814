//! The log's chunks: consecutive logical clocks in one value, so that a
//! write inserts one log key per chunk.
//!
//! ```text
//! first lc of the chunk (u64 BE) -> count (u32 BE), then per event:
//!     id (16 bytes) | recorded_at ms (u64 BE) | length (u32 BE) | data
//! ```
//!
//! A chunk holds at most [`LOG_CHUNK_EVENTS_MAX`] events and about
//! [`LOG_CHUNK_BYTES_MAX`] bytes; [`Chunk`] reads one an event at a time,
//! through the crate's checked reader, each event's data a slice of the
//! chunk's bytes.

use bytes::Bytes;

use super::records::corrupt;
use crate::codec::Reader;
use crate::event::{Event, EventId, Timestamp};
use crate::limits::{LOG_CHUNK_BYTES_MAX, LOG_CHUNK_EVENTS_MAX};
use crate::storage::{StorageResult, StoredEvent};

/// id, recorded_at and length before each event's data in a chunk.
const EVENT_HEADER_BYTES: usize = 16 + 8 + 4;

/// A chunk's bytes: its count, then each event.
pub(super) fn encode_chunk(chunk: &[StoredEvent]) -> StorageResult<Vec<u8>> {
    let data_bytes: usize = chunk.iter().map(|event| event.data.len()).sum();
    let mut value = Vec::with_capacity(4 + chunk.len() * EVENT_HEADER_BYTES + data_bytes);
    let count = u32::try_from(chunk.len()).map_err(|_| corrupt("chunk size", &[]))?;
    value.extend_from_slice(&count.to_be_bytes());
    for event in chunk {
        let length = u32::try_from(event.data.len()).map_err(|_| corrupt("event size", &[]))?;
        value.extend_from_slice(&event.id.to_bytes());
        value.extend_from_slice(&event.recorded_at.0.to_be_bytes());
        value.extend_from_slice(&length.to_be_bytes());
        value.extend_from_slice(&event.data);
    }
    Ok(value)
}

/// Splits a batch into log chunks: at most [`LOG_CHUNK_EVENTS_MAX`] events,
/// and no more data than [`LOG_CHUNK_BYTES_MAX`] unless one event is larger.
pub(super) fn chunks(events: &[StoredEvent]) -> impl Iterator<Item = &[StoredEvent]> {
    let mut rest = events;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut count = 0;
        for event in rest.iter().take(LOG_CHUNK_EVENTS_MAX) {
            if count > 0 && bytes + event.data.len() > LOG_CHUNK_BYTES_MAX {
                break;
            }
            bytes += event.data.len();
            count += 1;
        }
        let (chunk, tail) = rest.split_at(count);
        rest = tail;
        Some(chunk)
    })
}

/// The events of one log chunk, decoded as they are iterated.
pub(super) struct Chunk {
    next_lc: u64,
    /// The events not read yet.
    pub(super) count: u32,
    reader: Reader<Bytes>,
    /// The whole chunk, shown by the error of one that does not decode.
    bytes: Bytes,
}

impl Chunk {
    /// The chunk stored under `first_lc`: corrupt if it names no events. A
    /// chunk shorter than its count has no count to show in its error.
    pub(super) fn new(first_lc: u64, bytes: Bytes) -> StorageResult<Chunk> {
        let mut reader = Reader::new(bytes.clone());
        let count = reader
            .u32("the chunk's count")
            .map_err(|_| corrupt("chunk count", &[]))?;
        if count == 0 {
            return Err(corrupt("log chunk", &bytes));
        }
        Ok(Chunk {
            next_lc: first_lc,
            count,
            reader,
            bytes,
        })
    }

    fn decode(&mut self) -> StorageResult<Event> {
        let corrupted = |_| corrupt("log chunk", &self.bytes);
        let id = self.reader.array("an event's id").map_err(corrupted)?;
        let recorded_at = self.reader.u64("its recorded_at").map_err(corrupted)?;
        let length = self.reader.u32("its length").map_err(corrupted)?;
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let data = self.reader.bytes(length, "its data").map_err(corrupted)?;
        let event = Event {
            id: EventId::from_bytes(id),
            recorded_at: Timestamp(recorded_at),
            data,
            lc: self.next_lc,
        };
        self.next_lc += 1;
        Ok(event)
    }
}

impl Iterator for Chunk {
    type Item = StorageResult<Event>;

    fn next(&mut self) -> Option<StorageResult<Event>> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        Some(self.decode())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn stored(n: u64) -> StoredEvent {
        StoredEvent {
            id: EventId::from_parts(1_000 + n, u128::from(n)),
            recorded_at: Timestamp(n),
            data: Bytes::from(vec![b'x'; n as usize]),
        }
    }

    /// A chunk of three events with data of 0, 1 and 2 bytes.
    fn encoded() -> Bytes {
        let events: Vec<StoredEvent> = (0..3).map(stored).collect();
        Bytes::from(encode_chunk(&events).expect("encodes"))
    }

    #[test]
    fn a_chunk_decodes_its_events_at_consecutive_clocks() {
        let events: Vec<Event> = Chunk::new(5, encoded())
            .expect("chunk")
            .collect::<StorageResult<_>>()
            .expect("events");
        assert_eq!(events.len(), 3);
        for (n, event) in (0..).zip(&events) {
            let expected = stored(n);
            assert_eq!(event.lc, 5 + n);
            assert_eq!(
                (event.id, event.recorded_at, &event.data),
                (expected.id, expected.recorded_at, &expected.data)
            );
        }
    }

    #[test]
    fn a_chunk_cut_anywhere_is_corrupt() {
        let bytes = encoded();
        for cut in 0..bytes.len() {
            let chunk = Chunk::new(1, bytes.slice(..cut));
            let read = chunk.and_then(|chunk| chunk.collect::<StorageResult<Vec<Event>>>());
            let error = read.expect_err("cut").to_string();
            let expected = if cut < 4 {
                "corrupt chunk count: 0 bytes".to_owned()
            } else {
                format!("corrupt log chunk: {cut} bytes")
            };
            assert!(error.starts_with(&expected), "cut at {cut}: {error}");
        }
        let none = Chunk::new(1, Bytes::from_static(&[0; 4])).err();
        assert!(none.is_some(), "a chunk of no events is corrupt");
    }

    proptest! {
        /// No bytes make a chunk's reader panic, and it reads no more
        /// events than its count, nor than its bytes can hold.
        #[test]
        fn no_bytes_make_a_chunk_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let length = bytes.len();
            if let Ok(chunk) = Chunk::new(1, Bytes::from(bytes)) {
                let count = chunk.count as usize;
                let read = chunk.take_while(Result::is_ok).count();
                prop_assert!(read <= count, "{read} of {count}");
                prop_assert!(read <= length / EVENT_HEADER_BYTES, "{read} in {length} bytes");
            }
        }
    }
}
