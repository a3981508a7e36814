//! What the HTTP layer serves from: the node, its replication, the token,
//! the metrics, the backup directory, the room for answers, the live
//! streams and the address it is served on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use super::access::{Access, Grant};
use super::backup::BackupDir;
use super::held::AnswerRoom;
use super::live::LiveStreams;
use crate::actors::Node;
use crate::limits::{ANSWER_BYTES_HELD_MAX, LIVE_STREAMS_MAX_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT};
use crate::replication::{Callers, Replication};

/// What the HTTP layer serves from.
#[derive(Clone)]
pub struct HttpState {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    /// The tokens the node knows; none leaves every route open.
    access: Access,
    /// Renders `/metrics`; `None` answers an empty exposition.
    metrics: Option<PrometheusHandle>,
    request_timeout: Duration,
    /// Where `POST /admin/backup` may write; `None` turns the route off.
    backup_dir: Option<BackupDir>,
    /// The room shared by the answers not yet written.
    answers: Arc<AnswerRoom>,
    /// What `/peers` shows; `None` (no peers) answers an empty list.
    replication: Option<Replication>,
    /// The live streams open, and the signal that ends them.
    live: Arc<LiveStreams>,
    /// The peers that dial this node.
    callers: Callers,
    /// The address the server listens on, as `/status` shows it.
    listen: Option<SocketAddr>,
}

impl HttpState {
    /// Serves `node`, open to everyone, with the default request timeout.
    pub fn new(node: Node) -> HttpState {
        HttpState {
            inner: Arc::new(Inner {
                access: Access::open(),
                metrics: None,
                request_timeout: Duration::from_millis(REQUEST_TIMEOUT_MS_DEFAULT),
                backup_dir: None,
                answers: Arc::new(AnswerRoom::new(ANSWER_BYTES_HELD_MAX)),
                replication: None,
                live: Arc::new(LiveStreams::new(LIVE_STREAMS_MAX_DEFAULT)),
                callers: Callers::new(node.clock()),
                node,
                listen: None,
            }),
        }
    }

    fn with(self, change: impl FnOnce(&mut Inner)) -> HttpState {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            node: shared.node.clone(),
            access: shared.access.clone(),
            metrics: shared.metrics.clone(),
            request_timeout: shared.request_timeout,
            backup_dir: shared.backup_dir.clone(),
            answers: shared.answers.clone(),
            replication: shared.replication.clone(),
            live: shared.live.clone(),
            callers: shared.callers.clone(),
            listen: shared.listen,
        });
        change(&mut inner);
        HttpState {
            inner: Arc::new(inner),
        }
    }

    /// Requires `Authorization: Bearer <token>` on every route but
    /// `/healthz` and the dashboard's page: one token with every scope on
    /// every database (`None`: open to all).
    pub fn token(self, token: Option<String>) -> HttpState {
        let access = match token {
            Some(token) => Access::grants(vec![Grant::everything(&token)]),
            None => Access::open(),
        };
        self.access(access)
    }

    /// Holds every request to `access`: the tokens the node knows, each
    /// with its scopes (`docs/http.md`, "Access").
    pub fn access(self, access: Access) -> HttpState {
        self.with(|inner| inner.access = access)
    }

    /// Renders `/metrics` from this recorder's handle.
    pub fn metrics(self, handle: PrometheusHandle) -> HttpState {
        self.with(|inner| inner.metrics = Some(handle))
    }

    /// How long one request may take before it answers 503.
    pub fn request_timeout(self, timeout: Duration) -> HttpState {
        self.with(|inner| inner.request_timeout = timeout)
    }

    /// Lets `POST /admin/backup` write new directories under `dir` (default:
    /// none, and the route answers `404 not_found`).
    pub fn backup_dir(self, dir: Option<BackupDir>) -> HttpState {
        self.with(|inner| inner.backup_dir = dir)
    }

    /// Lowers the room for answers built and not yet written, over every
    /// connection (default and ceiling: [`ANSWER_BYTES_HELD_MAX`]); a read
    /// that finds none within `ANSWER_HOLD_WAIT_MS` answers 503.
    pub fn answer_bytes_held_max(self, bytes: usize) -> HttpState {
        self.with(|inner| inner.answers = Arc::new(AnswerRoom::new(bytes)))
    }

    /// Shows the peers of `replication` on `/peers`.
    pub fn replication(self, replication: Replication) -> HttpState {
        self.with(|inner| inner.replication = Some(replication))
    }

    /// How many live streams (`feed=live`) may be open at once (default
    /// [`LIVE_STREAMS_MAX_DEFAULT`]); one more answers `503 unavailable`.
    pub fn live_streams_max(self, streams: usize) -> HttpState {
        self.with(|inner| inner.live = Arc::new(LiveStreams::new(streams)))
    }

    /// Names `address` as where the server listens, on `/status` (default:
    /// `null`, for a router served by an application that does not say).
    pub fn listen(self, address: SocketAddr) -> HttpState {
        self.with(|inner| inner.listen = Some(address))
    }

    /// Ends every live stream, and refuses new ones: for a server that
    /// stops, whose graceful drain would otherwise wait on streams that do
    /// not end.
    pub fn end_live_streams(&self) {
        self.inner.live.end();
    }

    pub(super) fn live(&self) -> &LiveStreams {
        &self.inner.live
    }

    /// The live streams open now, and the most that may be.
    pub(super) fn live_streams(&self) -> (usize, usize) {
        self.inner.live.counts()
    }

    pub(super) fn listen_address(&self) -> Option<SocketAddr> {
        self.inner.listen
    }

    pub(crate) fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The peers that dial this node, as its answers to them saw them.
    pub fn callers(&self) -> &Callers {
        &self.inner.callers
    }

    pub(super) fn replicating(&self) -> Option<&Replication> {
        self.inner.replication.as_ref()
    }

    pub(super) fn metrics_handle(&self) -> Option<&PrometheusHandle> {
        self.inner.metrics.as_ref()
    }

    pub(super) fn tokens(&self) -> &Access {
        &self.inner.access
    }

    pub(super) fn timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    pub(super) fn backups(&self) -> Option<&BackupDir> {
        self.inner.backup_dir.as_ref()
    }

    pub(crate) fn answers(&self) -> &Arc<AnswerRoom> {
        &self.inner.answers
    }
}
