//! WordPiece (BERT): each word is split greedily into the longest vocabulary entries, pieces
//! after the first spelled with the continuation prefix (`##`); a word that cannot be split,
//! or is too long, becomes the unknown token.

use super::vocab::Vocab;

/// A WordPiece model.
#[derive(Debug)]
pub(crate) struct WordPiece {
    prefix: String,
    max_chars: usize,
    unk: u32,
}

impl WordPiece {
    /// A model with continuation `prefix`, word limit `max_chars` and unknown token `unk`.
    pub fn new(prefix: String, max_chars: usize, unk: u32) -> WordPiece {
        WordPiece {
            prefix,
            max_chars,
            unk,
        }
    }

    /// Encodes one word, appending its ids to `out` (`buf` is scratch space).
    pub fn encode(&self, vocab: &Vocab, word: &str, out: &mut Vec<u32>, buf: &mut Vec<u8>) {
        if word.chars().nth(self.max_chars).is_some() {
            out.push(self.unk);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                buf.clear();
                if start > 0 {
                    buf.extend_from_slice(self.prefix.as_bytes());
                }
                buf.extend_from_slice(&word.as_bytes()[start..end]);
                if let Some(id) = vocab.normal_id(buf) {
                    break Some(id);
                }
                // Back off one character.
                match word[start..end].char_indices().next_back() {
                    Some((i, _)) if i > 0 => end = start + i,
                    _ => break None,
                }
            };
            let Some(id) = found else {
                out.truncate(mark);
                out.push(self.unk);
                return;
            };
            out.push(id);
            start = end;
        }
    }

    /// Appends the text of `tokens` joined as words: continuations glued to the word before,
    /// other tokens after a space.
    pub fn join<'a>(&self, tokens: impl Iterator<Item = &'a [u8]>, out: &mut Vec<u8>) {
        for t in tokens {
            match t.strip_prefix(self.prefix.as_bytes()) {
                Some(rest) if !self.prefix.is_empty() => out.extend_from_slice(rest),
                _ => {
                    if !out.is_empty() {
                        out.push(b' ');
                    }
                    out.extend_from_slice(t);
                }
            }
        }
    }
}
