//! Memory given back to the operating system once work has freed much of it.
//! glibc's allocator keeps what is freed in its arenas (up to eight a core) for
//! reuse, so a server that once held 250 MiB of open `ReportStats` calls kept most
//! of it after they ended, and one that took 3M reports as fast as it could kept
//! 72 MiB freed beside 68 MiB in use; `malloc_trim` returns the free pages. It runs
//! off the async workers, at most once a [`LOOK_EVERY`], when either
//! - the byte budgets (open calls, answers being written) held [`WORTH_TRIMMING`]
//!   more at some point since the last trim than they do now, or
//! - the resident memory the allocator does not count in use grew by
//!   [`WORTH_TRIMMING`] since right after the last trim (a burst of ingest, a
//!   large read): what a trim would give back, without trimming again and again
//!   what fragmentation keeps.

use super::limits::Limits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the budgets and the resident memory are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Bytes the budgets must have let go of, or the resident memory not in use have
/// grown by, since the last trim for another.
pub const WORTH_TRIMMING: usize = 16 << 20;

/// Trims as the module doc says, until `shutdown` turns true.
pub async fn return_freed_memory(limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(LOOK_EVERY);
    // Resident bytes not in use right after the last trim (none yet: at start).
    let mut settled = crate::heap::resident_not_in_use().unwrap_or(0);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        // Counted from the last trim, so memory let go of slowly adds up.
        let high = limits.high_water();
        let budgets_let_go = high - limits.held_bytes().min(high) >= WORTH_TRIMMING;
        // Off the workers: reading the allocator's figures walks its free lists.
        let trimmed = tokio::task::spawn_blocking(move || {
            let kept = crate::heap::resident_not_in_use();
            let heap_grew = kept.is_some_and(|kept| kept >= settled + WORTH_TRIMMING as u64);
            (budgets_let_go || heap_grew).then(|| {
                crate::heap::trim();
                crate::heap::resident_not_in_use().unwrap_or(0)
            })
        })
        .await;
        if let Ok(Some(now)) = trimmed {
            limits.reset_high_water();
            settled = now;
        }
    }
}
