//! Structured output: `response_format` and `tools` become a grammar the answer must follow
//! (so it always parses), the model is told the schema or the tools in a system message, and a
//! tool call's text becomes OpenAI's `tool_calls`.

use std::sync::Arc;

use edgelm::chat::Message;
use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable, json_schema};
use serde_json::{Value, json};

use super::api::{ChatRequest, ToolChoice};
use super::http::ApiError;

/// What constrains an answer.
pub struct Constraint {
    /// The matcher the sampler follows.
    pub grammar: GrammarMatcher,
    /// The answer is a tool call (or, with `tool_choice: auto`, may be).
    pub tool_call: bool,
}

/// Name of the tool-call rule when `tool_choice` is `auto` (the root chooses a call or text).
const CALL_RULE: &str = "edgelm-tool-call";

/// The constraint of a chat request, if any; the schema or the tools are described to the
/// model in a system message added to `msgs`.
pub fn for_chat(
    req: &ChatRequest,
    table: &Arc<TokenTable>,
    msgs: &mut Vec<Message>,
) -> Result<Option<Constraint>, ApiError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    let choice = match &req.tool_choice {
        None => "auto",
        Some(ToolChoice::Mode(m)) if ["none", "auto", "required"].contains(&m.as_str()) => m.as_str(),
        Some(ToolChoice::Mode(m)) => {
            return Err(ApiError::bad("tool_choice", format!("unknown tool_choice {m:?}")));
        }
        Some(ToolChoice::Named { kind, function }) if kind == "function" => function.name.as_str(),
        Some(ToolChoice::Named { kind, .. }) => {
            return Err(ApiError::bad(
                "tool_choice",
                format!("unknown tool_choice type {kind:?}"),
            ));
        }
    };
    if !tools.is_empty() && choice != "none" {
        if req.response_format.as_ref().is_some_and(|f| f.kind != "text") {
            return Err(ApiError::bad(
                "response_format",
                "response_format cannot be combined with tools",
            ));
        }
        return tool_grammar(req, choice, table, msgs).map(Some);
    }
    let Some(format) = &req.response_format else {
        return Ok(None);
    };
    let schema = match format.kind.as_str() {
        "text" => return Ok(None),
        "json_object" => json!({"type": "object"}),
        "json_schema" => format
            .json_schema
            .as_ref()
            .and_then(|s| s.schema.clone())
            .ok_or_else(|| ApiError::bad("response_format", "json_schema needs a schema"))?,
        other => {
            return Err(ApiError::bad(
                "response_format",
                format!("unknown response_format type {other:?}"),
            ));
        }
    };
    let grammar =
        Grammar::from_json_schema(&schema).map_err(|e| ApiError::bad("response_format", e.to_string()))?;
    instruct(
        msgs,
        &format!("Answer with a JSON value that follows this JSON schema:\n{schema}"),
    );
    Ok(Some(Constraint {
        grammar: GrammarMatcher::new(Arc::new(grammar), table.clone()),
        tool_call: false,
    }))
}

/// The grammar of a call to one of the `tools` allowed by `choice` (`auto`: a call or text
/// that does not start with `{`; `required`: a call; a name: a call of that function).
fn tool_grammar(
    req: &ChatRequest,
    choice: &str,
    table: &Arc<TokenTable>,
    msgs: &mut Vec<Message>,
) -> Result<Constraint, ApiError> {
    let tools = req.tools.as_deref().unwrap_or_default();
    if let Some(t) = tools.iter().find(|t| t.kind != "function") {
        return Err(ApiError::bad("tools", format!("unknown tool type {:?}", t.kind)));
    }
    let calls: Vec<Value> = tools
        .iter()
        .filter(|t| matches!(choice, "auto" | "required") || t.function.name == choice)
        .map(|t| {
            let params = t
                .function
                .parameters
                .clone()
                .unwrap_or_else(|| json!({"type": "object"}));
            json!({
                "type": "object",
                "properties": {"name": {"const": t.function.name}, "arguments": params},
                "required": ["name", "arguments"],
            })
        })
        .collect();
    if calls.is_empty() {
        return Err(ApiError::bad(
            "tool_choice",
            format!("no tool is called {choice:?}"),
        ));
    }
    let schema = if calls.len() == 1 {
        calls[0].clone()
    } else {
        json!({"anyOf": calls})
    };
    let mut gbnf = json_schema::to_gbnf(&schema).map_err(|e| ApiError::bad("tools", e.to_string()))?;
    if choice == "auto" {
        gbnf = gbnf.replacen("root ::= ", &format!("{CALL_RULE} ::= "), 1);
        gbnf.push_str(&format!("root ::= {CALL_RULE} | [^{{] .*\n"));
    }
    let grammar = Grammar::parse(&gbnf).map_err(|e| ApiError::bad("tools", e.to_string()))?;
    let listed: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.function.name, "description": t.function.description, "parameters": t.function.parameters}))
        .collect();
    let how = if choice == "auto" {
        "To call a function, answer with only a JSON object"
    } else {
        "Call a function: answer with only a JSON object"
    };
    instruct(
        msgs,
        &format!(
            "You can call these functions:\n{}\n{how} {{\"name\": <function name>, \"arguments\": <its arguments>}}.",
            Value::Array(listed)
        ),
    );
    Ok(Constraint {
        grammar: GrammarMatcher::new(Arc::new(grammar), table.clone()),
        tool_call: true,
    })
}

/// Adds `text` to the conversation's system message (making one if there is none).
fn instruct(msgs: &mut Vec<Message>, text: &str) {
    match msgs.first_mut() {
        Some(m) if m.role == "system" => {
            m.content.push_str("\n\n");
            m.content.push_str(text);
        }
        _ => msgs.insert(0, Message::new("system", text)),
    }
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
