//! What a converged cluster must show, read through each node's HTTP API:
//! the same events everywhere (ids, bytes, `recorded_at`), a superset of
//! everything acknowledged, contiguous logical clocks, and views equal to
//! the fold of each node's events in id order.

use std::time::Duration;

use bytes::Bytes;
use laterbase::EventId;
use serde::Deserialize;

use crate::cluster::{DATABASE, Record};
use crate::net;

/// One stored event as the changes feed shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct HeldEvent {
    /// Its id.
    pub id: EventId,
    /// Its logical clock on the node read.
    pub lc: u64,
    /// When the first node stored it.
    pub recorded_at: String,
    /// Its bytes (JSON, as written).
    pub data: Box<serde_json::value::RawValue>,
}

/// What one node holds at the end of a run.
#[derive(Clone, Debug)]
pub struct Holding {
    /// Its events, in `lc` order.
    pub events: Vec<HeldEvent>,
    /// Each view's rows, by view name.
    pub views: Vec<(&'static str, serde_json::Value)>,
    /// Its conflicts (id, kept, lost), sorted.
    pub conflicts: Vec<String>,
}

#[derive(Deserialize)]
struct FeedPage {
    events: Vec<HeldEvent>,
    lc: u64,
    more: bool,
}

/// How long the checker waits for one answer.
const CHECKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Every event of `database` on `host`, in `lc` order, read through its
/// changes feed under `token`; `None` if it does not answer.
pub async fn read_events(
    host: &str,
    database: &str,
    token: Option<&str>,
) -> Option<Vec<HeldEvent>> {
    let mut events = Vec::new();
    let mut lc = 0;
    loop {
        let path = format!("/db/{database}/e?lc={lc}&limit=1000");
        let (status, body) =
            net::request_as(host, "GET", &path, Bytes::new(), CHECKER_TIMEOUT, token).await?;
        if status != 200 {
            return None;
        }
        let page: FeedPage = serde_json::from_slice(&body).ok()?;
        events.extend(page.events);
        lc = page.lc;
        if !page.more {
            return Some(events);
        }
    }
}

/// The databases `host` lists (`GET /db`) to `token`; `None` if it does
/// not answer.
pub async fn read_databases(host: &str, token: Option<&str>) -> Option<Vec<String>> {
    let (status, body) =
        net::request_as(host, "GET", "/db", Bytes::new(), CHECKER_TIMEOUT, token).await?;
    if status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
    answer["databases"]
        .as_array()?
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect()
}

/// Reads everything `host` holds, or `None` if it does not answer.
pub async fn read(host: &str) -> Option<Holding> {
    let timeout = CHECKER_TIMEOUT;
    let events = read_events(host, DATABASE, None).await?;
    let mut views = Vec::new();
    for view in ["tally", "recent"] {
        let path = format!("/{DATABASE}/{view}");
        let (status, body) = net::request(host, "GET", &path, Bytes::new(), timeout).await?;
        if status != 200 {
            return None;
        }
        let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
        views.push((view, answer["rows"].clone()));
    }
    let path = format!("/db/{DATABASE}/conflicts");
    let (status, body) = net::request(host, "GET", &path, Bytes::new(), timeout).await?;
    if status != 200 {
        return None;
    }
    let answer: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let mut conflicts: Vec<String> = answer["conflicts"]
        .as_array()?
        .iter()
        .map(ToString::to_string)
        .collect();
    conflicts.sort();
    Some(Holding {
        events,
        views,
        conflicts,
    })
}

/// Checks the invariants over what the checker read; the first broken one.
pub(crate) fn converged(record: &Record, nodes: usize) -> Result<(), String> {
    if let Some(violation) = record.violations.first() {
        return Err(violation.clone());
    }
    let mut contents = Vec::new();
    for node in 0..nodes {
        let holding = record.holdings.get(node).cloned().flatten();
        let holding = holding.ok_or_else(|| format!("n{node} did not answer the checker"))?;
        contiguous(node, &holding)?;
        views_match(node, &holding)?;
        let mut events: Vec<(EventId, String, String)> = holding
            .events
            .iter()
            .map(|event| {
                (
                    event.id,
                    event.data.get().to_owned(),
                    event.recorded_at.clone(),
                )
            })
            .collect();
        events.sort();
        contents.push(events);
    }
    for (node, events) in contents.iter().enumerate().skip(1) {
        if *events != contents[0] {
            return Err(difference(&contents[0], events, node));
        }
    }
    let lists: Vec<&Vec<String>> = record
        .holdings
        .iter()
        .flatten()
        .map(|h| &h.conflicts)
        .collect();
    for (node, list) in lists.iter().enumerate().skip(1) {
        if list != &lists[0] {
            return Err(format!(
                "n0 and n{node} list different conflicts: {:?} and {list:?}",
                lists[0]
            ));
        }
    }
    acknowledged_kept(record, &contents[0])
}

/// The node's logical clocks run 1, 2, 3... without a gap.
fn contiguous(node: usize, holding: &Holding) -> Result<(), String> {
    for (expected, event) in (1..).zip(&holding.events) {
        if event.lc != expected {
            return Err(format!("n{node}: lc {} where {expected} was due", event.lc));
        }
    }
    Ok(())
}

/// Every view equals the fold of the node's events in id order, as JSON
/// text: to the last bit of every float, `-0.0` apart from `0.0`.
fn views_match(node: usize, holding: &Holding) -> Result<(), String> {
    let events: Vec<(EventId, Vec<u8>)> = holding
        .events
        .iter()
        .map(|event| (event.id, event.data.get().as_bytes().to_vec()))
        .collect();
    for ((name, model), (_, served)) in crate::views::models(&events).iter().zip(&holding.views) {
        // As text: equal JSON numbers can be different floats (`-0.0`, `0.0`).
        let (model_text, served_text) = (model.to_string(), served.to_string());
        if model_text != served_text {
            return Err(format!(
                "n{node}: view {name} differs from the fold of its events\n  served: {served}\n  model:  {model}"
            ));
        }
    }
    Ok(())
}

/// Every acknowledged event is held (unless a simulated disk loss may have
/// taken it), with the smallest of the values acknowledged for it or a
/// smaller one (the smaller bytes win a conflict).
fn acknowledged_kept(record: &Record, held: &[(EventId, String, String)]) -> Result<(), String> {
    for (id, values) in record.acknowledged.get(DATABASE).into_iter().flatten() {
        let found = held
            .binary_search_by_key(id, |(held_id, _, _)| *held_id)
            .ok()
            .map(|index| &held[index].1);
        match found {
            // A disk loss may have taken it, or its smaller value.
            _ if record.may_be_lost.contains(id) => {}
            None => {
                let acks: Vec<&str> = record
                    .log
                    .iter()
                    .filter(|line| line.contains(&id.to_string()))
                    .map(String::as_str)
                    .collect();
                return Err(format!(
                    "acknowledged event {id} was lost (acknowledged: {acks:?})"
                ));
            }
            Some(data) => {
                let smallest = values.iter().next().map(Vec::as_slice).unwrap_or_default();
                if data.as_bytes() > smallest {
                    return Err(format!(
                        "event {id} holds {data}, but {} was acknowledged and is smaller",
                        String::from_utf8_lossy(smallest)
                    ));
                }
            }
        }
    }
    Ok(())
}

fn difference(
    first: &[(EventId, String, String)],
    other: &[(EventId, String, String)],
    node: usize,
) -> String {
    let only_first = first
        .iter()
        .filter(|event| !other.contains(event))
        .take(3)
        .collect::<Vec<_>>();
    let only_other = other
        .iter()
        .filter(|event| !first.contains(event))
        .take(3)
        .collect::<Vec<_>>();
    format!(
        "n0 and n{node} hold different events ({} and {}); only on n0: {only_first:?}; only on n{node}: {only_other:?}",
        first.len(),
        other.len()
    )
}
