//! Encoding a window and decoding tokens perform no heap allocation once the Whisper runner
//! exists (the tiny random Whisper at q8_0 and f16, 2 threads).

mod common;
#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use edgelm::model::Model;
use edgelm::whisper::{Whisper, WhisperOptions};

#[test]
fn encoding_and_decoding_cost_no_allocations() {
    let dir = common::fixtures().join("tiny-whisper");
    // Converted first: the converter's own threads stay alive.
    let models = ["q8_0", "f16"].map(|q| (q, Model::from_packed(common::convert_path(&dir, q)).unwrap()));
    let threads_before = counting_alloc::live_threads();
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
            // Warm up: the pool's threads register lazily-initialised state the first times
            // they steal work.
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
        drop(w);
        counting_alloc::wait_for_threads(threads_before);
    }
}
