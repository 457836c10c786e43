//! The key/value cache of a decoder session: one typed store per layer, preallocated for the
//! whole context, laid out `[kv head][position][head_dim]` so that one head's keys are
//! contiguous for the attention kernels. A store is either allocated or a private
//! copy-on-write mapping of a prompt cache file (see [`crate::prompt_cache`]), which holds
//! the stores in this same layout.

use std::fs::File;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use edgelm_kernels::Kernels;
use edgelm_kernels::layout::{BlockQ8_0, QK, QuantBlock};
use memmap2::{MmapMut, MmapOptions};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

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

/// The memory of one store: allocated, or a private copy-on-write mapping of a file region
/// (pages are read on first use; written pages become private memory, the file never
/// changes).
#[derive(Debug)]
pub struct Store<T>(Backing<T>);

#[derive(Debug)]
enum Backing<T> {
    /// Allocated (zeroed) memory.
    Owned(Vec<T>),
    /// A mapped file region, page-aligned and a whole number of `T`s (checked when mapped).
    Mapped(MmapMut, PhantomData<T>),
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> Store<T> {
    /// `n` zeroed values, allocated fallibly.
    fn zeroed(n: usize) -> Option<Self> {
        T::new_vec_zeroed(n).ok().map(|v| Store(Backing::Owned(v)))
    }

    /// `n` values mapped privately from `file` at byte `offset` (a multiple of the page size).
    fn map(file: &File, offset: u64, n: usize) -> std::io::Result<Self> {
        let len = n
            .checked_mul(size_of::<T>())
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: a private (copy-on-write) map of a prompt cache file: our writes never reach
        // the file, and edgelm replaces cache files by renaming a new one over them, never
        // writing in place, so the mapped bytes do not change under us unless another program
        // truncates the file (SIGBUS, as for any mapped model file).
        let map = unsafe { MmapOptions::new().offset(offset).len(len).map_copy(file) }?;
        if <[T]>::ref_from_bytes(&map).is_err() {
            return Err(std::io::Error::other("a mapped KV store is misaligned"));
        }
        Ok(Store(Backing::Mapped(map, PhantomData)))
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> Deref for Store<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match &self.0 {
            Backing::Owned(v) => v,
            Backing::Mapped(m, _) => {
                <[T]>::ref_from_bytes(m).expect("size and alignment checked when mapped")
            }
        }
    }
}

impl<T: FromBytes + IntoBytes + KnownLayout + Immutable> DerefMut for Store<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Backing::Owned(v) => v,
            Backing::Mapped(m, _) => {
                <[T]>::mut_from_bytes(m).expect("size and alignment checked when mapped")
            }
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
        k: Store<f32>,
        /// Values.
        v: Store<f32>,
    },
    /// f16 bits.
    F16 {
        /// Keys.
        k: Store<u16>,
        /// Values.
        v: Store<u16>,
    },
    /// q8 blocks.
    Q8 {
        /// Keys.
        k: Store<BlockQ8_0>,
        /// Values.
        v: Store<BlockQ8_0>,
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
                    b.dequantize(out);
                }
                f(tmp);
                (kern.quantize_q8_kv)(tmp, row);
            }
        }
    }

    /// Copies the key at value offset `off` into `out` (its length), as f32.
    pub fn read_key(&self, off: usize, out: &mut [f32]) {
        let n = out.len();
        match self {
            LayerKv::F32 { k, .. } => out.copy_from_slice(&k[off..off + n]),
            LayerKv::F16 { k, .. } => out
                .iter_mut()
                .zip(&k[off..off + n])
                .for_each(|(d, &h)| *d = half::f16::from_bits(h).to_f32()),
            LayerKv::Q8 { k, .. } => {
                for (b, dst) in k[off / QK..(off + n) / QK].iter().zip(out.chunks_exact_mut(QK)) {
                    b.dequantize(dst);
                }
            }
        }
    }

    /// The bytes of the keys, then of the values.
    pub fn as_bytes(&self) -> [&[u8]; 2] {
        match self {
            LayerKv::F32 { k, v } => [k.as_bytes(), v.as_bytes()],
            LayerKv::F16 { k, v } => [k.as_bytes(), v.as_bytes()],
            LayerKv::Q8 { k, v } => [k.as_bytes(), v.as_bytes()],
        }
    }

    fn kind(&self) -> KvType {
        match self {
            LayerKv::F32 { .. } => KvType::F32,
            LayerKv::F16 { .. } => KvType::F16,
            LayerKv::Q8 { .. } => KvType::Q8,
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
        Self::build(layers, kv_heads, head_dim, ctx, |_| {
            Ok(match kind {
                KvType::F32 => LayerKv::F32 {
                    k: Store::zeroed(n).ok_or_else(oom)?,
                    v: Store::zeroed(n).ok_or_else(oom)?,
                },
                KvType::F16 => LayerKv::F16 {
                    k: Store::zeroed(n).ok_or_else(oom)?,
                    v: Store::zeroed(n).ok_or_else(oom)?,
                },
                KvType::Q8 => LayerKv::Q8 {
                    k: Store::zeroed(n / QK).ok_or_else(oom)?,
                    v: Store::zeroed(n / QK).ok_or_else(oom)?,
                },
            })
        })
    }

    /// Maps a cache of the same shape from `file`, where layer `l`'s keys start at byte
    /// `offset(2 l)` and its values at `offset(2 l + 1)` (page-aligned; the caller checked
    /// that the file holds them): restoring costs a mapping, not a copy.
    pub fn map(
        kind: KvType,
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        ctx: usize,
        file: &File,
        offset: impl Fn(usize) -> u64,
    ) -> std::io::Result<Self> {
        let n = kv_heads * ctx * head_dim;
        Self::build(layers, kv_heads, head_dim, ctx, |l| {
            let (k, v) = (offset(2 * l), offset(2 * l + 1));
            Ok(match kind {
                KvType::F32 => LayerKv::F32 {
                    k: Store::map(file, k, n)?,
                    v: Store::map(file, v, n)?,
                },
                KvType::F16 => LayerKv::F16 {
                    k: Store::map(file, k, n)?,
                    v: Store::map(file, v, n)?,
                },
                KvType::Q8 => LayerKv::Q8 {
                    k: Store::map(file, k, n / QK)?,
                    v: Store::map(file, v, n / QK)?,
                },
            })
        })
    }

    fn build<E>(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        ctx: usize,
        mut layer: impl FnMut(usize) -> Result<LayerKv, E>,
    ) -> Result<Self, E> {
        Ok(KvCache {
            layers: (0..layers).map(&mut layer).collect::<Result<_, E>>()?,
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
        self.layers
            .iter()
            .flat_map(LayerKv::as_bytes)
            .map(<[u8]>::len)
            .sum()
    }

    /// Element type (F16 for a cache of no layers).
    pub fn kind(&self) -> KvType {
        self.layers.first().map_or(KvType::F16, LayerKv::kind)
    }

    /// Layers.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// KV heads per layer.
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Values per head and position.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Copies positions `[0, len)` of every layer and head from `src` (a cache of the same
    /// shape and type), leaving the later positions as they are: a beam search's hypothesis
    /// taking over its parent's keys and values.
    pub fn copy_prefix_from(&mut self, src: &KvCache, len: usize) {
        assert!(
            self.ctx == src.ctx && self.kv_heads == src.kv_heads && self.head_dim == src.head_dim,
            "caches of different shapes"
        );
        let (heads, ctx, hd) = (self.kv_heads, self.ctx, self.head_dim);
        for (dst, src) in self.layers.iter_mut().zip(&src.layers) {
            match (dst, src) {
                (LayerKv::F32 { k, v }, LayerKv::F32 { k: sk, v: sv }) => {
                    copy_rows(k, sk, heads, ctx, hd, len);
                    copy_rows(v, sv, heads, ctx, hd, len);
                }
                (LayerKv::F16 { k, v }, LayerKv::F16 { k: sk, v: sv }) => {
                    copy_rows(k, sk, heads, ctx, hd, len);
                    copy_rows(v, sv, heads, ctx, hd, len);
                }
                (LayerKv::Q8 { k, v }, LayerKv::Q8 { k: sk, v: sv }) => {
                    copy_rows(k, sk, heads, ctx, hd / QK, len);
                    copy_rows(v, sv, heads, ctx, hd / QK, len);
                }
                _ => panic!("caches of different types"),
            }
        }
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

/// Copies the first `len` rows of every head from `src` to `dst` (both `heads × ctx` rows of
/// `row` elements).
fn copy_rows<T: Copy>(dst: &mut [T], src: &[T], heads: usize, ctx: usize, row: usize, len: usize) {
    for h in 0..heads {
        let r = h * ctx * row..(h * ctx + len) * row;
        dst[r.clone()].copy_from_slice(&src[r]);
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom, Write};

    use super::*;

    #[test]
    fn a_mapped_store_is_private_reads_holes_as_zeros_and_checks_alignment() {
        let mut file = tempfile::tempfile().unwrap();
        file.set_len(2 << 16).unwrap();
        file.seek(SeekFrom::Start(1 << 16)).unwrap();
        file.write_all([1u16, 2].as_bytes()).unwrap();
        let mut store = Store::<u16>::map(&file, 1 << 16, 1000).unwrap();
        assert_eq!(store[..3], [1, 2, 0]);
        store[0] = 7;
        store[999] = 9;
        assert_eq!((store[0], store[999]), (7, 9));
        let mut back = [0u16; 2];
        file.seek(SeekFrom::Start(1 << 16)).unwrap();
        file.read_exact(back.as_mut_bytes()).unwrap();
        assert_eq!(back, [1, 2], "writes stay private");
        assert!(Store::<f32>::map(&file, (1 << 16) + 2, 10).is_err(), "misaligned");
    }
}
