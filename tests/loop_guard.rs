//! The loop guard stops a generation whose tokens cycle, and only such a generation.

mod common;

use std::ops::ControlFlow;

use common::Tiny;
use edgelm::format::DType;
use edgelm::generate::{GenerateOptions, GenerationStats, LoopGuard, StopReason, generate};
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
