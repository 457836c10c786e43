//! The metadata JSON of a packed file: model configuration, tokenizer description, chat
//! template and provenance. Large tokenizer tables live in tensors (see [`tok_tensor`]).

use serde::{Deserialize, Serialize};

/// Everything in the metadata JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The network.
    pub config: ModelConfig,
    /// How text becomes token ids and back.
    pub tokenizer: TokenizerSpec,
    /// The model's own Jinja chat template, if it has one.
    #[serde(default)]
    pub chat_template: Option<String>,
    /// Where the file came from.
    pub source: SourceInfo,
}

/// Model architecture families the runtime implements (each is described by a module of
/// `crate::arch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3, Llama 3.2, TinyLlama, SmolLM/SmolLM2, Mistral: decoder, RMSNorm, RoPE, GQA, SwiGLU.
    Llama,
    /// Qwen2: Llama with q/k/v biases.
    Qwen2,
    /// Qwen3: Llama with per-head q/k RMSNorm.
    Qwen3,
    /// Phi-3: Llama with fused q/k/v and gate/up projections.
    Phi3,
    /// Gemma 3 (text): sandwich norms, q/k norms, GeGLU, scaled embeddings, interleaved
    /// sliding-window and global layers.
    Gemma3,
    /// BERT encoders (sentence embeddings).
    Bert,
    /// Whisper speech recognition: a convolutional stem and an audio encoder, a text decoder
    /// with cross-attention (pre-LayerNorm blocks, learned and sinusoidal positions).
    Whisper,
}

impl Architecture {
    /// Every supported architecture.
    pub const ALL: [Architecture; 7] = [
        Architecture::Llama,
        Architecture::Qwen2,
        Architecture::Qwen3,
        Architecture::Phi3,
        Architecture::Gemma3,
        Architecture::Bert,
        Architecture::Whisper,
    ];

    /// The lower-case name used in the file and in messages (also GGUF's `general.architecture`).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
            Architecture::Phi3 => "phi3",
            Architecture::Gemma3 => "gemma3",
            Architecture::Bert => "bert",
            Architecture::Whisper => "whisper",
        }
    }

    /// The architecture called `name`.
    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether this is a causal decoder (text generation) rather than an encoder or a speech
    /// model.
    pub fn is_decoder(self) -> bool {
        !matches!(self, Architecture::Bert | Architecture::Whisper)
    }
}

/// Normalization layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// RMSNorm (weight only).
    Rms,
    /// LayerNorm (weight and bias).
    Layer,
}

/// Feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// SwiGLU: `silu(gate) * up`.
    Silu,
    /// GELU, exact (erf) form.
    GeluErf,
    /// GELU, tanh approximation.
    GeluTanh,
}

/// Which pairs of dimensions RoPE rotates together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RopeLayout {
    /// `(x[i], x[i + d/2])`, as in Hugging Face transformers (converted files always use this
    /// for Llama and Qwen2: the converter undoes llama.cpp's Q/K row permutation).
    Neox,
    /// `(x[2i], x[2i + 1])`.
    Interleaved,
}

/// Frequency scaling of RoPE for long contexts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear {
        /// Scale factor.
        factor: f32,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// Scale factor for low frequencies.
        factor: f32,
        /// Wavelength boundary (as a fraction of the original context) of the scaled band.
        low_freq_factor: f32,
        /// Wavelength boundary of the unscaled band.
        high_freq_factor: f32,
        /// Context length the model was trained with.
        original_max_position: usize,
    },
}

/// Rotary position embedding parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rope {
    /// Pairing of dimensions.
    pub layout: RopeLayout,
    /// Base of the frequencies.
    pub theta: f32,
    /// Number of rotated dimensions per head (the head dimension unless partial rotary).
    pub dims: usize,
    /// Optional long-context scaling.
    #[serde(default)]
    pub scaling: Option<RopeScaling>,
}

/// Pooling of an encoder's token states into one sentence vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pooling {
    /// How token vectors are combined.
    pub mode: PoolingMode,
    /// Whether the pooled vector is L2-normalized.
    pub normalize: bool,
}

/// Token-vector combination for [`Pooling`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolingMode {
    /// Mean over the (unpadded) tokens.
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
}

/// Dimensions and choices that define the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Family.
    pub architecture: Architecture,
    /// Rows of the embedding table.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// Dimension of one head.
    pub head_dim: usize,
    /// Longest context the model supports (positions).
    pub max_context: usize,
    /// Normalization kind.
    pub norm: NormKind,
    /// Normalization epsilon (f32, as the reference implementations add it).
    pub norm_eps: f32,
    /// Rotary embeddings; `None` for learned absolute positions (BERT).
    pub rope: Option<Rope>,
    /// Feed-forward activation.
    pub activation: Activation,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub attn_out_bias: bool,
    /// Biases on the feed-forward projections.
    pub mlp_bias: bool,
    /// The output head reuses the token embedding.
    pub tied_embeddings: bool,
    /// Token-type (segment) vocabulary of encoders; 0 for decoders.
    #[serde(default)]
    pub type_vocab_size: usize,
    /// Sentence pooling of encoders.
    #[serde(default)]
    pub pooling: Option<Pooling>,
    /// Attention beyond plain causal `softmax(q·k/√head_dim)`.
    #[serde(default)]
    pub attention: AttentionConfig,
    /// Logits become `cap · tanh(logit / cap)` (Gemma 2).
    #[serde(default)]
    pub final_softcap: Option<f32>,
    /// The audio side and decoding tokens of a Whisper model (`num_layers` counts the encoder
    /// blocks and the decoder blocks alike).
    #[serde(default)]
    pub whisper: Option<WhisperConfig>,
}

/// What a Whisper model needs besides its transformer dimensions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperConfig {
    /// Mel bins of the input spectrogram (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Encoder positions: frames of a 30 s window after the stride-2 convolution (1500).
    pub audio_ctx: usize,
    /// Special tokens.
    pub tokens: WhisperTokens,
    /// Languages the model knows, in token order: (code, token id).
    pub languages: Vec<(String, u32)>,
    /// Tokens never sampled.
    pub suppress_tokens: Vec<u32>,
    /// Tokens not sampled as the first token of a segment (the blank, end of text).
    pub begin_suppress_tokens: Vec<u32>,
    /// (decoder layer, head) pairs whose cross-attention follows the audio (word timing).
    #[serde(default)]
    pub alignment_heads: Vec<(u32, u32)>,
}

/// Whisper's special tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhisperTokens {
    /// `<|startoftranscript|>`.
    pub sot: u32,
    /// `<|endoftext|>`.
    pub eot: u32,
    /// `<|transcribe|>`.
    pub transcribe: u32,
    /// `<|translate|>`.
    pub translate: u32,
    /// `<|startofprev|>`.
    pub sot_prev: u32,
    /// `<|nospeech|>` (`<|nocaptions|>` in older vocabularies).
    pub no_speech: u32,
    /// `<|notimestamps|>`.
    pub no_timestamps: u32,
    /// `<|0.00|>`; timestamp token `timestamp_begin + i` is `i × 0.02` s.
    pub timestamp_begin: u32,
}

/// Variations of a decoder's attention; the default is none of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttentionConfig {
    /// Factor of the scores (default `1/√head_dim`; Gemma 3 uses `query_pre_attn_scalar^-½`).
    #[serde(default)]
    pub scale: Option<f32>,
    /// Scores become `cap · tanh(score / cap)` before the softmax (Gemma 2).
    #[serde(default)]
    pub softcap: Option<f32>,
    /// A sliding-window layer's query at position `p` sees the keys at `p - window < k ≤ p`.
    #[serde(default)]
    pub window: Option<usize>,
    /// Which layers use the window (one flag per layer; empty: every layer, when a window is set).
    #[serde(default)]
    pub sliding_layers: Vec<bool>,
    /// RoPE of the sliding-window layers where it differs from the model's (Gemma 3's local base).
    #[serde(default)]
    pub local_rope: Option<Rope>,
}

impl AttentionConfig {
    /// The window of layer `l`, if it is a sliding-window layer.
    pub fn window_of(&self, l: usize) -> Option<usize> {
        let sliding = self.sliding_layers.is_empty() || self.sliding_layers.get(l) == Some(&true);
        self.window.filter(|_| sliding)
    }
}

/// Tokenization algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerModel {
    /// Byte-level BPE (GPT-2, Llama 3, SmolLM2, Qwen2): BPE over the UTF-8 bytes of
    /// pre-tokenized pieces, ranked by the merge list.
    BpeByteLevel,
    /// SentencePiece-style BPE (Llama 2, TinyLlama): BPE over characters of
    /// space-replaced text, ranked by merges or by scores, unknown characters as bytes.
    BpeSentencePiece,
    /// WordPiece (BERT): greedy longest match with a continuation prefix.
    WordPiece,
}

/// One step of pre-tokenization (splitting text into pieces before the model runs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PreTokenizerStep {
    /// Split on the matches of a regular expression, keeping each match as a piece and the
    /// text between matches as pieces too (Hugging Face `Split` with `Isolated` behaviour,
    /// and the regex inside `ByteLevel(use_regex)`).
    Split {
        /// The pattern, in the syntax of Hugging Face tokenizers (Oniguruma).
        pattern: String,
    },
    /// Split digits from other characters; `individual` puts every digit in its own piece.
    Digits {
        /// One piece per digit.
        individual: bool,
    },
    /// BERT's pre-tokenizer: split on whitespace, and isolate each punctuation character.
    Bert,
}

/// Text normalization before pre-tokenization.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Normalizer {
    /// BERT: drop control characters and map whitespace to spaces.
    #[serde(default)]
    pub clean_text: bool,
    /// BERT: put spaces around CJK ideographs.
    #[serde(default)]
    pub handle_chinese_chars: bool,
    /// BERT: NFD and drop combining marks.
    #[serde(default)]
    pub strip_accents: bool,
    /// Lower-case.
    #[serde(default)]
    pub lowercase: bool,
    /// Unicode NFC composition (Qwen2).
    #[serde(default)]
    pub nfc: bool,
    /// SentencePiece: prefix the text with a space before replacing spaces.
    #[serde(default)]
    pub add_dummy_prefix: bool,
    /// SentencePiece: which pieces of text (between special tokens) get the space prefix.
    #[serde(default)]
    pub dummy_prefix: DummyPrefix,
}

/// Which runs of text (the parts between special tokens) get SentencePiece's space prefix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DummyPrefix {
    /// Every run (sentencepiece, llama.cpp, Hugging Face's `Prepend` normalizer).
    #[default]
    Always,
    /// Every run that does not already start with a space (Hugging Face `Metaspace` with
    /// `prepend_scheme: always`).
    UnlessSpaced,
    /// Only a run at the very start of the text, unless it starts with a space (`Metaspace`
    /// with `prepend_scheme: first`).
    FirstUnlessSpaced,
}

/// Everything about the tokenizer except the large tables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenizerSpec {
    /// Algorithm.
    pub model: TokenizerModel,
    /// Number of tokens (entries of the vocabulary tables).
    pub vocab_size: usize,
    /// Normalization.
    #[serde(default)]
    pub normalizer: Normalizer,
    /// Pre-tokenization steps, applied in order.
    #[serde(default)]
    pub pre_tokenizer: Vec<PreTokenizerStep>,
    /// Beginning-of-sequence token (`[CLS]` for BERT).
    pub bos: Option<u32>,
    /// End-of-sequence token (`[SEP]` for BERT).
    pub eos: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
    /// Padding token.
    pub pad: Option<u32>,
    /// Prepend `bos` when encoding a prompt.
    pub add_bos: bool,
    /// Append `eos` when encoding.
    pub add_eos: bool,
    /// Tokens that end a generation (end of sequence and end of turn).
    pub stop_tokens: Vec<u32>,
    /// SentencePiece: unknown characters become their UTF-8 byte tokens.
    #[serde(default)]
    pub byte_fallback: bool,
    /// BPE: a pre-tokenized piece that is itself a token is emitted whole, without merging
    /// (Hugging Face `ignore_merges`, Llama 3).
    #[serde(default)]
    pub ignore_merges: bool,
    /// WordPiece: prefix of word-continuation tokens (`##`).
    #[serde(default)]
    pub continuing_subword_prefix: Option<String>,
    /// WordPiece: longer words become `unk`.
    #[serde(default)]
    pub max_input_chars_per_word: Option<usize>,
    /// Encoders: default maximum tokens per input (sentence-transformers' `max_seq_length`).
    #[serde(default)]
    pub max_length: Option<usize>,
}

impl TokenizerSpec {
    /// A `model` tokenizer of `vocab_size` tokens with nothing else set: no special tokens,
    /// normalization or pre-tokenization (importers and tests fill in what they need).
    pub fn new(model: TokenizerModel, vocab_size: usize) -> TokenizerSpec {
        TokenizerSpec {
            model,
            vocab_size,
            normalizer: Normalizer::default(),
            pre_tokenizer: Vec::new(),
            bos: None,
            eos: None,
            unk: None,
            pad: None,
            add_bos: false,
            add_eos: false,
            stop_tokens: Vec::new(),
            byte_fallback: false,
            ignore_merges: false,
            continuing_subword_prefix: None,
            max_input_chars_per_word: None,
            max_length: None,
        }
    }
}

/// Provenance of a packed file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// Converter name and version.
    pub converter: String,
    /// What was converted (file or folder name, and its format).
    pub source: String,
    /// The requested quantization.
    pub quant: String,
    /// Model name, if the source had one.
    #[serde(default)]
    pub name: Option<String>,
}

/// Names of the tensors that hold the tokenizer tables.
pub mod tok_tensor {
    /// `U8 [bytes]`: the raw bytes of every token, concatenated (byte-level tokens are stored
    /// as the bytes they stand for, SentencePiece `▁` as a space, byte tokens as their byte).
    pub const VOCAB: &str = "tokenizer.vocab";
    /// `U32 [vocab_size + 1]`: start of token `i` in [`VOCAB`] is entry `i`, end is `i + 1`.
    pub const VOCAB_OFFSETS: &str = "tokenizer.vocab_offsets";
    /// `U8 [vocab_size]`: [`super::TokenKind`] code of each token.
    pub const KINDS: &str = "tokenizer.kinds";
    /// `U32 [merges, 3]`: BPE merges in rank order, `(left id, right id, merged id)`.
    pub const MERGES: &str = "tokenizer.merges";
    /// `F32 [vocab_size]`: SentencePiece scores (merge priority when there are no merges).
    pub const SCORES: &str = "tokenizer.scores";
    /// Optional `U32 [slots]`: text → id of the normal tokens, an open-addressing table that
    /// the runtime maps instead of building it at load time (layout in `docs/FORMAT.md`).
    pub const TEXT_INDEX: &str = "tokenizer.text_index";
    /// Optional `U32 [slots]`: `(left, right) →` rank (the row of [`MERGES`] that merges the
    /// pair first), an open-addressing table mapped instead of built at load time. Score-ranked
    /// SentencePiece vocabularies have none: they look merges up in [`TEXT_INDEX`].
    pub const MERGE_INDEX: &str = "tokenizer.merge_index";
}

/// What a vocabulary entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TokenKind {
    /// Produced by the tokenization algorithm.
    Normal = 0,
    /// Control/special token (`<|im_start|>`, `[CLS]`): matched verbatim in text, skipped
    /// when decoding for display.
    Special = 1,
    /// Added (user-defined) token: matched verbatim in text, decoded as text.
    Added = 2,
    /// SentencePiece byte token `<0xXX>` (stored as the byte itself).
    Byte = 3,
    /// Unused slot (never produced by encoding).
    Unused = 4,
}

impl TokenKind {
    /// The kind with this code.
    pub fn from_code(code: u8) -> Option<TokenKind> {
        [
            TokenKind::Normal,
            TokenKind::Special,
            TokenKind::Added,
            TokenKind::Byte,
            TokenKind::Unused,
        ]
        .get(usize::from(code))
        .copied()
    }
}
