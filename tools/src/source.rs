//! A model being converted: its configuration and its tensors under llama.cpp's (GGUF) names,
//! whatever the source. [`hf`], [`gguf_model`] and [`synthetic`] build one.

pub mod ct2;
pub mod gguf_model;
pub mod hf;
pub mod hf_config;
pub mod synthetic;
pub mod whisper;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use anyhow::{Result, bail};
use edgelm::format::meta::ModelConfig;
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
    /// A CTranslate2 folder (faster-whisper).
    CTranslate2,
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
}

/// The error for an architecture edgelm does not run.
pub fn unsupported(name: &str) -> anyhow::Error {
    anyhow::anyhow!(edgelm::arch::unsupported(name))
}
