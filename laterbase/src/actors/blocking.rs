//! Storage work from async code: on the blocking pool when the engine may
//! block, inline when it never does.

use crate::error::{Error, Result};

/// Runs storage work on the blocking pool when the engine may block, inline
/// when it never does. A panic in the work is resumed in the caller, so that
/// an actor crashes the same way with either engine.
pub(crate) async fn run_storage<T, F>(may_block: bool, work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    if !may_block {
        return work();
    }
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(Error::Unavailable("the runtime is shutting down")),
    }
}
