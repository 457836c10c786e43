//! Byte-pair encoding by merge rank, for byte-level BPE (symbols start as bytes) and for
//! SentencePiece BPE (symbols start as characters, unknown characters as byte tokens). Score-
//! ranked SentencePiece vocabularies are turned into merge ranks when loaded: merging the pair
//! whose result has the highest score first, leftmost on ties, is llama.cpp's algorithm.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::TokenizerError;
use super::index::{Merge, PairIndex, PairIndexBuilder};
use super::vocab::{Vocab, table_error};
use crate::format::Table;
use crate::format::meta::{TokenKind, tok_tensor};

const NONE: u32 = u32::MAX;

/// A BPE model.
#[derive(Debug)]
pub(crate) struct Bpe {
    merges: PairIndex,
    /// The token of each byte: single-byte tokens (byte-level) or byte tokens (SentencePiece).
    byte_ids: Box<[u32; 256]>,
    /// Symbols start as characters (SentencePiece) rather than bytes.
    chars: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    unk: Option<u32>,
}

/// A symbol of the word being merged (a doubly linked list over a vector).
#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: u32,
    prev: u32,
    next: u32,
}

/// A pair that may merge: smallest rank first, then leftmost (derived order, field by field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    pos: u32,
    left: u32,
    right: u32,
    merged: u32,
}

/// Buffers reused across pieces.
#[derive(Debug, Default)]
pub(crate) struct BpeScratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Reverse<Candidate>>,
}

/// How a [`Bpe`] starts and what it does with unknown input.
pub(crate) struct BpeOptions {
    /// Symbols start as characters (SentencePiece) rather than bytes.
    pub chars: bool,
    /// Unknown characters become byte tokens.
    pub byte_fallback: bool,
    /// Pieces that are tokens are emitted whole.
    pub ignore_merges: bool,
    /// The unknown token.
    pub unk: Option<u32>,
}

impl Bpe {
    fn new(vocab: &Vocab, merges: PairIndex, opts: BpeOptions) -> Bpe {
        let mut byte_ids = Box::new([NONE; 256]);
        let byte_kind = if opts.chars {
            TokenKind::Byte
        } else {
            TokenKind::Normal
        };
        for (id, b) in vocab.single_bytes().rev() {
            if vocab.kinds()[id as usize] == byte_kind {
                byte_ids[usize::from(b)] = id;
            }
        }
        Bpe {
            merges,
            byte_ids,
            chars: opts.chars,
            byte_fallback: opts.byte_fallback,
            ignore_merges: opts.ignore_merges,
            unk: opts.unk,
        }
    }

    /// A model ranked by a merge table of `(left, right, merged)` rows.
    pub fn from_merges(vocab: &Vocab, table: &[u32], opts: BpeOptions) -> Result<Bpe, TokenizerError> {
        let mut merges = PairIndexBuilder::with_capacity(table.len() / 3, vocab.len());
        for (rank, row) in table.chunks_exact(3).enumerate() {
            let (l, r, m) = (row[0], row[1], row[2]);
            let problem = |p: String| table_error(tok_tensor::MERGES, format!("merge {rank}: {p}"));
            let (Some(lt), Some(rt), Some(mt)) = (vocab.get(l), vocab.get(r), vocab.get(m)) else {
                return Err(problem(format!(
                    "({l}, {r}, {m}) names a token outside the vocabulary"
                )));
            };
            if mt.len() != lt.len() + rt.len() || !mt.starts_with(lt) || !mt.ends_with(rt) {
                return Err(problem(format!(
                    "token {m} is not token {l} followed by token {r}"
                )));
            }
            // The first (lowest-ranked) merge of a pair wins, as in Hugging Face.
            merges.insert(
                l,
                r,
                Merge {
                    rank: rank as u32,
                    merged: m,
                },
            );
        }
        Ok(Bpe::new(vocab, merges.finish(), opts))
    }

    /// A model with a stored merge index (see [`PairIndex::stored`]).
    pub fn from_index(vocab: &Vocab, index: Table<u32>, opts: BpeOptions) -> Result<Bpe, TokenizerError> {
        Ok(Bpe::new(vocab, PairIndex::stored(index, vocab.len())?, opts))
    }

    /// The merge index, as stored in [`tok_tensor::MERGE_INDEX`].
    pub fn merge_index(&self) -> &[u32] {
        self.merges.slots()
    }

    /// A SentencePiece model ranked by token scores (higher first).
    pub fn from_scores(vocab: &Vocab, scores: &[f32], opts: BpeOptions) -> Result<Bpe, TokenizerError> {
        if scores.len() != vocab.len() {
            return Err(table_error(
                tok_tensor::SCORES,
                format!("{} scores for {} tokens", scores.len(), vocab.len()),
            ));
        }
        if scores.iter().any(|s| s.is_nan()) {
            return Err(table_error(tok_tensor::SCORES, "a score is NaN"));
        }
        // Dense ranks: equal scores share a rank, so ties fall to the leftmost pair.
        let mut order: Vec<u32> = vocab.normal_tokens().map(|(_, id)| id).collect();
        order.sort_unstable_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]));
        let mut rank = vec![0u32; vocab.len()];
        let mut r = 0;
        for (i, &id) in order.iter().enumerate() {
            if i > 0 && scores[id as usize] != scores[order[i - 1] as usize] {
                r += 1;
            }
            rank[id as usize] = r;
        }
        let mut merges = PairIndexBuilder::with_capacity(order.len(), vocab.len());
        for (text, id) in vocab.normal_tokens() {
            for k in 1..text.len() {
                if is_continuation(text[k]) {
                    continue;
                }
                if let (Some(l), Some(r)) = (vocab.normal_id(&text[..k]), vocab.normal_id(&text[k..])) {
                    merges.insert(
                        l,
                        r,
                        Merge {
                            rank: rank[id as usize],
                            merged: id,
                        },
                    );
                }
            }
        }
        Ok(Bpe::new(vocab, merges.finish(), opts))
    }

    /// Encodes one pre-tokenized piece, appending its ids to `out`.
    pub fn encode(&self, vocab: &Vocab, piece: &str, out: &mut Vec<u32>, scratch: &mut BpeScratch) {
        if self.ignore_merges
            && let Some(id) = vocab.normal_id(piece.as_bytes())
        {
            out.push(id);
            return;
        }
        let syms = &mut scratch.symbols;
        syms.clear();
        let mut push = |id: u32| {
            let at = syms.len() as u32;
            syms.push(Symbol {
                id,
                prev: at.wrapping_sub(1),
                next: at + 1,
            });
        };
        if self.chars {
            let mut buf = [0u8; 4];
            for c in piece.chars() {
                let text = c.encode_utf8(&mut buf).as_bytes();
                if let Some(id) = vocab.normal_id(text) {
                    push(id);
                } else if self.byte_fallback && text.iter().all(|&b| self.byte_ids[usize::from(b)] != NONE) {
                    text.iter().for_each(|&b| push(self.byte_ids[usize::from(b)]));
                } else if let Some(unk) = self.unk {
                    push(unk);
                }
            }
        } else {
            for b in piece.bytes() {
                match self.byte_ids[usize::from(b)] {
                    NONE => self.unk.into_iter().for_each(&mut push),
                    id => push(id),
                }
            }
        }
        let Some(last) = syms.last_mut() else { return };
        last.next = NONE;

        let heap = &mut scratch.heap;
        heap.clear();
        for i in 1..syms.len() {
            self.push_pair(syms, heap, i as u32 - 1, i as u32);
        }
        while let Some(Reverse(Candidate {
            pos,
            left,
            right,
            merged,
            ..
        })) = heap.pop()
        {
            let s = syms[pos as usize];
            if s.id != left || s.next == NONE || syms[s.next as usize].id != right {
                continue; // stale: one side has merged since
            }
            let gone = s.next;
            let after = syms[gone as usize].next;
            syms[gone as usize].id = NONE;
            syms[pos as usize].id = merged;
            syms[pos as usize].next = after;
            if after != NONE {
                syms[after as usize].prev = pos;
                self.push_pair(syms, heap, pos, after);
            }
            if s.prev != NONE {
                self.push_pair(syms, heap, s.prev, pos);
            }
        }
        let mut i = 0;
        while i != NONE {
            out.push(syms[i as usize].id);
            i = syms[i as usize].next;
        }
    }

    fn push_pair(&self, syms: &[Symbol], heap: &mut BinaryHeap<Reverse<Candidate>>, a: u32, b: u32) {
        let (l, r) = (syms[a as usize].id, syms[b as usize].id);
        if let Some(m) = self.merges.get(l, r) {
            heap.push(Reverse(Candidate {
                rank: m.rank,
                pos: a,
                left: l,
                right: r,
                merged: m.merged,
            }));
        }
    }
}

/// Whether `b` continues a UTF-8 character.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}
