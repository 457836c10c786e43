//! Generating a token performs no heap allocation once the session exists: the number of
//! allocations of a generation does not grow with the number of tokens generated.

mod common;
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use std::ops::ControlFlow;

use common::Tiny;
use edgelm::format::DType;
use edgelm::generate::{GenerateOptions, LoopGuard, generate};
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::{Session, SessionOptions};

#[test]
fn generated_tokens_cost_no_allocations() {
    // Every penalty and DRY on, and a loop guard that looks at every period but cannot stop
    // 60 tokens.
    let penalised = SamplingParams {
        repeat_penalty: 1.1,
        presence_penalty: 0.2,
        frequency_penalty: 0.1,
        dry_multiplier: 0.8,
        dry_sequence_breakers: vec!["\n".into(), "a".into(), "bc".into()],
        ..SamplingParams::default()
    };
    let guard = LoopGuard {
        repeats: 100,
        ..LoopGuard::default()
    };
    for (weights, sampling, loop_guard) in [
        (DType::Q4_0, SamplingParams::greedy(), None),
        (DType::Q8_0, SamplingParams::default(), None),
        (DType::Q8_0, penalised, Some(guard)),
    ] {
        let model = Tiny {
            weights,
            ctx: 256,
            ..Tiny::default()
        }
        .model(9);
        let mut session = Session::new(
            &model,
            &SessionOptions {
                batch: 16,
                threads: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let prompt = [256u32, 10, 20, 30, 40];
        let mut count = |max_tokens: usize| {
            session.reset();
            let mut sampler = Sampler::new(sampling.clone(), &model);
            // Never stop early: treat every token as text.
            let opts = GenerateOptions {
                max_tokens,
                stop: vec!["\u{1}never".into()],
                sliding_window: None,
                loop_guard,
                cancel: None,
            };
            let before = counting_alloc::allocations();
            let stats = generate(&mut session, &mut sampler, &prompt, &opts, |_| {
                ControlFlow::Continue(())
            })
            .unwrap();
            let n = counting_alloc::allocations() - before;
            (n, stats.generated_tokens)
        };
        // Warm up: what is measured is a repeat of a run that has been done.
        for _ in 0..3 {
            count(40);
        }
        let (short, n_short) = count(2);
        let (long, n_long) = count(60);
        assert!(
            n_long > n_short + 50 || n_long < 60,
            "generation stopped early: {n_long} tokens"
        );
        assert_eq!(
            long, short,
            "{weights}: {short} allocations for {n_short} tokens, {long} for {n_long}"
        );
    }
}
