//! The engine every runner shares: the kernel table chosen for this CPU and a thread pool.
//! Decoder sessions and encoders take one each; the building blocks of [`crate::nn`] run on
//! buffers their runner owns and hands them, which leaves room for a second backend.

use std::sync::Arc;

use edgelm_kernels::Kernels;

use crate::pool::Pool;

/// Kernels and threads.
#[derive(Clone)]
pub struct Engine {
    /// The kernel path in use.
    pub kernels: &'static Kernels,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("isa", &self.kernels.isa)
            .field("threads", &self.threads())
            .finish()
    }
}

impl Engine {
    /// Picks the kernels (`isa`, else the `EDGELM_ISA` environment variable, else the best the
    /// CPU has) and starts `threads` workers (default: the physical performance cores).
    pub fn new(isa: Option<&str>, threads: Option<usize>) -> Result<Engine, String> {
        let env = std::env::var("EDGELM_ISA").ok();
        let kernels = Kernels::select(isa.or(env.as_deref())).map_err(|e| e.to_string())?;
        let pool = Pool::new(threads.unwrap_or_else(crate::threads::default_threads))?;
        Ok(Engine {
            kernels,
            pool: Arc::new(pool),
        })
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// Runs `f` on this thread with the engine's workers serving its parallel steps.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        self.pool.install(f)
    }
}
