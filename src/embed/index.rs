//! Semantic search over the lines of a text file. The lines' embeddings are cached in a file
//! beside it (`FILE.edgelm-emb`) whose header holds hashes of the corpus bytes and of the
//! model, the maximum length and a checksum of the vectors: a cache for another corpus,
//! model or length is rebuilt, and so is a damaged one — it is never trusted.
//!
//! Cache layout (little-endian): the 72-byte [`Header`], then `count × dim` f32 values.

use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_128};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, LittleEndian, U32, U64};

use super::{EmbedError, Embedder, Embeddings, cosine};
use crate::format::text::read_text_file;
use crate::model::Model;

/// First bytes of a cache file.
const MAGIC: [u8; 8] = *b"EDGELMEV";
/// Version of the cache layout.
const VERSION: u32 = 1;

/// The start of a cache file.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: U32<LittleEndian>,
    dim: U32<LittleEndian>,
    count: U64<LittleEndian>,
    max_length: U64<LittleEndian>,
    /// xxh3-128 of the corpus bytes.
    corpus: [u8; 16],
    /// [`model_fingerprint`] of the model.
    model: [u8; 16],
    /// xxh3-64 of the vectors' bytes.
    payload: U64<LittleEndian>,
}

/// Why a corpus cannot be indexed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The corpus cannot be read.
    #[error("{}: {error}", path.display())]
    Read {
        /// The corpus.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// The corpus is not UTF-8 text.
    #[error("{}: line {line} is not UTF-8 text", path.display())]
    NotText {
        /// The corpus.
        path: PathBuf,
        /// The first bad line (1-based).
        line: usize,
    },
    /// Embedding the lines failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

/// What became of the cache file while opening an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// The cache matched the corpus and model; nothing was embedded.
    Hit,
    /// There was no cache; the lines were embedded and one was written.
    Created,
    /// The cache was for another corpus, model or length limit, or was damaged (the reason);
    /// the lines were embedded again and it was rewritten.
    Rebuilt(String),
    /// The lines were embedded but the cache could not be written (the reason).
    NotSaved(String),
}

/// One search result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit<'a> {
    /// Line number in the corpus (1-based).
    pub line: usize,
    /// The line's text.
    pub text: &'a str,
    /// Cosine similarity to the query.
    pub score: f32,
}

/// The non-blank lines of a corpus file and their embeddings.
#[derive(Debug)]
pub struct CorpusIndex {
    lines: Vec<(usize, String)>,
    embeddings: Embeddings,
}

impl CorpusIndex {
    /// Indexes the non-blank lines of `corpus` with `embedder`, reading and writing the
    /// cache at [`CorpusIndex::cache_path`].
    pub fn open(
        embedder: &mut Embedder<'_>,
        corpus: &Path,
    ) -> Result<(CorpusIndex, CacheStatus), IndexError> {
        let bytes = read_text_file(corpus).map_err(|error| IndexError::Read {
            path: corpus.to_owned(),
            error,
        })?;
        let lines = text_lines(&bytes).map_err(|line| IndexError::NotText {
            path: corpus.to_owned(),
            line,
        })?;
        let key = Header {
            magic: MAGIC,
            version: VERSION.into(),
            dim: (embedder.dim() as u32).into(),
            count: (lines.len() as u64).into(),
            max_length: (embedder.max_length() as u64).into(),
            corpus: xxh3_128(&bytes).to_le_bytes(),
            model: model_fingerprint(embedder.model()).to_le_bytes(),
            payload: 0.into(),
        };
        // A pipe or device (`/dev/stdin`, `/dev/null`) has no place beside it for a cache:
        // none is read or written.
        let regular = std::fs::metadata(corpus).is_ok_and(|m| m.is_file());
        let cache = regular.then(|| Self::cache_path(corpus));
        let stale = match cache.as_ref().map(std::fs::read) {
            None => None,
            Some(Ok(data)) => match load(&key, &data) {
                Ok(embeddings) => return Ok((CorpusIndex { lines, embeddings }, CacheStatus::Hit)),
                Err(reason) => Some(reason),
            },
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Some(Err(e)) => Some(format!("unreadable ({e})")),
        };
        let texts: Vec<&str> = lines.iter().map(|(_, t)| &t[..]).collect();
        let embeddings = embedder.embed(&texts)?;
        let status = match (cache.map(|c| (save(&c, key, &embeddings), c)), stale) {
            (None, _) => CacheStatus::NotSaved(format!("{} is not a regular file", corpus.display())),
            (Some((Err(e), cache)), _) => CacheStatus::NotSaved(format!("{}: {e}", cache.display())),
            (Some((Ok(()), _)), None) => CacheStatus::Created,
            (Some((Ok(()), _)), Some(reason)) => CacheStatus::Rebuilt(reason),
        };
        Ok((CorpusIndex { lines, embeddings }, status))
    }

    /// Where the cache of `corpus` lives: the same path with `.edgelm-emb` appended.
    pub fn cache_path(corpus: &Path) -> PathBuf {
        let mut name = corpus.as_os_str().to_owned();
        name.push(".edgelm-emb");
        PathBuf::from(name)
    }

    /// Number of indexed lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether the corpus has no non-blank line.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The lines' embeddings, in corpus order.
    pub fn embeddings(&self) -> &Embeddings {
        &self.embeddings
    }

    /// The `k` lines most similar to `query` (a vector from the same embedder), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Hit<'_>> {
        let mut scored: Vec<(f32, usize)> = self
            .embeddings
            .iter()
            .enumerate()
            .map(|(i, v)| (cosine(query, v), i))
            .collect();
        let best_first = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = k.min(scored.len());
        if k < scored.len() && k > 0 {
            scored.select_nth_unstable_by(k - 1, best_first);
        }
        scored.truncate(k);
        scored.sort_by(best_first);
        scored
            .into_iter()
            .map(|(score, i)| Hit {
                line: self.lines[i].0,
                text: &self.lines[i].1,
                score,
            })
            .collect()
    }
}

/// The non-blank lines of `bytes` with their 1-based numbers (a trailing `\r` dropped), or
/// the number of the first line that is not UTF-8.
fn text_lines(bytes: &[u8]) -> Result<Vec<(usize, String)>, usize> {
    let mut lines = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = std::str::from_utf8(line).map_err(|_| i + 1)?;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if !line.trim().is_empty() {
            lines.push((i + 1, line.to_owned()));
        }
    }
    Ok(lines)
}

/// A hash of everything that determines a model's outputs: its metadata and, per tensor,
/// name, type, layout, shape and the data checksum from the file's directory.
pub fn model_fingerprint(model: &Model) -> u128 {
    let mut h = Xxh3::new();
    h.update(&serde_json::to_vec(model.meta()).unwrap_or_default());
    for t in model.file().tensors() {
        h.update(t.name.as_bytes());
        h.update(&[0]);
        h.update(t.dtype.to_string().as_bytes());
        h.update(t.layout.name().as_bytes());
        for d in &t.shape {
            h.update(&d.to_le_bytes());
        }
        h.update(&t.checksum.to_le_bytes());
    }
    h.digest128()
}

/// The vectors of a cache file, if it is intact and was made for `key`; else why not.
fn load(key: &Header, data: &[u8]) -> Result<Embeddings, String> {
    let (header, payload) =
        Header::read_from_prefix(data).map_err(|_| "damaged (truncated header)".to_owned())?;
    if header.magic != MAGIC || header.version != key.version {
        return Err("not an edgelm embedding cache of this version".into());
    }
    let changed = [
        (header.corpus != key.corpus, "the corpus changed"),
        (header.model != key.model, "the model changed"),
        (header.max_length != key.max_length, "the maximum length changed"),
        (header.dim != key.dim, "the vector size changed"),
    ];
    if let Some((_, what)) = changed.iter().find(|c| c.0) {
        return Err((*what).into());
    }
    let values = usize::try_from(header.count.get())
        .ok()
        .and_then(|c| c.checked_mul(header.dim.get() as usize))
        .filter(|_| header.count == key.count);
    if values.and_then(|v| v.checked_mul(4)) != Some(payload.len()) {
        return Err("damaged (wrong size)".into());
    }
    if xxh3_64(payload) != header.payload.get() {
        return Err("damaged (checksum mismatch)".into());
    }
    let values = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Embeddings::new(key.dim.get() as usize, values).ok_or_else(|| "damaged (empty vectors)".into())
}

/// Writes the cache atomically (a temporary file beside it, then renamed over it).
fn save(path: &Path, mut header: Header, embeddings: &Embeddings) -> std::io::Result<()> {
    let payload: Vec<u8> = embeddings
        .as_slice()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    header.payload = xxh3_64(&payload).into();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".edgelm-emb").tempfile_in(dir)?;
    tmp.write_all(header.as_bytes())?;
    tmp.write_all(&payload)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_skip_blanks_and_keep_numbers() {
        let lines = text_lines(b"first\r\n\n  \nsecond\nthird").unwrap();
        let want = [(1, "first"), (4, "second"), (5, "third")];
        assert_eq!(lines.len(), want.len());
        for ((n, t), (wn, wt)) in lines.iter().zip(want) {
            assert_eq!((*n, t.as_str()), (wn, wt));
        }
        assert_eq!(text_lines(b"ok\nbad \xff\n").unwrap_err(), 2);
        assert!(text_lines(b"").unwrap().is_empty());
    }

    fn key(count: u64) -> Header {
        Header {
            magic: MAGIC,
            version: VERSION.into(),
            dim: 2.into(),
            count: count.into(),
            max_length: 256.into(),
            corpus: [1; 16],
            model: [2; 16],
            payload: 0.into(),
        }
    }

    #[test]
    fn caches_round_trip_and_refuse_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.edgelm-emb");
        let e = Embeddings::new(2, vec![1.0, 2.0, 3.0, -4.5]).unwrap();
        save(&path, key(2), &e).unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), size_of::<Header>() + 16);
        assert_eq!(load(&key(2), &data).unwrap(), e);

        let mut other = key(2);
        other.corpus = [9; 16];
        assert_eq!(load(&other, &data).unwrap_err(), "the corpus changed");
        let mut other = key(2);
        other.model = [9; 16];
        assert_eq!(load(&other, &data).unwrap_err(), "the model changed");
        assert!(load(&key(3), &data).unwrap_err().contains("wrong size"));
        assert!(
            load(&key(2), &data[..data.len() - 1])
                .unwrap_err()
                .contains("wrong size")
        );
        assert!(load(&key(2), &data[..10]).unwrap_err().contains("truncated"));
        let mut flipped = data.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(load(&key(2), &flipped).unwrap_err().contains("checksum"));
        let mut wrong_magic = data;
        wrong_magic[0] = b'X';
        assert!(load(&key(2), &wrong_magic).unwrap_err().contains("not an edgelm"));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary files left"
        );
    }

    #[test]
    fn search_ranks_by_cosine() {
        let index = CorpusIndex {
            lines: vec![(1, "a".into()), (3, "b".into()), (4, "c".into())],
            embeddings: Embeddings::new(2, vec![1.0, 0.0, 0.0, 1.0, 0.7, 0.7]).unwrap(),
        };
        let hits = index.search(&[1.0, 0.1], 2);
        assert_eq!(hits.iter().map(|h| h.line).collect::<Vec<_>>(), [1, 4]);
        assert!(hits[0].score > hits[1].score);
        assert_eq!(index.search(&[0.0, 1.0], 10).len(), 3);
        assert!(index.search(&[0.0, 1.0], 0).is_empty());
    }
}
