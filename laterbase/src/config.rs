//! How a node is opened: where its data lives, and the interfaces and bounds
//! it runs with. Defaults come from [`crate::limits`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::limits::{CALL_TIMEOUT_MS_DEFAULT, CLOCK_SKEW_MS_DEFAULT, Limits};
use crate::storage::memory::MemoryStorage;

/// The settings a [`Node`](crate::Node) is opened with.
#[derive(Clone)]
pub struct Config {
    pub(crate) engine: Engine,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) seed: Option<u64>,
    pub(crate) clock_skew_ms: u64,
    pub(crate) call_timeout_ms: u64,
    pub(crate) limits: Limits,
}

/// Which storage engine a node runs on.
#[derive(Clone, Debug)]
pub(crate) enum Engine {
    Fjall(PathBuf),
    Memory(MemoryStorage),
}

impl Config {
    /// A durable node whose data lives in `data_dir` (created if missing).
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config::with_engine(Engine::Fjall(data_dir.into()))
    }

    /// An ephemeral node in memory: everything is gone when it stops.
    pub fn in_memory() -> Config {
        Config::memory(MemoryStorage::new())
    }

    /// A node on a given in-memory store, which outlives the node: reopen it
    /// to test a restart, or open its [`MemoryStorage::crash_copy`] to test a
    /// power loss.
    pub fn memory(storage: MemoryStorage) -> Config {
        Config::with_engine(Engine::Memory(storage))
    }

    fn with_engine(engine: Engine) -> Config {
        Config {
            engine,
            clock: Arc::new(SystemClock),
            seed: None,
            clock_skew_ms: CLOCK_SKEW_MS_DEFAULT,
            call_timeout_ms: CALL_TIMEOUT_MS_DEFAULT,
            limits: Limits::default(),
        }
    }

    /// The wall clock the node reads (default: the system's).
    pub fn clock(mut self, clock: impl Clock) -> Config {
        self.clock = Arc::new(clock);
        self
    }

    /// Seeds every random choice of the node, so that a run replays exactly
    /// (default: seeded by the operating system).
    pub fn seed(mut self, seed: u64) -> Config {
        self.seed = Some(seed);
        self
    }

    /// How far ahead of the wall clock an event id may be (default 60 s).
    pub fn clock_skew(mut self, skew: Duration) -> Config {
        self.clock_skew_ms = duration_ms(skew);
        self
    }

    /// How long any call to the node may take before it fails with
    /// [`Error::Timeout`](crate::Error::Timeout) (default 30 s).
    pub fn call_timeout(mut self, timeout: Duration) -> Config {
        self.call_timeout_ms = duration_ms(timeout).max(1);
        self
    }
}

impl Config {
    /// Lowers the node's bounds (batch size, body size, page sizes); see
    /// [`Limits::validate`], which [`Node::open`](crate::Node::open) applies.
    pub fn limits(mut self, limits: Limits) -> Config {
        self.limits = limits;
        self
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("engine", &self.engine)
            .field("seed", &self.seed)
            .field("clock_skew_ms", &self.clock_skew_ms)
            .field("call_timeout_ms", &self.call_timeout_ms)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
