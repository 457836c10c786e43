//! The vocabulary tables of a packed file, validated: token bytes, kinds, and the lookup from
//! text to id.

use rustc_hash::FxHashMap;

use super::TokenizerError;
use crate::format::PackedFile;
use crate::format::meta::{TokenKind, tok_tensor};

/// Token bytes and kinds, and text → id for the tokens the algorithms produce.
#[derive(Debug)]
pub(crate) struct Vocab {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    kinds: Vec<TokenKind>,
    /// Text of each [`TokenKind::Normal`] token → its id (the lowest id if several share a text).
    normal: FxHashMap<Box<[u8]>, u32>,
    max_token_len: usize,
}

pub(crate) fn table_error(table: &'static str, problem: impl Into<String>) -> TokenizerError {
    TokenizerError::Table {
        table,
        problem: problem.into(),
    }
}

impl Vocab {
    /// Reads and checks the vocabulary of `vocab_size` tokens.
    pub fn load(file: &PackedFile, vocab_size: usize) -> Result<Vocab, TokenizerError> {
        let bytes = file.tensor(tok_tensor::VOCAB)?.u8s()?;
        let offsets = file.tensor(tok_tensor::VOCAB_OFFSETS)?.u32s()?;
        let codes = file.tensor(tok_tensor::KINDS)?.u8s()?;
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
        let mut vocab_max = 0;
        let mut vocab = Vocab {
            bytes: bytes.to_vec(),
            offsets: offsets.to_vec(),
            kinds,
            normal: FxHashMap::default(),
            max_token_len: 0,
        };
        let mut normal = FxHashMap::default();
        normal.reserve(vocab_size);
        for id in 0..vocab_size as u32 {
            let text = vocab.token(id);
            vocab_max = vocab_max.max(text.len());
            if vocab.kinds[id as usize] == TokenKind::Normal && !text.is_empty() {
                normal.entry(text.into()).or_insert(id);
            }
        }
        vocab.normal = normal;
        vocab.max_token_len = vocab_max;
        Ok(vocab)
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

    /// Every token's kind.
    pub fn kinds(&self) -> &[TokenKind] {
        &self.kinds
    }

    /// The normal token spelled `text`.
    pub fn normal_id(&self, text: &[u8]) -> Option<u32> {
        self.normal.get(text).copied()
    }

    /// Every normal token and its id.
    pub fn normal_tokens(&self) -> impl Iterator<Item = (&[u8], u32)> {
        self.normal.iter().map(|(t, &id)| (&**t, id))
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
