//! STREAM-style read bandwidth: the sum of a buffer, single-threaded and on every core,
//! at sizes that live in L2 (1 MiB), in L3 (64 MiB; this machine's L3 is 260 MiB, a Pi's
//! 0–2 MiB) and only in DRAM (1 GiB). A matrix-vector product cannot read its weights faster
//! than this, so `cargo bench --bench kernels` results compare against it.
//!
//!     cargo bench --bench bandwidth
//!
//! Single-threaded reads are timed in the thread's CPU time (see `support/cpu_time.rs`: this
//! machine is shared), reads on every core in wall time (they need every core to themselves).

use std::hint::black_box;
use std::thread;
use std::time::Duration;

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;
use criterion::measurement::Measurement;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const SIZES: [(&str, usize); 3] = [("1MiB", 1 << 20), ("64MiB", 64 << 20), ("1GiB", 1 << 30)];

/// Sum of the words, in eight independent lanes so the adds keep up with the loads.
fn sum(words: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let chunks = words.chunks_exact(8);
    let tail: u64 = chunks.remainder().iter().fold(0, |a, &w| a.wrapping_add(w));
    for c in chunks {
        for (a, &w) in acc.iter_mut().zip(c) {
            *a = a.wrapping_add(w);
        }
    }
    acc.iter().fold(tail, |a, &w| a.wrapping_add(w))
}

/// Buffers of each size with non-zero contents (so the pages are really there), and their name.
fn buffers() -> impl Iterator<Item = (&'static str, Vec<u64>)> {
    SIZES
        .into_iter()
        .map(|(name, bytes)| (name, (0..bytes as u64 / 8).collect()))
}

fn single_thread(c: &mut Criterion<ThreadCpuTime>) {
    for (name, buf) in buffers() {
        let mut group = read_group(c, &buf);
        group.bench_function(format!("1thread/{name}"), |b| b.iter(|| sum(black_box(&buf))));
        group.finish();
    }
}

fn all_threads(c: &mut Criterion) {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    for (name, buf) in buffers() {
        let part = buf.len().div_ceil(threads);
        let mut group = read_group(c, &buf);
        group.bench_function(format!("{threads}threads/{name}"), |b| {
            b.iter(|| {
                thread::scope(|s| {
                    let handles: Vec<_> = buf
                        .chunks(part)
                        .map(|p| s.spawn(move || sum(black_box(p))))
                        .collect();
                    handles
                        .into_iter()
                        .fold(0u64, |a, h| a.wrapping_add(h.join().expect("reader")))
                })
            })
        });
        group.finish();
    }
}

fn read_group<'c, M: Measurement>(c: &'c mut Criterion<M>, buf: &[u64]) -> criterion::BenchmarkGroup<'c, M> {
    let mut group = c.benchmark_group("read");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Bytes(size_of_val(buf) as u64));
    group
}

fn config<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
}

criterion_group! {
    name = single;
    config = config(Criterion::default().with_measurement(ThreadCpuTime::default()));
    targets = single_thread
}
criterion_group! {
    name = multi;
    config = config(Criterion::default());
    targets = all_threads
}
criterion_main!(single, multi);
