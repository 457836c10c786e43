//! Finding special and added tokens in text: leftmost, longest match first.

use std::ops::Range;

use aho_corasick::{AhoCorasick, MatchKind};

use super::TokenizerError;
use super::vocab::Vocab;
use crate::format::meta::TokenKind;

/// A run of plain text, or a token matched verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Segment<'t> {
    /// Text for the tokenization algorithm.
    Text(&'t str),
    /// A special or added token.
    Token(u32),
}

/// One automaton and the token id of each of its patterns.
#[derive(Debug)]
struct Matcher {
    automaton: AhoCorasick,
    ids: Vec<u32>,
}

impl Matcher {
    fn new(vocab: &Vocab, kinds: &[TokenKind]) -> Result<Option<Matcher>, TokenizerError> {
        let ids: Vec<u32> = (vocab.kinds().iter().enumerate())
            .filter(|&(id, k)| kinds.contains(k) && !vocab.token(id as u32).is_empty())
            .map(|(id, _)| id as u32)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(ids.iter().map(|&id| vocab.token(id)))
            .map_err(|e| TokenizerError::Spec(format!("special tokens: {e}")))?;
        Ok(Some(Matcher { automaton, ids }))
    }
}

/// Special and added tokens.
#[derive(Debug)]
pub(crate) struct Specials {
    /// Special and added tokens.
    all: Option<Matcher>,
    /// Added tokens only (matched even when special tokens are not parsed).
    added: Option<Matcher>,
}

impl Specials {
    /// The matchers for `vocab`'s special and added tokens.
    pub fn new(vocab: &Vocab) -> Result<Specials, TokenizerError> {
        Ok(Specials {
            all: Matcher::new(vocab, &[TokenKind::Special, TokenKind::Added])?,
            added: Matcher::new(vocab, &[TokenKind::Added])?,
        })
    }

    /// The token spelled exactly `text`, among special and added tokens.
    pub fn id(&self, vocab: &Vocab, text: &[u8]) -> Option<u32> {
        let m = self.all.as_ref()?;
        m.ids.iter().copied().find(|&id| vocab.token(id) == text)
    }

    /// The byte ranges of `text` that spell special or added tokens, leftmost-longest.
    pub fn spans(&self, text: &str) -> Vec<Range<usize>> {
        let Some(m) = &self.all else {
            return Vec::new();
        };
        (m.automaton.find_iter(text))
            .filter(|f| text.is_char_boundary(f.start()) && text.is_char_boundary(f.end()))
            .map(|f| f.range())
            .collect()
    }

    /// Calls `f` on the segments of `text` in order: added tokens always, special tokens only
    /// when `parse_special` and outside the byte ranges `plain` (sorted, disjoint, on character
    /// boundaries). A token never straddles a range's edge; text on both sides of an edge is
    /// one segment, so marking a range plain changes nothing where it spells no special token.
    pub fn split<'t, E>(
        &self,
        text: &'t str,
        parse_special: bool,
        plain: &[Range<usize>],
        mut f: impl FnMut(Segment<'t>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut last = 0;
        let mut region = |start: usize, end: usize, matcher: &Option<Matcher>| -> Result<(), E> {
            let Some(m) = matcher else {
                return Ok(());
            };
            let part = &text[start..end];
            for found in m.automaton.find_iter(part) {
                // Tokens are matched as byte strings; a match that would cut a character is
                // not a match of the text.
                if !part.is_char_boundary(found.start()) || !part.is_char_boundary(found.end()) {
                    continue;
                }
                let (s, e) = (start + found.start(), start + found.end());
                if last < s {
                    f(Segment::Text(&text[last..s]))?;
                }
                f(Segment::Token(m.ids[found.pattern().as_usize()]))?;
                last = e;
            }
            Ok(())
        };
        let outside = if parse_special { &self.all } else { &self.added };
        let mut pos = 0;
        for r in plain {
            region(pos, r.start, outside)?;
            region(r.start, r.end, &self.added)?;
            pos = r.end;
        }
        region(pos, text.len(), outside)?;
        if last < text.len() {
            f(Segment::Text(&text[last..]))?;
        }
        Ok(())
    }
}
