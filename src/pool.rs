//! The runtime's thread pool: workers that stay awake between the parallel steps of a pass
//! (each matrix product, norm pass and attention), and park when no step comes.
//!
//! A step is `f(0..parts)`. The thread that runs it ([`run`]) publishes it, takes pieces like
//! any worker, and returns once every piece is done. Pieces are taken one at a time from a
//! shared counter, so a worker that starts late takes fewer, and the caller never waits for a
//! worker that has not joined the step: when no piece is left it closes the step and waits only
//! for the workers still running one. Between steps a worker polls for up to [`SPIN`] (a
//! generation step's ~120 products come microseconds apart, and a parked thread takes tens of
//! microseconds to wake), spinning at first and then yielding its core between polls, and
//! then parks until the next step is published.
//!
//! One step runs at a time per pool; a step started inside a piece of another, or outside
//! [`Pool::install`], runs on the calling thread.

use std::any::Any;
use std::cell::Cell;
use std::hint::spin_loop;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker polls for the next step before it parks.
const SPIN: Duration = Duration::from_micros(200);

/// Polls that spin on the CPU before a waiting thread yields it between polls (see
/// [`back_off`]).
const SPIN_POLLS: u32 = 128;

/// One poll's pause in a wait: a spin hint for the first [`SPIN_POLLS`] polls, then a yield,
/// so that where there are more threads than free cores (other programs, or more threads asked
/// for than there are cores) the waiting threads give the core to one with a piece to finish.
/// Returns the polls so far.
fn back_off(polls: u32) -> u32 {
    if polls < SPIN_POLLS {
        spin_loop();
    } else {
        std::thread::yield_now();
    }
    polls.saturating_add(1)
}

/// Pieces a [`Pieces`] gathers before it runs them as one step.
pub const MAX_PIECES: usize = 256;

// The pool's state word: the step number (high 32 bits), whether the step is closed to workers
// that have not joined it, and how many workers are inside it (low 16 bits).
const CLOSED: u64 = 1 << 16;
const INSIDE: u64 = CLOSED - 1;
const STEP: u64 = 1 << 32;

thread_local! {
    /// The pool [`Pool::install`] put this thread in; null outside one.
    static CURRENT: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// Whether this thread is running pieces of a step.
    static IN_STEP: Cell<bool> = const { Cell::new(false) };
}

/// `threads - 1` workers; the thread that installs the pool is the last one.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// What the workers and the stepping thread share.
struct Shared {
    threads: usize,
    state: AtomicU64,
    /// The open step's [`Job`], on the stack of the thread running it.
    job: AtomicPtr<()>,
    /// Workers parked on `wake`.
    sleepers: AtomicUsize,
    /// Workers that have started.
    started: AtomicUsize,
    stop: AtomicBool,
    park: Mutex<()>,
    wake: Condvar,
    /// Held while a step runs: one at a time.
    stepping: Mutex<()>,
}

/// One step.
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    parts: usize,
    next: AtomicUsize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Pool {
    /// Starts `threads - 1` workers named `edgelm-N`.
    pub fn new(threads: usize) -> Result<Pool, String> {
        let threads = threads.clamp(1, INSIDE as usize);
        let shared = Arc::new(Shared {
            threads,
            state: AtomicU64::new(CLOSED),
            job: AtomicPtr::new(std::ptr::null_mut()),
            sleepers: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            park: Mutex::new(()),
            wake: Condvar::new(),
            stepping: Mutex::new(()),
        });
        let mut pool = Pool {
            shared,
            workers: Vec::with_capacity(threads - 1),
        };
        for i in 1..threads {
            let shared = Arc::clone(&pool.shared);
            let worker = std::thread::Builder::new()
                .name(format!("edgelm-{i}"))
                .spawn(move || shared.serve())
                .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
            pool.workers.push(worker);
        }
        // A thread starts on its own time and may allocate as it does; on a busy machine that
        // could fall in the middle of the first steps. The pool is complete when this returns.
        while pool.shared.started.load(Acquire) < threads - 1 {
            std::thread::yield_now();
        }
        Ok(pool)
    }

    /// Threads, the installing one included.
    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs `f` on this thread with the pool as the one [`run`] and [`threads`] use.
    pub fn install<R>(&self, f: impl FnOnce() -> R) -> R {
        let _restore = Restore(CURRENT.replace(Arc::as_ptr(&self.shared)));
        f()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        drop(self.shared.park.lock().unwrap_or_else(PoisonError::into_inner));
        self.shared.wake.notify_all();
        for worker in self.workers.drain(..) {
            // A worker's pieces catch their panics, so a join error cannot carry one.
            let _ = worker.join();
        }
    }
}

/// Puts back the thread's pool when dropped.
struct Restore(*const Shared);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.set(self.0);
    }
}

/// Threads of the pool this thread runs in ([`Pool::install`]); 1 outside one and inside a
/// step's piece.
pub fn threads() -> usize {
    match current() {
        Some(shared) if !IN_STEP.get() => shared.threads,
        _ => 1,
    }
}

/// Runs `f(i)` for each `i` in `0..parts`, once each, on the current pool's threads, and
/// returns when all are done (a panic in one is raised here then). Outside a pool, inside a
/// piece of a step (even where the piece installs a pool) or on one thread, runs them in
/// order on this thread.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    match current() {
        Some(shared) if parts > 1 && shared.threads > 1 && !IN_STEP.get() => shared.step(parts, f),
        _ => (0..parts).for_each(f),
    }
}

/// This thread's pool.
fn current<'a>() -> Option<&'a Shared> {
    // SAFETY: CURRENT is non-null only while `Pool::install` runs, which borrows the pool and so
    // keeps its `Shared` alive; no caller keeps the reference past its own call.
    unsafe { CURRENT.get().as_ref() }
}

/// Runs `f` on each item, in parallel as [`run`] does.
pub fn each<T: Send>(items: impl IntoIterator<Item = T>, f: &(impl Fn(T) + Sync)) {
    let mut pieces = Pieces::new(f);
    items.into_iter().for_each(|item| pieces.push(item));
    pieces.run();
}

/// `0..n` cut into `parts` consecutive ranges whose lengths differ by at most one (the `i`th
/// ends at `n * (i + 1) / parts`): how a step's rows, tiles or heads are shared out.
pub fn even_ranges(n: usize, parts: usize) -> impl Iterator<Item = Range<usize>> {
    (0..parts).map(move |i| n * i / parts..n * (i + 1) / parts)
}

/// The pieces of a step, gathered on the stack (up to [`MAX_PIECES`]; more run as several
/// steps) and handed to `f` in parallel by [`Pieces::run`].
pub struct Pieces<'f, T, F> {
    f: &'f F,
    items: [MaybeUninit<T>; MAX_PIECES],
    len: usize,
}

impl<'f, T: Send, F: Fn(T) + Sync> Pieces<'f, T, F> {
    /// No pieces yet.
    pub fn new(f: &'f F) -> Self {
        Pieces {
            f,
            items: [const { MaybeUninit::uninit() }; MAX_PIECES],
            len: 0,
        }
    }

    /// Adds a piece.
    pub fn push(&mut self, item: T) {
        if self.len == MAX_PIECES {
            self.flush();
        }
        self.items[self.len].write(item);
        self.len += 1;
    }

    /// Runs the pieces.
    pub fn run(mut self) {
        self.flush();
    }

    fn flush(&mut self) {
        let (items, f) = (Items(self.items.as_ptr()), self.f);
        let len = std::mem::take(&mut self.len);
        run(len, &|i| {
            let items = &items;
            // SAFETY: `push` wrote items `0..len`, `run` calls this once per index, and `len`
            // is reset, so each item is moved out exactly once.
            f(unsafe { (*items.0.add(i)).assume_init_read() })
        });
    }
}

/// The items of a [`Pieces`], shared by the threads of its step.
struct Items<T>(*const MaybeUninit<T>);

// SAFETY: the threads only move items out, each item once (see `Pieces::flush`), which
// `T: Send` allows.
unsafe impl<T: Send> Sync for Items<T> {}

impl Shared {
    /// Runs one step from the thread that owns it.
    fn step(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let _one = self.stepping.lock().unwrap_or_else(PoisonError::into_inner);
        let job = Job {
            f,
            parts,
            next: AtomicUsize::new(0),
            panic: Mutex::new(None),
        };
        self.job.store((&raw const job).cast_mut().cast(), Relaxed);
        // The last step is closed and empty: open the next.
        let step = (self.state.load(Relaxed) & !(CLOSED | INSIDE)).wrapping_add(STEP);
        self.state.store(step, SeqCst);
        if self.sleepers.load(SeqCst) > 0 {
            drop(self.park.lock().unwrap_or_else(PoisonError::into_inner));
            self.wake.notify_all();
        }
        job.work();
        self.state.fetch_or(CLOSED, AcqRel);
        let mut polls = 0u32;
        while self.state.load(Acquire) & INSIDE != 0 {
            polls = back_off(polls);
        }
        let panic = job.panic.into_inner().unwrap_or_else(PoisonError::into_inner);
        if let Some(payload) = panic {
            panic::resume_unwind(payload);
        }
    }

    /// A worker's life: wait for a step, join it if it is still open, take its pieces.
    fn serve(&self) {
        self.started.fetch_add(1, Release);
        let mut seen = self.state.load(Acquire) / STEP;
        while let Some(step) = self.next_step(seen) {
            seen = step;
            if self.join(step) {
                // SAFETY: while this worker is inside the step, the thread that published it
                // waits in `step` and its `job` is alive; `join`'s acquire saw the store of the
                // step's state, which came after that of `job`.
                unsafe { &*self.job.load(Relaxed).cast::<Job<'_>>() }.work();
                self.state.fetch_sub(1, Release);
            }
        }
    }

    /// Waits for a step after `seen` (spinning, then parked) and returns its number; `None`
    /// when the pool stops.
    fn next_step(&self, seen: u64) -> Option<u64> {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            if self.stop.load(Relaxed) {
                return None;
            }
            let step = self.state.load(Acquire) / STEP;
            if step != seen {
                return Some(step);
            }
            if polls < SPIN_POLLS || start.elapsed() < SPIN {
                polls = back_off(polls);
                continue;
            }
            let mut parked = self.park.lock().unwrap_or_else(PoisonError::into_inner);
            self.sleepers.fetch_add(1, SeqCst);
            while self.state.load(SeqCst) / STEP == seen && !self.stop.load(SeqCst) {
                parked = self.wake.wait(parked).unwrap_or_else(PoisonError::into_inner);
            }
            self.sleepers.fetch_sub(1, SeqCst);
        }
    }

    /// Joins step `step` if it is still the open one.
    fn join(&self, step: u64) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            if s / STEP != step || s & CLOSED != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(s, s + 1, Acquire, Acquire) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }
}

impl Job<'_> {
    /// Takes pieces until none is left. A panic stops the step: no piece starts after it.
    fn work(&self) {
        IN_STEP.set(true);
        loop {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.parts {
                IN_STEP.set(false);
                return;
            }
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| (self.f)(i))) {
                self.next.store(self.parts, Relaxed);
                let mut slot = self.panic.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ranges_cover_in_order_and_differ_by_at_most_one() {
        for (n, parts) in [(0, 1), (1, 3), (9, 8), (16, 4), (100, 7)] {
            let ranges: Vec<_> = even_ranges(n, parts).collect();
            assert_eq!(ranges.len(), parts);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start), "{ranges:?}");
            assert_eq!((ranges[0].start, ranges[parts - 1].end), (0, n));
            let lens = ranges.iter().map(Range::len);
            assert!(
                lens.clone().max().unwrap() - lens.min().unwrap() <= 1,
                "{ranges:?}"
            );
        }
    }

    #[test]
    fn every_piece_runs_once() {
        let pool = Pool::new(3).unwrap();
        for parts in [0, 1, 2, 3, 7, 100] {
            let hits: Vec<AtomicUsize> = (0..parts).map(|_| AtomicUsize::new(0)).collect();
            pool.install(|| {
                run(parts, &|i| {
                    hits[i].fetch_add(1, Relaxed);
                })
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "{parts} parts");
        }
    }

    #[test]
    fn steps_use_the_workers_and_survive_parking() {
        let pool = Pool::new(4).unwrap();
        let names = Mutex::new(std::collections::BTreeSet::new());
        pool.install(|| {
            for round in 0..200 {
                if round % 50 == 49 {
                    std::thread::sleep(SPIN * 5); // the workers park
                }
                run(64, &|_| {
                    let name = std::thread::current().name().map(str::to_owned);
                    names.lock().unwrap().insert(name);
                    std::thread::sleep(Duration::from_micros(20));
                });
            }
        });
        assert!(names.into_inner().unwrap().len() > 1, "no worker took a piece");
    }

    #[test]
    fn pieces_move_each_item_once_and_more_than_fit_run_too() {
        let pool = Pool::new(2).unwrap();
        let mut out = vec![0u32; 3 * MAX_PIECES + 5];
        pool.install(|| {
            each(out.iter_mut().enumerate(), &|(i, o): (usize, &mut u32)| {
                *o += i as u32
            });
        });
        assert!(out.iter().enumerate().all(|(i, &o)| o == i as u32));
    }

    #[test]
    fn nested_steps_and_threads_inside_a_piece_run_in_place() {
        let pool = Pool::new(3).unwrap();
        let total = AtomicUsize::new(0);
        pool.install(|| {
            assert_eq!(threads(), 3);
            run(6, &|_| {
                assert_eq!(threads(), 1);
                run(4, &|_| {
                    total.fetch_add(1, Relaxed);
                });
            });
            assert_eq!(threads(), 3);
        });
        assert_eq!(total.into_inner(), 24);
        assert_eq!(threads(), 1);
    }

    #[test]
    fn a_piece_that_installs_its_own_pool_steps_in_place() {
        let pool = Pool::new(2).unwrap();
        let total = AtomicUsize::new(0);
        pool.install(|| {
            run(4, &|_| {
                pool.install(|| {
                    run(3, &|_| {
                        total.fetch_add(1, Relaxed);
                    })
                })
            })
        });
        assert_eq!(total.into_inner(), 12);
    }

    #[test]
    fn a_panicking_piece_is_raised_by_the_step_and_the_pool_goes_on() {
        let pool = Pool::new(3).unwrap();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.install(|| {
                run(32, &|i| {
                    std::thread::sleep(Duration::from_micros(50));
                    assert!(i != 17, "piece 17");
                })
            })
        }));
        assert!(caught.is_err());
        let count = AtomicUsize::new(0);
        pool.install(|| {
            run(10, &|_| {
                count.fetch_add(1, Relaxed);
            })
        });
        assert_eq!(count.into_inner(), 10);
    }

    #[test]
    fn two_threads_can_step_one_pool_at_once() {
        let pool = Pool::new(3).unwrap();
        let count = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    pool.install(|| {
                        for _ in 0..500 {
                            run(8, &|_| {
                                count.fetch_add(1, Relaxed);
                            });
                        }
                    })
                });
            }
        });
        assert_eq!(count.into_inner(), 2 * 500 * 8);
    }
}
