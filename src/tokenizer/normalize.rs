//! Text normalization before pre-tokenization: NFC, and BERT's cleaning, CJK spacing, accent
//! stripping and lower-casing (in Hugging Face `BertNormalizer`'s order).

use std::borrow::Cow;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::{IsNormalized, is_nfc_quick};

use crate::format::meta::Normalizer;

/// BERT's whitespace: tab, newline, carriage return and Unicode white space.
pub(crate) fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// BERT's control characters: Unicode "other" categories except tab, newline, carriage return.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r')
        && matches!(
            get_general_category(c),
            GeneralCategory::Control
                | GeneralCategory::Format
                | GeneralCategory::Surrogate
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
        )
}

/// CJK ideographs (the ranges of BERT's `_is_chinese_char`).
fn is_chinese(c: char) -> bool {
    matches!(
        u32::from(c),
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

/// BERT's punctuation: ASCII punctuation and the Unicode punctuation categories.
pub(crate) fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::OpenPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::OtherPunctuation
        )
}

/// `text` normalized as `n` says (borrowed when nothing changes).
pub(crate) fn normalize<'a>(n: &Normalizer, text: &'a str) -> Cow<'a, str> {
    let mut s = Cow::Borrowed(text);
    if n.nfc && is_nfc_quick(s.chars()) != IsNormalized::Yes {
        s = Cow::Owned(s.nfc().collect());
    }
    if n.clean_text || n.handle_chinese_chars {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if n.clean_text {
                if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                    continue;
                }
                if is_whitespace(c) {
                    out.push(' ');
                    continue;
                }
            }
            if n.handle_chinese_chars && is_chinese(c) {
                out.extend([' ', c, ' ']);
            } else {
                out.push(c);
            }
        }
        s = Cow::Owned(out);
    }
    if n.strip_accents {
        s = Cow::Owned(
            s.nfd()
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                .collect(),
        );
    }
    if n.lowercase {
        // Character by character, as Hugging Face does (no final-sigma rule).
        s = Cow::Owned(s.chars().flat_map(char::to_lowercase).collect());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bert() -> Normalizer {
        Normalizer {
            clean_text: true,
            handle_chinese_chars: true,
            strip_accents: true,
            lowercase: true,
            ..Normalizer::default()
        }
    }

    #[test]
    fn bert_normalizer() {
        assert_eq!(normalize(&bert(), "Héllo\tWORLD\u{200b}!"), "hello world!");
        assert_eq!(normalize(&bert(), "你好a"), " 你  好 a");
        assert_eq!(normalize(&bert(), "a\u{0}b\u{fffd}c\u{7}d"), "abcd");
        assert_eq!(normalize(&bert(), "ΣΑΣ"), "σασ");
    }

    #[test]
    fn nothing_to_do_borrows() {
        assert!(matches!(normalize(&Normalizer::default(), "x"), Cow::Borrowed(_)));
        let nfc = Normalizer {
            nfc: true,
            ..Normalizer::default()
        };
        assert!(matches!(normalize(&nfc, "plain"), Cow::Borrowed(_)));
        assert_eq!(normalize(&nfc, "e\u{301}"), "\u{e9}");
    }

    #[test]
    fn categories() {
        assert!(is_punctuation('$') && is_punctuation('。') && is_punctuation('¿'));
        assert!(!is_punctuation('a') && !is_punctuation('½'));
        assert!(is_control('\u{200b}') && !is_control('\n') && !is_control('a'));
    }
}
