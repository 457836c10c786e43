//! Models with seeded random weights at the shapes of real ones, for speed work without the
//! real weights.

use anyhow::{Result, bail};
use edgelm::format::meta::{
    Activation, Architecture, AttentionConfig, ModelConfig, NormKind, Rope, RopeLayout,
};
use rayon::prelude::*;

use super::{Data, Model, SourceKind, SrcTensor};
use crate::gguf::GgmlType;
use crate::plan::expected;
use edgelm::arch::Role;

/// The presets `--synthetic` accepts.
pub const PRESETS: [&str; 2] = ["tinyllama-1.1b", "smollm2-135m"];

/// Seeded uniform random values with a given mean and standard deviation.
#[derive(Clone, Debug)]
pub struct Fill {
    seed: u64,
    mean: f32,
    std: f32,
}

/// Values generated from one seed before the next is derived (keeps output independent of
/// the thread count).
const CHUNK: usize = 1 << 16;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Fill {
    /// `n` values as little-endian f32 bytes.
    pub fn generate(&self, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n * 4];
        // Uniform on [-a, a] has standard deviation a / sqrt(3).
        let a = self.std * 3f32.sqrt();
        out.par_chunks_mut(CHUNK * 4).enumerate().for_each(|(i, chunk)| {
            let mut state = self.seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f);
            for v in chunk.chunks_exact_mut(4) {
                let u = (splitmix(&mut state) >> 40) as f32 / (1u64 << 24) as f32;
                v.copy_from_slice(&(self.mean + a * (2.0 * u - 1.0)).to_le_bytes());
            }
        });
        out
    }
}

fn preset(name: &str) -> Result<ModelConfig> {
    let (vocab, hidden, ff, layers, heads, kv, context, theta, tied) = match name {
        "tinyllama-1.1b" => (32000, 2048, 5632, 22, 32, 4, 2048, 10_000.0, false),
        "smollm2-135m" => (49152, 576, 1536, 30, 9, 3, 8192, 100_000.0, true),
        other => bail!(
            "unknown synthetic preset {other:?} (known: {})",
            PRESETS.join(", ")
        ),
    };
    let head_dim = hidden / heads;
    Ok(ModelConfig {
        architecture: Architecture::Llama,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: ff,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv,
        head_dim,
        max_context: context,
        norm: NormKind::Rms,
        norm_eps: 1e-5,
        rope: Some(Rope {
            layout: RopeLayout::Neox,
            theta,
            dims: head_dim,
            scaling: None,
        }),
        activation: Activation::Silu,
        qkv_bias: false,
        attn_out_bias: false,
        mlp_bias: false,
        tied_embeddings: tied,
        type_vocab_size: 0,
        pooling: None,
        attention: AttentionConfig::default(),
        final_softcap: None,
        whisper: None,
    })
}

/// A random model of preset `name` whose vocabulary covers `tokenizer_vocab` tokens.
pub fn build(name: &str, tokenizer_vocab: usize, seed: u64) -> Result<Model> {
    let mut config = preset(name)?;
    let mut notes = Vec::new();
    if tokenizer_vocab > config.vocab_size {
        notes.push(format!(
            "vocabulary widened from the preset's {} to the tokenizer's {tokenizer_vocab}",
            config.vocab_size
        ));
        config.vocab_size = tokenizer_vocab;
    }
    let mut model = Model::new(
        config,
        SourceKind::Synthetic,
        format!("synthetic {name} (seed {seed})"),
    );
    model.name = Some(format!("synthetic-{name}"));
    model.warnings = notes;
    for (i, e) in expected(&model.config).into_iter().enumerate() {
        let (mean, std) = match e.role {
            Role::Float => (1.0, 0.02),
            _ => (0.0, 0.02),
        };
        let fill = Fill {
            seed: splitmix(&mut (seed ^ (i as u64) << 32)),
            mean,
            std,
        };
        let t = SrcTensor {
            native: e.name.clone(),
            shape: e.shape,
            ty: GgmlType::F32,
            data: Data::Random(fill),
        };
        model.insert(e.name, t)?;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_is_seeded_and_has_the_requested_moments() {
        let f = Fill {
            seed: 7,
            mean: 1.0,
            std: 0.5,
        };
        let bytes = f.generate(CHUNK * 3 + 5);
        assert_eq!(bytes, f.generate(CHUNK * 3 + 5));
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(
            (mean - 1.0).abs() < 0.01 && (var.sqrt() - 0.5).abs() < 0.01,
            "{mean} {var}"
        );
    }

    #[test]
    fn presets_have_real_shapes() {
        let m = build("tinyllama-1.1b", 100, 1).unwrap();
        assert_eq!(m.tensors["blk.21.attn_k.weight"].shape, [256, 2048]);
        assert_eq!(m.tensors["output.weight"].shape, [32000, 2048]);
        let m = build("smollm2-135m", 50000, 1).unwrap();
        assert_eq!(m.config.vocab_size, 50000);
        assert!(!m.tensors.contains_key("output.weight"));
        assert!(build("gpt-5", 1, 1).is_err());
    }
}
