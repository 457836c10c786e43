//! Quantized matmul throughput per kernel path, at the matrix shapes of SmolLM2-135M and of a
//! 1.1B Llama (TinyLlama): decode (n = 1, a matrix-vector product) and prefill (n = 128). The
//! 5-bit and K-quant types (q5_0, q4_k, q6_k, q2_k) are timed in cache (`hot`; q6_k also
//! `stream`), at the shapes whose rows are whole blocks of theirs.
//!
//! Each result shows elements/s = int8 operations/s (2 per multiply-add) and bytes/s of
//! weights read. `hot` runs one matrix again and again (it stays in cache: compute-bound);
//! `stream` cycles through copies spanning 512 MiB, more than any L3, so every weight comes
//! from DRAM as in real decoding of a model larger than the caches, on the best path of the CPU
//! (or the one `EDGELM_ISA` names).
//!
//!     cargo bench --bench kernels                      # everything (a few minutes)
//!     cargo bench --bench kernels -- 'q4_0.*n1/'       # a filter (a regex over the ids)
//!
//! Single-threaded, timed in the thread's CPU time (see `support/cpu_time.rs`: this machine is
//! shared); compare with `cargo bench --bench bandwidth`.

use std::hint::black_box;
use std::time::Duration;

#[path = "support/cpu_time.rs"]
mod cpu_time;

use cpu_time::ThreadCpuTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use edgelm_kernels::dispatch::MatmulQuantFn;
use edgelm_kernels::layout::{
    BlockQ2K, BlockQ4_0, BlockQ4_1, BlockQ4K, BlockQ5_0, BlockQ6K, BlockQ8_0, QK, QuantBlock, TILE_ROWS,
    pack_tiles,
};
use edgelm_kernels::{BlockQ8Act, Isa, Kernels, OutCols, SCALAR, Tiled};
use half::f16;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `(name, rows, cols)`: rows are output features.
const SHAPES: [(&str, usize, usize); 7] = [
    ("smollm2_q_576x576", 576, 576),
    ("smollm2_up_1536x576", 1536, 576),
    ("smollm2_down_576x1536", 576, 1536),
    ("smollm2_head_49152x576", 49152, 576),
    ("llama1b_q_2048x2048", 2048, 2048),
    ("llama1b_up_5632x2048", 5632, 2048),
    ("llama1b_down_2048x5632", 2048, 5632),
];

/// Prefill tokens.
const PREFILL: usize = 128;
/// Bytes of weight copies the `stream` benchmarks cycle through.
const STREAM_BYTES: usize = 512 << 20;

trait Weight: QuantBlock {
    const NAME: &str;
    fn random(rng: &mut StdRng) -> Self;
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile>;
}

fn scale(rng: &mut StdRng) -> u16 {
    f16::from_f32(rng.random_range(1e-3..1e-2)).to_bits()
}

impl Weight for BlockQ8_0 {
    const NAME: &str = "q8_0";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ8_0 {
            d: scale(rng),
            qs: std::array::from_fn(|_| rng.random_range(-127..=127)),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q8_0
    }
}

impl Weight for BlockQ4_0 {
    const NAME: &str = "q4_0";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ4_0 {
            d: scale(rng),
            qs: std::array::from_fn(|_| rng.random()),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_0
    }
}

impl Weight for BlockQ4_1 {
    const NAME: &str = "q4_1";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ4_1 {
            d: scale(rng),
            m: scale(rng),
            qs: std::array::from_fn(|_| rng.random()),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_1
    }
}

impl Weight for BlockQ5_0 {
    const NAME: &str = "q5_0";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ5_0 {
            d: scale(rng),
            qh: rng.random(),
            qs: rng.random(),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q5_0
    }
}

impl Weight for BlockQ4K {
    const NAME: &str = "q4_k";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ4K {
            d: scale(rng),
            dmin: scale(rng),
            scales: rng.random(),
            qs: std::array::from_fn(|_| rng.random()),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q4_k
    }
}

impl Weight for BlockQ6K {
    const NAME: &str = "q6_k";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ6K {
            ql: std::array::from_fn(|_| rng.random()),
            qh: std::array::from_fn(|_| rng.random()),
            scales: rng.random(),
            d: scale(rng),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q6_k
    }
}

impl Weight for BlockQ2K {
    const NAME: &str = "q2_k";
    fn random(rng: &mut StdRng) -> Self {
        BlockQ2K {
            scales: rng.random(),
            qs: std::array::from_fn(|_| rng.random()),
            d: scale(rng),
            dmin: scale(rng),
        }
    }
    fn kernel(k: &Kernels) -> MatmulQuantFn<Self::Tile> {
        k.matmul_q2_k
    }
}

/// `rows × cols` random weights as tiles, and the blocks per row.
fn tiles<B: Weight>(rng: &mut StdRng, rows: usize, cols: usize) -> (Vec<B::Tile>, usize) {
    let bpr = cols / B::VALUES;
    let blocks: Vec<B> = (0..rows * bpr).map(|_| B::random(rng)).collect();
    let mut tiles = vec![B::interleave(&[B::default(); TILE_ROWS]); rows.div_ceil(TILE_ROWS) * bpr];
    pack_tiles(&blocks, bpr, &mut tiles);
    (tiles, bpr)
}

fn activations(rng: &mut StdRng, n: usize, cols: usize) -> Vec<BlockQ8Act> {
    let x: Vec<f32> = (0..n * cols).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut q = vec![BlockQ8Act::default(); n * cols / QK];
    (SCALAR.quantize_q8_act)(&x, &mut q);
    q
}

/// Paths to time at `n` tokens for a matrix of `rows × cols`: the scalar reference only
/// where it finishes in reasonable time (decode, and prefill of the smallest matrix).
fn paths(n: usize, rows: usize, cols: usize) -> impl Iterator<Item = &'static Kernels> {
    Isa::ALL
        .into_iter()
        .filter_map(Kernels::get)
        .filter(move |k| k.isa != Isa::Scalar || n == 1 || rows * cols <= 576 * 576)
}

fn throughput(rows: usize, cols: usize, n: usize, bytes: usize) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: (2 * rows * cols * n) as u64,
        bytes: bytes as u64,
    }
}

/// `stream`: also time decode from DRAM (see [`bench_stream`]).
fn bench_type<B: Weight>(c: &mut Criterion<ThreadCpuTime>, stream: bool) {
    let mut rng = StdRng::seed_from_u64(7);
    for (name, rows, cols) in SHAPES.into_iter().filter(|s| s.2 % B::VALUES == 0) {
        let (tiles, bpr) = tiles::<B>(&mut rng, rows, cols);
        let w = Tiled::new(&tiles, rows, bpr).expect("tile count");
        let bytes = size_of_val(tiles.as_slice());
        for n in [1, PREFILL] {
            // Prefill of the output head does not happen (only the last token's logits).
            if n > 1 && rows > 16384 {
                continue;
            }
            let x = activations(&mut rng, n, cols);
            let mut out = vec![0.0; n * rows];
            let mut group = c.benchmark_group(format!("{}/hot/n{n}", B::NAME));
            group.sampling_mode(SamplingMode::Flat);
            group.throughput(throughput(rows, cols, n, bytes));
            for k in paths(n, rows, cols) {
                group.bench_function(format!("{}/{name}", k.isa), |b| {
                    b.iter(|| B::kernel(k)(w, black_box(&x), OutCols::new(&mut out, n, rows)))
                });
            }
            group.finish();
        }
        if stream {
            bench_stream::<B>(c, name, &tiles, rows, cols, &mut rng);
        }
    }
}

/// Decode from DRAM: each iteration multiplies the next of many copies of the matrix.
fn bench_stream<B: Weight>(
    c: &mut Criterion<ThreadCpuTime>,
    name: &str,
    tiles: &[B::Tile],
    rows: usize,
    cols: usize,
    rng: &mut StdRng,
) {
    let copies = STREAM_BYTES.div_ceil(size_of_val(tiles)).max(2);
    let all: Vec<B::Tile> = (0..copies).flat_map(|_| tiles.iter().copied()).collect();
    let x = activations(rng, 1, cols);
    let mut out = vec![0.0; rows];
    let mut group: BenchmarkGroup<'_, ThreadCpuTime> = c.benchmark_group(format!("{}/stream/n1", B::NAME));
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(throughput(rows, cols, 1, size_of_val(tiles)));
    let k = Kernels::select(std::env::var("EDGELM_ISA").ok().as_deref()).expect("EDGELM_ISA");
    let mut i = 0;
    group.bench_function(format!("{}/{name}", k.isa), |b| {
        b.iter(|| {
            let copy = &all[i * tiles.len()..][..tiles.len()];
            i = (i + 1) % copies;
            let w = Tiled::new(copy, rows, cols / B::VALUES).expect("tile count");
            B::kernel(k)(w, black_box(&x), OutCols::new(&mut out, 1, rows))
        })
    });
    group.finish();
}

fn matmul(c: &mut Criterion<ThreadCpuTime>) {
    bench_type::<BlockQ4_0>(c, true);
    bench_type::<BlockQ8_0>(c, true);
    bench_type::<BlockQ4_1>(c, true);
    bench_type::<BlockQ5_0>(c, false);
    bench_type::<BlockQ4K>(c, false);
    bench_type::<BlockQ6K>(c, true);
    bench_type::<BlockQ2K>(c, false);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .with_measurement(ThreadCpuTime::default())
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    targets = matmul
}
criterion_main!(benches);
