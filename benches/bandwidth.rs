//! STREAM-style read bandwidth: the sum of a buffer, single-threaded and on every core,
//! at sizes that live in L2 (1 MiB), in L3 (64 MiB; this machine's L3 is 260 MiB, a Pi's
//! 0–2 MiB) and only in DRAM (1 GiB). A matrix-vector product cannot read its weights faster
//! than this, so `cargo bench --bench kernels` results compare against it.
//!
//!     cargo bench --bench bandwidth

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

fn bandwidth(c: &mut Criterion) {
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    for (name, bytes) in SIZES {
        // Non-zero contents, so the pages are really allocated before timing.
        let buf: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
        let mut group = c.benchmark_group("read");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_function(format!("1thread/{name}"), |b| b.iter(|| sum(black_box(&buf))));
        if threads > 1 {
            let part = buf.len().div_ceil(threads);
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
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = bandwidth
}
criterion_main!(benches);
