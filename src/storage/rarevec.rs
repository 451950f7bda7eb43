//! A vector that costs one pointer while it is empty: most series have no
//! full chunks waiting in memory and no native histograms, and at a
//! million series the two spare `Vec` headers were 48 MB and a cache line
//! more to fetch for every appended sample.

use std::ops::{Deref, DerefMut};

/// A `Vec<T>` behind an optional box; empty means no allocation.
// The box is the point: it makes the empty case one pointer, not three.
#[allow(clippy::box_collection)]
#[derive(Debug)]
pub(crate) struct RareVec<T>(Option<Box<Vec<T>>>);

impl<T> Default for RareVec<T> {
    fn default() -> Self {
        RareVec(None)
    }
}

impl<T> RareVec<T> {
    /// The vector, allocated on first use.
    fn vec_mut(&mut self) -> &mut Vec<T> {
        self.0.get_or_insert_with(Default::default)
    }

    /// Appends `x`.
    pub(crate) fn push(&mut self, x: T) {
        self.vec_mut().push(x)
    }

    /// Appends every item of `it`.
    pub(crate) fn extend(&mut self, it: impl IntoIterator<Item = T>) {
        self.vec_mut().extend(it)
    }

    /// Room for exactly `n` more items.
    pub(crate) fn reserve_exact(&mut self, n: usize) {
        self.vec_mut().reserve_exact(n)
    }

    /// Items allocated for.
    pub(crate) fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |v| v.capacity())
    }

    /// Heap bytes held: the boxed vector's header and its buffer.
    pub(crate) fn heap_size(&self) -> usize {
        self.0.as_ref().map_or(0, |v| {
            std::mem::size_of::<Vec<T>>() + v.capacity() * std::mem::size_of::<T>()
        })
    }

    /// Removes the first `n` items; an emptied vector frees its memory.
    pub(crate) fn drain_front(&mut self, n: usize) {
        if let Some(v) = &mut self.0 {
            v.drain(..n.min(v.len()));
        }
        self.free_if_empty();
    }

    /// Keeps the items for which `f` is true.
    pub(crate) fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        if let Some(v) = &mut self.0 {
            v.retain(f);
        }
        self.free_if_empty();
    }

    /// Gives spare capacity back.
    pub(crate) fn shrink_to_fit(&mut self) {
        if let Some(v) = &mut self.0 {
            v.shrink_to_fit();
        }
        self.free_if_empty();
    }

    fn free_if_empty(&mut self) {
        if self.0.as_ref().is_some_and(|v| v.is_empty()) {
            self.0 = None;
        }
    }
}

impl<T> From<Vec<T>> for RareVec<T> {
    fn from(v: Vec<T>) -> Self {
        if v.is_empty() {
            RareVec(None)
        } else {
            RareVec(Some(Box::new(v)))
        }
    }
}

impl<T> Deref for RareVec<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }
}

impl<T> DerefMut for RareVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Some(v) => v.as_mut_slice(),
            None => &mut [],
        }
    }
}

impl<'a, T> IntoIterator for &'a RareVec<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_costs_no_allocation_and_emptying_frees() {
        assert_eq!(size_of::<RareVec<u64>>(), size_of::<usize>());
        let mut v: RareVec<u32> = RareVec::default();
        assert!(v.is_empty() && v.capacity() == 0 && v.0.is_none());
        assert_eq!(v.heap_size(), 0);
        v.push(1);
        v.extend([2, 3, 4]);
        assert_eq!(&v[..], &[1, 2, 3, 4]);
        assert_eq!(v.heap_size(), 24 + 4 * v.capacity());
        assert_eq!(v.iter().sum::<u32>(), 10);
        v.drain_front(1);
        assert_eq!(&v[..], &[2, 3, 4]);
        v.retain(|x| x % 2 == 0);
        assert_eq!(&v[..], &[2, 4]);
        v.drain_front(5);
        assert!(v.0.is_none(), "emptied: freed");
        let w: RareVec<u8> = Vec::new().into();
        assert!(w.0.is_none());
        let w: RareVec<u8> = vec![7].into();
        assert_eq!(w.last(), Some(&7));
    }
}
