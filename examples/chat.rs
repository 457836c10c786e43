//! The library API in one program: open a packed model, render a chat prompt with the
//! model's template, generate with a callback per piece of text, then continue the
//! conversation reusing the KV cache.
//!
//!     cargo run --release --example chat -- MODEL.edgelm "Your question"

use std::io::Write;
use std::ops::ControlFlow;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::generate::{GenerateOptions, generate};
use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::{Session, SessionOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(question)) = (args.next(), args.next()) else {
        return Err("usage: chat MODEL.edgelm QUESTION".into());
    };
    let model = Model::open(path.as_ref())?;
    let template = ChatTemplate::for_model(&model)?;
    let mut session = Session::new(&model, &SessionOptions::default())?;
    let mut sampler = Sampler::new(
        SamplingParams {
            temperature: 0.3,
            ..Default::default()
        },
        &model,
    );
    let opts = GenerateOptions {
        max_tokens: 128,
        ..Default::default()
    };

    let mut messages = vec![Message::new("user", question)];
    for turn in 0..2 {
        // Render and tokenize the whole conversation (message text never becomes control
        // tokens), then feed only what the cache does not hold yet.
        let ids = template.encode(model.tokenizer(), &messages)?;
        let new = &ids[session.reuse_prefix(&ids)..];
        let mut answer = String::new();
        let stats = generate(&mut session, &mut sampler, new, &opts, |text| {
            answer.push_str(text);
            print!("{text}");
            let _ = std::io::stdout().flush();
            ControlFlow::Continue(())
        })?;
        println!(
            "\n[turn {turn}: {} new prompt tokens, {} generated]",
            stats.prompt_tokens, stats.generated_tokens
        );
        messages.push(Message::new("assistant", answer));
        messages.push(Message::new("user", "Say that again in five words."));
    }
    Ok(())
}
