//! Attention of a short sequence (at most `SHORT_MAX` keys: one key block, a plain softmax)
//! without the GEMM library, in AVX-512: one task per sequence and KV head, K transposed once
//! (16 × 16 blocks in registers), Q read in place, the scores, their softmax inline over whole
//! vectors and P·V in
//! register blocks of `R` query rows, each output row written straight into place. At 20–100
//! tokens a general GEMM's call, dispatch and packing, and the scalar tails of the softmax,
//! cost as much as the arithmetic (`flash::timing`, one core: BERT's heads at 90 tokens 36–43
//! → 49 GFLOP/s, the bundled model's at 22 tokens 17–20 → 26; the register transpose and the
//! inline softmax: 50 → 60 and 28 → 39). Plain loops did not vectorize
//! (LLVM kept the register blocks on the stack), hence the intrinsics; other CPUs keep the
//! blocked path. `attend_bf16` is the same with bf16 products (`dtype: 'q8'` from
//! `flash::BF16_FROM` keys): at 128 tokens 30–40% faster than the blocked bf16 path, with the
//! same error.

// Off x86-64 only `fits` (false) is used.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

#[cfg(target_arch = "x86_64")]
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::flash::{Heads, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::half_gemm::bh;
#[cfg(target_arch = "x86_64")]
use super::simd;

/// Longest sequence this kernel takes: its scores (`rows × keys`) stay a few hundred KB.
pub(crate) const SHORT_MAX: usize = 256;
/// Query rows per register block (16 of AVX-512's 32 registers accumulate).
const R: usize = 8;
/// Keys are padded to whole vectors.
const KJ: usize = 16;
/// Head columns per register block of P·V.
const W: usize = 32;

/// Whether the kernel runs here, on heads of this width (a whole number of `W` columns): it is
/// written for AVX-512; other CPUs keep the blocked path.
pub(crate) fn fits(dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return dim > 0 && dim.is_multiple_of(W) && simd::level() == simd::Level::Avx512;
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dim;
        false
    }
}

/// One task of `flash::attention`: the query heads of KV head `g` for the query rows `rows` of
/// sequence `seq` (`seq.len() <= SHORT_MAX`, `fits(heads.dim)`), written into `out`.
///
/// # Safety
/// As `flash::attend`: `out` points at a live `(tokens, heads.out_width())` f32 matrix with
/// `seq` inside its rows, and no one else touches rows `rows`, columns of KV group `g`'s query
/// heads, until this call returns.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn attend(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    g: usize,
    rows: Range<usize>,
    heads: Heads,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    assert!(seq.len() <= SHORT_MAX && fits(heads.dim) && rows.start >= seq.start && rows.end <= seq.end);
    // SAFETY: `fits` checked AVX-512; the rest is this function's contract.
    unsafe { task(qkv, out, seq, g, rows, heads, scale, scratch) }
}

/// `s[r, 0..16·V] = scale · q[r] · kt[.., 0..16·V]` for the R rows q (d floats each); kt and s
/// have row stride `stride`.
///
/// # Safety
/// The CPU has AVX-512F; each q[r] points at d floats, kt at d rows of 16·V floats, s at R
/// rows of 16·V floats (row strides `stride`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn scores<const V: usize>(q: [*const f32; R], kt: *const f32, stride: usize, d: usize, s: *mut f32, scale: f32) {
    use std::arch::x86_64::*;
    // SAFETY: the function's contract.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for c in 0..d {
            let k: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(kt.add(c * stride + 16 * v)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*q[r].add(c));
                for v in 0..V {
                    acc[v] = _mm512_fmadd_ps(x, k[v], acc[v]);
                }
            }
        }
        let k = _mm512_set1_ps(scale);
        for (r, acc) in acc.iter().enumerate() {
            for (v, acc) in acc.iter().enumerate() {
                _mm512_storeu_ps(s.add(r * stride + 16 * v), _mm512_mul_ps(*acc, k));
            }
        }
    }
}

/// Softmax of one row of scores in place, over its n keys, returning 1 / sum. Inline over
/// whole vectors (the library's `max` and `exp_shifted` calls cost a fifth of the softmax at
/// 22 keys): the padding keys read as -∞, whose exponential clamps to ~1e-38, and P·V never
/// reads them.
///
/// # Safety
/// The CPU has AVX-512F; `row` points at np floats, np a multiple of 16 and >= n.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn softmax_row(row: *mut f32, n: usize, np: usize) -> f32 {
    use std::arch::x86_64::*;
    let minus_inf = _mm512_set1_ps(f32::NEG_INFINITY);
    // SAFETY: the function's contract; lanes past n are neither read nor meaningful.
    unsafe {
        let mut max = minus_inf;
        for jb in (0..np).step_by(16) {
            max = _mm512_max_ps(max, _mm512_mask_loadu_ps(minus_inf, simd::tail_mask(jb, n), row.add(jb)));
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for jb in (0..np).step_by(16) {
            let x = _mm512_mask_loadu_ps(minus_inf, simd::tail_mask(jb, n), row.add(jb));
            let e = simd::exp_avx512(_mm512_sub_ps(x, max));
            _mm512_storeu_ps(row.add(jb), e);
            sum = _mm512_add_ps(sum, e);
        }
        1.0 / _mm512_reduce_add_ps(sum)
    }
}

/// P·V's epilogue: each real row's `W` columns from `cb`, times its 1 / sum, stored in place
/// (`None`: a padding row, written nowhere).
///
/// # Safety
/// The CPU has AVX-512F; each `Some` row points at `cb + W` writable floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_rows(dst: &[Option<*mut f32>; R], acc: &[[std::arch::x86_64::__m512; 2]; R], inv: &[f32], cb: usize) {
    use std::arch::x86_64::*;
    for ((dst, acc), &inv) in dst.iter().zip(acc).zip(inv) {
        if let Some(dst) = *dst {
            let k = _mm512_set1_ps(inv);
            // SAFETY: the function's contract.
            unsafe {
                _mm512_storeu_ps(dst.add(cb), _mm512_mul_ps(acc[0], k));
                _mm512_storeu_ps(dst.add(cb + 16), _mm512_mul_ps(acc[1], k));
            }
        }
    }
}

/// Transposes the 16 × 16 block `r` (row i, lane j → row j, lane i): pairs of floats, then
/// of pairs, then of 128-bit lanes, twice.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose16(r: &mut [std::arch::x86_64::__m512; 16]) {
    use std::arch::x86_64::*;
    // t[2k], t[2k + 1]: rows 2k and 2k + 1 interleaved, lane by lane.
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_ps(a, b)
        } else {
            _mm512_unpackhi_ps(a, b)
        }
    });
    // u[4k + c], 128-bit lane L: rows 4k..4k + 4 at column 4L + c.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (k, c) = (i / 4, i % 4);
        let (a, b) = (_mm512_castps_pd(t[4 * k + c / 2]), _mm512_castps_pd(t[4 * k + 2 + c / 2]));
        _mm512_castpd_ps(if c % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
    });
    for c in 0..4 {
        // Lanes 0 and 2 (v) or 1 and 3 (w) of rows 0..8, then of rows 8..16.
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0x88>(u[8 + c], u[12 + c]);
        let w0 = _mm512_shuffle_f32x4::<0xdd>(u[c], u[4 + c]);
        let w1 = _mm512_shuffle_f32x4::<0xdd>(u[8 + c], u[12 + c]);
        r[c] = _mm512_shuffle_f32x4::<0x88>(v0, v1);
        r[8 + c] = _mm512_shuffle_f32x4::<0xdd>(v0, v1);
        r[4 + c] = _mm512_shuffle_f32x4::<0x88>(w0, w1);
        r[12 + c] = _mm512_shuffle_f32x4::<0xdd>(w0, w1);
    }
}

/// Row `r·len + i` of a task (`len` its query rows) is query head `head0 + r` at token
/// `rows.start + i`: for the `R` rows from `ib`, the offset of that head in a matrix of rows
/// `width` floats wide (qkv's or the output's), `None` for padding rows (`>= m`). A plain
/// function, inlined: closures inside the AVX-512 functions were not, and their per-block
/// calls took a tenth of a 40-token task.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn head_offsets(ib: usize, m: usize, rows: &Range<usize>, head0: usize, d: usize, width: usize) -> [Option<usize>; R] {
    let mut o = [None; R];
    let len = rows.len();
    for (r, o) in o.iter_mut().enumerate() {
        let row = ib + r;
        if row < m {
            *o = Some((rows.start + row % len) * width + (head0 + row / len) * d);
        }
    }
    o
}

/// `attend`'s work, compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F; `attend`'s contract.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn task(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    g: usize,
    rows: Range<usize>,
    heads: Heads,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    use std::arch::x86_64::*;
    let (d, qw, ow) = (heads.dim, heads.qkv_width(), heads.out_width());
    let n_rep = heads.query / heads.kv;
    let n = seq.len();
    let (m, np) = (rows.len() * n_rep, n.div_ceil(KJ) * KJ);
    let mp = m.div_ceil(R) * R;
    scratch.resize(d * np + mp * np + mp + d, 0.0);
    let (kt, rest) = scratch.split_at_mut(d * np);
    let (s, rest) = rest.split_at_mut(mp * np);
    let (inv, zero) = rest.split_at_mut(mp);
    zero.fill(0.0);

    // Kᵀ (d × np), the padding keys zero, by 16 × 16 blocks transposed in registers: each
    // key's row read in order. 16-lane gathers of one column each (touching 16 rows' lines
    // at once) cost a fifth of a 22-token task, scalar copies a seventh.
    let k0 = &qkv[seq.start * qw + (heads.query + g) * d..];
    debug_assert!((n - 1) * qw + d <= k0.len());
    for jb in (0..np).step_by(16) {
        for cb in (0..d).step_by(16) {
            // SAFETY: rows jb + l < n are keys of this sequence (16 of their d floats from
            // cb, d a multiple of 32), inside qkv; the stores are columns jb..jb + 16 of rows
            // cb..cb + 16 of kt (d × np).
            unsafe {
                let mut block: [__m512; 16] = std::array::from_fn(|l| {
                    if jb + l < n {
                        _mm512_loadu_ps(k0.as_ptr().add((jb + l) * qw + cb))
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                transpose16(&mut block);
                for (c, row) in block.iter().enumerate() {
                    _mm512_storeu_ps(kt.as_mut_ptr().add((cb + c) * np + jb), *row);
                }
            }
        }
    }
    // Q read in place; the padding rows read zeros and write nowhere.
    // S = scale · Q Kᵀ, R rows × 32 keys at a time, the last 16 keys alone (np is a multiple
    // of 16: a block of 32 would pad 40 keys to 64).
    for ib in (0..mp).step_by(R) {
        let mut q = [zero.as_ptr(); R];
        for (q, o) in q.iter_mut().zip(head_offsets(ib, m, &rows, g * n_rep, d, qw)) {
            if let Some(o) = o {
                *q = qkv[o..o + d].as_ptr();
            }
        }
        let mut jb = 0;
        while jb < np {
            // SAFETY: each q[r] points at d floats (a head of a qkv row, or `zero`); rows
            // ib..ib + R of s (mp × np) and the block's columns of kt (d × np) and s lie
            // inside the slices (mp is a multiple of R, np of 16).
            unsafe {
                if jb + 32 <= np {
                    scores::<2>(q, kt.as_ptr().add(jb), np, d, s.as_mut_ptr().add(ib * np + jb), scale);
                    jb += 32;
                } else {
                    scores::<1>(q, kt.as_ptr().add(jb), np, d, s.as_mut_ptr().add(ib * np + jb), scale);
                    jb += 16;
                }
            }
        }
    }
    // Softmax over the n real keys; 1 / sum kept for the output.
    for (i, inv) in inv.iter_mut().enumerate().take(m) {
        // SAFETY: row i of s holds np floats, a multiple of 16, n of them keys.
        *inv = unsafe { softmax_row(s[i * np..(i + 1) * np].as_mut_ptr(), n, np) };
    }

    // out = P V / sum, R rows × W head columns at a time; V read in place (row stride qw),
    // each row written straight into its place in `out`.
    let v = qkv[seq.start * qw + (heads.query + heads.kv + g) * d..].as_ptr();
    debug_assert!((seq.end - 1) * qw + (heads.query + heads.kv + g) * d + d <= qkv.len());
    let sp = s.as_ptr();
    for ib in (0..mp).step_by(R) {
        let mut dst = [None; R];
        for (dst, o) in dst.iter_mut().zip(head_offsets(ib, m, &rows, g * n_rep, d, ow)) {
            // SAFETY: row t, columns of head h: inside the `(tokens, ow)` matrix `out` points
            // at (t < seq.end <= tokens), and owned by this task alone (the caller's contract).
            *dst = o.map(|o| unsafe { out.0.add(o) });
        }
        for cb in (0..d).step_by(W) {
            // SAFETY: rows ib..ib + R of s (mp × np), columns cb..cb + W of the V rows j < n of
            // the sequence, which lie inside qkv (`attend` checked the sequence against the
            // caller's token count, whose rows qkv holds), and of the output rows (above).
            unsafe {
                let mut acc = [[_mm512_setzero_ps(); 2]; R];
                for j in 0..n {
                    let v0 = _mm512_loadu_ps(v.add(j * qw + cb));
                    let v1 = _mm512_loadu_ps(v.add(j * qw + cb + 16));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let p = _mm512_set1_ps(*sp.add((ib + r) * np + j));
                        acc[0] = _mm512_fmadd_ps(p, v0, acc[0]);
                        acc[1] = _mm512_fmadd_ps(p, v1, acc[1]);
                    }
                }
                store_rows(&dst, &acc, &inv[ib..ib + R], cb);
            }
        }
    }
}

/// `attend` with QKᵀ and P·V as bf16 dot products (`vdpbf16ps`: pairs of bf16 products summed
/// into f32, twice the multiply-adds of an f32 FMA per instruction), the softmax and every sum
/// in f32: `dtype: 'q8'`'s attention, as the blocked path does it from `BF16_FROM` tokens.
///
/// # Safety
/// As `attend`; and the CPU has AVX-512 BW and BF16 (`half_gemm::available(Half::BF16)`).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn attend_bf16(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    g: usize,
    rows: Range<usize>,
    heads: Heads,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    assert!(seq.len() <= SHORT_MAX && fits(heads.dim) && rows.start >= seq.start && rows.end <= seq.end);
    assert!(super::half_gemm::available(super::Half::BF16), "AVX512-BF16");
    // SAFETY: checked above; the rest is this function's contract.
    unsafe { task_bf16(qkv, out, seq, g, rows, heads, scale, scratch) }
}

/// 32 floats (`lo` then `hi`) rounded to bf16, as 16 pairs: lane i holds elements 2i, 2i + 1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
fn pairs(lo: std::arch::x86_64::__m512, hi: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // SAFETY: plain bits.
    unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo)) }
}

/// `attend_bf16`'s work. Scratch layout (f32 slots; the bf16 ones hold pairs as bits): Kᵀ as
/// pairs of the head dimension (d/2 × np), Q as pairs (mp × d/2), S (mp × np), P as pairs of
/// keys (mp × np/2), V as pairs of keys (n/2 × d), 1/sum per row.
///
/// # Safety
/// As `attend_bf16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn task_bf16(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    g: usize,
    rows: Range<usize>,
    heads: Heads,
    scale: f32,
    scratch: &mut Vec<f32>,
) {
    use std::arch::x86_64::*;
    let (d, qw, ow) = (heads.dim, heads.qkv_width(), heads.out_width());
    let (dp, n_rep, n) = (heads.dim / 2, heads.query / heads.kv, seq.len());
    let (m, np) = (rows.len() * n_rep, n.div_ceil(KJ) * KJ);
    let (mp, pp, vn) = (m.div_ceil(R) * R, (np / 2).div_ceil(16) * 16, n.div_ceil(2));
    scratch.resize(dp * np + mp * dp + mp * np + mp * pp + vn * d + mp, 0.0);
    let (kt, rest) = scratch.split_at_mut(dp * np);
    let (qh, rest) = rest.split_at_mut(mp * dp);
    let (s, rest) = rest.split_at_mut(mp * np);
    let (ph, rest) = rest.split_at_mut(mp * pp);
    let (vh, inv) = rest.split_at_mut(vn * d);
    let zeros = _mm512_setzero_ps();

    // Kᵀ as pairs: each key's 32 floats become 16 pairs (one vector), 16 keys' vectors
    // transposed in registers, so row p holds pair p of 16 keys.
    let k0 = &qkv[seq.start * qw + (heads.query + g) * d..];
    for jb in (0..np).step_by(16) {
        for cb in (0..d).step_by(32) {
            // SAFETY: rows jb + l < n are keys of this sequence (32 of their d floats from cb,
            // d a multiple of 32), inside qkv; the stores are columns jb..jb + 16 of pair rows
            // cb/2..cb/2 + 16 of kt (dp × np).
            unsafe {
                let mut block: [__m512; 16] = std::array::from_fn(|l| {
                    if jb + l < n {
                        let k = k0.as_ptr().add((jb + l) * qw + cb);
                        pairs(_mm512_loadu_ps(k), _mm512_loadu_ps(k.add(16)))
                    } else {
                        zeros
                    }
                });
                transpose16(&mut block);
                for (c, row) in block.iter().enumerate() {
                    _mm512_storeu_ps(kt.as_mut_ptr().add((cb / 2 + c) * np + jb), *row);
                }
            }
        }
    }
    // Row r·len + i is query head g·n_rep + r at token rows.start + i (as in `task`).
    let row_at = |row: usize| (row < m).then(|| (row / rows.len(), rows.start + row % rows.len()));
    // Q as pairs, the padding rows zero.
    for row in 0..mp {
        for cb in (0..d).step_by(32) {
            // SAFETY: a head of a qkv row (d floats), or zeros; row `row` of qh (mp × dp).
            unsafe {
                let v = match row_at(row) {
                    Some((r, t)) => {
                        let q = qkv.as_ptr().add(t * qw + (g * n_rep + r) * d + cb);
                        pairs(_mm512_loadu_ps(q), _mm512_loadu_ps(q.add(16)))
                    }
                    None => zeros,
                };
                _mm512_storeu_ps(qh.as_mut_ptr().add(row * dp + cb / 2), v);
            }
        }
    }
    // S = scale · Q Kᵀ, R rows × 16 keys at a time, summed over pairs.
    for ib in (0..mp).step_by(R) {
        for jb in (0..np).step_by(16) {
            // SAFETY: rows ib..ib + R of qh (mp × dp) and s (mp × np), columns jb..jb + 16 of
            // the dp rows of kt (dp × np).
            unsafe {
                let mut acc = [zeros; R];
                for p in 0..dp {
                    let k = bh(_mm512_loadu_ps(kt.as_ptr().add(p * np + jb)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        *acc = _mm512_dpbf16_ps(*acc, bh(_mm512_set1_ps(*qh.as_ptr().add((ib + r) * dp + p))), k);
                    }
                }
                let k = _mm512_set1_ps(scale);
                for (r, acc) in acc.iter().enumerate() {
                    _mm512_storeu_ps(s.as_mut_ptr().add((ib + r) * np + jb), _mm512_mul_ps(*acc, k));
                }
            }
        }
    }
    // Softmax in f32 as in `task`; each row's exponentials then rounded to pairs of keys.
    for (i, inv) in inv.iter_mut().enumerate().take(m) {
        let row = s[i * np..(i + 1) * np].as_mut_ptr();
        // SAFETY: row i of s holds np floats (a multiple of 16, n of them keys) and row i of
        // ph pp slots (np / 2 rounded up to 16).
        unsafe {
            *inv = softmax_row(row, n, np);
            for jb in (0..np).step_by(32) {
                let hi = if jb + 16 < np { _mm512_loadu_ps(row.add(jb + 16)) } else { zeros };
                _mm512_storeu_ps(ph.as_mut_ptr().add(i * pp + jb / 2), pairs(_mm512_loadu_ps(row.add(jb)), hi));
            }
        }
    }
    // V as pairs of keys: lane c of pair row jp holds (v[2jp][c], v[2jp + 1][c]), the key
    // past an odd n zero (its probability is ~1e-38, not 0).
    let v = qkv[seq.start * qw + (heads.query + heads.kv + g) * d..].as_ptr();
    // Interleaves the two halves of 32 bf16: element 2i from i, 2i + 1 from 16 + i.
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
    );
    for jp in 0..vn {
        for cb in (0..d).step_by(16) {
            // SAFETY: V rows 2jp (and 2jp + 1 where < n) of the sequence, 16 floats from cb,
            // inside qkv; row jp of vh (vn × d).
            unsafe {
                let a = _mm512_loadu_ps(v.add(2 * jp * qw + cb));
                let b = if 2 * jp + 1 < n { _mm512_loadu_ps(v.add((2 * jp + 1) * qw + cb)) } else { zeros };
                let x = _mm512_castps_si512(pairs(a, b));
                _mm512_storeu_ps(vh.as_mut_ptr().add(jp * d + cb), _mm512_castsi512_ps(_mm512_permutexvar_epi16(idx, x)));
            }
        }
    }
    // out = P V / sum, R rows × W head columns at a time, summed over pairs of keys.
    for ib in (0..mp).step_by(R) {
        let mut dst = [None; R];
        for (dst, o) in dst.iter_mut().zip(head_offsets(ib, m, &rows, g * n_rep, d, ow)) {
            // SAFETY: as in `task`.
            *dst = o.map(|o| unsafe { out.0.add(o) });
        }
        for cb in (0..d).step_by(W) {
            // SAFETY: rows ib..ib + R of ph (mp × pp, pairs jp < vn <= pp), pair rows of vh
            // (vn × d), and the output rows (as in `task`).
            unsafe {
                let mut acc = [[zeros; 2]; R];
                for jp in 0..vn {
                    let v0 = bh(_mm512_loadu_ps(vh.as_ptr().add(jp * d + cb)));
                    let v1 = bh(_mm512_loadu_ps(vh.as_ptr().add(jp * d + cb + 16)));
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let p = bh(_mm512_set1_ps(*ph.as_ptr().add((ib + r) * pp + jp)));
                        acc[0] = _mm512_dpbf16_ps(acc[0], p, v0);
                        acc[1] = _mm512_dpbf16_ps(acc[1], p, v1);
                    }
                }
                store_rows(&dst, &acc, &inv[ib..ib + R], cb);
            }
        }
    }
}
