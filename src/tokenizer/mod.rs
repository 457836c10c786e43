//! The built-in tokenizers, read from a packed file: byte-level BPE (GPT-2, Llama 3, SmolLM2,
//! Qwen2), SentencePiece BPE with byte fallback (Llama 2, TinyLlama) and WordPiece (BERT).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use edgelm::format::PackedFile;
//! use edgelm::tokenizer::{EncodeOptions, Tokenizer};
//!
//! let file = PackedFile::open("model.edgelm".as_ref())?;
//! let tok = Tokenizer::from_packed(&file)?;
//! let ids = tok.encode("Hello, world!", EncodeOptions::default())?;
//! assert_eq!(tok.decode(&ids), b"Hello, world!");
//! # Ok(())
//! # }
//! ```

mod bpe;
mod index;
mod normalize;
mod special;
mod split;
mod stream;
mod tables;
mod vocab;
mod wordpiece;

#[cfg(test)]
mod tests;

use std::ops::Range;

use crate::format::meta::{DummyPrefix, TokenKind, TokenizerModel, TokenizerSpec, tok_tensor};
use crate::format::{DType, FormatError, Layout, PackedFile, TensorPlan};

use bpe::{Bpe, BpeOptions, BpeScratch};
use special::{Segment, Specials};
use split::{Pieces, PreTokenizer};
use tables::Tables;
use vocab::{Vocab, table_error};
use wordpiece::WordPiece;

pub use stream::TokenStream;

/// Why a tokenizer cannot be loaded or cannot encode.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A table tensor is missing or has the wrong type.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A table's contents are inconsistent.
    #[error("tokenizer table {table:?}: {problem}")]
    Table {
        /// The tensor.
        table: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The tokenizer description is inconsistent with itself or the tables.
    #[error("tokenizer: {0}")]
    Spec(String),
    /// A pre-tokenizer pattern does not compile.
    #[error("tokenizer pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// The regex compiler's message.
        message: String,
    },
    /// Splitting the text failed (a pattern ran past its backtracking limit).
    #[error("pre-tokenizing the text failed: {0}")]
    Split(String),
}

/// How [`Tokenizer::encode`] treats special tokens and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add the tokens the model expects around a text (BOS/EOS, `[CLS]`/`[SEP]`).
    pub add_special: bool,
    /// Match the text of special tokens in the input as those tokens (added tokens always are).
    pub parse_special: bool,
    /// Truncate to at most this many ids, added special tokens included (they are kept).
    pub max_length: Option<usize>,
}

impl Default for EncodeOptions {
    /// Special tokens added and parsed, no length limit.
    fn default() -> Self {
        EncodeOptions {
            add_special: true,
            parse_special: true,
            max_length: None,
        }
    }
}

/// The tokenization algorithm with its tables.
#[derive(Debug)]
enum Model {
    Bpe(Bpe),
    WordPiece(WordPiece),
}

/// A tokenizer loaded from a packed file.
#[derive(Debug)]
pub struct Tokenizer {
    spec: TokenizerSpec,
    vocab: Vocab,
    pre: PreTokenizer,
    specials: Specials,
    model: Model,
}

/// Buffers reused while encoding one text.
#[derive(Default)]
struct Scratch {
    pieces: Pieces,
    bpe: BpeScratch,
    word: Vec<u8>,
}

impl Tokenizer {
    /// Loads and checks the tokenizer of `file`. Its tables are shared with the file, not
    /// copied; lookup tables the file stores are mapped, missing ones are built.
    pub fn from_packed(file: &PackedFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_tables(file.meta().tokenizer.clone(), Tables::gather(file)?)
    }

    fn from_tables(spec: TokenizerSpec, tables: Tables) -> Result<Tokenizer, TokenizerError> {
        let Tables {
            vocab,
            offsets,
            kinds,
            merges,
            scores,
            text_index,
            merge_index,
        } = tables;
        let vocab = Vocab::load(vocab, offsets, &kinds, text_index, spec.vocab_size)?;
        for (id, what) in [
            (spec.bos, "bos"),
            (spec.eos, "eos"),
            (spec.unk, "unk"),
            (spec.pad, "pad"),
        ] {
            if let Some(id) = id {
                vocab.check(id, what)?;
            }
        }
        for &id in &spec.stop_tokens {
            vocab.check(id, "stop token")?;
        }
        if spec.add_bos && spec.bos.is_none() {
            return Err(TokenizerError::Spec(
                "add_bos is set but there is no bos token".into(),
            ));
        }
        if spec.add_eos && spec.eos.is_none() {
            return Err(TokenizerError::Spec(
                "add_eos is set but there is no eos token".into(),
            ));
        }
        let opts = BpeOptions {
            chars: spec.model == TokenizerModel::BpeSentencePiece,
            byte_fallback: spec.byte_fallback,
            ignore_merges: spec.ignore_merges,
            unk: spec.unk,
        };
        let model = match spec.model {
            TokenizerModel::WordPiece => {
                let unk = spec
                    .unk
                    .ok_or_else(|| TokenizerError::Spec("WordPiece needs an unk token".into()))?;
                let prefix = spec
                    .continuing_subword_prefix
                    .clone()
                    .unwrap_or_else(|| "##".into());
                Model::WordPiece(WordPiece::new(
                    prefix,
                    spec.max_input_chars_per_word.unwrap_or(100),
                    unk,
                ))
            }
            _ => Model::Bpe(match (merges, merge_index, scores) {
                (Some(merges), Some(index), _) => Bpe::from_index(&vocab, merges, index, opts)?,
                (Some(merges), None, _) => Bpe::from_merges(&vocab, merges, opts)?,
                (None, Some(_), _) => {
                    return Err(table_error(
                        tok_tensor::MERGE_INDEX,
                        format!("indexes merges, but there is no {}", tok_tensor::MERGES),
                    ));
                }
                (None, None, Some(scores)) if opts.chars => Bpe::from_scores(&vocab, scores, opts)?,
                // No merges at all: every piece stays bytes (or characters).
                _ => Bpe::from_merges(&vocab, Vec::new().into(), opts)?,
            }),
        };
        Ok(Tokenizer {
            pre: PreTokenizer::new(&spec.pre_tokenizer)?,
            specials: Specials::new(&vocab)?,
            spec,
            vocab,
            model,
        })
    }

    /// The lookup tables of the tokenizer made of `spec` and its table `tensors` (those of
    /// [`tok_tensor`]), as tensors to store beside them ([`tok_tensor::TEXT_INDEX`], and
    /// [`tok_tensor::MERGE_INDEX`] for BPE ranked by merges), so that loading the packed file
    /// maps them instead of building them. The tables are checked as [`Tokenizer::from_packed`] checks them.
    pub fn index_tensors(
        spec: &TokenizerSpec,
        tensors: &[(TensorPlan, Vec<u8>)],
    ) -> Result<Vec<(TensorPlan, Vec<u8>)>, TokenizerError> {
        let tok = Tokenizer::from_tables(spec.clone(), Tables::gather(tensors)?)?;
        let tensor = |name: &str, shape: Vec<u64>, words: &[u32]| {
            let plan = TensorPlan {
                name: name.into(),
                dtype: DType::U32,
                layout: Layout::RowMajor,
                shape,
            };
            (plan, words.iter().flat_map(|w| w.to_le_bytes()).collect())
        };
        let text = tok.vocab.text_index();
        let mut out = vec![tensor(tok_tensor::TEXT_INDEX, vec![text.len() as u64], text)];
        if let Model::Bpe(bpe) = &tok.model
            && let Some(pairs) = bpe.merge_index()
        {
            out.push(tensor(tok_tensor::MERGE_INDEX, vec![pairs.len() as u64], pairs));
        }
        Ok(out)
    }

    /// Encodes `text` into token ids.
    pub fn encode(&self, text: &str, opts: EncodeOptions) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with_plain(text, &[], opts)
    }

    /// Encodes `text` of which the byte ranges `plain` are plain text: special-token text in
    /// them is tokenized as ordinary text even when `opts.parse_special` (which applies to the
    /// rest). Used to keep text from a user inside a rendered chat prompt from becoming control
    /// tokens. Where the ranges spell no special token, the ids are those of [`Tokenizer::encode`].
    ///
    /// The ranges must be sorted, disjoint, within `text` and on character boundaries.
    pub fn encode_with_plain(
        &self,
        text: &str,
        plain: &[Range<usize>],
        opts: EncodeOptions,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut pos = 0;
        for r in plain {
            if r.start < pos
                || r.end < r.start
                || !text.is_char_boundary(r.start)
                || !text.is_char_boundary(r.end)
            {
                return Err(TokenizerError::Spec(format!(
                    "plain-text range {r:?} is out of order or not on character boundaries of a {}-byte text",
                    text.len()
                )));
            }
            pos = r.end;
        }
        let mut body = Vec::with_capacity(text.len() / 3 + 2);
        let mut scratch = Scratch::default();
        self.specials
            .split(text, opts.parse_special, plain, |segment| match segment {
                Segment::Token(id) => {
                    body.push(id);
                    Ok(())
                }
                Segment::Text(t) => {
                    let first = std::ptr::eq(t.as_ptr(), text.as_ptr());
                    self.encode_text(t, first, &mut body, &mut scratch)
                }
            })?;
        let bos = self.spec.bos.filter(|_| opts.add_special && self.spec.add_bos);
        let eos = self.spec.eos.filter(|_| opts.add_special && self.spec.add_eos);
        if let Some(max) = opts.max_length {
            body.truncate(max.saturating_sub(usize::from(bos.is_some()) + usize::from(eos.is_some())));
        }
        let mut ids = Vec::with_capacity(body.len() + 2);
        ids.extend(bos);
        ids.append(&mut body);
        ids.extend(eos);
        if let Some(max) = opts.max_length {
            ids.truncate(max);
        }
        Ok(ids)
    }

    /// Encodes text that holds no special tokens (`first`: it starts the whole text).
    fn encode_text(
        &self,
        text: &str,
        first: bool,
        out: &mut Vec<u32>,
        scratch: &mut Scratch,
    ) -> Result<(), TokenizerError> {
        if text.is_empty() {
            return Ok(());
        }
        let n = &self.spec.normalizer;
        let normalized = normalize::normalize(n, text);
        let spaced = normalized.starts_with(' ');
        let prefix = n.add_dummy_prefix
            && match n.dummy_prefix {
                DummyPrefix::Always => true,
                DummyPrefix::UnlessSpaced => !spaced,
                DummyPrefix::FirstUnlessSpaced => first && !spaced,
            };
        let prefixed;
        let text = if prefix {
            prefixed = format!(" {normalized}");
            &prefixed
        } else {
            &*normalized
        };
        self.pre.split(text, &mut scratch.pieces)?;
        for r in &scratch.pieces.ranges {
            let piece = &text[r.clone()];
            match &self.model {
                Model::Bpe(bpe) => bpe.encode(&self.vocab, piece, out, &mut scratch.bpe),
                Model::WordPiece(wp) => wp.encode(&self.vocab, piece, out, &mut scratch.word),
            }
        }
        Ok(())
    }

    /// The byte ranges of `text` that spell special or added tokens (leftmost, longest first):
    /// what [`EncodeOptions::parse_special`] would turn into those tokens.
    pub fn special_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.specials.spans(text)
    }

    /// The bytes `ids` stand for: the concatenation of their tokens' bytes (for WordPiece,
    /// words joined by spaces with the continuation prefixes removed). Ids outside the
    /// vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let tokens = ids.iter().filter_map(|&id| self.vocab.get(id));
        let mut out = Vec::new();
        match &self.model {
            Model::WordPiece(wp) => wp.join(tokens, &mut out),
            Model::Bpe(_) => tokens.for_each(|t| out.extend_from_slice(t)),
        }
        out
    }

    /// The bytes of token `id`, or `None` outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.get(id)
    }

    /// The kind of token `id`, or `None` outside the vocabulary.
    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.vocab.kind(id)
    }

    /// Whether `id` is a special (control) token.
    pub fn is_special(&self, id: u32) -> bool {
        self.kind(id) == Some(TokenKind::Special)
    }

    /// The token spelled exactly `text` (ordinary tokens first, then special and added ones).
    pub fn token_id(&self, text: &str) -> Option<u32> {
        let text = text.as_bytes();
        self.vocab
            .normal_id(text)
            .or_else(|| self.specials.id(&self.vocab, text))
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Length in bytes of the longest token.
    pub fn max_token_len(&self) -> usize {
        self.vocab.max_token_len()
    }

    /// Beginning-of-sequence token (`[CLS]` for BERT).
    pub fn bos(&self) -> Option<u32> {
        self.spec.bos
    }

    /// End-of-sequence token (`[SEP]` for BERT).
    pub fn eos(&self) -> Option<u32> {
        self.spec.eos
    }

    /// Padding token.
    pub fn pad(&self) -> Option<u32> {
        self.spec.pad
    }

    /// Tokens that end a generation (end of sequence and end of turn).
    pub fn stop_tokens(&self) -> &[u32] {
        &self.spec.stop_tokens
    }

    /// Whether `id` ends a generation.
    pub fn is_stop(&self, id: u32) -> bool {
        self.spec.stop_tokens.contains(&id)
    }

    /// The model's default maximum input length (encoders), if it has one.
    pub fn max_length(&self) -> Option<usize> {
        self.spec.max_length
    }

    /// The tokenizer description from the file.
    pub fn spec(&self) -> &TokenizerSpec {
        &self.spec
    }

    /// A streaming decoder over this tokenizer (see [`TokenStream`]).
    pub fn stream(&self, skip_special: bool) -> TokenStream<'_> {
        TokenStream::new(self, skip_special)
    }
}
