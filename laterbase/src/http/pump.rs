//! The work of a live stream, apart from what it sends: reading its items
//! at its reader's pace and handing its body a chunk at a time, with
//! heartbeats, on a runtime of its own whose threads yield to all others.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::Stream;
use futures_util::{FutureExt, StreamExt};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, watch};

use super::error::ApiError;

/// The most bytes of messages a stream gathers into one chunk when more
/// than one is ready: fewer, larger writes for a reader that is behind.
pub(super) const LIVE_CHUNK_BYTES: usize = 64 * 1024;

/// The most threads the live streams' reads of the store run on at once.
const LIVE_READERS_MAX: usize = 8;

/// What a stream sends, read at its own pace.
pub(super) type Items<T> = Pin<Box<dyn Stream<Item = crate::error::Result<T>> + Send>>;

/// The work of one stream, on the live streams' own runtime (whose
/// threads yield to every other, see [`Background`]): its items, written
/// out by `write` and handed to the body a chunk at a time, with
/// heartbeats; until the items end, the reader leaves or every stream is
/// to end.
pub(super) struct Pump<T> {
    write: fn(&T) -> Result<Bytes, ApiError>,
    heartbeat: Duration,
    ending: watch::Receiver<bool>,
    /// The body's side: one chunk waits there at most.
    chunks: mpsc::Sender<Bytes>,
    /// The stream, in the log.
    what: String,
}

impl<T> Pump<T> {
    /// A pump whose items `write` writes out, silent at most `heartbeat`,
    /// ended when `ending` turns true; and where its chunks come ready.
    pub(super) fn new(
        write: fn(&T) -> Result<Bytes, ApiError>,
        heartbeat: Duration,
        ending: watch::Receiver<bool>,
        what: String,
    ) -> (Pump<T>, mpsc::Receiver<Bytes>) {
        let (chunks, ready) = mpsc::channel(1);
        let pump = Pump {
            write,
            heartbeat,
            ending,
            chunks,
            what,
        };
        (pump, ready)
    }

    /// Sends `items` until they end.
    pub(super) async fn run(mut self, mut items: Items<T>) {
        while !self.is_ending() && self.forward(&mut items, |_| {}).await.is_some() {}
    }

    /// Whether every stream is to end.
    pub(super) fn is_ending(&mut self) -> bool {
        *self.ending.borrow_and_update()
    }

    /// The next items: what is ready goes out at once, without a timer; a
    /// stream with nothing ready waits for the next item, sending
    /// heartbeats. Each item sent is `seen`. `None` once the stream is
    /// over.
    pub(super) async fn forward(
        &mut self,
        items: &mut Items<T>,
        mut seen: impl FnMut(&T),
    ) -> Option<()> {
        let first = match items.next().now_or_never() {
            Some(next) => next,
            None => self.wait_for(items.next()).await?,
        };
        let mut out = BytesMut::new();
        let write = self.write;
        let finished = gather(items, first, &mut out, |item, out| {
            out.extend_from_slice(&write(item)?);
            seen(item);
            Ok(())
        });
        if !out.is_empty() && !self.send(out.freeze()).await {
            return None;
        }
        match finished {
            Some(finished) => {
                finished.log(&self.what);
                None
            }
            None => Some(()),
        }
    }

    /// `until`, with heartbeats while it waits: `None` if the reader
    /// leaves or every stream is to end first.
    pub(super) async fn wait_for<F: Future>(&mut self, until: F) -> Option<F::Output> {
        let mut until = std::pin::pin!(until);
        loop {
            tokio::select! {
                done = &mut until => return Some(done),
                () = tokio::time::sleep(self.heartbeat) => {
                    if !self.send(Bytes::from_static(b": heartbeat\n\n")).await {
                        return None;
                    }
                }
                () = self.chunks.closed() => return None,
                _ = self.ending.changed() => return None,
            }
        }
    }

    /// Hands `chunk` to the body once it has taken the one before: false
    /// when the reader left or every stream is to end.
    pub(super) async fn send(&mut self, chunk: Bytes) -> bool {
        tokio::select! {
            sent = self.chunks.send(chunk) => sent.is_ok(),
            _ = self.ending.changed() => false,
        }
    }
}

/// Why a stream's items are over.
pub(super) enum Finished {
    /// An item could not be written out (the cause is logged where it was
    /// found).
    Unwritable,
    /// Reading failed: the node shut down, most often.
    Failed(crate::error::Error),
    /// They ended.
    Over,
}

impl Finished {
    pub(super) fn log(&self, what: &str) {
        match self {
            Finished::Unwritable => {
                tracing::error!(stream = %what, "a live stream ends: a message cannot be written out");
            }
            Finished::Failed(error) => {
                tracing::debug!(stream = %what, %error, "a live stream ends")
            }
            Finished::Over => tracing::debug!(stream = %what, "a live stream ends"),
        }
    }
}

/// Writes `first` and the items ready after it into `out`, within
/// `LIVE_CHUNK_BYTES`: why the items are over, if they are.
pub(super) fn gather<T>(
    items: &mut Items<T>,
    first: Option<crate::error::Result<T>>,
    out: &mut BytesMut,
    mut write: impl FnMut(&T, &mut BytesMut) -> Result<(), ApiError>,
) -> Option<Finished> {
    let mut next = first;
    loop {
        match next {
            Some(Ok(item)) => {
                if write(&item, out).is_err() {
                    return Some(Finished::Unwritable);
                }
            }
            Some(Err(error)) => return Some(Finished::Failed(error)),
            None => return Some(Finished::Over),
        }
        // Messages already read go out together, within a chunk.
        if out.len() >= LIVE_CHUNK_BYTES {
            return None;
        }
        next = items.next().now_or_never()?;
    }
}

/// The runtime a streamed answer's connection is to run on, as the route
/// put it in the answer's extensions: the live streams', whose threads
/// yield to all others, so that writing a thousand streams out never
/// holds up commits and requests.
#[derive(Clone, Debug)]
pub(super) struct StreamRuntime(pub(super) Handle);

/// The runtime live streams run on, started with the first of them: its
/// threads run at the lowest scheduling priority the system has (on Linux,
/// the idle policy), so that commits, requests and sync go first whenever
/// they want the processor, and streams use what is left. A stream that falls behind under a burst of writes catches up
/// when the burst is over; a commit never waits for one.
#[derive(Debug, Default)]
pub(super) struct Background {
    runtime: OnceLock<Result<BackgroundRuntime, String>>,
}

/// A runtime shut down without waiting for its tasks when dropped (which
/// may be on a runtime's thread, where waiting is not allowed).
#[derive(Debug)]
struct BackgroundRuntime(Option<Runtime>);

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Background {
    /// Runs `work` on the live streams' runtime, or where it was asked
    /// when that runtime cannot be started (the cause is logged once).
    pub(super) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        match self.handle() {
            Some(runtime) => drop(runtime.spawn(work)),
            None => drop(tokio::spawn(work)),
        }
    }

    /// The live streams' runtime, started if need be; `None` if it cannot
    /// be.
    pub(super) fn handle(&self) -> Option<Handle> {
        let runtime = self.runtime.get_or_init(|| {
            // Half the processors at most: even when nothing else wants
            // them, streams leave the others free for what comes.
            let threads = std::thread::available_parallelism().map_or(1, |cores| (cores.get() / 2).max(1));
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .max_blocking_threads(LIVE_READERS_MAX)
                .thread_name("laterbase-live")
                .on_thread_start(yield_to_others)
                .enable_all()
                .build()
                .map(|runtime| BackgroundRuntime(Some(runtime)))
                .map_err(|error| {
                    tracing::warn!(%error, "live streams run beside requests: their own runtime cannot start");
                    error.to_string()
                })
        });
        match runtime {
            Ok(BackgroundRuntime(Some(runtime))) => Some(runtime.handle().clone()),
            _ => None,
        }
    }
}

/// Lowers the calling thread to the least scheduling priority: the idle
/// policy where there is one (Linux: the thread runs only when no other
/// wants the processor), else the least priority of the usual policy.
fn yield_to_others() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_current_thread_priority, set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let lowered = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle)
        .or_else(|_| set_current_thread_priority(ThreadPriority::Min));
    if let Err(error) = lowered {
        tracing::debug!(%error, "a live stream thread keeps its priority");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Background;

    /// The last stream to end may hold the last handle on its own runtime.
    #[test]
    fn the_runtime_may_be_let_go_from_one_of_its_own_threads() {
        let background = Arc::new(Background::default());
        let runtime = background.handle().expect("the runtime starts");
        let held = background.clone();
        drop(background);
        let (done, finished) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            drop(held);
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("let go without a panic");
    }

    #[test]
    fn its_threads_yield_to_all_others() {
        let background = Background::default();
        let runtime = background.handle().expect("the runtime starts");
        let (told, policy) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = told.send(thread_priority::thread_schedule_policy());
        });
        let policy = policy
            .recv_timeout(Duration::from_secs(30))
            .expect("a policy")
            .expect("read");
        #[cfg(target_os = "linux")]
        assert_eq!(
            policy,
            thread_priority::ThreadSchedulePolicy::Normal(
                thread_priority::NormalThreadSchedulePolicy::Idle
            )
        );
        let _ = policy;
    }
}
