//! The embedding API in one program: open a packed encoder (e.g. all-MiniLM-L6-v2 converted
//! with `edgelm-convert`), embed a few sentences, rank them against a query by cosine, then
//! embed pre-tokenized batches with no allocation per batch.
//!
//!     cargo run --release --example embed -- MODEL.edgelm "a query" ["a document" ...]

use edgelm::embed::{EmbedOptions, Embedder, cosine};
use edgelm::model::Model;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(query)) = (args.next(), args.next()) else {
        return Err("usage: embed MODEL.edgelm QUERY [DOCUMENT...]".into());
    };
    let mut docs: Vec<String> = args.collect();
    if docs.is_empty() {
        docs = [
            "There is a cat resting on a rug.",
            "The weather forecast predicts heavy rain tomorrow.",
            "Rust guarantees memory safety without a garbage collector.",
        ]
        .map(String::from)
        .to_vec();
    }
    let model = Model::open(path.as_ref())?;
    let mut embedder = Embedder::new(&model, &EmbedOptions::default())?;
    println!(
        "{} dimensions, up to {} tokens per text, {} threads ({})",
        embedder.dim(),
        embedder.max_length(),
        embedder.threads(),
        embedder.isa()
    );

    // Texts in, one vector per text out (batched by length inside).
    let q = embedder.embed(&[&query])?;
    let d = embedder.embed(&docs)?;
    let mut ranked: Vec<(f32, &str)> = d
        .iter()
        .map(|v| cosine(q.get(0), v))
        .zip(docs.iter().map(|s| &s[..]))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (score, doc) in &ranked {
        println!("{score:.4}  {doc}");
    }

    // Token ids in, vectors out of the embedder's own buffer: one forward pass per batch,
    // no heap allocation once the embedder exists (run inside its pool to skip the hand-off).
    let ids = docs
        .iter()
        .map(|t| embedder.tokenize(t))
        .collect::<Result<Vec<_>, _>>()?;
    let dim = embedder.dim();
    let norms = embedder.run_in_pool(|e| {
        let vectors = e.embed_batch(&ids)?;
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Ok::<_, edgelm::embed::EmbedError>(vectors.chunks_exact(dim).map(norm).collect::<Vec<_>>())
    })?;
    println!("norms of the batch's vectors: {norms:?}");
    Ok(())
}
