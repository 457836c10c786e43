//! GPT-2's reversible byte-to-unicode mapping, undone: byte-level BPE vocabularies spell each
//! byte as a printable character, and edgelm stores the bytes themselves.

/// Whether byte `b` is spelled as the character with the same code point.
fn printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The byte that character `c` spells, if `c` is in the byte-level alphabet.
pub(super) fn char_to_byte(c: char) -> Option<u8> {
    let cp = u32::from(c);
    if let Ok(b) = u8::try_from(cp)
        && printable(b)
    {
        return Some(b);
    }
    // The other bytes are spelled 256, 257, ... in increasing byte order.
    let n = usize::try_from(cp.checked_sub(256)?).ok()?;
    (0..=255u8).filter(|&b| !printable(b)).nth(n)
}

/// The bytes a byte-level token spells, or `None` if it has a character outside the alphabet.
pub(super) fn decode(token: &str) -> Option<Vec<u8>> {
    token.chars().map(char_to_byte).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection_onto_bytes() {
        let mut seen = [false; 256];
        let mut count = 0;
        for cp in 0..1024u32 {
            if let Some(b) = char::from_u32(cp).and_then(char_to_byte) {
                assert!(!seen[usize::from(b)], "byte {b} spelled twice");
                seen[usize::from(b)] = true;
                count += 1;
            }
        }
        assert_eq!(count, 256);
    }

    #[test]
    fn known_spellings() {
        assert_eq!(decode("Ġhello").unwrap(), b" hello");
        assert_eq!(decode("Ċ").unwrap(), b"\n");
        assert_eq!(decode("ĉ").unwrap(), b"\t");
        assert_eq!(decode("Ã©").unwrap(), "é".as_bytes());
        assert_eq!(decode("Ā").unwrap(), [0u8]);
        assert!(decode("▁x").is_none());
    }
}
