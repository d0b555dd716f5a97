//! Bit sets for terms, atoms' upper segments and traces: `bitvec` storage, with the operations
//! the engine runs millions of times per batch (intersects, union, subset) done on whole
//! 64-bit words.

use bitvec::prelude::{BitVec, Lsb0};
use rand::Rng;

/// A set of small integers (constants, or indicator numbers).
#[derive(Clone)]
pub struct Bits(BitVec<u64, Lsb0>);

// Equality and hashing by whole words: `BitVec`'s own go bit by bit, which made hashing 80%
// of a training batch. Bits past `len` are always zero, so words compare like the sets.
impl PartialEq for Bits {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.words() == other.words()
    }
}

impl Eq for Bits {}

impl std::hash::Hash for Bits {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.len().hash(state);
        self.words().hash(state);
    }
}

impl Bits {
    /// The empty set over `0..len`.
    pub fn new(len: usize) -> Self {
        Bits(BitVec::repeat(false, len))
    }

    /// The set of `ones` over `0..len`. Indices out of range are ignored.
    pub fn from_ones(len: usize, ones: impl IntoIterator<Item = usize>) -> Self {
        let mut b = Self::new(len);
        for i in ones {
            if i < len {
                b.set(i);
            }
        }
        b
    }

    /// Every index in `0..len`.
    pub fn full(len: usize) -> Self {
        // Not `BitVec::repeat(true, ..)`: that also sets the unused tail bits of the last
        // word, which the word-level operations here would then count.
        let mut b = Self::new(len);
        let words = b.words_mut();
        words.fill(u64::MAX);
        if !len.is_multiple_of(64) {
            if let Some(last) = words.last_mut() {
                *last = (1u64 << (len % 64)) - 1;
            }
        }
        b
    }

    /// Bits in the set (set or not).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.words().iter().all(|w| *w == 0)
    }

    /// Sets bit `i`.
    pub fn set(&mut self, i: usize) {
        self.0.set(i, true);
    }

    /// Clears bit `i`.
    pub fn clear(&mut self, i: usize) {
        self.0.set(i, false);
    }

    /// Whether bit `i` is set.
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|b| *b)
    }

    /// How many bits are set.
    pub fn count(&self) -> usize {
        self.words().iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The raw words (bits past `len` are always zero).
    pub fn words(&self) -> &[u64] {
        self.0.as_raw_slice()
    }

    fn words_mut(&mut self) -> &mut [u64] {
        self.0.as_raw_mut_slice()
    }

    /// Whether the two sets share an element.
    #[inline]
    pub fn intersects(&self, other: &Bits) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .any(|(a, b)| a & b != 0)
    }

    #[inline]
    /// Whether no bit is set in both.
    pub fn is_disjoint(&self, other: &Bits) -> bool {
        !self.intersects(other)
    }

    /// Whether every element of `self` is in `other`.
    pub fn is_subset(&self, other: &Bits) -> bool {
        self.words()
            .iter()
            .zip(other.words())
            .all(|(a, b)| a & !b == 0)
    }

    /// Sets every bit set in `other`.
    pub fn union_with(&mut self, other: &Bits) {
        for (a, b) in self.words_mut().iter_mut().zip(other.words()) {
            *a |= b;
        }
    }

    /// Clears every bit not set in `other`.
    pub fn intersect_with(&mut self, other: &Bits) {
        for (a, b) in self.words_mut().iter_mut().zip(other.words()) {
            *a &= b;
        }
    }

    /// Removes every element of `other`.
    pub fn difference_with(&mut self, other: &Bits) {
        for (a, b) in self.words_mut().iter_mut().zip(other.words()) {
            *a &= !b;
        }
    }

    /// The bits set in either.
    pub fn union(&self, other: &Bits) -> Bits {
        let mut u = self.clone();
        u.union_with(other);
        u
    }

    /// The elements in increasing order.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.words().iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let t = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + t)
            })
        })
    }

    /// A uniformly random element, if any.
    pub fn random_one(&self, rng: &mut impl Rng) -> Option<usize> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let mut k = rng.random_range(0..n);
        for (wi, &w) in self.words().iter().enumerate() {
            let c = w.count_ones() as usize;
            if k < c {
                let mut w = w;
                for _ in 0..k {
                    w &= w - 1;
                }
                return Some(wi * 64 + w.trailing_zeros() as usize);
            }
            k -= c;
        }
        None
    }
}

impl std::fmt::Debug for Bits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter_ones()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn set_operations() {
        let a = Bits::from_ones(200, [1, 70, 150]);
        let b = Bits::from_ones(200, [70, 199]);
        assert!(a.intersects(&b));
        assert!(a.is_disjoint(&Bits::from_ones(200, [2, 3])));
        assert_eq!(
            a.union(&b).iter_ones().collect::<Vec<_>>(),
            vec![1, 70, 150, 199]
        );
        let mut c = a.clone();
        c.difference_with(&b);
        assert_eq!(c.iter_ones().collect::<Vec<_>>(), vec![1, 150]);
        assert!(c.is_subset(&a) && !a.is_subset(&c));
        assert_eq!(Bits::full(130).count(), 130);
        assert!(Bits::new(5).is_empty());
    }

    #[test]
    fn random_one_is_an_element_and_covers_all() {
        let a = Bits::from_ones(300, [3, 64, 65, 299]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let x = a.random_one(&mut rng).unwrap();
            assert!(a.contains(x));
            seen.insert(x);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(Bits::new(10).random_one(&mut rng), None);
    }
}
