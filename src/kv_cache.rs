//! The key/value cache of a decoder session: preallocated for the whole context, in f16 or
//! in q8 blocks, laid out `[layer][kv head][position][head_dim]` so that one head's keys
//! are contiguous for the attention kernels.

use edgelm_kernels::layout::{BlockQ8_0, QK};

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

/// Storage of one of the two caches (keys or values).
#[derive(Debug)]
pub enum KvStore {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 bits.
    F16(Vec<u16>),
    /// q8 blocks.
    Q8(Vec<BlockQ8_0>),
}

/// Keys and values for every layer, head and position of a session's context.
#[derive(Debug)]
pub struct KvCache {
    /// Keys.
    pub k: KvStore,
    /// Values.
    pub v: KvStore,
    ctx: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl KvCache {
    /// Allocates a cache for `ctx` positions.
    pub fn new(
        kind: KvType,
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        ctx: usize,
    ) -> Result<Self, String> {
        let n = layers * kv_heads * ctx * head_dim;
        let store = || match kind {
            KvType::F32 => Ok(KvStore::F32(vec![0.0; n])),
            KvType::F16 => Ok(KvStore::F16(vec![0; n])),
            KvType::Q8 if head_dim.is_multiple_of(QK) => Ok(KvStore::Q8(vec![BlockQ8_0::default(); n / QK])),
            KvType::Q8 => Err(format!(
                "a q8 KV cache needs head_dim to be a multiple of {QK}, this model has {head_dim}"
            )),
        };
        Ok(KvCache {
            k: store()?,
            v: store()?,
            ctx,
            kv_heads,
            head_dim,
        })
    }

    /// Positions the cache holds.
    pub fn context(&self) -> usize {
        self.ctx
    }

    /// Element offset of `(layer, head, pos)` in f16 units (divide by `QK` for q8 blocks).
    pub fn offset(&self, layer: usize, head: usize, pos: usize) -> usize {
        ((layer * self.kv_heads + head) * self.ctx + pos) * self.head_dim
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        let one = |s: &KvStore| match s {
            KvStore::F32(v) => size_of_val(v.as_slice()),
            KvStore::F16(v) => size_of_val(v.as_slice()),
            KvStore::Q8(v) => size_of_val(v.as_slice()),
        };
        one(&self.k) + one(&self.v)
    }

    /// Moves positions `[from, from + len)` to `[to, to + len)` in every layer and head
    /// (`to < from`), for context shifting.
    pub fn move_positions(&mut self, from: usize, to: usize, len: usize) {
        let (hd, heads) = (self.head_dim, self.ctx_rows());
        for store in [&mut self.k, &mut self.v] {
            match store {
                KvStore::F32(v) => shift_rows(v, heads, self.ctx, hd, from, to, len),
                KvStore::F16(v) => shift_rows(v, heads, self.ctx, hd, from, to, len),
                KvStore::Q8(v) => shift_rows(v, heads, self.ctx, hd / QK, from, to, len),
            }
        }
    }

    fn ctx_rows(&self) -> usize {
        match &self.k {
            KvStore::F32(v) => v.len() / (self.ctx * self.head_dim),
            KvStore::F16(v) => v.len() / (self.ctx * self.head_dim),
            KvStore::Q8(v) => v.len() * QK / (self.ctx * self.head_dim),
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
