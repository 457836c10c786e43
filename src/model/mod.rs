//! A loaded model: the mapped packed file, its validated configuration and typed,
//! zero-copy views of every weight.

mod decoder;
mod encoder;
mod matrix;
mod tensors;
mod whisper;

use std::path::Path;

pub use decoder::{DecoderLayer, DecoderWeights};
pub use encoder::{EncoderLayer, EncoderWeights, LayerNorm};
pub use matrix::{Input, Linear, Matrix};
pub use whisper::{WhisperDecoderLayer, WhisperEncoderLayer, WhisperWeights};

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
    /// A causal decoder (llama, qwen2, qwen3, phi3, gemma3).
    Decoder(DecoderWeights<'a>),
    /// A sentence encoder (bert).
    Encoder(EncoderWeights<'a>),
    /// A speech recognizer (whisper).
    Whisper(WhisperWeights<'a>),
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
    /// header, directory and tokenizer tables are read now; the weights are paged in and
    /// checked against their checksums on a background thread
    /// ([`PackedFile::prefault_in_background`]): damaged data makes the next forward pass fail.
    pub fn open(path: &Path) -> Result<Model, ModelError> {
        let file = PackedFile::open(path)?;
        file.prefault_in_background();
        Model::from_packed(file)
    }

    /// Validates an open packed file as a model.
    pub fn from_packed(file: PackedFile) -> Result<Model, ModelError> {
        crate::arch::validate(&file.meta().config).map_err(|e| ModelError::Config(e.0))?;
        let tokenizer = Tokenizer::from_packed(&file)?;
        let cell = ModelCell::try_new(file, |file| -> Result<Weights<'_>, ModelError> {
            let config = &file.meta().config;
            Ok(match config.architecture {
                Architecture::Whisper => Weights::Whisper(WhisperWeights::load(file, config)?),
                a if a.is_decoder() => Weights::Decoder(DecoderWeights::load(file, config)?),
                _ => Weights::Encoder(EncoderWeights::load(file, config)?),
            })
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
            Weights::Whisper(_) => Err(self.speech_error()),
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
            Weights::Whisper(_) => Err(self.speech_error()),
        }
    }

    /// The Whisper weights, or an error for text models.
    pub fn whisper(&self) -> Result<&WhisperWeights<'_>, ModelError> {
        match self.weights() {
            Weights::Whisper(w) => Ok(w),
            _ => Err(ModelError::Config(format!(
                "{} is a text model, not a speech recognizer (`edgelm transcribe` needs a whisper model)",
                self.config().architecture.name()
            ))),
        }
    }

    fn speech_error(&self) -> ModelError {
        ModelError::Config(format!(
            "{} is a speech recognizer (use `edgelm transcribe`)",
            self.config().architecture.name()
        ))
    }
}
