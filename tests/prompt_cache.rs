//! Prompt caches on random models: a restored cache gives the logits of the prefix
//! processed afresh, bit for bit; caches of another model or setup, and damaged ones, are
//! refused with the reason; a partly shared prefix is used up to the shared part; saving is
//! atomic and sparse.

mod common;

use std::path::Path;

use common::Tiny;
use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::prompt_cache::{ALIGN, CacheError};
use edgelm::session::{Session, SessionOptions};

const PROMPT: [u32; 23] = [
    256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 3, 200, 17, 99, 45, 45, 255, 0, 7,
];

fn opts(kv_type: KvType, context: Option<usize>) -> SessionOptions {
    SessionOptions {
        kv_type,
        context,
        threads: Some(2),
        ..SessionOptions::default()
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Logits (as bits) after each of `tokens`.
fn logits_after(s: &mut Session<'_>, tokens: &[u32]) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    s.feed_all(tokens, |_, l| out.push(bits(l))).unwrap();
    out
}

/// Feeds `chunks` one after another to a new session and saves the first `len` tokens.
fn saved(model: &Model, o: &SessionOptions, chunks: &[&[u32]], len: usize, path: &Path) {
    let mut s = Session::new(model, o).unwrap();
    for c in chunks {
        s.feed(c).unwrap();
    }
    s.save_prompt_cache(path, len).unwrap();
}

fn refusal(model: &Model, o: &SessionOptions, path: &Path) -> String {
    let mut s = Session::new(model, o).unwrap();
    let err = s.load_prompt_cache(path).expect_err("the cache must be refused");
    assert_eq!(s.position(), 0, "a refused cache leaves the session as it was");
    assert!(s.feed(&PROMPT).is_ok());
    err.to_string()
}

#[test]
fn restored_cache_gives_the_logits_of_the_prefix_processed_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cache");
    let model = Tiny::default().model(1);
    for kv in [KvType::F16, KvType::Q8, KvType::F32] {
        let o = opts(kv, None);
        let (prefix, rest) = PROMPT.split_at(15);
        let mut fresh = Session::new(&model, &o).unwrap();
        fresh.feed(prefix).unwrap();
        fresh.save_prompt_cache(&path, prefix.len()).unwrap();
        let want = logits_after(&mut fresh, rest);

        let mut restored = Session::new(&model, &o).unwrap();
        assert_eq!(restored.load_prompt_cache(&path).unwrap(), 15);
        assert_eq!(restored.tokens(), prefix);
        assert_eq!(restored.reuse_prefix(&PROMPT), 15);
        assert_eq!(logits_after(&mut restored, rest), want, "{kv:?}");
    }
}

#[test]
fn partly_shared_prefix_is_used_up_to_the_shared_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cache");
    let model = Tiny::default().model(1);
    let o = opts(KvType::F16, None);
    saved(&model, &o, &[&PROMPT[..10], &PROMPT[10..20]], 20, &path);
    let mut other = PROMPT;
    other[10..].iter_mut().for_each(|t| *t = (*t + 1) % 256);

    let mut s = Session::new(&model, &o).unwrap();
    s.load_prompt_cache(&path).unwrap();
    assert_eq!(s.reuse_prefix(&other), 10);
    let got = logits_after(&mut s, &other[10..]);

    let mut fresh = Session::new(&model, &o).unwrap();
    fresh.feed(&other[..10]).unwrap();
    assert_eq!(got, logits_after(&mut fresh, &other[10..]));

    // The whole prompt cached: one token is left to feed, for fresh logits.
    let mut s = Session::new(&model, &o).unwrap();
    s.load_prompt_cache(&path).unwrap();
    assert_eq!(s.reuse_prefix(&PROMPT[..20]), 19);
}

#[test]
fn another_model_kv_type_or_context_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cache");
    let model = Tiny::default().model(1);
    saved(&model, &opts(KvType::F16, None), &[&PROMPT], 20, &path);
    let other = Tiny::default().model(2);
    let cases = [
        (&other, opts(KvType::F16, None), "made for another model"),
        (
            &model,
            opts(KvType::Q8, None),
            "made for another KV type (f16; this session: q8)",
        ),
        (
            &model,
            opts(KvType::F16, Some(64)),
            "made for another context size (96 tokens; this session: 64 tokens)",
        ),
    ];
    for (m, o, reason) in cases {
        let err = refusal(m, &o, &path);
        assert!(err.contains(reason), "{err:?} should say {reason:?}");
    }
}

#[test]
fn damaged_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cache");
    let model = Tiny::default().model(1);
    let o = opts(KvType::Q8, None);
    saved(&model, &o, &[&PROMPT], 20, &path);
    let good = std::fs::read(&path).unwrap();
    let header_size = 112;
    let flips = [
        (9, "format version"),
        (20, "header checksum mismatch"),
        (header_size + 5, "header checksum mismatch"),
        (ALIGN as usize + 3, "KV data checksum mismatch"),
        (4 * ALIGN as usize + 40, "KV data checksum mismatch"),
    ];
    for (at, reason) in flips {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let err = refusal(&model, &o, &path);
        assert!(err.contains(reason), "byte {at}: {err:?} should say {reason:?}");
    }
    // Every byte of the header and the token ids matters.
    let mut s = Session::new(&model, &o).unwrap();
    for at in 0..header_size + 4 * 20 {
        let mut bad = good.clone();
        bad[at] ^= 0x80;
        std::fs::write(&path, &bad).unwrap();
        assert!(s.load_prompt_cache(&path).is_err(), "byte {at} flipped");
    }
    assert_eq!(s.position(), 0);
    for len in [0, 5, 60, header_size + 8, good.len() - 1] {
        std::fs::write(&path, &good[..len]).unwrap();
        let err = refusal(&model, &o, &path);
        let reason = if len < 8 {
            "not a prompt cache"
        } else {
            "truncated"
        };
        assert!(err.contains(reason), "{len} bytes: {err:?} should say {reason:?}");
    }
    let err = refusal(&model, &o, &dir.path().join("missing"));
    assert!(err.contains("No such file"), "{err:?}");
}

#[test]
fn saving_is_atomic_and_sparse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.cache");
    let model = Tiny::default().model(1);
    let o = opts(KvType::F16, None);
    let mut s = Session::new(&model, &o).unwrap();
    s.feed(&PROMPT).unwrap();
    assert!(matches!(
        s.save_prompt_cache(&path, 24),
        Err(CacheError::Invalid(_))
    ));
    let missing = dir.path().join("no/such/dir/p");
    let err = s.save_prompt_cache(&missing, 5).unwrap_err().to_string();
    let folder = missing.parent().unwrap();
    let want = format!(
        "{}: the folder {} does not exist",
        missing.display(),
        folder.display()
    );
    assert_eq!(err, want);
    s.save_prompt_cache(&path, 5).unwrap();

    // A session runs on the mapped cache while the file is replaced.
    let mut mapped = Session::new(&model, &o).unwrap();
    mapped.load_prompt_cache(&path).unwrap();
    s.save_prompt_cache(&path, 20).unwrap();
    let mut fresh = Session::new(&model, &o).unwrap();
    fresh.feed(&PROMPT[..5]).unwrap();
    assert_eq!(
        logits_after(&mut mapped, &PROMPT[5..]),
        logits_after(&mut fresh, &PROMPT[5..])
    );

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["p.cache"], "no temporary file is left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&path).unwrap();
        assert!(
            meta.blocks() * 512 < meta.len() / 2,
            "{meta:?}: positions past the prefix are holes"
        );
    }
}

#[test]
fn saving_never_replaces_a_file_that_is_not_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let model = Tiny::default().model(1);
    let o = opts(KvType::F16, None);
    let mut s = Session::new(&model, &o).unwrap();
    s.feed(&PROMPT).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "precious").unwrap();
    let err = s.save_prompt_cache(&text, 5).unwrap_err().to_string();
    assert!(
        err.contains("notes.txt exists and is not a prompt cache"),
        "{err}"
    );
    assert_eq!(std::fs::read(&text).unwrap(), b"precious");
    let err = s.save_prompt_cache(dir.path(), 5).unwrap_err().to_string();
    assert!(err.contains("is not a prompt cache"), "{err}");
    // Empty files (`mktemp`) and older caches are replaced.
    let path = dir.path().join("p.cache");
    std::fs::write(&path, b"").unwrap();
    s.save_prompt_cache(&path, 5).unwrap();
    s.save_prompt_cache(&path, 20).unwrap();
    let mut again = Session::new(&model, &o).unwrap();
    assert_eq!(again.load_prompt_cache(&path).unwrap(), 20);
}

/// Tiny's token 258 opens a turn, 259 ends one.
const TEMPLATE: &str = "{% for m in messages %}<|s258|>{{ m.role }}\n{{ m.content }}<|s259|>\n{% endfor %}\
{% if add_generation_prompt %}<|s258|>assistant\n{% endif %}";

/// A random byte-level model with a chat template, written to `dir`.
fn model_file(dir: &Path) -> String {
    let path = dir.join("m.edgelm");
    let tiny = Tiny {
        chat_template: Some(TEMPLATE.into()),
        ..Tiny::default()
    };
    std::fs::write(&path, tiny.bytes(1)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `edgelm` with `args`; it must succeed. Returns stdout and stderr.
fn edgelm(args: &[&str]) -> (Vec<u8>, String) {
    edgelm_with_input(args, b"")
}

/// Runs `edgelm` with `args` and `input` on stdin; it must succeed. Returns stdout and stderr.
fn edgelm_with_input(args: &[&str], input: &[u8]) -> (Vec<u8>, String) {
    let out = common::output_with_stdin(common::command().args(args), input);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {err}");
    (out.stdout, err)
}

#[test]
fn run_twice_with_a_prompt_cache_gives_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let cache = dir.path().join("p.cache");
    let cache = cache.to_str().unwrap();
    let run = || {
        let prompt = "hello world, once more";
        edgelm(&[
            "run",
            &model,
            "--raw",
            "-p",
            prompt,
            "-n",
            "8",
            "--temp",
            "0",
            "--prompt-cache",
            cache,
        ])
    };
    let (first, err) = run();
    assert!(!err.contains("prompt cache"), "{err}");
    assert!(Path::new(cache).exists());
    let (second, err) = run();
    assert_eq!(first, second);
    assert!(err.contains("prompt cache: reused 22 of 23 tokens"), "{err}");

    let mut bytes = std::fs::read(cache).unwrap();
    bytes[70] ^= 1;
    std::fs::write(cache, bytes).unwrap();
    let (third, err) = run();
    assert_eq!(first, third);
    assert!(
        err.contains("prompt cache ignored: the header is corrupted"),
        "{err}"
    );
}

#[test]
fn a_mistyped_prompt_cache_path_keeps_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let before = std::fs::read(&model).unwrap();
    let args = ["run", &model, "-p", "hi", "-n", "1", "--prompt-cache", &model];
    let (_, err) = edgelm(&args);
    assert!(
        err.contains("prompt cache ignored: not a prompt cache file"),
        "{err}"
    );
    assert!(err.contains("prompt cache not saved: "), "{err}");
    assert!(
        err.contains("m.edgelm exists and is not a prompt cache file"),
        "{err}"
    );
    assert!(std::fs::read(&model).unwrap() == before, "the model is intact");
    let out = common::command()
        .args(["cache-prompt", &model, "--system", &model, "-o", &model])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(std::fs::read(&model).unwrap() == before, "the model is intact");
}

#[test]
fn a_cache_prepared_offline_serves_the_system_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let (system, cache) = (dir.path().join("system.txt"), dir.path().join("p.cache"));
    std::fs::write(&system, "You answer briefly.").unwrap();
    let (system, cache) = (system.to_str().unwrap(), cache.to_str().unwrap());
    let (_, err) = edgelm(&["cache-prompt", &model, "--system", system, "-o", cache]);
    assert!(err.contains("tokens saved"), "{err}");
    let run = |extra: &[&str]| {
        let args = [
            "run",
            &model,
            "--system",
            "You answer briefly.",
            "-p",
            "hi",
            "-n",
            "6",
            "--temp",
            "0",
        ];
        edgelm(&[&args[..], extra].concat())
    };
    let (plain, _) = run(&[]);
    let (cached, err) = run(&["--prompt-cache", cache]);
    assert_eq!(plain, cached);
    // At least `<s258>system\n`, the 19 bytes of the system prompt, `<s259>\n<s258>`.
    let reused: usize = err
        .split("prompt cache: reused ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(reused >= 29, "{err}");
}

#[test]
fn chat_saves_the_conversation_and_the_next_chat_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_file(dir.path());
    let cache = dir.path().join("p.cache");
    let chat = || {
        let args = ["chat", &model, "--system", "Be brief.", "-n", "4", "--temp", "0"];
        edgelm_with_input(
            &[&args[..], &["--prompt-cache", cache.to_str().unwrap()]].concat(),
            b"hi\nmore\n",
        )
    };
    let (first, err) = chat();
    assert!(!err.contains("prompt cache"), "{err}");
    let (second, err) = chat();
    assert_eq!(first, second);
    // The first prompt of the second chat is all in the cache but its last token.
    let line = err
        .lines()
        .find(|l| l.starts_with("prompt cache: reused"))
        .unwrap_or_else(|| panic!("{err}"));
    let numbers: Vec<usize> = line.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(numbers[0] + 1, numbers[1], "{line}");
}
