//! The process's heap as its allocator sees it: what is in use and what it keeps
//! freed for reuse (for `GET /metrics` and the benchmarks), the resident memory
//! beside it, and giving freed memory back to the operating system. glibc on
//! Linux; elsewhere there is nothing to read and nothing to trim.

/// The allocator's figures, bytes, summed over its arenas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Allocated and not freed (including blocks the allocator mapped on their own).
    pub in_use: u64,
    /// Freed and kept by the allocator for reuse: part of the RSS once touched.
    pub free: u64,
}

/// How long [`recent_stats`] answers from its last reading.
pub const STATS_KEPT: std::time::Duration = std::time::Duration::from_secs(1);

/// The allocator's figures, read at most once a [`STATS_KEPT`]: a reading walks
/// every free chunk under its arena's lock, ~9 ms after a fast fill of 10M reports
/// left the heap fragmented, and allocations in that arena wait meanwhile. Call it
/// off the async workers.
pub fn recent_stats() -> Option<HeapStats> {
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Option<HeapStats>)>> =
        std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match *last {
        Some((at, stats)) if at.elapsed() < STATS_KEPT => stats,
        _ => {
            let now = stats();
            *last = Some((std::time::Instant::now(), now));
            now
        }
    }
}

/// The allocator's figures now; `None` where they cannot be read (not glibc).
/// Takes each arena's lock for a walk of its free chunks: see [`recent_stats`].
pub fn stats() -> Option<HeapStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no pointer and returns a plain struct.
        let info = unsafe { libc::mallinfo2() };
        Some(HeapStats {
            in_use: (info.uordblks + info.hblkhd) as u64,
            free: info.fordblks as u64,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

/// The process's resident memory, bytes (Linux; `None` elsewhere).
pub fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split(' ').nth(1)?.parse().ok()?;
    // SAFETY: sysconf takes no pointer.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Returns the allocator's free pages to the operating system: they stop counting
/// in the RSS and are mapped again if needed. Walks every free chunk, as
/// [`stats`] does.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_held_block_counts_in_use_and_a_freed_one_no_longer() {
        let before = stats().expect("glibc reports its heap");
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let holding = stats().unwrap();
        assert!(
            holding.in_use >= before.in_use + (48 << 20),
            "64 MiB held: {before:?} -> {holding:?}"
        );
        let resident = resident().expect("Linux tells the RSS");
        assert!(resident >= 64 << 20, "64 MiB touched, RSS {resident}");
        drop(block);
        let after = stats().unwrap();
        assert!(
            after.in_use + (32 << 20) < holding.in_use,
            "64 MiB freed: {holding:?} -> {after:?}"
        );
    }
}
