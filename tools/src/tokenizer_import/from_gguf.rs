//! Import from GGUF metadata (`tokenizer.ggml.*`), mapping llama.cpp's pre-tokenizer names to
//! the split steps of the Hugging Face tokenizers they were converted from.

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{Normalizer, PreTokenizerStep, TokenKind, TokenizerModel, TokenizerSpec};

use super::tables::{Tables, byte_token, spm_text};
use super::{TokenizerImport, byte_level};
use crate::gguf::{Gguf, Value};

/// GPT-2's pre-tokenizer regex (Hugging Face `ByteLevel(use_regex=true)`).
pub(super) const GPT2_PATTERN: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT4O_PATTERN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's regexes for pre-tokenizer `default`, applied in turn.
const DEFAULT_PATTERNS: [&str; 4] = [
    r"[\p{P}\$\+<=>\^~\|]+",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];

/// How a byte-level BPE vocabulary named by `tokenizer.ggml.pre` splits text.
struct PreTokenizer {
    steps: Vec<PreTokenizerStep>,
    ignore_merges: bool,
    nfc: bool,
    add_bos: bool,
}

fn split(pattern: &str) -> PreTokenizerStep {
    PreTokenizerStep::Split {
        pattern: pattern.to_owned(),
    }
}

/// The pre-tokenizer llama.cpp's `llama-vocab.cpp` uses for `name`, as Hugging Face steps.
fn pre_tokenizer(name: &str) -> Result<PreTokenizer> {
    let mut pre = PreTokenizer {
        steps: vec![split(GPT2_PATTERN)],
        ignore_merges: false,
        nfc: false,
        add_bos: false,
    };
    match name {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2" => {
            pre.steps = vec![split(LLAMA3_PATTERN)];
            pre.ignore_merges = true;
            pre.add_bos = true;
        }
        "dbrx" | "smaug-bpe" | "chatglm-bpe" => pre.steps = vec![split(LLAMA3_PATTERN)],
        "gpt-2" | "phi-2" | "mpt" | "olmo" | "jais" | "jina-es" | "jina-de" | "jina-v2-es" | "jina-v2-de"
        | "gigachat" | "mellum" | "exaone4" => {}
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b" => {
            pre.steps.insert(0, PreTokenizerStep::Digits { individual: true });
        }
        "qwen2" | "deepseek-r1-qwen" => {
            pre.steps = vec![split(QWEN2_PATTERN)];
            pre.nfc = true;
        }
        "stablelm2" | "megrez" => pre.steps = vec![split(QWEN2_PATTERN)],
        "gpt-4o" | "llama4" => pre.steps = vec![split(GPT4O_PATTERN)],
        "default" => pre.steps = DEFAULT_PATTERNS.iter().map(|p| split(p)).collect(),
        other => bail!(
            "GGUF pre-tokenizer {other:?} is not supported (supported: llama-bpe and other Llama 3 names, \
             gpt-2, smollm, starcoder, qwen2, stablelm2, gpt-4o, default and their aliases)"
        ),
    }
    Ok(pre)
}

/// llama.cpp's `LLAMA_TOKEN_TYPE_*` codes.
mod token_type {
    pub const NORMAL: i64 = 1;
    pub const UNKNOWN: i64 = 2;
    pub const CONTROL: i64 = 3;
    pub const USER_DEFINED: i64 = 4;
    pub const UNUSED: i64 = 5;
    pub const BYTE: i64 = 6;
}

fn array<'a>(g: &'a Gguf, key: &str) -> Result<Option<&'a [Value]>> {
    match g.meta.get(key) {
        None => Ok(None),
        Some(v) => {
            Ok(Some(v.as_array().with_context(|| {
                format!("GGUF metadata {key:?} is not an array")
            })?))
        }
    }
}

fn optional_u64(g: &Gguf, key: &str) -> Result<Option<u64>> {
    g.meta.get(key).map(|_| g.u64(key)).transpose()
}

fn optional_bool(g: &Gguf, key: &str) -> Result<Option<bool>> {
    match g.meta.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => bail!("GGUF metadata {key:?} is not a boolean"),
    }
}

/// Reads the tokenizer of a GGUF file.
pub fn from_gguf(g: &Gguf) -> Result<TokenizerImport> {
    let model_name = g.str("tokenizer.ggml.model")?;
    let model = match model_name {
        "gpt2" => TokenizerModel::BpeByteLevel,
        "llama" => TokenizerModel::BpeSentencePiece,
        "bert" => TokenizerModel::WordPiece,
        other => bail!("GGUF tokenizer type {other:?} is not supported (gpt2, llama and bert are)"),
    };
    let texts = array(g, "tokenizer.ggml.tokens")?.context("GGUF metadata lacks tokenizer.ggml.tokens")?;
    ensure!(!texts.is_empty(), "GGUF tokenizer.ggml.tokens is empty");
    let types = match array(g, "tokenizer.ggml.token_type")? {
        Some(types) => {
            ensure!(
                types.len() == texts.len(),
                "{} token types for {} tokens",
                types.len(),
                texts.len()
            );
            let ints = types.iter().map(|t| match *t {
                Value::Int(v) => Some(v),
                Value::UInt(v) => i64::try_from(v).ok(),
                _ => None,
            });
            ints.collect::<Option<Vec<i64>>>()
                .context("GGUF tokenizer.ggml.token_type is not integers")?
        }
        None => vec![token_type::NORMAL; texts.len()],
    };

    let mut tables = Tables::default();
    let mut raw: HashMap<&[u8], u32> = HashMap::with_capacity(texts.len());
    for (id, (value, &ty)) in texts.iter().zip(&types).enumerate() {
        let Value::Str(bytes) = value else {
            bail!("GGUF token {id} is not a string")
        };
        let text = std::str::from_utf8(bytes).with_context(|| format!("GGUF token {id} is not UTF-8"))?;
        raw.insert(bytes, id as u32);
        let (stored, kind) = token(model, text, ty).with_context(|| format!("GGUF token {id} ({text:?})"))?;
        tables.tokens.push(stored);
        tables.kinds.push(kind);
    }

    if model == TokenizerModel::BpeByteLevel {
        let merges =
            array(g, "tokenizer.ggml.merges")?.context("GGUF byte-level BPE lacks tokenizer.ggml.merges")?;
        tables.merges = merges
            .iter()
            .enumerate()
            .map(|(rank, m)| merge(&raw, m).with_context(|| format!("GGUF merge {rank}")))
            .collect::<Result<_>>()?;
    }
    if let Some(scores) = array(g, "tokenizer.ggml.scores")?
        && model == TokenizerModel::BpeSentencePiece
    {
        let scores: Option<Vec<f32>> = scores.iter().map(|s| s.as_f64().map(|v| v as f32)).collect();
        tables.scores = Some(scores.context("GGUF tokenizer.ggml.scores is not numbers")?);
    }

    let id = |key: &str, default: Option<u64>| -> Result<Option<u32>> {
        let found = optional_u64(g, key)?.or(default);
        found.map(|v| tables.check_id(v, key)).transpose()
    };
    let bert = model == TokenizerModel::WordPiece;
    let spm = model == TokenizerModel::BpeSentencePiece;
    let (bos, eos) = if bert {
        (
            id("tokenizer.ggml.cls_token_id", Some(101))?,
            id("tokenizer.ggml.seperator_token_id", Some(102))?,
        )
    } else {
        (
            id("tokenizer.ggml.bos_token_id", spm.then_some(1))?,
            id("tokenizer.ggml.eos_token_id", spm.then_some(2))?,
        )
    };
    let unk = id(
        "tokenizer.ggml.unknown_token_id",
        spm.then_some(0).or(bert.then_some(100)),
    )?;
    let pad = id("tokenizer.ggml.padding_token_id", None)?;
    let eot = id("tokenizer.ggml.eot_token_id", None)?;
    let eom = id("tokenizer.ggml.eom_token_id", None)?;

    let mut normalizer = Normalizer::default();
    let mut pre_steps = Vec::new();
    let mut ignore_merges = false;
    let mut default_add_bos = spm || bert;
    match model {
        TokenizerModel::BpeByteLevel => {
            let name = match g.meta.get("tokenizer.ggml.pre") {
                Some(_) => g.str("tokenizer.ggml.pre")?,
                None => "default",
            };
            let pre = pre_tokenizer(name)?;
            pre_steps = pre.steps;
            ignore_merges = pre.ignore_merges;
            normalizer.nfc = pre.nfc;
            default_add_bos = pre.add_bos;
        }
        TokenizerModel::BpeSentencePiece => {
            normalizer.add_dummy_prefix =
                optional_bool(g, "tokenizer.ggml.add_space_prefix")?.unwrap_or(true);
        }
        TokenizerModel::WordPiece => {
            let lowercase = optional_bool(g, "tokenizer.ggml.normalizer.lowercase")?.unwrap_or(true);
            normalizer = Normalizer {
                clean_text: true,
                handle_chinese_chars: true,
                strip_accents: optional_bool(g, "tokenizer.ggml.normalizer.strip_accents")?
                    .unwrap_or(lowercase),
                lowercase,
                ..Normalizer::default()
            };
            pre_steps = vec![PreTokenizerStep::Bert];
        }
    }
    let add_bos = optional_bool(g, "tokenizer.ggml.add_bos_token")?.unwrap_or(default_add_bos);
    let add_eos = match optional_bool(g, "tokenizer.ggml.add_eos_token")? {
        Some(v) => v,
        None if bert => optional_bool(g, "tokenizer.ggml.add_sep_token")?.unwrap_or(true),
        None => false,
    };
    ensure!(
        !add_bos || bos.is_some(),
        "the GGUF tokenizer adds a BOS token but names none"
    );
    ensure!(
        !add_eos || eos.is_some(),
        "the GGUF tokenizer adds an EOS token but names none"
    );
    let stop_tokens = if bert {
        Vec::new()
    } else {
        tables.stop_tokens(eos, &[eot, eom].into_iter().flatten().collect::<Vec<_>>())
    };
    let chat_template = match g.meta.get("tokenizer.chat_template") {
        Some(_) => Some(g.str("tokenizer.chat_template")?.to_owned()),
        None => None,
    };
    let spec = TokenizerSpec {
        model,
        vocab_size: tables.len(),
        normalizer,
        pre_tokenizer: pre_steps,
        bos,
        eos,
        unk,
        pad,
        add_bos,
        add_eos,
        stop_tokens,
        byte_fallback: spm && tables.kinds.contains(&TokenKind::Byte),
        ignore_merges,
        continuing_subword_prefix: bert.then(|| "##".to_owned()),
        max_input_chars_per_word: bert.then_some(100),
        max_length: None,
    };
    let tensors = tables.into_tensors(&spec)?;
    Ok(TokenizerImport {
        spec,
        chat_template,
        tensors,
    })
}

/// The stored bytes and kind of a GGUF token.
fn token(model: TokenizerModel, text: &str, ty: i64) -> Result<(Vec<u8>, TokenKind)> {
    let kind = match ty {
        token_type::CONTROL | token_type::UNKNOWN => TokenKind::Special,
        token_type::USER_DEFINED => TokenKind::Added,
        token_type::UNUSED => TokenKind::Unused,
        token_type::BYTE if model == TokenizerModel::BpeSentencePiece => TokenKind::Byte,
        _ => TokenKind::Normal,
    };
    let bytes = match (model, kind) {
        (_, TokenKind::Special) => text.as_bytes().to_vec(),
        (TokenizerModel::BpeByteLevel, TokenKind::Added) => text.as_bytes().to_vec(),
        (TokenizerModel::BpeByteLevel, _) => {
            byte_level::decode(text).context("has a character outside the byte-level BPE alphabet")?
        }
        (TokenizerModel::BpeSentencePiece, TokenKind::Byte) => {
            vec![byte_token(text).context("is a byte token but not spelled <0xXX>")?]
        }
        (TokenizerModel::BpeSentencePiece, _) => spm_text(text),
        (TokenizerModel::WordPiece, _) => match text.strip_prefix(super::tables::SPM_SPACE) {
            // llama.cpp marks word starts with `▁` and drops the `##` of continuations.
            Some(word) => word.as_bytes().to_vec(),
            None => format!("##{text}").into_bytes(),
        },
    };
    Ok((bytes, kind))
}

/// A GGUF merge `"left right"` as `(left, right, merged)` ids.
fn merge(raw: &HashMap<&[u8], u32>, m: &Value) -> Result<[u32; 3]> {
    let Value::Str(text) = m else {
        bail!("is not a string")
    };
    // The separator is the first space after the first byte (a side may itself be a space).
    let at = text.iter().skip(1).position(|&b| b == b' ').map(|p| p + 1);
    let Some(at) = at else {
        bail!("{:?} is not two tokens", String::from_utf8_lossy(text))
    };
    let (left, right) = (&text[..at], &text[at + 1..]);
    let lookup = |t: &[u8]| {
        raw.get(t).copied().with_context(|| {
            format!(
                "names {:?}, which is not in the vocabulary",
                String::from_utf8_lossy(t)
            )
        })
    };
    Ok([lookup(left)?, lookup(right)?, lookup(&[left, right].concat())?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_pre_tokenizers_map_to_steps() {
        let smollm = pre_tokenizer("smollm").unwrap();
        assert_eq!(smollm.steps[0], PreTokenizerStep::Digits { individual: true });
        assert_eq!(smollm.steps[1], split(GPT2_PATTERN));
        let llama3 = pre_tokenizer("llama-bpe").unwrap();
        assert!(llama3.ignore_merges && llama3.add_bos);
        assert!(pre_tokenizer("qwen2").unwrap().nfc);
        assert_eq!(pre_tokenizer("default").unwrap().steps.len(), 4);
        let err = pre_tokenizer("mystery").err().unwrap().to_string();
        assert!(err.contains("\"mystery\""), "{err}");
    }

    #[test]
    fn token_text_per_model() {
        let bl = TokenizerModel::BpeByteLevel;
        assert_eq!(token(bl, "Ġhi", 1).unwrap(), (b" hi".to_vec(), TokenKind::Normal));
        assert_eq!(
            token(bl, "<|im_end|>", 3).unwrap(),
            (b"<|im_end|>".to_vec(), TokenKind::Special)
        );
        assert!(token(bl, "▁hi", 1).is_err());
        let spm = TokenizerModel::BpeSentencePiece;
        assert_eq!(
            token(spm, "▁the", 1).unwrap(),
            (b" the".to_vec(), TokenKind::Normal)
        );
        assert_eq!(
            token(spm, "<0x0A>", 6).unwrap(),
            (b"\n".to_vec(), TokenKind::Byte)
        );
        let wp = TokenizerModel::WordPiece;
        assert_eq!(token(wp, "▁the", 1).unwrap().0, b"the");
        assert_eq!(token(wp, "ing", 1).unwrap().0, b"##ing");
        assert_eq!(token(wp, "[CLS]", 3).unwrap().0, b"[CLS]");
    }

    #[test]
    fn merges_split_at_the_first_inner_space() {
        let raw: HashMap<&[u8], u32> = [(&b"\xc4\xa0"[..], 0), (&b"t"[..], 1), (&b"\xc4\xa0t"[..], 2)].into();
        assert_eq!(merge(&raw, &Value::Str("Ġ t".into())).unwrap(), [0, 1, 2]);
        assert!(merge(&raw, &Value::Str("Ġt".into())).is_err());
        assert!(merge(&raw, &Value::Str("x y".into())).is_err());
    }
}
