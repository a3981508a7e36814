//! A crashed database actor is restarted while the node serves the others,
//! and the node can run under an application's own supervisor.

use laterbase::{Config, Error, MemoryStorage, NewEvent, Node};

use crate::support::{assert_contiguous, read_feed};
use ractor::{Actor, ActorProcessingErr, ActorRef};

#[tokio::test]
async fn a_crashed_database_actor_is_restarted_and_the_others_go_on() {
    let storage = MemoryStorage::new();
    let node = Node::open(Config::memory(storage.clone()))
        .await
        .expect("open");
    let crashing = node.create_database("crashing").await.expect("create");
    let steady = node.create_database("steady").await.expect("create");
    crashing
        .append(vec![NewEvent::new("1")])
        .await
        .expect("append");

    storage.panic_next_write();
    let lost = crashing.append(vec![NewEvent::new("2")]).await;
    assert!(
        matches!(lost, Err(Error::Unavailable(_))),
        "the crashed call fails: {lost:?}"
    );

    steady
        .append(vec![NewEvent::new("3")])
        .await
        .expect("the other database serves");
    let after = crashing
        .append(vec![NewEvent::new("4")])
        .await
        .expect("the restarted actor serves");
    // The crashed batch had reached the engine unfsynced: it may or may not
    // be stored (here the restarted writer made it durable), but the log
    // stays contiguous and the new batch follows it.
    let feed = read_feed(&crashing, 10).await;
    assert_contiguous(&feed);
    let data: Vec<&[u8]> = feed.iter().map(|e| &e.data[..]).collect();
    assert!(
        data == [&b"1"[..], b"4"] || data == [&b"1"[..], b"2", b"4"],
        "{data:?}"
    );
    assert_eq!(after.lc, feed.len() as u64);
    assert_eq!(steady.lc(), 1);
    node.shutdown().await.expect("shutdown");
}

/// An application's own root actor, under which the node runs.
struct AppSupervisor;

impl Actor for AppSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[tokio::test]
async fn a_node_runs_under_an_applications_supervisor() {
    let (app, app_handle) = Actor::spawn(None, AppSupervisor, ()).await.expect("spawn");
    let node = Node::spawn_linked(Config::in_memory(), app.get_cell())
        .await
        .expect("open");
    assert_eq!(
        app.get_children().len(),
        1,
        "the node's root actor is the app's child"
    );
    let db = node.create_database("embedded").await.expect("create");
    db.append(vec![NewEvent::new("1")]).await.expect("append");
    node.shutdown().await.expect("shutdown");
    app.stop(None);
    app_handle.await.expect("app stops");
}
