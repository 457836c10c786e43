//! K-quant mixes: the GGUF block type of each tensor under llama.cpp's Q4_K_M, Q5_K_M and Q6_K
//! rules (`llama_tensor_get_type` in llama.cpp's `src/llama-quant.cpp`), so that a mix made here
//! has exactly the bits per weight of llama-quantize's file of the same name.

use std::str::FromStr;

use crate::gguf::GgmlType;
use crate::quantize::kquant::QK_K;

/// A mix preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Q4_K, with Q6_K for the output head and for a third of the `attn_v` and `ffn_down`
    /// layers (the first and last eighth and every third in between).
    Q4KM,
    /// Q5_K, with Q6_K where Q4_K_M has it.
    Q5KM,
    /// Q6_K everywhere.
    Q6K,
}

impl FromStr for Mix {
    type Err = ();

    fn from_str(s: &str) -> Result<Mix, ()> {
        match s {
            "q4_k_m" => Ok(Mix::Q4KM),
            "q5_k_m" => Ok(Mix::Q5KM),
            "q6_k" => Ok(Mix::Q6K),
            _ => Err(()),
        }
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mix::Q4KM => "q4_k_m",
            Mix::Q5KM => "q5_k_m",
            Mix::Q6K => "q6_k",
        })
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third one
/// in between.
fn use_more_bits(layer: usize, layers: usize) -> bool {
    let (l, n) = (layer as i64, layers as i64);
    l < n / 8 || l >= 7 * n / 8 || (l - n / 8) % 3 == 2
}

/// The type of tensor `name` (a packed, i.e. llama.cpp, name) with `cols` columns in a model
/// of `layers` blocks whose output head is `tied` to the embedding table.
pub fn tensor_type(mix: Mix, name: &str, cols: usize, layers: usize, tied: bool) -> GgmlType {
    let base = match mix {
        Mix::Q4KM => GgmlType::Q4K,
        Mix::Q5KM => GgmlType::Q5K,
        Mix::Q6K => GgmlType::Q6K,
    };
    let mut parts = name.split('.');
    let (first, layer, kind) = (parts.next(), parts.next(), parts.next());
    let layer = layer.and_then(|l| l.parse::<usize>().ok());
    let more = |l: Option<usize>| mix != Mix::Q6K && l.is_some_and(|l| use_more_bits(l, layers));
    let ty = match (first, kind) {
        // The output head (and a tied embedding table, which is the head): Q6_K, or Q8_0 where
        // the rows are not whole super-blocks.
        (Some("output"), _) => return head(cols),
        (Some("token_embd"), _) if tied => return head(cols),
        (Some("blk"), Some("attn_v" | "ffn_down")) if more(layer) => GgmlType::Q6K,
        _ => base,
    };
    fallback(ty, cols)
}

fn head(cols: usize) -> GgmlType {
    if cols.is_multiple_of(QK_K) {
        GgmlType::Q6K
    } else {
        GgmlType::Q8_0
    }
}

/// llama.cpp's `tensor_type_fallback`: a K type for rows that are not whole super-blocks
/// becomes the 32-value type of about the same size.
fn fallback(ty: GgmlType, cols: usize) -> GgmlType {
    if cols.is_multiple_of(QK_K) {
        return ty;
    }
    match ty {
        GgmlType::Q4K => GgmlType::Q5_0,
        GgmlType::Q5K => GgmlType::Q5_1,
        _ => GgmlType::Q8_0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-135M (30 layers, hidden 576, ff 1536, tied head) under Q4_K_M: the types
    /// llama-quantize gave it (its log, `benches/quality.sh`).
    #[test]
    fn smollm2_q4_k_m_types() {
        let t = |name: &str, cols| tensor_type(Mix::Q4KM, name, cols, 30, true);
        assert_eq!(t("token_embd.weight", 576), GgmlType::Q8_0);
        assert_eq!(t("blk.0.attn_q.weight", 576), GgmlType::Q5_0);
        assert_eq!(t("blk.0.attn_v.weight", 576), GgmlType::Q8_0);
        assert_eq!(t("blk.4.attn_v.weight", 576), GgmlType::Q5_0);
        assert_eq!(t("blk.5.attn_v.weight", 576), GgmlType::Q8_0);
        assert_eq!(t("blk.0.ffn_down.weight", 1536), GgmlType::Q6K);
        assert_eq!(t("blk.4.ffn_down.weight", 1536), GgmlType::Q4K);
        assert_eq!(t("blk.29.ffn_down.weight", 1536), GgmlType::Q6K);
        assert_eq!(t("blk.3.attn_output.weight", 576), GgmlType::Q5_0);
        // An untied head of whole super-blocks.
        assert_eq!(
            tensor_type(Mix::Q4KM, "output.weight", 2048, 22, false),
            GgmlType::Q6K
        );
        assert_eq!(
            tensor_type(Mix::Q4KM, "token_embd.weight", 2048, 22, false),
            GgmlType::Q4K
        );
        assert_eq!(
            tensor_type(Mix::Q5KM, "blk.1.ffn_up.weight", 576, 30, true),
            GgmlType::Q5_1
        );
        assert_eq!(
            tensor_type(Mix::Q6K, "blk.1.ffn_up.weight", 576, 30, true),
            GgmlType::Q8_0
        );
    }
}
