//! Structured output: `response_format` and `tools` become a grammar the answer must follow,
//! and a tool call's text becomes OpenAI's `tool_calls`.

use edgelm::chat::Message;
use edgelm::model::Model;
use serde_json::{Value, json};

use super::api::ChatRequest;
use super::http::ApiError;

/// What constrains an answer.
pub struct Constraint {
    /// The answer is a tool call (or, with `tool_choice: auto`, may be).
    pub tool_call: bool,
}

/// The constraint of a chat request, if any; tools are described to the model in a system
/// message added to `msgs`.
pub fn for_chat(
    req: &ChatRequest,
    _model: &Model,
    _msgs: &mut [Message],
) -> Result<Option<Constraint>, ApiError> {
    if let Some(f) = &req.response_format
        && f.kind != "text"
    {
        return Err(ApiError::bad(
            "response_format",
            "structured output is not available yet",
        ));
    }
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::bad("tools", "tools are not available yet"));
    }
    Ok(None)
}

/// The assistant message of a tool-call answer `text`: `tool_calls` when it is a call, else
/// the text as content; and whether it was a call.
pub fn tool_message(text: &str, id: &str) -> (Value, bool) {
    let call = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        let name = v.get("name")?.as_str()?.to_owned();
        let args = v.get("arguments").cloned().unwrap_or(json!({}));
        Some((name, args))
    });
    match call {
        Some((name, args)) => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{"id": format!("call_{id}"), "type": "function", "function": {"name": name, "arguments": args.to_string()}}],
            }),
            true,
        ),
        None => (json!({"role": "assistant", "content": text}), false),
    }
}
