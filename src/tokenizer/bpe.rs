//! Byte-pair encoding by merge rank, for byte-level BPE (symbols start as bytes) and for
//! SentencePiece BPE (symbols start as characters, unknown characters as byte tokens). Score-
//! ranked SentencePiece vocabularies merge the pair whose result has the highest score first,
//! leftmost on ties (llama.cpp's algorithm): two normal tokens merge when their texts joined
//! spell a normal token, found through the vocabulary's text index, so they need no table of
//! pairs.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::TokenizerError;
use super::index::{Merge, PairIndex};
use super::vocab::{Vocab, table_error};
use crate::format::Table;
use crate::format::meta::{TokenKind, tok_tensor};

const NONE: u32 = u32::MAX;

/// A BPE model.
#[derive(Debug)]
pub(crate) struct Bpe {
    ranking: Ranking,
    /// The token of each byte: single-byte tokens (byte-level) or byte tokens (SentencePiece).
    byte_ids: Box<[u32; 256]>,
    /// Symbols start as characters (SentencePiece) rather than bytes.
    chars: bool,
    byte_fallback: bool,
    ignore_merges: bool,
    unk: Option<u32>,
}

/// Which pairs merge, and in which order.
#[derive(Debug)]
enum Ranking {
    /// A merge table: its pairs, ranked by row.
    Merges(PairIndex),
    /// SentencePiece scores: pairs of normal tokens whose joined text is a normal token,
    /// ranked by its score (see [`score_rank`]).
    Scores {
        /// [`tok_tensor::SCORES`], one per token, none NaN.
        scores: Table<f32>,
        /// Whether the unknown token takes part in merges: only if the text index finds it
        /// (every other normal symbol comes from the index).
        unk_merges: bool,
    },
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
    /// Two tokens' texts joined.
    joined: Vec<u8>,
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
    fn new(vocab: &Vocab, ranking: Ranking, opts: BpeOptions) -> Bpe {
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
            ranking,
            byte_ids,
            chars: opts.chars,
            byte_fallback: opts.byte_fallback,
            ignore_merges: opts.ignore_merges,
            unk: opts.unk,
        }
    }

    /// A model ranked by a merge table of `(left, right, merged)` rows, each checked.
    pub fn from_merges(vocab: &Vocab, table: Table<u32>, opts: BpeOptions) -> Result<Bpe, TokenizerError> {
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
        }
        let ranking = Ranking::Merges(PairIndex::build(table));
        Ok(Bpe::new(vocab, ranking, opts))
    }

    /// A model ranked by a merge table with its stored index (see [`PairIndex::stored`]).
    pub fn from_index(
        vocab: &Vocab,
        table: Table<u32>,
        index: Table<u32>,
        opts: BpeOptions,
    ) -> Result<Bpe, TokenizerError> {
        let ranking = Ranking::Merges(PairIndex::stored(index, table, vocab.len())?);
        Ok(Bpe::new(vocab, ranking, opts))
    }

    /// The merge index, as stored in [`tok_tensor::MERGE_INDEX`] (`None` without merges, or
    /// when ranked by scores, which needs none).
    pub fn merge_index(&self) -> Option<&[u32]> {
        match &self.ranking {
            Ranking::Merges(index) if !index.is_empty() => Some(index.slots()),
            _ => None,
        }
    }

    /// A SentencePiece model ranked by token scores (higher first).
    pub fn from_scores(vocab: &Vocab, scores: Table<f32>, opts: BpeOptions) -> Result<Bpe, TokenizerError> {
        if scores.len() != vocab.len() {
            return Err(table_error(
                tok_tensor::SCORES,
                format!("{} scores for {} tokens", scores.len(), vocab.len()),
            ));
        }
        if let Some(id) = scores.iter().position(|s| s.is_nan()) {
            return Err(table_error(
                tok_tensor::SCORES,
                format!("the score of token {id} is NaN"),
            ));
        }
        let unk_merges = opts.unk.is_some_and(|u| {
            vocab
                .normal_text(u)
                .is_some_and(|t| vocab.normal_id(t) == Some(u))
        });
        Ok(Bpe::new(vocab, Ranking::Scores { scores, unk_merges }, opts))
    }

    /// The merge of `left` followed by `right` (`joined` is scratch space).
    fn merge(&self, vocab: &Vocab, left: u32, right: u32, joined: &mut Vec<u8>) -> Option<Merge> {
        match &self.ranking {
            Ranking::Merges(index) => index.get(left, right),
            Ranking::Scores { scores, unk_merges } => {
                if !unk_merges && self.unk.is_some_and(|u| u == left || u == right) {
                    return None;
                }
                let (l, r) = (vocab.normal_text(left)?, vocab.normal_text(right)?);
                // Pairs split whole tokens at character boundaries.
                if l.is_empty() || r.first().is_none_or(|&b| is_continuation(b)) {
                    return None;
                }
                if l.len() + r.len() > vocab.max_token_len() {
                    return None;
                }
                joined.clear();
                joined.extend_from_slice(l);
                joined.extend_from_slice(r);
                let merged = vocab.normal_id(joined)?;
                Some(Merge {
                    rank: score_rank(scores[merged as usize]),
                    merged,
                })
            }
        }
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

        let (heap, joined) = (&mut scratch.heap, &mut scratch.joined);
        heap.clear();
        for i in 1..syms.len() {
            self.push_pair(vocab, syms, heap, joined, i as u32 - 1, i as u32);
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
                self.push_pair(vocab, syms, heap, joined, pos, after);
            }
            if s.prev != NONE {
                self.push_pair(vocab, syms, heap, joined, s.prev, pos);
            }
        }
        let mut i = 0;
        while i != NONE {
            out.push(syms[i as usize].id);
            i = syms[i as usize].next;
        }
    }

    fn push_pair(
        &self,
        vocab: &Vocab,
        syms: &[Symbol],
        heap: &mut BinaryHeap<Reverse<Candidate>>,
        joined: &mut Vec<u8>,
        a: u32,
        b: u32,
    ) {
        let (l, r) = (syms[a as usize].id, syms[b as usize].id);
        if let Some(m) = self.merge(vocab, l, r, joined) {
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

/// The rank of a token of `score` in a score-ranked vocabulary: higher scores get lower
/// ranks, equal scores (`-0` and `+0` included) equal ones. The scores' order, not their
/// dense ranks, is what merging compares.
fn score_rank(score: f32) -> u32 {
    let bits = (score + 0.0).to_bits(); // -0 + 0 is +0
    // The bits in the order of the scores (negatives reversed below the positives) ...
    let ascending = if bits >> 31 == 1 { !bits } else { bits | 1 << 31 };
    // ... then reversed, highest score first.
    !ascending
}
