//! Sentence embeddings with encoder models.

use std::ffi::c_char;

use edgelm::embed::EmbedOptions;

use crate::error::{EdgelmStatus, Error, ErrorKind, run};
use crate::handle::{Handle, Kind};
use crate::model::{EdgelmModel, model_data};
use crate::{out, slice, text};
use edgelm_ffi::OwnedEmbedder;

/// Turns texts into sentence vectors with an encoder model (opaque): its buffers and worker
/// threads. One call at a time per embedder.
pub struct EdgelmEmbedder {
    _opaque: [u8; 0],
}

impl Kind for OwnedEmbedder {
    const MAGIC: u64 = 0x6564_676c_6d45_4d42; // "edglmEMB"
    const NAME: &'static str = "embedder";
    type C = EdgelmEmbedder;
}

/// Makes an embedder of an encoder model with `threads` worker threads (0: the physical
/// performance cores; capped at the available cores) and stores it in `*out_embedder` (NULL on failure). Decoder models give
/// `EDGELM_STATUS_UNSUPPORTED`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `model` is NULL or a model handle; the out pointer is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_embedder_new(
    model: *const EdgelmModel,
    threads: u32,
    out_embedder: *mut *mut EdgelmEmbedder,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { out(out_embedder, "out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded contract.
        let m = unsafe { model_data(model) }?;
        let opts = EmbedOptions {
            threads: edgelm_ffi::threads(Some(threads as usize)),
            ..EmbedOptions::default()
        };
        *slot = Handle::into_raw(OwnedEmbedder::open(m.model.clone(), &opts)?);
        Ok(())
    })
}

/// Frees an embedder (NULL: nothing to do).
///
/// Thread safety: no other call may use this embedder during or after this one.
///
/// # Safety
/// `embedder` is NULL or an embedder handle not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_embedder_free(embedder: *mut EdgelmEmbedder) -> EdgelmStatus {
    // SAFETY: forwarded contract.
    run(|| unsafe { Handle::<OwnedEmbedder>::free(embedder) })
}

/// Embeds `n` NUL-terminated UTF-8 texts (longer ones are truncated to the model's maximum
/// length) into `vectors`: row `i` of `embedding_dim` floats (see `edgelm_model_info`) is text
/// `i`'s vector. `*needed` receives `n * embedding_dim`; `EDGELM_STATUS_BUFFER_TOO_SMALL`
/// (nothing computed) when it exceeds `cap`.
///
/// Thread safety: one call at a time per embedder.
///
/// # Safety
/// `embedder` is NULL or an embedder handle; `texts` is NULL or `n` readable pointers to
/// NULL or NUL-terminated strings; `vectors` is NULL or `cap` writable floats; `needed` is
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_embed(
    embedder: *mut EdgelmEmbedder,
    texts: *const *const c_char,
    n: usize,
    vectors: *mut f32,
    cap: usize,
    needed: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (mut e, texts) = unsafe {
            (
                Handle::<OwnedEmbedder>::lock(embedder)?,
                slice(texts, n, "texts")?,
            )
        };
        let texts = texts
            .iter()
            // SAFETY: forwarded contract.
            .map(|&t| unsafe { text(t, "text") })
            .collect::<Result<Vec<_>, Error>>()?;
        let want = n.saturating_mul(e.with(|e| e.dim()));
        // SAFETY: forwarded contract.
        *unsafe { out(needed, "needed") }? = want;
        if want > cap {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("the buffer holds {cap} floats, {want} are needed"),
            ));
        }
        let vecs = e.with(|e| e.run_in_pool(|e| e.embed(&texts)))?;
        // SAFETY: forwarded contract; `cap >= want` was checked above.
        unsafe { crate::copy_out(vecs.as_slice(), vectors, cap, needed) }
    })
}
