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

/// How often the server reads the allocator's figures (see [`refresh`]).
pub const READ_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The figures of the last [`refresh`].
static LAST: std::sync::Mutex<Option<HeapStats>> = std::sync::Mutex::new(None);

/// Reads the allocator's figures for [`last`]. A reading walks every free chunk
/// under its arena's lock (~9 ms after a fast fill of 10M reports left the heap
/// fragmented) and allocations in that arena wait meanwhile: the server does it
/// once a [`READ_EVERY`], off the async workers, never per request.
pub fn refresh() {
    let now = read();
    *LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
}

/// The figures of the last [`refresh`] (`None` before one, or where they cannot
/// be read).
pub fn last() -> Option<HeapStats> {
    *LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The allocator's figures now; `None` where they cannot be read: not glibc, or
/// a glibc before 2.33 (no `mallinfo2`, looked up when called so that the binary
/// still starts there). Walks the free chunks: see [`refresh`].
pub fn read() -> Option<HeapStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: dlsym with a NUL-terminated name; if found, the symbol is glibc's
        // `struct mallinfo2 mallinfo2(void)`, which takes no pointer.
        let info = unsafe {
            let symbol = libc::dlsym(libc::RTLD_DEFAULT, c"mallinfo2".as_ptr());
            if symbol.is_null() {
                return None;
            }
            let mallinfo2: unsafe extern "C" fn() -> libc::mallinfo2 = std::mem::transmute(symbol);
            mallinfo2()
        };
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
/// [`read`] does.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// Other tests of the crate allocate and free tens of MiB at the same time
    /// (the OTLP decompression bomb: 64 MiB), so the block is larger than that and
    /// the bounds leave room for it.
    #[test]
    fn a_held_block_counts_in_use_and_a_freed_one_no_longer() {
        const BLOCK: u64 = 256 << 20;
        let before = read().expect("glibc reports its heap");
        let block = std::hint::black_box(vec![1u8; BLOCK as usize]);
        let holding = read().unwrap();
        assert!(
            holding.in_use >= before.in_use + BLOCK - (96 << 20),
            "256 MiB held: {before:?} -> {holding:?}"
        );
        let resident = resident().expect("Linux tells the RSS");
        assert!(resident >= BLOCK, "256 MiB touched, RSS {resident}");
        drop(block);
        let after = read().unwrap();
        assert!(
            after.in_use + BLOCK - (96 << 20) <= holding.in_use,
            "256 MiB freed: {holding:?} -> {after:?}"
        );
        refresh();
        assert!(last().is_some(), "a refresh is kept");
    }
}
