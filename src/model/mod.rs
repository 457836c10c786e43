//! A loaded model: the mapped packed file, its validated configuration and typed,
//! zero-copy views of every weight.

mod decoder;
mod encoder;
mod matrix;
mod tensors;

use std::path::Path;

pub use decoder::{DecoderLayer, DecoderWeights};
pub use encoder::{EncoderLayer, EncoderWeights, LayerNorm};
pub use matrix::{Input, Linear, Matrix};

use crate::format::meta::{Architecture, ModelConfig};
use crate::format::{FormatError, Metadata, PackedFile};
use crate::tokenizer::{Tokenizer, TokenizerError};

/// Why a model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is damaged or not a packed model.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The tokenizer tables are invalid.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] TokenizerError),
    /// The configuration is inconsistent or unsupported.
    #[error("model config: {0}")]
    Config(String),
}

/// The weights of one of the supported network families.
pub enum Weights<'a> {
    /// A causal decoder (llama, qwen2).
    Decoder(DecoderWeights<'a>),
    /// A sentence encoder (bert).
    Encoder(EncoderWeights<'a>),
}

self_cell::self_cell!(
    struct ModelCell {
        owner: PackedFile,
        #[covariant]
        dependent: Weights,
    }
);

/// A model ready to make sessions: file, configuration, tokenizer and weights.
pub struct Model {
    cell: ModelCell,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", self.config())
            .finish_non_exhaustive()
    }
}

impl Model {
    /// Maps the packed file at `path` and validates it against its configuration. Only the
    /// header, directory and tokenizer tables are read now; weights are paged in on use.
    pub fn open(path: &Path) -> Result<Model, ModelError> {
        Model::from_packed(PackedFile::open(path)?)
    }

    /// Validates an open packed file as a model.
    pub fn from_packed(file: PackedFile) -> Result<Model, ModelError> {
        validate_config(&file.meta().config)?;
        let tokenizer = Tokenizer::from_packed(&file)?;
        let cell = ModelCell::try_new(file, |file| -> Result<Weights<'_>, ModelError> {
            let config = &file.meta().config;
            match config.architecture {
                Architecture::Llama | Architecture::Qwen2 => {
                    Ok(Weights::Decoder(DecoderWeights::load(file, config)?))
                }
                Architecture::Bert => Ok(Weights::Encoder(EncoderWeights::load(file, config)?)),
            }
        })?;
        Ok(Model { cell, tokenizer })
    }

    /// The whole metadata.
    pub fn meta(&self) -> &Metadata {
        self.cell.borrow_owner().meta()
    }

    /// The network configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.meta().config
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The packed file.
    pub fn file(&self) -> &PackedFile {
        self.cell.borrow_owner()
    }

    /// The weights.
    pub fn weights(&self) -> &Weights<'_> {
        self.cell.borrow_dependent()
    }

    /// The decoder weights, or an error for encoder models.
    pub fn decoder(&self) -> Result<&DecoderWeights<'_>, ModelError> {
        match self.weights() {
            Weights::Decoder(d) => Ok(d),
            Weights::Encoder(_) => Err(ModelError::Config(format!(
                "{} is a sentence encoder, it does not generate text (use `edgelm embed` or `edgelm search`)",
                self.config().architecture.name()
            ))),
        }
    }

    /// The encoder weights, or an error for decoder models.
    pub fn encoder(&self) -> Result<&EncoderWeights<'_>, ModelError> {
        match self.weights() {
            Weights::Encoder(e) => Ok(e),
            Weights::Decoder(_) => Err(ModelError::Config(format!(
                "{} is a text-generation decoder, not a sentence encoder (embeddings need a bert model)",
                self.config().architecture.name()
            ))),
        }
    }
}

/// Largest dimension accepted from a file (guards against absurd values before allocating).
const MAX_DIM: usize = 1 << 20;

fn validate_config(c: &ModelConfig) -> Result<(), ModelError> {
    let err = |m: String| Err(ModelError::Config(m));
    let dims = [
        ("vocab_size", c.vocab_size, 1 << 22),
        ("hidden_size", c.hidden_size, MAX_DIM),
        ("intermediate_size", c.intermediate_size, MAX_DIM),
        ("num_layers", c.num_layers, 4096),
        ("num_heads", c.num_heads, 4096),
        ("num_kv_heads", c.num_kv_heads, 4096),
        ("head_dim", c.head_dim, 4096),
        ("max_context", c.max_context, 1 << 24),
    ];
    for (name, v, max) in dims {
        if v == 0 || v > max {
            return err(format!("{name} = {v} is out of range (1..={max})"));
        }
    }
    if !c.num_heads.is_multiple_of(c.num_kv_heads) {
        return err(format!(
            "num_heads {} is not a multiple of num_kv_heads {}",
            c.num_heads, c.num_kv_heads
        ));
    }
    for (name, v) in [
        ("hidden_size", c.hidden_size),
        ("intermediate_size", c.intermediate_size),
        ("num_heads × head_dim", c.num_heads * c.head_dim),
    ] {
        if !v.is_multiple_of(edgelm_kernels::layout::QK) {
            return err(format!("{name} = {v} is not a multiple of 32"));
        }
    }
    if let Some(rope) = &c.rope
        && (rope.dims == 0
            || rope.dims > c.head_dim
            || !rope.dims.is_multiple_of(2)
            || rope.theta.is_nan()
            || rope.theta <= 0.0)
    {
        return err(format!(
            "rope dims {} / theta {} do not fit head_dim {}",
            rope.dims, rope.theta, c.head_dim
        ));
    }
    if c.architecture.is_decoder() && c.rope.is_none() {
        return err(format!("{} needs rotary embeddings", c.architecture.name()));
    }
    if !(c.norm_eps >= 0.0 && c.norm_eps < 1.0) {
        return err(format!("norm_eps {} is out of range", c.norm_eps));
    }
    Ok(())
}
