//! Tokenizer import from the real sources: SmolLM2's GGUF, MiniLM's Hugging Face folder, the
//! tiny test model's folder and llama.cpp's test vocabularies; and clear errors for the rest.

mod tokenizer_support;

use std::io::Write;

use edgelm::format::meta::{PreTokenizerStep, TokenKind, TokenizerModel, tok_tensor};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::tokenizer_import::{TokenizerImport, from_gguf, from_hf_folder};
use tokenizer_support::*;

fn kinds(import: &TokenizerImport) -> &[u8] {
    &import
        .tensors
        .iter()
        .find(|(p, _)| p.name == tok_tensor::KINDS)
        .unwrap()
        .1
}

fn token(import: &TokenizerImport, id: usize) -> Vec<u8> {
    let find = |name| &import.tensors.iter().find(|(p, _)| p.name == name).unwrap().1;
    let (bytes, offsets) = (find(tok_tensor::VOCAB), find(tok_tensor::VOCAB_OFFSETS));
    let at = |i: usize| u32::from_le_bytes(offsets[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    bytes[at(id)..at(id + 1)].to_vec()
}

#[test]
fn smollm2_gguf() {
    let Some(path) = tokenizer_support::smollm2_gguf() else {
        return;
    };
    let import = from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    let spec = &import.spec;
    assert_eq!(spec.model, TokenizerModel::BpeByteLevel);
    assert_eq!(spec.vocab_size, 49152);
    assert_eq!(
        spec.pre_tokenizer[0],
        PreTokenizerStep::Digits { individual: true }
    );
    assert!(matches!(spec.pre_tokenizer[1], PreTokenizerStep::Split { .. }));
    assert!(!spec.add_bos && !spec.add_eos);
    assert_eq!((spec.bos, spec.eos), (Some(1), Some(2)));
    assert!(
        spec.stop_tokens.contains(&2) && spec.stop_tokens.contains(&0),
        "{:?}",
        spec.stop_tokens
    );
    assert!(import.chat_template.as_deref().unwrap().contains("<|im_start|>"));
    assert_eq!(token(&import, 1), b"<|im_start|>");
    assert_eq!(kinds(&import)[1], TokenKind::Special as u8);
    // Byte-level spelling undone: some token is " the".
    assert!((0..spec.vocab_size).any(|i| token(&import, i) == b" the"));
    assert!(
        import
            .tensors
            .iter()
            .any(|(p, _)| p.name == tok_tensor::MERGES && p.shape == [48900, 3])
    );
    // The tables pass the packed-file writer's and reader's checks.
    pack(&import);
}

#[test]
fn minilm_folder() {
    let Some(dir) = minilm_dir() else { return };
    let import = from_hf_folder(&dir).unwrap();
    let spec = &import.spec;
    assert_eq!(spec.model, TokenizerModel::WordPiece);
    assert_eq!(spec.vocab_size, 30522);
    assert_eq!(
        (spec.bos, spec.eos, spec.unk, spec.pad),
        (Some(101), Some(102), Some(100), Some(0))
    );
    assert!(spec.add_bos && spec.add_eos);
    assert_eq!(spec.max_length, Some(256));
    let n = &spec.normalizer;
    assert!(n.clean_text && n.handle_chinese_chars && n.lowercase && n.strip_accents);
    assert_eq!(spec.pre_tokenizer, [PreTokenizerStep::Bert]);
    assert_eq!(spec.continuing_subword_prefix.as_deref(), Some("##"));
    assert!(spec.stop_tokens.is_empty());
    assert!(import.chat_template.is_none());
    pack(&import);
}

#[test]
fn tiny_llama_folder() {
    let import = from_hf_folder(&fixtures().join("tiny-llama")).unwrap();
    assert_eq!(import.spec.model, TokenizerModel::BpeByteLevel);
    assert!(import.spec.eos.is_some());
    pack(&import);
}

#[test]
fn llama_cpp_vocabularies() {
    for (name, model) in [
        ("llama-spm", TokenizerModel::BpeSentencePiece),
        ("llama-bpe", TokenizerModel::BpeByteLevel),
        ("qwen2", TokenizerModel::BpeByteLevel),
        ("gpt-2", TokenizerModel::BpeByteLevel),
        ("bert-bge", TokenizerModel::WordPiece),
    ] {
        let Some(path) = ggml_vocab(name) else { continue };
        let import = from_gguf(&Gguf::open(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(import.spec.model, model, "{name}");
        pack(&import);
    }
}

#[test]
fn sentencepiece_bytes_and_spaces() {
    let Some(path) = ggml_vocab("llama-spm") else {
        return;
    };
    let import = from_gguf(&Gguf::open(&path).unwrap()).unwrap();
    let spec = &import.spec;
    assert!(spec.byte_fallback && spec.normalizer.add_dummy_prefix && spec.add_bos);
    assert_eq!((spec.bos, spec.eos, spec.unk), (Some(1), Some(2), Some(0)));
    // <0x0A> is token 3 + 10, stored as the newline byte.
    assert_eq!(token(&import, 13), b"\n");
    assert_eq!(kinds(&import)[13], TokenKind::Byte as u8);
    assert!(import.tensors.iter().any(|(p, _)| p.name == tok_tensor::SCORES));
    assert!((0..spec.vocab_size).any(|i| token(&import, i) == b" the"));
}

/// A GGUF file with only the given string metadata.
fn gguf_with(keys: &[(&str, &str)]) -> tempfile::NamedTempFile {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((keys.len() as u64).to_le_bytes());
    for (k, v) in keys {
        out.extend((k.len() as u64).to_le_bytes());
        out.extend(k.as_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&out).unwrap();
    f
}

#[test]
fn unknown_tokenizer_types_are_named() {
    let f = gguf_with(&[("tokenizer.ggml.model", "t5")]);
    let err = from_gguf(&Gguf::open(f.path()).unwrap()).unwrap_err().to_string();
    assert!(err.contains("\"t5\""), "{err}");

    let f = gguf_with(&[("general.architecture", "llama")]);
    let err = from_gguf(&Gguf::open(f.path()).unwrap()).unwrap_err().to_string();
    assert!(err.contains("tokenizer.ggml.model"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tokenizer.json"),
        r#"{"model": {"type": "Unigram", "vocab": []}}"#,
    )
    .unwrap();
    let err = format!("{:#}", from_hf_folder(dir.path()).unwrap_err());
    assert!(err.contains("\"Unigram\""), "{err}");

    let err = format!("{:#}", from_hf_folder(&dir.path().join("nothing")).unwrap_err());
    assert!(err.contains("tokenizer.json"), "{err}");
}
