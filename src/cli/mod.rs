//! Subcommands of the `edgelm` command, one module each, and what they share.

pub mod bench;
pub mod chat;
pub mod common;
pub mod embed;
pub mod inspect;
pub mod perplexity;
pub mod run;
pub mod search;
pub mod tokenize;

use edgelm::model::Model;

/// Token ids of `text`, special-token text recognised; BOS/EOS as the model wants when
/// `add_special` (chat-templated prompts carry their own).
pub fn encode(model: &Model, text: &str, add_special: bool) -> anyhow::Result<Vec<u32>> {
    encode_text(model, text, add_special, true)
}

/// Token ids of `text`; `parse_special` recognises special-token text in it.
pub fn encode_text(
    model: &Model,
    text: &str,
    add_special: bool,
    parse_special: bool,
) -> anyhow::Result<Vec<u32>> {
    let opts = edgelm::tokenizer::EncodeOptions {
        add_special,
        parse_special,
        max_length: None,
    };
    Ok(model.tokenizer().encode(text, opts)?)
}
