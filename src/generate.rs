//! The generation loop: sample, feed back, stream text that never splits a UTF-8 character
//! and never shows the start of a stop string, stop on end-of-turn tokens and stop strings.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::sampling::Sampler;
use crate::session::{Session, SessionError};
use crate::tokenizer::{TokenStream, Tokenizer};

/// What to generate.
#[derive(Clone, Debug, Default)]
pub struct GenerateOptions {
    /// Most tokens to generate; 0: nothing is fed nor generated.
    pub max_tokens: usize,
    /// Text that ends the generation (not shown).
    pub stop: Vec<String>,
    /// When the context fills up: `Some(keep)` slides the window, keeping the first `keep`
    /// tokens (the system prompt) and dropping half of the rest; `None` stops with an error.
    pub sliding_window: Option<usize>,
    /// Stop when the answer's end repeats itself (`None`: never).
    pub loop_guard: Option<LoopGuard>,
    /// Set from another thread to stop: checked before each batch of the prompt and each
    /// generated token, so a long prompt stops within one batch ([`StopReason::Cancelled`]).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// When to stop an answer that repeats itself. Two kinds of repetition are watched:
///
/// - **Exact**: the last tokens are `repeats` copies in a row of one block of at least `min_len`
///   tokens. A block can be a shorter period repeated: "no no no …" (period 1) counts in blocks
///   of `min_len` tokens, so it stops after `repeats * min_len` tokens, while a repeated
///   sentence longer than `min_len` stops after its `repeats`-th copy.
/// - **Counting**: a line of at most 8 tokens that stays the same but for its numbers,
///   `counting_repeats` times in a row ("1.\n2.\n3.\n…", "10:11:12:…", "- 9: 9am\n- 10: 10am\n…");
///   a run of digit tokens counts as one symbol, so 9 → 10 keeps the period. 0 turns it off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopGuard {
    /// Shortest block, in tokens.
    pub min_len: usize,
    /// Copies of the block in a row that stop the answer.
    pub repeats: usize,
    /// Longest period looked for, in tokens.
    pub max_period: usize,
    /// Copies in a row, numbers aside, that stop the answer (0: off).
    pub counting_repeats: usize,
}

impl Default for LoopGuard {
    /// Blocks of at least 8 tokens, 3 copies, periods up to 64 tokens: a run of one token
    /// stops after 24, a repeated 20-token sentence after 60 tokens. Legitimate answers
    /// rarely repeat 8 tokens three times in a row (a markdown table's `| --- |` row can, from
    /// about 12 columns). Counting: 12 copies (a list that counts past 12 with nothing else
    /// in its short lines, such as a multiplication table, stops there).
    fn default() -> Self {
        LoopGuard {
            min_len: 8,
            repeats: 3,
            max_period: 64,
            counting_repeats: 12,
        }
    }
}

/// Longest line, in symbols, the counting check looks at.
const COUNTING_MAX_PERIOD: usize = 8;
/// The symbol a run of digit tokens becomes for counting (no token has this id).
const NUMBER: u32 = u32::MAX;

/// Watches a token stream for the repetition a [`LoopGuard`] describes. Allocates when
/// created, not per token.
#[derive(Clone, Debug)]
pub struct RepetitionDetector {
    guard: LoopGuard,
    exact: Periods,
    counting: Periods,
    last_was_number: bool,
}

impl RepetitionDetector {
    /// A detector that has seen nothing yet.
    pub fn new(guard: LoopGuard) -> RepetitionDetector {
        RepetitionDetector {
            guard,
            exact: Periods::new(guard.max_period),
            counting: Periods::new(if guard.counting_repeats > 0 {
                COUNTING_MAX_PERIOD
            } else {
                0
            }),
            last_was_number: false,
        }
    }

    /// Takes the next token (`number`: it holds only digits); returns why the stream now ends
    /// in a repetition, if it does.
    pub fn push(&mut self, token: u32, number: bool) -> Option<Repeat> {
        let g = self.guard;
        let mut found = self.exact.push(token, g.min_len, g.repeats, 1).map(Repeat::Exact);
        if g.counting_repeats > 0 && !(number && self.last_was_number) {
            let symbol = if number { NUMBER } else { token };
            let counted = self.counting.push(symbol, 1, g.counting_repeats, 2);
            found = found.or(counted.map(Repeat::Counting));
        }
        self.last_was_number = number;
        found
    }
}

/// The kind of repetition a [`RepetitionDetector`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Exact copies of a block of this period, in tokens.
    Exact(usize),
    /// Copies the same but for their numbers, of this period in symbols.
    Counting(usize),
}

/// Per period `p` up to a maximum, how many symbols in a row equalled the one `p` before them.
#[derive(Clone, Debug)]
struct Periods {
    last: Vec<u32>,
    run: Vec<usize>,
    seen: usize,
}

impl Periods {
    fn new(max_period: usize) -> Periods {
        Periods {
            last: vec![0; max_period],
            run: vec![0; max_period],
            seen: 0,
        }
    }

    /// Takes the next symbol; returns the shortest period of at least `min_period` whose
    /// `repeats` copies of a block of at least `min_len` symbols now end the stream.
    fn push(&mut self, symbol: u32, min_len: usize, repeats: usize, min_period: usize) -> Option<usize> {
        let cap = self.last.len();
        if cap == 0 {
            return None;
        }
        let mut found = None;
        for (i, run) in self.run.iter_mut().enumerate() {
            let period = i + 1;
            if self.seen >= period && self.last[(self.seen - period) % cap] == symbol {
                *run += 1;
            } else {
                *run = 0;
            }
            let block = period * min_len.div_ceil(period).max(1);
            if found.is_none() && period >= min_period && *run + period >= repeats * block {
                found = Some(period);
            }
        }
        self.last[self.seen % cap] = symbol;
        self.seen += 1;
        found
    }
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced an end-of-sequence or end-of-turn token.
    EndOfTurn,
    /// `max_tokens` were generated.
    MaxTokens,
    /// A stop string appeared.
    StopString,
    /// The callback asked to stop, or [`GenerateOptions::cancel`] was set.
    Cancelled,
    /// The answer repeated itself (see [`LoopGuard`]).
    Repetition,
}

/// Counts and timings of one generation.
#[derive(Clone, Debug)]
pub struct GenerationStats {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Time spent on the prompt.
    pub prompt_time: Duration,
    /// Tokens generated (including the one that stopped generation).
    pub generated_tokens: usize,
    /// Time spent generating.
    pub generation_time: Duration,
    /// Why it ended.
    pub stop: StopReason,
}

/// Feeds `prompt` to the session, then generates until a stop condition, calling
/// `on_text` with each piece of text as it becomes final. Runs on the session's threads;
/// performs no heap allocation per generated token.
pub fn generate(
    session: &mut Session<'_>,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    on_text: impl FnMut(&str) -> ControlFlow<()> + Send,
) -> Result<GenerationStats, SessionError> {
    session.run_in_pool(|s| generate_in_pool(s, sampler, prompt, opts, on_text))
}

fn generate_in_pool(
    s: &mut Session<'_>,
    sampler: &mut Sampler,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_text: impl FnMut(&str) -> ControlFlow<()>,
) -> Result<GenerationStats, SessionError> {
    let t0 = Instant::now();
    if opts.max_tokens == 0 {
        return Ok(GenerationStats {
            prompt_tokens: 0,
            prompt_time: Duration::ZERO,
            generated_tokens: 0,
            generation_time: Duration::ZERO,
            stop: StopReason::MaxTokens,
        });
    }
    let cancelled = || opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
    let mut answer = Answer::new(s.model().tokenizer(), opts);
    make_room(s, prompt.len(), opts)?;
    // The prompt goes in one batch at a time, so that a cancel lands between two.
    let mut rest = prompt;
    while rest.len() > s.batch() && !cancelled() {
        let (now, later) = rest.split_at(s.batch());
        s.feed(now)?;
        rest = later;
    }
    if cancelled() {
        return Ok(GenerationStats {
            prompt_tokens: prompt.len() - rest.len(),
            prompt_time: t0.elapsed(),
            generated_tokens: 0,
            generation_time: Duration::ZERO,
            stop: StopReason::Cancelled,
        });
    }
    let mut next = s.feed_and_sample(rest, sampler)?;
    let prompt_time = t0.elapsed();
    let t1 = Instant::now();
    let stop = loop {
        if let Some(stop) = answer.push(next, &mut on_text) {
            break stop;
        }
        if cancelled() {
            break StopReason::Cancelled;
        }
        make_room(s, 1, opts)?;
        next = s.feed_and_sample(&[next], sampler)?;
    };
    answer.finish(stop, &mut on_text);
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        prompt_time,
        generated_tokens: answer.generated(),
        generation_time: t1.elapsed(),
        stop,
    })
}

/// One answer being generated: turns the sampled tokens into text as it becomes final and
/// says when the answer ends (end of turn, `max_tokens`, a stop string, the loop guard, or
/// `on_text` asking to stop). [`generate`] drives one; a server drives one per request.
/// Allocates when created, not per token.
pub struct Answer<'t> {
    tok: &'t Tokenizer,
    decoder: TokenStream<'t>,
    text: StopFilter,
    repetition: Option<RepetitionDetector>,
    generated: usize,
    max_tokens: usize,
}

impl<'t> Answer<'t> {
    /// An answer of `tok`'s tokens under `opts` (`max_tokens`, stop strings, loop guard).
    pub fn new(tok: &'t Tokenizer, opts: &GenerateOptions) -> Answer<'t> {
        Answer {
            tok,
            decoder: tok.stream(true),
            text: StopFilter::new(opts.stop.clone()),
            repetition: opts.loop_guard.map(RepetitionDetector::new),
            generated: 0,
            max_tokens: opts.max_tokens,
        }
    }

    /// Takes the next sampled token and passes on the text that became final; returns why
    /// the answer ends after it, if it does (then call [`Answer::finish`]).
    pub fn push(
        &mut self,
        token: u32,
        on_text: &mut impl FnMut(&str) -> ControlFlow<()>,
    ) -> Option<StopReason> {
        self.generated += 1;
        if self.tok.is_stop(token) {
            return Some(StopReason::EndOfTurn);
        }
        match self.text.push(self.decoder.push(token), on_text) {
            Push::Continue => {}
            Push::StopString => return Some(StopReason::StopString),
            Push::Cancelled => return Some(StopReason::Cancelled),
        }
        let number = self.tok.token_bytes(token).is_some_and(is_number);
        if self
            .repetition
            .as_mut()
            .is_some_and(|r| r.push(token, number).is_some())
        {
            return Some(StopReason::Repetition);
        }
        (self.generated >= self.max_tokens).then_some(StopReason::MaxTokens)
    }

    /// Ends the answer for `stop`: passes on the text still held back (an incomplete
    /// character, a possible start of a stop string) unless a stop string or `on_text` ended it.
    pub fn finish(&mut self, stop: StopReason, on_text: &mut impl FnMut(&str) -> ControlFlow<()>) {
        if stop != StopReason::StopString && stop != StopReason::Cancelled {
            let tail = self.decoder.finish();
            if let Push::Continue = self.text.push(tail, on_text) {
                self.text.finish(on_text);
            }
        }
    }

    /// Tokens taken so far (including the one that ended the answer).
    pub fn generated(&self) -> usize {
        self.generated
    }
}

/// Whether a token's text is digits (after spaces or SentencePiece's `▁`).
fn is_number(bytes: &[u8]) -> bool {
    let digits = bytes
        .strip_prefix("\u{2581}".as_bytes())
        .unwrap_or(bytes)
        .trim_ascii_start();
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Makes room for `n` more tokens by sliding the window if allowed.
fn make_room(s: &mut Session<'_>, n: usize, opts: &GenerateOptions) -> Result<(), SessionError> {
    let (pos, ctx) = (s.position(), s.context());
    if pos + n <= ctx {
        return Ok(());
    }
    match opts.sliding_window {
        Some(keep) if keep + n < ctx => {
            let discard = (pos - keep.min(pos)).div_ceil(2).max(pos + n - ctx);
            s.shift_context(keep, discard);
            Ok(())
        }
        _ => Err(SessionError::ContextFull {
            needed: pos + n,
            context: ctx,
        }),
    }
}

enum Push {
    Continue,
    StopString,
    Cancelled,
}

/// Passes text through, holding back any tail that could be the start of a stop string,
/// and cuts the text at the first stop string.
struct StopFilter {
    pending: String,
    stop: Vec<String>,
}

impl StopFilter {
    fn new(stop: Vec<String>) -> Self {
        let longest = stop.iter().map(String::len).max().unwrap_or(0);
        StopFilter {
            pending: String::with_capacity(1024 + 2 * longest),
            stop,
        }
    }

    fn push(&mut self, text: &str, on_text: &mut impl FnMut(&str) -> ControlFlow<()>) -> Push {
        if text.is_empty() {
            return Push::Continue;
        }
        self.pending.push_str(text);
        let stop_at = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.pending.find(s.as_str()))
            .min();
        if let Some(at) = stop_at {
            let _ = on_text(&self.pending[..at]);
            return Push::StopString;
        }
        // A held-back tail equals the start of a stop string, so it begins on a character
        // boundary: stop strings begin with one.
        let hold = self
            .stop
            .iter()
            .map(|s| partial_suffix(&self.pending, s))
            .max()
            .unwrap_or(0);
        let ready = self.pending.len() - hold;
        let flow = if ready > 0 {
            on_text(&self.pending[..ready])
        } else {
            ControlFlow::Continue(())
        };
        self.pending.drain(..ready);
        if flow.is_break() {
            Push::Cancelled
        } else {
            Push::Continue
        }
    }

    fn finish(&mut self, on_text: &mut impl FnMut(&str) -> ControlFlow<()>) {
        if !self.pending.is_empty() {
            let _ = on_text(&self.pending);
        }
        self.pending.clear();
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    let (text, stop) = (text.as_bytes(), stop.as_bytes());
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.ends_with(&stop[..n]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stop: &[&str], pieces: &[&str]) -> (String, bool) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        let mut t = StopFilter::new(stop);
        let mut out = String::new();
        let mut f = |s: &str| {
            out.push_str(s);
            ControlFlow::Continue(())
        };
        for p in pieces {
            if let Push::StopString = t.push(p, &mut f) {
                return (out, true);
            }
        }
        t.finish(&mut f);
        (out, false)
    }

    #[test]
    fn stop_strings_are_hidden_even_across_pieces() {
        assert_eq!(
            run(&["</s>"], &["Hello <", "/", "s> more"]),
            ("Hello ".into(), true)
        );
        assert_eq!(run(&["</s>"], &["a <b", " c"]), ("a <b c".into(), false));
        assert_eq!(
            run(&["ab", "xyz"], &["..x", "y", "a", "b"]),
            ("..xy".into(), true)
        );
        assert_eq!(run(&["é!"], &["caf", "é", "?"]), ("café?".into(), false));
    }

    /// The index at which the detector first reports a repetition, and its kind (tokens at or
    /// above `DIGITS` are numbers).
    fn first_repetition(guard: LoopGuard, tokens: &[u32]) -> Option<(usize, Repeat)> {
        let mut d = RepetitionDetector::new(guard);
        tokens
            .iter()
            .enumerate()
            .find_map(|(i, &t)| d.push(t, t >= DIGITS).map(|p| (i, p)))
    }

    const DIGITS: u32 = 5000;

    /// The default guard without its counting check.
    fn exact_only() -> LoopGuard {
        LoopGuard {
            counting_repeats: 0,
            ..LoopGuard::default()
        }
    }

    /// "1.\n2.\n…" as tokens: each number's digits (one token each), then `line`.
    fn numbered(from: u32, to: u32, line: impl Fn(u32) -> Vec<u32>) -> Vec<u32> {
        (from..=to)
            .flat_map(|n| {
                let mut t: Vec<u32> = n
                    .to_string()
                    .bytes()
                    .map(|b| DIGITS + u32::from(b - b'0'))
                    .collect();
                t.extend(line(n));
                t
            })
            .collect()
    }

    #[test]
    fn repetition_is_found_after_the_configured_copies() {
        let guard = exact_only();
        // Some text, then one token over and over: 8-token blocks, the third ends 24 in.
        let mut tokens: Vec<u32> = (100..140).collect();
        tokens.extend([7; 40]);
        assert_eq!(
            first_repetition(guard, &tokens),
            Some((40 + 23, Repeat::Exact(1)))
        );
        // A 5-token phrase: blocks of 10, found at the end of its sixth copy.
        let mut tokens: Vec<u32> = (100..110).collect();
        tokens.extend([1, 2, 3, 4, 5].repeat(10));
        assert_eq!(
            first_repetition(guard, &tokens),
            Some((10 + 29, Repeat::Exact(5)))
        );
        // A 20-token sentence: found at the end of its third copy.
        let sentence: Vec<u32> = (200..220).collect();
        assert_eq!(
            first_repetition(guard, &sentence.repeat(4)),
            Some((59, Repeat::Exact(20)))
        );
        // Periods longer than max_period are not looked for.
        let long: Vec<u32> = (0..70).collect();
        assert_eq!(first_repetition(guard, &long.repeat(4)), None);
        // Two copies are not enough.
        assert_eq!(first_repetition(guard, &sentence.repeat(2)), None);
        // Other settings.
        let strict = LoopGuard {
            min_len: 2,
            repeats: 2,
            max_period: 4,
            ..exact_only()
        };
        assert_eq!(first_repetition(strict, &[1, 2, 3, 1, 2]), None);
        assert_eq!(
            first_repetition(strict, &[1, 2, 3, 2, 3]),
            Some((4, Repeat::Exact(2)))
        );
    }

    #[test]
    fn counting_without_content_is_stopped() {
        let guard = LoopGuard::default();
        // "1.\n2.\n3.\n…" ("." = 30, "\n" = 10): the period is 3 symbols also past 9; the
        // twelfth copy (here, up to "12.\n") ends at token 9 * 3 + 3 * 4 - 1.
        let lines = numbered(1, 40, |_| vec![30, 10]);
        assert_eq!(exact_only_none(&lines), None, "no exact repeat");
        assert_eq!(
            first_repetition(guard, &lines),
            Some((9 * 3 + 3 * 4 - 1, Repeat::Counting(3)))
        );
        // "10:11:12:…" after some text, and "- 9: 9am\n- 10: 10am\n…".
        let mut colons: Vec<u32> = (100..130).collect();
        colons.extend(numbered(10, 60, |_| vec![25]));
        assert!(matches!(
            first_repetition(guard, &colons),
            Some((_, Repeat::Counting(2)))
        ));
        let times = numbered(1, 30, |n| {
            let mut t = vec![25, 32];
            t.extend(n.to_string().bytes().map(|b| DIGITS + u32::from(b - b'0')));
            t.extend([300, 10, 45, 32]);
            t
        });
        assert!(matches!(
            first_repetition(guard, &times),
            Some((_, Repeat::Counting(_)))
        ));
        // Eleven numbered lines of the same shape are not stopped (a short table).
        assert_eq!(first_repetition(guard, &numbered(1, 11, |_| vec![30, 10])), None);
    }

    fn exact_only_none(tokens: &[u32]) -> Option<(usize, Repeat)> {
        first_repetition(exact_only(), tokens)
    }

    #[test]
    fn text_that_does_not_repeat_is_not_stopped() {
        let guard = LoopGuard::default();
        // A numbered list "N. **Title**: text.\n" whose items share their markup and some
        // words ("Check the") but say different things, 30 items.
        let list = numbered(1, 30, |n| {
            let w = 100 + n * 17;
            vec![
                30,
                32,
                60,
                61,
                400,
                401,
                w,
                61,
                62,
                32,
                w + 1,
                w + 2,
                402,
                w + 3,
                w + 4,
                w + 5,
                30,
                10,
            ]
        });
        assert_eq!(first_repetition(guard, &list), None);
        // Code: lines "let xN = f(aN, bN);" share their shape and punctuation.
        let code: Vec<u32> = (0..40)
            .flat_map(|i| [50, 900 + i, 51, 52, 53, 1200 + i, 54, 1500 + i, 55, 56, 10])
            .collect();
        assert_eq!(first_repetition(guard, &code), None);
        let counting: Vec<u32> = (0..500).collect();
        assert_eq!(first_repetition(guard, &counting), None);
        // A table of numbers, "| Day N | X | Y |\n": its lines are longer than the counting
        // check looks at (9 symbols), 30 rows.
        let digits = |n: u32| {
            n.to_string()
                .bytes()
                .map(|b| DIGITS + u32::from(b - b'0'))
                .collect::<Vec<_>>()
        };
        let table: Vec<u32> = (1..=30)
            .flat_map(|n| {
                let mut row = vec![70, 71];
                row.extend(digits(n));
                row.push(70);
                row.extend(digits(20 + n % 7));
                row.push(70);
                row.extend(digits(10 + n % 5));
                row.extend([70, 10]);
                row
            })
            .collect();
        assert_eq!(first_repetition(guard, &table), None);
    }
}
