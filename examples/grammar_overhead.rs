//! What a JSON-schema grammar costs in generation speed: greedy generation with and without
//! the grammar, interleaved, then the mask alone replayed over the constrained answer (its
//! thread's CPU time, from Linux's `/proc/thread-self/schedstat`, so that a shared machine's
//! waits do not count).
//!
//!     cargo run --release --example grammar_overhead -- MODEL.edgelm [ROUNDS]

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, generate};
use edgelm::grammar::{Grammar, GrammarMatcher, TokenTable};
use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::{Session, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        return Err("usage: grammar_overhead MODEL.edgelm [ROUNDS]".into());
    };
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let model = Model::open(path.as_ref())?;
    let schema = serde_json::json!({
        "type": "array", "minItems": 3, "maxItems": 3,
        "items": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0},
                "city": {"type": "string"},
                "hobbies": {"type": "array", "items": {"type": "string"}, "maxItems": 3}
            },
            "required": ["name", "age", "city", "hobbies"]
        }
    });
    let grammar = Arc::new(Grammar::from_json_schema(&schema)?);
    let t = Instant::now();
    let table = Arc::new(TokenTable::new(model.tokenizer()));
    println!(
        "token table: {} tokens in {:.1} ms",
        table.vocab_size(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let messages = [Message::new(
        "user",
        "List three people with their name, age, city and hobbies, as JSON.",
    )];
    let prompt = ChatTemplate::for_model(&model)?.encode(model.tokenizer(), &messages)?;
    let mut session = Session::new(
        &model,
        &SessionOptions {
            context: Some(1024),
            ..Default::default()
        },
    )?;
    let opts = GenerateOptions {
        max_tokens: 200,
        ..Default::default()
    };
    let mut rate = [Vec::new(), Vec::new()];
    let mut answer = Vec::new();
    for _ in 0..rounds {
        for (constrained, rates) in rate.iter_mut().enumerate() {
            let mut sampler = Sampler::new(SamplingParams::greedy(), &model);
            if constrained == 1 {
                let m = GrammarMatcher::new(Arc::clone(&grammar), Arc::clone(&table));
                sampler.set_grammar(Some(m));
            }
            session.reset();
            let mut text = String::new();
            let stats = generate(&mut session, &mut sampler, &prompt, &opts, |t| {
                text.push_str(t);
                ControlFlow::Continue(())
            })?;
            rates.push(stats.generated_tokens as f64 / stats.generation_time.as_secs_f64());
            if constrained == 1 {
                answer = session.tokens()[prompt.len()..].to_vec();
                serde_json::from_str::<serde_json::Value>(&text)?;
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (free, constrained) = (median(&mut rate[0]), median(&mut rate[1]));
    println!(
        "generation, median of {rounds}: {free:.1} tok/s free, {constrained:.1} tok/s with the grammar ({:+.1}%)",
        (constrained / free - 1.0) * 100.0
    );
    // The grammar's own work per token, replayed over the constrained answer.
    let mut m = GrammarMatcher::new(grammar, table);
    let mut logits = vec![0.0f32; model.config().vocab_size];
    let replays = 20;
    let (wall, cpu) = (Instant::now(), thread_cpu_ns());
    for _ in 0..replays {
        m.reset();
        for &token in &answer {
            m.mask(&mut logits);
            m.accept(token)?;
        }
    }
    let n = (answer.len() * replays).max(1) as f64;
    let cpu_us = (thread_cpu_ns() - cpu) as f64 / 1e3 / n;
    println!(
        "grammar work over {} tokens (x{replays}): mask + accept {cpu_us:.0} us/token CPU ({:.0} us wall), \
         {:.1}% of a token at the free rate",
        answer.len(),
        wall.elapsed().as_secs_f64() * 1e6 / n,
        cpu_us * 1e-6 * free * 100.0
    );
    Ok(())
}

/// Nanoseconds the calling thread has run on a CPU.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
