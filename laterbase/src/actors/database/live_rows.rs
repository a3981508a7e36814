//! Subscriptions to a view's rows: first every row (or the one row asked
//! for), or, from an `lc`, the current value of every row that changed
//! after it; then each row whose value changes as the view folds on.
//!
//! A row keeps no `lc` of its own in the view's store (its layout is part
//! of the storage format), so a subscription learns which rows changed from
//! the database's log: once the view has folded from `lc` A to B, the
//! events in (A, B] name the keys they are folded under
//! (`Engine::key_of`), and the rows of those keys are read again from a
//! snapshot of the view that agrees with where it stands (`ViewQuery::Follow`:
//! its actor takes one per step, shared by every subscription). A rewrite
//! of a stored event (a conflict's winner from a peer) changes rows
//! without moving the `lc`: the update numbers the view has refolded up to
//! name the rewritten ids, whose old and new forms name their keys
//! (`Engine::rewritten_keys`). A view that started over from an empty
//! store is read whole again once it has rebuilt; while it rebuilds,
//! nothing is sent.
//!
//! ```text
//! view actor ── after each step: ViewProgress (lc, us, rebuilds) ──▶ wakes it
//! subscription: log (A, B] ─ keys ─▶ view snapshot at C ≥ B ─ rows ─▶ reader
//!               rewrites (U, V] ─ keys ─┘
//! ```
//!
//! Everything is read at the reader's pace, a batch at a time: at most
//! [`SUBSCRIPTION_PAGE_EVENTS`] keys named (within [`SUBSCRIPTION_PAGE_BYTES`])
//! and as many rows read, only once the rows before are handed out. The
//! view's fold never waits for a subscription: it only publishes where it
//! stands, and answers a request for its snapshot between steps.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use super::Database;
use crate::actors::view::{ViewAnswer, ViewProgress, ViewQuery};
use crate::error::{Error, Result};
use crate::limits::{SUBSCRIPTION_PAGE_BYTES, SUBSCRIPTION_PAGE_EVENTS};
use crate::storage::ViewSnapshot;
use crate::views::fold::{self, Engine};
use crate::views::{Key, LiveRow};

impl Database {
    /// The rows of `view` as they change: first every row (or, with `key`,
    /// the one row, given as a query gives it: see [`Key::parse`]) as of
    /// every event durable when the call began; or, with `after_lc`, the
    /// current value of every row that changed after that `lc`; then each
    /// row whose value changes as the view folds on (a new row included).
    /// Several changes to one row may come as one, but the last row handed
    /// out for a key always holds its value as of the latest `lc` the view
    /// has folded. A reader that stops resumes with the
    /// [`LiveRow::resume_lc`] of the last row it saw as `after_lc`.
    ///
    /// A rewrite of a stored event (a peer's conflict winner) moves no
    /// `lc`: an open subscription hands out the rows it changed (with
    /// `value: None` for a row it emptied), but one resumed from an `lc`
    /// cannot tell which rewrites came after it. A view that rebuilds sends
    /// nothing until it has rebuilt, then every row again.
    ///
    /// The stream holds about one page of keys and rows for its reader
    /// ([`SUBSCRIPTION_PAGE_EVENTS`], within [`SUBSCRIPTION_PAGE_BYTES`]),
    /// however slowly it reads, and the view never waits for it. It ends
    /// after an error: once the node shuts down, with
    /// [`Error::Unavailable`]. An unknown view or a key that does not parse
    /// fails at once.
    pub fn subscribe_view(
        &self,
        view: &str,
        after_lc: Option<u64>,
        key: Option<&str>,
    ) -> Result<impl Stream<Item = Result<LiveRow>> + Send + 'static> {
        let not_found = || Error::ViewNotFound {
            db: self.name().to_owned(),
            view: view.to_owned(),
        };
        let registration = self
            .shared
            .views
            .iter()
            .find(|registered| registered.name == view)
            .ok_or_else(not_found)?;
        let progress = self
            .shared
            .view_progress
            .get(registration.name)
            .ok_or_else(not_found)?
            .subscribe();
        let engine: Arc<dyn Engine> = Arc::from((registration.engine)());
        let only = key
            .map(|text| {
                Key::parse(engine.key_kind(), text).ok_or_else(|| Error::InvalidKey {
                    view: view.to_owned(),
                    key: text.to_owned(),
                    expected: engine.key_kind().to_string(),
                })
            })
            .transpose()?;
        let feed = RowFeed {
            database: self.clone(),
            view: registration.name,
            engine,
            only: only.map(|key| key.to_bytes()),
            progress,
            commits: self.shared.view_wakeups.subscribe(),
            delivered_lc: after_lc.unwrap_or(0),
            named_lc: after_lc.unwrap_or(0),
            named_us: 0,
            rebuilds: 0,
            phase: Phase::Start {
                lc: self.lc(),
                us: self.shared.durable.us(),
                // Every row changed after lc 0 is every row.
                whole: after_lc.unwrap_or(0) == 0,
            },
            ready: VecDeque::new(),
            ended: false,
        };
        Ok(stream::unfold(feed, |mut feed| async move {
            let next = feed.next().await?;
            Some((next, feed))
        }))
    }
}

/// Where a subscription to a view's rows stands.
struct RowFeed {
    database: Database,
    view: &'static str,
    engine: Arc<dyn Engine>,
    /// The key (its bytes in the store) of the one row followed, if not
    /// every row.
    only: Option<Vec<u8>>,
    /// Where the view stands, as its actor publishes it.
    progress: watch::Receiver<ViewProgress>,
    /// Bumped after each commit, and once the node shuts down.
    commits: watch::Receiver<u64>,
    /// Every row that changed up to this `lc` has been handed out or is
    /// ready: where a reader resumes from.
    delivered_lc: u64,
    /// The events up to this `lc` have named their keys.
    named_lc: u64,
    /// The rewrites up to this update number have named their keys.
    named_us: u64,
    /// The view's count of rebuilds this subscription has read past.
    rebuilds: u64,
    /// What it reads next.
    phase: Phase,
    /// Rows read and not yet handed out: one batch at most.
    ready: VecDeque<LiveRow>,
    ended: bool,
}

/// What a subscription reads next.
enum Phase {
    /// Waits for the view to fold up to `lc` and refold rewrites up to
    /// `us` (what was durable when it began) and not to be rebuilding;
    /// then reads every row (`whole`) or the changes after `delivered_lc`.
    Start { lc: u64, us: u64, whole: bool },
    /// Reads every row after the key `after`, in key order. `from` is where
    /// the view stood at the first read, where following goes on from;
    /// `last` the row read last, held back until it is known whether rows
    /// follow it (the last of all tells the reader it may resume from
    /// `from`).
    Whole {
        after: Option<Vec<u8>>,
        from: Option<ViewProgress>,
        last: Option<LiveRow>,
    },
    /// Hands out the rows that changed up to where the view stood at `to`:
    /// names keys (rewrites first, then events), reads the rows of `keys`,
    /// and again until the named cursors reach `to`. `through_lc` is where
    /// a reader may resume from once every row of `keys` is out; `emptied`
    /// says that a row of `keys` may be gone (rewrites), and is then shown
    /// as such.
    Changes {
        to: ViewProgress,
        keys: BTreeSet<Vec<u8>>,
        through_lc: u64,
        emptied: bool,
    },
    /// Waits for the view to move on from `seen`.
    Idle { seen: ViewProgress },
}

impl RowFeed {
    async fn next(&mut self) -> Option<Result<LiveRow>> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(row) = self.ready.pop_front() {
                return Some(Ok(row));
            }
            if let Err(error) = self.advance().await {
                self.ended = true;
                return Some(Err(error));
            }
        }
    }

    /// One step: reads a batch of rows, names a batch of keys, or waits
    /// for the view to move.
    async fn advance(&mut self) -> Result<()> {
        match std::mem::replace(
            &mut self.phase,
            Phase::Idle {
                seen: ViewProgress::default(),
            },
        ) {
            Phase::Start { lc, us, whole } => {
                let now = self
                    .wait(|now| !now.rebuilding && now.lc >= lc && now.us >= us)
                    .await?;
                self.rebuilds = now.rebuilds;
                self.phase = if whole {
                    Phase::Whole {
                        after: None,
                        from: None,
                        last: None,
                    }
                } else {
                    self.named_us = now.us;
                    changes(now)
                };
            }
            Phase::Whole { after, from, last } => self.whole(after, from, last).await?,
            Phase::Changes {
                to,
                keys,
                through_lc,
                emptied,
            } => {
                if !keys.is_empty() {
                    self.rows(to, keys, through_lc, emptied).await?;
                } else if self.named_us < to.us {
                    self.name_rewritten(to).await?;
                } else if self.named_lc < to.lc {
                    self.name_changed(to).await?;
                } else {
                    self.delivered_lc = self.delivered_lc.max(to.lc);
                    self.phase = Phase::Idle { seen: to };
                }
            }
            Phase::Idle { seen } => {
                let now = self.wait(|now| *now != seen).await?;
                self.phase = if now.rebuilding || now.rebuilds != self.rebuilds {
                    rebuilt()
                } else {
                    changes(now)
                };
            }
        }
        Ok(())
    }

    /// Waits until where the view stands passes `ready`, and says where
    /// that is; fails once the node has shut down.
    async fn wait(&mut self, ready: impl Fn(&ViewProgress) -> bool) -> Result<ViewProgress> {
        loop {
            // Marked seen before they are read: a change after it wakes
            // the wait.
            self.commits.borrow_and_update();
            let now = *self.progress.borrow_and_update();
            self.database.shared.store()?;
            if ready(&now) {
                return Ok(now);
            }
            let closed = tokio::select! {
                changed = self.progress.changed() => changed.is_err(),
                changed = self.commits.changed() => changed.is_err(),
            };
            if closed {
                return Err(Error::Unavailable("the database is closed"));
            }
        }
    }

    /// Where the view stands and a snapshot of its rows then; `None` if it
    /// is rebuilding or rebuilt since this subscription last read it.
    async fn follow(&self) -> Result<Option<(ViewProgress, Arc<dyn ViewSnapshot>)>> {
        self.database.shared.store()?;
        let handle = self.database.view_handle(self.view)?;
        match handle.ask(ViewQuery::Follow, 0).await? {
            ViewAnswer::Follow {
                progress,
                snapshot: Some(snapshot),
            } if progress.rebuilds == self.rebuilds => Ok(Some((progress, snapshot))),
            ViewAnswer::Follow { .. } => Ok(None),
            _ => Err(Error::Unavailable("the view answered another question")),
        }
    }

    /// Reads the next page of every row (or the one row).
    async fn whole(
        &mut self,
        after: Option<Vec<u8>>,
        from: Option<ViewProgress>,
        mut last: Option<LiveRow>,
    ) -> Result<()> {
        let Some((now, snapshot)) = self.follow().await? else {
            self.phase = rebuilt();
            return Ok(());
        };
        let from = from.unwrap_or(now);
        let (engine, only) = (self.engine.clone(), self.only.clone());
        let (rows, next) = self
            .database
            .read(move || whole_page(snapshot.as_ref(), engine.as_ref(), only, after))
            .await?;
        let resume_lc = self.delivered_lc;
        for (key, value) in rows {
            let row = live_row(key, value, now.lc, resume_lc);
            self.ready.extend(last.replace(row));
        }
        if next.is_some() {
            self.phase = Phase::Whole {
                after: next,
                from: Some(from),
                last,
            };
            return Ok(());
        }
        // Every row is out: a reader may resume from where the view stood
        // at the first read, and following goes on from there.
        if let Some(mut row) = last {
            row.resume_lc = from.lc;
            self.ready.push_back(row);
        }
        self.delivered_lc = from.lc;
        self.named_lc = from.lc;
        self.named_us = from.us;
        self.phase = Phase::Idle { seen: from };
        Ok(())
    }

    /// Names the keys of a page of rewrites up to `to.us`: as many as a
    /// page of keys holds.
    async fn name_rewritten(&mut self, to: ViewProgress) -> Result<()> {
        let (engine, only) = (self.engine.clone(), self.only.clone());
        let (store, after_us) = (self.database.shared.store()?, self.named_us);
        let (keys, named_us) = self
            .database
            .read(move || {
                let updates = store.updates_after(after_us, to.us, SUBSCRIPTION_PAGE_EVENTS)?;
                let mut named_us = match updates.last() {
                    Some((us, _)) if updates.len() >= SUBSCRIPTION_PAGE_EVENTS => *us,
                    _ => to.us,
                };
                let (mut keys, mut bytes) = (BTreeSet::new(), 0);
                for (us, id) in updates {
                    if keys.len() >= SUBSCRIPTION_PAGE_EVENTS || bytes >= SUBSCRIPTION_PAGE_BYTES {
                        // Full: this rewrite names its keys in the next batch.
                        named_us = us.saturating_sub(1);
                        break;
                    }
                    for key in engine.rewritten_keys(store.as_ref(), &[id], to.lc)? {
                        if only.as_ref().is_none_or(|only| *only == key) {
                            bytes += key.len();
                            keys.insert(key);
                        }
                    }
                }
                Ok((keys, named_us))
            })
            .await?;
        self.named_us = named_us;
        self.phase = Phase::Changes {
            to,
            keys,
            through_lc: self.delivered_lc,
            emptied: true,
        };
        Ok(())
    }

    /// Names the keys of the events up to `to.lc`, a page of events at a
    /// time, into a batch that fills until it holds a page of keys or
    /// reaches `to.lc`.
    async fn name_changed(&mut self, to: ViewProgress) -> Result<()> {
        let store = self.database.shared.store()?;
        let mut keys = BTreeSet::new();
        let mut named_lc = self.named_lc;
        loop {
            let (engine, only, store) = (self.engine.clone(), self.only.clone(), store.clone());
            let (batch, named, full) = self
                .database
                .read(move || {
                    let events = store.scan_log(
                        named_lc,
                        to.lc,
                        SUBSCRIPTION_PAGE_EVENTS,
                        SUBSCRIPTION_PAGE_BYTES,
                    )?;
                    Ok(name_keys(
                        engine.as_ref(),
                        only.as_deref(),
                        &events,
                        keys,
                        to.lc,
                    ))
                })
                .await?;
            (keys, named_lc) = (batch, named);
            if full || named_lc >= to.lc {
                break;
            }
        }
        self.named_lc = named_lc;
        if keys.is_empty() {
            // None of these events is of a row this subscription shows.
            self.delivered_lc = self.delivered_lc.max(named_lc);
        }
        self.phase = Phase::Changes {
            to,
            keys,
            through_lc: named_lc,
            emptied: false,
        };
        Ok(())
    }

    /// Reads the rows of the first of `keys`, a page at most, from a
    /// snapshot of the view as it stands now.
    async fn rows(
        &mut self,
        to: ViewProgress,
        keys: BTreeSet<Vec<u8>>,
        through_lc: u64,
        emptied: bool,
    ) -> Result<()> {
        let Some((now, snapshot)) = self.follow().await? else {
            self.phase = rebuilt();
            return Ok(());
        };
        let engine = self.engine.clone();
        let (rows, keys) = self
            .database
            .read(move || rows_of_keys(snapshot.as_ref(), engine.as_ref(), keys))
            .await?;
        let count = rows.len();
        for (index, (key, value)) in rows.into_iter().enumerate() {
            if value.is_none() && !emptied {
                // A key whose events did not fold into a row shown.
                continue;
            }
            let last = keys.is_empty() && index + 1 == count;
            let resume_lc = if last { through_lc } else { self.delivered_lc };
            self.ready
                .push_back(live_row(key, value, now.lc, resume_lc));
        }
        if keys.is_empty() {
            self.delivered_lc = self.delivered_lc.max(through_lc);
        }
        self.phase = Phase::Changes {
            to,
            keys,
            through_lc,
            emptied,
        };
        Ok(())
    }
}

/// Hands out what changed up to `to`.
fn changes(to: ViewProgress) -> Phase {
    Phase::Changes {
        to,
        keys: BTreeSet::new(),
        through_lc: 0,
        emptied: false,
    }
}

/// After the view started over: once it has rebuilt, every row again.
fn rebuilt() -> Phase {
    Phase::Start {
        lc: 0,
        us: 0,
        whole: true,
    }
}

/// A row read, as handed out.
fn live_row(
    key: serde_json::Value,
    value: Option<serde_json::Value>,
    lc: u64,
    resume_lc: u64,
) -> LiveRow {
    LiveRow {
        key,
        value,
        lc,
        resume_lc: resume_lc.min(lc),
    }
}

/// Rows read from a snapshot: each key as JSON, with its value (`None` for
/// a row not there or not shown).
type Rows = Vec<(serde_json::Value, Option<serde_json::Value>)>;

/// The keys `events` are folded under (only `only`, if given) added to
/// `keys`, up to a page of them; the `lc` named up to (`to_lc` once the
/// events reach it, or none remain), and whether the batch is full.
fn name_keys(
    engine: &dyn Engine,
    only: Option<&[u8]>,
    events: &[crate::event::Event],
    mut keys: BTreeSet<Vec<u8>>,
    to_lc: u64,
) -> (BTreeSet<Vec<u8>>, u64, bool) {
    let mut bytes: usize = keys.iter().map(Vec::len).sum();
    let mut named_lc = None;
    for event in events {
        if let Some(key) = engine.key_of(&event.data)
            && only.is_none_or(|only| only == key.as_slice())
            && !keys.contains(&key)
        {
            if keys.len() >= SUBSCRIPTION_PAGE_EVENTS || bytes + key.len() > SUBSCRIPTION_PAGE_BYTES
            {
                // Full: this event names its key in the next batch.
                return (keys, named_lc.unwrap_or(event.lc.saturating_sub(1)), true);
            }
            bytes += key.len();
            keys.insert(key);
        }
        named_lc = Some(event.lc);
    }
    // Past the last event read; a page that came back empty has nothing
    // below `to_lc` left to read.
    let named_lc = match events.last() {
        Some(last) if last.lc < to_lc => last.lc,
        _ => to_lc,
    };
    (keys, named_lc, false)
}

/// A page of every row (or of the one row `only`) after the row stored
/// at `after`, and the store key the next page starts after, if any may
/// follow.
fn whole_page(
    snapshot: &dyn ViewSnapshot,
    engine: &dyn Engine,
    only: Option<Vec<u8>>,
    after: Option<Vec<u8>>,
) -> Result<(Rows, Option<Vec<u8>>)> {
    if let Some(key) = only {
        let (mut rows, _) = rows_of_keys(snapshot, engine, BTreeSet::from([key]))?;
        rows.retain(|(_, value)| value.is_some());
        return Ok((rows, None));
    }
    let (start, end) = fold::row_bounds();
    let start = match after {
        // Just past the row `after`.
        Some(mut after) => {
            after.push(0);
            after
        }
        None => start,
    };
    let entries = snapshot.range(
        &start,
        &end,
        SUBSCRIPTION_PAGE_EVENTS,
        SUBSCRIPTION_PAGE_BYTES,
    )?;
    let next = entries.last().map(|(last, _)| last.to_vec());
    let kind = engine.key_kind();
    let mut rows = Vec::with_capacity(entries.len());
    for (stored_key, stored) in &entries {
        if let Some(value) = engine.value(stored)? {
            rows.push((fold::row_of(kind, stored_key)?.to_json(), Some(value)));
        }
    }
    Ok((rows, next))
}

/// The rows of the first of `keys`, as many as a page holds, and the keys
/// left.
fn rows_of_keys(
    snapshot: &dyn ViewSnapshot,
    engine: &dyn Engine,
    mut keys: BTreeSet<Vec<u8>>,
) -> Result<(Rows, BTreeSet<Vec<u8>>)> {
    let kind = engine.key_kind();
    let mut rows = Vec::new();
    let mut bytes = 0_usize;
    while rows.len() < SUBSCRIPTION_PAGE_EVENTS && bytes < SUBSCRIPTION_PAGE_BYTES {
        let Some(key) = keys.pop_first() else {
            break;
        };
        let start = fold::row_key(&key);
        let mut end = start.clone();
        end.push(0);
        let value = match snapshot.range(&start, &end, 1, usize::MAX)?.first() {
            Some((_, stored)) => {
                bytes += stored.len();
                engine.value(stored)?
            }
            None => None,
        };
        rows.push((fold::row_of(kind, &start)?.to_json(), value));
    }
    Ok((rows, keys))
}
