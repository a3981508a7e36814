//! How a node replicates, what it shows of each peer, and what the
//! supervisor and its workers share.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::transport::PeerConnector;
use crate::actors::Node;
use crate::clock::{Clock, Random};
use crate::event::{EventId, Timestamp};
use crate::limits::{SYNC_BACKOFF_MS_MAX, SYNC_INTERVAL_MS_DEFAULT, SYNC_REQUEST_TIMEOUT_MS};

/// How a node replicates: its peers, the interval, and the shared token.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// The peers' base URLs.
    pub peers: Vec<String>,
    /// The time between passes when nothing is written.
    pub interval: Duration,
    /// The access token peers require, if any.
    pub token: Option<String>,
    /// How connections to peers are made: TCP, or a simulated network.
    pub connector: PeerConnector,
    /// The longest wait before retrying a peer that failed.
    pub backoff_max: Duration,
    /// How long one sync request may take, answer included.
    pub request_timeout: Duration,
}

impl ReplicationConfig {
    /// Replication with `peers` over TCP, every
    /// [`SYNC_INTERVAL_MS_DEFAULT`](SYNC_INTERVAL_MS_DEFAULT)
    /// and soon after each write, without a token.
    pub fn new(peers: Vec<String>) -> ReplicationConfig {
        ReplicationConfig {
            peers,
            interval: Duration::from_millis(SYNC_INTERVAL_MS_DEFAULT),
            token: None,
            connector: PeerConnector::tcp(),
            backoff_max: Duration::from_millis(SYNC_BACKOFF_MS_MAX),
            request_timeout: Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS),
        }
    }
}

/// What `/peers` shows of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its base URL.
    pub url: String,
    /// Its node id, once a pass has learnt it.
    pub node: Option<EventId>,
    /// When the last pass that reached it ended.
    pub last_sync: Option<Timestamp>,
    /// The error of the last pass, if it failed.
    pub last_error: Option<String>,
    /// Passes that failed in a row since the last that succeeded.
    pub failures: u32,
    /// Events left out of the pages pushed to the peer since the node
    /// started, because the peer cannot take them (a node of the first
    /// release reads smaller sync requests).
    pub unsent: u64,
    /// The last of them, said for a person: the database, the event, its
    /// size and the limit.
    pub last_unsent: Option<String>,
}

/// The status of every peer, written by the workers, read by
/// [`Replication::peers`](super::Replication::peers).
pub(crate) type PeerStatuses = Arc<RwLock<Vec<PeerStatus>>>;

/// What the supervisor and every worker share: the node they sync, how,
/// and where they report.
pub(crate) struct Shared {
    pub(crate) node: Node,
    pub(crate) config: ReplicationConfig,
    pub(crate) statuses: PeerStatuses,
    /// Counts the node's commits that changed something: a worker syncs
    /// soon after a write.
    pub(crate) commits: watch::Receiver<u64>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) random: Arc<Random>,
}
