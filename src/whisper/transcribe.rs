//! From a log-mel spectrogram to timed text, with the decoding rules of Whisper as
//! faster-whisper applies them: language detection on the first window, the
//! start-of-transcript prompt conditioned on the previous text, suppressed tokens, the
//! timestamp rules, beam search ([`super::beam`]), the temperature fallback (a window whose
//! text is too repetitive or too improbable is decoded again by sampling at the next
//! temperature), timestamp tokens into segments, 30 s windows with seeking to the last
//! complete segment, and the no-speech skip.

use super::align::{self, Piece, Word};
use super::beam::{Decoder, Strategy, log_sum_exp};
use super::{Whisper, WhisperError, whisper_config};
use crate::format::meta::{WhisperConfig, WhisperTokens};
use crate::sampling::{Sampler, SamplingParams};

/// Seconds per mel frame.
const FRAME_SECONDS: f32 = 0.01;
/// Seconds per timestamp token.
const TIME_PRECISION: f32 = 0.02;
/// Mel frames per encoder position.
const INPUT_STRIDE: usize = 2;

/// What to do with the speech.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Task {
    /// Text in the spoken language.
    #[default]
    Transcribe,
    /// English text.
    Translate,
}

/// Decoding choices (faster-whisper's defaults).
#[derive(Clone, Debug)]
pub struct TranscribeOptions {
    /// Language code (`en`); detected from the first window when `None`.
    pub language: Option<String>,
    /// Transcribe or translate.
    pub task: Task,
    /// Predict timestamps (segments), as faster-whisper does by default.
    pub timestamps: bool,
    /// Prompt each window with the text of the previous ones.
    pub condition_on_previous_text: bool,
    /// A window whose no-speech probability is above this (and whose average log-probability
    /// is below `log_prob_threshold`) is skipped as silence.
    pub no_speech_threshold: Option<f32>,
    /// See `no_speech_threshold`.
    pub log_prob_threshold: Option<f32>,
    /// Latest first timestamp, in seconds.
    pub max_initial_timestamp: f32,
    /// Hypotheses of the beam search at temperature 0 (1: greedy decoding).
    pub beam_size: usize,
    /// The beam search stops once `beam_size × patience` hypotheses have ended.
    pub patience: f32,
    /// Hypotheses are ranked by log-probability over `length ^ length_penalty`.
    pub length_penalty: f32,
    /// Candidates sampled at a temperature above 0.
    pub best_of: usize,
    /// Temperatures tried in order while a window's text fails the checks below (the first,
    /// usually 0, uses beam search; the others sample).
    pub temperatures: Vec<f32>,
    /// Text whose zlib compression ratio is above this is too repetitive: try the next
    /// temperature.
    pub compression_ratio_threshold: Option<f32>,
    /// After a window decoded above this temperature, later windows are not prompted with
    /// the earlier text.
    pub prompt_reset_on_temperature: f32,
    /// Seed of the sampling.
    pub seed: u64,
    /// Time each word ([`super::align`]); a window then resumes after its last word.
    pub word_timestamps: bool,
}

/// faster-whisper's temperature fallback.
pub const FALLBACK_TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: None,
            task: Task::Transcribe,
            timestamps: true,
            condition_on_previous_text: true,
            no_speech_threshold: Some(0.6),
            log_prob_threshold: Some(-1.0),
            max_initial_timestamp: 1.0,
            beam_size: 5,
            patience: 1.0,
            length_penalty: 1.0,
            best_of: 5,
            temperatures: FALLBACK_TEMPERATURES.to_vec(),
            compression_ratio_threshold: Some(2.4),
            prompt_reset_on_temperature: 0.5,
            seed: 0x5eed,
            word_timestamps: false,
        }
    }
}

impl TranscribeOptions {
    /// A clear error for settings that cannot run.
    pub fn check(&self) -> Result<(), WhisperError> {
        let bad = |what: &str| Err(WhisperError::Input(what.to_owned()));
        if self.beam_size == 0 {
            return bad("the beam size must be at least 1");
        }
        if self.best_of == 0 {
            return bad("best_of (candidates sampled) must be at least 1");
        }
        if !(self.patience.is_finite() && self.patience > 0.0) {
            return bad("the beam search's patience must be a positive number");
        }
        if (self.beam_size as f32 * self.patience).round() < 1.0 {
            return bad("beam size × patience must round to at least 1");
        }
        if !self.length_penalty.is_finite() {
            return bad("the length penalty must be a number");
        }
        if self.temperatures.is_empty() {
            return bad("at least one temperature is needed");
        }
        if let Some(t) = self.temperatures.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(WhisperError::Input(format!(
                "temperature {t}: temperatures are numbers of at least 0"
            )));
        }
        Ok(())
    }
}

/// One piece of the transcript.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start, seconds.
    pub start: f32,
    /// End, seconds.
    pub end: f32,
    /// Text (with its leading space, as Whisper writes it).
    pub text: String,
    /// Token ids, timestamps included.
    pub tokens: Vec<u32>,
    /// Average log-probability of the window's tokens.
    pub avg_logprob: f32,
    /// Probability that the window holds no speech.
    pub no_speech_prob: f32,
    /// The temperature of the window's decoding.
    pub temperature: f32,
    /// The zlib compression ratio of the window's text.
    pub compression_ratio: f32,
    /// Its words, with [`TranscribeOptions::word_timestamps`] (else none).
    pub words: Vec<Word>,
}

/// A whole transcription.
#[derive(Clone, Debug, Default)]
pub struct Transcript {
    /// The language (given or detected).
    pub language: String,
    /// The segments, in time order.
    pub segments: Vec<Segment>,
    /// Seconds spent in the encoder.
    pub encode_seconds: f64,
    /// Seconds spent in the decoder.
    pub decode_seconds: f64,
    /// Decoder steps run (each one token for every live hypothesis).
    pub decoded_tokens: usize,
    /// Windows encoded.
    pub windows: usize,
}

impl Transcript {
    /// The text of every segment, joined and trimmed.
    pub fn text(&self) -> String {
        let all: String = self.segments.iter().map(|s| s.text.as_str()).collect();
        all.trim().to_owned()
    }
}

/// What one window's decoding produced.
struct Window {
    tokens: Vec<u32>,
    avg_logprob: f32,
    no_speech_prob: f32,
    temperature: f32,
    compression_ratio: f32,
}

/// Bytes of `text` over the bytes of its zlib stream (level 6, as Python's `zlib.compress`):
/// repetitive text compresses well.
pub fn compression_ratio(text: &str) -> f32 {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(6));
    let packed = z
        .write_all(text.as_bytes())
        .and_then(|()| z.finish())
        .expect("compressing into memory does not fail");
    text.len() as f32 / packed.len() as f32
}

/// Applies Whisper's logit rules for the next token after `sampled` (this window's tokens so
/// far): suppressed tokens, no blank start, and the timestamp rules.
fn apply_rules(
    logits: &mut [f32],
    sampled: &[u32],
    suppress: &[u32],
    begin: &[u32],
    t: &WhisperTokens,
    o: &TranscribeOptions,
) {
    let ninf = f32::NEG_INFINITY;
    let len = logits.len();
    let mut kill = |id: u32| {
        if let Some(v) = logits.get_mut(id as usize) {
            *v = ninf;
        }
    };
    suppress.iter().copied().for_each(&mut kill);
    [t.sot, t.sot_prev, t.transcribe, t.translate, t.no_speech]
        .into_iter()
        .for_each(&mut kill);
    if sampled.is_empty() {
        begin.iter().copied().for_each(&mut kill);
    }
    if !o.timestamps {
        return;
    }
    kill(t.no_timestamps);
    let (tb, eot) = (t.timestamp_begin as usize, t.eot as usize);
    let tb = tb.min(len);
    let is_ts = |x: u32| x >= t.timestamp_begin;
    let last_ts = sampled.last().is_some_and(|&x| is_ts(x));
    let penultimate_ts = sampled.len() < 2 || is_ts(sampled[sampled.len() - 2]);
    if last_ts {
        if penultimate_ts {
            logits[tb..].fill(ninf);
        } else {
            logits[..eot].fill(ninf);
        }
    }
    if let Some(&last) = sampled.iter().rev().find(|&&x| is_ts(x)) {
        let bound = if last_ts && !penultimate_ts {
            last
        } else {
            last + 1
        };
        logits[tb..(bound as usize).min(len)].fill(ninf);
    }
    if sampled.is_empty() {
        logits[..tb].fill(ninf);
        let max_index = (o.max_initial_timestamp / TIME_PRECISION).round() as usize;
        if tb + max_index + 1 < len {
            logits[tb + max_index + 1..].fill(ninf);
        }
    }
    let ts_mass = log_sum_exp(&logits[tb..]);
    let best_text = logits[..tb].iter().copied().fold(ninf, f32::max);
    if ts_mass > best_text {
        logits[..tb].fill(ninf);
    }
}

/// The language whose token is most probable after `<|startoftranscript|>` (the window must
/// be encoded).
pub fn detect_language(w: &mut Whisper<'_>) -> Result<String, WhisperError> {
    let cfg = whisper_config(w.model().config());
    let logits = w.decode(&[cfg.tokens.sot], 0)?;
    cfg.languages
        .iter()
        .max_by(|a, b| logits[a.1 as usize].total_cmp(&logits[b.1 as usize]))
        .map(|(code, _)| code.clone())
        .ok_or_else(|| WhisperError::Input("the model knows no languages".into()))
}

/// The text of `tokens` (those below the end of text), as faster-whisper's tokenizer decodes it.
fn text_of(w: &Whisper<'_>, tokens: &[u32], eot: u32) -> String {
    let ids: Vec<u32> = tokens.iter().copied().filter(|&x| x < eot).collect();
    String::from_utf8_lossy(&w.model().tokenizer().decode(&ids)).into_owned()
}

/// Whether a failed attempt `(average log-probability, too repetitive)` is a better last resort
/// than an earlier one: faster-whisper keeps the best average log-probability among the
/// attempts under the compression threshold, or among all when none is (the first of equals).
fn outranks(new: (f32, bool), old: (f32, bool)) -> bool {
    (old.1 && !new.1) || (old.1 == new.1 && new.0 > old.0)
}

/// Decodes the encoded window after `prompt` (whose `sot_at` token is the start of
/// transcript) as faster-whisper's `generate_with_fallback`: beam search, then sampling at
/// each further temperature while the text is too repetitive or too improbable (unless the
/// window is silence); when every temperature fails, the best attempt below the compression
/// threshold (else of all) by average log-probability. `samplers` holds one per temperature,
/// made on first use.
fn decode_window(
    w: &mut Whisper<'_>,
    dec: &mut Decoder,
    samplers: &mut [Option<Sampler>],
    prompt: &[u32],
    sot_at: usize,
    o: &TranscribeOptions,
    steps: &mut usize,
) -> Result<Window, WhisperError> {
    let c = w.model().config();
    let cfg = whisper_config(c);
    let t = cfg.tokens;
    let logits = w.decode(&prompt[..=sot_at], 0)?;
    let no_speech_prob = (logits[t.no_speech as usize] - log_sum_exp(logits)).exp();
    let logits = w.decode(&prompt[sot_at + 1..], sot_at + 1)?;
    dec.set_prompt_logits(logits);
    // CTranslate2: at most half the context, and what the prompt leaves.
    let max_tokens = (c.max_context / 2).min(c.max_context + 1 - prompt.len());
    let mut best: Option<(Window, bool)> = None;
    for (i, &temperature) in o.temperatures.iter().enumerate() {
        let mut strategy = if temperature > 0.0 {
            let sampler = samplers[i].get_or_insert_with(|| {
                let params = SamplingParams {
                    temperature,
                    top_k: 0,
                    top_p: 1.0,
                    min_p: 0.0,
                    seed: o.seed.wrapping_add(i as u64),
                    ..SamplingParams::default()
                };
                Sampler::new(params, w.model())
            });
            Strategy::Sample {
                candidates: o.best_of,
                sampler,
            }
        } else {
            Strategy::Beam {
                size: o.beam_size,
                patience: o.patience,
            }
        };
        *steps += dec.run(w, &mut strategy, prompt.len(), max_tokens, |sampled, row| {
            apply_rules(
                row,
                sampled,
                &cfg.suppress_tokens,
                &cfg.begin_suppress_tokens,
                &t,
                o,
            )
        })?;
        let Some(h) = dec.search.best(o.length_penalty) else {
            continue;
        };
        let avg_logprob = h.logprob / (h.tokens.len() + 1) as f32;
        let compression_ratio = compression_ratio(text_of(w, &h.tokens, t.eot).trim());
        let repetitive = o
            .compression_ratio_threshold
            .is_some_and(|r| compression_ratio > r);
        let improbable = o.log_prob_threshold.is_some_and(|l| avg_logprob < l);
        let silence = improbable && o.no_speech_threshold.is_some_and(|n| no_speech_prob > n);
        let result = Window {
            tokens: h.tokens.clone(),
            avg_logprob,
            no_speech_prob,
            temperature,
            compression_ratio,
        };
        if !(repetitive || improbable) || silence {
            return Ok(result);
        }
        if best.as_ref().is_none_or(|(b, b_repetitive)| {
            outranks((avg_logprob, repetitive), (b.avg_logprob, *b_repetitive))
        }) {
            best = Some((result, repetitive));
        }
    }
    let (mut window, _) =
        best.ok_or_else(|| WhisperError::Input("no hypothesis ended in the window".into()))?;
    // faster-whisper reports the last temperature tried (it decides the prompt reset).
    window.temperature = *o.temperatures.last().expect("checked non-empty");
    Ok(window)
}

/// A window's timed pieces: start, end (seconds), tokens.
type Pieces = Vec<(f32, f32, Vec<u32>)>;

/// Timed pieces of one window's tokens (faster-whisper's `_split_segments_by_timestamps`), the
/// frames to move forward, and whether the tokens end with a single timestamp.
fn split(tokens: &[u32], tb: u32, time_offset: f32, size: usize) -> (Pieces, usize, bool) {
    let is_ts = |x: u32| x >= tb;
    let single_ending =
        tokens.len() >= 2 && !is_ts(tokens[tokens.len() - 2]) && is_ts(tokens[tokens.len() - 1]);
    let mut slices: Vec<usize> = (1..tokens.len())
        .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
        .collect();
    let time = |x: u32| time_offset + (x - tb) as f32 * TIME_PRECISION;
    if slices.is_empty() {
        let duration = match tokens.iter().rev().find(|&&x| is_ts(x)) {
            Some(&last) if last != tb => (last - tb) as f32 * TIME_PRECISION,
            _ => size as f32 * FRAME_SECONDS,
        };
        return (
            vec![(time_offset, time_offset + duration, tokens.to_vec())],
            size,
            single_ending,
        );
    }
    if single_ending {
        slices.push(tokens.len());
    }
    let mut out = Vec::new();
    let mut last = 0;
    for &s in &slices {
        let piece = &tokens[last..s];
        out.push((time(piece[0]), time(piece[piece.len() - 1]), piece.to_vec()));
        last = s;
    }
    let advance = if single_ending {
        size
    } else {
        (tokens[last - 1] - tb) as usize * INPUT_STRIDE
    };
    (out, advance, single_ending)
}

/// The token of the language `code` (`en`, `de`, ...), or an error listing the codes the model
/// knows.
pub(crate) fn language_token(cfg: &WhisperConfig, code: &str) -> Result<u32, WhisperError> {
    cfg.languages
        .iter()
        .find(|(known, _)| known == code)
        .map(|(_, id)| *id)
        .ok_or_else(|| {
            let known: Vec<&str> = cfg.languages.iter().map(|(code, _)| code.as_str()).collect();
            WhisperError::Input(format!(
                "the model does not know the language {code:?} (it knows {})",
                known.join(", ")
            ))
        })
}

/// Transcribes a log-mel spectrogram: `mel` holds `n_mels` rows of `frames` values, of which
/// the first `content_frames` are the audio (faster-whisper: all but the last).
pub fn transcribe(
    w: &mut Whisper<'_>,
    mel: &[f32],
    frames: usize,
    content_frames: usize,
    o: &TranscribeOptions,
) -> Result<Transcript, WhisperError> {
    o.check()?;
    let needed = o
        .temperatures
        .iter()
        .map(|&t| if t > 0.0 { o.best_of } else { o.beam_size })
        .max()
        .unwrap_or(1);
    if needed > w.sequences() {
        return Err(WhisperError::Input(format!(
            "beam size {} / best_of {}: the runner holds {} decoder sequences",
            o.beam_size,
            o.best_of,
            w.sequences()
        )));
    }
    let c = w.model().config();
    let cfg = whisper_config(c);
    let t = cfg.tokens;
    if mel.len() != cfg.n_mels * frames || content_frames > frames {
        return Err(WhisperError::Input(format!(
            "the spectrogram has {} values, not {} mel bins × {frames} frames",
            mel.len(),
            cfg.n_mels
        )));
    }
    let window = w.window_frames();
    let mut segment = vec![0.0f32; cfg.n_mels * window];
    let mut encode = |w: &mut Whisper<'_>, seek: usize, size: usize, out: &mut Transcript| {
        segment.fill(0.0);
        for (row, dst) in mel.chunks_exact(frames).zip(segment.chunks_exact_mut(window)) {
            dst[..size].copy_from_slice(&row[seek..seek + size]);
        }
        let start = std::time::Instant::now();
        let r = w.encode_content(&segment, size);
        out.encode_seconds += start.elapsed().as_secs_f64();
        out.windows += 1;
        r
    };
    let mut out = Transcript::default();
    let language = match &o.language {
        Some(code) => code.clone(),
        None => {
            encode(w, 0, window.min(content_frames), &mut out)?;
            detect_language(w)?
        }
    };
    let lang = language_token(cfg, &language)?;
    out.language = language;
    let task = match o.task {
        Task::Transcribe => t.transcribe,
        Task::Translate => t.translate,
    };
    let mut all_tokens: Vec<u32> = Vec::new();
    // Earlier text before this index is not prompted (reset after a high temperature).
    let mut prompt_from = 0;
    let mut prompt: Vec<u32> = Vec::with_capacity(c.max_context);
    let mut dec = Decoder::new(w, t.eot);
    let mut samplers: Vec<Option<Sampler>> = o.temperatures.iter().map(|_| None).collect();
    let mut seek = 0;
    // End of the speech so far (word timestamps).
    let mut last_speech = 0.0f64;
    let mut encoded_at = (o.language.is_none()).then_some(0);
    while seek < content_frames {
        let size = window.min(content_frames - seek);
        let time_offset = seek as f32 * FRAME_SECONDS;
        if encoded_at != Some(seek) {
            encode(w, seek, size, &mut out)?;
        }
        encoded_at = None;
        prompt.clear();
        let previous = &all_tokens[prompt_from..];
        if o.condition_on_previous_text && !previous.is_empty() {
            let keep = c.max_context / 2 - 1;
            prompt.push(t.sot_prev);
            prompt.extend_from_slice(&previous[previous.len().saturating_sub(keep)..]);
        }
        let sot_at = prompt.len();
        prompt.extend_from_slice(&[t.sot, lang, task]);
        if !o.timestamps {
            prompt.push(t.no_timestamps);
        }
        let start = std::time::Instant::now();
        let result = decode_window(
            w,
            &mut dec,
            &mut samplers,
            &prompt,
            sot_at,
            o,
            &mut out.decoded_tokens,
        )?;
        out.decode_seconds += start.elapsed().as_secs_f64();
        if let Some(threshold) = o.no_speech_threshold {
            let confident = o.log_prob_threshold.is_some_and(|l| result.avg_logprob > l);
            if result.no_speech_prob > threshold && !confident {
                seek += size;
                continue;
            }
        }
        let (mut pieces, advance, single_ending) =
            split(&result.tokens, t.timestamp_begin, time_offset, size);
        let mut words = vec![Vec::new(); pieces.len()];
        let mut next_seek = seek + advance.max(1);
        if o.word_timestamps {
            let mut timed: Vec<Piece<'_>> = pieces
                .iter_mut()
                .zip(&mut words)
                .map(|((start, end, tokens), words)| Piece {
                    start,
                    end,
                    tokens,
                    words,
                })
                .collect();
            let sot = [t.sot, lang, task];
            align::add_word_timestamps(w, &mut timed, &sot, &out.language, size, time_offset, last_speech)?;
            // faster-whisper's get_end: the last word's end, else the last piece's.
            let last_end = words
                .iter()
                .rev()
                .find_map(|ws| ws.last().map(|x| f64::from(x.end)))
                .or(pieces.last().map(|p| f64::from(p.1)));
            if let Some(end) = last_end {
                if !single_ending && end > f64::from(time_offset) {
                    next_seek = (end / f64::from(FRAME_SECONDS)).round() as usize;
                }
                last_speech = end;
            }
        }
        for ((start, end, piece), words) in pieces.into_iter().zip(words) {
            let text = text_of(w, &piece, t.eot);
            if start == end || text.trim().is_empty() {
                continue;
            }
            all_tokens.extend_from_slice(&piece);
            out.segments.push(Segment {
                start,
                end,
                text,
                tokens: piece,
                avg_logprob: result.avg_logprob,
                no_speech_prob: result.no_speech_prob,
                temperature: result.temperature,
                compression_ratio: result.compression_ratio,
                words,
            });
        }
        if result.temperature > o.prompt_reset_on_temperature {
            prompt_from = all_tokens.len();
        }
        seek = next_seek.max(seek + 1);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: WhisperTokens = WhisperTokens {
        sot: 10,
        eot: 9,
        transcribe: 11,
        translate: 12,
        sot_prev: 13,
        no_speech: 14,
        no_timestamps: 15,
        timestamp_begin: 16,
    };

    #[test]
    fn first_token_is_an_early_timestamp_and_timestamps_pair_up() {
        let o = TranscribeOptions {
            max_initial_timestamp: 0.04,
            ..TranscribeOptions::default()
        };
        let mut logits = vec![0.0f32; 32];
        apply_rules(&mut logits, &[], &[3], &[], &T, &o);
        let allowed: Vec<usize> = (0..32).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(allowed, [16, 17, 18]);
        // After text then one timestamp: another timestamp (not earlier) or end of text (here
        // likelier than all timestamps together, so it stays allowed).
        let mut logits = vec![0.0f32; 32];
        logits[9] = 5.0;
        apply_rules(&mut logits, &[18, 5, 20], &[], &[], &T, &o);
        assert!(logits[..9].iter().all(|v| v.is_infinite()));
        assert!(logits[9].is_finite() && logits[19].is_infinite() && logits[20].is_finite());
        // After a pair of timestamps: text only.
        let mut logits = vec![0.0f32; 32];
        apply_rules(&mut logits, &[18, 5, 20, 20], &[], &[], &T, &o);
        assert!(logits[16..].iter().all(|v| v.is_infinite()) && logits[5].is_finite());
    }

    #[test]
    fn the_last_resort_is_the_likeliest_text_under_the_compression_threshold() {
        // (average log-probability, too repetitive) of the attempts at each temperature.
        let pick = |attempts: &[(f32, bool)]| {
            (1..attempts.len()).fold(0, |b, i| if outranks(attempts[i], attempts[b]) { i } else { b })
        };
        assert_eq!(
            pick(&[
                (-1.5, true),
                (-1.2, false),
                (-0.9, true),
                (-1.3, false),
                (-1.2, false)
            ]),
            1
        );
        assert_eq!(pick(&[(-1.5, true), (-1.1, true), (-1.4, true)]), 1);
    }

    #[test]
    fn compression_ratio_is_pythons_zlib() {
        // len(t) / len(zlib.compress(t)) from Python 3.11's zlib 1.2.13.
        let jfk = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
        let thanks = "Thank you. ".repeat(20);
        for (text, packed) in [
            (jfk, 80),
            (thanks.trim(), 22),
            (
                "the the the the the the the the the the the the the the the the the the the the the the",
                15,
            ),
            ("Navigate to the nearest charging station.", 49),
        ] {
            assert_eq!(
                compression_ratio(text),
                text.len() as f32 / packed as f32,
                "{text}"
            );
        }
    }

    #[test]
    fn timestamps_split_segments_and_seek() {
        // <|0.00|> a b <|1.00|><|1.00|> c <|2.00|>: two segments, the window is done.
        let tokens = [16, 1, 2, 66, 66, 3, 116];
        let (pieces, advance, single) = split(&tokens, 16, 10.0, 3000);
        assert!(single);
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].0, pieces[0].1), (10.0, 11.0));
        assert_eq!(pieces[1].2, [66, 3, 116]);
        assert_eq!(advance, 3000);
        // An unfinished last segment: seek to the last complete one's end.
        let (pieces, advance, single) = split(&[16, 1, 66, 66, 3], 16, 0.0, 3000);
        assert!(!single);
        assert_eq!(pieces.len(), 1);
        assert_eq!(advance, 100);
    }
}
