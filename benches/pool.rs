//! What one parallel step costs: `edgelm::pool` (workers that spin between steps, then park)
//! against a rayon fork-join tree (what the runtime used before), on 2 threads and on every
//! core. A generation step of the 135M model is ~120 such steps of a few microseconds of work
//! each, so the step's own cost is what decides its speed on many cores.
//!
//!     cargo bench --bench pool
//!
//! `empty` is the bare step (one piece per thread, which does nothing); `sum16k` gives each
//! piece 16 KiB to sum, about a decode product's share on 16 threads, `sum256k` 256 KiB, about
//! one on 2 threads. Where a piece is short, rayon's caller pops the other half of its join
//! back before a sleeping worker wakes to steal it, so its step runs on one thread. Wall
//! time: the threads need the cores to themselves. `100us-then-sum16k` is a `sum16k` step
//! after 100 µs of the caller's own work (its time included).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use edgelm::pool::{self, Pool};

/// `f(0..parts)` as a balanced tree of `rayon::join`s.
fn join_tree(parts: std::ops::Range<usize>, f: &(impl Fn(usize) + Sync)) {
    if parts.len() <= 1 {
        return parts.for_each(f);
    }
    let mid = parts.start + parts.len() / 2;
    rayon::join(|| join_tree(parts.start..mid, f), || join_tree(mid..parts.end, f));
}

fn steps(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = vec![2, cores];
    threads.dedup();
    for t in threads {
        let ours = Pool::new(t).unwrap();
        let theirs = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
        let mut group = c.benchmark_group(format!("step/{t}threads"));
        // Each sample's loop runs inside the pool: rayon's `install` moves it to a worker.
        let timed = |iters: u64, step: &dyn Fn()| {
            let start = Instant::now();
            (0..iters).for_each(|_| step());
            start.elapsed()
        };
        for (name, words) in [("empty", 0), ("sum16k", 2048), ("sum256k", 32768)] {
            let data: Vec<u64> = (0..(t * words) as u64).collect();
            let total = AtomicU64::new(0);
            let piece = |i: usize| {
                let sum = data[i * words..(i + 1) * words]
                    .iter()
                    .fold(0u64, |a, &w| a.wrapping_add(w));
                total.fetch_add(sum, Ordering::Relaxed);
            };
            group.bench_function(format!("pool/{name}"), |b| {
                b.iter_custom(|n| ours.install(|| timed(n, &|| pool::run(t, &piece))))
            });
            group.bench_function(format!("rayon/{name}"), |b| {
                b.iter_custom(|n| theirs.install(|| timed(n, &|| join_tree(0..t, &piece))))
            });
            black_box(total.into_inner());
        }
        // A step after 100 µs on the calling thread alone (a token's sampling, between its last
        // product and the next token's first): rayon's workers have gone to sleep by then.
        let pause = || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(100) {
                std::hint::spin_loop();
            }
        };
        let data: Vec<u64> = (0..(t * 2048) as u64).collect();
        let piece = |i: usize| {
            black_box(
                data[i * 2048..(i + 1) * 2048]
                    .iter()
                    .fold(0u64, |a, &w| a.wrapping_add(w)),
            );
        };
        group.bench_function("pool/100us-then-sum16k", |b| {
            b.iter_custom(|n| ours.install(|| timed(n, &|| (pause(), pool::run(t, &piece)).1)))
        });
        group.bench_function("rayon/100us-then-sum16k", |b| {
            b.iter_custom(|n| theirs.install(|| timed(n, &|| (pause(), join_tree(0..t, &piece)).1)))
        });
        group.finish();
    }
}

criterion_group!(benches, steps);
criterion_main!(benches);
