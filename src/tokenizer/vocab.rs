//! The vocabulary tables of a packed file, validated: token bytes, kinds, and the lookup from
//! text to id.

use super::TokenizerError;
use super::index::TextIndex;
use crate::format::Table;
use crate::format::meta::{TokenKind, tok_tensor};

/// Token bytes and kinds, and text → id for the tokens the algorithms produce.
#[derive(Debug)]
pub(crate) struct Vocab {
    bytes: Table<u8>,
    offsets: Table<u32>,
    kinds: Vec<TokenKind>,
    /// Text of each [`TokenKind::Normal`] token → its id (the lowest id if several share a text).
    normal: TextIndex,
    max_token_len: usize,
}

pub(crate) fn table_error(table: &'static str, problem: impl Into<String>) -> TokenizerError {
    TokenizerError::Table {
        table,
        problem: problem.into(),
    }
}

impl Vocab {
    /// Checks the vocabulary of `vocab_size` tokens: token `bytes` cut at `offsets`, the
    /// `kinds` codes, and the stored text index if there is one (else builds it).
    pub fn load(
        bytes: Table<u8>,
        offsets: Table<u32>,
        codes: &[u8],
        index: Option<Table<u32>>,
        vocab_size: usize,
    ) -> Result<Vocab, TokenizerError> {
        if offsets.len() != vocab_size + 1 {
            return Err(table_error(
                tok_tensor::VOCAB_OFFSETS,
                format!(
                    "{} entries for {vocab_size} tokens (expected {})",
                    offsets.len(),
                    vocab_size + 1
                ),
            ));
        }
        if codes.len() != vocab_size {
            return Err(table_error(
                tok_tensor::KINDS,
                format!("{} entries for {vocab_size} tokens", codes.len()),
            ));
        }
        if offsets[0] != 0 || offsets[vocab_size] as usize != bytes.len() {
            return Err(table_error(
                tok_tensor::VOCAB_OFFSETS,
                format!(
                    "must run from 0 to {}, runs from {} to {}",
                    bytes.len(),
                    offsets[0],
                    offsets[vocab_size]
                ),
            ));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(table_error(
                tok_tensor::VOCAB_OFFSETS,
                format!("decreases at token {i}"),
            ));
        }
        let kinds = codes
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                TokenKind::from_code(c)
                    .ok_or_else(|| table_error(tok_tensor::KINDS, format!("token {i} has unknown kind {c}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_token_len = offsets
            .windows(2)
            .map(|w| (w[1] - w[0]) as usize)
            .max()
            .unwrap_or(0);
        let normal = match index {
            Some(slots) => TextIndex::stored(slots, vocab_size)?,
            None => {
                let (text, starts) = (&*bytes, &*offsets);
                let token = |id: u32| &text[starts[id as usize] as usize..starts[id as usize + 1] as usize];
                let ids = (0..vocab_size as u32)
                    .filter(|&id| kinds[id as usize] == TokenKind::Normal && !token(id).is_empty());
                TextIndex::build(ids, token)
            }
        };
        Ok(Vocab {
            bytes,
            offsets,
            kinds,
            normal,
            max_token_len,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// The bytes of token `id` (which must be in range).
    pub fn token(&self, id: u32) -> &[u8] {
        let i = id as usize;
        &self.bytes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// The bytes of token `id`, or `None` outside the vocabulary.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        ((id as usize) < self.len()).then(|| self.token(id))
    }

    /// The kind of token `id`, or `None` outside the vocabulary.
    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// Every token of one byte, as `(id, byte)`, in id order.
    pub fn single_bytes(&self) -> impl DoubleEndedIterator<Item = (u32, u8)> + '_ {
        let (bytes, offsets) = (&*self.bytes, &*self.offsets);
        offsets
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w[1].wrapping_sub(w[0]) == 1)
            .map(|(id, w)| (id as u32, bytes[w[0] as usize]))
    }

    /// Every token's kind.
    pub fn kinds(&self) -> &[TokenKind] {
        &self.kinds
    }

    /// The normal token spelled `text`.
    pub fn normal_id(&self, text: &[u8]) -> Option<u32> {
        self.normal.get(text, |id| self.normal_text(id))
    }

    /// The text of `id` if it is a normal token.
    pub fn normal_text(&self, id: u32) -> Option<&[u8]> {
        (self.kind(id)? == TokenKind::Normal).then(|| self.token(id))
    }

    /// The text index, as stored in [`tok_tensor::TEXT_INDEX`].
    pub fn text_index(&self) -> &[u32] {
        self.normal.slots()
    }

    /// Length in bytes of the longest token.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// `id` if it is in the vocabulary, else an error naming `what`.
    pub fn check(&self, id: u32, what: &str) -> Result<u32, TokenizerError> {
        if (id as usize) < self.len() {
            Ok(id)
        } else {
            Err(TokenizerError::Spec(format!(
                "{what} {id} is outside the {}-token vocabulary",
                self.len()
            )))
        }
    }
}
