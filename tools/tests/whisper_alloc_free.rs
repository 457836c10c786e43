//! Encoding a window and decoding tokens perform no heap allocation once the Whisper runner
//! exists (the tiny random Whisper at q8_0 and f16, 2 threads), nor do beam search and
//! sampling over several sequences once their buffers exist.

mod common;
#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use edgelm::model::Model;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::whisper::beam::{Decoder, Strategy};
use edgelm::whisper::{Whisper, WhisperOptions};

/// One test: the allocation counter is global, so the checks must not run side by side.
#[test]
fn whisper_costs_no_allocations() {
    encoding_and_decoding_cost_no_allocations();
    beam_search_and_sampling_cost_no_allocations();
}

fn encoding_and_decoding_cost_no_allocations() {
    let dir = common::fixtures().join("tiny-whisper");
    // Converted first: the converter's own threads stay alive.
    let models = ["q8_0", "f16"].map(|q| (q, Model::from_packed(common::convert_path(&dir, q)).unwrap()));
    for (quant, model) in &models {
        let opts = WhisperOptions {
            threads: Some(2),
            ..Default::default()
        };
        let mut w = Whisper::new(model, &opts).unwrap();
        let mel: Vec<f32> = (0..80 * w.window_frames())
            .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
            .collect();
        let allocations = w.run_in_pool(|w| {
            let run = |w: &mut Whisper<'_>| {
                w.encode(&mel).unwrap();
                w.decode(&[301, 302, 306], 0).unwrap();
                for pos in 3..60 {
                    let logits = w.decode(&[(pos * 13 % 300) as u32], pos).unwrap();
                    assert!(logits.iter().all(|v| v.is_finite()));
                }
            };
            // Warm up: what is measured is a repeat of a run that has been done.
            for _ in 0..3 {
                run(w);
            }
            let before = counting_alloc::allocations();
            for _ in 0..5 {
                run(w);
            }
            counting_alloc::allocations() - before
        });
        assert_eq!(allocations, 0, "{quant}: allocations in 5 windows of 60 tokens");
    }
}

fn beam_search_and_sampling_cost_no_allocations() {
    let dir = common::fixtures().join("tiny-whisper");
    let model = Model::from_packed(common::convert_path(&dir, "q8_0")).unwrap();
    let eot = model.config().whisper.as_ref().unwrap().tokens.eot;
    let opts = WhisperOptions {
        threads: Some(2),
        ..Default::default()
    };
    let mut w = Whisper::new(&model, &opts).unwrap();
    let mel: Vec<f32> = (0..80 * w.window_frames())
        .map(|i| ((i * 7919) % 200) as f32 / 100.0 - 1.0)
        .collect();
    let params = SamplingParams {
        temperature: 0.7,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        ..SamplingParams::default()
    };
    let mut sampler = Sampler::new(params, &model);
    let mut dec = Decoder::new(&w, eot);
    let allocations = w.run_in_pool(|w| {
        let mut run = |w: &mut Whisper<'_>, tokens: usize| {
            w.encode(&mel).unwrap();
            let prompt = [301, 302, 306];
            let logits = w.decode(&prompt, 0).unwrap();
            dec.set_prompt_logits(logits);
            // The end of text is masked: every hypothesis runs the `tokens` steps.
            let no_end = |_: &[u32], row: &mut [f32]| row[eot as usize] = f32::NEG_INFINITY;
            let mut beam = Strategy::Beam {
                size: 5,
                patience: 1.0,
            };
            let steps = dec.run(w, &mut beam, 3, tokens, no_end).unwrap();
            assert_eq!((steps, dec.search.finished().len()), (tokens, 5));
            let mut sample = Strategy::Sample {
                candidates: 5,
                sampler: &mut sampler,
            };
            dec.run(w, &mut sample, 3, tokens, no_end).unwrap();
            assert_eq!(dec.search.finished().len(), 5);
        };
        for _ in 0..3 {
            run(w, 10);
        }
        let before = counting_alloc::allocations();
        run(w, 10);
        let short = counting_alloc::allocations() - before;
        let before = counting_alloc::allocations();
        run(w, 60);
        (short, counting_alloc::allocations() - before)
    });
    assert_eq!(
        allocations,
        (0, 0),
        "allocations of 10 and of 60 beam/sampling steps"
    );
}
