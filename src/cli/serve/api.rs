//! The OpenAI wire format: request bodies (unknown fields are refused) and responses.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A string or a list of strings (`stop`, `input`, `prompt`).
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Message content: a string, or a list of parts of which only text is supported.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Other fields are let through so that an `image_url` or `input_audio` part reaches the check
/// that names its type, instead of failing to match the untagged `Content`.
#[derive(Deserialize, Debug, Clone)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    /// Accepted, not used.
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// An assistant turn's earlier tool calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// A `tool` turn answers this call.
    #[serde(default)]
    pub tool_call_id: Option<String>,
    /// An assistant turn's refusal (OpenAI's answers carry it; it is what the assistant said).
    #[serde(default)]
    pub refusal: Option<String>,
    /// Accepted, not used: an echoed answer's citations.
    #[serde(rename = "annotations", default)]
    _annotations: Option<IgnoredAny>,
    /// Only null (an echoed answer has them): audio output and the legacy function call.
    #[serde(default)]
    pub audio: Option<Value>,
    #[serde(default)]
    pub function_call: Option<Value>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub json_schema: Option<JsonSchemaFormat>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct JsonSchemaFormat {
    #[serde(default)]
    pub schema: Option<Value>,
    /// Accepted, not used.
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    /// Accepted, not used.
    #[serde(rename = "description", default)]
    _description: Option<IgnoredAny>,
    /// Accepted: the schema is always followed.
    #[serde(rename = "strict", default)]
    _strict: Option<IgnoredAny>,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    /// Accepted: the parameters' schema is always followed.
    #[serde(rename = "strict", default)]
    _strict: Option<IgnoredAny>,
}

/// `"none"`, `"auto"`, `"required"` or `{"type": "function", "function": {"name": …}}`.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named {
        #[serde(rename = "type")]
        kind: String,
        function: NamedFunction,
    },
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct NamedFunction {
    pub name: String,
}

/// What generation requests share.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub stop: Option<OneOrMany>,
    pub seed: Option<u64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub n: Option<usize>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    /// Only `false`: no completion is stored.
    pub store: Option<bool>,
    /// Only `["text"]`.
    pub modalities: Option<Vec<String>>,
    /// llama.cpp's server extensions, as local clients send them.
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repeat_penalty: Option<f32>,
    /// Accepted, not used.
    #[serde(rename = "user", default)]
    _user: Option<IgnoredAny>,
    /// Accepted, not used (they describe stored completions and billing).
    #[serde(rename = "metadata", default)]
    _metadata: Option<IgnoredAny>,
    #[serde(rename = "service_tier", default)]
    _service_tier: Option<IgnoredAny>,
}

/// Fields of [`Sampling`]: with `#[serde(flatten)]` serde cannot refuse unknown fields
/// itself, so the requests that flatten it list their fields for [`unknown_field`].
const SAMPLING_FIELDS: &[&str] = &[
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "user",
    "logprobs",
    "top_logprobs",
    "store",
    "modalities",
    "top_k",
    "min_p",
    "repeat_penalty",
    "metadata",
    "service_tier",
];
pub const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "stream",
    "stream_options",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
];
pub const COMPLETION_FIELDS: &[&str] = &["model", "prompt", "stream", "stream_options", "echo"];

/// The first field of the JSON object `body` that is neither in `fields` nor a sampling field.
pub fn unknown_field(body: &Value, fields: &[&str]) -> Option<String> {
    body.as_object()?
        .keys()
        .find(|k| !fields.contains(&k.as_str()) && !SAMPLING_FIELDS.contains(&k.as_str()))
        .cloned()
}

#[derive(Deserialize, Debug, Clone)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// Accepted: an answer makes one call.
    #[serde(rename = "parallel_tool_calls", default)]
    _parallel_tool_calls: Option<IgnoredAny>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Deserialize, Debug, Clone)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: OneOrMany,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: OneOrMany,
    #[serde(default)]
    pub encoding_format: Option<String>,
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// Accepted, not used.
    #[serde(rename = "user", default)]
    _user: Option<IgnoredAny>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text.
    pub arguments: String,
}

#[derive(Serialize, Debug, Clone, Copy)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    pub fn new(prompt_tokens: usize, completion_tokens: usize) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
#[derive(Serialize, Debug)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, Debug)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}
