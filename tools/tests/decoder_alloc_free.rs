//! Every decoder architecture feeds tokens without heap allocation once the session exists:
//! the tiny Gemma 3 (sliding-window and global layers, two RoPE tables, sandwich norms) and
//! Qwen3 (q/k norms) and Phi-3 (fused projections), over prompts and single tokens, well past
//! Gemma's window, with a context shift, on the f16 and f32 caches.

mod common;
#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use edgelm::kv_cache::KvType;
use edgelm::model::Model;
use edgelm::session::{Session, SessionOptions};

#[test]
fn feeding_tokens_costs_no_allocations() {
    for dir in ["tiny-gemma3", "tiny-qwen3", "tiny-phi3"] {
        let model = Model::from_packed(common::convert_path(&common::fixtures().join(dir), "q8_0")).unwrap();
        // (A q8 cache needs 32-value heads; these have 16.)
        for kv_type in [KvType::F16, KvType::F32] {
            let opts = SessionOptions {
                batch: 16,
                threads: Some(2),
                kv_type,
                ..Default::default()
            };
            let mut s = Session::new(&model, &opts).unwrap();
            let prompt: Vec<u32> = (3..40).collect();
            let allocations = s.run_in_pool(|s| {
                let run = |s: &mut Session<'_>| {
                    s.reset();
                    let mut next = edgelm::sampling::argmax(s.feed(&prompt).unwrap());
                    for _ in 0..40 {
                        next = edgelm::sampling::argmax(s.feed(&[next]).unwrap());
                    }
                    s.shift_context(4, 20);
                    s.feed(&[next]).unwrap();
                };
                // Warm up: what is measured is a repeat of a run that has been done.
                for _ in 0..3 {
                    run(s);
                }
                let before = counting_alloc::allocations();
                run(s);
                counting_alloc::allocations() - before
            });
            assert_eq!(allocations, 0, "{dir} with a {kv_type:?} cache");
        }
    }
}
