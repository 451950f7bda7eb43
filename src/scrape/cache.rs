//! The per-target scrape cache: raw series bytes → what the loop knows
//! about that line (series reference, when it was last seen).
//!
//! Keys live in one arena in exposition order and a cursor predicts that
//! the next line is the one after the last hit, so a target whose output
//! keeps its order (nearly all of them) costs one sequential compare per
//! sample. Out-of-order lines fall back to a hash table over the arena.
//! When a pass sees many out-of-order hits the arena is rebuilt in the new
//! order.

use std::hash::Hasher;

use hashbrown::HashTable;

use crate::model::FastHasher;

/// A key's hash as a slot keeps it: 32 bits, which is plenty to tell a
/// target's lines apart before their bytes are compared.
fn hash(b: &[u8]) -> u32 {
    let mut h = FastHasher::default();
    h.write(b);
    let h = h.finish();
    (h ^ (h >> 32)) as u32
}

/// The table's 64-bit hash of a slot's 32: spread over the high bits too,
/// which the table uses for its control bytes.
fn wide(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// One cached line: 16 bytes and the entry. The key is at
/// `arena[off..off + len]`; offsets are 32 bits, so keys past 4 GiB of
/// arena are not cached (no body within any sane limit gets there).
struct Slot<E> {
    off: u32,
    len: u32,
    hash: u32,
    live: bool,
    entry: E,
}

/// The cache. `E` is the loop's per-series record.
pub struct SeriesCache<E> {
    arena: Vec<u8>,
    slots: Vec<Slot<E>>,
    table: HashTable<u32>,
    cursor: usize,
    dead: usize,
    /// Hits that did not come from the cursor during this pass.
    jumps: usize,
    /// Slots in the order this pass met them, to re-sort after many jumps.
    order: Vec<u32>,
}

impl<E> Default for SeriesCache<E> {
    fn default() -> Self {
        SeriesCache {
            arena: Vec::new(),
            slots: Vec::new(),
            table: HashTable::new(),
            cursor: 0,
            dead: 0,
            jumps: 0,
            order: Vec::new(),
        }
    }
}

impl<E> SeriesCache<E> {
    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slots.len() - self.dead
    }

    /// True when no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts a pass over a new body.
    pub fn start_pass(&mut self) {
        self.cursor = 0;
        self.jumps = 0;
        self.order.clear();
    }

    fn key<'a>(arena: &'a [u8], s: &Slot<E>) -> &'a [u8] {
        let off = s.off as usize;
        &arena[off..off + s.len as usize]
    }

    /// The entry for `key`, if cached.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        let idx = match self.slots.get(self.cursor) {
            Some(s)
                if s.live && s.len as usize == key.len() && Self::key(&self.arena, s) == key =>
            {
                self.cursor
            }
            _ => {
                let h = hash(key);
                let (arena, slots) = (&self.arena, &self.slots);
                let i = *self.table.find(wide(h), |&i| {
                    let s = &slots[i as usize];
                    s.hash == h && Self::key(arena, s) == key
                })? as usize;
                self.jumps += 1;
                i
            }
        };
        self.cursor = idx + 1;
        self.order.push(idx as u32);
        Some(&mut self.slots[idx].entry)
    }

    /// Adds `key` (not present) with `entry`. Past 4 GiB of keys, or 4
    /// billion slots, the key is not cached.
    pub fn insert(&mut self, key: &[u8], entry: E) {
        let (Ok(off), Ok(len), Ok(idx)) = (
            u32::try_from(self.arena.len()),
            u32::try_from(key.len()),
            u32::try_from(self.slots.len()),
        ) else {
            return;
        };
        if off.checked_add(len).is_none() {
            return;
        }
        let h = hash(key);
        self.slots.push(Slot {
            off,
            len,
            hash: h,
            live: true,
            entry,
        });
        self.arena.extend_from_slice(key);
        let slots = &self.slots;
        self.table
            .insert_unique(wide(h), idx, |&i| wide(slots[i as usize].hash));
        self.cursor = idx as usize + 1;
        self.jumps += 1;
        self.order.push(idx);
    }

    /// Heap bytes held (capacities, not lengths).
    pub fn heap_size(&self) -> usize {
        self.arena.capacity()
            + self.slots.capacity() * std::mem::size_of::<Slot<E>>()
            // A table bucket is its value and a control byte.
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.order.capacity() * std::mem::size_of::<u32>()
    }

    /// Live entries.
    pub fn values(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter(|s| s.live).map(|s| &s.entry)
    }

    /// Keeps entries for which `f` returns true, then compacts the arena
    /// if it is mostly dead or this pass jumped around a lot.
    pub fn retain(&mut self, mut f: impl FnMut(&mut E) -> bool) {
        for i in 0..self.slots.len() {
            let s = &mut self.slots[i];
            if s.live && !f(&mut s.entry) {
                s.live = false;
                self.dead += 1;
                let h = wide(s.hash);
                if let Ok(e) = self.table.find_entry(h, |&x| x as usize == i) {
                    e.remove();
                }
            }
        }
        if self.dead * 2 > self.slots.len() || self.jumps * 8 > self.slots.len().max(64) {
            self.compact();
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        *self = SeriesCache::default();
    }

    /// Rewrites live entries in the order of the last pass (then any live
    /// ones it did not meet), freeing dead space.
    fn compact(&mut self) {
        let old_slots = std::mem::take(&mut self.slots);
        let old_arena = std::mem::take(&mut self.arena);
        let mut taken = vec![false; old_slots.len()];
        let mut seq: Vec<usize> = Vec::with_capacity(old_slots.len() - self.dead);
        for &i in &self.order {
            let i = i as usize;
            if old_slots[i].live && !taken[i] {
                taken[i] = true;
                seq.push(i);
            }
        }
        seq.extend((0..old_slots.len()).filter(|&i| old_slots[i].live && !taken[i]));
        let mut by_idx: Vec<Option<Slot<E>>> = old_slots.into_iter().map(Some).collect();
        self.table.clear();
        // Exact sizes: a target's lines change rarely, and the cache
        // lives as long as the target.
        self.arena.reserve_exact(
            seq.iter()
                .filter_map(|&i| by_idx[i].as_ref())
                .map(|s| s.len as usize)
                .sum(),
        );
        self.slots.reserve_exact(seq.len());
        for i in seq {
            let Some(s) = by_idx[i].take() else { continue };
            // The live keys fit where they were, so offsets stay in range.
            let off = self.arena.len() as u32;
            self.arena.extend_from_slice(Self::key(&old_arena, &s));
            let idx = self.slots.len();
            self.slots.push(Slot { off, ..s });
            let slots = &self.slots;
            self.table
                .insert_unique(wide(slots[idx].hash), idx as u32, |&j| {
                    wide(slots[j as usize].hash)
                });
        }
        self.dead = 0;
        self.order.clear();
        self.jumps = 0;
        self.cursor = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_hits_table_fallback_and_compaction() {
        let mut c: SeriesCache<u32> = SeriesCache::default();
        c.start_pass();
        for i in 0..100u32 {
            assert!(c.get_mut(format!("s{i}").as_bytes()).is_none());
            c.insert(format!("s{i}").as_bytes(), i);
        }
        c.retain(|_| true);
        // Same order: every hit comes from the cursor.
        c.start_pass();
        for i in 0..100u32 {
            assert_eq!(c.get_mut(format!("s{i}").as_bytes()), Some(&mut i.clone()));
        }
        assert_eq!(c.jumps, 0);
        // Reversed order: found through the table, then re-sorted.
        c.start_pass();
        for i in (0..100u32).rev() {
            *c.get_mut(format!("s{i}").as_bytes()).unwrap() += 1000;
        }
        c.retain(|v| *v % 2 == 0);
        assert_eq!(c.len(), 50);
        c.start_pass();
        for i in (0..100u32).rev().filter(|i| i % 2 == 0) {
            assert_eq!(*c.get_mut(format!("s{i}").as_bytes()).unwrap(), i + 1000);
        }
        assert_eq!(
            c.jumps, 0,
            "compaction put entries in the last pass's order"
        );
        assert!(c.get_mut(b"s1").is_none());
        assert!(c.get_mut(b"nope").is_none());
        // Same prefix, different length.
        assert!(c.get_mut(b"s").is_none());
        c.clear();
        assert!(c.is_empty());
    }
}
