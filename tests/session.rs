//! Session consistency on random models: batched prefill equals token-by-token decoding,
//! several sequences decoded in one pass equal each decoded alone, thread counts agree, the
//! q8 KV cache tracks the f16 one, context limits are errors.

mod common;

use common::Tiny;
use edgelm::batch::{BatchDecoder, Logits, Span};
use edgelm::format::DType;
use edgelm::kv_cache::KvType;
use edgelm::session::{Session, SessionError, SessionOptions};

fn opts(batch: usize, threads: usize) -> SessionOptions {
    SessionOptions {
        batch,
        threads: Some(threads),
        ..SessionOptions::default()
    }
}

/// Logits after each of `tokens`, fed in batches of `batch`.
fn logits_by_position(model: &edgelm::model::Model, tokens: &[u32], o: &SessionOptions) -> Vec<Vec<f32>> {
    let mut s = Session::new(model, o).unwrap();
    let mut out = Vec::new();
    s.feed_all(tokens, |_, l| out.push(l.to_vec())).unwrap();
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

const PROMPT: [u32; 23] = [
    256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10, 3, 200, 17, 99, 45, 45, 255, 0, 7,
];

#[test]
fn prefill_batches_match_token_by_token() {
    for weights in [DType::F32, DType::F16, DType::Q8_0, DType::Q4_0] {
        let model = Tiny {
            weights,
            ..Tiny::default()
        }
        .model(1);
        let one = logits_by_position(&model, &PROMPT, &opts(1, 1));
        for batch in [7, 64] {
            let many = logits_by_position(&model, &PROMPT, &opts(batch, 2));
            for (i, (a, b)) in one.iter().zip(&many).enumerate() {
                let d = max_rel_diff(a, b);
                assert!(
                    d < 1e-4,
                    "{weights} batch {batch} position {i}: relative difference {d}"
                );
            }
        }
    }
}

#[test]
fn feed_returns_the_last_logits_and_threads_agree_exactly() {
    let model = Tiny {
        weights: DType::Q4_0,
        tied: true,
        ..Tiny::default()
    }
    .model(2);
    let all = logits_by_position(&model, &PROMPT, &opts(8, 1));
    for threads in [1, 2, 3] {
        let mut s = Session::new(&model, &opts(8, threads)).unwrap();
        assert_eq!(
            s.feed(&PROMPT).unwrap().to_vec(),
            *all.last().unwrap(),
            "{threads} threads"
        );
        assert_eq!(s.position(), PROMPT.len());
    }
}

/// A prompt long enough that its norms, rotations and adds split over the threads, and its
/// attention by blocks of queries (more tasks than heads), gives the one-thread logits.
#[test]
fn long_prompts_split_over_threads_agree_exactly() {
    let model = Tiny {
        hidden: 256,
        ff: 384,
        heads: 4,
        kv_heads: 2,
        head_dim: 64,
        ctx: 320,
        weights: DType::Q4_0,
        tied: true,
        ..Tiny::default()
    }
    .model(5);
    let prompt: Vec<u32> = (0..256).map(|i| (i * 37 % 264) as u32).collect();
    let one = Session::new(&model, &opts(256, 1))
        .unwrap()
        .feed(&prompt)
        .unwrap()
        .to_vec();
    for threads in [2, 3] {
        let mut s = Session::new(&model, &opts(256, threads)).unwrap();
        assert_eq!(s.feed(&prompt).unwrap().to_vec(), one, "{threads} threads");
    }
}

#[test]
fn qkv_bias_models_run_and_differ_from_unbiased_ones() {
    let plain = Tiny::default().model(3);
    let biased = Tiny {
        qkv_bias: true,
        ..Tiny::default()
    }
    .model(3);
    let a = logits_by_position(&plain, &PROMPT[..5], &opts(8, 2));
    let b = logits_by_position(&biased, &PROMPT[..5], &opts(8, 2));
    assert!(max_rel_diff(&a[4], &b[4]) > 1e-3);
}

#[test]
fn q8_kv_cache_tracks_f16() {
    let model = Tiny {
        weights: DType::Q8_0,
        ..Tiny::default()
    }
    .model(4);
    let f16 = logits_by_position(&model, &PROMPT, &opts(8, 2));
    let q8 = logits_by_position(
        &model,
        &PROMPT,
        &SessionOptions {
            kv_type: KvType::Q8,
            ..opts(8, 2)
        },
    );
    for (i, (a, b)) in f16.iter().zip(&q8).enumerate() {
        let c = cosine(a, b);
        // Budget: q8 blocks carry ±0.4% error per element; these random networks (weights of
        // std 0.17, no training) amplify it, typically to cosine 0.9997 and at worst 0.9984 seen.
        // The cost on a real model is measured as perplexity (docs/BENCHMARKS.md).
        assert!(c > 0.995, "position {i}: logits cosine similarity {c}");
    }
}

#[test]
fn context_overflow_and_bad_tokens_are_errors() {
    let model = Tiny {
        ctx: 32,
        ..Tiny::default()
    }
    .model(5);
    let mut s = Session::new(
        &model,
        &SessionOptions {
            context: Some(16),
            ..opts(8, 1)
        },
    )
    .unwrap();
    s.feed(&PROMPT[..10]).unwrap();
    match s.feed(&PROMPT[..7]) {
        Err(SessionError::ContextFull {
            needed: 17,
            context: 16,
        }) => {}
        other => panic!("expected ContextFull, got {other:?}"),
    }
    assert_eq!(s.position(), 10, "a refused feed leaves the context as it was");
    let e = s.feed(&[5, 264]).unwrap_err().to_string();
    assert!(e.contains("token id 264") && e.contains("264"), "{e}");
    let e = Session::new(
        &model,
        &SessionOptions {
            context: Some(33),
            ..opts(8, 1)
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("context 33"), "{e}");
}

/// With one layer, cached keys and values depend only on each token and its position, so a
/// shifted cache (keys rotated back) must equal the cache of a fresh session.
#[test]
fn shifted_context_matches_a_fresh_one() {
    let model = Tiny {
        layers: 1,
        ..Tiny::default()
    }
    .model(6);
    let o = opts(8, 2);
    let (keep, discard) = (3, 6);
    let mut shifted = Session::new(&model, &o).unwrap();
    shifted.feed(&PROMPT[..15]).unwrap();
    shifted.shift_context(keep, discard);
    assert_eq!(shifted.position(), 15 - discard);
    let a = shifted.feed(&PROMPT[15..18]).unwrap().to_vec();
    let mut fresh = Session::new(&model, &o).unwrap();
    let kept: Vec<u32> = PROMPT[..keep]
        .iter()
        .chain(&PROMPT[keep + discard..18])
        .copied()
        .collect();
    let b = fresh.feed(&kept).unwrap().to_vec();
    let d = max_rel_diff(&a, &b);
    assert!(d < 1e-2, "shifted context differs by {d}");
}

/// Three sequences at different depths, fed one pass at a time with prompt chunks and single
/// tokens mixed (as a server's slots are), give each sequence the logits it gets alone.
#[test]
fn sequences_decoded_together_match_each_alone() {
    for (weights, kv_type) in [
        (DType::F32, KvType::F32),
        (DType::Q4_0, KvType::F16),
        (DType::Q8_0, KvType::Q8),
    ] {
        let model = Tiny {
            weights,
            ..Tiny::default()
        }
        .model(7);
        let o = SessionOptions {
            kv_type,
            ..opts(16, 2)
        };
        let prompts: [&[u32]; 3] = [&PROMPT[..9], &PROMPT[4..20], &PROMPT[1..4]];
        let alone: Vec<Vec<Vec<f32>>> = prompts
            .iter()
            .map(|p| logits_by_position(&model, p, &o))
            .collect();
        let mut dec = BatchDecoder::new(&model, &o).unwrap();
        let mut seqs: Vec<_> = (0..3).map(|_| dec.sequence(40).unwrap()).collect();
        // Each step feeds every unfinished sequence its next up-to-`step[i]` tokens.
        let step = [1, 5, 2];
        let mut fed = [0usize; 3];
        let (mut tokens, mut spans) = (Vec::new(), Vec::new());
        while fed.iter().zip(&prompts).any(|(f, p)| f < &p.len()) {
            tokens.clear();
            spans.clear();
            for i in 0..3 {
                let n = step[i].min(prompts[i].len() - fed[i]);
                if n > 0 {
                    tokens.extend_from_slice(&prompts[i][fed[i]..fed[i] + n]);
                    spans.push(Span { seq: i, len: n });
                }
            }
            dec.forward(&mut seqs, &tokens, &spans, Logits::Last).unwrap();
            for (row, sp) in spans.iter().enumerate() {
                fed[sp.seq] += sp.len;
                let want = &alone[sp.seq][fed[sp.seq] - 1];
                let d = max_rel_diff(want, dec.logits_mut(row));
                assert!(
                    d < 1e-4,
                    "{weights} {kv_type:?}: sequence {} at {}: relative difference {d}",
                    sp.seq,
                    fed[sp.seq]
                );
            }
        }
        for (s, p) in seqs.iter().zip(&prompts) {
            assert_eq!(s.tokens(), *p);
        }
        // A span naming a sequence twice, or tokens past the spans, changes nothing.
        let before = seqs[0].position();
        let twice = [Span { seq: 0, len: 1 }, Span { seq: 0, len: 1 }];
        assert!(dec.forward(&mut seqs, &[1, 2], &twice, Logits::Last).is_err());
        assert!(
            dec.forward(&mut seqs, &[1, 2], &[Span { seq: 0, len: 1 }], Logits::Last)
                .is_err()
        );
        assert!(
            dec.forward(&mut seqs, &[1], &[Span { seq: 3, len: 1 }], Logits::Last)
                .is_err()
        );
        assert_eq!(seqs[0].position(), before);
    }
}

#[test]
fn cancel_stops_before_the_next_prompt_batch_or_token() {
    use std::ops::ControlFlow;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use edgelm::generate::{GenerateOptions, StopReason, generate};
    use edgelm::sampling::{Sampler, SamplingParams};

    let model = Tiny::default().model(6);
    let mut s = Session::new(&model, &opts(4, 1)).unwrap();
    let mut sampler = Sampler::new(SamplingParams::greedy(), &model);
    let cancel = Arc::new(AtomicBool::new(true));
    let o = GenerateOptions {
        max_tokens: 20,
        stop: vec!["\u{1}never".into()],
        cancel: Some(cancel.clone()),
        ..Default::default()
    };
    // Set before: no batch of the prompt runs.
    let stats = generate(&mut s, &mut sampler, &PROMPT[..10], &o, |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(
        (stats.stop, stats.prompt_tokens, stats.generated_tokens),
        (StopReason::Cancelled, 0, 0)
    );
    assert_eq!(s.position(), 0, "nothing was fed");
    // Set while the first piece of text is shown: nothing more is fed.
    cancel.store(false, Ordering::Relaxed);
    let stats = generate(&mut s, &mut sampler, &PROMPT[..10], &o, |_| {
        cancel.store(true, Ordering::Relaxed);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(stats.stop, StopReason::Cancelled);
    assert!(stats.generated_tokens < o.max_tokens, "{stats:?}");
    assert_eq!(
        s.position(),
        10 + stats.generated_tokens - 1,
        "the last sampled token is not fed"
    );
}
