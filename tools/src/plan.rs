//! What the packed file will hold: the tensors a configuration needs (under llama.cpp's
//! names), their target types, and which source tensors each is made of (q/k/v and gate/up
//! are fused when their types agree; Q/K rows of GGUF Llama models are un-permuted).

use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use edgelm::arch::{self, Needed, Role};
use edgelm::format::meta::ModelConfig;
use edgelm::format::{DType, Layout, TensorPlan};
use edgelm_kernels::layout::{QK, QK_K};

use crate::calibrate::Importance;
use crate::dequant;
use crate::gguf::GgmlType;
use crate::source::{Model, SourceKind, gguf_model};
use crate::transcode;

pub mod mix;

pub use mix::Mix;

/// A requested storage type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This type.
    Type(DType),
    /// The source's own type if edgelm stores it (q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k,
    /// q5_k, q6_k, f16, f32; the quantized ones bit for bit); anything else (bf16) as q8_0.
    Keep,
    /// A K-quant mix: each tensor quantized into the GGUF type llama.cpp's rule of that name
    /// gives it ([`mix::tensor_type`]).
    Mix(Mix),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Target, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "q8_0" | "q8" => Target::Type(DType::Q8_0),
            "q4_0" | "q4" => Target::Type(DType::Q4_0),
            "q4_1" => Target::Type(DType::Q4_1),
            "f16" => Target::Type(DType::F16),
            "f32" => Target::Type(DType::F32),
            "keep" => Target::Keep,
            other => match other.parse() {
                Ok(mix) => Target::Mix(mix),
                Err(()) => {
                    return Err(format!(
                        "unknown type {other:?} (q8_0, q8, q4_0, q4, q4_1, f16, f32, keep, q4_k_m, q5_k_m, q6_k)"
                    ));
                }
            },
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Type(t) => write!(f, "{t}"),
            Target::Keep => f.write_str("keep"),
            Target::Mix(m) => write!(f, "{m}"),
        }
    }
}

/// Conversion choices.
#[derive(Clone, Debug)]
pub struct Options {
    /// Type of the matrix weights.
    pub quant: Target,
    /// Type of the embedding tables and output head (default: q8_0 under q4_*, else `quant`).
    pub embed: Option<Target>,
    /// Per-column importance of the matrices (from [`crate::calibrate`]), weighting the
    /// quantization error of the K-quant mixes.
    pub importance: Option<Arc<Importance>>,
    /// Whether `importance` was measured by calibration (not estimated from the weights).
    pub calibrated: bool,
    /// Store a mix's quantized values decoded to f32 (their quality, measured apart from the
    /// kernels that run them).
    pub simulate: bool,
    /// Per-tensor types that override the others: the first whose pattern is part of a
    /// tensor's packed name (`blk.3.cross_k`, `token_embd`) gives its type.
    pub tensor_types: Vec<TensorType>,
}

/// One `--tensor-type PATTERN=TYPE`: the tensors whose packed name contains `pattern` are
/// stored as `target`.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    /// Part of a packed tensor name.
    pub pattern: String,
    /// Their type.
    pub target: Target,
}

impl FromStr for TensorType {
    type Err = String;

    fn from_str(s: &str) -> Result<TensorType, String> {
        let (pattern, ty) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not PATTERN=TYPE (e.g. cross_k=f16)"))?;
        if pattern.is_empty() {
            return Err(format!("{s:?}: the pattern before '=' is empty"));
        }
        let target = ty.parse()?;
        if matches!(target, Target::Mix(_)) {
            return Err(format!("{s:?}: a tensor gets one type, not a mix"));
        }
        Ok(TensorType {
            pattern: pattern.to_string(),
            target,
        })
    }
}

/// The type `--tensor-type` gives the tensor `name`, if any.
fn tensor_type(name: &str, o: &Options) -> Option<Target> {
    o.tensor_types
        .iter()
        .find(|t| name.contains(&t.pattern))
        .map(|t| t.target)
}

impl Default for Options {
    /// q8_0 matrices, the default embedding type, no importance.
    fn default() -> Self {
        Options {
            quant: Target::Type(DType::Q8_0),
            embed: None,
            importance: None,
            calibrated: false,
            simulate: false,
            tensor_types: Vec::new(),
        }
    }
}

/// The source tensors a configuration needs, in file order.
pub fn expected(c: &ModelConfig) -> Vec<Needed> {
    arch::def(c.architecture).needed(c)
}

/// One source tensor inside an output tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Source name (the packed name of the tensor alone).
    pub name: String,
    /// Undo llama.cpp's RoPE row permutation for this many heads.
    pub unpermute_heads: Option<usize>,
    /// Add 1 to every value (a Hugging Face `(1 + w)` norm weight).
    pub plus_one: bool,
    /// The GGUF block type a mix quantizes it into.
    pub quant: Option<GgmlType>,
}

/// One tensor of the packed file and what it is made of (parts stacked along rows).
#[derive(Clone, Debug, PartialEq)]
pub struct OutTensor {
    /// Name, type, layout and shape.
    pub plan: TensorPlan,
    /// Source tensors, in row order.
    pub parts: Vec<Part>,
}

/// The model tensors of the packed file, and notes for the report.
#[derive(Clone, Debug)]
pub struct Plan {
    /// In file order.
    pub tensors: Vec<OutTensor>,
    /// Fallbacks and ignored source tensors.
    pub warnings: Vec<String>,
}

/// The GGML type that holds exactly the values of a packed type.
pub fn ggml_equivalent(d: DType) -> Option<GgmlType> {
    Some(match d {
        DType::F32 => GgmlType::F32,
        DType::F16 => GgmlType::F16,
        DType::BF16 => GgmlType::BF16,
        DType::Q8_0 => GgmlType::Q8_0,
        DType::Q4_0 => GgmlType::Q4_0,
        DType::Q4_1 => GgmlType::Q4_1,
        DType::Q5_0 => GgmlType::Q5_0,
        DType::Q5_1 => GgmlType::Q5_1,
        DType::Q4K => GgmlType::Q4K,
        DType::Q5K => GgmlType::Q5K,
        DType::Q6K => GgmlType::Q6K,
        DType::Q3K => GgmlType::Q3K,
        DType::Q2K => GgmlType::Q2K,
        DType::U8 | DType::U32 => return None,
    })
}

/// The packed type that holds exactly the values of a GGML type.
fn packed_equivalent(ty: GgmlType) -> Option<DType> {
    DType::ALL
        .into_iter()
        .filter(|&d| d != DType::BF16)
        .find(|&d| ggml_equivalent(d) == Some(ty))
}

fn resolve(target: Target, src: GgmlType) -> DType {
    match target {
        Target::Type(t) => t,
        // Mixes are resolved per tensor by `mix_dtype`.
        Target::Mix(_) => DType::F32,
        Target::Keep => packed_equivalent(src)
            .or(transcode::target(src))
            .unwrap_or(DType::Q8_0),
    }
}

/// The stored type of a tensor a mix quantizes into `ty`: f32 when simulating, else the
/// packed type that runs it.
fn mix_dtype(e: &Needed, ty: GgmlType, o: &Options) -> Result<DType> {
    if o.simulate {
        return Ok(DType::F32);
    }
    packed_equivalent(ty).with_context(|| {
        format!(
            "{} would be {ty}, which the runtime cannot run yet; --simulate stores the mix decoded to f32",
            e.name
        )
    })
}

/// The GGUF type a mix gives a quantized tensor, if it has whole blocks of it.
fn mix_type(e: &Needed, c: &ModelConfig, o: &Options) -> Option<GgmlType> {
    let Target::Mix(mix) = o.quant else { return None };
    let overridden = tensor_type(&e.name, o).is_some();
    if e.role == Role::Float || (e.role == Role::Embedding && o.embed.is_some()) || overridden {
        return None;
    }
    let cols = e.shape[e.shape.len() - 1] as usize;
    let ty = mix::tensor_type(mix, &e.name, cols, c.num_layers, c.tied_embeddings);
    let per_block = ty.block().map_or(1, |b| b.0 as usize);
    cols.is_multiple_of(per_block).then_some(ty)
}

/// Type of one tensor, and whether it fell back to f16 for want of whole blocks.
fn dtype_for(e: &Needed, src: GgmlType, o: &Options) -> (DType, bool) {
    let want = match (e.role, tensor_type(&e.name, o)) {
        (Role::Float, _) => return (DType::F32, false),
        (_, Some(t)) => resolve(t, src),
        (Role::Matmul, None) if matches!(o.quant, Target::Mix(_)) => return (DType::F16, true),
        (Role::Matmul, None) => resolve(o.quant, src),
        (Role::Embedding, None) => match (o.embed, o.quant) {
            (Some(t), _) => resolve(t, src),
            (None, Target::Type(DType::Q4_0 | DType::Q4_1)) => DType::Q8_0,
            (None, Target::Mix(_)) => return (DType::F16, true),
            (None, q) => resolve(q, src),
        },
    };
    if want.is_quantized() && !e.shape[e.shape.len() - 1].is_multiple_of(want.block_values() as u64) {
        (DType::F16, true)
    } else {
        (want, false)
    }
}

/// A needed tensor's name, with the source's own name where it differs, for messages.
fn source_name(model: &Model, e: &Needed) -> String {
    let native = match model.kind {
        SourceKind::HuggingFace => &e.hf,
        _ => &e.gguf,
    };
    if *native == e.name {
        e.name.clone()
    } else {
        format!("{} ({native})", e.name)
    }
}

/// Plans the model tensors of the packed file.
pub fn plan(model: &Model, o: &Options) -> Result<Plan> {
    let c = &model.config;
    arch::validate(c)?;
    let wanted = expected(c);
    let mut dtypes = Vec::with_capacity(wanted.len());
    let mut quants = Vec::with_capacity(wanted.len());
    let mut fallbacks = Vec::new();
    for e in &wanted {
        let Some(src) = model.tensors.get(&e.name) else {
            let why = model
                .skipped
                .iter()
                .find(|(s, _)| *s == e.hf)
                .map_or(String::new(), |(_, why)| format!(": {why}"));
            bail!("missing tensor {}{why}", source_name(model, e));
        };
        ensure!(
            src.shape == e.shape,
            "tensor {} has shape {:?}, expected {:?} for this configuration",
            source_name(model, e),
            src.shape,
            e.shape
        );
        ensure!(
            dequant::is_supported(src.ty),
            "tensor {} has type {}, which edgelm-convert cannot read",
            source_name(model, e),
            src.ty
        );
        let quant = mix_type(e, c, o);
        let (dtype, fell_back) = match quant {
            Some(ty) => (mix_dtype(e, ty, o)?, false),
            None => dtype_for(e, src.ty, o),
        };
        quants.push(quant);
        if fell_back {
            fallbacks.push(e.name.clone());
        }
        dtypes.push(dtype);
    }
    // A group is stored fused when its weights all get one type (its biases follow).
    let fuses = |group: &str| {
        let weights = group.replace(".bias", ".weight");
        let mut types = wanted
            .iter()
            .zip(&dtypes)
            .filter(|(e, _)| e.fused.as_deref() == Some(weights.as_str()))
            .map(|(_, d)| d);
        types.next().is_some_and(|first| types.all(|d| d == first))
    };
    let permuted = model.kind == SourceKind::Gguf && arch::def(c.architecture).gguf_rope_permuted;
    let heads = |name: &str| match name.split('.').nth(2) {
        Some("attn_q") if permuted => Some(c.num_heads),
        Some("attn_k") if permuted => Some(c.num_kv_heads),
        _ => None,
    };
    let plus_one = model.kind == SourceKind::HuggingFace;
    let mut consumed = BTreeSet::new();
    let mut tensors = Vec::new();
    for (e, &dtype) in wanted.iter().zip(&dtypes) {
        if consumed.contains(&e.name) {
            continue;
        }
        let (out_name, members): (String, Vec<&Needed>) = match &e.fused {
            Some(group) if fuses(group) => (
                group.clone(),
                wanted
                    .iter()
                    .filter(|w| w.fused.as_ref() == Some(group))
                    .collect(),
            ),
            _ => (e.name.clone(), vec![e]),
        };
        let mut shape = e.shape.clone();
        shape[0] = 0;
        for m in &members {
            ensure!(
                m.shape[1..] == e.shape[1..],
                "{} cannot be stacked with {}",
                m.name,
                e.name
            );
            shape[0] += m.shape[0];
            consumed.insert(m.name.clone());
        }
        let layout = if dtype.is_quantized() {
            Layout::Tiled8
        } else {
            Layout::RowMajor
        };
        let quant_of = |name: &str| wanted.iter().position(|w| w.name == name).and_then(|i| quants[i]);
        tensors.push(OutTensor {
            plan: TensorPlan {
                name: out_name,
                dtype,
                layout,
                shape,
            },
            parts: members
                .into_iter()
                .map(|m| Part {
                    unpermute_heads: heads(&m.name),
                    plus_one: plus_one && m.hf_plus_one,
                    quant: quant_of(&m.name),
                    name: m.name.clone(),
                })
                .collect(),
        });
    }
    let mut warnings = model.warnings.clone();
    if !fallbacks.is_empty() {
        warnings.push(format!(
            "{} tensor(s) have a column count that is not a multiple of their type's block ({QK} or {QK_K}) and are stored as f16: {}",
            fallbacks.len(),
            abbreviate(&fallbacks)
        ));
    }
    consumed.insert(gguf_model::ROPE_FREQS.into());
    if c.tied_embeddings {
        consumed.insert("output.weight".into());
    }
    let unused: Vec<String> = model
        .tensors
        .iter()
        .filter(|(name, _)| !consumed.contains(*name))
        .map(|(_, t)| t.native.clone())
        .chain(model.skipped.iter().map(|(n, _)| n.clone()))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "ignored {} source tensor(s): {}",
            unused.len(),
            abbreviate(&unused)
        ));
    }
    Ok(Plan { tensors, warnings })
}

/// The first few names of a list, and how many more.
fn abbreviate(names: &[String]) -> String {
    let shown = names.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
    match names.len() {
        n if n > 4 => format!("{shown} and {} more", n - 4),
        _ => shown,
    }
}

/// Source row of output row `r` when undoing llama.cpp's permutation of a Q or K matrix of
/// `rows` rows in `heads` heads: within a head, llama.cpp stores row `a * half + b` (rotate-half
/// order) at `2 * b + a` (interleaved order).
pub fn unpermuted_row(r: usize, rows: usize, heads: usize) -> usize {
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let (h, i) = (r / head_dim, r % head_dim);
    let (a, b) = (i / half, i % half);
    h * head_dim + 2 * b + a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() {
        // llama.cpp: w.reshape(heads, 2, head_dim / 2, cols).swapaxes(1, 2).reshape(w.shape)
        let (heads, head_dim) = (3, 8);
        let rows = heads * head_dim;
        let permuted: Vec<usize> = (0..rows)
            .map(|r| {
                let (h, i) = (r / head_dim, r % head_dim);
                let (b, a) = (i / 2, i % 2); // position (b, a) after the swap holds (a, b)
                h * head_dim + a * (head_dim / 2) + b
            })
            .collect();
        for r in 0..rows {
            assert_eq!(permuted[unpermuted_row(r, rows, heads)], r);
        }
    }

    #[test]
    fn targets_parse_and_resolve() {
        assert_eq!("q4".parse(), Ok(Target::Type(DType::Q4_0)));
        assert_eq!("Q8_0".parse(), Ok(Target::Type(DType::Q8_0)));
        assert!("q5_k".parse::<Target>().is_err());
        assert_eq!(resolve(Target::Keep, GgmlType::Q4_1), DType::Q4_1);
        assert_eq!(resolve(Target::Keep, GgmlType::Q6K), DType::Q6K);
        assert_eq!(resolve(Target::Keep, GgmlType::Q4K), DType::Q4K);
        assert_eq!(resolve(Target::Keep, GgmlType::Q5K), DType::Q5K);
        assert_eq!(resolve(Target::Keep, GgmlType::Q5_0), DType::Q5_0);
        assert_eq!(resolve(Target::Keep, GgmlType::Q5_1), DType::Q5_1);
        assert_eq!(resolve(Target::Keep, GgmlType::Q3K), DType::Q3K);
        assert_eq!(resolve(Target::Keep, GgmlType::Q2K), DType::Q2K);
        assert_eq!(resolve(Target::Keep, GgmlType::BF16), DType::Q8_0);
        let o = Options {
            quant: Target::Type(DType::Q4_0),
            ..Options::default()
        };
        let e = |role, cols| Needed {
            name: "x".into(),
            gguf: "x".into(),
            hf: "x".into(),
            shape: vec![8, cols],
            role,
            fused: None,
            hf_plus_one: false,
        };
        assert_eq!(
            dtype_for(&e(Role::Embedding, 64), GgmlType::F32, &o),
            (DType::Q8_0, false)
        );
        assert_eq!(
            dtype_for(&e(Role::Matmul, 64), GgmlType::F32, &o),
            (DType::Q4_0, false)
        );
        assert_eq!(
            dtype_for(&e(Role::Matmul, 48), GgmlType::F32, &o),
            (DType::F16, true)
        );
        assert_eq!(
            dtype_for(&e(Role::Float, 64), GgmlType::Q4_0, &o),
            (DType::F32, false)
        );
    }

    /// `--tensor-type` overrides --quant and --embed-type for the names it matches (the first
    /// match wins), never a float tensor; malformed specs are refused.
    #[test]
    fn tensor_types_override_by_name() {
        let o = Options {
            tensor_types: vec![
                "cross_k=f16".parse().unwrap(),
                "cross_=q4_0".parse().unwrap(),
                "token_embd=f32".parse().unwrap(),
            ],
            ..Options::default()
        };
        let e = |name: &str, role| Needed {
            name: name.into(),
            gguf: name.into(),
            hf: name.into(),
            shape: vec![8, 64],
            role,
            fused: None,
            hf_plus_one: false,
        };
        let ty = |name: &str, role| dtype_for(&e(name, role), GgmlType::F16, &o).0;
        assert_eq!(ty("blk.0.cross_k.weight", Role::Matmul), DType::F16);
        assert_eq!(ty("blk.0.cross_v.weight", Role::Matmul), DType::Q4_0);
        assert_eq!(ty("blk.0.attn_k.weight", Role::Matmul), DType::Q8_0);
        assert_eq!(ty("token_embd.weight", Role::Embedding), DType::F32);
        assert_eq!(ty("blk.0.cross_k.bias", Role::Float), DType::F32);
        for bad in ["cross_k", "=f16", "cross_k=q9", "cross_k=q4_k_m"] {
            assert!(bad.parse::<TensorType>().is_err(), "{bad}");
        }
    }
}
