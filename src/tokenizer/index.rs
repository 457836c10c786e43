//! Open-addressing lookup tables with linear probing: token text → id (the text lives in the
//! vocabulary's one byte table) and token pair → merge. Built in one pass at load time, or
//! stored in the packed file by the converter and mapped as they are (layouts and hash
//! functions in `docs/FORMAT.md`).

use xxhash_rust::xxh3::xxh3_64;

use super::TokenizerError;
use super::vocab::table_error;
use crate::format::Table;
use crate::format::meta::tok_tensor;

/// An empty slot (no token id or rank reaches it).
const EMPTY: u32 = u32::MAX;

/// Slots for `n` entries: a power of two at most half full, so that probes stay short.
fn slot_count(n: usize) -> usize {
    (2 * n).next_power_of_two().max(16)
}

/// Checks the size of a stored index: a power of two. Its entries are checked as lookups
/// meet them (ids outside the vocabulary never match, probes stop after visiting every
/// slot), so that loading it reads none of its pages.
fn check_slots(table: &'static str, slots: usize) -> Result<(), TokenizerError> {
    if slots.is_power_of_two() {
        Ok(())
    } else {
        Err(table_error(table, format!("{slots} slots, not a power of two")))
    }
}

/// Token text → id.
#[derive(Debug)]
pub(crate) struct TextIndex {
    slots: Table<u32>,
}

impl TextIndex {
    /// Indexes `ids` by `text(id)`; of ids sharing a text, the first one given is kept.
    pub fn build<'a>(ids: impl Iterator<Item = u32>, text: impl Fn(u32) -> &'a [u8]) -> TextIndex {
        let (low, high) = ids.size_hint();
        let mut slots = vec![EMPTY; slot_count(high.unwrap_or(low))];
        let mut len = 0;
        for id in ids {
            if 2 * (len + 1) > slots.len() {
                let grown = vec![EMPTY; 2 * slots.len()];
                let old = std::mem::replace(&mut slots, grown);
                for id in old.into_iter().filter(|&id| id != EMPTY) {
                    place(&mut slots, id, &text);
                }
            }
            len += usize::from(place(&mut slots, id, &text));
        }
        TextIndex { slots: slots.into() }
    }

    /// A stored index (see [`check_slots`]).
    pub fn stored(slots: Table<u32>) -> Result<TextIndex, TokenizerError> {
        check_slots(tok_tensor::TEXT_INDEX, slots.len())?;
        Ok(TextIndex { slots })
    }

    /// The id whose `text(id)` is `t`; `text` is `None` for ids that cannot be in the index.
    pub fn get<'a>(&self, t: &[u8], text: impl Fn(u32) -> Option<&'a [u8]>) -> Option<u32> {
        let slots = &*self.slots;
        let mask = slots.len() - 1;
        let mut i = xxh3_64(t) as usize & mask;
        for _ in 0..slots.len() {
            match slots[i] {
                EMPTY => return None,
                id if text(id) == Some(t) => return Some(id),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }

    /// The indexed ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().copied().filter(|&id| id != EMPTY)
    }

    /// The slots, as stored in [`tok_tensor::TEXT_INDEX`].
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}

/// Puts `id` in the first free slot of its probe sequence, unless an id with the same text is
/// there; says whether it did.
fn place<'a>(slots: &mut [u32], id: u32, text: &impl Fn(u32) -> &'a [u8]) -> bool {
    let mask = slots.len() - 1;
    let t = text(id);
    let mut i = xxh3_64(t) as usize & mask;
    loop {
        match slots[i] {
            EMPTY => {
                slots[i] = id;
                return true;
            }
            other if text(other) == t => return false,
            _ => i = (i + 1) & mask,
        }
    }
}

/// The result of merging a pair, and how early it is merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Merge {
    /// Lower ranks merge first.
    pub rank: u32,
    /// The token the pair becomes.
    pub merged: u32,
}

/// Words per slot of a [`PairIndex`]: left id, right id, rank, merged id.
const PAIR_SLOT: usize = 4;

/// Token pair → merge.
#[derive(Debug)]
pub(crate) struct PairIndex {
    /// [`PAIR_SLOT`] words per slot, all [`EMPTY`] in a free slot.
    slots: Table<u32>,
    /// Merged ids from this on (only in a damaged stored index) are not merges.
    vocab_size: usize,
}

/// The first slot of the probe sequence of `(left, right)` among `2^bits` slots: the high
/// bits of `left << 32 | right` times 2^64/φ (Fibonacci hashing).
fn pair_home(left: u32, right: u32, bits: u32) -> usize {
    let key = (u64::from(left) << 32) | u64::from(right);
    // A one-slot table (`bits == 0`) has only slot 0.
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .checked_shr(64 - bits)
        .unwrap_or(0) as usize
}

/// Puts `slot` in the first free slot of its probe sequence unless its pair is there; says
/// whether it did.
fn place_pair(slots: &mut [u32], slot: [u32; PAIR_SLOT]) -> bool {
    let n = slots.len() / PAIR_SLOT;
    let mut i = pair_home(slot[0], slot[1], n.trailing_zeros());
    loop {
        let s = &mut slots[i * PAIR_SLOT..(i + 1) * PAIR_SLOT];
        if s[..2] == slot[..2] {
            return false;
        }
        if s[0] == EMPTY {
            s.copy_from_slice(&slot);
            return true;
        }
        i = (i + 1) & (n - 1);
    }
}

/// Builds a [`PairIndex`], growing it as pairs come.
pub(crate) struct PairIndexBuilder {
    slots: Vec<u32>,
    len: usize,
    vocab_size: usize,
}

impl PairIndexBuilder {
    /// Room for `n` pairs of tokens of a `vocab_size`-token vocabulary before the table grows.
    pub fn with_capacity(n: usize, vocab_size: usize) -> PairIndexBuilder {
        PairIndexBuilder {
            slots: vec![EMPTY; PAIR_SLOT * slot_count(n)],
            len: 0,
            vocab_size,
        }
    }

    /// Adds `left right → merge` unless the pair is there already (the first merge of a pair
    /// wins).
    pub fn insert(&mut self, left: u32, right: u32, merge: Merge) {
        if 2 * PAIR_SLOT * (self.len + 1) > self.slots.len() {
            let grown = vec![EMPTY; 2 * self.slots.len()];
            let old = std::mem::replace(&mut self.slots, grown);
            for s in old.chunks_exact(PAIR_SLOT).filter(|s| s[0] != EMPTY) {
                place_pair(&mut self.slots, [s[0], s[1], s[2], s[3]]);
            }
        }
        let slot = [left, right, merge.rank, merge.merged];
        self.len += usize::from(place_pair(&mut self.slots, slot));
    }

    /// The finished index.
    pub fn finish(self) -> PairIndex {
        PairIndex {
            slots: self.slots.into(),
            vocab_size: self.vocab_size,
        }
    }
}

impl PairIndex {
    /// A stored index (see [`check_slots`]) for a vocabulary of `vocab_size` tokens.
    pub fn stored(slots: Table<u32>, vocab_size: usize) -> Result<PairIndex, TokenizerError> {
        check_slots(tok_tensor::MERGE_INDEX, slots.len() / PAIR_SLOT)?;
        Ok(PairIndex { slots, vocab_size })
    }

    /// The merge of `left` followed by `right`.
    pub fn get(&self, left: u32, right: u32) -> Option<Merge> {
        let slots = &*self.slots;
        let n = slots.len() / PAIR_SLOT;
        let mut i = pair_home(left, right, n.trailing_zeros());
        for _ in 0..n {
            let s = &slots[i * PAIR_SLOT..(i + 1) * PAIR_SLOT];
            if s[0] == left && s[1] == right {
                return ((s[3] as usize) < self.vocab_size).then_some(Merge {
                    rank: s[2],
                    merged: s[3],
                });
            }
            if s[0] == EMPTY {
                return None;
            }
            i = (i + 1) & (n - 1);
        }
        None
    }

    /// The slots, as stored in [`tok_tensor::MERGE_INDEX`].
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }
}
