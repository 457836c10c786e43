//! The SDOT path: NEON plus Armv8.2 dot product (Cortex-A55/A76/A78: Raspberry Pi 5,
//! Jetson Orin, RK3588). `sdot` by element multiplies four rows' four quants (one register
//! of a tile chunk) by one group of four activation quants and adds into i32 lanes: a tile
//! chunk and a 16-byte activation register take four instructions, no widening steps.
//!
//! Prefill runs passes of quads of four tokens ([`super::quads`]): Q8_0 one quad against
//! whole tiles, Q4_1 two quads and Q4_0 four (an asm kernel that assigns all 32 vector
//! registers) against half tiles, so one nibble split serves eight or sixteen tokens. One
//! activation register serves two tokens by element, a quad's scales are one vector, and
//! each dot starts at a loaded register (Q4_0's offset, instead of subtracting it). Decode is
//! the NEON loop nest with SDOT dots; everything but the integer dots is the NEON path's.

use core::arch::aarch64::*;
use core::arch::asm;
use core::mem::offset_of;

use super::neon::kquant::{self, Chunks};
use super::neon::matmul::{
    Acc, Dots, GROUP, Nibbles, chunks, finish, halves_f16, load_act, load_chunk, nibble_chunks, scale_q4_0,
    scale_q4_1, scale_q8_0, split_nibbles,
};
use super::neon::{NEON_KERNELS, attn_scores_q8_with, kquant_kernel, tile_kernel};
use super::quads::{self, HALF, Half, PassAcc, QUAD, Quad, finish_halves, pass_kernel};
use crate::dispatch::{Isa, Kernels};
use crate::layout::{
    BlockQ8_0, TILE_ROWS, TileQ2K, TileQ3K, TileQ4_0, TileQ4_1, TileQ4K, TileQ5_0, TileQ5_1, TileQ5K,
    TileQ6K, TileQ8_0,
};
use crate::simd::entries;
use crate::simd::tiles::{matmul, super_blocks};
use crate::view::{BlockQ8Act, OutCols, Tiled};

/// The SDOT kernels, as a constant the SMMLA table starts from.
pub(crate) const DOTPROD_KERNELS: Kernels = Kernels {
    isa: Isa::NeonDotprod,
    matmul_q8_0: matmul_q8_0_dotprod,
    matmul_q4_0: matmul_q4_0_dotprod,
    matmul_q4_1: matmul_q4_1_dotprod,
    matmul_q5_0: matmul_q5_0_dotprod,
    matmul_q5_1: matmul_q5_1_dotprod,
    matmul_q4_k: matmul_q4_k_dotprod,
    matmul_q5_k: matmul_q5_k_dotprod,
    matmul_q6_k: matmul_q6_k_dotprod,
    matmul_q3_k: matmul_q3_k_dotprod,
    matmul_q2_k: matmul_q2_k_dotprod,
    attn_scores_q8: attn_scores_q8_dotprod,
    ..NEON_KERNELS
};

/// The SDOT table.
pub(crate) static DOTPROD: Kernels = DOTPROD_KERNELS;

/// `acc += Σ_i w[i] · (group i of a)`: lane `r` of `w[i]` holds four quants of row `r`,
/// group `i` of `a` is its bytes `4i..4i + 4`. Four `sdot` by element.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) fn sdot_groups(acc: int32x4_t, w: [int8x16_t; 4], a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: sdot is enabled for this function; the asm only reads and writes registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w0:v}.16b, {a:v}.4b[0]",
            "sdot {acc:v}.4s, {w1:v}.16b, {a:v}.4b[1]",
            "sdot {acc:v}.4s, {w2:v}.16b, {a:v}.4b[2]",
            "sdot {acc:v}.4s, {w3:v}.16b, {a:v}.4b[3]",
            acc = inout(vreg) acc,
            w0 = in(vreg) w[0],
            w1 = in(vreg) w[1],
            w2 = in(vreg) w[2],
            w3 = in(vreg) w[3],
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// `acc += lane-wise 4-byte dots of a and b` (plain `sdot`).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: sdot is enabled for this function; the asm only reads and writes registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Groups of a tile's chunk registers: `g[c][h]` is chunk `c`, rows `4h..4h + 4`; returns
/// for half `h` the chunks `first..first + 4`.
#[inline(always)]
fn four(g: &[[int8x16_t; 2]], first: usize, h: usize) -> [int8x16_t; 4] {
    core::array::from_fn(|i| g[first + i][h])
}

/// Q8 dots per token: chunks 0-3 pair with activation quants 0-15, chunks 4-7 with 16-31.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) fn q8_dots_sdot<const NT: usize>(t: &TileQ8_0, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    quartet_dots(&q8_quartets(t), a)
}

/// Q4 nibble dots per token: the low nibbles of chunks 0-3 are elements 0-15, the high
/// nibbles elements 16-31.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(crate) fn nibble_dots_sdot<const NT: usize>(t: &impl Nibbles, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    quartet_dots(&nibble_quartets(t), a)
}

/// The dots of a tile's quartets with each token's activations: quartets 0-3 pair with
/// activation quants 0-15, quartets 4-7 with 16-31.
///
/// Plain loops, no closures: a closure here would carry this function's target features, so
/// it could not be inlined into `core::array::map` (which has none) and stayed a call per
/// tile and token (the i8mm table's decode ran 7× its instructions that way).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn quartet_dots<const NT: usize>(w: &Quartets, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    let mut dots = [[vdupq_n_s32(0); 2]; NT];
    for (d, at) in dots.iter_mut().zip(a) {
        let [lo, hi] = load_act(at);
        for (h, d) in d.iter_mut().enumerate() {
            *d = sdot_groups(sdot_groups(*d, four(w, 0, h), lo), four(w, 4, h), hi);
        }
    }
    dots
}

/// A tile's quants as 4-element groups: `[g][h]` holds elements `4g..4g + 4` of rows
/// `4h..4h + 4`, one row per 32-bit lane (SDOT's by-element operand).
pub(crate) type Quartets = [[int8x16_t; 2]; 8];

/// A Q8 tile's quartets: its chunks as they are.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn q8_quartets(t: &TileQ8_0) -> Quartets {
    use zerocopy::IntoBytes;
    core::array::from_fn(|c| load_chunk(&chunks(t.qs.as_bytes())[c]).map(|v| vreinterpretq_s8_u8(v)))
}

/// A Q4 tile's quartets: the low nibbles of chunks 0-3 are elements 0-15, the high ones 16-31.
#[target_feature(enable = "neon")]
#[inline]
pub(crate) fn nibble_quartets(t: &impl Nibbles) -> Quartets {
    let n = nibble_chunks(t.nibbles());
    core::array::from_fn(|g| n[g / 4][g % 4].map(|v| vreinterpretq_s8_u8(v)))
}

/// `acc += w0 · (lane 2I of a) + w1 · (lane 2I + 1 of a)`: two `sdot` by element.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot_lanes<const I: usize>(acc: int32x4_t, w0: int8x16_t, w1: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: sdot is enabled for this function; the asm only reads and writes registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {w0:v}.16b, {a:v}.4b[{l0}]",
            "sdot {acc:v}.4s, {w1:v}.16b, {a:v}.4b[{l1}]",
            acc = inout(vreg) acc,
            w0 = in(vreg) w0,
            w1 = in(vreg) w1,
            a = in(vreg) a,
            l0 = const 2 * I,
            l1 = const 2 * I + 1,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Half `h` of a Q4 tile as quartets (`[g][0]`, see [`Quartets`]): the low nibbles of chunks
/// 0-3 are elements 0-15, the high ones 16-31.
#[target_feature(enable = "neon")]
#[inline]
fn nibble_half_quartets(t: &impl Nibbles, h: Half) -> [[int8x16_t; 1]; 8] {
    let mut w = [[vdupq_n_s8(0)]; 8];
    for (c, chunk) in chunks(t.nibbles()).iter().enumerate() {
        let [lo, hi] = split_nibbles(h.load(chunk));
        (w[c], w[c + 4]) = ([vreinterpretq_s8_u8(lo)], [vreinterpretq_s8_u8(hi)]);
    }
    w
}

/// `H` groups of four rows (quartets `w`, row scales `dw`) times a pass of `Q` quads
/// (`H · Q = 2`): group `h` of quad `i`'s token `t` goes to `acc[(4i + t) · H + h]`. The
/// integer dots start at [`Quad::starts`].
/// Octet `o` of the activations is quartets `2o` and `2o + 1`; register `2o + p` of a quad
/// holds it for tokens `2p` and `2p + 1`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn pass_sdot<const H: usize, const Q: usize>(
    w: &[[int8x16_t; H]; 8],
    dw: [float32x4_t; H],
    quads: &[Quad; Q],
    acc: &mut PassAcc,
) {
    for (i, q) in quads.iter().enumerate() {
        let a = q.regs();
        let mut dots = q.starts::<H>();
        for o in 0..4 {
            for h in 0..H {
                let (w0, w1) = (w[2 * o][h], w[2 * o + 1][h]);
                dots[0][h] = sdot_lanes::<0>(dots[0][h], w0, w1, a[2 * o]);
                dots[1][h] = sdot_lanes::<1>(dots[1][h], w0, w1, a[2 * o]);
                dots[2][h] = sdot_lanes::<0>(dots[2][h], w0, w1, a[2 * o + 1]);
                dots[3][h] = sdot_lanes::<1>(dots[3][h], w0, w1, a[2 * o + 1]);
            }
        }
        let da = q.scales();
        let at = |t: usize, h: usize| (QUAD * i + t) * H + h;
        for h in 0..H {
            let f = |t: usize| vcvtq_f32_s32(dots[t][h]);
            acc[at(0, h)] = vfmaq_f32(acc[at(0, h)], vmulq_laneq_f32::<0>(dw[h], da), f(0));
            acc[at(1, h)] = vfmaq_f32(acc[at(1, h)], vmulq_laneq_f32::<1>(dw[h], da), f(1));
            acc[at(2, h)] = vfmaq_f32(acc[at(2, h)], vmulq_laneq_f32::<2>(dw[h], da), f(2));
            acc[at(3, h)] = vfmaq_f32(acc[at(3, h)], vmulq_laneq_f32::<3>(dw[h], da), f(3));
        }
    }
}

/// Q4_1's minimums of half a tile in a two-quad pass: `acc[4i + t] += m · d_t · sum_t` (quad
/// `i`, token `t`).
#[target_feature(enable = "neon")]
#[inline]
fn pass_minimums(m: float32x4_t, quads: &[Quad; 2], acc: &mut PassAcc) {
    for (q, acc) in quads.iter().zip(acc.as_chunks_mut::<QUAD>().0) {
        let ds = q.scaled_sums();
        acc[0] = vfmaq_laneq_f32::<0>(acc[0], m, ds);
        acc[1] = vfmaq_laneq_f32::<1>(acc[1], m, ds);
        acc[2] = vfmaq_laneq_f32::<2>(acc[2], m, ds);
        acc[3] = vfmaq_laneq_f32::<3>(acc[3], m, ds);
    }
}

/// Q8_0: whole tiles, one quad a pass.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn pass_q8_0_sdot(t: &TileQ8_0, _part: usize, quads: &[Quad; 1], acc: &mut PassAcc) {
    pass_sdot::<2, 1>(&q8_quartets(t), halves_f16(&t.d), quads, acc);
}

/// One quad's part of [`pass_q4_0_sdot16`]'s asm: starting dots (`v10`-`v13`) and scales
/// (`v8`) loaded, 32 `sdot` by element over the four octets (`v14`, `v15`; the pointer `{q}`
/// steps to the next quad), then `acc[t] += dw · d_t · dots[t]` into accumulators `$acc`.
#[rustfmt::skip]
macro_rules! q4_0_quad {
    ($a0:literal, $a1:literal, $a2:literal, $a3:literal) => {
        concat!(
            "ldp q8, q10, [{q}, #{d}]\n",
            "ldp q11, q12, [{q}, #{d} + 32]\n",
            "ldr q13, [{q}, #{d} + 64]\n",
            q4_0_octet!("v0", "v1", "32"),
            q4_0_octet!("v2", "v3", "32"),
            q4_0_octet!("v4", "v5", "32"),
            q4_0_octet!("v6", "v7", "{next}"),
            "scvtf v10.4s, v10.4s\n",
            "scvtf v11.4s, v11.4s\n",
            "scvtf v12.4s, v12.4s\n",
            "scvtf v13.4s, v13.4s\n",
            "fmul v14.4s, v9.4s, v8.s[0]\n",
            "fmul v15.4s, v9.4s, v8.s[1]\n",
            "fmla ", $a0, ".4s, v10.4s, v14.4s\n",
            "fmla ", $a1, ".4s, v11.4s, v15.4s\n",
            "fmul v14.4s, v9.4s, v8.s[2]\n",
            "fmul v15.4s, v9.4s, v8.s[3]\n",
            "fmla ", $a2, ".4s, v12.4s, v14.4s\n",
            "fmla ", $a3, ".4s, v13.4s, v15.4s\n",
        )
    };
}

/// One octet of [`q4_0_quad!`]: its two activation registers (tokens 0-1, 2-3), loaded with
/// the pointer stepping `$step`, times quartets `$w0`, `$w1`.
#[rustfmt::skip]
macro_rules! q4_0_octet {
    ($w0:literal, $w1:literal, $step:literal) => {
        concat!(
            "ldp q14, q15, [{q}], #", $step, "\n",
            "sdot v10.4s, ", $w0, ".16b, v14.4b[0]\n",
            "sdot v10.4s, ", $w1, ".16b, v14.4b[1]\n",
            "sdot v11.4s, ", $w0, ".16b, v14.4b[2]\n",
            "sdot v11.4s, ", $w1, ".16b, v14.4b[3]\n",
            "sdot v12.4s, ", $w0, ".16b, v15.4b[0]\n",
            "sdot v12.4s, ", $w1, ".16b, v15.4b[1]\n",
            "sdot v13.4s, ", $w0, ".16b, v15.4b[2]\n",
            "sdot v13.4s, ", $w1, ".16b, v15.4b[3]\n",
        )
    };
}

/// Q4_0: half tiles, two quads a pass (the tokens after the last four-quad pass).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn pass_q4_0_sdot8(t: &TileQ4_0, part: usize, quads: &[Quad; 2], acc: &mut PassAcc) {
    let h = Half::of(part);
    pass_sdot::<1, 2>(&nibble_half_quartets(t, h), [h.f16s(&t.d)], quads, acc);
}

/// Q4_0: half tiles, four quads (16 tokens) a pass, in one asm block. The 16 sums of four
/// rows, eight prepared quartets, the half's scales, four dots and two activation registers
/// are all 32 vector registers; written in Rust the compiler spilled some (more instructions
/// than two-quad passes), so the registers are assigned here: `v0`-`v7` the quartets
/// ([`nibble_half_quartets`]'s order), `v8` the nibble mask then each quad's scales, `v9`
/// the half's row scales, `v10`-`v13` the dots, `v14`-`v15` activations then scale products,
/// `v16`-`v31` the sums (`acc[4i + t]`: quad `i`, token `t`).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn pass_q4_0_sdot16(t: &TileQ4_0, part: usize, quads: &[Quad; 4], acc: &mut PassAcc<16>) {
    const { assert!(offset_of!(Quad, qs) == 0 && offset_of!(Quad, starts) == offset_of!(Quad, d) + 16) };
    let h = part * HALF;
    // SAFETY: dotprod is enabled for this function. The asm reads the half's 64 nibble bytes
    // (16 at byte 16h of each 32-byte chunk of `qs`), its four f16 scales (`d[h..h + 4]`),
    // and per quad the 128 activation bytes and the five registers from `d` (`d`, `starts`);
    // `q` steps by one `Quad` per quad. It writes only the registers it names.
    unsafe {
        asm!(
            "movi v8.16b, #0x0f",
            "ldr q0, [{w}]",
            "ldr q1, [{w}, #32]",
            "ldr q2, [{w}, #64]",
            "ldr q3, [{w}, #96]",
            "ldr d9, [{s}]",
            "ushr v4.16b, v0.16b, #4",
            "ushr v5.16b, v1.16b, #4",
            "ushr v6.16b, v2.16b, #4",
            "ushr v7.16b, v3.16b, #4",
            "and v0.16b, v0.16b, v8.16b",
            "and v1.16b, v1.16b, v8.16b",
            "and v2.16b, v2.16b, v8.16b",
            "and v3.16b, v3.16b, v8.16b",
            "fcvtl v9.4s, v9.4h",
            q4_0_quad!("v16", "v17", "v18", "v19"),
            q4_0_quad!("v20", "v21", "v22", "v23"),
            q4_0_quad!("v24", "v25", "v26", "v27"),
            q4_0_quad!("v28", "v29", "v30", "v31"),
            w = in(reg) t.qs.as_ptr().add(16 * part),
            s = in(reg) t.d.as_ptr().add(h),
            q = inout(reg) quads.as_ptr() => _,
            d = const offset_of!(Quad, d),
            next = const size_of::<Quad>() - 96,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _,
            out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _,
            out("v12") _, out("v13") _, out("v14") _, out("v15") _,
            inout("v16") acc[0], inout("v17") acc[1], inout("v18") acc[2], inout("v19") acc[3],
            inout("v20") acc[4], inout("v21") acc[5], inout("v22") acc[6], inout("v23") acc[7],
            inout("v24") acc[8], inout("v25") acc[9], inout("v26") acc[10], inout("v27") acc[11],
            inout("v28") acc[12], inout("v29") acc[13], inout("v30") acc[14], inout("v31") acc[15],
            options(readonly, nostack, preserves_flags),
        );
    }
}

/// Q4_1: half tiles, two quads a pass.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn pass_q4_1_sdot(t: &TileQ4_1, part: usize, quads: &[Quad; 2], acc: &mut PassAcc) {
    let h = Half::of(part);
    pass_sdot::<1, 2>(&nibble_half_quartets(t, h), [h.f16s(&t.d)], quads, acc);
    pass_minimums(h.f16s(&t.m), quads, acc);
}

/// The four tokens' row sums of a one-quad SDOT pass (token `t` in `acc[2t..2t + 2]`).
#[target_feature(enable = "neon")]
#[inline]
fn finish_sdot(acc: PassAcc) -> [[f32; TILE_ROWS]; QUAD] {
    core::array::from_fn(|t| finish([acc[2 * t], acc[2 * t + 1]]))
}

/// Per token, the eight rows' dots of the unsigned bytes `w` with activation groups
/// `first..first + 4` (see [`kquant`]): one `sdot` by element per chunk register.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn half_dots_sdot<const NT: usize>(w: &Chunks, first: usize, a: [&BlockQ8Act; NT]) -> [Dots; NT] {
    a.map(|at| {
        let act = load_act(at)[first / 4];
        [0, 1].map(|h| sdot_groups(vdupq_n_s32(0), four(w, 0, h), act))
    })
}

/// `Σ k·q` of two q8 blocks as four i32 partial sums.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn block_dot_q8_sdot(k: &[i8; 32], q: &[i8; 32]) -> int32x4_t {
    // SAFETY: both arrays are 32 readable bytes.
    let (k, q) = unsafe {
        (
            [vld1q_s8(k.as_ptr()), vld1q_s8(k.as_ptr().add(16))],
            [vld1q_s8(q.as_ptr()), vld1q_s8(q.as_ptr().add(16))],
        )
    };
    sdot(sdot(vdupq_n_s32(0), k[0], q[0]), k[1], q[1])
}

entries! { "neon,dotprod";
    fn matmul_q8_0_dotprod(w: Tiled<'_, TileQ8_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(q8_dots_sdot, q8_dots_sdot, scale_q8_0);
        quads::matmul(w, x, out, pass_kernel!(1, 0, Sdot, pass_q8_0_sdot, finish_sdot), tail)
    }
    fn matmul_q4_0_dotprod(w: Tiled<'_, TileQ4_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_0);
        // Sixteen tokens a pass while there are sixteen, then eight, then the tile kernels.
        let (mut out, bpr) = (out, w.blocks_per_row());
        let sixteens = out.n() / 16 * 16;
        let (x16, rest) = x.split_at((sixteens * bpr).min(x.len()));
        let pass16 = pass_kernel!(4, -8, Sdot, pass_q4_0_sdot16, finish_halves);
        quads::matmul(w, x16, out.tokens(0..sixteens), pass16, tail);
        let pass8 = pass_kernel!(2, -8, Sdot, pass_q4_0_sdot8, finish_halves);
        quads::matmul(w, rest, out.tokens_from(sixteens), pass8, tail)
    }
    fn matmul_q4_1_dotprod(w: Tiled<'_, TileQ4_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        let tail = tile_kernel!(nibble_dots_sdot, nibble_dots_sdot, scale_q4_1);
        quads::matmul(w, x, out, pass_kernel!(2, 0, Sdot, pass_q4_1_sdot, finish_halves), tail)
    }
    fn matmul_q5_0_dotprod(w: Tiled<'_, TileQ5_0>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, kquant_kernel!(kquant::block_q5_0, half_dots_sdot))
    }
    fn matmul_q5_1_dotprod(w: Tiled<'_, TileQ5_1>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, x, out, kquant_kernel!(kquant::block_q5_1, half_dots_sdot))
    }
    fn matmul_q4_k_dotprod(w: Tiled<'_, TileQ4K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q4_k, half_dots_sdot))
    }
    fn matmul_q5_k_dotprod(w: Tiled<'_, TileQ5K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q5_k, half_dots_sdot))
    }
    fn matmul_q6_k_dotprod(w: Tiled<'_, TileQ6K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q6_k, half_dots_sdot))
    }
    fn matmul_q3_k_dotprod(w: Tiled<'_, TileQ3K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q3_k, half_dots_sdot))
    }
    fn matmul_q2_k_dotprod(w: Tiled<'_, TileQ2K>, x: &[BlockQ8Act], out: OutCols<'_>) {
        matmul(w, super_blocks(x), out, kquant_kernel!(kquant::block_q2_k, half_dots_sdot))
    }
    fn attn_scores_q8_dotprod(q: &[BlockQ8Act], keys: &[BlockQ8_0], scale: f32, out: &mut [f32]) {
        attn_scores_q8_with!(block_dot_q8_sdot, q, keys, scale, out)
    }
}
