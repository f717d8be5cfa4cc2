//! What the analysis holds on the heap, by part: an estimate from the parts'
//! lengths and capacities (B-trees estimated at half-full nodes), for benchmarks
//! and metrics to say where its bytes go. The exact total is the allocator's.

use super::LiveAnalysis;
use std::mem::size_of;

/// Heap bytes of a vector's buffer, spare room included.
pub(super) fn vec_bytes<T>(vec: &Vec<T>) -> usize {
    vec.capacity() * size_of::<T>()
}

/// Heap bytes of a B-tree of `len` entries of `K` and `V`, at half-full nodes of
/// eleven slots.
pub(super) fn btree_bytes<K, V>(len: usize) -> usize {
    let node = 16 + 11 * (size_of::<K>() + size_of::<V>());
    len.div_ceil(6) * node
}

/// Makes room for `more` elements in `vec`, growing it by an eighth where a
/// vector doubles: a vector that grows with the run (sends, rounds) then holds at
/// most an eighth of spare room, for a copy of each element about every eighth
/// growth.
pub(super) fn reserve<T>(vec: &mut Vec<T>, more: usize) {
    if vec.capacity() - vec.len() < more {
        vec.reserve_exact(more.max(vec.len() / 8).max(4));
    }
}

impl LiveAnalysis {
    /// Estimated heap bytes by part, in a fixed order: (part, bytes).
    pub fn heap_parts(&self) -> Vec<(&'static str, usize)> {
        let mut parts = vec![
            ("nodes", self.nodes_heap_bytes()),
            ("winners", self.winners.heap_bytes()),
            ("timeline", self.timeline.heap_bytes()),
        ];
        for kind in &self.kinds {
            for (part, bytes) in kind.heap_parts() {
                match parts.iter_mut().find(|(name, _)| *name == part) {
                    Some((_, total)) => *total += bytes,
                    None => parts.push((part, bytes)),
                }
            }
        }
        parts
    }
}
