//! Memory given back to the operating system once work has freed much of it.
//! glibc's allocator keeps what is freed in its arenas (up to eight a core) for
//! reuse, so a server that once held 250 MiB of open `ReportStats` calls kept most
//! of it after they ended, and one that took 3M reports as fast as it could kept
//! 72 MiB freed beside 68 MiB in use; `malloc_trim` returns the free pages. It runs
//! off the async workers, at most once a [`LOOK_EVERY`], when either
//! - the byte budgets (open calls, answers being written) held [`WORTH_TRIMMING`]
//!   more at some point since the last trim than they do now, or
//! - the resident memory grew by [`WORTH_TRIMMING`] since its lowest point after
//!   the last trim and did not grow in the last [`LOOK_EVERY`] (a burst of ingest,
//!   a large read, now over), and no such trim came in the last [`GROWTH_TRIM_GAP`]:
//!   so steady ingest, whose buffers would be faulted in again at once, is not
//!   trimmed every second, and what fragmentation keeps is not trimmed again and
//!   again. Read from `/proc`: asking the allocator what it keeps free walks its
//!   free chunks under its locks.
//!
//! The same task reads the allocator's figures for `/metrics` once a
//! [`heap::READ_EVERY`](crate::heap::READ_EVERY), and after each trim.

use super::limits::Limits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the budgets and the resident memory are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Bytes the budgets must have let go of, or the resident memory have grown by,
/// since the last trim for another.
pub const WORTH_TRIMMING: usize = 16 << 20;
/// The least time between two trims for the resident memory's growth.
pub const GROWTH_TRIM_GAP: Duration = Duration::from_secs(10);

/// Trims as the module doc says, until `shutdown` turns true.
pub async fn return_freed_memory(limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(LOOK_EVERY);
    // The fewest resident bytes since the last trim (or the start), and the
    // resident bytes a tick ago.
    let mut settled = crate::heap::resident().unwrap_or(0);
    let mut previous = settled;
    let mut last_growth_trim: Option<std::time::Instant> = None;
    let mut last_read: Option<std::time::Instant> = None;
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
        let grew = resident >= settled + WORTH_TRIMMING as u64
            && resident <= previous
            && last_growth_trim.is_none_or(|at| at.elapsed() >= GROWTH_TRIM_GAP);
        previous = resident;
        if !(budgets_let_go || grew) {
            if last_read.is_none_or(|at| at.elapsed() >= crate::heap::READ_EVERY) {
                last_read = Some(std::time::Instant::now());
                let _ = tokio::task::spawn_blocking(crate::heap::refresh).await;
            }
            continue;
        }
        if grew && !budgets_let_go {
            last_growth_trim = Some(std::time::Instant::now());
        }
        // Off the workers: a trim walks the allocator's free chunks.
        let trimmed = tokio::task::spawn_blocking(|| {
            crate::heap::trim();
            crate::heap::refresh();
            crate::heap::resident()
        })
        .await;
        last_read = Some(std::time::Instant::now());
        limits.reset_high_water();
        settled = trimmed.ok().flatten().unwrap_or(settled);
        previous = settled;
    }
}
