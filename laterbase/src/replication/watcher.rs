//! A watcher: holds a peer's watch (`watch.rs`) open, keeps where the
//! peer's databases stand, and wakes its sync worker when one moves. While
//! the watch is down it opens it again, waiting longer each time it fails
//! (a peer of the first release has none, and is asked again at most every
//! [`SYNC_WATCH_RETRY_MS_MAX`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::BodyExt;

use super::transport::{HttpTransport, PeerConnector};
use super::watch::{Message, WATCH_PATH};
use crate::actors::database::sync::Standing;
use crate::event::EventId;
use crate::limits::{
    DATABASES_MAX, SYNC_WATCH_HEARTBEAT_MS, SYNC_WATCH_MESSAGE_BYTES_MAX, SYNC_WATCH_RETRY_MS_MAX,
    SYNC_WATCH_SILENCE_MAX,
};

/// What a watcher knows of its peer, shared with the worker.
#[derive(Debug, Default)]
pub(crate) struct PeerWatch {
    view: Mutex<WatchView>,
}

/// A peer as its open watch shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WatchView {
    /// Whether the watch is open and has named every database.
    open: bool,
    /// The node that answered the watch.
    pub(crate) node: Option<EventId>,
    /// The sync wire version it speaks, as it says.
    pub(crate) version: Option<u8>,
    /// Where each of its databases stands, as last told.
    pub(crate) standings: BTreeMap<String, Standing>,
}

impl PeerWatch {
    /// The peer as its watch shows it, if the watch is open.
    pub(crate) fn open(&self) -> Option<WatchView> {
        let view = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        view.open.then(|| view.clone())
    }

    /// Whether the watch is open.
    pub(crate) fn is_open(&self) -> bool {
        self.view
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
    }

    fn set(&self, change: impl FnOnce(&mut WatchView)) {
        change(&mut self.view.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

/// Wakes the worker: a pass runs soon, unless one is already due.
pub(crate) type Nudge = Arc<dyn Fn() + Send + Sync>;

/// Holds the watch of the peer `transport` reaches open for as long as the
/// task runs, reopening it after `interval` (doubling while it fails).
pub(crate) async fn watch_peer(
    transport: HttpTransport<PeerConnector>,
    watch: Arc<PeerWatch>,
    nudge: Nudge,
    interval: Duration,
    url: String,
) {
    let first_wait = interval.max(Duration::from_millis(100));
    let mut wait = first_wait;
    let mut refused_before = false;
    loop {
        match transport.open_stream(WATCH_PATH).await {
            Err(error) => {
                if !refused_before {
                    tracing::info!(peer = %url, %error, "the peer's watch could not be opened; syncing with it every interval until it can");
                    refused_before = true;
                }
            }
            Ok((node, version, body)) => {
                let ended = read(body, &watch, node, version, &nudge).await;
                let was_open = watch.is_open();
                watch.set(|view| view.open = false);
                // Every database is due again: a pass runs at once.
                nudge();
                if was_open {
                    wait = first_wait;
                    refused_before = false;
                    tracing::info!(peer = %url, reason = %ended, "the peer's watch ended; opening it again");
                } else {
                    tracing::info!(peer = %url, reason = %ended, "the peer's watch ended before it was ready");
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(SYNC_WATCH_RETRY_MS_MAX));
    }
}

/// Reads a watch until it ends, and says why it ended.
async fn read(
    mut body: hyper::body::Incoming,
    watch: &PeerWatch,
    node: Option<EventId>,
    version: Option<u8>,
    nudge: &Nudge,
) -> String {
    let silence =
        Duration::from_millis(SYNC_WATCH_HEARTBEAT_MS * u64::from(SYNC_WATCH_SILENCE_MAX));
    let mut buffer: Vec<u8> = Vec::new();
    // The standings named before `ready`, then taken whole.
    let mut named: Option<BTreeMap<String, Standing>> = Some(BTreeMap::new());
    loop {
        let frame = match tokio::time::timeout(silence, body.frame()).await {
            Err(_) => return format!("silent for {} ms", silence.as_millis()),
            Ok(None) => return "the peer ended it".to_owned(),
            Ok(Some(Err(error))) => return format!("reading it failed: {error}"),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buffer.extend_from_slice(&data);
        while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
            let message: Vec<u8> = buffer.drain(..end + 2).collect();
            let Ok(text) = std::str::from_utf8(&message) else {
                return "a message is not UTF-8".to_owned();
            };
            let message = match Message::parse(text.trim_end_matches('\n')) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(error) => return error,
            };
            match (message, named.as_mut()) {
                (Message::Notice(notice), Some(named)) => {
                    if named.len() >= DATABASES_MAX && !named.contains_key(&notice.db) {
                        return format!("the peer named more than {DATABASES_MAX} databases");
                    }
                    named.insert(notice.db, notice.standing);
                }
                (Message::Notice(notice), None) => {
                    watch.set(|view| {
                        if view.standings.len() < DATABASES_MAX
                            || view.standings.contains_key(&notice.db)
                        {
                            view.standings.insert(notice.db, notice.standing);
                        }
                    });
                    nudge();
                }
                (Message::Ready, Some(_)) => {
                    let standings = named.take().unwrap_or_default();
                    watch.set(|view| {
                        *view = WatchView {
                            open: true,
                            node,
                            version,
                            standings,
                        };
                    });
                    nudge();
                }
                (Message::Ready | Message::Heartbeat, _) => {}
            }
        }
        if buffer.len() > SYNC_WATCH_MESSAGE_BYTES_MAX {
            return format!("a message is longer than {SYNC_WATCH_MESSAGE_BYTES_MAX} bytes");
        }
    }
}
