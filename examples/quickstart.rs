//! Opens a durable node in `./laterbase-data`, writes a few shipment events
//! (one of them backdated), and reads them back three ways.
//!
//! Run with: `cargo run --release --example quickstart`

use laterbase::{Config, EventId, NewEvent, Node};
use serde_json::json;

#[tokio::main]
async fn main() -> laterbase::Result<()> {
    let node = Node::open(Config::new("./laterbase-data")).await?;
    let db = node.create_database("shipments").await?;

    // The node assigns ids (and so valid times) to events without one; a
    // writer that knows when something happened says so with its own id.
    let loaded_yesterday = EventId::from_parts(now_ms() - 86_400_000, rand_bits());
    let receipt = db
        .append(vec![
            NewEvent::with_id(
                loaded_yesterday,
                json!({"shipment": "S-1", "status": "loaded"}).to_string(),
            ),
            NewEvent::json(&json!({"shipment": "S-1", "status": "departed"})).expect("json"),
            NewEvent::json(&json!({"shipment": "S-2", "status": "loaded"})).expect("json"),
        ])
        .await?;
    println!(
        "stored {} events; the database's clock is now {}",
        receipt.ids.len(),
        receipt.lc
    );

    println!("\nthe changes feed, in the order this node stored them:");
    let page = db.changes(receipt.lc - 3, 1_000).await?;
    for event in &page.events {
        println!(
            "  lc {:>4}  {}  recorded {}  {}",
            event.lc,
            event.id,
            event.recorded_at,
            String::from_utf8_lossy(&event.data)
        );
    }

    println!("\nby id, which is valid-time order (the backdated event comes first):");
    let range = db.range(None, None, 3).await?;
    for event in &range.events {
        println!("  {}  {}", event.id, String::from_utf8_lossy(&event.data));
    }

    let keys = db.get(&[loaded_yesterday]).await?;
    println!(
        "\nby key: {} found, {} missing",
        keys.events.len(),
        keys.missing.len()
    );
    node.shutdown().await
}

fn now_ms() -> u64 {
    laterbase::clock::Clock::now_ms(&laterbase::clock::SystemClock)
}

fn rand_bits() -> u128 {
    laterbase::clock::Random::from_os().next_u128()
}
