//! `edgelm inspect FILE`: what a packed file holds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use edgelm::format::PackedFile;
use edgelm::format::meta::{Metadata, TokenizerSpec, tok_tensor};
use edgelm::format::spec::VERSION;
use edgelm::kv_cache::KvType;

/// Arguments of `edgelm inspect`.
#[derive(clap::Args)]
pub struct InspectArgs {
    /// The packed model file.
    pub file: PathBuf,
    /// Also check every tensor's data against its checksum (reads the whole file).
    #[arg(long)]
    pub verify: bool,
}

/// Prints the file's summary.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let file = super::common::open(&args.file)?;
    let mut text = summary(&file);
    kernels(&mut text);
    if args.verify {
        file.verify_data()?;
        let _ = writeln!(
            text,
            "verify: all {} tensor checksums match",
            file.tensors().len()
        );
    }
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// The kernel path `run` would use on this CPU (honouring `EDGELM_ISA`) and the paths it has:
/// one binary per architecture picks its kernels at run time, so this line is per machine, not
/// per file (targets/release.sh checks it under several qemu CPU models).
fn kernels(s: &mut String) {
    use edgelm::kernels::Kernels;
    let available = Kernels::available();
    let env = std::env::var("EDGELM_ISA").ok();
    let _ = match Kernels::select(env.as_deref()) {
        Ok(k) => writeln!(s, "kernels: {} on this CPU (available: {available})", k.isa),
        Err(e) => writeln!(s, "kernels: EDGELM_ISA: {e}"),
    };
}

/// The text `edgelm inspect` prints.
pub fn summary(file: &PackedFile) -> String {
    let mut s = String::new();
    let meta = file.meta();
    let _ = writeln!(
        s,
        "format: edgelm packed file, version {VERSION}, {} bytes",
        file.file_size()
    );
    source(&mut s, meta);
    config(&mut s, meta);
    tokenizer(&mut s, file, &meta.tokenizer);
    let _ = writeln!(
        s,
        "chat template: {}",
        meta.chat_template
            .as_ref()
            .map_or("none".into(), |t| format!("{} characters", t.chars().count()))
    );
    memory(&mut s, file);
    tensors(&mut s, file);
    s
}

/// What running the model takes: the mapped file, and the KV cache per token of context
/// (`run`/`chat` fail with an error, not an abort, where it is not there).
fn memory(s: &mut String, file: &PackedFile) {
    let c = &file.meta().config;
    if c.rope.is_none() {
        return;
    }
    let values = 2 * c.num_layers * c.num_kv_heads * c.head_dim;
    let [f32, f16, q8] = [KvType::F32, KvType::F16, KvType::Q8].map(|k| k.bytes_for(values));
    let _ = writeln!(
        s,
        "memory: the file mapped ({} bytes); KV cache {f16} bytes per token of context (--kv f16), \
{q8} (q8), {f32} (f32); at the full context of {}: {} bytes (f16)",
        file.file_size(),
        c.max_context,
        f16 * c.max_context
    );
}

fn source(s: &mut String, meta: &Metadata) {
    let src = &meta.source;
    let _ = writeln!(
        s,
        "source: {} (by {}, requested {})",
        src.source, src.converter, src.quant
    );
    if let Some(name) = &src.name {
        let _ = writeln!(s, "name: {name}");
    }
}

fn config(s: &mut String, meta: &Metadata) {
    let c = &meta.config;
    let _ = writeln!(s, "config:");
    let _ = writeln!(
        s,
        "  architecture {}, {} layers, hidden {}, intermediate {}, vocab {}, context {}",
        c.architecture.name(),
        c.num_layers,
        c.hidden_size,
        c.intermediate_size,
        c.vocab_size,
        c.max_context
    );
    let _ = writeln!(
        s,
        "  heads {} (kv {}) of dim {}, norm {:?} eps {:e}, activation {:?}",
        c.num_heads, c.num_kv_heads, c.head_dim, c.norm, c.norm_eps, c.activation
    );
    match &c.rope {
        Some(r) => {
            let scaling = r.scaling.map_or("none".into(), |sc| format!("{sc:?}"));
            let _ = writeln!(
                s,
                "  rope {:?}, theta {}, {} dims, scaling {scaling}",
                r.layout, r.theta, r.dims
            );
        }
        None => {
            let _ = writeln!(s, "  learned positions, {} token types", c.type_vocab_size);
        }
    }
    let a = &c.attention;
    if let Some(window) = a.window {
        let sliding = (0..c.num_layers).filter(|&l| a.window_of(l).is_some()).count();
        let local = a
            .local_rope
            .map_or(String::new(), |r| format!(", their rope theta {}", r.theta));
        let _ = writeln!(
            s,
            "  sliding window {window} on {sliding} of {} layers{local}",
            c.num_layers
        );
    }
    let caps = [
        ("attention scale", a.scale),
        ("attention soft-cap", a.softcap),
        ("logit soft-cap", c.final_softcap),
    ];
    for (what, v) in caps {
        if let Some(v) = v {
            let _ = writeln!(s, "  {what} {v}");
        }
    }
    let _ = writeln!(
        s,
        "  biases: qkv {}, attn out {}, mlp {}; tied embeddings {}{}",
        c.qkv_bias,
        c.attn_out_bias,
        c.mlp_bias,
        c.tied_embeddings,
        c.pooling.map_or(String::new(), |p| format!(
            "; pooling {:?}{}",
            p.mode,
            if p.normalize { " normalized" } else { "" }
        ))
    );
}

/// The text of token `id`, from the vocabulary tensors, for display.
fn token_text(file: &PackedFile, id: u32) -> Option<String> {
    let vocab = file.get(tok_tensor::VOCAB)?.u8s().ok()?;
    let offsets = file.get(tok_tensor::VOCAB_OFFSETS)?.u32s().ok()?;
    let (start, end) = (
        *offsets.get(id as usize)? as usize,
        *offsets.get(id as usize + 1)? as usize,
    );
    Some(String::from_utf8_lossy(vocab.get(start..end)?).into_owned())
}

fn tokenizer(s: &mut String, file: &PackedFile, t: &TokenizerSpec) {
    let _ = writeln!(s, "tokenizer: {:?}, {} tokens", t.model, t.vocab_size);
    let special = |id: Option<u32>| match id {
        Some(id) => format!("{id} {:?}", token_text(file, id).unwrap_or_default()),
        None => "none".into(),
    };
    let _ = writeln!(
        s,
        "  bos {}, eos {}, unk {}, pad {}; add bos {}, add eos {}",
        special(t.bos),
        special(t.eos),
        special(t.unk),
        special(t.pad),
        t.add_bos,
        t.add_eos
    );
    let stops: Vec<String> = t.stop_tokens.iter().map(|&id| special(Some(id))).collect();
    let stops = if stops.is_empty() {
        "none".into()
    } else {
        stops.join(", ")
    };
    let _ = writeln!(s, "  stop tokens: {stops}");
    let steps: Vec<String> = t
        .pre_tokenizer
        .iter()
        .map(|p| {
            let text = format!("{p:?}");
            if text.chars().count() > 60 {
                format!("{}...", text.chars().take(57).collect::<String>())
            } else {
                text
            }
        })
        .collect();
    let _ = writeln!(
        s,
        "  pre-tokenizer: {}",
        if steps.is_empty() {
            "none".into()
        } else {
            steps.join("; ")
        }
    );
    let flags = match serde_json::to_value(&t.normalizer) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| *v == true)
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    };
    let _ = writeln!(
        s,
        "  normalizer: {}",
        if flags.is_empty() {
            "none".into()
        } else {
            flags.join(", ")
        }
    );
    if let Some(n) = t.max_length {
        let _ = writeln!(s, "  max length: {n}");
    }
}

fn tensors(s: &mut String, file: &PackedFile) {
    let _ = writeln!(s, "tensors:");
    let _ = writeln!(
        s,
        "  {:<34} {:<5} {:<9} {:>16} {:>12}",
        "name", "type", "layout", "shape", "bytes"
    );
    let mut by_type: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    let (mut weights, mut weight_bytes) = (0u64, 0u64);
    for t in file.tensors() {
        let shape = format!("{:?}", t.shape);
        let bytes = t.range.len() as u64;
        let _ = writeln!(
            s,
            "  {:<34} {:<5} {:<9} {shape:>16} {bytes:>12}",
            t.name,
            t.dtype.name(),
            t.layout.name()
        );
        let e = by_type.entry(t.dtype.name()).or_default();
        *e = (e.0 + 1, e.1 + t.numel(), e.2 + bytes);
        if !t.name.starts_with("tokenizer.") {
            weights += t.numel();
            weight_bytes += bytes;
        }
    }
    let _ = writeln!(s, "totals:");
    for (name, (n, numel, bytes)) in &by_type {
        let _ = writeln!(
            s,
            "  {name:<5} {n:>5} tensors {numel:>13} values {bytes:>13} bytes"
        );
    }
    let bpw = weight_bytes as f64 * 8.0 / weights.max(1) as f64;
    let _ = writeln!(
        s,
        "  model weights: {weights} in {weight_bytes} bytes, {bpw:.3} bits per weight"
    );
}
