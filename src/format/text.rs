//! Text that users name (a perplexity text, a corpus, a grammar, a system prompt, chat lines
//! from a pipe), read with a bound: a device such as `/dev/zero` or a wrong file is refused
//! with an error instead of filling memory.

use std::io::{self, BufRead, Read};
use std::path::Path;

/// Most bytes of text edgelm reads from one file or line: far beyond any real prompt, corpus
/// or evaluation text (wikitext-2's test set is 1.3 MB).
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

fn too_large() -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!(
            "more than {} MiB of text, the most edgelm reads (a device or the wrong file?)",
            MAX_TEXT_BYTES >> 20
        ),
    )
}

/// All of `reader`, or an error past [`MAX_TEXT_BYTES`].
pub fn read_text(reader: impl Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_TEXT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The file at `path`, as [`read_text`].
pub fn read_text_file(path: &Path) -> io::Result<Vec<u8>> {
    read_text(std::fs::File::open(path)?)
}

/// The next line of `reader` with its end of line, empty at the end of the input; an error
/// past [`MAX_TEXT_BYTES`].
pub fn read_text_line(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(MAX_TEXT_BYTES + 1).read_until(b'\n', &mut bytes)?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endless_input_is_refused_at_the_bound() {
        let zeros = io::repeat(0);
        assert_eq!(read_text(zeros).unwrap_err().kind(), io::ErrorKind::FileTooLarge);
        let mut zeros = io::BufReader::new(io::repeat(0));
        assert_eq!(
            read_text_line(&mut zeros).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        let mut lines = &b"one\ntwo"[..];
        assert_eq!(read_text_line(&mut lines).unwrap(), b"one\n");
        assert_eq!(read_text_line(&mut lines).unwrap(), b"two");
        assert!(read_text_line(&mut lines).unwrap().is_empty());
        assert_eq!(read_text(&b"abc"[..]).unwrap(), b"abc");
    }
}
