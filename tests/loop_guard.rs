//! The loop guard stops a generation whose tokens cycle, and only such a generation.

mod common;

use std::ops::ControlFlow;

use common::Tiny;
use edgelm::format::DType;
use edgelm::generate::{Answer, GenerateOptions, GenerationStats, LoopGuard, StopReason, generate};
use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::{Session, SessionOptions};

/// Generates up to 200 tokens greedily after `prompt`; returns the stats and the tokens.
fn run(
    model: &Model,
    sampling: SamplingParams,
    prompt: &[u32],
    loop_guard: Option<LoopGuard>,
) -> (GenerationStats, Vec<u32>) {
    let mut session = Session::new(
        model,
        &SessionOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let mut sampler = Sampler::new(sampling, model);
    let opts = GenerateOptions {
        max_tokens: 200,
        // Never stop on a stop string; treat every token as text.
        stop: vec!["\u{1}never".into()],
        loop_guard,
        ..Default::default()
    };
    let stats = generate(&mut session, &mut sampler, prompt, &opts, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    // The last sampled token is not fed back: generated tokens minus one are in the session.
    let tokens = session.tokens()[prompt.len()..].to_vec();
    (stats, tokens)
}

fn tiny(seed: u64) -> Model {
    Tiny {
        weights: DType::Q8_0,
        ctx: 256,
        ..Tiny::default()
    }
    .model(seed)
}

#[test]
fn a_cycling_stream_is_stopped_with_the_reason() {
    let model = tiny(4);
    // A negative DRY multiplier rewards extending repeats: after a prompt that ends in two
    // copies of "defg", the greedy choice continues the cycle forever.
    let cycling = SamplingParams {
        dry_multiplier: -100.0,
        ..SamplingParams::greedy()
    };
    let prompt = [256u32, 100, 101, 102, 103, 100, 101, 102, 103];
    let (stats, tokens) = run(&model, cycling.clone(), &prompt, None);
    assert_eq!(stats.stop, StopReason::MaxTokens);
    assert!(
        tokens.iter().enumerate().all(|(i, &t)| t == prompt[1 + i % 4]),
        "{tokens:?}"
    );
    // The guard: blocks of 8 tokens (two periods), three copies, 24 tokens.
    let (stats, _) = run(&model, cycling, &prompt, Some(LoopGuard::default()));
    assert_eq!(stats.stop, StopReason::Repetition);
    assert_eq!(stats.generated_tokens, 24);
}

#[test]
fn text_that_does_not_cycle_runs_on() {
    let prompt = [256u32, 10, 20, 30, 40];
    for seed in [1, 4, 5] {
        let model = tiny(seed);
        let (without, tokens) = run(&model, SamplingParams::greedy(), &prompt, None);
        let (with, guarded) = run(
            &model,
            SamplingParams::greedy(),
            &prompt,
            Some(LoopGuard::default()),
        );
        assert_eq!(without.stop, StopReason::MaxTokens, "seed {seed}");
        assert_eq!(with.stop, StopReason::MaxTokens, "seed {seed}");
        assert_eq!(tokens, guarded);
    }
}

/// Feeds the tokens of `text` to an answer under the default guard; returns why it ended and
/// how much of the text it let through.
fn guard_text(model: &Model, text: &str) -> (Option<StopReason>, String) {
    let tok = model.tokenizer();
    let ids = tok
        .encode(
            text,
            edgelm::tokenizer::EncodeOptions {
                add_special: false,
                parse_special: false,
                max_length: None,
            },
        )
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: ids.len() + 1,
        loop_guard: Some(LoopGuard::default()),
        ..Default::default()
    };
    let mut answer = Answer::new(tok, &opts);
    let mut shown = String::new();
    let mut on_text = |s: &str| {
        shown.push_str(s);
        ControlFlow::Continue(())
    };
    let stop = ids.iter().find_map(|&id| answer.push(id, &mut on_text));
    (stop, shown)
}

#[test]
fn counting_without_content_is_stopped_and_lists_are_not() {
    let model = tiny(1);
    // "1.\n2.\n3.\n…": stopped at its twelfth line, 9 → 10 included.
    let counting: String = (1..=40).map(|n| format!("{n}.\n")).collect();
    let (stop, shown) = guard_text(&model, &format!("The steps:\n{counting}"));
    assert_eq!(stop, Some(StopReason::Repetition));
    assert!(
        shown.ends_with("\n12.\n") || shown.ends_with("\n12."),
        "{shown:?}"
    );
    // "9: 9am\n10: 10am\n…" as well.
    let times: String = (1..=30).map(|n| format!("{n}: {n}am\n")).collect();
    assert_eq!(guard_text(&model, &times).0, Some(StopReason::Repetition));
    // A numbered list whose items say different things runs to its end, as does a table of
    // numbers with longer rows.
    let items = [
        "Check the tire pressure",
        "Clear snow from the roof",
        "Drive slower on ice",
        "Keep a longer distance",
        "Brake gently",
        "Turn the headlights on",
        "Carry a blanket and water",
        "Keep the tank half full",
        "Plan the route",
        "Avoid steep hills",
        "Tell someone your route",
        "Charge your phone",
        "Check the wipers",
        "Top up the washer fluid",
        "Stay home if it is bad",
    ];
    let list: String = items
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{}. **{s}**.\n", i + 1))
        .collect();
    assert_eq!(guard_text(&model, &list), (None, list.clone()));
    let table: String = (1..=30)
        .map(|n| format!("| Day {n} | {} | {} |\n", 20 + n % 7, 10 + n % 5))
        .collect();
    assert_eq!(guard_text(&model, &table).0, None);
}
