//! Writing a packed file: plan every tensor first (so the header can be laid out), stream
//! the tensor data, then write the header with its checksums. The file is written to a
//! temporary name beside the destination and renamed into place only when complete.
//!
//! Temporary files are named `.edgelm-PID-XXXXXX.tmp` after the process writing them, so that
//! [`remove_stale_temporaries`] can tell the leftovers of a process that died (killed, power
//! cut) from a conversion still running, and [`remove_own_temporaries`] can clean up from a
//! signal handler.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{Xxh3, xxh3_64};
use zerocopy::IntoBytes;

use super::meta::Metadata;
use super::spec::{
    CHECKSUM_FIELD, DATA_ALIGN, DType, DirEntry, Layout, MAGIC, MAX_DIMS, PREAMBLE_SIZE, Preamble, VERSION,
    tensor_size,
};

/// A tensor to be written: everything but its data.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    /// Name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Element order.
    pub layout: Layout,
    /// Dimensions, outermost first.
    pub shape: Vec<u64>,
}

/// Why a packed file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// I/O failed.
    // `error`, not `source`: the message holds the cause, which an error chain would repeat.
    #[error("writing {path}: {error}")]
    Io {
        /// The destination.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The plan or the data given do not fit the format.
    #[error("{0}")]
    Invalid(String),
}

/// Where everything goes, computed from the metadata and the plan.
struct HeaderLayout {
    meta_json: Vec<u8>,
    names: Vec<u8>,
    entries: Vec<DirEntry>,
    dir_offset: u64,
    names_offset: u64,
    data_offset: u64,
    data_size: u64,
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

fn plan_header(meta: &Metadata, plan: &[TensorPlan]) -> Result<HeaderLayout, WriteError> {
    let meta_json = serde_json::to_vec(meta).map_err(|e| WriteError::Invalid(format!("metadata: {e}")))?;
    let dir_offset = align_up(PREAMBLE_SIZE as u64 + meta_json.len() as u64, 8);
    let names_offset = dir_offset + (plan.len() * size_of::<DirEntry>()) as u64;
    let mut names = Vec::new();
    let mut entries = Vec::with_capacity(plan.len());
    let mut offset = 0u64;
    let mut seen = std::collections::HashSet::new();
    for t in plan {
        if !seen.insert(t.name.as_str()) {
            return Err(WriteError::Invalid(format!("tensor {:?} planned twice", t.name)));
        }
        let size = tensor_size(t.dtype, t.layout, &t.shape).map_err(|e| {
            WriteError::Invalid(format!("tensor {:?} {} {:?}: {e}", t.name, t.dtype, t.shape))
        })?;
        let mut shape = [0u64.into(); MAX_DIMS];
        for (s, &d) in shape.iter_mut().zip(&t.shape) {
            *s = d.into();
        }
        entries.push(DirEntry {
            name_offset: (names.len() as u32).into(),
            name_len: (t.name.len() as u32).into(),
            dtype: t.dtype.code(),
            layout: t.layout.code(),
            ndim: t.shape.len() as u8,
            reserved0: [0; 5],
            shape,
            offset: offset.into(),
            size: size.into(),
            checksum: 0.into(),
            reserved1: 0.into(),
        });
        names.extend_from_slice(t.name.as_bytes());
        offset = align_up(offset + size, DATA_ALIGN);
    }
    let data_offset = align_up(names_offset + names.len() as u64, DATA_ALIGN);
    Ok(HeaderLayout {
        meta_json,
        names,
        entries,
        dir_offset,
        names_offset,
        data_offset,
        data_size: offset,
    })
}

impl HeaderLayout {
    /// Bytes `[0, data_offset)` with the checksum filled in.
    fn encode(&self) -> Vec<u8> {
        let pre = Preamble {
            magic: MAGIC,
            version: VERSION.into(),
            flags: 0.into(),
            file_size: (self.data_offset + self.data_size).into(),
            meta_offset: (PREAMBLE_SIZE as u64).into(),
            meta_size: (self.meta_json.len() as u64).into(),
            dir_offset: self.dir_offset.into(),
            tensor_count: (self.entries.len() as u64).into(),
            names_offset: self.names_offset.into(),
            names_size: (self.names.len() as u64).into(),
            data_offset: self.data_offset.into(),
            data_size: self.data_size.into(),
            header_checksum: 0.into(),
            reserved: [0; 32],
        };
        let mut out = vec![0u8; self.data_offset as usize];
        out[..PREAMBLE_SIZE].copy_from_slice(pre.as_bytes());
        out[PREAMBLE_SIZE..][..self.meta_json.len()].copy_from_slice(&self.meta_json);
        out[self.dir_offset as usize..self.names_offset as usize].copy_from_slice(self.entries.as_bytes());
        out[self.names_offset as usize..][..self.names.len()].copy_from_slice(&self.names);
        let sum = xxh3_64(&out);
        out[CHECKSUM_FIELD].copy_from_slice(&sum.to_le_bytes());
        out
    }
}

/// Streams a packed file to `dest` (through a temporary file in the same folder).
pub struct PackedWriter {
    dest: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
    header: HeaderLayout,
    plan: Vec<TensorPlan>,
    next: usize,
    pos: u64,
}

impl PackedWriter {
    /// Starts a file holding `meta` and the tensors of `plan`, to be written in plan order.
    pub fn create(dest: &Path, meta: &Metadata, plan: Vec<TensorPlan>) -> Result<PackedWriter, WriteError> {
        let header = plan_header(meta, &plan)?;
        let io = |error| WriteError::Io {
            path: dest.to_owned(),
            error,
        };
        if dest.is_dir() {
            return Err(WriteError::Invalid(format!(
                "{}: is a directory; give the path of the file to write",
                dest.display()
            )));
        }
        let dir = folder_of(dest);
        let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
        let tmp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            // The OS error alone: the temporary file's name means nothing to the user.
            .map_err(|e| {
                io(e.raw_os_error()
                    .map_or_else(|| e.kind().into(), std::io::Error::from_raw_os_error))
            })?;
        let mut file = BufWriter::with_capacity(1 << 20, tmp);
        file.seek(SeekFrom::Start(header.data_offset)).map_err(io)?;
        Ok(PackedWriter {
            dest: dest.to_owned(),
            file,
            pos: 0,
            header,
            plan,
            next: 0,
        })
    }

    /// The plan entry whose data is expected next, if any.
    pub fn next_tensor(&self) -> Option<&TensorPlan> {
        self.plan.get(self.next)
    }

    /// Writes the data of the next planned tensor, which must be called `name`.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<(), WriteError> {
        let Some(plan) = self.plan.get(self.next) else {
            return Err(WriteError::Invalid(format!("tensor {name:?} was not planned")));
        };
        if plan.name != name {
            return Err(WriteError::Invalid(format!(
                "expected tensor {:?} next, got {name:?}",
                plan.name
            )));
        }
        let entry = &mut self.header.entries[self.next];
        if entry.size.get() != bytes.len() as u64 {
            return Err(WriteError::Invalid(format!(
                "tensor {name:?}: {} bytes given, {} expected",
                bytes.len(),
                entry.size.get()
            )));
        }
        let io = |error| WriteError::Io {
            path: self.dest.clone(),
            error,
        };
        let pad = entry.offset.get() - self.pos;
        self.file.write_all(&vec![0; pad as usize]).map_err(io)?;
        self.file.write_all(bytes).map_err(io)?;
        self.pos = entry.offset.get() + bytes.len() as u64;
        let mut h = Xxh3::new();
        h.update(bytes);
        entry.checksum = h.digest().into();
        self.next += 1;
        Ok(())
    }

    /// Writes the header, syncs and renames the file into place. Returns the file size.
    pub fn finish(mut self) -> Result<u64, WriteError> {
        if let Some(missing) = self.plan.get(self.next) {
            return Err(WriteError::Invalid(format!(
                "tensor {:?} was planned but not written",
                missing.name
            )));
        }
        let io = |error| WriteError::Io {
            path: self.dest.clone(),
            error,
        };
        let total = self.header.data_offset + self.header.data_size;
        let tail = self.header.data_size - self.pos;
        self.file.write_all(&vec![0; tail as usize]).map_err(io)?;
        let header = self.header.encode();
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(&header).map_err(io)?;
        let tmp = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        // The temporary file is private (0600); a model file is for every user to read.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io)?;
        }
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.dest).map_err(|e| io(e.error))?;
        // The rename is durable once the folder's entry is on disk.
        #[cfg(unix)]
        std::fs::File::open(folder_of(&self.dest))
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(total)
    }
}

/// Temporary files start with this, then the writing process's id and `-`.
const TEMP_PREFIX: &str = ".edgelm-";

/// The folder a file at `path` goes in.
fn folder_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The id of the process that wrote the temporary file called `name`, if it is one.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(".tmp")?;
    rest.split_once('-')?.0.parse().ok()
}

/// Whether process `pid` is still running (where that cannot be told, it is assumed to be).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes the temporary files [`PackedWriter`] left in the folder of `dest` from processes that
/// no longer run (and any that carry this process's id, before it writes one: they are a dead
/// process's whose id was reused). Returns the paths removed. Files of running writers, and
/// every other file, are left alone.
pub fn remove_stale_temporaries(dest: &Path) -> std::io::Result<Vec<PathBuf>> {
    let me = std::process::id();
    remove_temporaries(dest, |pid| pid == me || !process_alive(pid))
}

/// Removes this process's temporary files in the folder of `dest` (from a signal handler, say,
/// where no destructor will run). Returns the paths removed.
pub fn remove_own_temporaries(dest: &Path) -> std::io::Result<Vec<PathBuf>> {
    let me = std::process::id();
    remove_temporaries(dest, |pid| pid == me)
}

fn remove_temporaries(dest: &Path, remove: impl Fn(u32) -> bool) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(folder_of(dest))? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_owner) else {
            continue;
        };
        if remove(pid) && entry.file_type()?.is_file() {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed.push(entry.path()),
                // Another cleaner got there first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Builds a whole packed file in memory (tests, fuzzing seeds). `tensors` pairs each plan
/// entry with its data.
pub fn to_bytes(meta: &Metadata, tensors: &[(TensorPlan, Vec<u8>)]) -> Result<Vec<u8>, WriteError> {
    let plan: Vec<TensorPlan> = tensors.iter().map(|(p, _)| p.clone()).collect();
    let mut header = plan_header(meta, &plan)?;
    let mut out = vec![0u8; (header.data_offset + header.data_size) as usize];
    for ((plan, data), entry) in tensors.iter().zip(&mut header.entries) {
        if entry.size.get() != data.len() as u64 {
            return Err(WriteError::Invalid(format!(
                "tensor {:?}: wrong data size {}",
                plan.name,
                data.len()
            )));
        }
        let at = (header.data_offset + entry.offset.get()) as usize;
        out[at..at + data.len()].copy_from_slice(data);
        entry.checksum = xxh3_64(data).into();
    }
    let bytes = header.encode();
    out[..bytes.len()].copy_from_slice(&bytes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn only_dead_writers_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // Above any pid_max: no such process.
        let dead = format!(".edgelm-{}-aB3x.tmp", 4_000_000_000u32);
        let mine = format!(".edgelm-{me}-q1.tmp");
        let alive = ".edgelm-1-zz.tmp";
        let others = [alive, ".edgelm-aB3xyz.tmp", "model.edgelm", ".edgelm-12.tmp"];
        for name in others.iter().chain([&dead.as_str(), &mine.as_str()]) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let dest = dir.path().join("model.edgelm");
        let mut removed = remove_stale_temporaries(&dest).unwrap();
        removed.sort();
        let mut want = [dir.path().join(&dead), dir.path().join(&mine)];
        want.sort();
        assert_eq!(removed, want);
        for name in others {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        std::fs::write(dir.path().join(&mine), b"x").unwrap();
        assert_eq!(remove_own_temporaries(&dest).unwrap(), [dir.path().join(&mine)]);
        assert_eq!(temp_owner(&mine), Some(me));
        assert_eq!(temp_owner(".edgelm-x-1.tmp"), None);
    }
}
