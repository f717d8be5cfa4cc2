//! [`Interner`]: names (senders, winner ids) kept once each and referred to by a
//! dense `u32` id, so that per-report state holds 4 bytes instead of a string.
//! Ids are given in first-seen order from 0 and never change. Names come from
//! clients, so the map is foldhash's, seeded at random per interner.

use std::collections::HashMap;
use std::sync::Arc;

/// Names and their ids (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct Interner {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32, foldhash::fast::RandomState>,
}

impl Interner {
    /// The id of `name`, given it now if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 names");
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The name with id `id`; panics for an id not given by this interner.
    pub fn name(&self, id: u32) -> &Arc<str> {
        &self.names[id as usize]
    }

    /// How many names it holds.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it holds no name.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Interner;

    #[test]
    fn ids_are_dense_stable_and_shared_by_equal_names() {
        let mut names = Interner::default();
        assert_eq!(names.intern("a"), 0);
        assert_eq!(names.intern("b"), 1);
        assert_eq!(names.intern("a"), 0);
        assert_eq!(
            (names.len(), names.get("b"), names.get("c")),
            (2, Some(1), None)
        );
        assert_eq!(&**names.name(1), "b");
    }
}
