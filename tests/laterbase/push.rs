//! Peers that push: a write reaches a peer without waiting for the sync
//! interval, in both directions, though only one of the two nodes dials the
//! other (a truck behind NAT and its hub); the hub lists the truck among
//! the peers that dial in.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use laterbase::http::{HttpState, router};
use laterbase::replication::transport::HttpTransport;
use laterbase::replication::watch::WATCH_PATH;
use laterbase::replication::{Direction, PeerState};
use laterbase::{Config, Database, EventId, NewEvent, Node, ReplicationConfig};

/// A node serving on a loopback port, with its HTTP state kept.
struct Hub {
    node: Node,
    state: HttpState,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Hub {
    async fn start() -> Hub {
        Hub::start_on(Config::in_memory()).await
    }

    async fn start_on(config: Config) -> Hub {
        let node = Node::open(config).await.expect("open");
        let state = HttpState::new(node.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(laterbase::server::serve(
            listener,
            router(state.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        Hub {
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

/// Replication that only pushes and hears notices: its interval and its
/// safety net are longer than any test.
fn push_only(peers: Vec<String>) -> ReplicationConfig {
    let mut config = ReplicationConfig::new(peers);
    config.interval = Duration::from_secs(3_600);
    config.safety_net = Duration::from_secs(3_600);
    config
}

/// Waits for the next event of `events`, within a generous deadline.
async fn next_event(
    events: &mut (impl futures_util::Stream<Item = laterbase::Result<laterbase::Event>> + Unpin),
) -> laterbase::Event {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("the event arrives")
        .expect("the stream goes on")
        .expect("an event")
}

async fn write(database: &Database, id: EventId, data: &str) {
    database
        .append(vec![NewEvent::with_id(id, data.as_bytes().to_vec())])
        .await
        .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_a_peer_that_dials_out_and_its_hub_without_an_interval() {
    let hub = Hub::start().await;
    let truck = Node::open(Config::in_memory()).await.expect("open");
    let truck_yard = truck.create_database("yard").await.expect("create");
    let hub_yard = hub.node.create_database("yard").await.expect("create");
    let replication = truck
        .replicate(push_only(vec![hub.url.clone()]))
        .await
        .expect("replicate");
    // Until the watch is open, only the first pass has run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !replication.peers()[0].watching {
        assert!(Instant::now() < deadline, "{:?}", replication.peers());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut at_hub = Box::pin(hub_yard.subscribe(hub_yard.lc()));
    let mut at_truck = Box::pin(truck_yard.subscribe(truck_yard.lc()));
    for turn in 0..5_u64 {
        // The truck's write: its own commit starts a round.
        let id = EventId::from_parts(1_700_000_000_000 + turn, 1);
        write(&truck_yard, id, &format!("{{\"truck\":{turn}}}")).await;
        assert_eq!(next_event(&mut at_hub).await.id, id);
        assert_eq!(next_event(&mut at_truck).await.id, id);
        // The hub's write: the hub cannot dial the truck, whose watch
        // hears of it.
        let id = EventId::from_parts(1_700_000_000_000 + turn, 2);
        write(&hub_yard, id, &format!("{{\"hub\":{turn}}}")).await;
        assert_eq!(next_event(&mut at_hub).await.id, id);
        assert_eq!(next_event(&mut at_truck).await.id, id);
    }
    // A database made on the hub reaches the truck too.
    let depot = hub.node.create_database("depot").await.expect("create");
    let id = EventId::from_parts(1_700_000_000_100, 3);
    write(&depot, id, "{\"depot\":1}").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if truck.database("depot").is_ok_and(|depot| depot.lc() == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new database did not reach the truck"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The hub lists the truck among the peers that dial in, in touch and
    // caught up; the truck lists the hub it dials.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let callers = hub.state.callers().statuses();
        let caught_up = callers.iter().any(|caller| {
            caller.node == Some(truck.id())
                && caller.direction == Direction::In
                && caller.watching
                && caller.state() == PeerState::Ok
                && caller
                    .lag
                    .is_some_and(|lag| lag.to_pull == 0 && lag.to_push == 0)
        });
        if caught_up {
            assert!(!callers[0].url.is_empty(), "the caller's address is known");
            break;
        }
        assert!(Instant::now() < deadline, "{callers:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = &replication.peers()[0];
    assert_eq!(out.direction, Direction::Out);
    assert_eq!(out.node, Some(hub.node.id()));
    assert_eq!(out.state(), PeerState::Ok);
    truck.shutdown().await.expect("shutdown");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_names_every_database_then_tells_of_each_write() {
    let hub = Hub::start().await;
    let yard = hub.node.create_database("yard").await.expect("create");
    write(&yard, EventId::from_parts(1_700_000_000_000, 1), "{}").await;
    let watcher = EventId::from_parts(1_700_000_000_000, 99);
    let transport = HttpTransport::new(&hub.url, watcher, None);
    let (node, version, body) = transport.open_stream(WATCH_PATH).await.expect("open");
    assert_eq!(node, Some(hub.node.id()));
    assert!(version.is_some());
    let mut body = http_body_util::BodyStream::new(body);
    let mut text = String::new();
    let mut read_until = async |text: &mut String, wanted: &str| {
        while !text.contains(wanted) {
            let frame = tokio::time::timeout(Duration::from_secs(30), body.next())
                .await
                .expect("the watch speaks")
                .expect("the watch goes on")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(std::str::from_utf8(&data).expect("text"));
            }
        }
    };
    read_until(&mut text, "event: ready").await;
    assert!(text.contains("\"db\":\"yard\",\"incarnation\""), "{text}");
    assert!(text.contains("\"lc\":1,"), "{text}");
    write(&yard, EventId::from_parts(1_700_000_000_000, 2), "{}").await;
    read_until(&mut text, "\"lc\":2,").await;
    // The hub counts the watch among the peers that dial in.
    let callers = hub.state.callers().statuses();
    assert!(
        callers
            .iter()
            .any(|caller| caller.node == Some(watcher) && caller.watching),
        "{callers:?}"
    );
    drop(body);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_without_a_node_is_refused() {
    let hub = Hub::start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let answer = client
        .get(format!("{}{WATCH_PATH}", hub.url).parse().expect("uri"))
        .await
        .expect("answer");
    assert_eq!(answer.status(), 400);
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_a_name_reserved_since_an_older_release_syncs_too() {
    use laterbase::storage::fjall::FjallStorage;
    use laterbase::storage::{DatabaseRecord, Storage};
    let dir = tempfile::tempdir().expect("tempdir");
    // What an older node that let `ui` be created left on disk.
    {
        let storage = FjallStorage::open(dir.path()).expect("open the engine");
        let record = DatabaseRecord {
            name: "ui".to_owned(),
            incarnation: 7,
            created_at: laterbase::Timestamp(1_700_000_000_000),
        };
        storage.create_database(&record).expect("create");
        storage.persist().expect("persist");
    }
    let hub = Hub::start_on(Config::new(dir.path())).await;
    let id = EventId::from_parts(1_700_000_000_000, 5);
    write(&hub.node.database("ui").expect("kept"), id, "{}").await;
    let truck = Node::open(Config::in_memory()).await.expect("open");
    assert!(
        truck.create_database("ui").await.is_err(),
        "no client makes one"
    );
    let replication = truck
        .replicate(push_only(vec![hub.url.clone()]))
        .await
        .expect("replicate");
    let deadline = Instant::now() + Duration::from_secs(30);
    while truck.database("ui").map(|ui| ui.lc()).unwrap_or(0) < 1 {
        assert!(Instant::now() < deadline, "{:?}", replication.peers());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    truck.shutdown().await.expect("shutdown");
    hub.stop().await;
}
