//! Watches: how a node hears of a peer's writes as they happen, over a
//! connection it dials itself.
//!
//! A node that syncs with a peer holds `GET /sync/watch` open on it: a
//! stream of Server-Sent Events in which the peer first says where each of
//! its databases stands (its incarnation, durable clock, update number and
//! count of losers: [`Standing`]), then `ready`, then a notice each time
//! one of them moves, and a heartbeat comment while nothing does. The
//! watcher runs a round for a database only when the peer's standing or
//! its own moved since its last clean round of it; so a write on either
//! side reaches the other within a round trip or two, and idle peers
//! exchange heartbeats instead of a round per database per interval. A hub
//! cannot dial a truck behind NAT, but the truck's watch tells it of the
//! hub's writes over the connection the truck opened.
//!
//! A notice is only a hint: a watcher that misses one (a watch cut, a
//! notice lost or late) loses no event, only time. While its watch is
//! down it syncs every database every interval, as without watches, and
//! safety-net rounds go on while it is up.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream;
use tokio::sync::watch;

use crate::actors::Node;
use crate::actors::database::sync::Standing;

/// The route of a watch.
pub const WATCH_PATH: &str = "/sync/watch";

/// A notice: where one database stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Notice {
    /// The database.
    pub(crate) db: String,
    /// Where it stands.
    #[serde(flatten)]
    pub(crate) standing: Standing,
}

/// One message of a watch, as a watcher reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Where a database stands.
    Notice(Notice),
    /// Every database was named: notices from here on are changes.
    Ready,
    /// A comment: the watch is alive.
    Heartbeat,
}

impl Message {
    /// Reads one message (the text between two blank lines); `None` for a
    /// message of a kind this node does not know, which a newer peer may
    /// send and an older watcher skips.
    pub(crate) fn parse(text: &str) -> Result<Option<Message>, String> {
        let mut event = None;
        let mut data = String::new();
        for line in text.lines() {
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = Some(value),
                "data" => data.push_str(value),
                _ => {}
            }
        }
        match event {
            None if data.is_empty() => Ok(Some(Message::Heartbeat)),
            Some("notice") => serde_json::from_str(&data)
                .map(|notice| Some(Message::Notice(notice)))
                .map_err(|error| format!("a watch notice is not valid: {error}: {data}")),
            Some("ready") => Ok(Some(Message::Ready)),
            _ => Ok(None),
        }
    }
}

/// Writes `notice` as a message.
fn write_notice(out: &mut String, notice: &Notice) {
    // A notice is a name and four numbers: it always serialises.
    if let Ok(json) = serde_json::to_string(notice) {
        out.push_str("event: notice\ndata: ");
        out.push_str(&json);
        out.push_str("\n\n");
    }
}

/// The messages of a watch of `node`: every database `shown` lets the
/// watcher see, `ready`, then a
/// notice for each database whose standing moved after each commit, and a
/// heartbeat after `heartbeat` of silence, until `ending` turns true or the
/// node shuts down. It holds one standing per database.
pub(crate) fn messages(
    node: Node,
    shown: impl Fn(&str) -> bool + Send + Sync + 'static,
    heartbeat: Duration,
    ending: watch::Receiver<bool>,
) -> impl Stream<Item = Bytes> + Send + 'static {
    struct Watch {
        node: Node,
        told: BTreeMap<String, Standing>,
        commits: watch::Receiver<u64>,
        ending: watch::Receiver<bool>,
        started: bool,
        shown: Box<dyn Fn(&str) -> bool + Send + Sync>,
    }
    let commits = node.commits();
    let start = Watch {
        node,
        shown: Box::new(shown),
        told: BTreeMap::new(),
        commits,
        ending,
        started: false,
    };
    stream::unfold(start, move |mut watch| async move {
        loop {
            if *watch.ending.borrow_and_update() {
                return None;
            }
            if watch.started {
                tokio::select! {
                    changed = watch.commits.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                    () = tokio::time::sleep(heartbeat) => {
                        return Some((Bytes::from_static(b": heartbeat\n\n"), watch));
                    }
                    _ = watch.ending.changed() => return None,
                }
            } else {
                watch.commits.borrow_and_update();
            }
            if watch.node.is_shut_down() {
                return None;
            }
            let mut out = String::new();
            let (told, shown) = (&mut watch.told, &watch.shown);
            watch.node.each_database(|name, database| {
                if !shown(name) {
                    return;
                }
                let standing = database.standing();
                if told.get(name) != Some(&standing) {
                    let notice = Notice {
                        db: name.to_owned(),
                        standing,
                    };
                    write_notice(&mut out, &notice);
                    told.insert(notice.db, standing);
                }
            });
            if !watch.started {
                watch.started = true;
                out.push_str("event: ready\ndata: {}\n\n");
            }
            if !out.is_empty() {
                return Some((Bytes::from(out), watch));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_back() {
        let notice = Notice {
            db: "shipments".to_owned(),
            standing: Standing {
                incarnation: u128::MAX - 7,
                epoch: Some(u128::MAX - 9),
                lc: 42,
                us: 3,
                losers: 1,
            },
        };
        let mut out = String::new();
        write_notice(&mut out, &notice);
        let text = out.trim_end_matches('\n');
        assert_eq!(
            Message::parse(text),
            Ok(Some(Message::Notice(notice.clone())))
        );
        assert_eq!(
            Message::parse("event: ready\ndata: {}"),
            Ok(Some(Message::Ready))
        );
        assert_eq!(Message::parse(": heartbeat"), Ok(Some(Message::Heartbeat)));
        assert_eq!(Message::parse("event: later\ndata: 1"), Ok(None));
        assert!(
            Message::parse("event: notice\ndata: {\"db\":1}")
                .is_err_and(|error| error.contains("not valid"))
        );
        // A node of an earlier release names no epoch.
        let earlier = "event: notice\ndata: {\"db\":\"s\",\"incarnation\":\"000000000000000000000000000000ff\",\"lc\":4,\"us\":0,\"losers\":0}";
        let Ok(Some(Message::Notice(notice))) = Message::parse(earlier) else {
            panic!("a notice of an earlier release reads");
        };
        assert_eq!(
            (notice.standing.incarnation, notice.standing.epoch),
            (255, None)
        );
    }
}
