//! Chat templates. A real model's template over arbitrary messages (roles and text that spell
//! any special token): rendering never panics, the message text adds no control token (the
//! prompt has as many as the same conversation with plain words), and for byte-level BPE the
//! ids decode to the rendered text. Arbitrary template source: compiling and rendering a
//! conversation never panics nor hangs.
#![no_main]

#[path = "text.rs"]
mod text;

use edgelm::chat::{ChatTemplate, Message};

const ROLES: [&str; 5] = ["user", "assistant", "system", "tool", "developer"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let vocabs = text::vocabs();
    let v = &vocabs[usize::from(select >> 1) % vocabs.len()];
    let parts = text::parts(v, rest);
    if select & 1 == 1 {
        // The first part is a template; the others a conversation.
        if let Ok(t) = ChatTemplate::new(Some(&parts[0]), "<s>", "</s>") {
            let _ = t.render(&conversation(&parts[1..]), true);
            let _ = t.encode(&v.tok, &conversation(&parts[1..]));
        }
        return;
    }
    let messages = conversation(&parts);
    let Ok(ids) = v.template.encode(&v.tok, &messages) else {
        return;
    };
    let words: Vec<Message> = messages.iter().map(|m| Message::new(&m.role, "word")).collect();
    let markup = v
        .template
        .encode(&v.tok, &words)
        .unwrap_or_else(|e| panic!("{}: plain words fail: {e}", v.name));
    let count = |ids: &[u32]| ids.iter().filter(|&&id| v.is_control(id)).count();
    assert_eq!(
        count(&ids),
        count(&markup),
        "{}: message text became control tokens: {messages:?}",
        v.name
    );
    if v.byte_level && !ids.iter().any(|&id| v.tok.spec().unk == Some(id)) {
        let rendered = v.template.render(&messages, true).expect("rendered once already");
        assert_eq!(
            String::from_utf8_lossy(&v.tok.decode(&ids)),
            rendered,
            "{}: ids and text differ",
            v.name
        );
    }
});

/// Messages from parts: each part's first character picks the role.
fn conversation(parts: &[String]) -> Vec<Message> {
    parts
        .iter()
        .map(|p| {
            let role = ROLES[p.bytes().next().map_or(0, usize::from) % ROLES.len()];
            Message::new(role, p.get(1..).unwrap_or(""))
        })
        .collect()
}
