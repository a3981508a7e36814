//! How a node replicates, what it shows of each peer, and what the
//! supervisor and its workers share.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::driver::Flow;
use super::transport::PeerConnector;
use crate::actors::Node;
use crate::clock::{Clock, Random};
use crate::event::{EventId, Timestamp};
use crate::limits::{
    PEER_FAILING_PASSES, SYNC_BACKOFF_MS_MAX, SYNC_INTERVAL_MS_DEFAULT, SYNC_REQUEST_TIMEOUT_MS,
    SYNC_SAFETY_NET_MS_DEFAULT,
};

/// How a node replicates: its peers, the interval, and the shared token.
#[derive(Clone, Debug)]
pub struct ReplicationConfig {
    /// The peers, each with the databases and the direction synced with it.
    pub peers: Vec<Peer>,
    /// The time between passes when nothing is written.
    pub interval: Duration,
    /// The token presented to every peer that names none of its own.
    pub token: Option<String>,
    /// How connections to peers are made: TCP, or a simulated network.
    pub connector: PeerConnector,
    /// The longest wait before retrying a peer that failed.
    pub backoff_max: Duration,
    /// How long one sync request may take, answer included.
    pub request_timeout: Duration,
    /// While a peer's watch is open, the time between two safety-net
    /// rounds, one database at a time in turn.
    pub safety_net: Duration,
}

impl ReplicationConfig {
    /// Replication with the peers at the base URLs `peers`, every database
    /// both ways, over TCP, every
    /// [`SYNC_INTERVAL_MS_DEFAULT`](SYNC_INTERVAL_MS_DEFAULT)
    /// and soon after each write, without a token.
    pub fn new(peers: Vec<String>) -> ReplicationConfig {
        ReplicationConfig {
            peers: peers.into_iter().map(Peer::new).collect(),
            interval: Duration::from_millis(SYNC_INTERVAL_MS_DEFAULT),
            token: None,
            connector: PeerConnector::tcp(),
            backoff_max: Duration::from_millis(SYNC_BACKOFF_MS_MAX),
            request_timeout: Duration::from_millis(SYNC_REQUEST_TIMEOUT_MS),
            safety_net: Duration::from_millis(SYNC_SAFETY_NET_MS_DEFAULT),
        }
    }
}

/// A peer this node dials, and what it syncs with it.
#[derive(Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its base URL (`http://` or `https://`).
    pub url: String,
    /// The databases synced with it: names, or globs where `*` stands for
    /// any run of characters. Outside them, this node neither sends nor
    /// takes anything, nor creates a database on either side.
    pub databases: Vec<String>,
    /// The token presented to it; `None`: the configuration's shared
    /// [`token`](ReplicationConfig::token), if any.
    pub token: Option<String>,
    /// Which way events go.
    pub flow: Flow,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Peer")
            .field("url", &self.url)
            .field("databases", &self.databases)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("flow", &self.flow)
            .finish()
    }
}

impl Peer {
    /// The peer at `url`: every database, both ways, the shared token.
    pub fn new(url: impl Into<String>) -> Peer {
        Peer {
            url: url.into(),
            databases: vec!["*".to_owned()],
            token: None,
            flow: Flow::Both,
        }
    }

    /// Whether the database `name` is synced with this peer.
    pub fn syncs(&self, name: &str) -> bool {
        self.databases
            .iter()
            .any(|glob| crate::event::glob_matches(glob, name))
    }
}

/// Which way a peer's connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// This node dials the peer (`--peer`).
    Out,
    /// The peer dials this node (a truck behind NAT, to its hub).
    In,
}

impl Direction {
    /// `out` or `in`, as `/status` says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
        }
    }
}

/// How far two nodes are apart, in events, as the last rounds showed,
/// summed over databases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lag {
    /// Events of the peer this node has not pulled yet.
    pub to_pull: u64,
    /// Events of this node the peer has not pulled yet.
    pub to_push: u64,
}

impl<'a> std::iter::Sum<&'a Lag> for Lag {
    fn sum<I: Iterator<Item = &'a Lag>>(lags: I) -> Lag {
        lags.fold(Lag::default(), |sum, lag| Lag {
            to_pull: sum.to_pull.saturating_add(lag.to_pull),
            to_push: sum.to_push.saturating_add(lag.to_push),
        })
    }
}

/// How a peer's sync goes, as `/status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// The last pass succeeded (or, for a peer that dials in, it is in
    /// touch).
    Ok,
    /// 1 to [`PEER_FAILING_PASSES`]` - 1` passes failed in a row, or none has run
    /// yet.
    Retrying,
    /// [`PEER_FAILING_PASSES`] or more failed in a row.
    Failing,
}

impl PeerState {
    /// `ok`, `retrying` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Ok => "ok",
            PeerState::Retrying => "retrying",
            PeerState::Failing => "failing",
        }
    }

    /// The state after `failures` failed passes in a row, of a peer that
    /// `reached` (at least once).
    pub fn of(failures: u32, reached: bool) -> PeerState {
        match failures {
            0 if reached => PeerState::Ok,
            failures if failures >= PEER_FAILING_PASSES => PeerState::Failing,
            _ => PeerState::Retrying,
        }
    }
}

/// What `/peers` and `/status` show of one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Whether this node dials the peer or the peer dials in.
    pub direction: Direction,
    /// Its base URL (a peer this node dials) or its address (one that dials
    /// in).
    pub url: String,
    /// Its node id, once a pass has learnt it.
    pub node: Option<EventId>,
    /// When the last pass that reached it ended.
    pub last_sync: Option<Timestamp>,
    /// The error of the last pass, if it failed.
    pub last_error: Option<String>,
    /// Passes that failed in a row since the last that succeeded (for a
    /// peer that dials in: rounds this node could not answer, and
    /// stretches of silence, see `docs/sync.md`).
    pub failures: u32,
    /// How far apart the two nodes are, once a round has shown it.
    pub lag: Option<Lag>,
    /// Whether the peer tells this node of its writes as they happen (a
    /// watch is open), so that rounds run only when something changed.
    pub watching: bool,
    /// Events left out of the pages pushed to the peer since the node
    /// started, because the peer cannot take them (a node of the first
    /// release reads smaller sync requests).
    pub unsent: u64,
    /// The last of them, said for a person: the database, the event, its
    /// size and the limit.
    pub last_unsent: Option<String>,
    /// The sync wire version spoken with it, once a pass has met it (a peer
    /// of the first release speaks 2).
    pub wire_version: Option<u8>,
}

impl PeerStatus {
    /// A peer nothing is known of yet.
    pub(crate) fn new(direction: Direction, url: String) -> PeerStatus {
        PeerStatus {
            direction,
            url,
            node: None,
            last_sync: None,
            last_error: None,
            failures: 0,
            lag: None,
            watching: false,
            unsent: 0,
            last_unsent: None,
            wire_version: None,
        }
    }

    /// `ok`, `retrying` or `failing`.
    pub fn state(&self) -> PeerState {
        PeerState::of(self.failures, self.last_sync.is_some())
    }
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
