//! Word timestamps, as faster-whisper's `word_timestamps=True` (CTranslate2's `align` and
//! faster-whisper's `add_word_timestamps`): one decoder pass over a window's text gives the
//! cross-attention of the model's alignment heads; each head's attention is a softmax over the
//! audio's encoder positions, normalized over the tokens, median-filtered along time and
//! averaged over the heads; dynamic time warping through (tokens × positions) gives each token
//! its first position; tokens join into words at spaces, punctuation joins its neighbour, and
//! a few rules trim words that run across pauses.
//!
//! Allocates per window (the scores and the warping table); the decoding itself is untouched.

use super::beam::log_sum_exp;
use super::{Whisper, WhisperError, whisper_config};

/// Punctuation joined to the word after it (faster-whisper's `prepend_punctuations`).
pub const PREPEND_PUNCTUATIONS: &str = "\"'“¿([{-";
/// Punctuation joined to the word before it (faster-whisper's `append_punctuations`).
pub const APPEND_PUNCTUATIONS: &str = "\"'.。,，!！?？:：”)]}、";
/// Width of the median filter along time (CTranslate2's default).
const MEDIAN_FILTER_WIDTH: usize = 7;
/// Encoder positions per second.
const POSITIONS_PER_SECOND: f64 = 50.0;
/// Languages written without spaces: words are split wherever a token ends a character.
const UNSPACED: [&str; 6] = ["zh", "ja", "th", "lo", "my", "yue"];
/// Python's `string.punctuation`.
const ASCII_PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
/// Rows of logits computed at a time in the alignment pass.
const LOGIT_ROWS: usize = 16;

/// One word and when it was spoken.
#[derive(Clone, Debug, PartialEq)]
pub struct Word {
    /// The word with its leading space and any punctuation joined to it.
    pub word: String,
    /// Start, seconds.
    pub start: f32,
    /// End, seconds.
    pub end: f32,
    /// Mean probability of its tokens.
    pub probability: f32,
}

/// A word of the alignment, before it is placed in a segment.
#[derive(Clone, Debug)]
struct Timing {
    word: String,
    tokens: Vec<u32>,
    start: f64,
    end: f64,
    probability: f32,
}

/// One timed piece of a window: start, end (seconds) and its tokens; the word rules may move
/// its start and end.
pub(crate) struct Piece<'a> {
    pub start: &'a mut f32,
    pub end: &'a mut f32,
    pub tokens: &'a [u32],
    pub words: &'a mut Vec<Word>,
}

/// Adds words to the `pieces` of one encoded window (faster-whisper's `add_word_timestamps`):
/// `sot` is the start-of-transcript sequence (`<|sot|> <|lang|> <|task|>`), `frames` the
/// window's mel frames of audio, `time_offset` its start in seconds, `last_speech` the end of
/// the speech before it.
pub(crate) fn add_word_timestamps(
    w: &mut Whisper<'_>,
    pieces: &mut [Piece<'_>],
    sot: &[u32],
    language: &str,
    frames: usize,
    time_offset: f32,
    mut last_speech: f64,
) -> Result<(), WhisperError> {
    let eot = whisper_config(w.model().config()).tokens.eot;
    let text: Vec<u32> = pieces
        .iter()
        .flat_map(|p| p.tokens.iter().copied().filter(|&t| t < eot))
        .collect();
    let mut alignment = find_alignment(w, sot, &text, frames, language)?;
    let mut durations: Vec<f64> = alignment
        .iter()
        .map(|t| t.end - t.start)
        .filter(|&d| d != 0.0)
        .collect();
    let median = median(&mut durations).min(0.7);
    let max_duration = median * 2.0;
    if !durations.is_empty() {
        // Words at sentence boundaries are not longer than twice the median word.
        let ends = |word: &str| [".", "。", "!", "！", "?", "？"].contains(&word);
        for i in 1..alignment.len() {
            if alignment[i].end - alignment[i].start > max_duration {
                if ends(&alignment[i].word) {
                    alignment[i].end = alignment[i].start + max_duration;
                } else if ends(&alignment[i - 1].word) {
                    alignment[i].start = alignment[i].end - max_duration;
                }
            }
        }
    }
    merge_punctuations(&mut alignment);
    let offset = f64::from(time_offset);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let mut next = 0;
    for piece in pieces.iter_mut() {
        let own = piece.tokens.iter().filter(|&&t| t < eot).count();
        let mut saved = 0;
        let mut words: Vec<Timing> = Vec::new();
        while next < alignment.len() && saved < own {
            let timing = &alignment[next];
            if !timing.word.is_empty() {
                words.push(Timing {
                    start: round(offset + timing.start),
                    end: round(offset + timing.end),
                    ..timing.clone()
                });
            }
            saved += timing.tokens.len();
            next += 1;
        }
        if !words.is_empty() {
            let (mut start, mut end) = (f64::from(*piece.start), f64::from(*piece.end));
            trim_pause(&mut words, last_speech, median, max_duration);
            // The segment's start timestamp wins over a first word that is too long.
            if start < words[0].end && start - 0.5 > words[0].start {
                words[0].start = (words[0].end - median).min(start).max(0.0);
            } else {
                start = words[0].start;
            }
            // The segment's end timestamp wins over a last word that is too long.
            let last = words.len() - 1;
            if end > words[last].start && end + 0.5 < words[last].end {
                words[last].end = (words[last].start + median).max(end);
            } else {
                end = words[last].end;
            }
            last_speech = end;
            *piece.start = start as f32;
            *piece.end = end as f32;
        }
        *piece.words = words
            .into_iter()
            .map(|t| Word {
                word: t.word,
                start: t.start as f32,
                end: t.end as f32,
                probability: t.probability,
            })
            .collect();
    }
    Ok(())
}

/// The first and second word after a pause are not longer than twice the median word.
fn trim_pause(words: &mut [Timing], last_speech: f64, median: f64, max_duration: f64) {
    let long_first = words[0].end - words[0].start > max_duration;
    let long_pair = words.len() > 1 && words[1].end - words[0].start > max_duration * 2.0;
    if words[0].end - last_speech > median * 4.0 && (long_first || long_pair) {
        if words.len() > 1 && words[1].end - words[1].start > max_duration {
            let boundary = (words[1].end / 2.0).max(words[1].end - max_duration);
            words[0].end = boundary;
            words[1].start = boundary;
        }
        words[0].start = (words[0].end - max_duration).max(0.0);
    }
}

/// numpy's median (0 for none).
fn median(x: &mut [f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    x.sort_by(f64::total_cmp);
    let n = x.len();
    if n % 2 == 1 {
        x[n / 2]
    } else {
        (x[n / 2 - 1] + x[n / 2]) / 2.0
    }
}

/// The words of `text` (a window's text tokens) with their times relative to the window
/// (CTranslate2's `align` and faster-whisper's `find_alignment`).
fn find_alignment(
    w: &mut Whisper<'_>,
    sot: &[u32],
    text: &[u32],
    frames: usize,
    language: &str,
) -> Result<Vec<Timing>, WhisperError> {
    let c = w.model().config();
    let cfg = whisper_config(c);
    let t = cfg.tokens;
    let positions = frames / 2;
    if text.is_empty() || positions == 0 {
        return Ok(Vec::new());
    }
    let heads = cfg.alignment_heads.clone();
    if heads.is_empty() {
        return Err(WhisperError::Input(
            "the model lists no alignment heads, which word timestamps need (convert it from a \
             folder whose config.json or generation_config.json has \"alignment_heads\")"
                .into(),
        ));
    }
    let mut tokens = sot.to_vec();
    tokens.push(t.no_timestamps);
    tokens.extend_from_slice(text);
    tokens.push(t.eot);
    let n = tokens.len();
    let mut scores = vec![0.0f32; heads.len() * n * positions];
    let mut logits = vec![0.0f32; LOGIT_ROWS.min(n) * c.vocab_size];
    // Probability of each text token given the ones before, over the text vocabulary.
    let mut probs = vec![0.0f32; text.len()];
    let first = sot.len();
    w.align_pass(&tokens, &heads, positions, &mut scores, &mut logits, |r, row| {
        if (first..first + text.len()).contains(&r) {
            let text_row = &row[..(t.eot as usize).min(row.len())];
            probs[r - first] = (row[tokens[r + 1] as usize] - log_sum_exp(text_row)).exp();
        }
    })?;
    let matrix = attention_matrix(&mut scores, heads.len(), n, positions);
    // Rows of <|notimestamps|> and the text tokens (not the start sequence, not the end).
    let path = negative_dtw(&matrix[first * positions..(n - 1) * positions], positions);
    let mut with_eot = text.to_vec();
    with_eot.push(t.eot);
    let (words, word_tokens) = split_words(w, &with_eot, language);
    if word_tokens.len() <= 1 {
        return Ok(Vec::new());
    }
    // The position where each token row is first reached.
    let jumps: Vec<f64> = path
        .iter()
        .enumerate()
        .filter(|&(k, &(i, _))| k == 0 || path[k - 1].0 != i)
        .map(|(_, &(_, j))| j as f64 / POSITIONS_PER_SECOND)
        .collect();
    let at = |k: usize| jumps.get(k).or(jumps.last()).copied().unwrap_or(0.0);
    // The last word is the end of text.
    let count = words.len() - 1;
    let mut out = Vec::with_capacity(count);
    let mut begin = 0;
    for (word, tokens) in words.into_iter().zip(word_tokens).take(count) {
        let end = begin + tokens.len();
        let p = &probs[begin.min(probs.len())..end.min(probs.len())];
        out.push(Timing {
            word,
            tokens,
            start: at(begin),
            end: at(end),
            probability: p.iter().sum::<f32>() / p.len() as f32,
        });
        begin = end;
    }
    Ok(out)
}

/// From the alignment heads' scores (`[head][token][position]`, before the softmax) to one
/// `[token][position]` matrix: softmax over the positions, normalization over the tokens
/// (zero mean, unit variance), a median filter along the positions, the mean over the heads.
fn attention_matrix(scores: &mut [f32], heads: usize, n: usize, positions: usize) -> Vec<f32> {
    for row in scores.chunks_exact_mut(positions) {
        let lse = log_sum_exp(row);
        row.iter_mut().for_each(|v| *v = (*v - lse).exp());
    }
    for head in scores.chunks_exact_mut(n * positions) {
        for j in 0..positions {
            let column = (0..n).map(|i| head[i * positions + j]);
            let mean = column.clone().sum::<f32>() / n as f32;
            let var = column.map(|v| (v - mean) * (v - mean)).sum::<f32>() / n as f32;
            let inv = if var > 0.0 { 1.0 / var.sqrt() } else { 0.0 };
            for i in 0..n {
                let v = &mut head[i * positions + j];
                *v = (*v - mean) * inv;
            }
        }
    }
    let mut matrix = vec![0.0f32; n * positions];
    let mut filtered = vec![0.0f32; positions];
    for head in scores.chunks_exact(n * positions) {
        for (row, acc) in head
            .chunks_exact(positions)
            .zip(matrix.chunks_exact_mut(positions))
        {
            median_filter(row, MEDIAN_FILTER_WIDTH, &mut filtered);
            acc.iter_mut()
                .zip(&filtered)
                .for_each(|(a, f)| *a += f / heads as f32);
        }
    }
    matrix
}

/// Median of each `width` values around every position of `x` (reflected at the ends), into
/// `out`; `x` itself when it is not longer than half the width.
fn median_filter(x: &[f32], width: usize, out: &mut [f32]) {
    let (d, rank) = (x.len() as isize, (width / 2) as isize);
    if d <= rank {
        out.copy_from_slice(x);
        return;
    }
    let mut window = vec![0.0f32; width];
    for (j, o) in out.iter_mut().enumerate() {
        for (slot, k) in window.iter_mut().zip(-rank..=rank) {
            let mut read = (j as isize + k).abs();
            if read >= d {
                read = d - (read - d) - 2;
            }
            *slot = x[read as usize];
        }
        let (_, m, _) = window.select_nth_unstable_by(rank as usize, f32::total_cmp);
        *o = *m;
    }
}

/// The monotonic path through `x` (`rows × cols`, row-major) that maximizes the sum of the
/// values it crosses (dynamic time warping of `-x`), as `(row, col)` pairs from the start;
/// ties go to a step along the columns, as CTranslate2's.
fn negative_dtw(x: &[f32], cols: usize) -> Vec<(usize, usize)> {
    let rows = x.len() / cols;
    let (w, inf) = (cols + 1, f32::INFINITY);
    let mut cost = vec![inf; (rows + 1) * w];
    let mut trace = vec![2u8; (rows + 1) * w];
    cost[0] = 0.0;
    for j in 1..=cols {
        for i in 1..=rows {
            let (c0, c1, c2) = (
                cost[(i - 1) * w + j - 1],
                cost[(i - 1) * w + j],
                cost[i * w + j - 1],
            );
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i * w + j] = c - x[(i - 1) * cols + j - 1];
            trace[i * w + j] = t;
        }
    }
    let (mut i, mut j) = (rows, cols);
    let mut path = Vec::with_capacity(rows + cols);
    while i > 0 && j > 0 {
        path.push((i - 1, j - 1));
        match trace[i * w + j] {
            0 => (i, j) = (i - 1, j - 1),
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    path.reverse();
    path
}

/// Splits tokens into words (faster-whisper's `split_to_word_tokens`): runs of tokens that
/// decode to whole characters, joined into words at spaces, punctuation and special tokens
/// (in languages written without spaces, every run is a word).
fn split_words(w: &Whisper<'_>, tokens: &[u32], language: &str) -> (Vec<String>, Vec<Vec<u32>>) {
    let eot = whisper_config(w.model().config()).tokens.eot;
    let tokenizer = w.model().tokenizer();
    let mut subwords: Vec<(String, Vec<u32>)> = Vec::new();
    let mut current = Vec::new();
    for &token in tokens {
        current.push(token);
        if let Ok(text) = String::from_utf8(tokenizer.decode(&current)) {
            subwords.push((text, std::mem::take(&mut current)));
        }
    }
    if UNSPACED.contains(&language) {
        return subwords.into_iter().unzip();
    }
    let mut words: Vec<(String, Vec<u32>)> = Vec::new();
    for (text, ids) in subwords {
        let special = ids[0] >= eot;
        let punctuation = ASCII_PUNCTUATION.contains(text.trim());
        match words.last_mut() {
            Some(last) if !(special || text.starts_with(' ') || punctuation) => {
                last.0.push_str(&text);
                last.1.extend_from_slice(&ids);
            }
            _ => words.push((text, ids)),
        }
    }
    words.into_iter().unzip()
}

/// Joins opening punctuation to the word after it and closing punctuation to the word before
/// (faster-whisper's `merge_punctuations`), leaving empty words where they were.
fn merge_punctuations(words: &mut [Timing]) {
    if words.len() < 2 {
        return;
    }
    let (mut i, mut j) = (words.len() as isize - 2, words.len() - 1);
    while i >= 0 {
        let iu = i as usize;
        let prev = &words[iu];
        if prev.word.starts_with(' ') && PREPEND_PUNCTUATIONS.contains(prev.word.trim()) {
            let (head, tail) = words.split_at_mut(j);
            let (prev, next) = (&mut head[iu], &mut tail[0]);
            next.word = std::mem::take(&mut prev.word) + &next.word;
            let mut ids = std::mem::take(&mut prev.tokens);
            ids.extend_from_slice(&next.tokens);
            next.tokens = ids;
        } else {
            j = iu;
        }
        i -= 1;
    }
    let (mut i, mut j) = (0, 1);
    while j < words.len() {
        if !words[i].word.ends_with(' ') && APPEND_PUNCTUATIONS.contains(words[j].word.as_str()) {
            let (head, tail) = words.split_at_mut(j);
            let (prev, next) = (&mut head[i], &mut tail[0]);
            prev.word.push_str(&std::mem::take(&mut next.word));
            prev.tokens.append(&mut next.tokens);
        } else {
            i = j;
        }
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtw_follows_the_ridge_of_high_values() {
        // 3 tokens over 6 positions: token 0 at 0-1, token 1 at 2-3, token 2 at 4-5 (high);
        // elsewhere low, so that no other path ties.
        let mut x = vec![-1.0f32; 18];
        for (i, j) in [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)] {
            x[i * 6 + j] = 1.0;
        }
        let path = negative_dtw(&x, 6);
        assert_eq!(path, [(0, 0), (0, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
    }

    #[test]
    fn median_filter_reflects_at_the_ends() {
        let x = [5.0, 1.0, 9.0, 2.0, 7.0];
        let mut out = [0.0; 5];
        median_filter(&x, 3, &mut out);
        // Windows: [1,5,1] [5,1,9] [1,9,2] [9,2,7] [2,7,2].
        assert_eq!(out, [1.0, 5.0, 2.0, 7.0, 2.0]);
        let mut short = [0.0; 2];
        median_filter(&[3.0, 4.0], 7, &mut short);
        assert_eq!(short, [3.0, 4.0]);
    }

    #[test]
    fn punctuation_joins_its_neighbours() {
        let t = |word: &str, token: u32| Timing {
            word: word.into(),
            tokens: vec![token],
            start: 0.0,
            end: 0.0,
            probability: 1.0,
        };
        let mut words = vec![t(" \"", 1), t("Hello", 2), t(",", 3), t(" world", 4), t(".", 5)];
        merge_punctuations(&mut words);
        let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(texts, ["", " \"Hello,", "", " world.", ""]);
        assert_eq!(words[1].tokens, [1, 2, 3]);
    }

    #[test]
    fn median_is_numpys() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
    }
}
