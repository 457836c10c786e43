//! The per-vocabulary work done once per model: every text token's bytes, sorted, with the
//! length of the prefix each shares with the one before (so a mask walks shared prefixes once).

use std::fmt;

use crate::format::meta::TokenKind;
use crate::tokenizer::Tokenizer;

/// A tokenizer's vocabulary prepared for grammar masks. Build it once per model and share it
/// (`Arc<TokenTable>`) between matchers.
pub struct TokenTable {
    /// Text of the tokens that can appear in constrained text, in byte order.
    text: Vec<u8>,
    /// Per sorted token: id, start in `text`, length, prefix shared with the previous one.
    sorted: Vec<Entry>,
    /// Per id: index into `sorted`, or `u32::MAX` for special, unused and empty tokens.
    slot: Vec<u32>,
    stops: Vec<u32>,
    fallback: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    id: u32,
    start: u32,
    len: u32,
    lcp: u32,
    /// The characters of the token as a bitmap, if they are all ASCII.
    ascii: Option<[u64; 2]>,
}

impl fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenTable")
            .field("vocab", &self.slot.len())
            .field("text_tokens", &self.sorted.len())
            .field("stops", &self.stops)
            .finish()
    }
}

impl TokenTable {
    /// The table of `tokenizer`'s vocabulary: normal, byte and added tokens are text; special
    /// and unused ones never match a grammar; stop tokens end it.
    pub fn new(tokenizer: &Tokenizer) -> TokenTable {
        let n = tokenizer.vocab_size() as u32;
        let tokens = (0..n).filter_map(|id| {
            let text = matches!(
                tokenizer.kind(id),
                Some(TokenKind::Normal | TokenKind::Byte | TokenKind::Added)
            );
            text.then(|| tokenizer.token_bytes(id).map(|b| (id, b))).flatten()
        });
        let mut stops = tokenizer.stop_tokens().to_vec();
        if stops.is_empty() {
            stops.extend(tokenizer.eos());
        }
        TokenTable::from_tokens(n as usize, tokens, stops)
    }

    /// The table of a vocabulary of `vocab` ids whose text tokens are `tokens` (id, bytes)
    /// and whose generation-ending tokens are `stops`; other ids are never allowed.
    pub fn from_tokens<'a>(
        vocab: usize,
        tokens: impl IntoIterator<Item = (u32, &'a [u8])>,
        stops: Vec<u32>,
    ) -> TokenTable {
        let fallback = stops.first().copied().unwrap_or(0);
        let mut list: Vec<(u32, &[u8])> = tokens.into_iter().filter(|(_, b)| !b.is_empty()).collect();
        list.sort_unstable_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)));
        let mut text = Vec::with_capacity(list.iter().map(|t| t.1.len()).sum());
        let mut sorted = Vec::with_capacity(list.len());
        let mut slot = vec![u32::MAX; vocab];
        let mut prev: &[u8] = &[];
        for (i, &(id, bytes)) in list.iter().enumerate() {
            let lcp = prev.iter().zip(bytes).take_while(|(a, b)| a == b).count();
            let ascii = bytes.iter().try_fold([0u64; 2], |mut set, &b| {
                let word = set.get_mut(usize::from(b / 64))?;
                *word |= 1 << (b % 64);
                Some(set)
            });
            sorted.push(Entry {
                id,
                start: text.len() as u32,
                len: bytes.len() as u32,
                lcp: lcp as u32,
                ascii,
            });
            text.extend_from_slice(bytes);
            if let Some(s) = slot.get_mut(id as usize) {
                *s = i as u32;
            }
            prev = bytes;
        }
        TokenTable {
            text,
            sorted,
            slot,
            stops,
            fallback,
        }
    }

    /// Number of ids.
    pub fn vocab_size(&self) -> usize {
        self.slot.len()
    }

    /// Whether `id` is a text token (one a grammar can allow).
    pub(crate) fn is_text(&self, id: u32) -> bool {
        self.slot.get(id as usize).is_some_and(|&s| s != u32::MAX)
    }

    /// Whether `id` ends generation.
    pub(crate) fn is_stop(&self, id: u32) -> bool {
        self.stops.contains(&id)
    }

    /// The token that ends generation when a grammar leaves nothing to choose: the first
    /// stop token (0 if there is none).
    pub(crate) fn fallback_token(&self) -> u32 {
        self.fallback
    }

    /// The bytes of text token `id`.
    pub(crate) fn bytes(&self, id: u32) -> Option<&[u8]> {
        let &s = self.slot.get(id as usize)?;
        (s != u32::MAX).then(|| self.sorted_bytes(s as usize))
    }

    /// The text tokens' ids in byte order.
    pub(crate) fn sorted_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.sorted.iter().map(|e| e.id)
    }

    /// Bytes of the `i`-th token in byte order.
    pub(crate) fn sorted_bytes(&self, i: usize) -> &[u8] {
        let e = self.sorted[i];
        &self.text[e.start as usize..(e.start + e.len) as usize]
    }

    /// Whether the `i`-th token in byte order is made only of the ASCII characters in `set`.
    pub(crate) fn within(&self, i: usize, set: &[u64; 2]) -> bool {
        self.sorted[i]
            .ascii
            .is_some_and(|a| a[0] & !set[0] == 0 && a[1] & !set[1] == 0)
    }

    /// Length of the prefix the `i`-th token shares with the one before.
    pub(crate) fn lcp(&self, i: usize) -> usize {
        self.sorted[i].lcp as usize
    }
}
