//! Subcommands of the `edgelm` command, one module each, and what they share.

pub mod assist;
pub mod bench;
pub mod cache_prompt;
pub mod chat;
pub mod common;
pub mod embed;
pub mod inspect;
pub mod listen;
pub mod perplexity;
pub mod run;
pub mod search;
pub mod serve;
pub mod tokenize;
pub mod transcribe;

use edgelm::model::Model;

/// Token ids of `text`; BOS/EOS as the model wants when `add_special`; special-token text
/// in it becomes control tokens only when `parse_special` (`--special`): text from a user is
/// plain text by default.
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

/// The chat prompt of `messages` with the model's template: only the template's markup becomes
/// control tokens, unless `special` lets the messages' own special-token text through.
pub fn encode_chat(
    model: &Model,
    template: &edgelm::chat::ChatTemplate,
    messages: &[edgelm::chat::Message],
    special: bool,
) -> anyhow::Result<Vec<u32>> {
    let opts = edgelm::chat::PromptOptions {
        add_generation_prompt: true,
        special_in_messages: special,
    };
    Ok(template.encode_with(model.tokenizer(), messages, opts)?)
}
