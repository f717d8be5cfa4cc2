//! Memory given back to the operating system once work has freed much of it.
//! glibc's allocator keeps what is freed in its arenas (up to eight a core) for
//! reuse, so a server that once held 250 MiB of open `ReportStats` calls kept most
//! of it after they ended, and one that took 3M reports as fast as it could kept
//! 72 MiB freed beside 68 MiB in use; `malloc_trim` returns the free pages. It runs
//! off the async workers, at most once a [`LOOK_EVERY`], when either
//! - the byte budgets (open calls, answers being written) held [`WORTH_TRIMMING`]
//!   more at some point since the last trim than they do now, or
//! - the resident memory grew by [`WORTH_TRIMMING`] since right after the last
//!   trim (a burst of ingest, a large read; or the analysis growing, which costs a
//!   trim every 16 MiB): only growth, so what fragmentation keeps is not trimmed
//!   again and again. Read from `/proc`: asking the allocator what it keeps free
//!   walks its free chunks under its locks (see `heap::recent_stats`).

use super::limits::Limits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the budgets and the resident memory are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Bytes the budgets must have let go of, or the resident memory have grown by,
/// since the last trim for another.
pub const WORTH_TRIMMING: usize = 16 << 20;

/// Trims as the module doc says, until `shutdown` turns true.
pub async fn return_freed_memory(limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(LOOK_EVERY);
    // The fewest resident bytes since the last trim (or the start).
    let mut settled = crate::heap::resident().unwrap_or(0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        // Counted from the last trim, so memory let go of slowly adds up.
        let high = limits.high_water();
        let budgets_let_go = high - limits.held_bytes().min(high) >= WORTH_TRIMMING;
        let resident = crate::heap::resident().unwrap_or(0);
        // Growth counts from the lowest point since the last trim.
        settled = settled.min(resident);
        let grew = resident >= settled + WORTH_TRIMMING as u64;
        if !(budgets_let_go || grew) {
            continue;
        }
        // Off the workers: a trim walks the allocator's free chunks.
        let trimmed = tokio::task::spawn_blocking(|| {
            crate::heap::trim();
            crate::heap::resident()
        })
        .await;
        limits.reset_high_water();
        settled = trimmed.ok().flatten().unwrap_or(settled);
    }
}
