//! Prompt caches: the KV state of a prompt prefix saved to disk and mapped back without a
//! copy (format in `docs/FORMAT.md`, "Prompt cache files").
//!
//! A file holds a header (the model's identity, the cache's shape, the N token ids,
//! checksums) and then the KV stores in their in-memory layout at page-aligned offsets, so
//! that [`KvCache::map`] uses them in place. Only the rows of the first N positions are
//! written; the rest of each store is a hole in a sparse file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, LittleEndian, U32, U64};

use crate::format::meta::RopeLayout;
use crate::kv_cache::{KvCache, KvType};
use crate::model::Model;

/// First bytes of a prompt cache file.
pub const MAGIC: [u8; 8] = *b"EDGELMPC";
/// Format version this build reads and writes.
pub const VERSION: u32 = 1;
/// Alignment of the KV stores in the file: a multiple of every page size edgelm runs with
/// (4, 16 and 64 KiB), so that each store maps at a page boundary.
pub const ALIGN: u64 = 64 << 10;

type U32le = U32<LittleEndian>;
type U64le = U64<LittleEndian>;

/// The fixed-size start of a prompt cache file; the token ids follow it.
#[derive(Clone, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: U32le,
    kv_type: U32le,
    model: U64le,
    context: U64le,
    layers: U32le,
    kv_heads: U32le,
    head_dim: U32le,
    rope_layout: U32le,
    rope_theta: U32le,
    rope_dims: U32le,
    rope: U64le,
    tokens: U64le,
    data_offset: U64le,
    store_stride: U64le,
    file_size: U64le,
    data_checksum: U64le,
    header_checksum: U64le,
}

const HEADER_SIZE: usize = size_of::<Header>();
const _: () = assert!(HEADER_SIZE == 112, "docs/FORMAT.md lists 112 bytes");

/// Why a prompt cache cannot be saved or used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with [`MAGIC`].
    #[error("not a prompt cache file")]
    BadMagic,
    /// Saving would replace a file that is not a prompt cache (a model, a text).
    #[error("{0} exists and is not a prompt cache file: not overwritten")]
    NotOverwritten(String),
    /// Another format version.
    #[error("format version {0}, this edgelm reads version {VERSION}")]
    Version(u32),
    /// The file is shorter (or longer) than its header says.
    #[error("the file is truncated: {actual} bytes, {expected} expected")]
    Truncated {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes in the file.
        actual: u64,
    },
    /// The header or token ids do not match their checksum.
    #[error("header checksum mismatch: the file is corrupted")]
    HeaderChecksum,
    /// The cached keys and values do not match their checksum.
    #[error("KV data checksum mismatch: the file is corrupted")]
    DataChecksum,
    /// The cache was made for another model or session setup.
    #[error("made for another {what} ({cached}; this session: {current})")]
    Mismatch {
        /// What differs.
        what: &'static str,
        /// The cache's value.
        cached: String,
        /// The session's value.
        current: String,
    },
    /// The header is inconsistent, or the request cannot be met.
    #[error("{0}")]
    Invalid(String),
}

fn kv_code(kind: KvType) -> u32 {
    match kind {
        KvType::F32 => 0,
        KvType::F16 => 1,
        KvType::Q8 => 2,
    }
}

fn align(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// The header of a cache of `kv` for `model` holding `tokens` tokens, with its layout fields
/// filled and its checksums zero.
fn header(model: &Model, kv: &KvCache, tokens: usize) -> Header {
    let c = model.config();
    let rope = c.rope.as_ref();
    // The whole RoPE setup (scaling and a local RoPE included) as one hash.
    let rope_json = serde_json::to_vec(&(&c.rope, &c.attention.local_rope)).unwrap_or_default();
    let store = kv.kind().bytes_for(kv.kv_heads() * kv.context() * kv.head_dim()) as u64;
    let stride = align(store);
    let data_offset = align((HEADER_SIZE + 4 * tokens) as u64);
    let u32_of = |n: usize| U32le::new(u32::try_from(n).unwrap_or(u32::MAX));
    Header {
        magic: MAGIC,
        version: VERSION.into(),
        kv_type: kv_code(kv.kind()).into(),
        model: model.file().header_checksum().into(),
        context: (kv.context() as u64).into(),
        layers: u32_of(kv.layers()),
        kv_heads: u32_of(kv.kv_heads()),
        head_dim: u32_of(kv.head_dim()),
        rope_layout: rope
            .map_or(0, |r| match r.layout {
                RopeLayout::Neox => 1,
                RopeLayout::Interleaved => 2,
            })
            .into(),
        rope_theta: rope.map_or(0, |r| r.theta.to_bits()).into(),
        rope_dims: u32_of(rope.map_or(0, |r| r.dims)),
        rope: xxh3_64(&rope_json).into(),
        tokens: (tokens as u64).into(),
        data_offset: data_offset.into(),
        store_stride: stride.into(),
        file_size: (data_offset + 2 * kv.layers() as u64 * stride).into(),
        data_checksum: 0.into(),
        header_checksum: 0.into(),
    }
}

/// xxh3 of the header (its checksum field read as zero) and the token ids.
fn header_checksum(h: &Header, tokens: &[u8]) -> u64 {
    let mut zeroed = h.clone();
    zeroed.header_checksum = 0.into();
    let mut hasher = Xxh3::new();
    hasher.update(zeroed.as_bytes());
    hasher.update(tokens);
    hasher.digest()
}

/// Calls `f(offset, bytes)` for the rows of the first `n` positions of every head, store by
/// store (per layer: keys, then values), with `offset` their place after the data offset.
fn used_rows(
    kv: &KvCache,
    n: usize,
    stride: u64,
    mut f: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let row = kv.kind().bytes_for(kv.head_dim());
    let head = kv.context() * row;
    let stores = (0..kv.layers()).flat_map(|l| kv.layer(l).as_bytes());
    for (s, bytes) in stores.enumerate() {
        for h in 0..kv.kv_heads() {
            let at = h * head;
            f(s as u64 * stride + at as u64, &bytes[at..at + n * row])?;
        }
    }
    Ok(())
}

/// Saves the state of `tokens` (the first positions of `kv`) to `path`, atomically: a
/// temporary file in the same folder, synced, then renamed over `path`. An existing file is
/// replaced only when it is empty or a prompt cache (a mistyped path never costs a model).
pub fn save(model: &Model, kv: &KvCache, tokens: &[u32], path: &Path) -> Result<(), CacheError> {
    if tokens.len() > kv.context() {
        return Err(CacheError::Invalid(format!(
            "{} tokens do not fit a context of {}",
            tokens.len(),
            kv.context()
        )));
    }
    check_replaceable(path)?;
    let mut h = header(model, kv, tokens.len());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // The temporary file's own name, in tempfile's error, would mean nothing to the user.
    if !dir.is_dir() {
        return Err(CacheError::Invalid(format!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("prompt-cache");
    // Removed on drop: an error leaves no temporary file behind.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    let file = tmp.as_file_mut();
    // Sparse: positions past the prefix are never written and take no disk.
    file.set_len(h.file_size.get())?;
    let mut data = Xxh3::new();
    let base = h.data_offset.get();
    used_rows(kv, tokens.len(), h.store_stride.get(), |off, bytes| {
        data.update(bytes);
        file.seek(SeekFrom::Start(base + off))?;
        file.write_all(bytes)
    })?;
    h.data_checksum = data.digest().into();
    h.header_checksum = header_checksum(&h, tokens.as_bytes()).into();
    file.seek(SeekFrom::Start(0))?;
    file.write_all(h.as_bytes())?;
    file.write_all(tokens.as_bytes())?;
    file.sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Maps the cache at `path` for a session of `model` whose cache is shaped like `like`, and
/// returns it with its token ids (a vector with room for the whole context). Any mismatch
/// or damage is an error naming it; nothing is used then.
pub fn load(model: &Model, like: &KvCache, path: &Path) -> Result<(KvCache, Vec<u32>), CacheError> {
    let mut file = File::open(path)?;
    let actual = file.metadata()?.len();
    let mut raw = [0u8; HEADER_SIZE];
    let got = read_up_to(&mut file, &mut raw)?;
    if got < MAGIC.len() || raw[..MAGIC.len()] != MAGIC {
        return Err(CacheError::BadMagic);
    }
    if got < HEADER_SIZE {
        return Err(CacheError::Truncated {
            expected: HEADER_SIZE as u64,
            actual,
        });
    }
    let h = Header::read_from_bytes(&raw).expect("HEADER_SIZE bytes");
    if h.version.get() != VERSION {
        return Err(CacheError::Version(h.version.get()));
    }
    if h.file_size.get() != actual {
        return Err(CacheError::Truncated {
            expected: h.file_size.get(),
            actual,
        });
    }
    let n = h.tokens.get();
    let tokens_end = n.checked_mul(4).and_then(|b| b.checked_add(HEADER_SIZE as u64));
    if tokens_end.is_none_or(|end| end > h.data_offset.get() || end > actual) {
        return Err(CacheError::Invalid(format!(
            "the header is corrupted: {n} tokens do not fit before the data offset {}",
            h.data_offset.get()
        )));
    }
    // Fits in memory: the file holds these bytes.
    let n = usize::try_from(n).map_err(|_| CacheError::Invalid(format!("{n} tokens")))?;
    let mut token_bytes = vec![0u8; 4 * n];
    file.read_exact(&mut token_bytes)?;
    if header_checksum(&h, &token_bytes) != h.header_checksum.get() {
        return Err(CacheError::HeaderChecksum);
    }
    let want = header(model, like, n);
    check_identity(&h, &want)?;
    if n > like.context() || h.data_offset.get() != want.data_offset.get() {
        return Err(CacheError::Invalid(format!(
            "the header is corrupted: {n} tokens at data offset {} do not fit the layout",
            h.data_offset.get()
        )));
    }
    let mut tokens = Vec::new();
    tokens
        .try_reserve_exact(like.context())
        .map_err(|_| CacheError::Invalid("not enough memory for the token ids".into()))?;
    tokens.extend(
        token_bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
    );
    let (base, stride) = (want.data_offset.get(), want.store_stride.get());
    let kv = KvCache::map(
        like.kind(),
        like.layers(),
        like.kv_heads(),
        like.head_dim(),
        like.context(),
        &file,
        |s| base + s as u64 * stride,
    )?;
    let mut data = Xxh3::new();
    used_rows(&kv, n, stride, |_, bytes| {
        data.update(bytes);
        Ok(())
    })?;
    if data.digest() != h.data_checksum.get() {
        return Err(CacheError::DataChecksum);
    }
    Ok((kv, tokens))
}

/// Refuses to save over an existing `path` that is neither empty nor a prompt cache.
fn check_replaceable(path: &Path) -> Result<(), CacheError> {
    let mut file = match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        opened => opened?,
    };
    if !file.metadata()?.is_file() {
        return Err(CacheError::NotOverwritten(path.display().to_string()));
    }
    let mut magic = [0u8; MAGIC.len()];
    match read_up_to(&mut file, &mut magic)? {
        0 => Ok(()),
        _ if magic == MAGIC => Ok(()),
        _ => Err(CacheError::NotOverwritten(path.display().to_string())),
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            k => got += k,
        }
    }
    Ok(got)
}

/// An identity field: its name, the cache's and the session's value, and how to show one.
type Field = (&'static str, u64, u64, fn(u64) -> String);

/// Compares the identity fields of a cache's header with those the session expects.
fn check_identity(h: &Header, want: &Header) -> Result<(), CacheError> {
    let fields: [Field; 8] = [
        ("model", h.model.get(), want.model.get(), |x| {
            format!("model checksum {x:016x}")
        }),
        (
            "KV type",
            h.kv_type.get().into(),
            want.kv_type.get().into(),
            |x| match x {
                0 => "f32".into(),
                1 => "f16".into(),
                2 => "q8".into(),
                c => format!("code {c}"),
            },
        ),
        ("context size", h.context.get(), want.context.get(), |x| {
            format!("{x} tokens")
        }),
        (
            "layer count",
            h.layers.get().into(),
            want.layers.get().into(),
            |x| format!("{x} layers"),
        ),
        (
            "KV head count",
            h.kv_heads.get().into(),
            want.kv_heads.get().into(),
            |x| format!("{x} KV heads"),
        ),
        (
            "head size",
            h.head_dim.get().into(),
            want.head_dim.get().into(),
            |x| format!("head_dim {x}"),
        ),
        (
            "RoPE layout",
            h.rope_layout.get().into(),
            want.rope_layout.get().into(),
            |x| format!("layout code {x}"),
        ),
        (
            "RoPE theta",
            h.rope_theta.get().into(),
            want.rope_theta.get().into(),
            |x| format!("theta {}", f32::from_bits(x as u32)),
        ),
    ];
    for (what, cached, current, show) in fields {
        if cached != current {
            return Err(CacheError::Mismatch {
                what,
                cached: show(cached),
                current: show(current),
            });
        }
    }
    let more = [
        (
            "RoPE setup",
            h.rope_dims.get() == want.rope_dims.get() && h.rope.get() == want.rope.get(),
        ),
        (
            "layout",
            h.store_stride.get() == want.store_stride.get() && h.file_size.get() == want.file_size.get(),
        ),
    ];
    match more.into_iter().find(|(_, same)| !same) {
        Some((what, _)) => Err(CacheError::Mismatch {
            what,
            cached: "different".into(),
            current: "this one".into(),
        }),
        None => Ok(()),
    }
}
