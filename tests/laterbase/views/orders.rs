//! The same events in any order give the same rows, bit for bit: two
//! nodes that take their writes and each other's in their own orders
//! (seeded, generated), and one small case of each order-dependent sum.

use laterbase::{EventId, NewEvent};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed, TestRunner};
use serde_json::json;

use super::{Entry, VIEWS, assert_views_match_model, at, event, reading, rows_of, scan};
use crate::http::Api;
use crate::support::{read_feed, runtime};

/// One generated event: a reading, a scan or bytes no view decodes.
#[derive(Debug, Clone)]
enum Generated {
    Reading(u8, f64),
    Entry(u8, i64),
    Scan(u8, u8),
    Garbage,
}

impl Generated {
    fn data(&self) -> Vec<u8> {
        match self {
            Generated::Reading(sensor, celsius) => {
                serde_json::to_vec(&reading(&format!("s{sensor}"), *celsius))
            }
            Generated::Entry(account, amount) => serde_json::to_vec(&Entry {
                account: *account,
                amount: *amount,
            }),
            Generated::Scan(parcel, place) => {
                serde_json::to_vec(&scan(u32::from(*parcel), &format!("place{place}")))
            }
            Generated::Garbage => serde_json::to_vec(&json!({"unrelated": true})),
        }
        .expect("serialises")
    }
}

/// Floats whose sum depends on the order it is taken in: decimals, mixed
/// magnitudes, negatives and both zeros.
fn celsius() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-0.0),
        (-40..40_i32).prop_map(|tenths| f64::from(tenths) * 0.1),
        (-9..9_i32).prop_map(|n| f64::from(n) * 1e8 + 0.3),
        (-999..999_i32).prop_map(|n| f64::from(n) * 1e-3),
    ]
}

/// Integers whose saturating sum depends on order: near either bound.
fn amount() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0..1_000_i64).prop_map(|n| i64::MAX - n),
        (0..1_000_i64).prop_map(|n| i64::MIN + n),
        -1_000..1_000_i64,
    ]
}

fn generated() -> impl Strategy<Value = Generated> {
    prop_oneof![
        (0..3_u8, celsius()).prop_map(|(s, c)| Generated::Reading(s, c)),
        (0..2_u8, amount()).prop_map(|(a, n)| Generated::Entry(a, n)),
        (0..3_u8, 0..9_u8).prop_map(|(p, q)| Generated::Scan(p, q)),
        Just(Generated::Garbage),
    ]
}

/// Events with distinct ids (times spread over a minute, so many arrive
/// backdated), split between two nodes, each delivered in its own order.
/// Events (id, bytes, whether node A takes it) and each node's order.
type Scenario = (Vec<(EventId, Vec<u8>, bool)>, Vec<usize>, Vec<usize>);

fn scenario() -> impl Strategy<Value = Scenario> {
    prop::collection::btree_map(0..60_000_u64, (generated(), any::<bool>()), 1..80).prop_flat_map(
        |events| {
            let events: Vec<(EventId, Vec<u8>, bool)> = events
                .into_iter()
                .map(|(ms, (generated, on_a))| (at(ms), generated.data(), on_a))
                .collect();
            let count = events.len();
            let order: Vec<usize> = (0..count).collect();
            (
                Just(events),
                Just(order.clone()).prop_shuffle(),
                Just(order).prop_shuffle(),
            )
        },
    )
}

#[test]
fn two_nodes_fed_in_different_orders_hold_the_same_views() {
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x71e3_5eed),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let runtime = runtime();
    runner
        .run(&scenario(), |(events, order_a, order_b)| {
            runtime.block_on(async {
                let a = Api::new().await;
                let b = Api::new().await;
                a.create("fleet").await;
                b.create("fleet").await;
                let db_a = a.node.database("fleet").expect("database");
                let db_b = b.node.database("fleet").expect("database");
                // Each node takes its own writes, a few at a time, in its order.
                for (api, db, order, mine) in
                    [(&a, &db_a, &order_a, true), (&b, &db_b, &order_b, false)]
                {
                    for chunk in order.chunks(7) {
                        let batch: Vec<NewEvent> = chunk
                            .iter()
                            .map(|index| &events[*index])
                            .filter(|(_, _, on_a)| *on_a == mine)
                            .map(|(id, data, _)| NewEvent::with_id(*id, data.clone()))
                            .collect();
                        if !batch.is_empty() {
                            db.append(batch).await.expect("append");
                        }
                        // Views are read between writes, to fold as events come.
                        let _ = rows_of(api, "route").await;
                    }
                }
                // Then each gets the other's events as sync delivers them:
                // in the other's log order, in pages.
                let feed_a = read_feed(&db_a, 1_000).await;
                let feed_b = read_feed(&db_b, 1_000).await;
                for page in feed_b.chunks(5) {
                    db_a.merge(page.to_vec()).await.expect("merge");
                }
                for page in feed_a.chunks(9) {
                    db_b.merge(page.to_vec()).await.expect("merge");
                }
                assert_views_match_model(&a).await;
                assert_views_match_model(&b).await;
                for view in VIEWS {
                    assert_eq!(
                        rows_of(&a, view).await.to_string(),
                        rows_of(&b, view).await.to_string(),
                        "{view}"
                    );
                }
            });
            Ok(())
        })
        .expect("every case holds");
}

/// Order-dependent arithmetic, made small: the same events in two arrival
/// orders. Summed as they arrive, (0.1 + 0.2) + 0.3 is 0.6000000000000001
/// and (0.3 + 0.2) + 0.1 is 0.6; `i64::MAX + 1 - 1` saturates one way and
/// not the other; `min` by `<` keeps whichever of `0.0` and `-0.0` came
/// first.
#[tokio::test]
async fn two_orders_of_the_same_events_give_bit_identical_rows() {
    let entry = |amount| Entry { account: 1, amount };
    let events = vec![
        event(at(1), &reading("dock-1", 0.1)),
        event(at(2), &reading("dock-1", 0.2)),
        event(at(3), &reading("dock-1", 0.3)),
        event(at(4), &reading("dock-2", 0.0)),
        event(at(5), &reading("dock-2", -0.0)),
        event(at(6), &entry(i64::MAX)),
        event(at(7), &entry(1)),
        event(at(8), &entry(-1)),
    ];
    let mut seen = Vec::new();
    for reversed in [false, true] {
        let api = Api::new().await;
        api.create("fleet").await;
        let db = api.node.database("fleet").expect("database");
        let mut order = events.clone();
        if reversed {
            order.reverse();
        }
        for one in order {
            db.append(vec![one]).await.expect("append");
        }
        assert_views_match_model(&api).await;
        seen.push((
            rows_of(&api, "sensor_stats").await,
            rows_of(&api, "ledger").await,
        ));
    }
    let text = |(stats, ledger): &(serde_json::Value, serde_json::Value)| {
        (stats.to_string(), ledger.to_string())
    };
    assert_eq!(text(&seen[0]), text(&seen[1]));
    let (stats, ledger) = &seen[0];
    // The exact sum, rounded once; the total order of floats; the exact
    // integer total, saturated only when shown.
    assert_eq!(stats[0]["value"]["total"].to_string(), "0.6");
    assert_eq!(stats[1]["value"]["coldest"].to_string(), "-0.0");
    assert_eq!(stats[1]["value"]["hottest"].to_string(), "0.0");
    assert_eq!(stats[1]["value"]["total"].to_string(), "0.0");
    assert_eq!(ledger[0]["value"]["balance"], json!(i64::MAX));
}
