//! Every bound of the system, named, in one place.
//!
//! Names end in their unit. Defaults of configurable values live here too, and
//! the compile-time checks at the bottom keep related bounds consistent.

/// The most events one append may carry.
pub const BATCH_EVENTS_MAX: usize = 10_000;

/// The most data bytes one append may carry (the sum over its events).
pub const BATCH_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The largest request body the HTTP API reads.
pub const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The most data bytes one event holds: the most one append may carry, and
/// no more than a write's body brings. A merge refuses a larger value from
/// a peer (no write could have made it); a sync message carries the
/// largest.
pub const EVENT_BYTES_MAX: usize = BATCH_BYTES_MAX;

/// The latest `recorded_at` a node stores, in milliseconds since the Unix
/// epoch: 9999-12-31T23:59:59.999Z, the last moment RFC 3339 writes. A merge
/// refuses an event recorded later, which no read could show.
pub const RECORDED_AT_MS_MAX: u64 = 253_402_300_799_999;

/// The page size of a read that names no `limit`.
pub const PAGE_EVENTS_DEFAULT: usize = 1_000;

/// The default time one HTTP request may take before it answers 503.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// How long a connection may take to send a request's headers, and so how
/// long an idle keep-alive connection is kept.
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;

/// The most bytes of request headers read per connection.
pub const HEADER_BYTES_MAX: usize = 64 * 1024;

/// How long a stopping server waits for the requests in flight.
pub const DRAIN_TIMEOUT_MS: u64 = 10_000;

/// The most connections served at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 1_024;

/// The default time the reader of an answer may take none of its bytes
/// before `server::serve` closes its connection: a reader that stalls
/// does not keep its answer in memory.
pub const ANSWER_WRITE_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// The most bytes a node holds, over every connection, for answers built
/// in memory and not yet written. A read reserves room for the most its
/// answer can take before it reads, and holds the room its answer takes
/// until the answer's last byte is written (or its reader is cut off).
pub const ANSWER_BYTES_HELD_MAX: usize = 256 * 1024 * 1024;

/// How long a read waits for room among the answers held before it
/// answers `503 unavailable`.
pub const ANSWER_HOLD_WAIT_MS: u64 = 5_000;

/// Answers no larger than this that did not reserve room before they were
/// built (small ones: health, receipts, errors) hold none: at most one per
/// connection is held, so `CONNECTIONS_MAX` bounds them.
pub const ANSWER_UNCOUNTED_BYTES_MAX: usize = 64 * 1024;

/// The bytes of an answer that holds room handed to hyper at a time, each
/// a copy: what hyper buffers of an answer stays this small, and the
/// answer's memory is freed once its last piece is out.
pub const ANSWER_CHUNK_BYTES: usize = 64 * 1024;

/// How deep a JSON body may nest arrays and objects (a batch's own array
/// and event objects included).
pub const JSON_DEPTH_MAX: usize = 128;

/// The longest database name, in characters.
pub const NAME_LENGTH_MAX: usize = 64;

/// The most databases one node holds.
pub const DATABASES_MAX: usize = 10_000;

/// The default bound on how far an id's time may be ahead of the wall clock.
pub const CLOCK_SKEW_MS_DEFAULT: u64 = 60_000;

/// The default timeout of every call to an actor.
pub const CALL_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Data bytes of appends in flight (queued or waiting for their fsync) per
/// database, in KiB. Appends beyond it wait before they enter the mailbox, so
/// that memory stays bounded however many writers there are.
pub const APPEND_KIB_IN_FLIGHT_MAX: u32 = 64 * 1024;

/// The most events one page of a read returns.
pub const PAGE_EVENTS_MAX: usize = 10_000;

/// The most events a subscription (`Database::subscribe`, and each live
/// stream) reads from the store at once and holds for its reader, within
/// [`SUBSCRIPTION_PAGE_BYTES`]: a slow reader costs no more. A subscription
/// to a view's rows (`Database::subscribe_view`) reads as many events at
/// once to learn which rows changed, and holds at most as many keys of
/// changed rows and as many rows, each within the same bytes.
pub const SUBSCRIPTION_PAGE_EVENTS: usize = 1_000;

/// The most data a subscription holds for its reader (or one event or row
/// alone, however large): with `LIVE_STREAMS_MAX_DEFAULT` streams open, at
/// most 256 MiB in all (twice that for streams of rows, which hold keys
/// and rows).
pub const SUBSCRIPTION_PAGE_BYTES: usize = 256 * 1024;

/// The live streams (`feed=live`) a node serves at once, by default
/// (`--live-streams-max`); one more answers `503 unavailable`.
pub const LIVE_STREAMS_MAX_DEFAULT: usize = 1_000;

/// The seconds of history each database keeps of the events written and
/// synced per second (`GET /status` and its chart): a fixed ring of this
/// many slots, whatever the rate.
pub const RATES_WINDOW_S: usize = 300;

/// The seconds over which `GET /status` averages a database's writes per
/// second; within [`RATES_WINDOW_S`].
pub const WRITES_PER_S_WINDOW_S: usize = 60;

const _: () = assert!(WRITES_PER_S_WINDOW_S <= RATES_WINDOW_S);

/// Failed passes in a row after which `GET /status` shows a peer as
/// `failing` rather than `retrying`.
pub const PEER_FAILING_PASSES: u32 = 5;

/// How long a live stream stays silent before it sends a heartbeat, by
/// default (`heartbeat_ms`), and the bounds a request may ask within.
pub const LIVE_HEARTBEAT_MS_DEFAULT: u64 = 15_000;
/// The shortest heartbeat a live stream takes.
pub const LIVE_HEARTBEAT_MS_MIN: u64 = 100;
/// The longest heartbeat a live stream takes.
pub const LIVE_HEARTBEAT_MS_MAX: u64 = 300_000;

/// The most bytes of event data one page of a read holds (the changes
/// feed, a read by ids or by id range, a page of view rows): a page ends
/// before the event that would pass it, so it may hold fewer than its
/// `limit`, but it always holds the first event, whatever its size. Reads
/// stop there, so a read holds at most this plus one event.
pub const PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// The most ids one `get` may ask for.
pub const GET_IDS_MAX: usize = 10_000;

/// ids a node assigns carry a counter within each millisecond in their top
/// bits after the time; this many bits of it.
pub const ID_COUNTER_BITS: u32 = 16;

/// The most times the node restarts crashed database actors within one
/// `RESTART_WINDOW_MS` before it gives up on the one that crashes next.
pub const DATABASE_RESTARTS_MAX: u32 = 100;

/// The window, in milliseconds, over which each restart budget
/// (`DATABASE_RESTARTS_MAX`, `VIEW_RESTARTS_MAX`,
/// `SYNC_WORKER_RESTARTS_MAX`) is counted: restarts older than this no
/// longer count, so that a rare crash does not use the budget up over a
/// long life.
pub const RESTART_WINDOW_MS: u64 = 60_000;

/// How long, in milliseconds, a starting database actor waits for its
/// writer lease, which a killed predecessor's commit may still hold, before
/// the start fails.
pub const WRITER_LEASE_WAIT_MS_MAX: u64 = 30_000;

/// The most events one chunk of the fjall log holds. The log stores events in
/// chunks of consecutive logical clocks, so that a write inserts one log key
/// per chunk rather than one per event; a read of one event decodes its chunk.
pub const LOG_CHUNK_EVENTS_MAX: usize = 64;

/// The most bytes of event data one log chunk holds (an event larger than
/// this is a chunk of its own).
pub const LOG_CHUNK_BYTES_MAX: usize = 64 * 1024;

/// fjall's memtable size for a database's log. Memtables are most of a
/// node's memory: a busy database holds its active memtables and those
/// sealed ones waiting for their flush (fjall lets four queue per keyspace
/// before it halts writes). At 32 MiB here and 8 MiB for the index, a node
/// that takes or syncs a million events stays under 200 MiB resident, and
/// ingest keeps its speed (64 MiB and 32 MiB were no faster within the
/// noise, and cost 100 MiB more).
pub const LOG_MEMTABLE_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// fjall's memtable size for a database's id index and its other small
/// keyspaces. Index entries are small, so a skiplist node costs more than
/// its bytes; they are also looked up at random (backdated writes), and a
/// smaller skiplist is a faster one.
pub const INDEX_MEMTABLE_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// At or below this many bytes free on the data directory's disk, a store
/// that fjall poisoned in the background (a flush or a compaction failed,
/// which fjall logs but does not return) is taken to have run out of room:
/// such a store answers `507 insufficient_storage` rather than `503`. A
/// flush writes up to a memtable's bytes, and a failed one leaves its
/// partial file, so a disk it filled has next to nothing free; one with
/// less than a log memtable free would fail the next flush anyway.
pub const DISK_FULL_FREE_BYTES_MAX: u64 = LOG_MEMTABLE_BYTES_MAX;

/// The most events (or ids) one page of a sync message carries.
pub const SYNC_PAGE_EVENTS_MAX: usize = 10_000;

/// The most bytes of event data one page of a sync message carries (at
/// least one event goes, whatever its size).
pub const SYNC_PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// How long a sync request may take, answer included, before it fails.
pub const SYNC_REQUEST_TIMEOUT_MS: u64 = 60_000;

/// The largest answer a sync request reads from a peer.
pub const SYNC_ANSWER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest sync request (`POST /sync/{db}/offer`, `/fill`) a node reads,
/// whatever an operator lowered the write limit to: every message a node
/// of this release sends fits (see the checks below), the largest event
/// included.
pub const SYNC_BODY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The largest sync request a node of the first release (wire version 2)
/// reads: its body limit, which no later release can change.
pub const SYNC_V2_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The bytes of a version 2 fill (message 3) besides the data of the one
/// event it carries, when it asks nothing back.
pub const SYNC_V2_FILL_FRAMING_BYTES: usize = 156;

/// The most data an event may hold to be pushed to a node of the first
/// release: a fill carrying it alone fits that node's body limit. A larger
/// event is left out of the pages pushed to it (they still cover it, so its
/// cursor passes it and the events after it flow), and `/peers` says so; it
/// reaches that node only through the node's own pulls.
pub const SYNC_V2_PUSH_EVENT_BYTES_MAX: usize = SYNC_V2_BODY_BYTES_MAX - SYNC_V2_FILL_FRAMING_BYTES;

/// The default time between sync passes with a peer when nothing is written.
pub const SYNC_INTERVAL_MS_DEFAULT: u64 = 1_000;

/// The longest wait before retrying a peer that failed.
pub const SYNC_BACKOFF_MS_MAX: u64 = 60_000;

/// The most rounds one pass runs for one database with one peer, so that a
/// long catch-up also reports its progress between passes.
pub const SYNC_ROUNDS_PER_PASS_MAX: u64 = 1_000;

/// The most bytes of losing values one page of conflicts holds
/// (`GET /db/{db}/conflicts`, and the lists of losers sync exchanges); one id
/// whose losers hold more still comes whole.
pub const CONFLICTS_PAGE_BYTES_MAX: usize = 1024 * 1024;

/// The most losing values a node lists for one id: two values per node that
/// wrote the id is already a misbehaving fleet, and a bound keeps a page of
/// conflicts (which holds whole ids) bounded.
pub const LOSERS_PER_ID_MAX: usize = 64;

/// The most bytes of losing values a node lists for one id (two of the
/// largest events): a page of conflicts holds whole ids, and a sync message
/// carrying one must fit what a peer reads.
pub const LOSER_BYTES_PER_ID_MAX: usize = 2 * EVENT_BYTES_MAX;

/// The most events and losing values one merge takes: a sync message's
/// page of events and a page of a list of losers.
pub const MERGE_ITEMS_MAX: usize = SYNC_PAGE_EVENTS_MAX + SYNC_LOSER_ROWS_MAX;

/// The most runs of its log a node remembers as held by one peer (events
/// that came from it, not sent back); beyond it the oldest are forgotten
/// and their ids offered once more.
pub const SYNC_HELD_RUNS_MAX: usize = 64;

/// How long a node holds back its pushes to a peer after that peer's offer
/// said it pulls in bulk (it is catching up, and its own pulls carry the
/// same events); each such offer renews it, one that does not ends it.
pub const SYNC_BULK_PULL_HOLD_MS: u64 = 5_000;

/// How long a peer's watch (`GET /sync/watch`) stays silent before it
/// sends a heartbeat; a watcher that hears nothing for
/// `SYNC_WATCH_SILENCE_MAX` heartbeats takes the watch for dead.
pub const SYNC_WATCH_HEARTBEAT_MS: u64 = 5_000;

/// Heartbeats a watcher may miss before it takes the watch for dead, opens
/// it again and syncs every interval meanwhile.
pub const SYNC_WATCH_SILENCE_MAX: u32 = 3;

/// The longest wait before a watcher opens a watch again (it starts at the
/// sync interval and doubles): a peer of the first release, which has no
/// watches, is asked again this often.
pub const SYNC_WATCH_RETRY_MS_MAX: u64 = 60_000;

/// The most bytes of one watch message a watcher reads; a longer one ends
/// the watch as malformed.
pub const SYNC_WATCH_MESSAGE_BYTES_MAX: usize = 4_096;

/// The most watches a node serves at once, counted apart from ordinary
/// connections and live streams: a hub's trucks each hold one. One more
/// answers `503 unavailable`, and its peer syncs every interval instead.
pub const SYNC_WATCHES_MAX: usize = 4_096;

/// While a peer's watch is open, the time between two safety-net rounds
/// (one database at a time, in turn), by default: rounds run when the
/// watch says something changed, and these catch whatever a notice could
/// have missed, at a cost that does not grow with the number of
/// databases.
pub const SYNC_SAFETY_NET_MS_DEFAULT: u64 = 5_000;

/// The most peers that dial in a node shows on `/status`; beyond it the
/// one heard from longest ago is forgotten.
pub const SYNC_CALLERS_MAX: usize = 1_024;

/// A peer that dials in and holds no watch is `retrying` once silent this
/// long, and `failing` once silent `PEER_FAILING_PASSES` times this long.
pub const SYNC_CALLER_SILENCE_MS: u64 = 10_000;

/// The most peers a database remembers runs and list reads for; beyond it
/// one is forgotten, which costs it one more offer of ids.
pub const SYNC_PEERS_RECALLED_MAX: usize = 1_024;

/// The most times the sync worker of one peer is restarted after crashing
/// within one `RESTART_WINDOW_MS`.
pub const SYNC_WORKER_RESTARTS_MAX: u32 = 100;

/// The epochs a database remembers (one per open of its node); a peer's
/// cursor into a forgotten epoch starts over, which is safe, only slower.
pub const EPOCHS_MAX: usize = 256;

/// Events an ordered view (a custom fold) folds into a key between two
/// checkpoints of its state: a backdated event refolds at most this many
/// events plus the key's events newer than it.
pub const VIEW_CHECKPOINT_EVENTS: u32 = 64;

const _: () = assert!(
    VIEW_KEY_BYTES_MAX < u16::MAX as usize,
    "a view key's length is stored in 16 bits"
);

/// Index entries (or checkpoints) of one key a refold reads at a time, so
/// that a backdated event into a long history never loads the key's whole
/// index at once.
pub const VIEW_REFOLD_PAGE_ENTRIES: usize = 256;

/// Rewritten events (a conflict's winner replaced bytes a view folded) one
/// refold by key takes. A custom fold refolds more a batch at a time; an
/// order-insensitive view, which reads the whole log to refold its keys,
/// rebuilds from nothing instead: one read of the log either way.
pub const VIEW_REWRITES_REFOLD_MAX: usize = 1_024;

/// The most events a view folds in one step (one atomic write of its rows),
/// so that queries are answered between steps of a long catch-up.
pub const VIEW_FOLD_EVENTS_MAX: usize = 10_000;

/// The most bytes of events a view reads from the log at once: one step of
/// its fold, or one page of a refold by scan (at least one event, whatever
/// its size).
pub const VIEW_FOLD_BYTES_MAX: usize = 8 * 1024 * 1024;

/// The longest key a view groups by, in bytes: an event whose key is longer
/// is skipped and counted, as one that does not decode.
pub const VIEW_KEY_BYTES_MAX: usize = 1024;

/// How long a view query waits for the view to reach the database's
/// logical clock (read-your-writes) before it answers `unavailable`; a view
/// rebuilding from its events may take longer.
pub const VIEW_QUERY_WAIT_MS: u64 = 5_000;

/// The most queries waiting on one view for it to catch up.
pub const VIEW_QUERIES_WAITING_MAX: usize = 1_024;

/// Rows a view read without `limit` reads (and sends) at a time, from one
/// snapshot: its answer streams, so memory stays bounded however many rows.
pub const VIEW_STREAM_PAGE_ROWS: usize = 256;

/// About the most bytes of stored rows one page of a streamed view read
/// holds.
pub const VIEW_STREAM_PAGE_BYTES: usize = 1024 * 1024;

/// Pages of rows (as JSON) a streamed view read keeps ready for a slow
/// reader.
pub const VIEW_STREAM_PAGES_BUFFERED: usize = 2;

/// The room among the answers held that a streamed view read holds while
/// it lasts: the pages it keeps ready, the one it reads and the one being
/// written, about [`VIEW_STREAM_PAGE_BYTES`] each.
pub const VIEW_STREAM_BYTES_HELD: usize = (VIEW_STREAM_PAGES_BUFFERED + 2) * VIEW_STREAM_PAGE_BYTES;

/// The most rows one page of a view read returns when `limit` is given.
pub const VIEW_PAGE_ROWS_MAX: usize = 10_000;

/// The most times a crashed view actor is restarted within one
/// `RESTART_WINDOW_MS`.
pub const VIEW_RESTARTS_MAX: u32 = 100;

/// fjall's block cache.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The bounds an operator may lower when a node starts (never raise past
/// the constants above, which the rest of the code is sized for).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The most events one append may carry; at most [`BATCH_EVENTS_MAX`].
    pub batch_events_max: usize,
    /// The largest request body read; at most [`BODY_BYTES_MAX`].
    pub body_bytes_max: usize,
    /// The page size of a read that names no limit; at most `page_events_max`.
    pub page_events_default: usize,
    /// The most events one page returns; at most [`PAGE_EVENTS_MAX`].
    pub page_events_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            batch_events_max: BATCH_EVENTS_MAX,
            body_bytes_max: BODY_BYTES_MAX,
            page_events_default: PAGE_EVENTS_DEFAULT,
            page_events_max: PAGE_EVENTS_MAX,
        }
    }
}

impl Limits {
    /// The limits if each lies between 1 and its ceiling, and the default
    /// page within the largest; otherwise what is wrong.
    pub fn validate(self) -> Result<Limits, String> {
        let within = |name: &str, value: usize, ceiling: usize| {
            if (1..=ceiling).contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "{name} must lie between 1 and {ceiling}, not {value}"
                ))
            }
        };
        within("batch_events_max", self.batch_events_max, BATCH_EVENTS_MAX)?;
        within("body_bytes_max", self.body_bytes_max, BODY_BYTES_MAX)?;
        within("page_events_max", self.page_events_max, PAGE_EVENTS_MAX)?;
        within(
            "page_events_default",
            self.page_events_default,
            self.page_events_max,
        )?;
        Ok(self)
    }
}

const fn larger(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

// The sync encoding's framing (`sync::wire`, whose tests hold it to these):
// the bytes each item of a message costs besides its data.

/// An event in a sync message: id, `recorded_at`, length.
pub const SYNC_EVENT_FRAMING_BYTES: usize = 16 + 8 + 4;

/// An id in a list of a sync message (missing, wanted).
pub const SYNC_ID_BYTES: usize = 16;

/// An id with its digest in a page of ids.
pub const SYNC_ID_DIGEST_BYTES: usize = 16 + 8;

/// A losing value in a page of a list of losers: id, length.
pub const SYNC_LOSER_FRAMING_BYTES: usize = 16 + 4;

/// A held run named in a page.
pub const SYNC_RUN_BYTES: usize = 8 + 8 + 16 + 16;

/// An epoch in a log's summary.
pub const SYNC_EPOCH_BYTES: usize = 16 + 8 + 8;

/// A message's version, counts, flags, cursors and list positions, at most.
pub const SYNC_MESSAGE_FIXED_BYTES_MAX: usize = 512;

/// The most data one sync page's events hold: its budget, or one larger
/// event alone.
pub const SYNC_PAGE_DATA_BYTES_MAX: usize = larger(SYNC_PAGE_BYTES_MAX, EVENT_BYTES_MAX);

/// The most losing values one page of a list of losers in a sync message
/// holds: the page's budget, or its first id whole.
pub const SYNC_LOSER_ROWS_MAX: usize = larger(SYNC_PAGE_EVENTS_MAX, LOSERS_PER_ID_MAX);

/// The most bytes of losing values one page of a list in a sync message
/// holds.
pub const SYNC_LOSER_DATA_BYTES_MAX: usize =
    larger(CONFLICTS_PAGE_BYTES_MAX, LOSER_BYTES_PER_ID_MAX);

const SYNC_EVENTS_PAGE_BYTES_MAX: usize =
    SYNC_PAGE_DATA_BYTES_MAX + SYNC_PAGE_EVENTS_MAX * SYNC_EVENT_FRAMING_BYTES;
const SYNC_LOSERS_PAGE_BYTES_MAX: usize =
    SYNC_LOSER_DATA_BYTES_MAX + SYNC_LOSER_ROWS_MAX * SYNC_LOSER_FRAMING_BYTES;

/// The largest offer (message 1): a summary, a page of ids.
pub const SYNC_OFFER_BYTES_MAX: usize = SYNC_MESSAGE_FIXED_BYTES_MAX
    + EPOCHS_MAX * SYNC_EPOCH_BYTES
    + SYNC_PAGE_EVENTS_MAX * SYNC_ID_DIGEST_BYTES
    + SYNC_HELD_RUNS_MAX * SYNC_RUN_BYTES;

/// The largest reply (message 2): the ids missing, a page of events.
pub const SYNC_REPLY_BYTES_MAX: usize = SYNC_MESSAGE_FIXED_BYTES_MAX
    + SYNC_PAGE_EVENTS_MAX * SYNC_ID_BYTES
    + SYNC_EVENTS_PAGE_BYTES_MAX
    + SYNC_HELD_RUNS_MAX * SYNC_RUN_BYTES;

/// The largest fill (message 3): a page's events, the ids wanted and
/// missing, a page of a list of losers.
pub const SYNC_FILL_BYTES_MAX: usize = SYNC_MESSAGE_FIXED_BYTES_MAX
    + SYNC_EVENTS_PAGE_BYTES_MAX
    + 2 * SYNC_PAGE_EVENTS_MAX * SYNC_ID_BYTES
    + SYNC_LOSERS_PAGE_BYTES_MAX;

/// The largest deliver (message 4): a page's events, a page of a list of
/// losers.
pub const SYNC_DELIVER_BYTES_MAX: usize =
    SYNC_MESSAGE_FIXED_BYTES_MAX + SYNC_EVENTS_PAGE_BYTES_MAX + SYNC_LOSERS_PAGE_BYTES_MAX;

// What a node sends, a peer reads: the largest event a write accepts syncs.
const _: () = assert!(EVENT_BYTES_MAX <= BATCH_BYTES_MAX);
const _: () = assert!(
    SYNC_FILL_BYTES_MAX <= SYNC_BODY_BYTES_MAX,
    "a fill with the largest event and a page of losers fits a peer's sync body limit"
);
const _: () = assert!(
    SYNC_OFFER_BYTES_MAX <= SYNC_V2_BODY_BYTES_MAX,
    "an offer fits the sync body limit of either release"
);
const _: () = assert!(
    SYNC_REPLY_BYTES_MAX <= SYNC_ANSWER_BYTES_MAX,
    "a reply with the largest event fits what a peer reads of an answer"
);
const _: () = assert!(
    SYNC_DELIVER_BYTES_MAX <= SYNC_ANSWER_BYTES_MAX,
    "a deliver with the largest event and a page of losers fits what a peer reads of an answer"
);
const _: () = assert!(SYNC_BODY_BYTES_MAX >= BODY_BYTES_MAX);
// A first-release node takes a fill of a page of several events (without
// lists, which it does not exchange) and one of one event alone up to
// SYNC_V2_PUSH_EVENT_BYTES_MAX; a larger one is left out of pushes to it.
const _: () = assert!(
    SYNC_MESSAGE_FIXED_BYTES_MAX
        + SYNC_PAGE_BYTES_MAX
        + SYNC_PAGE_EVENTS_MAX * (SYNC_EVENT_FRAMING_BYTES + 2 * SYNC_ID_BYTES)
        <= SYNC_V2_BODY_BYTES_MAX,
    "a fill of a page of several events fits a first-release node"
);
const _: () = assert!(SYNC_V2_PUSH_EVENT_BYTES_MAX > SYNC_PAGE_BYTES_MAX);
// A merge takes whatever one sync message brings, within the bytes in flight.
const _: () = assert!(SYNC_PAGE_EVENTS_MAX + SYNC_LOSER_ROWS_MAX <= MERGE_ITEMS_MAX);
const _: () = assert!(BATCH_EVENTS_MAX <= MERGE_ITEMS_MAX);
const _: () = assert!(
    (SYNC_PAGE_DATA_BYTES_MAX + SYNC_LOSER_DATA_BYTES_MAX) / 1024
        <= APPEND_KIB_IN_FLIGHT_MAX as usize
);
const _: () = assert!(LOSER_BYTES_PER_ID_MAX >= EVENT_BYTES_MAX);

const _: () = assert!(BATCH_BYTES_MAX / 1024 <= APPEND_KIB_IN_FLIGHT_MAX as usize);
const _: () = assert!(PAGE_EVENTS_MAX >= BATCH_EVENTS_MAX);
const _: () = assert!(DISK_FULL_FREE_BYTES_MAX >= INDEX_MEMTABLE_BYTES_MAX);
const _: () = assert!(PAGE_EVENTS_DEFAULT <= PAGE_EVENTS_MAX);
const _: () = assert!(
    PAGE_BYTES_MAX >= 2 * 1024 * 1024,
    "the contract promises pages of at least a few MiB"
);
const _: () = assert!(BODY_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!(ID_COUNTER_BITS > 0 && ID_COUNTER_BITS < 80);
const _: () = assert!(EVENT_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!(
    ANSWER_BYTES_HELD_MAX <= u32::MAX as usize,
    "room among the answers held is taken in one semaphore call"
);
const _: () = assert!(ANSWER_BYTES_HELD_MAX >= 8 * (EVENT_BYTES_MAX + EVENT_BYTES_MAX / 3));
const _: () = assert!(ANSWER_BYTES_HELD_MAX >= 16 * VIEW_STREAM_BYTES_HELD);
const _: () = assert!(ANSWER_CHUNK_BYTES <= ANSWER_UNCOUNTED_BYTES_MAX);
