//! Open-addressing lookup tables with linear probing, one word per slot: token text → id
//! (the slot holds the id, the text lives in the vocabulary's byte table) and token pair →
//! merge (the slot holds the merge's rank, the pair lives in the merge table). Built in one
//! pass at load time, or stored in the packed file by the converter and mapped as they are
//! once every slot is checked to point into its table (layouts and hash functions in
//! `docs/FORMAT.md`).

use xxhash_rust::xxh3::xxh3_64;

use super::TokenizerError;
use super::vocab::table_error;
use crate::format::Table;
use crate::format::meta::tok_tensor;

/// A free slot (no token id or rank reaches it).
const EMPTY: u32 = u32::MAX;

/// Slots for `n` entries: a power of two at most half full, so that probes stay short.
fn slot_count(n: usize) -> usize {
    (2 * n).next_power_of_two().max(16)
}

/// The slots of a table: each [`EMPTY`] or an entry (a number below the size of the table the
/// entries point into).
#[derive(Debug)]
struct Slots(Table<u32>);

impl Slots {
    /// A stored table `name` of entries below `entries` (`what` names them in errors).
    fn stored(
        name: &'static str,
        slots: Table<u32>,
        entries: usize,
        what: &str,
    ) -> Result<Slots, TokenizerError> {
        if !slots.len().is_power_of_two() {
            return Err(table_error(
                name,
                format!("{} slots, not a power of two", slots.len()),
            ));
        }
        // The highest entry + 1 (EMPTY wraps to 0): a scan without early exit, which vectorizes
        // (Gemma's text index is 512k slots); the culprit is looked for only when there is one.
        let highest = slots.iter().fold(0, |m, &e| m.max(e.wrapping_add(1)));
        if highest as usize > entries
            && let Some((i, &e)) = slots
                .iter()
                .enumerate()
                .find(|&(_, &e)| e != EMPTY && e as usize >= entries)
        {
            return Err(table_error(
                name,
                format!("slot {i} holds {e}, outside the {entries} {what}"),
            ));
        }
        Ok(Slots(slots))
    }

    /// log2 of the slot count.
    fn bits(&self) -> u32 {
        self.0.len().trailing_zeros()
    }

    /// The first entry that `is` accepts on the probe sequence from slot `home`.
    fn find(&self, home: usize, is: impl Fn(u32) -> bool) -> Option<u32> {
        let slots = &*self.0;
        let mask = slots.len() - 1;
        let mut i = home & mask;
        // A table without a free slot (only a damaged one) still ends every probe.
        for _ in 0..slots.len() {
            match slots[i] {
                EMPTY => return None,
                e if is(e) => return Some(e),
                _ => i = (i + 1) & mask,
            }
        }
        None
    }
}

/// Builds [`Slots`], growing them as entries come.
struct SlotsBuilder {
    slots: Vec<u32>,
    len: usize,
}

impl SlotsBuilder {
    /// Room for `n` entries before the table grows.
    fn with_capacity(n: usize) -> SlotsBuilder {
        SlotsBuilder {
            slots: vec![EMPTY; slot_count(n)],
            len: 0,
        }
    }

    /// Puts `entry` in the first free slot of its probe sequence, unless an entry that `same`
    /// accepts is there first. `home(e, bits)` is the home slot of entry `e` among `2^bits`.
    fn insert(&mut self, entry: u32, home: impl Fn(u32, u32) -> usize, same: impl Fn(u32) -> bool) {
        if 2 * (self.len + 1) > self.slots.len() {
            let grown = vec![EMPTY; 2 * self.slots.len()];
            let old = std::mem::replace(&mut self.slots, grown);
            for e in old.into_iter().filter(|&e| e != EMPTY) {
                self.place(e, &home, |_| false);
            }
        }
        self.len += usize::from(self.place(entry, &home, same));
    }

    fn place(&mut self, entry: u32, home: &impl Fn(u32, u32) -> usize, same: impl Fn(u32) -> bool) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = home(entry, self.slots.len().trailing_zeros()) & mask;
        loop {
            match self.slots[i] {
                EMPTY => {
                    self.slots[i] = entry;
                    return true;
                }
                other if same(other) => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn finish(self) -> Slots {
        Slots(self.slots.into())
    }
}

/// The home slot of `text`: the low bits of its XXH3.
fn text_home(text: &[u8]) -> usize {
    xxh3_64(text) as usize
}

/// Token text → id.
#[derive(Debug)]
pub(crate) struct TextIndex {
    slots: Slots,
}

impl TextIndex {
    /// Indexes `ids` by `text(id)`; of ids sharing a text, the first one given is kept.
    pub fn build<'a>(ids: impl Iterator<Item = u32>, text: impl Fn(u32) -> &'a [u8]) -> TextIndex {
        let (low, high) = ids.size_hint();
        let mut slots = SlotsBuilder::with_capacity(high.unwrap_or(low));
        for id in ids {
            let t = text(id);
            slots.insert(id, |e, _| text_home(text(e)), |other| text(other) == t);
        }
        TextIndex {
            slots: slots.finish(),
        }
    }

    /// A stored index for a vocabulary of `vocab_size` tokens (checked: a power of two, every
    /// slot free or a token id).
    pub fn stored(slots: Table<u32>, vocab_size: usize) -> Result<TextIndex, TokenizerError> {
        Ok(TextIndex {
            slots: Slots::stored(tok_tensor::TEXT_INDEX, slots, vocab_size, "tokens")?,
        })
    }

    /// The id whose `text(id)` is `t`; `text` is `None` for ids that cannot be in the index.
    pub fn get<'a>(&self, t: &[u8], text: impl Fn(u32) -> Option<&'a [u8]>) -> Option<u32> {
        self.slots.find(text_home(t), |id| text(id) == Some(t))
    }

    /// The slots, as stored in [`tok_tensor::TEXT_INDEX`].
    pub fn slots(&self) -> &[u32] {
        &self.slots.0
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

/// The first slot of the probe sequence of `(left, right)` among `2^bits` slots: the high
/// bits of `left << 32 | right` times 2^64/φ (Fibonacci hashing).
fn pair_home(left: u32, right: u32, bits: u32) -> usize {
    let key = (u64::from(left) << 32) | u64::from(right);
    // A one-slot table (`bits == 0`) has only slot 0.
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .checked_shr(64 - bits)
        .unwrap_or(0) as usize
}

/// Token pair → merge, over a merge table of `(left, right, merged)` rows in rank order.
#[derive(Debug)]
pub(crate) struct PairIndex {
    /// Each slot is a rank: a row of `merges`.
    slots: Slots,
    /// [`tok_tensor::MERGES`], every id in it inside the vocabulary.
    merges: Table<u32>,
}

impl PairIndex {
    /// Indexes every pair of `merges` (rows of ids checked to be in the vocabulary) by its
    /// first (lowest-ranked) row, as Hugging Face does.
    pub fn build(merges: Table<u32>) -> PairIndex {
        let rows = merges.len() / 3;
        let mut slots = SlotsBuilder::with_capacity(rows);
        let pair = |rank: u32| (merges[3 * rank as usize], merges[3 * rank as usize + 1]);
        for rank in 0..rows as u32 {
            let (l, r) = pair(rank);
            slots.insert(
                rank,
                |e, bits| {
                    let (l, r) = pair(e);
                    pair_home(l, r, bits)
                },
                |other| pair(other) == (l, r),
            );
        }
        PairIndex {
            slots: slots.finish(),
            merges,
        }
    }

    /// A stored index of `merges` for a vocabulary of `vocab_size` tokens (checked: every id
    /// of `merges` in the vocabulary, the index a power of two with every slot free or a row).
    pub fn stored(
        slots: Table<u32>,
        merges: Table<u32>,
        vocab_size: usize,
    ) -> Result<PairIndex, TokenizerError> {
        if let Some(i) = merges.iter().position(|&id| id as usize >= vocab_size) {
            return Err(table_error(
                tok_tensor::MERGES,
                format!(
                    "merge {}: token {} is outside the {vocab_size}-token vocabulary",
                    i / 3,
                    merges[i]
                ),
            ));
        }
        let slots = Slots::stored(tok_tensor::MERGE_INDEX, slots, merges.len() / 3, "merges")?;
        Ok(PairIndex { slots, merges })
    }

    /// The merge of `left` followed by `right`.
    pub fn get(&self, left: u32, right: u32) -> Option<Merge> {
        let m = &*self.merges;
        let rank = self.slots.find(pair_home(left, right, self.slots.bits()), |k| {
            let k = 3 * k as usize;
            m[k] == left && m[k + 1] == right
        })?;
        Some(Merge {
            rank,
            merged: m[3 * rank as usize + 2],
        })
    }

    /// Whether there are no merges.
    pub fn is_empty(&self) -> bool {
        self.merges.is_empty()
    }

    /// The slots, as stored in [`tok_tensor::MERGE_INDEX`].
    pub fn slots(&self) -> &[u32] {
        &self.slots.0
    }
}
