//! The key/value cache of a decoder session: one typed store per layer, preallocated for the
//! whole context, laid out `[kv head][position][head_dim]` so that one head's keys are
//! contiguous for the attention kernels.

use edgelm_kernels::Kernels;
use edgelm_kernels::layout::{BlockQ8_0, QK, QuantBlock};
use zerocopy::FromZeros;

/// Element type of the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KvType {
    /// 32-bit floats: exact, twice the bytes of f16 (for reference comparisons).
    F32,
    /// Half floats (default; exact enough to be invisible in perplexity).
    #[default]
    F16,
    /// q8 blocks of 32 values with an f16 scale: half the bytes read per token.
    Q8,
}

impl KvType {
    /// Bytes that `values` cached values take (whole q8 blocks).
    pub fn bytes_for(self, values: usize) -> usize {
        match self {
            KvType::F32 => values * 4,
            KvType::F16 => values * 2,
            KvType::Q8 => values / QK * std::mem::size_of::<BlockQ8_0>(),
        }
    }
}

impl std::str::FromStr for KvType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(KvType::F32),
            "f16" => Ok(KvType::F16),
            "q8" | "q8_0" => Ok(KvType::Q8),
            other => Err(format!("unknown KV cache type {other:?} (f32, f16 or q8)")),
        }
    }
}

/// The keys and values of one layer, both of one type (offsets count values, see
/// [`KvCache::offset`]; q8 stores index blocks at `offset / QK`).
#[derive(Debug)]
pub enum LayerKv {
    /// f32 values.
    F32 {
        /// Keys.
        k: Vec<f32>,
        /// Values.
        v: Vec<f32>,
    },
    /// f16 bits.
    F16 {
        /// Keys.
        k: Vec<u16>,
        /// Values.
        v: Vec<u16>,
    },
    /// q8 blocks.
    Q8 {
        /// Keys.
        k: Vec<BlockQ8_0>,
        /// Values.
        v: Vec<BlockQ8_0>,
    },
}

impl LayerKv {
    /// Stores one head's `key` and `value` at value offset `off`.
    pub fn write(&mut self, kern: &Kernels, off: usize, key: &[f32], value: &[f32]) {
        let n = key.len();
        match self {
            LayerKv::F32 { k, v } => {
                k[off..off + n].copy_from_slice(key);
                v[off..off + n].copy_from_slice(value);
            }
            LayerKv::F16 { k, v } => {
                (kern.f32_to_f16)(key, &mut k[off..off + n]);
                (kern.f32_to_f16)(value, &mut v[off..off + n]);
            }
            LayerKv::Q8 { k, v } => {
                (kern.quantize_q8_kv)(key, &mut k[off / QK..(off + n) / QK]);
                (kern.quantize_q8_kv)(value, &mut v[off / QK..(off + n) / QK]);
            }
        }
    }

    /// Applies `f` to the key of one head at value offset `off`, as f32 (`tmp` holds it while
    /// `f` runs for the f16 and q8 stores).
    pub fn update_key(&mut self, kern: &Kernels, off: usize, tmp: &mut [f32], f: impl FnOnce(&mut [f32])) {
        let n = tmp.len();
        match self {
            LayerKv::F32 { k, .. } => f(&mut k[off..off + n]),
            LayerKv::F16 { k, .. } => {
                let row = &mut k[off..off + n];
                tmp.iter_mut()
                    .zip(row.iter())
                    .for_each(|(d, &h)| *d = half::f16::from_bits(h).to_f32());
                f(tmp);
                (kern.f32_to_f16)(tmp, row);
            }
            LayerKv::Q8 { k, .. } => {
                let row = &mut k[off / QK..(off + n) / QK];
                for (b, out) in row.iter().zip(tmp.chunks_exact_mut(QK)) {
                    b.dequantize(out.try_into().expect("QK values"));
                }
                f(tmp);
                (kern.quantize_q8_kv)(tmp, row);
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            LayerKv::F32 { k, v } => size_of_val(k.as_slice()) + size_of_val(v.as_slice()),
            LayerKv::F16 { k, v } => size_of_val(k.as_slice()) + size_of_val(v.as_slice()),
            LayerKv::Q8 { k, v } => size_of_val(k.as_slice()) + size_of_val(v.as_slice()),
        }
    }

    /// Moves the positions `[from, from + len)` of every head to `[to, to + len)`.
    fn move_positions(&mut self, heads: usize, ctx: usize, hd: usize, from: usize, to: usize, len: usize) {
        match self {
            LayerKv::F32 { k, v } => [k, v].map(|s| shift_rows(s, heads, ctx, hd, from, to, len)),
            LayerKv::F16 { k, v } => [k, v].map(|s| shift_rows(s, heads, ctx, hd, from, to, len)),
            LayerKv::Q8 { k, v } => [k, v].map(|s| shift_rows(s, heads, ctx, hd / QK, from, to, len)),
        };
    }
}

/// Keys and values for every layer, head and position of a session's context.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    ctx: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl KvCache {
    /// Allocates a cache for `ctx` positions; a clear error where the memory is not there.
    pub fn new(
        kind: KvType,
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        ctx: usize,
    ) -> Result<Self, String> {
        if kind == KvType::Q8 && !head_dim.is_multiple_of(QK) {
            return Err(format!(
                "a q8 KV cache needs head_dim to be a multiple of {QK}, this model has {head_dim}"
            ));
        }
        let oom = || {
            let per_token = kind.bytes_for(2 * layers * kv_heads * head_dim).max(1);
            let bytes = per_token.saturating_mul(ctx);
            format!(
                "not enough memory for the KV cache: {bytes} bytes ({} MiB; {per_token} bytes per token of context, \
{ctx} tokens); a smaller context (-c) or a q8 cache (--kv q8) needs less",
                bytes >> 20
            )
        };
        let n = (kv_heads.checked_mul(ctx))
            .and_then(|x| x.checked_mul(head_dim))
            .ok_or_else(oom)?;
        // Fallible and zeroed by the allocator: no abort where the memory is not there, and
        // pages the context never reaches are never touched.
        let zeroed = |n: usize| -> Result<LayerKv, String> {
            Ok(match kind {
                KvType::F32 => LayerKv::F32 {
                    k: f32::new_vec_zeroed(n).map_err(|_| oom())?,
                    v: f32::new_vec_zeroed(n).map_err(|_| oom())?,
                },
                KvType::F16 => LayerKv::F16 {
                    k: u16::new_vec_zeroed(n).map_err(|_| oom())?,
                    v: u16::new_vec_zeroed(n).map_err(|_| oom())?,
                },
                KvType::Q8 => LayerKv::Q8 {
                    k: BlockQ8_0::new_vec_zeroed(n / QK).map_err(|_| oom())?,
                    v: BlockQ8_0::new_vec_zeroed(n / QK).map_err(|_| oom())?,
                },
            })
        };
        let mut all = Vec::new();
        all.try_reserve_exact(layers).map_err(|_| oom())?;
        for _ in 0..layers {
            all.push(zeroed(n)?);
        }
        Ok(KvCache {
            layers: all,
            ctx,
            kv_heads,
            head_dim,
        })
    }

    /// Positions the cache holds.
    pub fn context(&self) -> usize {
        self.ctx
    }

    /// Layer `l`'s store.
    pub fn layer(&self, l: usize) -> &LayerKv {
        &self.layers[l]
    }

    /// Layer `l`'s store, to write.
    pub fn layer_mut(&mut self, l: usize) -> &mut LayerKv {
        &mut self.layers[l]
    }

    /// Value offset of `(head, pos)` within a layer's store.
    pub fn offset(&self, head: usize, pos: usize) -> usize {
        (head * self.ctx + pos) * self.head_dim
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.layers.iter().map(LayerKv::bytes).sum()
    }

    /// Moves positions `[from, from + len)` to `[to, to + len)` in every layer and head
    /// (`to < from`), for context shifting.
    pub fn move_positions(&mut self, from: usize, to: usize, len: usize) {
        let (heads, ctx, hd) = (self.kv_heads, self.ctx, self.head_dim);
        for layer in &mut self.layers {
            layer.move_positions(heads, ctx, hd, from, to, len);
        }
    }
}

fn shift_rows<T: Copy>(
    v: &mut [T],
    heads: usize,
    ctx: usize,
    row: usize,
    from: usize,
    to: usize,
    len: usize,
) {
    for h in 0..heads {
        let base = h * ctx * row;
        v.copy_within(base + from * row..base + (from + len) * row, base + to * row);
    }
}
