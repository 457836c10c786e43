//! Real tokenizers on arbitrary text that spells any of their special tokens: encoding never
//! panics; without special-token parsing no control token comes out (but the unknown token);
//! byte-level BPE decodes back to the text either way, also through the streaming decoder
//! (unless a byte outside its vocabulary became the unknown token); the length limit holds.
#![no_main]

#[path = "text.rs"]
#[allow(dead_code)] // shared with chat_template, which reads the templates
mod text;

use edgelm::tokenizer::EncodeOptions;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&select, rest)) = data.split_first() else {
        return;
    };
    let vocabs = text::vocabs();
    let v = &vocabs[usize::from(select) % vocabs.len()];
    let text = text::parts(v, rest).concat();
    for parse_special in [false, true] {
        let opts = EncodeOptions {
            add_special: select & 0x80 != 0,
            parse_special,
            max_length: None,
        };
        let ids = v
            .tok
            .encode(&text, opts)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        if !parse_special {
            let special = ids
                .iter()
                .find(|&&id| v.is_control(id) && !added_around(v, &ids, id, opts));
            assert!(
                special.is_none(),
                "{}: plain text gave control token {special:?}: {text:?}",
                v.name
            );
        }
        // A byte the vocabulary lacks becomes the unknown token (SmolLM2 lacks a few control
        // bytes), which does not decode back.
        if v.byte_level && !opts.add_special && !ids.iter().any(|&id| v.tok.spec().unk == Some(id)) {
            assert_eq!(
                String::from_utf8_lossy(&v.tok.decode(&ids)),
                text,
                "{}: round trip",
                v.name
            );
            let mut stream = v.tok.stream(false);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(stream.push(id));
            }
            streamed.push_str(stream.finish());
            assert_eq!(streamed, text, "{}: streamed round trip", v.name);
        }
        let max = usize::from(select >> 2);
        let cut = v
            .tok
            .encode(
                &text,
                EncodeOptions {
                    max_length: Some(max),
                    ..opts
                },
            )
            .expect("encodes");
        assert!(
            cut.len() <= max,
            "{}: {} ids over a limit of {max}",
            v.name,
            cut.len()
        );
        if !opts.add_special {
            assert_eq!(
                cut[..],
                ids[..ids.len().min(max)],
                "{}: truncation changed the ids",
                v.name
            );
        }
    }
});

/// Whether `id` is a BOS/EOS the tokenizer adds around the text (`add_special`).
fn added_around(v: &text::Vocab, ids: &[u32], id: u32, opts: EncodeOptions) -> bool {
    let spec = v.tok.spec();
    opts.add_special
        && ((spec.add_bos && spec.bos == Some(id) && ids.first() == Some(&id))
            || (spec.add_eos && spec.eos == Some(id) && ids.last() == Some(&id)))
}
