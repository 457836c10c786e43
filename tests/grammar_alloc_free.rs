//! Following a grammar performs no heap allocation per token once the matcher's buffers have
//! grown: a second pass over the same text allocates nothing.

#[path = "support/counting_alloc.rs"]
#[allow(dead_code)] // the thread helpers are for tests with a pool
mod counting_alloc;

use std::sync::Arc;

use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable};
use serde_json::json;

#[test]
fn masking_and_accepting_tokens_cost_no_allocations() {
    let schema = json!({
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["name", "tags"]
        }
    });
    let grammar = Arc::new(Grammar::from_json_schema(&schema).unwrap());
    // Every byte (id = byte + 1; 0 ends the text) and a few longer tokens.
    let bytes: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
    let words = [
        "{\"", "\": ", "name", "\", \"", "tags", "[\"", "\"]", "},", " {", "é",
    ];
    let tokens = bytes
        .iter()
        .enumerate()
        .map(|(i, b)| (i as u32 + 1, &b[..]))
        .chain(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (257 + i as u32, w.as_bytes())),
        );
    let table = Arc::new(TokenTable::from_tokens(257 + words.len(), tokens, vec![0]));
    let text = r#"[{"name": "a é b", "tags": ["x", "y"]}, {"name": "c", "tags": []}]"#;
    let mut m = GrammarMatcher::new(grammar, table);
    let mut logits = vec![0.0f32; 257 + words.len()];
    let mut pass = |m: &mut GrammarMatcher| {
        m.reset();
        for b in text.bytes() {
            logits.fill(0.0);
            m.mask(&mut logits);
            assert!(logits[usize::from(b) + 1] > f32::NEG_INFINITY);
            m.accept(u32::from(b) + 1).unwrap();
        }
        assert!(m.is_complete());
    };
    pass(&mut m);
    let before = counting_alloc::allocations();
    pass(&mut m);
    assert_eq!(counting_alloc::allocations() - before, 0);
}
