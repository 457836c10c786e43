//! Whisper speech recognition: the network ([`Whisper`]: conv stem and audio encoder, text
//! decoder with a self-attention KV cache and a cross-attention cache filled once per 30 s
//! window), the decoding rules that turn a spectrogram into timed text ([`transcribe`]), and
//! live transcription of a stream of audio ([`stream`]).
//!
//! Every buffer is allocated in [`Whisper::new`]; [`Whisper::encode`] and
//! [`Whisper::decode`] allocate nothing.

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
    /// Decoder self-attention keys and values.
    self_kv: KvCache,
    /// Cross-attention keys and values of the encoded window.
    cross_kv: KvCache,
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
            logits: v(c.vocab_size),
        };
        let widest = cols.max(a * ff).max(n * ff);
        let xq = vec![BlockQ8Act::default(); widest.div_ceil(QK)];
        let self_kv = KvCache::new(
            options.kv_type,
            c.num_layers,
            c.num_heads,
            c.head_dim,
            c.max_context,
        )
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
        })
    }

    /// The model.
    pub fn model(&self) -> &'m Model {
        self.model
    }

    /// Runs `f` on one of the runner's threads, so that the work inside starts without a
    /// hand-off per call (a whole transcription; the allocation tests).
    pub fn run_in_pool<R: Send>(&mut self, f: impl FnOnce(&mut Self) -> R + Send) -> R {
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
        let c = self.model.config();
        let w = whisper_config(c);
        let want = w.n_mels * self.window_frames();
        if mel.len() != want {
            return Err(WhisperError::Input(format!(
                "a window's spectrogram has {want} values ({} mel bins × {} frames), got {}",
                w.n_mels,
                self.window_frames(),
                mel.len()
            )));
        }
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
            encoder::forward(k, c, weights, mel, enc, xq);
            encoder::fill_cross(k, c, weights, &enc.x, &mut enc.qkv, xq, cross_kv);
        });
        Ok(())
    }

    /// The encoder output of the last window, `audio_ctx × hidden`.
    pub fn encoder_output(&self) -> &[f32] {
        let c = self.model.config();
        &self.enc.x[..whisper_config(c).audio_ctx * c.hidden_size]
    }

    /// Runs the decoder on `tokens` at positions `pos0..` (the earlier positions' keys and
    /// values must be in the cache from earlier calls) and returns the logits of the last one.
    pub fn decode(&mut self, tokens: &[u32], pos0: usize) -> Result<&mut [f32], WhisperError> {
        let c = self.model.config();
        let n = tokens.len();
        if n == 0 || n > MAX_STEP_TOKENS || pos0 + n > c.max_context {
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
        let weights = self.model.whisper()?;
        let k = self.engine.kernels;
        let Whisper {
            engine,
            dec,
            xq,
            self_kv,
            cross_kv,
            ..
        } = self;
        engine.install(|| decoder_forward(k, c, weights, tokens, pos0, dec, xq, self_kv, cross_kv));
        Ok(&mut self.dec.logits)
    }
}

/// The audio configuration, present in every validated whisper model.
fn whisper_config(c: &ModelConfig) -> &WhisperConfig {
    c.whisper
        .as_ref()
        .expect("validated whisper models have an audio configuration")
}

/// One decoder pass over `tokens` at `pos0..`, leaving the last token's logits in `s.logits`.
#[allow(clippy::too_many_arguments)]
fn decoder_forward(
    k: &Kernels,
    c: &ModelConfig,
    w: &WhisperWeights<'_>,
    tokens: &[u32],
    pos0: usize,
    s: &mut DecoderScratch,
    xq: &mut [BlockQ8Act],
    self_kv: &mut KvCache,
    cross_kv: &KvCache,
) {
    let chunks = rayon::current_num_threads();
    let (n, h, ff, hd, eps) = (
        tokens.len(),
        c.hidden_size,
        c.intermediate_size,
        c.head_dim,
        c.norm_eps,
    );
    let nh = n * h;
    for (t, (&tok, x)) in tokens.iter().zip(s.x.chunks_exact_mut(h)).enumerate() {
        w.token_embd.dequantize_row(tok as usize, x);
        (k.add)(x, &w.dec_pos[(pos0 + t) * h..(pos0 + t + 1) * h]);
    }
    let shape = Heads {
        heads: c.num_heads,
        kv_heads: c.num_heads,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        softcap: None,
        window: None,
    };
    let ctx = self_kv.context();
    let audio_ctx = cross_kv.context();
    for (l, layer) in w.decoder.iter().enumerate() {
        // Causal self-attention over the tokens so far.
        norm::layer_rows(k, &s.x[..nh], layer.attn_norm, eps, &mut s.xn[..nh]);
        layer.qkv.apply(k, &s.xn[..nh], xq, n, &mut s.qkv, chunks);
        let cache = self_kv.layer_mut(l);
        for (t, row) in s.qkv[..n * 3 * h].chunks_exact(3 * h).enumerate() {
            for g in 0..c.num_heads {
                let (key, value) = (
                    &row[h + g * hd..h + (g + 1) * hd],
                    &row[2 * h + g * hd..2 * h + (g + 1) * hd],
                );
                cache.write(k, (g * ctx + pos0 + t) * hd, key, value);
            }
        }
        let job = CausalAttention {
            k,
            shape,
            kv: self_kv.layer(l),
            ctx,
            qkv: &s.qkv[..n * 3 * h],
            qkv_dim: 3 * h,
            pos0,
            n,
            query_block: QUERY_BLOCK,
        };
        job.heads(
            0,
            c.num_heads,
            OutCols::new(&mut s.attn[..nh], n, h),
            &mut s.scores,
            &mut s.qq,
            chunks,
        );
        layer.attn_out.apply(k, &s.attn[..nh], xq, n, &mut s.xn, chunks);
        (k.add)(&mut s.x[..nh], &s.xn[..nh]);

        // Cross-attention over the encoded window.
        norm::layer_rows(k, &s.x[..nh], layer.cross_norm, eps, &mut s.xn[..nh]);
        layer.cross_q.apply(k, &s.xn[..nh], xq, n, &mut s.qkv, chunks);
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
    let last = &s.x[(n - 1) * h..nh];
    norm::layer_rows(k, last, w.output_norm, eps, &mut s.xn[..h]);
    w.output.apply(k, &s.xn[..h], xq, 1, &mut s.logits, chunks);
}
