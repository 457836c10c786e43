//! The vocabulary of architecture tables: what a tensor is called in each format, its shape in
//! terms of the configuration, how it is used, and what it is fused with.

use crate::format::meta::{Architecture, ModelConfig};

/// Frequency bins of Whisper's spectrogram: a 400-sample FFT gives 201.
pub const WHISPER_FFT_BINS: usize = 201;

/// A dimension of a tensor, in terms of the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// Rows of the embedding table.
    Vocab,
    /// Width of the residual stream.
    Hidden,
    /// Width of the feed-forward layer.
    Ff,
    /// Query features, `num_heads × head_dim`.
    QRows,
    /// Key (or value) features, `num_kv_heads × head_dim`.
    KvRows,
    /// Query, key and value features together (a fused q/k/v projection).
    QkvRows,
    /// Gate and up features together (a fused gate/up projection), `2 × Ff`.
    GateUpRows,
    /// One head.
    HeadDim,
    /// Positions of a learned position embedding.
    Context,
    /// Token types (segments) of an encoder.
    TypeVocab,
    /// Mel bins of a speech model's input.
    Mels,
    /// Frequency bins of one short-time Fourier transform (Whisper: 201, for 400 samples).
    FftBins,
    /// A speech model's first convolution's inputs: 3 taps × mel bins.
    MelTaps,
    /// The second convolution's inputs: 3 taps × hidden.
    HiddenTaps,
    /// Encoder positions of a speech model (audio frames after the stem).
    AudioCtx,
}

impl Dim {
    /// The size of this dimension under `c`.
    pub fn size(self, c: &ModelConfig) -> usize {
        match self {
            Dim::Vocab => c.vocab_size,
            Dim::Hidden => c.hidden_size,
            Dim::Ff => c.intermediate_size,
            Dim::QRows => c.num_heads * c.head_dim,
            Dim::KvRows => c.num_kv_heads * c.head_dim,
            Dim::QkvRows => (c.num_heads + 2 * c.num_kv_heads) * c.head_dim,
            Dim::GateUpRows => 2 * c.intermediate_size,
            Dim::HeadDim => c.head_dim,
            Dim::Context => c.max_context,
            Dim::TypeVocab => c.type_vocab_size,
            Dim::Mels => c.whisper.as_ref().map_or(0, |w| w.n_mels),
            Dim::FftBins => WHISPER_FFT_BINS,
            Dim::MelTaps => 3 * Dim::Mels.size(c),
            Dim::HiddenTaps => 3 * c.hidden_size,
            Dim::AudioCtx => c.whisper.as_ref().map_or(0, |w| w.audio_ctx),
        }
    }
}

/// A tensor's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A vector.
    Vector(Dim),
    /// A `rows × cols` matrix (rows are output features).
    Matrix(Dim, Dim),
}

/// How a tensor is used, which decides the type the converter stores it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A matrix multiplied with activations.
    Matmul,
    /// A token embedding table (also the output head when tied) or the output head.
    Embedding,
    /// Kept as f32: norms, biases, BERT position and token-type embeddings.
    Float,
}

/// Whether a tensor has a bias vector beside its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// Never.
    No,
    /// Always (LayerNorm, BERT's projections).
    Yes,
    /// When the configuration's `qkv_bias` says so.
    Qkv,
    /// When `attn_out_bias` says so.
    AttnOut,
    /// When `mlp_bias` says so.
    Mlp,
}

impl Bias {
    /// Whether the bias is there under `c`.
    pub fn present(self, c: &ModelConfig) -> bool {
        match self {
            Bias::No => false,
            Bias::Yes => true,
            Bias::Qkv => c.qkv_bias,
            Bias::AttnOut => c.attn_out_bias,
            Bias::Mlp => c.mlp_bias,
        }
    }
}

/// When a tensor is part of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Always.
    Always,
    /// Only when the output head is not the embedding table.
    Untied,
    /// Only when the configuration has token types.
    TokenTypes,
}

/// One tensor of an architecture: a whole-model tensor, or one of every block's (whose names
/// get the `blk.N.` / `{hf_layer_prefix}N.` prefixes). `.weight` (and `.bias`) are appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorDef {
    /// The name in packed files (llama.cpp's name where it has one).
    pub name: &'static str,
    /// The name in GGUF files.
    pub gguf: &'static str,
    /// The name in Hugging Face checkpoints.
    pub hf: &'static str,
    /// Shape.
    pub shape: Shape,
    /// Use.
    pub role: Role,
    /// Bias vector.
    pub bias: Bias,
    /// The fused tensor this one is stacked into (along rows) when the parts' types agree.
    pub fuse: Option<&'static str>,
    /// When it exists.
    pub presence: Presence,
    /// Hugging Face stores `w` of a `(1 + w)` norm (Gemma); packed and GGUF files store `1 + w`.
    pub hf_plus_one: bool,
    /// The Hugging Face prefix of this block tensor's names where it is not the architecture's
    /// (Whisper's encoder and decoder blocks share a block index but not a prefix).
    pub hf_prefix: Option<&'static str>,
}

impl TensorDef {
    /// A matrix `rows × cols` used in products.
    pub const fn matrix(name: &'static str, hf: &'static str, rows: Dim, cols: Dim) -> TensorDef {
        TensorDef {
            name,
            gguf: name,
            hf,
            shape: Shape::Matrix(rows, cols),
            role: Role::Matmul,
            bias: Bias::No,
            fuse: None,
            presence: Presence::Always,
            hf_plus_one: false,
            hf_prefix: None,
        }
    }

    /// An f32 vector (a norm weight).
    pub const fn vector(name: &'static str, hf: &'static str, len: Dim) -> TensorDef {
        TensorDef {
            shape: Shape::Vector(len),
            role: Role::Float,
            ..TensorDef::matrix(name, hf, len, len)
        }
    }

    /// With a bias vector.
    pub const fn bias(self, bias: Bias) -> TensorDef {
        TensorDef { bias, ..self }
    }

    /// Stacked into `fused` with the other parts of the group.
    pub const fn fuse(self, fused: &'static str) -> TensorDef {
        TensorDef {
            fuse: Some(fused),
            ..self
        }
    }

    /// With another role.
    pub const fn role(self, role: Role) -> TensorDef {
        TensorDef { role, ..self }
    }

    /// Present only as `presence` says.
    pub const fn when(self, presence: Presence) -> TensorDef {
        TensorDef { presence, ..self }
    }

    /// Called `gguf` in GGUF files.
    pub const fn gguf(self, gguf: &'static str) -> TensorDef {
        TensorDef { gguf, ..self }
    }

    /// A `(1 + w)` norm whose Hugging Face weight is `w`.
    pub const fn plus_one(self) -> TensorDef {
        TensorDef {
            hf_plus_one: true,
            ..self
        }
    }

    /// A block tensor whose Hugging Face names start with `prefix` (before the block index).
    pub const fn hf_in(self, prefix: &'static str) -> TensorDef {
        TensorDef {
            hf_prefix: Some(prefix),
            ..self
        }
    }

    /// Whether it exists under `c`.
    pub fn present(&self, c: &ModelConfig) -> bool {
        match self.presence {
            Presence::Always => true,
            Presence::Untied => !c.tied_embeddings,
            Presence::TokenTypes => c.type_vocab_size > 0,
        }
    }

    /// Dimensions under `c`, outermost first.
    pub fn dims(&self, c: &ModelConfig) -> Vec<usize> {
        match self.shape {
            Shape::Vector(d) => vec![d.size(c)],
            Shape::Matrix(r, k) => vec![r.size(c), k.size(c)],
        }
    }
}

/// Structural choices of a block that the tensor table does not tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipe {
    /// The token embeddings are multiplied by `√hidden` (Gemma).
    pub scale_embeddings: bool,
}

/// One architecture.
#[derive(Debug)]
pub struct ArchDef {
    /// Which.
    pub arch: Architecture,
    /// Hugging Face `model_type` values it reads.
    pub hf_model_types: &'static [&'static str],
    /// Whole-model tensors, in file order before the blocks (`after` holds those after).
    pub before: &'static [TensorDef],
    /// Every block's tensors, in file order.
    pub block: &'static [TensorDef],
    /// Whole-model tensors after the blocks.
    pub after: &'static [TensorDef],
    /// Hugging Face prefix of block `N`'s names, before `N.`.
    pub hf_block_prefix: &'static str,
    /// Hugging Face prefix of whole-model names that some checkpoints add (BERT's `bert.`).
    pub hf_optional_prefix: &'static str,
    /// Block recipe.
    pub recipe: Recipe,
    /// GGUF files of this architecture hold the Q and K rows in llama.cpp's interleaved-RoPE
    /// order, which the converter undoes.
    pub gguf_rope_permuted: bool,
}

/// One tensor a configuration needs, named in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// Packed name (`blk.3.attn_q.weight`).
    pub name: String,
    /// GGUF name.
    pub gguf: String,
    /// Hugging Face name.
    pub hf: String,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Use.
    pub role: Role,
    /// The fused tensor it may be stacked into (`blk.3.attn_qkv.weight`).
    pub fused: Option<String>,
    /// Hugging Face stores it as `w` of `(1 + w)`.
    pub hf_plus_one: bool,
}

impl ArchDef {
    /// Every tensor `c` needs, in file order, weights followed by their biases.
    pub fn needed(&self, c: &ModelConfig) -> Vec<Needed> {
        let mut out = Vec::new();
        let mut add = |d: &TensorDef, block: Option<usize>| {
            if !d.present(c) {
                return;
            }
            let (pre, hf_pre) = match block {
                Some(n) => (
                    format!("blk.{n}."),
                    format!("{}{n}.", d.hf_prefix.unwrap_or(self.hf_block_prefix)),
                ),
                None => (String::new(), String::new()),
            };
            let dims = d.dims(c);
            let mut push = |suffix: &str, shape: &[usize], role| {
                out.push(Needed {
                    name: format!("{pre}{}.{suffix}", d.name),
                    gguf: format!("{pre}{}.{suffix}", d.gguf),
                    hf: format!("{hf_pre}{}.{suffix}", d.hf),
                    shape: shape.iter().map(|&x| x as u64).collect(),
                    role,
                    fused: d.fuse.map(|f| format!("{pre}{f}.{suffix}")),
                    hf_plus_one: d.hf_plus_one && suffix == "weight",
                })
            };
            push("weight", &dims, d.role);
            if d.bias.present(c) {
                push("bias", &dims[..1], Role::Float);
            }
        };
        self.before.iter().for_each(|d| add(d, None));
        for n in 0..c.num_layers {
            self.block.iter().for_each(|d| add(d, Some(n)));
        }
        self.after.iter().for_each(|d| add(d, None));
        out
    }

    /// The definition of block tensor `name` (`attn_q`), or of a fused group's first part.
    pub fn block_tensor(&self, name: &str) -> Option<&TensorDef> {
        self.block.iter().find(|d| d.name == name)
    }

    /// The block tensors that make up `slot`: the tensor of that name, or the parts fused
    /// into it, in row order.
    pub fn parts(&self, slot: &str) -> Vec<&TensorDef> {
        match self.block_tensor(slot) {
            Some(d) => vec![d],
            None => self.block.iter().filter(|d| d.fuse == Some(slot)).collect(),
        }
    }

    /// The packed name of a Hugging Face tensor name, or `None` if the architecture does not
    /// use it.
    pub fn from_hf(&self, native: &str) -> Option<String> {
        let name = native
            .strip_prefix(self.hf_optional_prefix)
            .filter(|_| !self.hf_optional_prefix.is_empty())
            .unwrap_or(native);
        let (stem, suffix) = name.rsplit_once('.')?;
        if !matches!(suffix, "weight" | "bias") {
            return None;
        }
        let whole = self.before.iter().chain(self.after);
        if let Some(d) = whole.into_iter().find(|d| d.hf == stem) {
            return Some(format!("{}.{suffix}", d.name));
        }
        self.block.iter().find_map(|d| {
            let rest = stem.strip_prefix(d.hf_prefix.unwrap_or(self.hf_block_prefix))?;
            let (n, piece) = rest.split_once('.')?;
            let n: usize = n.parse().ok().filter(|_| !n.starts_with('+'))?;
            (d.hf == piece).then(|| format!("blk.{n}.{}.{suffix}", d.name))
        })
    }

    /// The packed name of a GGUF tensor name, or `None` if the architecture does not use it.
    pub fn from_gguf(&self, gguf: &str) -> Option<String> {
        let (stem, suffix) = gguf.rsplit_once('.')?;
        let whole = self.before.iter().chain(self.after);
        if let Some(d) = whole.into_iter().find(|d| d.gguf == stem) {
            return Some(format!("{}.{suffix}", d.name));
        }
        let (n, piece) = stem.strip_prefix("blk.")?.split_once('.')?;
        let n: usize = n.parse().ok().filter(|_| !n.starts_with('+'))?;
        let d = self.block.iter().find(|d| d.gguf == piece)?;
        Some(format!("blk.{n}.{}.{suffix}", d.name))
    }
}
