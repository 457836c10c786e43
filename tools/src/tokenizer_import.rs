//! Tokenizer import: a Hugging Face folder's `tokenizer.json` (with its config files) or a GGUF
//! file's `tokenizer.ggml.*` metadata becomes a [`TokenizerSpec`] for the packed file's
//! metadata plus the table tensors of [`edgelm::format::meta::tok_tensor`].
//!
//! Token text is stored as the bytes it stands for: byte-level BPE tokens have GPT-2's
//! byte-to-unicode mapping undone, SentencePiece `▁` becomes a space, `<0xXX>` byte tokens
//! become that byte; special and added tokens are kept verbatim.

mod byte_level;
mod from_gguf;
mod from_hf;
mod tables;

use edgelm::format::TensorPlan;
use edgelm::format::meta::TokenizerSpec;

pub use from_gguf::from_gguf;
pub use from_hf::{from_hf_folder, from_whisper_folder};

/// An imported tokenizer, ready to be written into a packed file.
#[derive(Clone, Debug)]
pub struct TokenizerImport {
    /// The metadata part (goes into [`edgelm::format::Metadata::tokenizer`]).
    pub spec: TokenizerSpec,
    /// The model's Jinja chat template, if the source has one.
    pub chat_template: Option<String>,
    /// The table tensors (vocabulary bytes and offsets, kinds, merges, scores) with their data.
    pub tensors: Vec<(TensorPlan, Vec<u8>)>,
}
