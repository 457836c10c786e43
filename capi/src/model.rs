//! The model handle: open, inspect, tokenize, detokenize, render chat prompts.

use std::ffi::{CString, c_char};
use std::path::Path;
use std::sync::Arc;

use edgelm::chat::{ChatTemplate, Message};
use edgelm::model::Model;
use edgelm::tokenizer::EncodeOptions;

use crate::error::{EdgelmStatus, Error, ErrorKind, run};
use crate::handle::{Handle, Kind};
use crate::{copy_out, out, slice, text};

/// A loaded model (opaque). Immutable: every function taking a `const EdgelmModel *` may be
/// called from any number of threads at once.
pub struct EdgelmModel {
    _opaque: [u8; 0],
}

pub(crate) struct ModelData {
    pub(crate) model: Arc<Model>,
    architecture: CString,
    /// The compiled chat template, or why it does not compile.
    template: Result<ChatTemplate, String>,
}

impl Kind for ModelData {
    const MAGIC: u64 = 0x6564_676c_6d4d_4f44; // "edglmMOD"
    const NAME: &'static str = "model";
    type C = EdgelmModel;
}

/// The model behind a handle.
///
/// # Safety
/// `model` is null or a pointer returned by `edgelm_model_open` (see `Handle::check`).
pub(crate) unsafe fn model_data<'a>(model: *const EdgelmModel) -> Result<&'a ModelData, Error> {
    // SAFETY: forwarded contract.
    unsafe { Handle::<ModelData>::shared(model) }
}

/// A model's configuration.
#[repr(C)]
pub struct EdgelmModelInfo {
    /// Architecture name (`llama`, `qwen2`, `gemma3`, `bert`, ...), owned by the model handle.
    pub architecture: *const c_char,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Longest context the model supports, in tokens.
    pub max_context: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Transformer blocks.
    pub num_layers: usize,
    /// Values per sentence vector for encoder models; 0 for decoders (which generate).
    pub embedding_dim: usize,
}

/// Opens the packed `.edgelm` model at `path` (UTF-8, NUL-terminated) and stores its handle
/// in `*out_model` (NULL on failure). Weights are memory-mapped and paged in on use. Free with
/// `edgelm_model_free`; sessions and embedders keep the model alive after that.
///
/// Thread safety: any thread.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; the out pointer is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_model_open(
    path: *const c_char,
    out_model: *mut *mut EdgelmModel,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { out(out_model, "out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded contract.
        let path = unsafe { text(path, "path") }?;
        let model = Model::open(Path::new(path))?;
        let architecture = CString::new(model.config().architecture.name()).unwrap_or_default();
        let template = ChatTemplate::for_model(&model).map_err(|e| e.to_string());
        *slot = Handle::into_raw(ModelData {
            model: Arc::new(model),
            architecture,
            template,
        });
        Ok(())
    })
}

/// Frees a model handle (NULL: nothing to do). Sessions and embedders made from it stay
/// valid: the model is released with the last of them.
///
/// Thread safety: no other call may use this handle during or after this one.
///
/// # Safety
/// `model` is NULL or a model handle not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_model_free(model: *mut EdgelmModel) -> EdgelmStatus {
    // SAFETY: forwarded contract.
    run(|| unsafe { Handle::<ModelData>::free(model) })
}

/// Writes the model's configuration to `*info`; `info->architecture` lives as long as the
/// model handle.
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
/// `model` is NULL or a model handle; `info` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_model_info(
    model: *const EdgelmModel,
    info: *mut EdgelmModelInfo,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (m, info) = unsafe { (model_data(model)?, out(info, "info")?) };
        let c = m.model.config();
        *info = EdgelmModelInfo {
            architecture: m.architecture.as_ptr(),
            vocab_size: c.vocab_size,
            max_context: c.max_context,
            hidden_size: c.hidden_size,
            num_layers: c.num_layers,
            embedding_dim: if c.architecture.is_decoder() {
                0
            } else {
                c.hidden_size
            },
        };
        Ok(())
    })
}

/// `edgelm_tokenize` flag: add the tokens the model expects around a text (BOS, `[CLS]`...).
pub const EDGELM_TOKENIZE_ADD_SPECIAL: u32 = 1;
/// `edgelm_tokenize` flag: text that spells a special token (`<|im_end|>`) becomes that
/// token. Without it such text is plain text: never set it for text from other people.
pub const EDGELM_TOKENIZE_PARSE_SPECIAL: u32 = 2;

/// Tokenizes `len` bytes of UTF-8 at `text` (NUL bytes allowed) into `ids` (room for `cap`
/// ids; may be NULL when `cap` is 0). `*needed` receives the number of ids; when it exceeds
/// `cap`, nothing is written and `EDGELM_STATUS_BUFFER_TOO_SMALL` is returned: call again
/// with a buffer of `*needed`. `flags`: `EDGELM_TOKENIZE_*` bits.
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
/// `model` is NULL or a model handle; `text` is NULL or `len` readable bytes; `ids` is NULL or
/// `cap` writable ids; `needed` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_tokenize(
    model: *const EdgelmModel,
    text: *const c_char,
    len: usize,
    flags: u32,
    ids: *mut u32,
    cap: usize,
    needed: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (m, bytes) = unsafe { (model_data(model)?, slice(text.cast::<u8>(), len, "text")?) };
        let text = std::str::from_utf8(bytes).map_err(|e| Error::arg(format!("text is not UTF-8: {e}")))?;
        if flags & !(EDGELM_TOKENIZE_ADD_SPECIAL | EDGELM_TOKENIZE_PARSE_SPECIAL) != 0 {
            return Err(Error::arg(format!("unknown tokenize flags {flags:#x}")));
        }
        let opts = EncodeOptions {
            add_special: flags & EDGELM_TOKENIZE_ADD_SPECIAL != 0,
            parse_special: flags & EDGELM_TOKENIZE_PARSE_SPECIAL != 0,
            max_length: None,
        };
        let tokens = m.model.tokenizer().encode(text, opts)?;
        // SAFETY: forwarded contract.
        unsafe { copy_out(&tokens, ids, cap, needed) }
    })
}

/// Writes the text of `n` token ids to `buf` (room for `cap` bytes), NUL-terminated.
/// `*needed` receives the bytes needed including the NUL; `EDGELM_STATUS_BUFFER_TOO_SMALL`
/// when it exceeds `cap`. The text may end inside a UTF-8 character when the ids do.
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
/// `model` is NULL or a model handle; `ids` is NULL or `n` readable ids; `buf` is NULL or
/// `cap` writable bytes; `needed` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_detokenize(
    model: *const EdgelmModel,
    ids: *const u32,
    n: usize,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (m, ids) = unsafe { (model_data(model)?, slice(ids, n, "ids")?) };
        let tok = m.model.tokenizer();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
            return Err(Error::arg(format!(
                "token id {bad} is outside the vocabulary of {}",
                tok.vocab_size()
            )));
        }
        let mut bytes = tok.decode(ids);
        bytes.push(0);
        // SAFETY: forwarded contract.
        unsafe { copy_out(&bytes, buf.cast::<u8>(), cap, needed) }
    })
}

/// Writes the bytes of token `id` (its vocabulary entry, special tokens included) to `buf`,
/// NUL-terminated, as `edgelm_detokenize` does.
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
/// As `edgelm_detokenize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_token_piece(
    model: *const EdgelmModel,
    id: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let m = unsafe { model_data(model) }?;
        let tok = m.model.tokenizer();
        let piece = tok.token_bytes(id).ok_or_else(|| {
            Error::arg(format!(
                "token id {id} is outside the vocabulary of {}",
                tok.vocab_size()
            ))
        })?;
        let bytes = [piece, b"\0"].concat();
        // SAFETY: forwarded contract.
        unsafe { copy_out(&bytes, buf.cast::<u8>(), cap, needed) }
    })
}

/// One turn of a conversation: NUL-terminated UTF-8 strings.
#[repr(C)]
pub struct EdgelmMessage {
    /// `system`, `user` or `assistant`.
    pub role: *const c_char,
    /// The text. Always plain text: text that spells a special token stays text, so a
    /// message cannot open a turn of its own.
    pub content: *const c_char,
}

/// Renders `n` messages with the model's chat template (ChatML where it has none), ending
/// with the assistant's turn opener, and writes the prompt's token ids to `ids` as
/// `edgelm_tokenize` does (`*needed`, `EDGELM_STATUS_BUFFER_TOO_SMALL`).
///
/// Thread safety: any thread, concurrently.
///
/// # Safety
/// `model` is NULL or a model handle; `messages` is NULL or `n` readable messages whose
/// strings are NULL or NUL-terminated; `ids`, `needed` as in `edgelm_tokenize`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_chat_tokens(
    model: *const EdgelmModel,
    messages: *const EdgelmMessage,
    n: usize,
    ids: *mut u32,
    cap: usize,
    needed: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (m, messages) = unsafe { (model_data(model)?, slice(messages, n, "messages")?) };
        let messages = messages
            .iter()
            .map(|msg| {
                // SAFETY: forwarded contract.
                let (role, content) = unsafe { (text(msg.role, "role")?, text(msg.content, "content")?) };
                Ok(Message::new(role, content))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let template = m
            .template
            .as_ref()
            .map_err(|e| Error::new(ErrorKind::Template, e.as_str()))?;
        let tokens = template.encode(m.model.tokenizer(), &messages)?;
        // SAFETY: forwarded contract.
        unsafe { copy_out(&tokens, ids, cap, needed) }
    })
}
