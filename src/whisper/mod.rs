//! Whisper speech recognition: the network ([`Whisper`]: conv stem and audio encoder, text
//! decoder with a self-attention KV cache and a cross-attention cache filled once per 30 s
//! window), the decoding rules that turn a spectrogram into timed text ([`transcribe`]), and
//! live transcription of a stream of audio ([`stream`]).
//!
//! Every buffer is allocated in [`Whisper::new`]; [`Whisper::encode`] and
//! [`Whisper::decode`] allocate nothing. The decoder holds several sequences' self-attention
//! caches side by side (beam search's hypotheses, sampled candidates: [`beam`]), all reading
//! the one cross-attention cache of the window.

pub mod align;
pub mod beam;
mod encoder;
pub mod stream;
pub mod transcribe;

use edgelm_kernels::layout::QK;
use edgelm_kernels::{BlockQ8Act, Kernels, OutCols};

use crate::engine::Engine;
use crate::format::meta::{ModelConfig, WhisperConfig};
use crate::kv_cache::{KvCache, KvType};
use crate::model::{Model, ModelError, WhisperWeights};
use crate::nn::attention::{CausalAttention, CrossAttention, Heads, QUERY_BLOCK};
use crate::nn::bidirectional::HeadScratch;
use crate::nn::norm;

pub use transcribe::{Segment, Task, TranscribeOptions, Transcript, transcribe};

/// Why a Whisper runner cannot be built or run.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    /// The model is not a Whisper model, or its weights are unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The options or the input do not fit the model or the machine.
    #[error("{0}")]
    Input(String),
}

/// Decoder tokens one [`Whisper::decode`] call takes at most (a prompt: the previous text and
/// the start-of-transcript sequence).
pub const MAX_STEP_TOKENS: usize = 256;

/// Decoder sequences a runner holds by default: faster-whisper's beam size and `best_of`.
pub const DEFAULT_SEQUENCES: usize = 5;

/// Buffers of the encoder (rows: audio frames).
struct EncoderScratch {
    /// im2col rows of a convolution's input.
    cols: Vec<f32>,
    /// The first convolution's output, `2·audio_ctx × hidden`.
    conv: Vec<f32>,
    /// The residual stream, then the encoder output, `audio_ctx × hidden`.
    x: Vec<f32>,
    /// Normalized rows, then sublayer outputs.
    xn: Vec<f32>,
    /// q/k/v rows.
    qkv: Vec<f32>,
    /// Attention output.
    attn: Vec<f32>,
    /// MLP hidden rows.
    ffn: Vec<f32>,
    /// Per-thread attention buffers.
    heads: Vec<HeadScratch>,
}

/// Buffers of a decoder step (rows: new tokens).
struct DecoderScratch {
    x: Vec<f32>,
    xn: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    ffn: Vec<f32>,
    scores: Vec<f32>,
    qq: Vec<BlockQ8Act>,
    logits: Vec<f32>,
}

/// A Whisper model ready to run: its engine, the encoder's and decoder's buffers, the decoder's
/// KV cache and the cross-attention cache of the current window.
pub struct Whisper<'m> {
    model: &'m Model,
    engine: Engine,
    enc: EncoderScratch,
    dec: DecoderScratch,
    /// Quantized inputs of the products (shared by encoder and decoder).
    xq: Vec<BlockQ8Act>,
    /// Decoder self-attention keys and values, one cache per sequence slot.
    self_kv: Vec<KvCache>,
    /// Cross-attention keys and values of the encoded window.
    cross_kv: KvCache,
    /// How many encoder positions a window gets.
    audio_ctx: AudioContext,
    /// Encoder positions of the last window (its rows of `enc.x` and of the cross cache).
    encoded: usize,
}

/// How many of the encoder's positions (20 ms each, `audio_ctx` of them: 1500, 30 s) a window
/// is encoded with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AudioContext {
    /// Every position, the audio zero-padded to 30 s: what the model was trained on and what
    /// faster-whisper and the reference implementations do.
    #[default]
    Full,
    /// Only the positions that hold audio, plus [`AUTO_MARGIN`] positions, rounded up to a
    /// multiple of [`AUTO_STEP`] (whisper.cpp's `--audio-ctx`, chosen per window): a 3 s command
    /// costs a 4 s window, not a 30 s one. The encoder is bidirectional and the positions are
    /// absolute, so a shorter window changes the result (see docs/BENCHMARKS.md).
    Auto,
}

/// Positions [`AudioContext::Auto`] adds after the audio (1 s): a window cut right at the end of
/// the speech makes the decoder loop or miss the last words.
pub const AUTO_MARGIN: usize = 50;
/// [`AudioContext::Auto`] rounds the positions up to a multiple of this.
pub const AUTO_STEP: usize = 64;

impl AudioContext {
    /// Encoder positions for a window whose first `content` mel frames hold audio, out of a
    /// model's `audio_ctx`.
    pub fn positions(self, content: usize, audio_ctx: usize) -> usize {
        match self {
            AudioContext::Full => audio_ctx,
            AudioContext::Auto => {
                let wanted = content.div_ceil(2) + AUTO_MARGIN;
                (wanted.div_ceil(AUTO_STEP) * AUTO_STEP).min(audio_ctx)
            }
        }
    }
}

/// Threads and kernels of a [`Whisper`] runner.
#[derive(Clone, Debug, Default)]
pub struct WhisperOptions {
    /// Worker threads (default: the physical performance cores).
    pub threads: Option<usize>,
    /// Kernel path to force (see [`crate::session::SessionOptions::isa`]).
    pub isa: Option<String>,
    /// Element type of the self- and cross-attention caches (f16 by default; f32 for
    /// reference comparisons).
    pub kv_type: KvType,
    /// Encoder positions per window (all of them by default).
    pub audio_ctx: AudioContext,
    /// Decoder sequences held side by side, each with its own self-attention cache: the most
    /// beams or sampled candidates a transcription can use (default [`DEFAULT_SEQUENCES`]).
    pub sequences: Option<usize>,
}

impl<'m> Whisper<'m> {
    /// Sets up a runner for `model` (a whisper model).
    pub fn new(model: &'m Model, options: &WhisperOptions) -> Result<Self, WhisperError> {
        model.whisper()?;
        let c = model.config();
        let w = whisper_config(c);
        let engine = Engine::new(options.isa.as_deref(), options.threads).map_err(WhisperError::Input)?;
        let (h, ff, a) = (c.hidden_size, c.intermediate_size, w.audio_ctx);
        let frames = 2 * a;
        let v = |n: usize| vec![0.0f32; n];
        let cols = (frames * 3 * w.n_mels).max(a * 3 * h);
        let enc = EncoderScratch {
            cols: v(cols),
            conv: v(frames * h),
            x: v(a * h),
            xn: v(a * h),
            qkv: v(a * 3 * h),
            attn: v(a * h),
            ffn: v(a * ff),
            heads: (0..engine.threads().max(1))
                .map(|_| HeadScratch::new(a, c.head_dim))
                .collect(),
        };
        let n = MAX_STEP_TOKENS;
        let sequences = options.sequences.unwrap_or(DEFAULT_SEQUENCES);
        if sequences == 0 || sequences > n {
            return Err(WhisperError::Input(format!(
                "{sequences} decoder sequences: a runner holds 1 to {n}"
            )));
        }
        let self_slot = QUERY_BLOCK * (c.head_dim + c.max_context);
        let cross_slot = c.head_dim + a;
        let dec = DecoderScratch {
            x: v(n * h),
            xn: v(n * h),
            qkv: v(n * 3 * h),
            attn: v(n * h),
            ffn: v(n * ff),
            scores: v(c.num_heads * self_slot.max(cross_slot)),
            qq: vec![BlockQ8Act::default(); c.num_heads * c.head_dim.div_ceil(QK)],
            logits: v(sequences * c.vocab_size),
        };
        let widest = cols.max(a * ff).max(n * ff);
        let xq = vec![BlockQ8Act::default(); widest.div_ceil(QK)];
        let self_kv = (0..sequences)
            .map(|_| {
                KvCache::new(
                    options.kv_type,
                    c.num_layers,
                    c.num_heads,
                    c.head_dim,
                    c.max_context,
                )
            })
            .collect::<Result<_, _>>()
            .map_err(WhisperError::Input)?;
        let cross_kv = KvCache::new(options.kv_type, c.num_layers, c.num_heads, c.head_dim, a)
            .map_err(WhisperError::Input)?;
        Ok(Whisper {
            model,
            engine,
            enc,
            dec,
            xq,
            self_kv,
            cross_kv,
            audio_ctx: options.audio_ctx,
            encoded: a,
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Runs `f` with the runner's thread pool installed on this thread once for all the work
    /// inside (see [`crate::engine::Engine::install`]).
    pub fn run_in_pool<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let engine = self.engine.clone();
        engine.install(|| f(self))
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.engine.threads()
    }

    /// Mel frames of one window (`2 × audio_ctx`, 3000).
    pub fn window_frames(&self) -> usize {
        2 * whisper_config(self.model.config()).audio_ctx
    }

    /// Encodes one window's log-mel spectrogram (`n_mels` rows of [`Whisper::window_frames`]
    /// values) and fills the cross-attention cache from it.
    pub fn encode(&mut self, mel: &[f32]) -> Result<(), WhisperError> {
        self.encode_content(mel, self.window_frames())
    }

    /// As [`Whisper::encode`] for a window whose first `content` frames hold audio (the rest is
    /// padding), with as many encoder positions as [`WhisperOptions::audio_ctx`] gives it.
    pub fn encode_content(&mut self, mel: &[f32], content: usize) -> Result<(), WhisperError> {
        let c = self.model.config();
        let w = whisper_config(c);
        let window = self.window_frames();
        let want = w.n_mels * window;
        if mel.len() != want || content > window {
            return Err(WhisperError::Input(format!(
                "a window's spectrogram has {want} values ({} mel bins × {window} frames, at most \
                 {window} of them audio), got {} values with {content} frames of audio",
                w.n_mels,
                mel.len()
            )));
        }
        let positions = self.audio_ctx.positions(content, w.audio_ctx);
        self.encoded = positions;
        let weights = self.model.whisper()?;
        let k = self.engine.kernels;
        let Whisper {
            engine,
            enc,
            xq,
            cross_kv,
            ..
        } = self;
        engine.install(|| {
            encoder::forward(k, c, weights, mel, positions, enc, xq);
            encoder::fill_cross(k, c, weights, &enc.x, positions, &mut enc.qkv, xq, cross_kv);
        });
        Ok(())
    }

    /// The encoder output of the last window, one row of `hidden` per encoder position
    /// (`audio_ctx` of them unless [`WhisperOptions::audio_ctx`] cuts the window).
    pub fn encoder_output(&self) -> &[f32] {
        &self.enc.x[..self.encoded * self.model.config().hidden_size]
    }

    /// Runs the decoder on `tokens` at positions `pos0..` of sequence slot 0 (the earlier
    /// positions' keys and values must be in its cache from earlier calls) and returns the
    /// logits of the last one.
    pub fn decode(&mut self, tokens: &[u32], pos0: usize) -> Result<&mut [f32], WhisperError> {
        self.run_decoder(tokens, &[0], pos0, None)
    }

    /// Runs one decoder step for several sequences side by side: `tokens[i]` at position `pos`
    /// of sequence slot `slots[i]` (distinct slots below [`Whisper::sequences`]). Returns the
    /// logits, `slots.len()` rows of the vocabulary.
    pub fn decode_sequences(
        &mut self,
        tokens: &[u32],
        slots: &[usize],
        pos: usize,
    ) -> Result<&mut [f32], WhisperError> {
        if tokens.len() != slots.len() {
            return Err(WhisperError::Input(format!(
                "{} tokens for {} sequences: one each",
                tokens.len(),
                slots.len()
            )));
        }
        self.run_decoder(tokens, slots, pos, None)
    }

    /// Sequence slots (self-attention caches) held.
    pub fn sequences(&self) -> usize {
        self.self_kv.len()
    }

    /// Gives sequence slot `to` the keys and values of positions `[0, len)` of slot `from`.
    pub fn copy_sequence(&mut self, from: usize, to: usize, len: usize) -> Result<(), WhisperError> {
        let n = self.self_kv.len();
        let ctx = self.model.config().max_context;
        if from >= n || to >= n || len > ctx {
            return Err(WhisperError::Input(format!(
                "copying {len} positions from sequence {from} to {to}: the runner holds {n} sequences of {ctx} positions"
            )));
        }
        if from != to {
            let (src, dst) = if from < to {
                let (a, b) = self.self_kv.split_at_mut(to);
                (&a[from], &mut b[0])
            } else {
                let (a, b) = self.self_kv.split_at_mut(from);
                (&b[0], &mut a[to])
            };
            dst.copy_prefix_from(src, len);
        }
        Ok(())
    }

    /// The alignment pass of word timestamps: runs the decoder over `tokens` from position 0
    /// (sequence slot 0), writes the cross-attention scores (`q·k / √head_dim`, before the
    /// softmax) of the `heads` (`(layer, head)` pairs) over the first `frames` encoder positions
    /// into `scores` (`[head][token][frame]`), and hands `row_logits` each token's logits, in
    /// order, computed `logits.len() / vocab` rows at a time in `logits`.
    pub fn align_pass(
        &mut self,
        tokens: &[u32],
        heads: &[(u32, u32)],
        frames: usize,
        scores: &mut [f32],
        logits: &mut [f32],
        mut row_logits: impl FnMut(usize, &[f32]),
    ) -> Result<(), WhisperError> {
        let c = self.model.config();
        let (vocab, h) = (c.vocab_size, c.hidden_size);
        let n = tokens.len();
        let rows = logits.len() / vocab;
        if frames > self.encoded
            || scores.len() != heads.len() * n * frames
            || rows == 0
            || heads
                .iter()
                .any(|&(l, g)| l as usize >= c.num_layers || g as usize >= c.num_heads)
        {
            return Err(WhisperError::Input(format!(
                "alignment of {n} tokens over {frames} of {} encoded positions: heads {heads:?} \
                 (of {} layers × {} heads), {} scores, {} logits",
                self.encoded,
                c.num_layers,
                c.num_heads,
                scores.len(),
                logits.len()
            )));
        }
        let mut keys = vec![0.0f32; frames * c.head_dim];
        let capture = Capture {
            heads,
            frames,
            scores,
            keys: &mut keys,
        };
        self.run_decoder(tokens, &[0], 0, Some(capture))?;
        let weights = self.model.whisper()?;
        let k = self.engine.kernels;
        let Whisper { engine, dec, xq, .. } = self;
        let nh = n * h;
        norm::layer_rows(
            k,
            &dec.x[..nh],
            weights.output_norm,
            c.norm_eps,
            &mut dec.xn[..nh],
        );
        for r0 in (0..n).step_by(rows) {
            let m = rows.min(n - r0);
            let (xn, out) = (&dec.xn[r0 * h..(r0 + m) * h], &mut logits[..m * vocab]);
            engine.install(|| weights.output.apply(k, xn, xq, m, out, crate::pool::threads()));
            for (i, row) in out.chunks_exact(vocab).enumerate() {
                row_logits(r0 + i, row);
            }
        }
        Ok(())
    }

    /// Runs the decoder on `slots.len()` sequences of `tokens.len() / slots.len()` tokens each
    /// (laid out sequence after sequence) at positions `pos0..`; returns each sequence's last
    /// logits. `capture` keeps cross-attention scores (the alignment pass).
    fn run_decoder(
        &mut self,
        tokens: &[u32],
        slots: &[usize],
        pos0: usize,
        capture: Option<Capture<'_>>,
    ) -> Result<&mut [f32], WhisperError> {
        let c = self.model.config();
        let n = tokens.len();
        let seqs = slots.len();
        let m = n / seqs.max(1);
        if n == 0 || n > MAX_STEP_TOKENS || pos0 + m > c.max_context {
            return Err(WhisperError::Input(format!(
                "{n} tokens at position {pos0}: a step takes 1 to {MAX_STEP_TOKENS} tokens within the decoder's {} positions",
                c.max_context
            )));
        }
        if let Some(&t) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(WhisperError::Input(format!(
                "token {t} is outside the vocabulary of {}",
                c.vocab_size
            )));
        }
        let held = self.self_kv.len();
        for (i, &slot) in slots.iter().enumerate() {
            if slot >= held || slots[..i].contains(&slot) {
                return Err(WhisperError::Input(format!(
                    "sequence slot {slot} given twice or not below the {held} the runner holds"
                )));
            }
        }
        let weights = self.model.whisper()?;
        let k = self.engine.kernels;
        let Whisper {
            engine,
            dec,
            xq,
            self_kv,
            cross_kv,
            encoded,
            ..
        } = self;
        let cross = (&*cross_kv, *encoded);
        engine.install(|| {
            decoder_forward(
                k, c, weights, tokens, slots, pos0, dec, xq, self_kv, cross, capture,
            )
        });
        Ok(&mut self.dec.logits[..seqs * c.vocab_size])
    }
}

/// The audio configuration, present in every validated whisper model.
fn whisper_config(c: &ModelConfig) -> &WhisperConfig {
    c.whisper
        .as_ref()
        .expect("validated whisper models have an audio configuration")
}

/// Where the alignment pass keeps cross-attention scores.
struct Capture<'a> {
    /// `(layer, head)` pairs.
    heads: &'a [(u32, u32)],
    /// Encoder positions scored.
    frames: usize,
    /// `[head][token][frame]`.
    scores: &'a mut [f32],
    /// One head's keys as f32, `frames × head_dim`.
    keys: &'a mut [f32],
}

impl Capture<'_> {
    /// Scores the query rows `q` (`n` rows of `heads · head_dim`) of layer `l` against the
    /// cached keys of its alignment heads.
    fn score(&mut self, l: usize, q: &[f32], n: usize, kv: &KvCache, audio_ctx: usize, hd: usize) {
        let scale = 1.0 / (hd as f32).sqrt();
        let q_dim = q.len() / n;
        let per_head = n * self.frames;
        for (i, &(layer, g)) in self.heads.iter().enumerate() {
            if layer as usize != l {
                continue;
            }
            let g = g as usize;
            for (p, key) in self.keys.chunks_exact_mut(hd).enumerate() {
                kv.layer(l).read_key((g * audio_ctx + p) * hd, key);
            }
            let out = &mut self.scores[i * per_head..(i + 1) * per_head];
            for (row, scores) in out.chunks_exact_mut(self.frames).enumerate() {
                let qh = &q[row * q_dim + g * hd..row * q_dim + (g + 1) * hd];
                for (s, key) in scores.iter_mut().zip(self.keys.chunks_exact(hd)) {
                    *s = scale * qh.iter().zip(key).map(|(a, b)| a * b).sum::<f32>();
                }
            }
        }
    }
}

/// One decoder pass over the sequences of `tokens` (`slots.len()` runs of equal length, each
/// at positions `pos0..` of its slot's cache), leaving each sequence's last logits in
/// `s.logits`.
#[allow(clippy::too_many_arguments)]
fn decoder_forward(
    k: &Kernels,
    c: &ModelConfig,
    w: &WhisperWeights<'_>,
    tokens: &[u32],
    slots: &[usize],
    pos0: usize,
    s: &mut DecoderScratch,
    xq: &mut [BlockQ8Act],
    self_kv: &mut [KvCache],
    (cross_kv, audio_ctx): (&KvCache, usize),
    mut capture: Option<Capture<'_>>,
) {
    let chunks = crate::pool::threads();
    let (n, h, ff, hd, eps) = (
        tokens.len(),
        c.hidden_size,
        c.intermediate_size,
        c.head_dim,
        c.norm_eps,
    );
    let nh = n * h;
    let (seqs, m) = (slots.len(), n / slots.len());
    for (r, (&tok, x)) in tokens.iter().zip(s.x.chunks_exact_mut(h)).enumerate() {
        let pos = pos0 + r % m;
        w.token_embd.dequantize_row(tok as usize, x);
        (k.add)(x, &w.dec_pos[pos * h..(pos + 1) * h]);
    }
    let shape = Heads {
        heads: c.num_heads,
        kv_heads: c.num_heads,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        softcap: None,
        window: None,
    };
    let ctx = c.max_context;
    for (l, layer) in w.decoder.iter().enumerate() {
        // Causal self-attention over the tokens so far.
        norm::layer_rows(k, &s.x[..nh], layer.attn_norm, eps, &mut s.xn[..nh]);
        layer.qkv.apply(k, &s.xn[..nh], xq, n, &mut s.qkv, chunks);
        for (r, row) in s.qkv[..n * 3 * h].chunks_exact(3 * h).enumerate() {
            let cache = self_kv[slots[r / m]].layer_mut(l);
            for g in 0..c.num_heads {
                let (key, value) = (
                    &row[h + g * hd..h + (g + 1) * hd],
                    &row[2 * h + g * hd..2 * h + (g + 1) * hd],
                );
                cache.write(k, (g * ctx + pos0 + r % m) * hd, key, value);
            }
        }
        for (j, &slot) in slots.iter().enumerate() {
            let job = CausalAttention {
                k,
                shape,
                kv: self_kv[slot].layer(l),
                ctx,
                qkv: &s.qkv[j * m * 3 * h..(j + 1) * m * 3 * h],
                qkv_dim: 3 * h,
                pos0,
                n: m,
                query_block: QUERY_BLOCK,
            };
            job.heads(
                0,
                c.num_heads,
                OutCols::new(&mut s.attn[j * m * h..(j + 1) * m * h], m, h),
                &mut s.scores,
                &mut s.qq,
                chunks,
            );
        }
        layer.attn_out.apply(k, &s.attn[..nh], xq, n, &mut s.xn, chunks);
        (k.add)(&mut s.x[..nh], &s.xn[..nh]);

        // Cross-attention over the encoded window.
        norm::layer_rows(k, &s.x[..nh], layer.cross_norm, eps, &mut s.xn[..nh]);
        layer.cross_q.apply(k, &s.xn[..nh], xq, n, &mut s.qkv, chunks);
        if let Some(cap) = capture.as_mut() {
            cap.score(l, &s.qkv[..nh], n, cross_kv, audio_ctx, hd);
        }
        let job = CrossAttention {
            k,
            shape,
            kv: cross_kv.layer(l),
            ctx: audio_ctx,
            q: &s.qkv[..nh],
            n,
        };
        job.run(&mut s.attn[..nh], &mut s.scores, &mut s.qq, chunks);
        layer.cross_out.apply(k, &s.attn[..nh], xq, n, &mut s.xn, chunks);
        (k.add)(&mut s.x[..nh], &s.xn[..nh]);

        // MLP.
        norm::layer_rows(k, &s.x[..nh], layer.ffn_norm, eps, &mut s.xn[..nh]);
        layer.up.apply(k, &s.xn[..nh], xq, n, &mut s.ffn, chunks);
        (k.gelu_erf)(&mut s.ffn[..n * ff]);
        layer.down.apply(k, &s.ffn[..n * ff], xq, n, &mut s.xn, chunks);
        (k.add)(&mut s.x[..nh], &s.xn[..nh]);
    }
    for j in 0..seqs {
        let last = (j * m + m - 1) * h;
        norm::layer_rows(
            k,
            &s.x[last..last + h],
            w.output_norm,
            eps,
            &mut s.xn[j * h..(j + 1) * h],
        );
    }
    w.output
        .apply(k, &s.xn[..seqs * h], xq, seqs, &mut s.logits, chunks);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Auto keeps the audio's positions plus a second, in steps of 64, never past the model's.
    #[test]
    fn auto_context_covers_the_audio_and_a_margin() {
        assert_eq!(AudioContext::Full.positions(10, 1500), 1500);
        // 11 s (1100 frames, 550 positions) + 50 → 640.
        assert_eq!(AudioContext::Auto.positions(1100, 1500), 640);
        assert_eq!(AudioContext::Auto.positions(0, 1500), 64);
        assert_eq!(AudioContext::Auto.positions(3000, 1500), 1500);
        for content in 0..=3000 {
            let p = AudioContext::Auto.positions(content, 1500);
            assert!(p <= 1500 && (p == 1500 || p.is_multiple_of(AUTO_STEP)));
            assert!(p == 1500 || 2 * p >= content + 2 * AUTO_MARGIN, "{content}: {p}");
        }
    }
}
