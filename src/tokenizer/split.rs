//! Pre-tokenization: splitting normalized text into the pieces the model encodes one by one.

use std::ops::Range;

use fancy_regex::{Regex, RegexBuilder};

use super::TokenizerError;
use super::normalize::{is_punctuation, is_whitespace};
use crate::format::meta::PreTokenizerStep;

/// One compiled step.
#[derive(Debug)]
enum Step {
    /// Matches and the text between them become pieces.
    Regex(Regex),
    /// Digits apart from other characters, each alone if `individual`.
    Digits { individual: bool },
    /// Whitespace removed, each punctuation character alone.
    Bert,
}

/// The compiled pre-tokenizer steps.
#[derive(Debug)]
pub(crate) struct PreTokenizer {
    steps: Vec<Step>,
}

/// Reusable piece lists.
#[derive(Debug, Default)]
pub(crate) struct Pieces {
    /// The pieces after the last step, as byte ranges of the text.
    pub ranges: Vec<Range<usize>>,
    next: Vec<Range<usize>>,
}

impl PreTokenizer {
    /// Compiles `steps` (regexes in Oniguruma syntax).
    pub fn new(steps: &[PreTokenizerStep]) -> Result<PreTokenizer, TokenizerError> {
        let steps = steps
            .iter()
            .map(|s| match s {
                PreTokenizerStep::Split { pattern } => RegexBuilder::new(pattern)
                    .oniguruma_mode(true)
                    .build()
                    .map(Step::Regex)
                    .map_err(|e| TokenizerError::Pattern {
                        pattern: pattern.clone(),
                        message: e.to_string(),
                    }),
                &PreTokenizerStep::Digits { individual } => Ok(Step::Digits { individual }),
                PreTokenizerStep::Bert => Ok(Step::Bert),
            })
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer { steps })
    }

    /// Splits `text` into `pieces.ranges`.
    pub fn split(&self, text: &str, pieces: &mut Pieces) -> Result<(), TokenizerError> {
        pieces.ranges.clear();
        if !text.is_empty() {
            pieces.ranges.push(0..text.len());
        }
        for step in &self.steps {
            pieces.next.clear();
            for r in &pieces.ranges {
                step.split(&text[r.clone()], r.start, &mut pieces.next)?;
            }
            std::mem::swap(&mut pieces.ranges, &mut pieces.next);
        }
        Ok(())
    }
}

/// Pushes `start..end` (offset by `base`) unless empty.
fn push(out: &mut Vec<Range<usize>>, base: usize, start: usize, end: usize) {
    if start < end {
        out.push(base + start..base + end);
    }
}

impl Step {
    fn split(&self, piece: &str, base: usize, out: &mut Vec<Range<usize>>) -> Result<(), TokenizerError> {
        match self {
            Step::Regex(re) => {
                let mut last = 0;
                for m in re.find_iter(piece) {
                    let m = m.map_err(|e| TokenizerError::Split(e.to_string()))?;
                    push(out, base, last, m.start());
                    push(out, base, m.start(), m.end());
                    last = m.end();
                }
                push(out, base, last, piece.len());
            }
            &Step::Digits { individual } => {
                split_chars(piece, base, out, |c, prev| match prev {
                    Some(p) if c.is_numeric() && p.is_numeric() => individual,
                    Some(p) => c.is_numeric() != p.is_numeric(),
                    None => false,
                });
            }
            Step::Bert => {
                let mut start = 0;
                for (i, c) in piece.char_indices() {
                    if is_whitespace(c) {
                        push(out, base, start, i);
                        start = i + c.len_utf8();
                    } else if is_punctuation(c) {
                        push(out, base, start, i);
                        push(out, base, i, i + c.len_utf8());
                        start = i + c.len_utf8();
                    }
                }
                push(out, base, start, piece.len());
            }
        }
        Ok(())
    }
}

/// Splits `piece` before each character for which `cut(char, previous char)` holds.
fn split_chars(
    piece: &str,
    base: usize,
    out: &mut Vec<Range<usize>>,
    cut: impl Fn(char, Option<char>) -> bool,
) {
    let mut start = 0;
    let mut prev = None;
    for (i, c) in piece.char_indices() {
        if cut(c, prev) {
            push(out, base, start, i);
            start = i;
        }
        prev = Some(c);
    }
    push(out, base, start, piece.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(steps: &[PreTokenizerStep], text: &str) -> Vec<String> {
        let pre = PreTokenizer::new(steps).unwrap();
        let mut p = Pieces::default();
        pre.split(text, &mut p).unwrap();
        p.ranges.iter().map(|r| text[r.clone()].to_owned()).collect()
    }

    const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    #[test]
    fn gpt2_regex_with_lookahead() {
        let split = [PreTokenizerStep::Split { pattern: GPT2.into() }];
        assert_eq!(
            pieces(&split, "Hello  world's 42!\n\n x"),
            ["Hello", " ", " world", "'s", " 42", "!", "\n\n", " x"]
        );
        assert_eq!(pieces(&split, "a   "), ["a", "   "]);
        assert!(pieces(&split, "").is_empty());
    }

    #[test]
    fn case_insensitive_groups() {
        let split = [PreTokenizerStep::Split {
            pattern: r"(?i:'s|'ll)|\p{L}+".into(),
        }];
        assert_eq!(pieces(&split, "IT'S WE'LL"), ["IT", "'S", " ", "WE", "'LL"]);
    }

    #[test]
    fn digits() {
        let one = [PreTokenizerStep::Digits { individual: true }];
        assert_eq!(pieces(&one, "ab123c4"), ["ab", "1", "2", "3", "c", "4"]);
        let runs = [PreTokenizerStep::Digits { individual: false }];
        assert_eq!(pieces(&runs, "ab123c4"), ["ab", "123", "c", "4"]);
    }

    #[test]
    fn steps_apply_in_turn() {
        let steps = [
            PreTokenizerStep::Digits { individual: true },
            PreTokenizerStep::Split { pattern: GPT2.into() },
        ];
        assert_eq!(
            pieces(&steps, "year 2024 ok"),
            ["year", " ", "2", "0", "2", "4", " ok"]
        );
    }

    #[test]
    fn bert() {
        assert_eq!(
            pieces(&[PreTokenizerStep::Bert], " Hi,  there!? ok "),
            ["Hi", ",", "there", "!", "?", "ok"]
        );
    }

    #[test]
    fn bad_patterns_are_errors() {
        let err = PreTokenizer::new(&[PreTokenizerStep::Split { pattern: "(".into() }]).unwrap_err();
        assert!(matches!(err, TokenizerError::Pattern { .. }));
    }
}
