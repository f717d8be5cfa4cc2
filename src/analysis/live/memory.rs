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
