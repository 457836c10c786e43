//! GBNF text, and JSON-schema text converted to GBNF: parsing never panics nor hangs; a grammar
//! that parses can be masked and followed over a byte vocabulary; a schema that converts
//! gives GBNF that parses (or is refused as too large).
#![no_main]

use std::sync::Arc;

use edgelm::grammar::{Grammar, GrammarError, GrammarMatcher, TokenTable, json_schema};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(grammar) = Grammar::parse(text) {
        follow(grammar, data);
    }
    if let Ok(schema) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(gbnf) = json_schema::to_gbnf(&schema)
    {
        match Grammar::parse(&gbnf) {
            Ok(grammar) => follow(grammar, data),
            Err(GrammarError::Invalid(m)) if m.contains("too large") => {}
            Err(e) => panic!("converted schema does not parse: {e}\n{gbnf}"),
        }
    }
});

/// Masks and feeds the input's own bytes as tokens (id = byte + 1; 0 ends the text).
fn follow(grammar: Grammar, data: &[u8]) {
    let bytes: Vec<[u8; 1]> = (0..=255u8).map(|b| [b]).collect();
    let tokens = bytes.iter().enumerate().map(|(i, b)| (i as u32 + 1, &b[..]));
    let table = Arc::new(TokenTable::from_tokens(257, tokens, vec![0]));
    let mut m = GrammarMatcher::new(Arc::new(grammar), table);
    let mut logits = vec![0.0f32; 257];
    for &b in data.iter().take(64) {
        m.mask(&mut logits);
        let allowed = logits[usize::from(b) + 1] > f32::NEG_INFINITY;
        assert_eq!(
            allowed,
            m.clone().accept(u32::from(b) + 1).is_ok(),
            "mask and accept disagree"
        );
        if m.accept(u32::from(b) + 1).is_err() {
            break;
        }
        logits.fill(0.0);
    }
    let _ = m.is_complete();
}
