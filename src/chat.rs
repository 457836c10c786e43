//! Chat templates: the model's own Jinja template rendered the way Hugging Face transformers
//! renders it (trim_blocks, lstrip_blocks, Python string methods, `raise_exception`,
//! `strftime_now`), with a fallback for models that ship none: Gemma's turns where the
//! vocabulary has them, else ChatML.
//!
//! [`ChatTemplate::encode`] turns a conversation into prompt ids so that only the template's
//! own markup becomes control tokens: text in the messages that spells a special token
//! (`<|im_end|><|im_start|>system`) stays plain text, so a transcribed sentence or a pasted
//! web page cannot open a turn of its own. Where the messages spell no special token the ids
//! are exactly those of the rendered text tokenized with special tokens parsed (what
//! transformers' `apply_chat_template` gives).

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

use crate::tokenizer::{EncodeOptions, Tokenizer, TokenizerError};

/// ChatML, used when the model has no template of its own.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + \
message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Gemma's turns (`<start_of_turn>user … <end_of_turn>`, the assistant called `model`, a
/// system message folded into the first user turn), used for models without a template whose
/// vocabulary has those markers (Gemma base models ship none).
pub const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}\
{% set prefix = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}\
{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}\
{% for message in turns %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}\
{{ '<start_of_turn>' + role + '\n' + (prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}\
{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message from `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

/// Why a template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The template does not compile or fails to render.
    #[error("chat template: {0:#}")]
    Template(#[from] Error),
    /// The rendered prompt could not be tokenized.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
}

/// How [`ChatTemplate::encode_with`] builds a prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PromptOptions {
    /// End with the assistant's turn opener.
    pub add_generation_prompt: bool,
    /// Turn special-token text inside the messages into control tokens too (unsafe with text
    /// from anyone but the caller; off by default).
    pub special_in_messages: bool,
}

impl Default for PromptOptions {
    /// A generation prompt; message text stays plain text.
    fn default() -> Self {
        PromptOptions {
            add_generation_prompt: true,
            special_in_messages: false,
        }
    }
}

/// The work one rendering may do (minijinja's fuel: about one unit per instruction and per 64
/// bytes created, so at most about 320 MB): a template from a model file cannot hang or exhaust
/// memory (`{% for i in range(99999) %}{% for j in range(99999) %}…`); a real template over a
/// conversation of thousands of turns uses a few hundred thousand.
const TEMPLATE_FUEL: u64 = 5_000_000;

/// Opens and closes a placeholder for user text while rendering (private-use characters).
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

impl ChatTemplate {
    /// Compiles `source` (or ChatML when `None`); `bos`/`eos` are the token texts the template
    /// may refer to as `bos_token`/`eos_token`.
    pub fn new(source: Option<&str>, bos: &str, eos: &str) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
        env.add_filter("tojson", |v: Value| -> Result<String, Error> {
            serde_json::to_string(&v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
        });
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_owned())?;
        Ok(ChatTemplate {
            env,
            bos: bos.to_owned(),
            eos: eos.to_owned(),
        })
    }

    /// The template of `model` (if it has none, [`GEMMA`] where its vocabulary has Gemma's turn
    /// markers, else ChatML), with its BOS/EOS token texts.
    pub fn for_model(model: &crate::model::Model) -> Result<ChatTemplate, ChatError> {
        ChatTemplate::for_tokenizer(model.tokenizer(), model.meta().chat_template.as_deref())
    }

    /// `source` (a model's template), or when `None` the fallback [`ChatTemplate::for_model`]
    /// picks for `tok`'s vocabulary, with `tok`'s BOS/EOS token texts.
    pub fn for_tokenizer(tok: &Tokenizer, source: Option<&str>) -> Result<ChatTemplate, ChatError> {
        let gemma_turns = ["<start_of_turn>", "<end_of_turn>"]
            .iter()
            .all(|marker| tok.token_id(marker).is_some_and(|id| tok.is_special(id)));
        let fallback = if gemma_turns { GEMMA } else { CHATML };
        let text = |id: Option<u32>| {
            id.and_then(|i| tok.token_bytes(i))
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        ChatTemplate::new(
            Some(source.unwrap_or(fallback)),
            &text(tok.bos()),
            &text(tok.eos()),
        )
    }

    /// Renders `messages`, ending with the assistant's turn opener when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatError> {
        let tmpl = self.env.get_template("chat")?;
        Ok(tmpl.render(minijinja::context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        })?)
    }
}

impl ChatTemplate {
    /// The prompt ids of `messages` with a generation prompt; text in the messages is never
    /// parsed as special tokens (see the module documentation and [`ChatTemplate::encode_with`]).
    pub fn encode(&self, tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>, ChatError> {
        self.encode_with(tok, messages, PromptOptions::default())
    }

    /// The prompt ids of `messages`. The template's own text is tokenized with special tokens
    /// parsed; unless `opts.special_in_messages`, each stretch of message text (role and
    /// content: both may come from a client) that spells a special token is rendered as a
    /// placeholder (so that the template's string methods see an ordinary word) and put back
    /// afterwards as plain text.
    pub fn encode_with(
        &self,
        tok: &Tokenizer,
        messages: &[Message],
        opts: PromptOptions,
    ) -> Result<Vec<u32>, ChatError> {
        let encode = EncodeOptions {
            add_special: false,
            parse_special: true,
            max_length: None,
        };
        if opts.special_in_messages {
            let text = self.render(messages, opts.add_generation_prompt)?;
            return Ok(tok.encode(&text, encode)?);
        }
        let mut stash: Vec<&str> = Vec::new();
        let escaped: Vec<Message> = messages
            .iter()
            .map(|m| Message {
                role: escape(tok, &m.role, &mut stash),
                content: escape(tok, &m.content, &mut stash),
            })
            .collect();
        let rendered = self.render(&escaped, opts.add_generation_prompt)?;
        let (text, plain) = unescape(&rendered, &stash);
        Ok(tok.encode_with_plain(&text, &plain, encode)?)
    }
}

/// `content` with every special-token spelling (and every [`OPEN`], so that no text can
/// forge a placeholder) replaced by a numbered placeholder; the originals go to `stash`.
fn escape<'a>(tok: &Tokenizer, content: &'a str, stash: &mut Vec<&'a str>) -> String {
    let mut spans = tok.special_spans(content);
    spans.extend(content.match_indices(OPEN).map(|(i, s)| i..i + s.len()));
    spans.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(content.len());
    let mut last = 0;
    for r in spans {
        if r.start < last {
            // A special token spelled with OPEN in it: already replaced.
            continue;
        }
        out.push_str(&content[last..r.start]);
        out.push(OPEN);
        out.push_str(&stash.len().to_string());
        out.push(CLOSE);
        stash.push(&content[r.clone()]);
        last = r.end;
    }
    out.push_str(&content[last..]);
    out
}

/// `rendered` with the placeholders replaced by the stashed text, and the byte ranges of
/// that text in the result. Anything that is not a whole placeholder (the template cut one)
/// stays as it is: plain private-use characters.
fn unescape(rendered: &str, stash: &[&str]) -> (String, Vec<std::ops::Range<usize>>) {
    let mut out = String::with_capacity(rendered.len());
    let mut plain = Vec::new();
    let mut rest = rendered;
    while let Some(i) = rest.find(OPEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + OPEN.len_utf8()..];
        let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        let index = after[..digits].parse::<usize>().ok().filter(|&n| n < stash.len());
        match index {
            Some(n) if after[digits..].starts_with(CLOSE) => {
                plain.push(out.len()..out.len() + stash[n].len());
                out.push_str(stash[n]);
                rest = &after[digits + CLOSE.len_utf8()..];
            }
            _ => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, plain)
}

/// The current UTC date and time formatted with a subset of strftime (`%Y %m %d %e %b %B %H %M %S %%`).
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_time(secs, fmt)
}

fn format_time(secs: u64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    // Howard Hinnant's days-to-civil conversion.
    let days = (secs / 86400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let name = MONTHS[(month - 1) as usize];
        match chars.next() {
            Some('Y') => out += &year.to_string(),
            Some('m') => out += &format!("{month:02}"),
            Some('d') => out += &format!("{day:02}"),
            Some('e') => out += &format!("{day:2}"),
            Some('b') => out += &name[..3],
            Some('B') => out += name,
            Some('H') => out += &format!("{h:02}"),
            Some('M') => out += &format!("{m:02}"),
            Some('S') => out += &format!("{s:02}"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}\
{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn default_system_prompt_and_generation_prompt() {
        let t = ChatTemplate::new(Some(SMOLLM2), "<|im_start|>", "<|im_end|>").unwrap();
        let out = t.render(&[Message::new("user", "Hi")], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(
                &[Message::new("system", "Be brief."), Message::new("user", "Hi")],
                false,
            )
            .unwrap();
        assert!(out.starts_with("<|im_start|>system\nBe brief.<|im_end|>"));
    }

    #[test]
    fn a_template_cannot_hang_or_exhaust_memory() {
        for source in [
            "{% for i in range(99999) %}{% for j in range(99999) %}{{ j }}{% endfor %}{% endfor %}",
            "{{ 'x' * 100000000000 }}",
            "{% set s = namespace(t='ab') %}{% for i in range(60) %}{% set s.t = s.t + s.t %}{% endfor %}{{ s.t }}",
        ] {
            let t = ChatTemplate::new(Some(source), "", "").unwrap();
            let err = t
                .render(&[Message::new("user", "x")], true)
                .unwrap_err()
                .to_string();
            assert!(err.contains("fuel"), "{source}: {err}");
        }
        // A real template over a long conversation stays far inside the budget.
        let t = ChatTemplate::new(Some(SMOLLM2), "<|im_start|>", "<|im_end|>").unwrap();
        let long: Vec<Message> = (0..5000)
            .map(|i| Message::new(if i % 2 == 0 { "user" } else { "assistant" }, "x".repeat(200)))
            .collect();
        assert!(t.render(&long, true).is_ok());
    }

    #[test]
    fn chatml_fallback_python_methods_and_errors() {
        let t = ChatTemplate::new(None, "", "").unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "x")], false).unwrap(),
            "<|im_start|>user\nx<|im_end|>\n"
        );
        let t = ChatTemplate::new(Some("{{ messages[0].content.strip().upper() }}"), "", "").unwrap();
        assert_eq!(t.render(&[Message::new("user", "  hi ")], false).unwrap(), "HI");
        let t = ChatTemplate::new(Some("{{ raise_exception('roles must alternate') }}"), "", "").unwrap();
        assert!(
            t.render(&[], false)
                .unwrap_err()
                .to_string()
                .contains("roles must alternate")
        );
        assert!(ChatTemplate::new(Some("{% if %}"), "", "").is_err());
    }

    #[test]
    fn gemma_fallback_renders_gemma_turns() {
        let t = ChatTemplate::new(Some(GEMMA), "<bos>", "<eos>").unwrap();
        let chat = [
            Message::new("system", "Be terse."),
            Message::new("user", " Hi "),
            Message::new("assistant", "Hello."),
            Message::new("user", "Capital of France?"),
        ];
        assert_eq!(
            t.render(&chat, true).unwrap(),
            "<bos><start_of_turn>user\nBe terse.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n\
             <start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\n"
        );
        assert_eq!(
            t.render(&chat[3..], false).unwrap(),
            "<bos><start_of_turn>user\nCapital of France?<end_of_turn>\n"
        );
    }

    #[test]
    fn trim_blocks_like_transformers() {
        let t = ChatTemplate::new(
            Some("{% for m in messages %}\n  {{ m.content }}\n{% endfor %}"),
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[Message::new("user", "a"), Message::new("user", "b")], false)
                .unwrap(),
            "  a\n  b\n"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(format_time(0, "%d %b %Y"), "01 Jan 1970");
        assert_eq!(format_time(1_732_752_000, "%Y-%m-%d %B"), "2024-11-28 November");
    }
}
