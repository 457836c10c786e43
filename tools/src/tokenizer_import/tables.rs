//! The vocabulary as the importers build it, and its conversion to table tensors.

use anyhow::{Result, bail, ensure};
use edgelm::format::meta::{TokenKind, TokenizerSpec, tok_tensor};
use edgelm::format::{DType, Layout, TensorPlan};
use edgelm::tokenizer::Tokenizer;

/// Texts of end-of-turn tokens that end a generation besides the end-of-sequence token (the
/// list llama.cpp uses to find them).
const END_OF_TURN: [&str; 11] = [
    "<|eot_id|>",
    "<|eom_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];

/// Token bytes, kinds, merges and scores, indexed by token id.
#[derive(Debug, Default)]
pub(super) struct Tables {
    /// The bytes of each token.
    pub tokens: Vec<Vec<u8>>,
    /// The kind of each token.
    pub kinds: Vec<TokenKind>,
    /// BPE merges in rank order: `(left, right, merged)`.
    pub merges: Vec<[u32; 3]>,
    /// SentencePiece scores, one per token.
    pub scores: Option<Vec<f32>>,
}

impl Tables {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// `id` if it names a token, else an error naming `what`.
    pub fn check_id(&self, id: u64, what: &str) -> Result<u32> {
        match u32::try_from(id) {
            Ok(i) if (i as usize) < self.len() => Ok(i),
            _ => bail!("{what} id {id} is outside the {}-token vocabulary", self.len()),
        }
    }

    /// The special tokens that end a turn, with `eos` and `extra` (sorted, without repeats).
    pub fn stop_tokens(&self, eos: Option<u32>, extra: &[u32]) -> Vec<u32> {
        let mut stops: Vec<u32> = eos.into_iter().chain(extra.iter().copied()).collect();
        for (id, (text, kind)) in self.tokens.iter().zip(&self.kinds).enumerate() {
            if *kind == TokenKind::Special && END_OF_TURN.iter().any(|t| t.as_bytes() == text.as_slice()) {
                stops.push(id as u32);
            }
        }
        stops.sort_unstable();
        stops.dedup();
        stops
    }

    /// The tensors of [`tok_tensor`] for the tokenizer `spec` describes (merges and scores
    /// only when present), with the lookup tables the runtime would otherwise build at load.
    pub fn into_tensors(self, spec: &TokenizerSpec) -> Result<Vec<(TensorPlan, Vec<u8>)>> {
        let n = self.len();
        ensure!(n > 0, "the tokenizer has no tokens");
        ensure!(
            self.kinds.len() == n,
            "{} token kinds for {n} tokens",
            self.kinds.len()
        );
        let total: usize = self.tokens.iter().map(Vec::len).sum();
        ensure!(total > 0, "every token of the vocabulary is empty");
        ensure!(
            u32::try_from(total).is_ok(),
            "the vocabulary text is {total} bytes, over 4 GiB"
        );
        let mut bytes = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(4 * (n + 1));
        offsets.extend_from_slice(&0u32.to_le_bytes());
        for t in &self.tokens {
            bytes.extend_from_slice(t);
            offsets.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        }
        let kinds = self.kinds.iter().map(|&k| k as u8).collect();
        let mut out = vec![
            (plan(tok_tensor::VOCAB, DType::U8, &[total as u64]), bytes),
            (
                plan(tok_tensor::VOCAB_OFFSETS, DType::U32, &[n as u64 + 1]),
                offsets,
            ),
            (plan(tok_tensor::KINDS, DType::U8, &[n as u64]), kinds),
        ];
        if !self.merges.is_empty() {
            for (rank, m) in self.merges.iter().enumerate() {
                ensure!(
                    m.iter().all(|&id| (id as usize) < n),
                    "merge {rank} {m:?} names a token outside the vocabulary"
                );
            }
            let data = self
                .merges
                .iter()
                .flatten()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            out.push((
                plan(tok_tensor::MERGES, DType::U32, &[self.merges.len() as u64, 3]),
                data,
            ));
        }
        if let Some(scores) = self.scores {
            ensure!(scores.len() == n, "{} scores for {n} tokens", scores.len());
            ensure!(
                scores.iter().all(|s| s.is_finite()),
                "a token score is not a finite number"
            );
            let data = scores.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.push((plan(tok_tensor::SCORES, DType::F32, &[n as u64]), data));
        }
        let index = Tokenizer::index_tensors(spec, &out)?;
        out.extend(index);
        Ok(out)
    }
}

fn plan(name: &str, dtype: DType, shape: &[u64]) -> TensorPlan {
    TensorPlan {
        name: name.to_owned(),
        dtype,
        layout: Layout::RowMajor,
        shape: shape.to_vec(),
    }
}

/// `<0xXX>` → the byte `XX`.
pub(super) fn byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// SentencePiece's space marker.
pub(super) const SPM_SPACE: char = '▁';

/// A SentencePiece piece with its space markers turned into spaces.
pub(super) fn spm_text(piece: &str) -> Vec<u8> {
    piece.replace(SPM_SPACE, " ").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens() {
        assert_eq!(byte_token("<0x0A>"), Some(10));
        assert_eq!(byte_token("<0xff>"), Some(255));
        assert_eq!(byte_token("<0x0>"), None);
        assert_eq!(byte_token("<0xZZ>"), None);
        assert_eq!(byte_token("0x0A"), None);
    }

    fn spec(vocab_size: usize) -> TokenizerSpec {
        TokenizerSpec::new(edgelm::format::meta::TokenizerModel::BpeByteLevel, vocab_size)
    }

    #[test]
    fn tensors_have_consistent_shapes() {
        let tables = Tables {
            tokens: vec![b"a".to_vec(), b"b".to_vec(), b"ab".to_vec(), vec![]],
            kinds: vec![
                TokenKind::Normal,
                TokenKind::Normal,
                TokenKind::Normal,
                TokenKind::Unused,
            ],
            merges: vec![[0, 1, 2]],
            scores: None,
        };
        let t = tables.into_tensors(&spec(4)).unwrap();
        assert_eq!(t.len(), 6);
        assert_eq!(t[0].1, b"abab");
        assert_eq!(t[1].0.shape, [5]);
        assert_eq!(t[1].1.len(), 20);
        assert_eq!(t[3].0.shape, [1, 3]);
        assert_eq!(t[4].0.name, tok_tensor::TEXT_INDEX);
        assert_eq!(t[4].0.shape, [16]);
        assert_eq!(t[5].0.name, tok_tensor::MERGE_INDEX);
        assert_eq!(t[5].0.shape, [16]);
    }

    #[test]
    fn bad_merges_are_rejected() {
        let tables = Tables {
            tokens: vec![b"a".to_vec()],
            kinds: vec![TokenKind::Normal],
            merges: vec![[0, 0, 7]],
            scores: None,
        };
        assert!(tables.into_tensors(&spec(1)).is_err());
    }

    #[test]
    fn stop_tokens_include_end_of_turn_specials() {
        let tables = Tables {
            tokens: vec![b"<|im_end|>".to_vec(), b"<|im_end|>".to_vec(), b"x".to_vec()],
            kinds: vec![TokenKind::Special, TokenKind::Normal, TokenKind::Special],
            ..Tables::default()
        };
        assert_eq!(tables.stop_tokens(Some(2), &[2]), [0, 2]);
    }
}
