//! One listing order kept ready: every book's slot (see [`super::search`]) in the order of a
//! sort key, in blocks of about [`BLOCK`], so that a new or changed book goes into its place
//! with one binary search and a short move, and a page at any rank is found by skipping whole
//! blocks. The order compares slots through a comparator over the index's data; it holds
//! nothing but slot numbers (4 bytes a book).

use std::cmp::Ordering;

/// Slots per block once built; a block splits in two at twice this.
const BLOCK: usize = 1024;

#[derive(Default, Clone)]
pub struct Order {
    /// Never an empty block.
    blocks: Vec<Vec<u32>>,
    len: usize,
}

impl Order {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds a slot after every other (building from slots already in order).
    pub fn push_back(&mut self, slot: u32) {
        match self.blocks.last_mut() {
            Some(block) if block.len() < BLOCK => block.push(slot),
            // A full block keeps no spare room: only the last one grows.
            Some(block) if block.len() == BLOCK => {
                block.shrink_to_fit();
                self.blocks.push(vec![slot]);
            }
            // Grown as needed: a small author's or genre's order holds a few hundred.
            _ => self.blocks.push(vec![slot]),
        }
        self.len += 1;
    }

    /// Gives back spare capacity (after building).
    pub fn shrink(&mut self) {
        self.blocks.iter_mut().for_each(Vec::shrink_to_fit);
        self.blocks.shrink_to_fit();
    }

    /// How many slots come before the first for which `before` is false (`before` must hold
    /// for a prefix of the order, as for [`slice::partition_point`]).
    pub fn partition_point(&self, before: impl Fn(u32) -> bool) -> usize {
        let k = self
            .blocks
            .partition_point(|block| before(block[block.len() - 1]));
        let skipped: usize = self.blocks[..k].iter().map(Vec::len).sum();
        skipped
            + self
                .blocks
                .get(k)
                .map_or(0, |block| block.partition_point(|slot| before(*slot)))
    }

    /// Puts `slot` in its place by `cmp`.
    pub fn insert(&mut self, slot: u32, cmp: impl Fn(u32, u32) -> Ordering) {
        let last = self.blocks.last().map(|block| block[block.len() - 1]);
        if last.is_none_or(|last| cmp(last, slot) == Ordering::Less) {
            // After every other (a new book in the id and creation orders): no search.
            self.push_back(slot);
            return;
        }
        let k = self
            .blocks
            .partition_point(|block| cmp(block[block.len() - 1], slot) == Ordering::Less)
            .min(self.blocks.len() - 1);
        let block = &mut self.blocks[k];
        let at = block.partition_point(|other| cmp(*other, slot) == Ordering::Less);
        block.insert(at, slot);
        if block.len() >= 2 * BLOCK {
            let tail = block.split_off(BLOCK);
            // The first half keeps the whole block's capacity otherwise.
            block.shrink_to_fit();
            self.blocks.insert(k + 1, tail);
        }
        self.len += 1;
    }

    /// Takes `slot` out, finding it by `cmp` (which must order it as when it was inserted).
    /// Returns whether it was there.
    pub fn remove(&mut self, slot: u32, cmp: impl Fn(u32, u32) -> Ordering) -> bool {
        let k = self
            .blocks
            .partition_point(|block| cmp(block[block.len() - 1], slot) == Ordering::Less);
        let found = self.blocks.get(k).and_then(|block| {
            let at = block.partition_point(|other| cmp(*other, slot) == Ordering::Less);
            (block.get(at) == Some(&slot)).then_some((k, at))
        });
        let Some((k, at)) = found else {
            debug_assert!(false, "slot {slot} not where its keys put it");
            return false;
        };
        self.blocks[k].remove(at);
        if self.blocks[k].is_empty() {
            self.blocks.remove(k);
        }
        self.len -= 1;
        true
    }

    /// The slots from ascending position `at` on, in ascending order.
    pub fn forward(&self, at: usize) -> impl Iterator<Item = u32> + '_ {
        let (k, offset) = self.locate(at);
        let first = self.blocks.get(k).map_or(&[][..], |block| &block[offset..]);
        let rest = self.blocks.get(k + 1..).unwrap_or(&[]);
        first
            .iter()
            .copied()
            .chain(rest.iter().flat_map(|block| block.iter().copied()))
    }

    /// The slots before ascending position `at`, nearest first (descending order).
    pub fn backward(&self, at: usize) -> impl Iterator<Item = u32> + '_ {
        let (k, offset) = self.locate(at);
        let first = self.blocks.get(k).map_or(&[][..], |block| &block[..offset]);
        let rest = &self.blocks[..k.min(self.blocks.len())];
        first
            .iter()
            .rev()
            .copied()
            .chain(rest.iter().rev().flat_map(|block| block.iter().rev().copied()))
    }

    /// The block and offset of ascending position `at` (past the end: one past the last block).
    fn locate(&self, mut at: usize) -> (usize, usize) {
        for (k, block) in self.blocks.iter().enumerate() {
            if at < block.len() {
                return (k, at);
            }
            at -= block.len();
        }
        (self.blocks.len(), 0)
    }

    /// Bytes held, for the memory figures in the docs.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.blocks.iter().map(|b| b.capacity() * 4 + 24).sum::<usize>() + 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_value(values: &[i64]) -> impl Fn(u32, u32) -> Ordering + '_ {
        move |a, b| values[a as usize].cmp(&values[b as usize]).then(a.cmp(&b))
    }

    #[test]
    fn inserts_and_removals_keep_the_order_across_block_splits() {
        let values: Vec<i64> = (0..5000).map(|i| (i * 7919) % 613).collect();
        let mut order = Order::default();
        for slot in 0..5000 {
            order.insert(slot, by_value(&values));
        }
        for slot in (0..5000).step_by(3) {
            assert!(order.remove(slot, by_value(&values)));
        }
        let mut expected: Vec<u32> = (0..5000).filter(|s| s % 3 != 0).collect();
        expected.sort_by(|a, b| by_value(&values)(*a, *b));
        assert_eq!(order.len(), expected.len());
        assert_eq!(order.forward(0).collect::<Vec<_>>(), expected);
        assert_eq!(order.forward(1234).collect::<Vec<_>>(), expected[1234..]);
        let back: Vec<u32> = order.backward(1234).collect();
        assert_eq!(back, expected[..1234].iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(order.forward(order.len()).count(), 0);
        assert_eq!(order.backward(order.len()).count(), order.len());
        let at = order.partition_point(|s| values[s as usize] < 300);
        assert_eq!(at, expected.iter().filter(|s| values[**s as usize] < 300).count());
    }

    #[test]
    fn built_from_sorted_slots_it_reads_back_the_same() {
        let mut order = Order::default();
        (0..3000).for_each(|slot| order.push_back(slot));
        assert_eq!(order.forward(2999).collect::<Vec<_>>(), [2999]);
        assert_eq!(order.backward(1).collect::<Vec<_>>(), [0]);
        assert!(order.bytes() >= 3000 * 4);
    }
}
