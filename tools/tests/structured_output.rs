//! SmolLM2-135M-Instruct generating under JSON-schema grammars: every answer ends by itself,
//! parses, and satisfies its schema (checked by a small validator for the converter's subset).

mod common;
mod tokenizer_support;

use std::ops::ControlFlow;
use std::sync::Arc;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, StopReason, generate};
use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable};
use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::{Session, SessionOptions};
use serde_json::{Value, json};

/// Whether `v` satisfies `s` (the keywords the grammar converter supports).
fn validate(v: &Value, s: &Value, at: &str) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{at}: {what}: {v}"));
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return fail("not in enum");
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            t => vec![t.as_str().unwrap()],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return fail("wrong type");
        }
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum").and_then(Value::as_f64).is_some_and(|m| n < m) {
            return fail("below minimum");
        }
        if s.get("maximum").and_then(Value::as_f64).is_some_and(|m| n > m) {
            return fail("above maximum");
        }
    }
    if let Some(text) = v.as_str() {
        let len = text.chars().count() as u64;
        if s.get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            return fail("too short");
        }
        if s.get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            return fail("too long");
        }
        if s.get("format").and_then(Value::as_str) == Some("date") {
            let b = text.as_bytes();
            let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
            if !(b.len() == 10
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10))
            {
                return fail("not a date");
            }
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if s.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m) {
            return fail("too few items");
        }
        if s.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m) {
            return fail("too many items");
        }
        if let Some(is) = s.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(item, is, &format!("{at}/{i}"))?;
            }
        }
    }
    if let (Some(o), Some(props)) = (v.as_object(), s.get("properties").and_then(Value::as_object)) {
        for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
            if !o.contains_key(r.as_str().unwrap()) {
                return fail(&format!("missing {r}"));
            }
        }
        for (k, value) in o {
            match props.get(k) {
                Some(ps) => validate(value, ps, &format!("{at}/{k}"))?,
                None => return fail(&format!("unexpected property {k}")),
            }
        }
    }
    Ok(())
}

#[test]
fn smollm2_answers_parse_and_satisfy_their_schemas() {
    let Some(gguf) = tokenizer_support::smollm2_gguf() else {
        return;
    };
    let model = Model::from_packed(common::convert_path(&gguf, "q8_0")).unwrap();
    let table = Arc::new(TokenTable::new(model.tokenizer()));
    let template = ChatTemplate::for_model(&model).unwrap();
    let mut session = Session::new(
        &model,
        &SessionOptions {
            context: Some(1024),
            ..Default::default()
        },
    )
    .unwrap();
    let cases = [
        (
            "Describe a person who lives in Tokyo, as JSON.",
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 20},
                    "age": {"type": "integer", "minimum": 18, "maximum": 120},
                    "city": {"enum": ["Paris", "London", "Tokyo"]}
                },
                "required": ["name", "age", "city"]
            }),
        ),
        (
            "Write a to-do list for a weekend, as JSON.",
            json!({
                "type": "array", "minItems": 2, "maxItems": 4,
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string", "minLength": 1, "maxLength": 40},
                        "done": {"type": "boolean"}
                    },
                    "required": ["title", "done"]
                }
            }),
        ),
        (
            "Rate the movie Alien from 1 to 10 and say when you watched it, as JSON.",
            json!({
                "type": "object",
                "properties": {
                    "answer": {"type": "integer", "minimum": 1, "maximum": 10},
                    "reason": {"type": ["string", "null"], "maxLength": 80},
                    "watched": {"type": "string", "format": "date"}
                },
                "required": ["answer", "reason", "watched"]
            }),
        ),
    ];
    for (question, schema) in &cases {
        let grammar = Arc::new(Grammar::from_json_schema(schema).unwrap());
        let prompt = template
            .encode(model.tokenizer(), &[Message::new("user", *question)])
            .unwrap();
        // Greedy, then sampled at two seeds.
        for params in [
            SamplingParams::greedy(),
            SamplingParams {
                seed: 1,
                ..Default::default()
            },
            SamplingParams {
                seed: 2,
                temperature: 1.0,
                ..Default::default()
            },
        ] {
            let mut sampler = Sampler::new(params.clone(), &model);
            sampler.set_grammar(Some(GrammarMatcher::new(
                Arc::clone(&grammar),
                Arc::clone(&table),
            )));
            session.reset();
            let mut text = String::new();
            let stats = generate(
                &mut session,
                &mut sampler,
                &prompt,
                &GenerateOptions {
                    max_tokens: 400,
                    ..Default::default()
                },
                |t| {
                    text.push_str(t);
                    ControlFlow::Continue(())
                },
            )
            .unwrap();
            assert_eq!(stats.stop, StopReason::EndOfTurn, "{question} {params:?}: {text}");
            assert!(sampler.grammar().unwrap().is_complete());
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{question}: {e}: {text}"));
            validate(&value, schema, "#").unwrap_or_else(|e| panic!("{question}: {e}"));
            eprintln!("{question} (temperature {}): {text}", params.temperature);
        }
    }
}

#[test]
fn validator_rejects_what_the_schemas_forbid() {
    let s =
        json!({"type": "object", "properties": {"a": {"type": "integer", "maximum": 3}}, "required": ["a"]});
    assert!(validate(&json!({"a": 3}), &s, "#").is_ok());
    for bad in [
        json!({"a": 4}),
        json!({}),
        json!({"a": 1, "b": 2}),
        json!({"a": "x"}),
        json!([]),
    ] {
        assert!(validate(&bad, &s, "#").is_err(), "{bad}");
    }
}
