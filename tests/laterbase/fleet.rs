//! A fleet's access rules, between real nodes over loopback: sync obeys
//! the scopes of the token a peer presents, both ways; a peer table limits
//! the databases and the direction synced; TLS with a fleet's own CA, a
//! certificate that does not verify failing the round (never a fall back to
//! plain HTTP), and garbage sent to a TLS listener closing only that
//! connection.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use laterbase::http::{Access, Grant, HttpState, Scope, router};
use laterbase::replication::transport::PeerConnector;
use laterbase::replication::{Flow, PeerState};
use laterbase::server::tls::{TlsListener, server_config};
use laterbase::{Config, Database, EventId, NewEvent, Node, Peer, Replication, ReplicationConfig};

/// A node serving on a loopback port.
struct Served {
    node: Node,
    state: HttpState,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// A node in memory, held to `access`, serving HTTPS with `tls` if
    /// given (its URL then names `localhost`, as its certificate does).
    async fn start(access: Access, tls: Option<Arc<rustls::ServerConfig>>) -> Served {
        let node = Node::open(Config::in_memory()).await.expect("open");
        let state = HttpState::new(node.clone()).access(access);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = tcp.local_addr().expect("address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let routes = router(state.clone());
        let (url, task) = match tls {
            Some(config) => (
                format!("https://localhost:{port}"),
                tokio::spawn(laterbase::server::serve(
                    TlsListener::new(tcp, config),
                    routes,
                    stopped,
                )),
            ),
            None => (
                format!("http://127.0.0.1:{port}"),
                tokio::spawn(laterbase::server::serve(tcp, routes, stopped)),
            ),
        };
        Served {
            node,
            state,
            url,
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.state.end_live_streams();
        let _ = self.stop.send(());
        self.task.await.expect("server task");
        self.node.shutdown().await.expect("shutdown");
    }
}

/// Replication with one peer, quick to retry.
fn with_peer(peer: Peer, connector: PeerConnector) -> ReplicationConfig {
    ReplicationConfig {
        peers: vec![peer],
        connector,
        interval: Duration::from_millis(50),
        backoff_max: Duration::from_millis(200),
        ..ReplicationConfig::new(Vec::new())
    }
}

async fn write(database: &Database, id: EventId) {
    database
        .append(vec![NewEvent::with_id(id, b"{\"gate\":1}".to_vec())])
        .await
        .expect("write");
}

fn id(n: u128) -> EventId {
    EventId::from_parts(1_700_000_000_000, n)
}

async fn ids(node: &Node, name: &str) -> BTreeSet<EventId> {
    let Ok(database) = node.database(name) else {
        return BTreeSet::new();
    };
    let page = database.changes(0, 10_000).await.expect("changes");
    page.events.iter().map(|event| event.id).collect()
}

/// Waits until `done` holds, within a generous deadline.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the one peer of `replication` has failed `passes` passes
/// in a row; its last error.
async fn failed(replication: &Replication, passes: u32) -> String {
    until("failed passes", || async {
        replication.peers()[0].failures >= passes
    })
    .await;
    replication.peers()[0]
        .last_error
        .clone()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_token_may_only_read_cannot_push_into_the_database() {
    let hub = Served::start(
        Access::grants(vec![
            Grant::token("look").scopes([Scope::Read]),
            Grant::everything("all"),
        ]),
        None,
    )
    .await;
    hub.node.create_database("yard").await.expect("create");
    let truck = Node::open(Config::in_memory()).await.expect("open");
    let yard = truck.create_database("yard").await.expect("create");
    write(&yard, id(1)).await;
    let peer = Peer {
        token: Some("look".to_owned()),
        ..Peer::new(hub.url.clone())
    };
    let replication = truck
        .replicate(with_peer(peer, PeerConnector::tcp()))
        .await
        .expect("replicate");
    let error = failed(&replication, 2).await;
    assert!(
        error.contains("403") && error.contains("forbidden"),
        "{error}"
    );
    assert_eq!(replication.peers()[0].state(), PeerState::Retrying);
    assert!(ids(&hub.node, "yard").await.is_empty());
    assert_eq!(hub.node.databases(), vec!["yard".to_owned()]);
    truck.shutdown().await.expect("shutdown");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truck_that_dials_its_hub_syncs_within_the_scopes_of_its_token() {
    let hub = Served::start(
        Access::grants(vec![
            Grant::token("t17")
                .databases(["truck-17", "routes"])
                .scopes([Scope::Sync]),
        ]),
        None,
    )
    .await;
    for name in ["routes", "truck-18"] {
        let database = hub.node.create_database(name).await.expect("create");
        write(&database, id(if name == "routes" { 10 } else { 18 })).await;
    }
    let truck = Node::open(Config::in_memory()).await.expect("open");
    let own = truck.create_database("truck-17").await.expect("create");
    write(&own, id(17)).await;
    // The truck's table names every database: what it sees of the hub
    // (its list, its watch) is what the token may sync.
    let peer = Peer {
        token: Some("t17".to_owned()),
        ..Peer::new(hub.url.clone())
    };
    let replication = truck
        .replicate(with_peer(peer, PeerConnector::tcp()))
        .await
        .expect("replicate");
    until("the truck's events reach the hub", || async {
        ids(&hub.node, "truck-17").await.contains(&id(17))
    })
    .await;
    until("the hub's routes reach the truck", || async {
        ids(&truck, "routes").await.contains(&id(10))
    })
    .await;
    until("the watch is open", || async {
        replication.peers()[0].watching
    })
    .await;
    // A new write on the hub, within the scopes, comes over the watch.
    let routes = hub.node.database("routes").expect("there");
    write(&routes, id(11)).await;
    until("the hub's new write reaches the truck", || async {
        ids(&truck, "routes").await.contains(&id(11))
    })
    .await;
    let peer = &replication.peers()[0];
    assert_eq!(peer.state(), PeerState::Ok, "{peer:?}");
    // What the token does not cover never reached the truck.
    assert!(truck.database("truck-18").is_err());
    let mut names = truck.databases();
    names.sort();
    assert_eq!(names, vec!["routes".to_owned(), "truck-17".to_owned()]);
    truck.shutdown().await.expect("shutdown");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_table_limits_the_databases_and_the_direction_synced() {
    for flow in [Flow::Push, Flow::Pull, Flow::Both] {
        let hub = Served::start(Access::open(), None).await;
        let hub_yard = hub.node.create_database("yard").await.expect("create");
        let hub_only = hub.node.create_database("depot").await.expect("create");
        write(&hub_yard, id(1)).await;
        write(&hub_only, id(2)).await;
        let truck = Node::open(Config::in_memory()).await.expect("open");
        let truck_yard = truck.create_database("yard").await.expect("create");
        let truck_only = truck.create_database("cab").await.expect("create");
        let unlisted = truck.create_database("private").await.expect("create");
        write(&truck_yard, id(3)).await;
        write(&truck_only, id(4)).await;
        write(&unlisted, id(5)).await;
        let peer = Peer {
            databases: vec!["yard".to_owned(), "cab".to_owned(), "depot".to_owned()],
            flow,
            ..Peer::new(hub.url.clone())
        };
        let replication = truck
            .replicate(with_peer(peer, PeerConnector::tcp()))
            .await
            .expect("replicate");
        // Whichever way events go, they get there; then a few more passes
        // run, in which nothing may go the other way.
        if flow.sends() {
            until("the truck's yard reaches the hub", || async {
                ids(&hub.node, "yard").await.contains(&id(3))
                    && ids(&hub.node, "cab").await.contains(&id(4))
            })
            .await;
        }
        if flow.takes() {
            until("the hub's yard reaches the truck", || async {
                ids(&truck, "yard").await.contains(&id(1))
                    && ids(&truck, "depot").await.contains(&id(2))
            })
            .await;
        }
        let synced = replication.peers()[0].last_sync;
        until("two more passes", || async {
            replication.peers()[0].last_sync > synced
        })
        .await;
        let synced = replication.peers()[0].last_sync;
        until("one more pass", || async {
            replication.peers()[0].last_sync > synced
        })
        .await;
        let peer = &replication.peers()[0];
        assert_eq!(peer.state(), PeerState::Ok, "{flow:?}: {peer:?}");
        let (hub_yard, truck_yard) = (ids(&hub.node, "yard").await, ids(&truck, "yard").await);
        assert_eq!(hub_yard.contains(&id(3)), flow.sends(), "{flow:?}");
        assert_eq!(truck_yard.contains(&id(1)), flow.takes(), "{flow:?}");
        // A database only one side holds is made on the other only if
        // events go that way.
        assert_eq!(hub.node.database("cab").is_ok(), flow.sends(), "{flow:?}");
        assert_eq!(truck.database("depot").is_ok(), flow.takes(), "{flow:?}");
        // A database outside the table is neither sent nor made there.
        assert!(hub.node.database("private").is_err(), "{flow:?}");
        truck.shutdown().await.expect("shutdown");
        hub.stop().await;
    }
}

/// A TCP connection that counts the bytes it reads.
struct Counted {
    stream: tokio::net::TcpStream,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        let read = (buf.filled().len() - before) as u64;
        self.read
            .fetch_add(read, std::sync::atomic::Ordering::Relaxed);
        polled
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Plain TCP connections that add what they read to `read`.
fn counting(read: Arc<std::sync::atomic::AtomicU64>) -> PeerConnector {
    PeerConnector::new(move |uri| {
        let read = read.clone();
        Box::pin(async move {
            let address = format!(
                "{}:{}",
                uri.host().unwrap_or_default(),
                uri.port_u16().unwrap_or(80)
            );
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            Ok(laterbase::replication::transport::BoxedIo::new(
                hyper_util::rt::TokioIo::new(Counted { stream, read }),
            ))
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_only_pushes_is_sent_none_of_the_peer_log() {
    let hub = Served::start(Access::open(), None).await;
    let yard = hub.node.create_database("yard").await.expect("create");
    // 2 MB on the hub, which a round that pulls from nothing would be sent.
    let value = vec![b'7'; 1_000];
    for batch in 0..2_u128 {
        let events = (0..1_000_u128)
            .map(|n| {
                let mut data = b"\"".to_vec();
                data.extend_from_slice(&value);
                data.extend_from_slice(b"\"");
                NewEvent::with_id(id(100_000 + batch * 1_000 + n), data)
            })
            .collect();
        yard.append(events).await.expect("write");
    }
    let truck = Node::open(Config::in_memory()).await.expect("open");
    let own = truck.create_database("yard").await.expect("create");
    let read = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peer = Peer {
        flow: Flow::Push,
        ..Peer::new(hub.url.clone())
    };
    let replication = truck
        .replicate(with_peer(peer, counting(read.clone())))
        .await
        .expect("replicate");
    for n in 0..5 {
        write(&own, id(n)).await;
        until("the truck's write reaches the hub", || async {
            ids(&hub.node, "yard").await.contains(&id(n))
        })
        .await;
        // The hub writes too, which the truck is not sent either.
        write(&yard, id(50_000 + n)).await;
    }
    let read = read.load(std::sync::atomic::Ordering::Relaxed);
    assert!(read < 100_000, "the truck read {read} bytes");
    assert_eq!(ids(&truck, "yard").await.len(), 5);
    assert_eq!(replication.peers()[0].state(), PeerState::Ok);
    truck.shutdown().await.expect("shutdown");
    hub.stop().await;
}

/// A CA of the fleet's own, and a certificate it signs for `localhost`.
struct Certificates {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Certificates {
    fn new() -> Certificates {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fleet test CA");
        let key = rcgen::KeyPair::generate().expect("a key");
        Certificates {
            ca: rcgen::CertifiedIssuer::self_signed(params, key).expect("the CA"),
        }
    }

    /// Writes the CA, and a server's certificate and key, into `dir`: the
    /// paths of the CA, the certificate and the key.
    fn write(&self, dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let key = rcgen::KeyPair::generate().expect("a key");
        let certificate = params.signed_by(&key, &self.ca).expect("signed");
        let paths = (
            dir.join("ca.pem"),
            dir.join("node.crt"),
            dir.join("node.key"),
        );
        std::fs::write(&paths.0, self.ca.pem()).expect("write");
        std::fs::write(&paths.1, certificate.pem()).expect("write");
        std::fs::write(&paths.2, key.serialize_pem()).expect("write");
        paths
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_speak_tls_verified_by_the_fleet_ca_and_never_fall_back_to_plain_http() {
    let dir = tempfile::tempdir().expect("a directory");
    let (ca, cert, key) = Certificates::new().write(dir.path());
    let config = server_config(&cert, &key).expect("a TLS server");
    let hub = Served::start(Access::open(), Some(config)).await;
    let yard = hub.node.create_database("yard").await.expect("create");
    write(&yard, id(1)).await;

    // Garbage, and plain HTTP, to the TLS listener: each closes its own
    // connection, and the node serves on.
    let address = hub.url.trim_start_matches("https://localhost:");
    let address = format!("127.0.0.1:{address}");
    for said in [
        &b"\x00\x01garbage\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        stream.write_all(said).await.expect("write");
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
            .await
            .expect("the node closes the connection");
        // Whatever the node says before it closes (a TLS alert) is not HTTP.
        assert!(read.is_err() || !answer.starts_with(b"HTTP/"), "{answer:?}");
    }

    // A peer that knows the CA syncs.
    let truck = Node::open(Config::in_memory()).await.expect("open");
    let connector = PeerConnector::tls(Some(&ca)).expect("the CA");
    let replication = truck
        .replicate(with_peer(Peer::new(hub.url.clone()), connector))
        .await
        .expect("replicate");
    until("the hub's events reach the truck over TLS", || async {
        ids(&truck, "yard").await.contains(&id(1))
    })
    .await;
    let own = truck.database("yard").expect("there");
    write(&own, id(2)).await;
    until("the truck's events reach the hub over TLS", || async {
        ids(&hub.node, "yard").await.contains(&id(2))
    })
    .await;
    assert_eq!(replication.peers()[0].state(), PeerState::Ok);
    truck.shutdown().await.expect("shutdown");

    // A peer that does not know the CA fails, and says why.
    let stranger = Node::open(Config::in_memory()).await.expect("open");
    let connector = PeerConnector::tls(None).expect("the system's roots");
    let replication = stranger
        .replicate(with_peer(Peer::new(hub.url.clone()), connector))
        .await
        .expect("replicate");
    let error = failed(&replication, 1).await;
    assert!(error.contains("certificate"), "{error}");
    // One without TLS at all refuses the https URL rather than speak plain.
    let plain = Node::open(Config::in_memory()).await.expect("open");
    let replication_plain = plain
        .replicate(with_peer(Peer::new(hub.url.clone()), PeerConnector::tcp()))
        .await
        .expect("replicate");
    let error = failed(&replication_plain, 1).await;
    assert!(error.contains("TLS"), "{error}");
    // After five failed passes in a row, the peer is failing.
    failed(&replication, 5).await;
    assert_eq!(replication.peers()[0].state(), PeerState::Failing);
    assert!(stranger.databases().is_empty() && plain.databases().is_empty());
    stranger.shutdown().await.expect("shutdown");
    plain.shutdown().await.expect("shutdown");
    hub.stop().await;
}
