//! Opening a packed file: map it, validate every header field, hand out zero-copy views.
//!
//! Opening reads the preamble, the metadata, the directory and the name table (a few
//! hundred kilobytes at most); tensor data is only touched when a view of it is used, so
//! resident memory grows with the pages the model actually reads.

use std::collections::HashMap;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};

use edgelm_kernels::layout::{TileQ4_0, TileQ4_1, TileQ8_0};
use edgelm_kernels::view::Tiled;
use memmap2::Mmap;
use xxhash_rust::xxh3::Xxh3;
use zerocopy::FromBytes;

use super::meta::Metadata;
use super::spec::{
    CHECKSUM_FIELD, DATA_ALIGN, DType, DirEntry, Layout, MAGIC, MAX_DIMS, PREAMBLE_SIZE, Preamble,
    ShapeError, VERSION, tensor_size,
};
use super::table::{Element, Table};

/// Why a packed file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not an edgelm file at all.
    #[error("not an edgelm packed file (bad magic bytes)")]
    BadMagic,
    /// A GGUF file, which the converter turns into a packed file.
    #[error(
        "a GGUF file, not an edgelm packed file; convert it first: edgelm-convert FILE.gguf -o FILE.edgelm"
    )]
    Gguf,
    /// A folder where a file was expected.
    #[error("{path} is a folder, not a packed model file")]
    Folder {
        /// The folder.
        path: PathBuf,
    },
    /// A version this build does not read.
    #[error(
        "unsupported format version {found} (this edgelm reads version {VERSION}); reconvert the model with this edgelm's edgelm-convert"
    )]
    Version {
        /// The file's version.
        found: u32,
    },
    /// The file is shorter (or longer) than its header says.
    #[error("file is {actual} bytes but its header says {expected}: truncated or damaged")]
    Truncated {
        /// Size from the header.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// The header or directory bytes do not match their checksum.
    #[error("header checksum mismatch: the file is corrupted")]
    HeaderChecksum,
    /// A structural field is out of range.
    #[error("invalid header: {0}")]
    Header(String),
    /// The metadata JSON is not valid.
    #[error("invalid metadata: {0}")]
    Metadata(String),
    /// A directory entry is invalid.
    #[error("tensor {name:?}: {problem}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A tensor's data does not match its checksum.
    #[error(
        "{}tensor {tensor:?}: data checksum mismatch: the file is damaged (copy or convert the model again; `edgelm inspect --verify` checks a file)",
        .file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default()
    )]
    DataChecksum {
        /// The file, when it was opened from one.
        file: Option<PathBuf>,
        /// The tensor.
        tensor: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("missing tensor {0:?}")]
    Missing(String),
}

impl FormatError {
    fn tensor(name: &str, problem: impl Into<String>) -> Self {
        FormatError::Tensor {
            name: name.to_owned(),
            problem: problem.into(),
        }
    }
}

/// One directory entry, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name (e.g. `blk.0.attn_qkv.weight`).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Element order.
    pub layout: Layout,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
    /// Byte range inside the file.
    pub range: Range<usize>,
    /// xxh3-64 of the data.
    pub checksum: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The bytes of a packed file: mapped, or an aligned copy (its length rounded up to 64).
pub(super) enum Bytes {
    Mapped(Mmap),
    Owned(Vec<Align64>),
}

impl Bytes {
    /// The bytes in `range`, if it lies inside.
    pub(super) fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        match self {
            Bytes::Mapped(m) => m.get(range),
            Bytes::Owned(v) => v.as_bytes_slice().get(range),
        }
    }
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Align64([u8; 64]);

/// An open, validated packed file.
pub struct PackedFile {
    bytes: Arc<Bytes>,
    len: usize,
    meta: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
    check: Arc<Check>,
    /// Where the bytes came from (`None` when held in memory): damaged data names it.
    path: Option<PathBuf>,
}

/// What the background pass ([`PackedFile::prefault_in_background`]) has found, shared with
/// its thread: the first tensor whose data does not match its checksum, and whether it runs.
#[derive(Debug, Default)]
struct Check {
    damaged: OnceLock<String>,
    running: Mutex<bool>,
    finished: Condvar,
}

impl Check {
    fn set_running(&self, running: bool) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = running;
        self.finished.notify_all();
    }
}

impl std::fmt::Debug for PackedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedFile")
            .field("len", &self.len)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A borrowed view of one tensor's bytes.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    /// The directory entry.
    pub info: &'a TensorInfo,
    /// The data (64-byte aligned in memory).
    pub bytes: &'a [u8],
}

impl PackedFile {
    /// Maps and validates the file at `path`.
    pub fn open(path: &Path) -> Result<PackedFile, FormatError> {
        let io = |source| FormatError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.is_dir() {
            return Err(FormatError::Folder {
                path: path.to_owned(),
            });
        }
        // SAFETY: the map is read-only and private; edgelm never writes model files in place
        // (the converter writes a new file and renames it), so the bytes do not change under us
        // unless another program truncates the file, which the OS reports as SIGBUS like any
        // mmap-based loader (llama.cpp, safetensors) does.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let len = map.len();
        Ok(PackedFile {
            path: Some(path.to_owned()),
            ..Self::parse(Bytes::Mapped(map), len)?
        })
    }

    /// Validates a packed file held in memory (tests and fuzzing).
    pub fn from_bytes(data: &[u8]) -> Result<PackedFile, FormatError> {
        let mut owned = vec![Align64([0; 64]); data.len().div_ceil(64)];
        owned.as_mut_slice().as_mut_bytes_slice()[..data.len()].copy_from_slice(data);
        Self::parse(Bytes::Owned(owned), data.len())
    }

    fn data(&self) -> &[u8] {
        match &*self.bytes {
            Bytes::Mapped(m) => &m[..],
            Bytes::Owned(v) => &v.as_slice().as_bytes_slice()[..self.len],
        }
    }

    fn parse(bytes: Bytes, len: usize) -> Result<PackedFile, FormatError> {
        let (meta, tensors) = match &bytes {
            Bytes::Mapped(m) => parse_header(&m[..])?,
            Bytes::Owned(v) => parse_header(&v.as_bytes_slice()[..len])?,
        };
        let by_name = tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(PackedFile {
            bytes: Arc::new(bytes),
            len,
            meta,
            tensors,
            by_name,
            check: Arc::default(),
            path: None,
        })
    }

    /// The header checksum: it covers the metadata and the tensor table with each tensor's
    /// checksum, so it identifies the weights without reading them.
    pub fn header_checksum(&self) -> u64 {
        u64::from_le_bytes(self.data()[CHECKSUM_FIELD].try_into().expect("8 bytes"))
    }

    /// The metadata (config, tokenizer, chat template, provenance).
    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> usize {
        self.len
    }

    /// The tensor called `name`, if present.
    pub fn get(&self, name: &str) -> Option<TensorView<'_>> {
        let info = &self.tensors[*self.by_name.get(name)?];
        Some(TensorView {
            info,
            bytes: &self.data()[info.range.clone()],
        })
    }

    /// The tensor called `name`, or [`FormatError::Missing`].
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, FormatError> {
        self.get(name)
            .ok_or_else(|| FormatError::Missing(name.to_owned()))
    }

    /// The tensor called `name` as a table that shares the file's bytes instead of copying
    /// them; `None` if there is no such tensor, an error if it is not a row-major `T` tensor.
    pub fn table<T: Element>(&self, name: &str) -> Result<Option<Table<T>>, FormatError> {
        let Some(view) = self.get(name) else {
            return Ok(None);
        };
        view.expect(T::DTYPE, Layout::RowMajor)?;
        Table::shared(&self.bytes, view.info.range.clone())
            .map(Some)
            .ok_or_else(|| FormatError::tensor(name, "data is misaligned"))
    }

    /// Starts reading the weights in a background thread, hashing every tensor against its
    /// checksum, so that a model about to run finds them mapped (and, when the file was not
    /// cached, already read from disk) instead of taking a page fault per few pages on the
    /// threads of its first forward pass, and so that damaged data (a flipped bit on worn
    /// flash storage) is noticed: [`PackedFile::check_result`] reports it from then on, and
    /// every forward pass calls it. Hashing costs little next to reading the pages. The layers
    /// (`blk.*`) go first, in file order, as a forward pass reads them, then the other weights
    /// and the tokenizer tables. [`PackedFile::open`] alone reads only the header.
    pub fn prefault_in_background(&self) {
        let mut order: Vec<(u8, &TensorInfo)> = self
            .tensors
            .iter()
            .map(|t| match t.name.split('.').next() {
                Some("blk") => (0, t),
                Some("tokenizer") => (2, t),
                _ => (1, t),
            })
            .collect();
        order.sort_unstable_by_key(|(group, t)| (*group, t.range.start));
        let tensors: Vec<TensorInfo> = order.into_iter().map(|(_, t)| t.clone()).collect();
        let bytes = Arc::clone(&self.bytes);
        let check = Arc::clone(&self.check);
        check.set_running(true);
        // If no thread can be started, pages fault in on first use and nothing is checked.
        let started = std::thread::Builder::new()
            .name("edgelm-prefault".into())
            .spawn(move || {
                for t in tensors {
                    let data = bytes.get(t.range.clone()).unwrap_or_default();
                    if xxhash_rust::xxh3::xxh3_64(data) != t.checksum {
                        let _ = check.damaged.set(t.name);
                        break;
                    }
                }
                check.set_running(false);
            });
        if started.is_err() {
            self.check.set_running(false);
        }
    }

    /// What the background pass has found so far: the first tensor whose data did not match
    /// its checksum, else `Ok` (also while it runs, and when none was started). Costs one
    /// atomic load.
    pub fn check_result(&self) -> Result<(), FormatError> {
        match self.check.damaged.get() {
            Some(name) => Err(self.damaged(name)),
            None => Ok(()),
        }
    }

    /// Waits until the background pass started by [`PackedFile::prefault_in_background`] has
    /// finished (at once when none runs), then returns [`PackedFile::check_result`].
    pub fn wait_for_check(&self) -> Result<(), FormatError> {
        let mut running = self.check.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running {
            running = self
                .check
                .finished
                .wait(running)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(running);
        self.check_result()
    }

    /// Checks every tensor's data against its checksum (reads the whole file).
    pub fn verify_data(&self) -> Result<(), FormatError> {
        self.tensors.iter().try_for_each(|t| self.verify_tensor(t))
    }

    /// Checks one tensor's data against its checksum.
    pub fn verify_tensor(&self, info: &TensorInfo) -> Result<(), FormatError> {
        let got = xxhash_rust::xxh3::xxh3_64(&self.data()[info.range.clone()]);
        if got == info.checksum {
            Ok(())
        } else {
            Err(self.damaged(&info.name))
        }
    }

    /// The error for tensor `name`'s data not matching its checksum.
    fn damaged(&self, name: &str) -> FormatError {
        FormatError::DataChecksum {
            file: self.path.clone(),
            tensor: name.to_owned(),
        }
    }
}

/// A checked sub-range `[offset, offset + size)` of a file of `len` bytes.
fn region(what: &str, offset: u64, size: u64, len: usize) -> Result<Range<usize>, FormatError> {
    let end = offset.checked_add(size).filter(|&e| e <= len as u64);
    match end {
        Some(end) => Ok(offset as usize..end as usize),
        None => Err(FormatError::Header(format!(
            "{what} [{offset}, +{size}) lies outside the {len}-byte file"
        ))),
    }
}

fn parse_header(data: &[u8]) -> Result<(Metadata, Vec<TensorInfo>), FormatError> {
    if data.starts_with(b"GGUF") {
        return Err(FormatError::Gguf);
    }
    if data.len() < PREAMBLE_SIZE {
        if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        return Err(FormatError::Truncated {
            expected: PREAMBLE_SIZE as u64,
            actual: data.len() as u64,
        });
    }
    let (pre, _) = Preamble::read_from_prefix(data).map_err(|_| FormatError::BadMagic)?;
    if pre.magic != MAGIC {
        return Err(FormatError::BadMagic);
    }
    if pre.version.get() != VERSION {
        return Err(FormatError::Version {
            found: pre.version.get(),
        });
    }
    if pre.file_size.get() != data.len() as u64 {
        return Err(FormatError::Truncated {
            expected: pre.file_size.get(),
            actual: data.len() as u64,
        });
    }
    if pre.flags.get() != 0 {
        return Err(FormatError::Header(format!(
            "unknown flags {:#x}",
            pre.flags.get()
        )));
    }
    let len = data.len();
    let data_offset = pre.data_offset.get();
    if !data_offset.is_multiple_of(DATA_ALIGN) {
        return Err(FormatError::Header(format!(
            "data offset {data_offset} is not {DATA_ALIGN}-aligned"
        )));
    }
    if data_offset < PREAMBLE_SIZE as u64 {
        return Err(FormatError::Header(format!(
            "data offset {data_offset} lies inside the {PREAMBLE_SIZE}-byte preamble"
        )));
    }
    let header = region("header", 0, data_offset, len)?;
    let mut hasher = Xxh3::new();
    hasher.update(&data[..CHECKSUM_FIELD.start]);
    hasher.update(&[0; 8]);
    hasher.update(&data[CHECKSUM_FIELD.end..header.end]);
    if hasher.digest() != pre.header_checksum.get() {
        return Err(FormatError::HeaderChecksum);
    }
    let meta_range = region("metadata", pre.meta_offset.get(), pre.meta_size.get(), header.end)?;
    let dir_size = pre
        .tensor_count
        .get()
        .checked_mul(size_of::<DirEntry>() as u64)
        .ok_or_else(|| FormatError::Header("tensor count overflows".into()))?;
    let dir_range = region("tensor directory", pre.dir_offset.get(), dir_size, header.end)?;
    let names_range = region(
        "name table",
        pre.names_offset.get(),
        pre.names_size.get(),
        header.end,
    )?;
    let data_range = region("data region", data_offset, pre.data_size.get(), len)?;
    if meta_range.start != PREAMBLE_SIZE
        || dir_range.start < meta_range.end
        || names_range.start < dir_range.end
        || data_range.start < names_range.end
    {
        return Err(FormatError::Header("sections overlap or are out of order".into()));
    }

    let meta: Metadata =
        serde_json::from_slice(&data[meta_range]).map_err(|e| FormatError::Metadata(e.to_string()))?;
    let entries = <[DirEntry]>::ref_from_bytes(&data[dir_range])
        .map_err(|_| FormatError::Header("tensor directory is misaligned".into()))?;
    let names = &data[names_range];
    let mut tensors = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let info = parse_entry(i, e, names, data_offset, pre.data_size.get())?;
        if !seen.insert(info.name.clone()) {
            return Err(FormatError::tensor(&info.name, "appears twice in the directory"));
        }
        tensors.push(info);
    }
    let mut spans: Vec<(usize, usize, &str)> = tensors
        .iter()
        .map(|t| (t.range.start, t.range.end, t.name.as_str()))
        .collect();
    spans.sort_unstable();
    if let Some(w) = spans.windows(2).find(|w| w[1].0 < w[0].1) {
        return Err(FormatError::tensor(
            w[1].2,
            format!("overlaps tensor {:?}", w[0].2),
        ));
    }
    Ok((meta, tensors))
}

fn parse_entry(
    i: usize,
    e: &DirEntry,
    names: &[u8],
    data_offset: u64,
    data_size: u64,
) -> Result<TensorInfo, FormatError> {
    let (start, nlen) = (e.name_offset.get() as usize, e.name_len.get() as usize);
    let name = names
        .get(start..start.saturating_add(nlen))
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| {
            FormatError::Header(format!(
                "directory entry {i}: name is outside the name table or not UTF-8"
            ))
        })?
        .to_owned();
    let dtype = DType::from_code(e.dtype)
        .ok_or_else(|| FormatError::tensor(&name, format!("unknown type code {}", e.dtype)))?;
    let layout = Layout::from_code(e.layout)
        .ok_or_else(|| FormatError::tensor(&name, format!("unknown layout code {}", e.layout)))?;
    let ndim = usize::from(e.ndim);
    if ndim == 0 || ndim > MAX_DIMS {
        return Err(FormatError::tensor(&name, format!("{ndim} dimensions")));
    }
    let shape: Vec<u64> = e.shape[..ndim].iter().map(|d| d.get()).collect();
    let size = tensor_size(dtype, layout, &shape)
        .map_err(|err: ShapeError| FormatError::tensor(&name, format!("shape {shape:?}: {err}")))?;
    if size != e.size.get() {
        return Err(FormatError::tensor(
            &name,
            format!(
                "size {} does not match {dtype} {shape:?} ({size} bytes)",
                e.size.get()
            ),
        ));
    }
    let offset = e.offset.get();
    if !offset.is_multiple_of(DATA_ALIGN) {
        return Err(FormatError::tensor(
            &name,
            format!("offset {offset} is not {DATA_ALIGN}-aligned"),
        ));
    }
    if offset.checked_add(size).is_none_or(|end| end > data_size) {
        return Err(FormatError::tensor(
            &name,
            format!("data [{offset}, +{size}) runs past the data region"),
        ));
    }
    let start = (data_offset + offset) as usize;
    Ok(TensorInfo {
        name,
        dtype,
        layout,
        shape,
        range: start..start + size as usize,
        checksum: e.checksum.get(),
    })
}

trait AlignedBytes {
    fn as_bytes_slice(&self) -> &[u8];
    fn as_mut_bytes_slice(&mut self) -> &mut [u8];
}

impl AlignedBytes for [Align64] {
    fn as_bytes_slice(&self) -> &[u8] {
        // SAFETY: `Align64` is a `repr(C)` wrapper of `[u8; 64]` with no padding, so the slice
        // is `64 * len` initialized bytes.
        unsafe { std::slice::from_raw_parts(self.as_ptr().cast(), self.len() * 64) }
    }
    fn as_mut_bytes_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above; the borrow is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr().cast(), self.len() * 64) }
    }
}

impl<'a> TensorView<'a> {
    /// The name.
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    fn expect(&self, dtype: DType, layout: Layout) -> Result<(), FormatError> {
        if self.info.dtype == dtype && self.info.layout == layout {
            Ok(())
        } else {
            Err(FormatError::tensor(
                &self.info.name,
                format!(
                    "is {} {}, expected {dtype} {}",
                    self.info.dtype,
                    self.info.layout.name(),
                    layout.name()
                ),
            ))
        }
    }

    fn cast<T: FromBytes + zerocopy::Immutable>(&self) -> Result<&'a [T], FormatError> {
        <[T]>::ref_from_bytes(self.bytes)
            .map_err(|_| FormatError::tensor(&self.info.name, "data is misaligned"))
    }

    /// The data as f32 values.
    pub fn f32s(&self) -> Result<&'a [f32], FormatError> {
        self.expect(DType::F32, Layout::RowMajor)?;
        self.cast()
    }

    /// The data as f16 bits.
    pub fn f16_bits(&self) -> Result<&'a [u16], FormatError> {
        self.expect(DType::F16, Layout::RowMajor)?;
        self.cast()
    }

    /// The data as u32 values.
    pub fn u32s(&self) -> Result<&'a [u32], FormatError> {
        self.expect(DType::U32, Layout::RowMajor)?;
        self.cast()
    }

    /// The data as bytes of a U8 tensor.
    pub fn u8s(&self) -> Result<&'a [u8], FormatError> {
        self.expect(DType::U8, Layout::RowMajor)?;
        Ok(self.bytes)
    }

    /// The data as a tiled matrix of `dtype`, whose tiles are `T`.
    pub fn tiled<T: FromBytes + zerocopy::Immutable>(
        &self,
        dtype: DType,
    ) -> Result<Tiled<'a, T>, FormatError> {
        self.expect(dtype, Layout::Tiled8)?;
        let [rows, cols] = self.info.shape[..] else {
            unreachable!("validated: quantized tensors are 2-D")
        };
        Tiled::new(self.cast()?, rows as usize, cols as usize / dtype.block_values())
            .ok_or_else(|| FormatError::tensor(&self.info.name, "tile count does not match the shape"))
    }

    /// The data as a tiled q8 matrix.
    pub fn tiled_q8_0(&self) -> Result<Tiled<'a, TileQ8_0>, FormatError> {
        self.tiled(DType::Q8_0)
    }

    /// The data as a tiled q4 matrix.
    pub fn tiled_q4_0(&self) -> Result<Tiled<'a, TileQ4_0>, FormatError> {
        self.tiled(DType::Q4_0)
    }

    /// The data as a tiled q4-with-minimum matrix.
    pub fn tiled_q4_1(&self) -> Result<Tiled<'a, TileQ4_1>, FormatError> {
        self.tiled(DType::Q4_1)
    }
}
