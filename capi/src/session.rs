//! Sessions (KV cache and buffers of one conversation), samplers and the generation loop.

use std::ffi::{c_char, c_int, c_void};
use std::ops::ControlFlow;

use edgelm::generate::{GenerateOptions, LoopGuard, StopReason, generate};
use edgelm::kv_cache::KvType;
use edgelm::sampling::{Sampler, SamplingParams};
use edgelm::session::SessionOptions;

use crate::error::{EdgelmStatus, Error, ErrorKind, run};
use crate::handle::{Guard, Handle, Kind};
use crate::model::{EdgelmModel, model_data};
use crate::{out, slice, text};
use edgelm_ffi::{OwnedSession, checked_sampling};

/// A conversation with a decoder model: its KV cache, buffers and worker threads (opaque).
/// One call at a time per session (a second one at once gets `EDGELM_STATUS_BUSY`); a
/// session may move between threads.
pub struct EdgelmSession {
    _opaque: [u8; 0],
}

/// A sampler: settings, random state and buffers (opaque). One call at a time per sampler.
pub struct EdgelmSampler {
    _opaque: [u8; 0],
}

pub(crate) struct SessionData {
    session: OwnedSession,
    vocab: usize,
}

impl Kind for SessionData {
    const MAGIC: u64 = 0x6564_676c_6d53_4553; // "edglmSES"
    const NAME: &'static str = "session";
    type C = EdgelmSession;
}

pub(crate) struct SamplerData {
    sampler: Sampler,
    vocab: usize,
}

impl Kind for SamplerData {
    const MAGIC: u64 = 0x6564_676c_6d53_4d50; // "edglmSMP"
    const NAME: &'static str = "sampler";
    type C = EdgelmSampler;
}

/// KV cache of 16-bit floats (default).
pub const EDGELM_KV_F16: u32 = 0;
/// KV cache of 32-bit floats (exact, twice the memory).
pub const EDGELM_KV_F32: u32 = 1;
/// KV cache of 8-bit blocks (half the memory of f16).
pub const EDGELM_KV_Q8: u32 = 2;

/// How a session is set up; start from `edgelm_session_options_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EdgelmSessionOptions {
    /// Context size in tokens; 0: the model's maximum, capped at 4096.
    pub context: u32,
    /// Worker threads; 0: the physical performance cores; capped at the available cores.
    pub threads: u32,
    /// `EDGELM_KV_F16`, `EDGELM_KV_F32` or `EDGELM_KV_Q8`.
    pub kv_type: u32,
}

/// The default session options.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_session_options_default() -> EdgelmSessionOptions {
    EdgelmSessionOptions {
        context: 0,
        threads: 0,
        kv_type: EDGELM_KV_F16,
    }
}

fn session_options(o: &EdgelmSessionOptions) -> Result<SessionOptions, Error> {
    let kv_type = match o.kv_type {
        EDGELM_KV_F16 => KvType::F16,
        EDGELM_KV_F32 => KvType::F32,
        EDGELM_KV_Q8 => KvType::Q8,
        other => return Err(Error::arg(format!("unknown KV type {other}"))),
    };
    Ok(SessionOptions {
        context: (o.context != 0).then_some(o.context as usize),
        threads: edgelm_ffi::threads(Some(o.threads as usize)),
        kv_type,
        ..SessionOptions::default()
    })
}

/// Makes a session of a decoder model (`opts` NULL: defaults) and stores it in `*out_session` (NULL
/// on failure). Allocates the whole KV cache now; feeding tokens allocates nothing.
/// Encoder models give `EDGELM_STATUS_UNSUPPORTED`.
///
/// Thread safety: any thread; the model may be shared by many sessions.
///
/// # Safety
/// `model` is NULL or a model handle; `opts` is NULL or readable; the out pointer is NULL or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_new(
    model: *const EdgelmModel,
    opts: *const EdgelmSessionOptions,
    out_session: *mut *mut EdgelmSession,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { out(out_session, "out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded contract.
        let m = unsafe { model_data(model) }?;
        // SAFETY: forwarded contract (NULL allowed).
        let opts = unsafe { opts.as_ref() }
            .copied()
            .unwrap_or_else(|| edgelm_session_options_default());
        let session = OwnedSession::open(m.model.clone(), &session_options(&opts)?)?;
        *slot = Handle::into_raw(SessionData {
            session,
            vocab: m.model.config().vocab_size,
        });
        Ok(())
    })
}

/// Frees a session (NULL: nothing to do).
///
/// Thread safety: no other call may use this session during or after this one.
///
/// # Safety
/// `session` is NULL or a session handle not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_free(session: *mut EdgelmSession) -> EdgelmStatus {
    // SAFETY: forwarded contract.
    run(|| unsafe { Handle::<SessionData>::free(session) })
}

/// # Safety
/// `session` is NULL or a session handle.
unsafe fn lock_session<'a>(session: *const EdgelmSession) -> Result<Guard<'a, SessionData>, Error> {
    // SAFETY: forwarded contract.
    unsafe { Handle::lock(session) }
}

/// # Safety
/// `sampler` is NULL or a sampler handle.
unsafe fn lock_sampler<'a>(
    sampler: *const EdgelmSampler,
    vocab: usize,
) -> Result<Guard<'a, SamplerData>, Error> {
    // SAFETY: forwarded contract.
    let s = unsafe { Handle::<SamplerData>::lock(sampler) }?;
    if s.vocab != vocab {
        return Err(Error::arg(
            "the sampler was made for a model with another vocabulary",
        ));
    }
    Ok(s)
}

/// Appends `n` tokens to the session's context. When `logits` is not NULL it receives a
/// pointer to the logits after the last token (`vocab_size` floats, owned by the session,
/// valid until the next call on it). `EDGELM_STATUS_CONTEXT_FULL` when they do not fit.
///
/// Thread safety: one call at a time per session.
///
/// # Safety
/// `session` is NULL or a session handle; `ids` is NULL or `n` readable ids; `logits` is
/// NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_feed(
    session: *mut EdgelmSession,
    ids: *const u32,
    n: usize,
    logits: *mut *const f32,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (mut s, ids) = unsafe { (lock_session(session)?, slice(ids, n, "ids")?) };
        let out = s.session.with(|s| s.feed(ids).map(|l| l.as_ptr()))?;
        if !logits.is_null() {
            // SAFETY: forwarded contract (checked non-null).
            *unsafe { self::out(logits, "logits") }? = out;
        }
        Ok(())
    })
}

/// Appends `n` tokens (may be 0 after a feed) and samples the next token into `*token`; the
/// token is not fed (pass it to the next call).
///
/// Thread safety: one call at a time per session and per sampler.
///
/// # Safety
/// `session`, `sampler` are NULL or handles of their kind; `ids` is NULL or `n` readable ids;
/// `token` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_sample(
    session: *mut EdgelmSession,
    sampler: *mut EdgelmSampler,
    ids: *const u32,
    n: usize,
    token: *mut u32,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (mut s, token, ids) = unsafe {
            (
                lock_session(session)?,
                out(token, "token")?,
                slice(ids, n, "ids")?,
            )
        };
        // SAFETY: forwarded contract.
        let mut sampler = unsafe { lock_sampler(sampler, s.vocab) }?;
        if ids.is_empty() && s.session.with(|s| s.position()) == 0 {
            return Err(Error::arg(
                "nothing to sample from: feed at least one token first",
            ));
        }
        *token = s.session.with(|s| s.feed_and_sample(ids, &mut sampler.sampler))?;
        Ok(())
    })
}

/// Makes the `edgelm_generate` running on `session` stop before its next batch of prompt
/// tokens or its next token (then `EDGELM_STATUS_OK` with stop reason `CANCELLED`); no effect
/// on a generation that starts later. For a voice loop whose user talks over the answer, or
/// an application shutting down during a long prompt.
///
/// Thread safety: any thread, also from inside the generation's callback, while the session
/// is generating; not concurrently with or after `edgelm_session_free`.
///
/// # Safety
/// `session` is NULL or a session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_cancel(session: *const EdgelmSession) -> EdgelmStatus {
    // SAFETY: forwarded contract.
    run(|| unsafe { Handle::<SessionData>::cancel(session) })
}

/// Forgets the session's context (position 0); the cache is kept for reuse.
///
/// Thread safety: one call at a time per session.
///
/// # Safety
/// `session` is NULL or a session handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_reset(session: *mut EdgelmSession) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        unsafe { lock_session(session) }?.session.with(|s| s.reset());
        Ok(())
    })
}

/// Writes the number of tokens in the context (the next token's position) to `*position`
/// and the context size to `*context`; either may be NULL.
///
/// Thread safety: one call at a time per session.
///
/// # Safety
/// `session` is NULL or a session handle; `position`, `context` are NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_session_position(
    session: *mut EdgelmSession,
    position: *mut usize,
    context: *mut usize,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let (pos, ctx) = unsafe { lock_session(session) }?
            .session
            .with(|s| (s.position(), s.context()));
        // SAFETY: forwarded contract (each checked non-null).
        unsafe {
            if !position.is_null() {
                *out(position, "position")? = pos;
            }
            if !context.is_null() {
                *out(context, "context")? = ctx;
            }
        }
        Ok(())
    })
}

/// Sampling settings; start from `edgelm_sampler_params_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EdgelmSamplerParams {
    /// Softmax temperature; 0: greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probabilities add up to `top_p` (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: none).
    pub min_p: f32,
    /// Repetition penalty on recent tokens (1: off).
    pub repeat_penalty: f32,
    /// Recent tokens the penalties look at (at most 2^20).
    pub repeat_last_n: u32,
    /// Subtracted once from the logit of every recent token (0: off).
    pub presence_penalty: f32,
    /// Subtracted per occurrence of a recent token (0: off).
    pub frequency_penalty: f32,
    /// DRY penalty strength (0: off); the sequence breakers are llama.cpp's defaults.
    pub dry_multiplier: f32,
    /// DRY: growth of the penalty with the repeat's length (at least 1).
    pub dry_base: f32,
    /// DRY: longest repeat not penalised.
    pub dry_allowed_length: u32,
    /// DRY: recent tokens searched for repeats (at most 2^20).
    pub dry_penalty_last_n: u32,
    /// Random seed: the same seed, prompt and settings give the same text.
    pub seed: u64,
}

/// The default sampling settings (llama.cpp's: temperature 0.8, top-k 40, top-p 0.95,
/// min-p 0.05); set `temperature` to 0 for greedy decoding.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_sampler_params_default() -> EdgelmSamplerParams {
    let d = SamplingParams::default();
    let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    EdgelmSamplerParams {
        temperature: d.temperature,
        top_k: n(d.top_k),
        top_p: d.top_p,
        min_p: d.min_p,
        repeat_penalty: d.repeat_penalty,
        repeat_last_n: n(d.repeat_last_n),
        presence_penalty: d.presence_penalty,
        frequency_penalty: d.frequency_penalty,
        dry_multiplier: d.dry_multiplier,
        dry_base: d.dry_base,
        dry_allowed_length: n(d.dry_allowed_length),
        dry_penalty_last_n: n(d.dry_penalty_last_n),
        seed: d.seed,
    }
}

fn sampling_params(p: &EdgelmSamplerParams) -> Result<SamplingParams, Error> {
    checked_sampling(SamplingParams {
        temperature: p.temperature,
        top_k: p.top_k as usize,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        repeat_last_n: p.repeat_last_n as usize,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        dry_multiplier: p.dry_multiplier,
        dry_base: p.dry_base,
        dry_allowed_length: p.dry_allowed_length as usize,
        dry_penalty_last_n: p.dry_penalty_last_n as usize,
        seed: p.seed,
        ..SamplingParams::default()
    })
}

/// Makes a sampler for `model` (`params` NULL: defaults) and stores it in `*out_sampler` (NULL on
/// failure). Non-finite or negative settings give `EDGELM_STATUS_INVALID_ARGUMENT`.
///
/// Thread safety: any thread.
///
/// # Safety
/// `model` is NULL or a model handle; `params` is NULL or readable; `out` is NULL or valid
/// for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_sampler_new(
    model: *const EdgelmModel,
    params: *const EdgelmSamplerParams,
    out_sampler: *mut *mut EdgelmSampler,
) -> EdgelmStatus {
    run(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { out(out_sampler, "out") }?;
        *slot = std::ptr::null_mut();
        // SAFETY: forwarded contract.
        let m = unsafe { model_data(model) }?;
        // SAFETY: forwarded contract (NULL allowed).
        let params = unsafe { params.as_ref() }
            .copied()
            .unwrap_or_else(|| edgelm_sampler_params_default());
        let sampler = Sampler::new(sampling_params(&params)?, &m.model);
        *slot = Handle::into_raw(SamplerData {
            sampler,
            vocab: m.model.config().vocab_size,
        });
        Ok(())
    })
}

/// Frees a sampler (NULL: nothing to do).
///
/// Thread safety: no other call may use this sampler during or after this one.
///
/// # Safety
/// `sampler` is NULL or a sampler handle not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_sampler_free(sampler: *mut EdgelmSampler) -> EdgelmStatus {
    // SAFETY: forwarded contract.
    run(|| unsafe { Handle::<SamplerData>::free(sampler) })
}

/// Receives each piece of generated text (`len` bytes of UTF-8, not NUL-terminated, never
/// splitting a character). Return 0 to go on, nonzero to stop generation. It runs on one of
/// the session's worker threads while the generating call waits; it must not unwind or
/// `longjmp` out, and calls on the same session or sampler from it get `EDGELM_STATUS_BUSY`.
pub type EdgelmTextCallback =
    Option<unsafe extern "C" fn(text: *const c_char, len: usize, user_data: *mut c_void) -> c_int>;

/// What to generate; start from `edgelm_generate_options_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EdgelmGenerateOptions {
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// `n_stop` NUL-terminated, non-empty strings that end generation when they appear (not
    /// shown); may be NULL when `n_stop` is 0. An empty one is `EDGELM_STATUS_INVALID_ARGUMENT`.
    pub stop: *const *const c_char,
    /// Number of stop strings.
    pub n_stop: usize,
    /// When the context fills up: a value >= 0 keeps the first `keep` tokens and slides the
    /// rest; negative stops with `EDGELM_STATUS_CONTEXT_FULL`.
    pub keep: i64,
    /// Nonzero: stop when the answer starts repeating itself (3 copies of a block of at
    /// least 8 tokens).
    pub loop_guard: u32,
}

/// Default generation options: 256 tokens, no stop strings, no sliding window, no loop guard.
///
/// Thread safety: any thread.
#[unsafe(no_mangle)]
pub extern "C" fn edgelm_generate_options_default() -> EdgelmGenerateOptions {
    EdgelmGenerateOptions {
        max_tokens: 256,
        stop: std::ptr::null(),
        n_stop: 0,
        keep: -1,
        loop_guard: 0,
    }
}

/// Why generation ended.
#[repr(C)]
#[derive(Clone, Copy)]
pub enum EdgelmStopReason {
    /// The model ended its turn.
    EndOfTurn = 0,
    /// `max_tokens` were generated.
    MaxTokens = 1,
    /// A stop string appeared.
    StopString = 2,
    /// The callback returned nonzero, or `edgelm_session_cancel` was called.
    Cancelled = 3,
    /// The answer repeated itself (loop guard).
    Repetition = 4,
}

/// Counts and timings of one generation.
#[repr(C)]
pub struct EdgelmGenerateStats {
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Tokens generated (including the one that stopped generation).
    pub generated_tokens: usize,
    /// Seconds spent on the prompt.
    pub prompt_seconds: f64,
    /// Seconds spent generating.
    pub generation_seconds: f64,
    /// Why it ended.
    pub stop: EdgelmStopReason,
}

struct UserData(*mut c_void);
// SAFETY: the pointer is only handed back to the caller's callback, which runs on one thread
// at a time while the caller waits in `edgelm_generate` (documented with the callback type).
unsafe impl Send for UserData {}

/// Feeds the `n` prompt tokens, then samples, feeds back and streams text to `callback` until
/// the model ends its turn, `max_tokens` are generated, a stop string appears, or the callback
/// returns nonzero or `edgelm_session_cancel` is called (then `EDGELM_STATUS_OK` with stop
/// reason `CANCELLED`). `opts` NULL:
/// defaults; `stats` may be NULL. No heap allocation per generated token.
///
/// Thread safety: one call at a time per session and per sampler; the callback runs on a
/// worker thread of the session.
///
/// # Safety
/// `session`, `sampler` are NULL or handles of their kind; `prompt` is NULL or `n` readable
/// ids; `opts` is NULL or readable with `n_stop` readable NUL-terminated stop strings;
/// `stats` is NULL or valid for a write; `callback` is NULL or a function as described by
/// `EdgelmTextCallback`, to which `user_data` is passed unchanged.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn edgelm_generate(
    session: *mut EdgelmSession,
    sampler: *mut EdgelmSampler,
    prompt: *const u32,
    n: usize,
    opts: *const EdgelmGenerateOptions,
    callback: EdgelmTextCallback,
    user_data: *mut c_void,
    stats: *mut EdgelmGenerateStats,
) -> EdgelmStatus {
    run(|| {
        let callback = callback.ok_or_else(|| Error::new(ErrorKind::NullArgument, "callback is NULL"))?;
        // SAFETY: forwarded contract.
        let (mut s, prompt) = unsafe { (lock_session(session)?, slice(prompt, n, "prompt")?) };
        // SAFETY: forwarded contract.
        let mut sampler = unsafe { lock_sampler(sampler, s.vocab) }?;
        // SAFETY: forwarded contract (NULL allowed).
        let o = unsafe { opts.as_ref() }
            .copied()
            .unwrap_or_else(|| edgelm_generate_options_default());
        // SAFETY: forwarded contract.
        let stop = unsafe { slice(o.stop, o.n_stop, "stop") }?
            .iter()
            // SAFETY: forwarded contract.
            .map(|&p| unsafe { text(p, "stop string") }.map(str::to_owned))
            .collect::<Result<Vec<_>, Error>>()
            .and_then(edgelm_ffi::checked_stop)?;
        let opts = GenerateOptions {
            max_tokens: o.max_tokens as usize,
            stop,
            sliding_window: usize::try_from(o.keep).ok(),
            loop_guard: (o.loop_guard != 0).then(LoopGuard::default),
            cancel: Some(s.fresh_cancel_flag()),
        };
        let user = UserData(user_data);
        let result = s.session.with(|s| {
            generate(s, &mut sampler.sampler, prompt, &opts, move |piece| {
                let user = &user;
                // SAFETY: the caller's callback with its own user data, per the contract.
                match unsafe { callback(piece.as_ptr().cast(), piece.len(), user.0) } {
                    0 => ControlFlow::Continue(()),
                    _ => ControlFlow::Break(()),
                }
            })
        })?;
        if !stats.is_null() {
            // SAFETY: forwarded contract (checked non-null).
            *unsafe { out(stats, "stats") }? = EdgelmGenerateStats {
                prompt_tokens: result.prompt_tokens,
                generated_tokens: result.generated_tokens,
                prompt_seconds: result.prompt_time.as_secs_f64(),
                generation_seconds: result.generation_time.as_secs_f64(),
                stop: match result.stop {
                    StopReason::EndOfTurn => EdgelmStopReason::EndOfTurn,
                    StopReason::MaxTokens => EdgelmStopReason::MaxTokens,
                    StopReason::StopString => EdgelmStopReason::StopString,
                    StopReason::Cancelled => EdgelmStopReason::Cancelled,
                    StopReason::Repetition => EdgelmStopReason::Repetition,
                },
            };
        }
        Ok(())
    })
}
