//! The SQLite WAL checkpointed beside the writer, not in its commits. SQLite's
//! automatic checkpoint runs inside the commit that passes 1,000 WAL pages (4 MiB):
//! it copies them into the database and syncs it, stalling that commit and every
//! caller behind it for 10–30 ms (measured: an honest client's ACKs at 1 ms with a
//! worst of 21 ms, of 2.8 ms without it). Here a thread of its own runs a
//! `PASSIVE` checkpoint every [`CHECKPOINT_EVERY`] on a connection of its own,
//! which never blocks the writer; the writer's own automatic checkpoint is kept
//! as a backstop at [`WRITER_CHECKPOINT_PAGES`], for a WAL that constant writes
//! never let the thread finish: by then the thread has copied nearly all of it.

use crate::error::Error;
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the checkpoint thread copies the WAL into the database.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages (4 KiB) past which the writer checkpoints in its own commit.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// The checkpoint thread; stopped when dropped.
pub(super) struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (in WAL mode).
    pub(super) fn start(path: &Path) -> Result<Checkpointer, Error> {
        let connection = Connection::open(path).map_err(|error| {
            Error::Unavailable(format!("cannot open database {}: {error}", path.display()))
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("perfstats-checkpoint".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(CHECKPOINT_EVERY);
                    // Busy (another checkpoint under way) or failed: the next
                    // turn, or the writer's backstop, does it.
                    if let Err(error) =
                        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(%error, "WAL checkpoint");
                    }
                }
            })
            .map_err(|error| Error::Unavailable(format!("checkpoint thread: {error}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
