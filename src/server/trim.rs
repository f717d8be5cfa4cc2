//! Memory given back to the operating system once budgeted work has freed much of
//! it. glibc's allocator keeps what is freed in its arenas (up to eight a core)
//! for reuse, so a server that once held 250 MiB of open `ReportStats` calls
//! kept most of it after they ended; `malloc_trim` returns the free pages. It runs
//! only after the byte budgets (open calls, answers being written) held
//! [`WORTH_TRIMMING`] more at some point since the last trim than they do now,
//! off the async workers, at most once a [`LOOK_EVERY`].

use super::limits::Limits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the budgets are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);
/// Bytes the budgets must have let go of since the last trim for another.
pub const WORTH_TRIMMING: usize = 16 << 20;

/// Trims after the budgets in `limits` let go of [`WORTH_TRIMMING`] bytes, until
/// `shutdown` turns true.
pub async fn return_freed_memory(limits: Arc<Limits>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(LOOK_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
        // Counted from the last trim, so memory let go of slowly adds up.
        let high = limits.high_water();
        if high - limits.held_bytes().min(high) >= WORTH_TRIMMING {
            let _ = tokio::task::spawn_blocking(trim).await;
            limits.reset_high_water();
        }
    }
}

/// Returns the allocator's free pages to the operating system (glibc; elsewhere
/// nothing to do here).
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
