//! A model being converted: its configuration and its tensors under llama.cpp's (GGUF) names,
//! whatever the source. [`hf`], [`gguf_model`] and [`synthetic`] build one.

pub mod gguf_model;
pub mod hf;
pub mod hf_config;
pub mod synthetic;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{Result, bail, ensure};
use edgelm::format::meta::{Architecture, ModelConfig};
use memmap2::Mmap;

use crate::gguf::{GgmlType, Gguf};

/// Where the bytes of source tensors live.
pub enum Buffer {
    /// A mapped file.
    Map(Mmap),
    /// Bytes in memory (tests, fuzzing).
    Owned(Vec<u8>),
    /// An open GGUF file.
    Gguf(Gguf),
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        match self {
            Buffer::Map(m) => m,
            Buffer::Owned(v) => v,
            Buffer::Gguf(g) => g.bytes(),
        }
    }
}

/// How a source tensor's data is obtained.
#[derive(Clone, Debug)]
pub enum Data {
    /// A byte range of one of the model's buffers.
    Slice {
        /// Index into the buffers.
        buffer: usize,
        /// The bytes.
        range: Range<usize>,
    },
    /// Seeded random f32 values (synthetic models).
    Random(synthetic::Fill),
}

/// One tensor of the source.
#[derive(Clone, Debug)]
pub struct SrcTensor {
    /// Its name in the source (Hugging Face names differ from the GGUF names used as keys).
    pub native: String,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Encoding of the data (safetensors floats use the matching GGML type).
    pub ty: GgmlType,
    /// The data.
    pub data: Data,
}

impl SrcTensor {
    /// Number of values.
    pub fn numel(&self) -> usize {
        self.shape.iter().product::<u64>() as usize
    }
}

/// The kind of source, as far as conversion differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A Hugging Face folder.
    HuggingFace,
    /// A GGUF file (llama.cpp permuted the Q/K rows of `llama` models).
    Gguf,
    /// Random weights.
    Synthetic,
}

/// A model ready to convert.
pub struct Model {
    /// The network's configuration.
    pub config: ModelConfig,
    /// What it was read from.
    pub kind: SourceKind,
    /// One line naming the source, for the file's provenance and the report.
    pub description: String,
    /// The model's name, if the source has one.
    pub name: Option<String>,
    /// Tensors by GGUF-style name.
    pub tensors: BTreeMap<String, SrcTensor>,
    /// Source tensors not taken in, by native name, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Notes for the report (fallbacks, adjustments).
    pub warnings: Vec<String>,
    buffers: Vec<Buffer>,
}

impl Model {
    /// A model with no tensors yet.
    pub fn new(config: ModelConfig, kind: SourceKind, description: String) -> Model {
        Model {
            config,
            kind,
            description,
            name: None,
            tensors: BTreeMap::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            buffers: Vec::new(),
        }
    }

    /// Adds a buffer and returns its index for [`Data::Slice`].
    pub fn add_buffer(&mut self, b: Buffer) -> usize {
        self.buffers.push(b);
        self.buffers.len() - 1
    }

    /// Adds a tensor under its GGUF-style name.
    pub fn insert(&mut self, name: String, t: SrcTensor) -> Result<()> {
        if let Some(old) = self.tensors.get(&name) {
            bail!("tensors {:?} and {:?} are both {name}", old.native, t.native);
        }
        self.tensors.insert(name, t);
        Ok(())
    }

    /// The raw bytes of a tensor (generated for synthetic ones).
    pub fn bytes(&self, t: &SrcTensor) -> Cow<'_, [u8]> {
        match &t.data {
            Data::Slice { buffer, range } => Cow::Borrowed(&self.buffers[*buffer].bytes()[range.clone()]),
            Data::Random(fill) => Cow::Owned(fill.generate(t.numel())),
        }
    }

    /// Whether the Q/K rows are in llama.cpp's interleaved-RoPE order (GGUF `llama` models).
    pub fn rope_permuted(&self) -> bool {
        self.kind == SourceKind::Gguf && self.config.architecture == Architecture::Llama
    }
}

/// Largest dimension accepted in a configuration (guards size arithmetic).
const MAX_DIM: usize = 1 << 26;

/// Checks that a configuration describes a network the runtime can build.
pub fn validate(c: &ModelConfig) -> Result<()> {
    let dims = [
        ("vocab size", c.vocab_size),
        ("hidden size", c.hidden_size),
        ("intermediate size", c.intermediate_size),
        ("layer count", c.num_layers),
        ("head count", c.num_heads),
        ("key/value head count", c.num_kv_heads),
        ("head dimension", c.head_dim),
        ("context length", c.max_context),
    ];
    for (what, v) in dims {
        ensure!(
            (1..=MAX_DIM).contains(&v),
            "{what} {v} is out of range (1 to {MAX_DIM})"
        );
    }
    ensure!(
        c.num_layers <= 4096,
        "layer count {} is out of range",
        c.num_layers
    );
    ensure!(
        c.num_heads.is_multiple_of(c.num_kv_heads),
        "{} heads cannot be shared by {} key/value heads",
        c.num_heads,
        c.num_kv_heads
    );
    ensure!(
        c.norm_eps.is_finite() && c.norm_eps > 0.0,
        "normalization epsilon {} is not positive",
        c.norm_eps
    );
    if let Some(rope) = &c.rope {
        ensure!(
            c.head_dim.is_multiple_of(2),
            "RoPE needs an even head dimension, not {}",
            c.head_dim
        );
        ensure!(
            rope.dims > 0 && rope.dims <= c.head_dim && rope.dims.is_multiple_of(2),
            "RoPE dimensions {} must be even and at most the head dimension {}",
            rope.dims,
            c.head_dim
        );
        ensure!(
            rope.theta.is_finite() && rope.theta > 0.0,
            "RoPE theta {} is not positive",
            rope.theta
        );
    }
    if c.architecture == Architecture::Bert {
        ensure!(
            c.num_heads * c.head_dim == c.hidden_size,
            "{} heads of {} do not make the hidden size {}",
            c.num_heads,
            c.head_dim,
            c.hidden_size
        );
        ensure!(
            (1..=MAX_DIM).contains(&c.type_vocab_size),
            "token type count {} is out of range",
            c.type_vocab_size
        );
    }
    Ok(())
}

/// The error for an architecture edgelm does not run.
pub fn unsupported(name: &str) -> anyhow::Error {
    let names = Architecture::ALL.map(|a| a.name()).join(", ");
    anyhow::anyhow!("unsupported architecture {name:?} (edgelm-convert supports: {names})")
}
