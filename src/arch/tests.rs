use super::*;
use crate::format::meta::{
    Activation, AttentionConfig, ModelConfig, NormKind, Rope, RopeLayout, RopeScaling,
};

fn config(arch: Architecture) -> ModelConfig {
    ModelConfig {
        architecture: arch,
        vocab_size: 400,
        hidden_size: 64,
        intermediate_size: 128,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 16,
        max_context: 256,
        norm: NormKind::Rms,
        norm_eps: 1e-6,
        rope: Some(Rope {
            layout: RopeLayout::Neox,
            theta: 1e4,
            dims: 16,
            scaling: None,
        }),
        activation: Activation::Silu,
        qkv_bias: false,
        attn_out_bias: false,
        mlp_bias: false,
        tied_embeddings: true,
        type_vocab_size: 0,
        pooling: None,
        attention: AttentionConfig::default(),
        final_softcap: None,
        whisper: None,
    }
}

#[test]
fn names_map_between_formats() {
    let cases = [
        (
            Architecture::Llama,
            "model.layers.12.self_attn.q_proj.weight",
            "blk.12.attn_q.weight",
        ),
        (
            Architecture::Qwen2,
            "model.layers.0.self_attn.k_proj.bias",
            "blk.0.attn_k.bias",
        ),
        (Architecture::Llama, "lm_head.weight", "output.weight"),
        (
            Architecture::Qwen3,
            "model.layers.1.self_attn.k_norm.weight",
            "blk.1.attn_k_norm.weight",
        ),
        (
            Architecture::Phi3,
            "model.layers.3.mlp.gate_up_proj.weight",
            "blk.3.ffn_gate_up.weight",
        ),
        (
            Architecture::Gemma3,
            "model.layers.2.post_attention_layernorm.weight",
            "blk.2.post_attention_norm.weight",
        ),
        (
            Architecture::Gemma3,
            "model.layers.2.pre_feedforward_layernorm.weight",
            "blk.2.ffn_norm.weight",
        ),
        (
            Architecture::Bert,
            "encoder.layer.5.output.LayerNorm.bias",
            "blk.5.layer_output_norm.bias",
        ),
        (
            Architecture::Bert,
            "bert.embeddings.token_type_embeddings.weight",
            "token_types.weight",
        ),
    ];
    for (arch, hf, packed) in cases {
        assert_eq!(def(arch).from_hf(hf).as_deref(), Some(packed), "{hf}");
    }
    assert_eq!(
        def(Architecture::Llama).from_hf("model.layers.x.mlp.up_proj.weight"),
        None
    );
    assert_eq!(
        def(Architecture::Llama).from_hf("model.layers.+1.mlp.up_proj.weight"),
        None
    );
    assert_eq!(
        def(Architecture::Llama).from_hf("model.layers.1.mlp.up_proj.scales"),
        None
    );
    // GGUF calls Phi-3's fused gate/up `ffn_up`.
    let phi3 = def(Architecture::Phi3);
    assert_eq!(
        phi3.from_gguf("blk.0.ffn_up.weight").as_deref(),
        Some("blk.0.ffn_gate_up.weight")
    );
    assert_eq!(
        phi3.from_gguf("blk.0.attn_qkv.weight").as_deref(),
        Some("blk.0.attn_qkv.weight")
    );
    assert_eq!(phi3.from_gguf("rope_factors_long.weight"), None);
}

#[test]
fn needed_tensors_follow_the_configuration() {
    let mut c = config(Architecture::Llama);
    let names = |c: &ModelConfig| {
        def(c.architecture)
            .needed(c)
            .into_iter()
            .map(|n| n.name)
            .collect::<Vec<_>>()
    };
    let tied = names(&c);
    assert_eq!(tied.len(), 1 + 2 * 9 + 1);
    assert!(!tied.contains(&"output.weight".to_owned()));
    c.tied_embeddings = false;
    c.qkv_bias = true;
    let untied = names(&c);
    assert!(untied.contains(&"output.weight".to_owned()));
    assert!(untied.contains(&"blk.1.attn_v.bias".to_owned()));
    let phi3 = def(Architecture::Phi3).needed(&config(Architecture::Phi3));
    let qkv = phi3.iter().find(|n| n.name == "blk.0.attn_qkv.weight").unwrap();
    assert_eq!(qkv.shape, [(4 + 2 * 2) * 16, 64]);
    let gate_up = phi3
        .iter()
        .find(|n| n.name == "blk.0.ffn_gate_up.weight")
        .unwrap();
    assert_eq!(
        (gate_up.gguf.as_str(), gate_up.shape.as_slice()),
        ("blk.0.ffn_up.weight", &[256, 64][..])
    );
    let gemma = def(Architecture::Gemma3).needed(&config(Architecture::Gemma3));
    let q_norm = gemma
        .iter()
        .find(|n| n.name == "blk.0.attn_q_norm.weight")
        .unwrap();
    assert!(q_norm.hf_plus_one && q_norm.shape == [16]);
    let q = gemma.iter().find(|n| n.name == "blk.0.attn_q.weight").unwrap();
    assert_eq!(q.fused.as_deref(), Some("blk.0.attn_qkv.weight"));
    assert_eq!(def(Architecture::Gemma3).parts("attn_qkv").len(), 3);
    assert_eq!(def(Architecture::Phi3).parts("attn_qkv").len(), 1);
}

#[test]
fn every_table_is_consistent() {
    for arch in Architecture::ALL {
        let d = def(arch);
        assert_eq!(d.arch, arch);
        assert_eq!(from_hf_model_type(d.hf_model_types[0]), Some(arch));
        let mut c = config(arch);
        c.tied_embeddings = false;
        c.type_vocab_size = 2;
        let needed = d.needed(&c);
        for n in &needed {
            assert_eq!(
                d.from_hf(&n.hf).as_deref(),
                Some(n.name.as_str()),
                "{arch:?} {}",
                n.hf
            );
            assert_eq!(
                d.from_gguf(&n.gguf).as_deref(),
                Some(n.name.as_str()),
                "{arch:?} {}",
                n.gguf
            );
        }
        let mut names: Vec<_> = needed.iter().map(|n| &n.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), needed.len(), "{arch:?} names a tensor twice");
    }
}

#[test]
fn validation_names_the_problem() {
    let ok = config(Architecture::Llama);
    validate(&ok).unwrap();
    let err = |f: &dyn Fn(&mut ModelConfig)| {
        let mut c = ok.clone();
        f(&mut c);
        validate(&c).unwrap_err().0
    };
    assert!(err(&|c| c.num_layers = 1 << 40).contains("layer count 1099511627776 is out of range"));
    assert!(err(&|c| c.num_kv_heads = 3).contains("cannot be shared"));
    assert!(err(&|c| c.hidden_size = 48).contains("not a multiple of 32"));
    assert!(err(&|c| c.norm_eps = f32::NAN).contains("epsilon"));
    assert!(err(&|c| c.attention.scale = Some(-1.0)).contains("attention scale"));
    assert!(
        err(&|c| c.attention.sliding_layers = vec![true])
            .contains("1 sliding-window layer flags for 2 layers")
    );
    assert!(err(&|c| c.rope = None).contains("rotary"));
    let scaled = |scaling| move |c: &mut ModelConfig| c.rope.as_mut().unwrap().scaling = Some(scaling);
    let llama3 = |factor, low_freq_factor, high_freq_factor, original_max_position| {
        scaled(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position,
        })
    };
    let linear = |factor| scaled(RopeScaling::Linear { factor });
    for (f, message) in [
        (linear(f32::INFINITY), "RoPE scaling factor inf is not a finite"),
        (linear(0.0), "RoPE scaling factor 0 is not a finite"),
        (llama3(f32::INFINITY, 1.0, 4.0, 64), "factor inf"),
        (llama3(8.0, 1.0, f32::INFINITY, 64), "low 1 and high inf"),
        (llama3(8.0, 0.0, 4.0, 64), "low 0 and high 4"),
        (llama3(8.0, 4.0, 4.0, 64), "low 4 and high 4"),
        (llama3(8.0, 1.0, 4.0, 0), "original context is 0"),
    ] {
        let e = err(&f);
        assert!(e.contains(message), "{e}");
    }
    let mut c = ok.clone();
    llama3(8.0, 1.0, 4.0, 64)(&mut c);
    validate(&c).unwrap();
    assert!(err(&|c| c.final_softcap = Some(f32::INFINITY)).contains("soft-capping"));
}
