//! Subcommands of the `edgelm` command, one module each, and what they share.

pub mod bench;
pub mod chat;
pub mod common;
pub mod inspect;
pub mod perplexity;
pub mod run;
pub mod tokenize;

use edgelm::chat::ChatTemplate;
use edgelm::model::Model;

/// The model's chat template (ChatML if it has none).
pub fn chat_template(model: &Model) -> anyhow::Result<ChatTemplate> {
    let tok = model.tokenizer();
    let text = |id: Option<u32>| {
        id.and_then(|i| tok.token_bytes(i))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    let spec = &model.meta().tokenizer;
    Ok(ChatTemplate::new(
        model.meta().chat_template.as_deref(),
        &text(spec.bos),
        &text(spec.eos),
    )?)
}

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
