//! The streaming decoder: text equal to the decoded ids, never a split character, also when a
//! character spans several byte-fallback tokens, and no heap allocation per token.

mod tokenizer_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use edgelm::tokenizer::{EncodeOptions, Tokenizer};
use edgelm_tools::gguf::Gguf;
use edgelm_tools::tokenizer_import::{from_gguf, from_hf_folder};
use tokenizer_support::*;

/// The system allocator, counting the allocations of threads that ask it to.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// thread-local cells with constant initializers, which do not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Streams `ids` and returns the pieces, checking that no push allocates.
fn stream(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
    let mut pieces = Vec::with_capacity(ids.len() + 1);
    let mut s = tok.stream(false);
    for &id in ids {
        ALLOCATIONS.with(|a| a.set(0));
        COUNTING.with(|c| c.set(true));
        let piece = s.push(id);
        COUNTING.with(|c| c.set(false));
        assert_eq!(ALLOCATIONS.with(Cell::get), 0, "pushing token {id} allocated");
        pieces.push(piece.to_owned());
    }
    pieces.push(s.finish().to_owned());
    pieces
}

fn corpus() -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("tokenizer/corpus.json")).unwrap())
            .unwrap();
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect()
}

/// Streaming the ids of every corpus text gives back the text, without allocating.
fn streams_the_corpus(tok: &Tokenizer) {
    for text in corpus() {
        let ids = tok.encode(&text, EncodeOptions::default()).unwrap();
        let pieces = stream(tok, &ids);
        assert_eq!(pieces.concat().as_bytes(), tok.decode(&ids), "{text:?}");
    }
}

#[test]
fn byte_level_streams() {
    streams_the_corpus(&tokenizer(
        &from_hf_folder(&fixtures().join("tiny-llama")).unwrap(),
    ));
    if let Some(path) = smollm2_gguf() {
        streams_the_corpus(&tokenizer(&from_gguf(&Gguf::open(&path).unwrap()).unwrap()));
    }
}

#[test]
fn byte_fallback_characters_come_out_whole() {
    let Some(path) = ggml_vocab("llama-spm") else {
        return;
    };
    let tok = tokenizer(&from_gguf(&Gguf::open(&path).unwrap()).unwrap());
    streams_the_corpus(&tok);
    // The llama is not in the vocabulary: four byte tokens, one character.
    let ids = tok.encode("🦙!", EncodeOptions::default()).unwrap();
    assert_eq!(ids, [1, 29871, 243, 162, 169, 156, 29991]);
    let pieces = stream(&tok, &ids);
    assert_eq!(pieces, ["<s>", " ", "", "", "", "🦙", "!", ""]);
}

#[test]
fn tokens_are_decoded_exactly() {
    // Every token alone and the concatenation of any sequence: decode is the bytes.
    let tok = tokenizer(&from_hf_folder(&fixtures().join("tiny-llama")).unwrap());
    let ids: Vec<u32> = (0..tok.vocab_size() as u32).collect();
    let mut all = Vec::new();
    for &id in &ids {
        assert_eq!(tok.decode(&[id]), tok.token_bytes(id).unwrap());
        all.extend_from_slice(tok.token_bytes(id).unwrap());
    }
    assert_eq!(tok.decode(&ids), all);
    assert_eq!(stream(&tok, &ids).concat(), String::from_utf8_lossy(&all));
}
