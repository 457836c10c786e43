//! Streaming decode: token ids in, text out, never splitting a UTF-8 character, also when a
//! character spans several byte tokens; no allocation per token.

use super::Tokenizer;
use crate::format::meta::TokenKind;

/// Turns generated ids into text piece by piece.
///
/// Bytes that cannot start or continue a valid UTF-8 character come out as U+FFFD; the
/// incomplete tail of a character waits for the next token.
#[derive(Debug)]
pub struct TokenStream<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    pending: Vec<u8>,
    text: String,
}

impl<'a> TokenStream<'a> {
    /// A stream decoding with `tok`; special tokens produce no text when `skip_special`.
    pub fn new(tok: &'a Tokenizer, skip_special: bool) -> TokenStream<'a> {
        let room = tok.max_token_len() + 4;
        TokenStream {
            tok,
            skip_special,
            pending: Vec::with_capacity(room),
            // Every byte may become a 3-byte replacement character.
            text: String::with_capacity(3 * room),
        }
    }

    /// Adds token `id` and returns the text completed by it (empty while a character is
    /// incomplete; ids outside the vocabulary add nothing).
    pub fn push(&mut self, id: u32) -> &str {
        self.text.clear();
        let Some(bytes) = self.tok.token_bytes(id) else {
            return &self.text;
        };
        if self.skip_special && self.tok.kind(id) == Some(TokenKind::Special) {
            return &self.text;
        }
        self.pending.extend_from_slice(bytes);
        self.drain(false);
        &self.text
    }

    /// Ends the stream: returns what is left (an incomplete character as U+FFFD) and resets.
    pub fn finish(&mut self) -> &str {
        self.text.clear();
        self.drain(true);
        &self.text
    }

    /// Clears any incomplete character without output.
    pub fn reset(&mut self) {
        self.pending.clear();
        self.text.clear();
    }

    /// Moves the complete characters of `pending` to `text` (all of it when `all`).
    fn drain(&mut self, all: bool) {
        let mut start = 0;
        while start < self.pending.len() {
            match std::str::from_utf8(&self.pending[start..]) {
                Ok(s) => {
                    self.text.push_str(s);
                    start = self.pending.len();
                }
                Err(e) => {
                    let valid = start + e.valid_up_to();
                    if let Ok(s) = std::str::from_utf8(&self.pending[start..valid]) {
                        self.text.push_str(s);
                    }
                    match e.error_len() {
                        Some(bad) => start = valid + bad,
                        None if all => start = self.pending.len(),
                        None => {
                            start = valid;
                            break;
                        }
                    }
                    self.text.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }
        self.pending.drain(..start);
    }
}
