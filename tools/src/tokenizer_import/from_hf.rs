//! Import from a Hugging Face folder: `tokenizer.json`, with `tokenizer_config.json`,
//! `special_tokens_map.json`, `generation_config.json`, `sentence_bert_config.json` and
//! `chat_template.jinja` when present.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use edgelm::format::meta::{
    DummyPrefix, Normalizer, PreTokenizerStep, TokenKind, TokenizerModel, TokenizerSpec,
};
use serde_json::Value;

use super::from_gguf::GPT2_PATTERN;
use super::tables::{Tables, byte_token, spm_text};
use super::{TokenizerImport, byte_level};

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let v = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The type name of a `tokenizer.json` component.
fn type_of(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("?")
}

/// A component and, for `Sequence`, the components inside it (`key` names the list).
fn flatten<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    if type_of(v) == "Sequence" {
        for inner in v[key].as_array().into_iter().flatten() {
            flatten(inner, key, out);
        }
    } else if !v.is_null() {
        out.push(v);
    }
}

fn components<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    flatten(v, key, &mut out);
    out
}

/// What the normalizer and pre-tokenizer say.
#[derive(Default)]
struct Pipeline {
    normalizer: Normalizer,
    steps: Vec<PreTokenizerStep>,
    byte_level: bool,
}

impl Pipeline {
    fn parse(tj: &Value) -> Result<Pipeline> {
        let mut p = Pipeline::default();
        for n in components(&tj["normalizer"], "normalizers") {
            p.normalizer_step(n).with_context(|| format!("normalizer {n}"))?;
        }
        for s in components(&tj["pre_tokenizer"], "pretokenizers") {
            p.pre_tokenizer_step(s)
                .with_context(|| format!("pre-tokenizer {s}"))?;
        }
        p.byte_level |= components(&tj["decoder"], "decoders")
            .iter()
            .any(|d| type_of(d) == "ByteLevel");
        Ok(p)
    }

    fn normalizer_step(&mut self, n: &Value) -> Result<()> {
        let flag = |key: &str| n[key].as_bool();
        match type_of(n) {
            "NFC" => self.normalizer.nfc = true,
            "Lowercase" => self.normalizer.lowercase = true,
            "BertNormalizer" => {
                let lowercase = flag("lowercase").unwrap_or(true);
                self.normalizer.clean_text = flag("clean_text").unwrap_or(true);
                self.normalizer.handle_chinese_chars = flag("handle_chinese_chars").unwrap_or(true);
                self.normalizer.strip_accents = flag("strip_accents").unwrap_or(lowercase);
                self.normalizer.lowercase = lowercase;
            }
            "Prepend" if n["prepend"].as_str() == Some("▁") => {
                self.normalizer.add_dummy_prefix = true;
                self.normalizer.dummy_prefix = DummyPrefix::Always;
            }
            // Spaces are stored as spaces, so SentencePiece's space marker needs no replacing.
            "Replace"
                if n["pattern"]["String"].as_str() == Some(" ") && n["content"].as_str() == Some("▁") => {}
            other => bail!("normalizer {other:?} is not supported"),
        }
        Ok(())
    }

    fn pre_tokenizer_step(&mut self, s: &Value) -> Result<()> {
        match type_of(s) {
            "ByteLevel" => {
                ensure!(
                    !s["add_prefix_space"].as_bool().unwrap_or(false),
                    "add_prefix_space is not supported"
                );
                self.byte_level = true;
                if s["use_regex"].as_bool().unwrap_or(true) {
                    self.steps.push(PreTokenizerStep::Split {
                        pattern: GPT2_PATTERN.to_owned(),
                    });
                }
            }
            "Split" => {
                ensure!(
                    s["behavior"].as_str() == Some("Isolated"),
                    "only the Isolated behavior is supported"
                );
                ensure!(
                    !s["invert"].as_bool().unwrap_or(false),
                    "inverted splits are not supported"
                );
                let pattern = match (s["pattern"]["Regex"].as_str(), s["pattern"]["String"].as_str()) {
                    (Some(re), _) => re.to_owned(),
                    (None, Some(text)) => escape(text),
                    _ => bail!("no pattern"),
                };
                self.steps.push(PreTokenizerStep::Split { pattern });
            }
            "Digits" => self.steps.push(PreTokenizerStep::Digits {
                individual: s["individual_digits"].as_bool().unwrap_or(false),
            }),
            "BertPreTokenizer" => self.steps.push(PreTokenizerStep::Bert),
            "Metaspace" => {
                ensure!(
                    s["replacement"].as_str().unwrap_or("▁") == "▁",
                    "only the ▁ replacement is supported"
                );
                ensure!(
                    !s["split"].as_bool().unwrap_or(true),
                    "splitting on ▁ is not supported"
                );
                let scheme = match s["prepend_scheme"].as_str() {
                    Some("always") => Some(DummyPrefix::UnlessSpaced),
                    Some("first") => Some(DummyPrefix::FirstUnlessSpaced),
                    Some("never") => None,
                    Some(other) => bail!("prepend_scheme {other:?} is not supported"),
                    // Before prepend_scheme: add_prefix_space, which works like "always".
                    None => s["add_prefix_space"]
                        .as_bool()
                        .unwrap_or(true)
                        .then_some(DummyPrefix::UnlessSpaced),
                };
                self.normalizer.add_dummy_prefix = scheme.is_some();
                self.normalizer.dummy_prefix = scheme.unwrap_or_default();
            }
            other => bail!("pre-tokenizer {other:?} is not supported"),
        }
        Ok(())
    }
}

/// `text` as a regex matching it literally.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Token string → id, from `model.vocab`.
fn vocab_map(model: &Value) -> Result<HashMap<&str, u32>> {
    let vocab = model["vocab"]
        .as_object()
        .context("tokenizer.json model.vocab is not an object")?;
    vocab
        .iter()
        .map(|(text, id)| {
            let id = id.as_u64().and_then(|i| u32::try_from(i).ok());
            Ok((
                text.as_str(),
                id.with_context(|| format!("vocabulary entry {text:?} has no valid id"))?,
            ))
        })
        .collect()
}

/// The special tokens named by the config files (strings or `{content: ...}` objects).
fn token_name(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v["content"].as_str())
}

/// Reads the tokenizer of a Hugging Face model folder.
pub fn from_hf_folder(dir: &Path) -> Result<TokenizerImport> {
    let tj_path = dir.join("tokenizer.json");
    let tj = read_json(&tj_path)?.with_context(|| format!("{} has no tokenizer.json", dir.display()))?;
    import(&tj, dir).with_context(|| format!("importing {}", tj_path.display()))
}

/// Imports a Whisper folder's `tokenizer.json` without its post-processor: Whisper's decoding
/// writes its own prompt (start of transcript, language, task), which the template's fixed
/// `<|startoftranscript|><|notimestamps|>` prefix would contradict.
pub fn from_whisper_folder(dir: &Path) -> Result<TokenizerImport> {
    let tj_path = dir.join("tokenizer.json");
    let mut tj = read_json(&tj_path)?.with_context(|| format!("{} has no tokenizer.json", dir.display()))?;
    tj["post_processor"] = Value::Null;
    import(&tj, dir).with_context(|| format!("importing {}", tj_path.display()))
}

fn import(tj: &Value, dir: &Path) -> Result<TokenizerImport> {
    let config = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let special_map = read_json(&dir.join("special_tokens_map.json"))?.unwrap_or(Value::Null);
    let generation = read_json(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
    let sbert = read_json(&dir.join("sentence_bert_config.json"))?.unwrap_or(Value::Null);

    let m = &tj["model"];
    let pipeline = Pipeline::parse(tj)?;
    let model = match type_of(m) {
        "BPE" if pipeline.byte_level => TokenizerModel::BpeByteLevel,
        "BPE" => TokenizerModel::BpeSentencePiece,
        "WordPiece" => TokenizerModel::WordPiece,
        other => bail!("tokenizer model type {other:?} is not supported (BPE and WordPiece are)"),
    };
    let byte_fallback = m["byte_fallback"].as_bool().unwrap_or(false);
    if model == TokenizerModel::BpeByteLevel {
        ensure!(
            !byte_fallback,
            "byte-level BPE with byte fallback is not supported"
        );
    }
    if model != TokenizerModel::WordPiece {
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            ensure!(
                m[key].as_str().is_none_or(str::is_empty),
                "BPE with a {key} is not supported"
            );
        }
    }

    let vocab = vocab_map(m)?;
    let added: Vec<(u32, &str, bool)> = match tj["added_tokens"].as_array() {
        None => Vec::new(),
        Some(list) => list
            .iter()
            .map(|t| {
                let id = t["id"]
                    .as_u64()
                    .and_then(|i| u32::try_from(i).ok())
                    .context("added token without id")?;
                let content = t["content"].as_str().context("added token without content")?;
                Ok((id, content, t["special"].as_bool().unwrap_or(false)))
            })
            .collect::<Result<_>>()?,
    };
    let n = vocab
        .values()
        .chain(added.iter().map(|a| &a.0))
        .max()
        .map_or(0, |&m| m as usize + 1);
    let mut tables = Tables {
        tokens: vec![Vec::new(); n],
        kinds: vec![TokenKind::Unused; n],
        ..Tables::default()
    };
    let mut filled = vec![false; n];
    for (&text, &id) in &vocab {
        let (bytes, kind) =
            normal_token(model, byte_fallback, text).with_context(|| format!("token {id} ({text:?})"))?;
        ensure!(
            !std::mem::replace(&mut filled[id as usize], true),
            "two vocabulary entries share id {id}"
        );
        tables.tokens[id as usize] = bytes;
        tables.kinds[id as usize] = kind;
    }
    for &(id, content, special) in &added {
        tables.tokens[id as usize] = content.as_bytes().to_vec();
        tables.kinds[id as usize] = if special {
            TokenKind::Special
        } else {
            TokenKind::Added
        };
    }

    if let Some(merges) = m["merges"].as_array() {
        tables.merges = merges
            .iter()
            .enumerate()
            .map(|(rank, merge)| merge_ids(&vocab, merge).with_context(|| format!("merge {rank} ({merge})")))
            .collect::<Result<_>>()?;
    }
    ensure!(
        model == TokenizerModel::WordPiece || !tables.merges.is_empty(),
        "the BPE model has no merges"
    );

    // Token text → id, for the names in the config files (added tokens win over the vocabulary).
    let mut by_name: HashMap<&str, u32> = vocab.clone();
    by_name.extend(added.iter().map(|&(id, content, _)| (content, id)));
    let named = |key: &str| -> Result<Option<u32>> {
        let name = token_name(&config[key]).or_else(|| token_name(&special_map[key]));
        name.map(|t| {
            by_name
                .get(t)
                .copied()
                .with_context(|| format!("{key} {t:?} is not in the vocabulary"))
        })
        .transpose()
    };
    let mut spec = TokenizerSpec {
        model,
        vocab_size: n,
        normalizer: pipeline.normalizer,
        pre_tokenizer: pipeline.steps,
        bos: named("bos_token")?,
        eos: named("eos_token")?,
        unk: m["unk_token"]
            .as_str()
            .and_then(|t| by_name.get(t).copied())
            .map_or_else(|| named("unk_token"), |id| Ok(Some(id)))?,
        pad: named("pad_token")?,
        add_bos: false,
        add_eos: false,
        stop_tokens: Vec::new(),
        byte_fallback,
        ignore_merges: m["ignore_merges"].as_bool().unwrap_or(false),
        continuing_subword_prefix: None,
        max_input_chars_per_word: None,
        max_length: sbert["max_seq_length"].as_u64().map(|v| v as usize),
    };
    if model == TokenizerModel::WordPiece {
        spec.bos = named("cls_token")?.or(spec.bos);
        spec.eos = named("sep_token")?.or(spec.eos);
        spec.continuing_subword_prefix =
            Some(m["continuing_subword_prefix"].as_str().unwrap_or("##").to_owned());
        spec.max_input_chars_per_word = Some(m["max_input_chars_per_word"].as_u64().unwrap_or(100) as usize);
    }
    post_processor(&tj["post_processor"], &by_name, &mut spec)?;
    if let Some(v) = config["add_bos_token"].as_bool() {
        spec.add_bos = v;
    }
    if let Some(v) = config["add_eos_token"].as_bool() {
        spec.add_eos = v;
    }
    ensure!(
        !spec.add_bos || spec.bos.is_some(),
        "the tokenizer adds a BOS token but names none"
    );
    ensure!(
        !spec.add_eos || spec.eos.is_some(),
        "the tokenizer adds an EOS token but names none"
    );
    if model != TokenizerModel::WordPiece {
        let mut extra = Vec::new();
        match &generation["eos_token_id"] {
            Value::Array(ids) => extra.extend(ids.iter().filter_map(Value::as_u64)),
            v => extra.extend(v.as_u64()),
        }
        let extra = extra
            .into_iter()
            .map(|id| tables.check_id(id, "generation_config eos_token"))
            .collect::<Result<Vec<_>>>()?;
        spec.stop_tokens = tables.stop_tokens(spec.eos, &extra);
    }
    let tensors = tables.into_tensors(&spec)?;
    Ok(TokenizerImport {
        spec,
        chat_template: chat_template(dir, &config)?,
        tensors,
    })
}

/// Stored bytes and kind of a `model.vocab` entry.
fn normal_token(model: TokenizerModel, byte_fallback: bool, text: &str) -> Result<(Vec<u8>, TokenKind)> {
    Ok(match model {
        TokenizerModel::BpeByteLevel => (
            byte_level::decode(text).context("has a character outside the byte-level BPE alphabet")?,
            TokenKind::Normal,
        ),
        TokenizerModel::BpeSentencePiece => match byte_token(text).filter(|_| byte_fallback) {
            Some(b) => (vec![b], TokenKind::Byte),
            None => (spm_text(text), TokenKind::Normal),
        },
        TokenizerModel::WordPiece => (text.as_bytes().to_vec(), TokenKind::Normal),
    })
}

/// A merge (`"a b"` or `["a", "b"]`) as `(left, right, merged)` ids.
fn merge_ids(vocab: &HashMap<&str, u32>, merge: &Value) -> Result<[u32; 3]> {
    let (left, right) = match merge {
        Value::String(s) => s.split_once(' ').context("is not two tokens")?,
        Value::Array(pair) if pair.len() == 2 => (
            pair[0].as_str().context("is not two strings")?,
            pair[1].as_str().context("is not two strings")?,
        ),
        _ => bail!("is neither \"a b\" nor [a, b]"),
    };
    let id = |t: &str| {
        vocab
            .get(t)
            .copied()
            .with_context(|| format!("names {t:?}, which is not in the vocabulary"))
    };
    Ok([id(left)?, id(right)?, id(&format!("{left}{right}"))?])
}

/// BOS/EOS insertion from the post-processor.
fn post_processor(pp: &Value, by_name: &HashMap<&str, u32>, spec: &mut TokenizerSpec) -> Result<()> {
    let id = |name: &str| {
        by_name
            .get(name)
            .copied()
            .with_context(|| format!("post-processor token {name:?} is not in the vocabulary"))
    };
    for p in components(pp, "processors") {
        match type_of(p) {
            "TemplateProcessing" => {
                let single = p["single"]
                    .as_array()
                    .context("TemplateProcessing without a single template")?;
                let at = single.iter().position(|piece| piece.get("Sequence").is_some());
                let at = at.context("TemplateProcessing single template without the sequence")?;
                let special = |piece: &Value| piece["SpecialToken"]["id"].as_str().map(id).transpose();
                match &single[..at] {
                    [] => {}
                    [bos] => (spec.bos, spec.add_bos) = (special(bos)?.or(spec.bos), true),
                    more => bail!(
                        "TemplateProcessing with {} tokens before the text is not supported",
                        more.len()
                    ),
                }
                match &single[at + 1..] {
                    [] => {}
                    [eos] => (spec.eos, spec.add_eos) = (special(eos)?.or(spec.eos), true),
                    more => bail!(
                        "TemplateProcessing with {} tokens after the text is not supported",
                        more.len()
                    ),
                }
            }
            "BertProcessing" | "RobertaProcessing" => {
                let name = |key: &str| {
                    p[key][0]
                        .as_str()
                        .with_context(|| format!("{} without {key}", type_of(p)))
                };
                spec.bos = Some(id(name("cls")?)?);
                spec.eos = Some(id(name("sep")?)?);
                (spec.add_bos, spec.add_eos) = (true, true);
            }
            "ByteLevel" => {}
            other => bail!("post-processor {other:?} is not supported"),
        }
    }
    Ok(())
}

/// `chat_template.jinja`, or the template in `tokenizer_config.json` (a string, or a list of
/// named templates of which `default` is taken).
fn chat_template(dir: &Path, config: &Value) -> Result<Option<String>> {
    let file = dir.join("chat_template.jinja");
    match std::fs::read_to_string(&file) {
        Ok(t) => return Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
    Ok(match &config["chat_template"] {
        Value::String(t) => Some(t.clone()),
        Value::Array(list) => {
            let named = |name: &str| list.iter().find(|t| t["name"].as_str() == Some(name));
            named("default")
                .or(list.first())
                .and_then(|t| t["template"].as_str())
                .map(str::to_owned)
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pipeline_of_a_llama3_style_tokenizer() {
        let tj = json!({
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}
            ]},
            "decoder": {"type": "ByteLevel"}
        });
        let p = Pipeline::parse(&tj).unwrap();
        assert!(p.byte_level);
        assert_eq!(
            p.steps,
            [PreTokenizerStep::Split {
                pattern: r"\p{N}{1,3}".into()
            }]
        );
    }

    #[test]
    fn pipeline_of_a_sentencepiece_tokenizer() {
        let tj = json!({
            "normalizer": {"type": "Sequence", "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
            ]},
            "pre_tokenizer": null
        });
        let p = Pipeline::parse(&tj).unwrap();
        assert!(p.normalizer.add_dummy_prefix && !p.byte_level);
        assert_eq!(p.normalizer.dummy_prefix, DummyPrefix::Always);
    }

    #[test]
    fn unsupported_components_are_named() {
        let tj = json!({"normalizer": {"type": "NFKC"}});
        let err = format!("{:#}", Pipeline::parse(&tj).err().unwrap());
        assert!(err.contains("\"NFKC\""), "{err}");
        let tj =
            json!({"pre_tokenizer": {"type": "Split", "pattern": {"String": "x"}, "behavior": "Removed"}});
        assert!(Pipeline::parse(&tj).is_err());
    }

    #[test]
    fn merges_in_both_spellings() {
        let vocab: HashMap<&str, u32> = [("a", 0), ("b", 1), ("ab", 2)].into();
        assert_eq!(merge_ids(&vocab, &json!("a b")).unwrap(), [0, 1, 2]);
        assert_eq!(merge_ids(&vocab, &json!(["a", "b"])).unwrap(), [0, 1, 2]);
        assert!(merge_ids(&vocab, &json!("a c")).is_err());
        assert!(merge_ids(&vocab, &json!(7)).is_err());
    }

    #[test]
    fn literal_split_patterns_are_escaped() {
        assert_eq!(escape("a.b|c"), r"a\.b\|c");
    }

    #[test]
    fn sentencepiece_tokens() {
        let spm = TokenizerModel::BpeSentencePiece;
        assert_eq!(
            normal_token(spm, true, "<0x41>").unwrap(),
            (b"A".to_vec(), TokenKind::Byte)
        );
        assert_eq!(normal_token(spm, false, "<0x41>").unwrap().1, TokenKind::Normal);
        assert_eq!(normal_token(spm, true, "▁a▁b").unwrap().0, b" a b");
    }
}
