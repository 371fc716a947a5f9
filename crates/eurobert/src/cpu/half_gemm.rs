//! The GEMMs of `dtype: 'bf16'` and `'f16'` on AVX-512 CPUs: `out (+)= a·Wᵀ + bias` with the
//! weights packed once in 16 bits, sums, bias and everything outside the projections in f32.
//! - bf16 (AVX512-BF16: Zen 4, Cooper Lake, Sapphire Rapids) uses `vdpbf16ps`, which multiplies
//!   pairs of bf16 and accumulates in f32 at twice the rate of f32 FMAs; the activations are
//!   rounded to bf16 (to nearest even) as they enter.
//! - f16 widens the weights with `vcvtph2ps` and multiplies the f32 activations, read in
//!   place, with f32 FMAs: the only rounding is the weights' own, and a short input, bound by
//!   the weights' bandwidth, reads half the bytes of f32.
//!
//! The layout and blocking are the int8 kernel's (`vnni.rs`): weights packed per block of 16
//! outputs (bf16 as `[pair of inputs][output][2]`, f16 as `[input][output]`), so one load feeds
//! one instruction; activation rows read in place, one 4-byte broadcast per row and step (a
//! bf16 pair, or one f32); tiles of up to 6 rows × 4 vectors (24 accumulators); the next
//! panel's weights fetched while this one computes.

use std::arch::x86_64::*;
use std::ops::Range;

use rayon::prelude::*;

use super::half_linear::Half;
use super::Shared;

/// Outputs per vector (16 f32 lanes).
const VEC: usize = 16;
/// Vectors per parallel task.
const PANEL: usize = 4;
/// Rows per parallel task: 96 rows of 2,048 bf16 inputs are 384 KB, which L2 holds.
const BLOCK: usize = 96;
/// Most rows of a tile: 6 rows × 4 vectors fill 24 of the 32 registers with accumulators.
const ROWS: usize = 6;

/// Whether this CPU runs the kernel for `kind` (AVX-512 F/BW, and BF16 for bf16).
/// `EUROBERT_NO_HALF_GEMM=1` turns both off (the widening path of `half_linear.rs` runs).
pub(crate) fn available(kind: Half) -> bool {
    use std::sync::OnceLock;
    static BASE: OnceLock<bool> = OnceLock::new();
    static BF16: OnceLock<bool> = OnceLock::new();
    let base = *BASE.get_or_init(|| {
        std::env::var_os("EUROBERT_NO_HALF_GEMM").is_none() && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
    });
    match kind {
        Half::F16 => base,
        Half::BF16 => base && *BF16.get_or_init(|| is_x86_feature_detected!("avx512bf16")),
    }
}

/// Weights `(outputs, inputs)` in 16-bit bits, packed for the kernel; outputs padded to 16
/// (and, for bf16, inputs to 2) with zeros.
pub(crate) struct PackedW {
    data: Vec<u16>,
    kind: Half,
    outputs: usize,
    inputs: usize,
    /// Steps of the inner loop: pairs of inputs (bf16) or inputs (f16).
    steps: usize,
}

impl PackedW {
    /// `w` is `(outputs, inputs)` row-major, already in `kind`'s bits.
    pub fn new(w: &[u16], outputs: usize, inputs: usize, kind: Half) -> Self {
        assert_eq!(w.len(), outputs * inputs, "weight size");
        let per = per_step(kind);
        let steps = inputs.div_ceil(per);
        let blocks = outputs.div_ceil(VEC);
        let mut data = vec![0u16; blocks * steps * VEC * per];
        data.par_chunks_mut(steps * VEC * per).enumerate().for_each(|(b, block)| {
            for c in 0..VEC.min(outputs - b * VEC) {
                let row = &w[(b * VEC + c) * inputs..(b * VEC + c + 1) * inputs];
                for (k, &v) in row.iter().enumerate() {
                    block[(k / per) * VEC * per + c * per + k % per] = v;
                }
            }
        });
        PackedW { data, kind, outputs, inputs, steps }
    }

    pub fn kind(&self) -> Half {
        self.kind
    }

    /// bf16 values each rounded activation row must have (bf16 only): the inputs rounded up
    /// to 2, padded with 0.
    pub fn depth(&self) -> usize {
        self.steps * 2
    }

    fn vectors(&self) -> usize {
        self.outputs.div_ceil(VEC)
    }

    /// Elements of one block of 16 outputs.
    fn block(&self) -> usize {
        self.steps * VEC * per_step(self.kind)
    }

    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }

    /// Weight `(o, k)` back as 16-bit bits (for the tests).
    #[cfg(test)]
    fn at(&self, o: usize, k: usize) -> u16 {
        let per = per_step(self.kind);
        self.data[(o / VEC) * self.block() + (k / per) * VEC * per + (o % VEC) * per + k % per]
    }
}

impl PackedW {
    /// An empty bf16 matrix for [`PackedW::repack_bf16`] to fill.
    pub fn empty_bf16() -> Self {
        PackedW { data: Vec::new(), kind: Half::BF16, outputs: 0, inputs: 0, steps: 0 }
    }

    /// Refills this matrix, serially and reusing its buffer, with `outputs × inputs` values
    /// `at(o, k)` rounded to bf16: how attention packs its K and V blocks inside one task.
    pub fn repack_bf16(&mut self, outputs: usize, inputs: usize, at: impl Fn(usize, usize) -> f32) {
        let steps = inputs.div_ceil(2);
        let blocks = outputs.div_ceil(VEC);
        *self = PackedW { data: std::mem::take(&mut self.data), kind: Half::BF16, outputs, inputs, steps };
        self.data.clear();
        self.data.resize(blocks * steps * VEC * 2, 0);
        for o in 0..outputs {
            let base = (o / VEC) * steps * VEC * 2 + (o % VEC) * 2;
            for k in 0..inputs {
                self.data[base + (k / 2) * VEC * 2 + k % 2] = half::bf16::from_f32(at(o, k)).to_bits();
            }
        }
    }
}

/// Inputs per step of the inner loop.
fn per_step(kind: Half) -> usize {
    match kind {
        Half::BF16 => 2,
        Half::F16 => 1,
    }
}

/// Rows of f32 activations (`cols` of each, rows `stride` apart) rounded to bf16 into `out`,
/// `rows × depth`, the columns past `cols` zero. Panics unless bf16 is [`available`].
pub(crate) fn round_rows(x: &[f32], rows: usize, cols: usize, stride: usize, depth: usize, out: &mut [u16]) {
    assert!(available(Half::BF16), "AVX512-BF16");
    assert!(depth >= cols && out.len() == rows * depth, "bf16 row sizes");
    assert!(rows == 0 || x.len() >= (rows - 1) * stride + cols, "activation rows lie inside their buffer");
    out.par_chunks_mut(depth).enumerate().with_min_len(16).for_each(|(r, o)| {
        // SAFETY: the features are present (asserted); the row's `cols` values lie inside `x`
        // (asserted above) and `o` holds `depth >= cols` values.
        unsafe { round_row(&x[r * stride..r * stride + cols], o) }
    });
}

/// [`round_rows`] on the calling thread alone (inside a parallel task).
pub(crate) fn round_rows_serial(x: &[f32], rows: usize, cols: usize, stride: usize, depth: usize, out: &mut [u16]) {
    assert!(available(Half::BF16), "AVX512-BF16");
    assert!(depth >= cols && out.len() == rows * depth, "bf16 row sizes");
    assert!(rows == 0 || x.len() >= (rows - 1) * stride + cols, "activation rows lie inside their buffer");
    for (r, o) in out.chunks_mut(depth).enumerate() {
        // SAFETY: as in `round_rows`.
        unsafe { round_row(&x[r * stride..r * stride + cols], o) }
    }
}

/// # Safety
/// The CPU has AVX-512 F/BW and BF16; `o.len() >= x.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn round_row(x: &[f32], o: &mut [u16]) {
    let n = x.len();
    let mut k = 0;
    // SAFETY: every load reads x[k..k + 16] and every store writes o[k..k + 16], k + 16 <= n,
    // or a masked tail inside both.
    unsafe {
        while k + VEC <= n {
            let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(x.as_ptr().add(k)));
            _mm256_storeu_si256(o.as_mut_ptr().add(k) as *mut __m256i, std::mem::transmute::<__m256bh, __m256i>(h));
            k += VEC;
        }
        if k < n {
            let mask: __mmask16 = (1u16 << (n - k)) - 1;
            let h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, x.as_ptr().add(k)));
            _mm256_mask_storeu_epi16(o.as_mut_ptr().add(k) as *mut i16, mask, std::mem::transmute::<__m256bh, __m256i>(h));
        }
    }
    o[n..].fill(0);
}

/// The activations a GEMM reads: bf16 rows from [`round_rows`] (`w.depth()` each) for bf16
/// weights, f32 rows in place (`stride` apart) for f16 weights.
#[derive(Clone, Copy)]
pub(crate) enum Activations<'a> {
    Bf16(&'a [u16]),
    F32 { data: &'a [f32], stride: usize },
}

/// `out (rows × outputs) (+)= a·Wᵀ + bias`. Panics unless the kernel is [`available`] for the
/// weights' kind, the activations match it and the sizes agree.
pub(crate) fn gemm(a: Activations, rows: usize, w: &PackedW, out: &mut [f32], bias: Option<&[f32]>, accumulate: bool) {
    assert!(available(w.kind), "AVX-512 for {:?}", w.kind);
    // Each row's start as bytes, and the bytes between rows.
    let (base, lda): (*const u8, usize) = match (a, w.kind) {
        (Activations::Bf16(a), Half::BF16) => {
            assert_eq!(a.len(), rows * w.depth(), "activation size");
            (a.as_ptr().cast(), 2 * w.depth())
        }
        (Activations::F32 { data, stride }, Half::F16) => {
            assert!(
                stride >= w.inputs && (rows == 0 || data.len() >= (rows - 1) * stride + w.inputs),
                "activation rows lie inside their buffer"
            );
            (data.as_ptr().cast(), 4 * stride)
        }
        _ => panic!("activations do not match {:?} weights", w.kind),
    };
    assert_eq!(out.len(), rows * w.outputs, "output size");
    assert!(bias.is_none_or(|b| b.len() == w.outputs), "bias size");
    if rows == 0 {
        return;
    }
    let vectors = w.vectors();
    let panels = vectors.div_ceil(PANEL);
    let blocks = rows.div_ceil(BLOCK);
    // Tasks write disjoint blocks (rows × columns) of `out` and only read the activations.
    let o = Shared(out.as_mut_ptr());
    let a = Shared(base.cast_mut());
    (0..blocks * panels).into_par_iter().for_each(|t| {
        let (b, p) = (t / panels, t % panels);
        let rs = rows * b / blocks..rows * (b + 1) / blocks;
        let vs = p * PANEL..vectors.min((p + 1) * PANEL);
        // SAFETY: the CPU has the features (asserted); the activations hold `rows` rows `lda`
        // bytes apart (checked above), every other pointer the panel forms lies in `w` or rows
        // `rs` × columns of `vs` of `out`, whose sizes were checked above; tasks write
        // disjoint parts of `out`.
        unsafe {
            match w.kind {
                Half::BF16 => panel_bf16(a.ptr(), lda, rs, w, vs, &Region::whole(o.ptr(), w), bias, accumulate),
                Half::F16 => panel_f16(a.ptr(), lda, rs, w, vs, &Region::whole(o.ptr(), w), bias, accumulate),
            }
        }
    });
}

/// `out (+)= a·Wᵀ` over part of `w`, on the calling thread alone (inside a parallel task):
/// outputs `outputs` (starting at a multiple of 16) into `out`, `rows × outputs.len()`, and
/// inputs `inputs` (starting at an even input) from bf16 rows `a` of `inputs.len()` rounded up
/// to even. How attention runs a block of keys against K and V packed once per sequence.
/// Panics unless bf16 is [`available`] and the sizes agree.
pub(crate) fn gemm_serial(
    a: &[u16],
    rows: usize,
    w: &PackedW,
    outputs: Range<usize>,
    inputs: Range<usize>,
    out: &mut [f32],
    accumulate: bool,
) {
    assert!(available(Half::BF16) && w.kind == Half::BF16, "AVX512-BF16 and bf16 weights");
    assert!(outputs.start.is_multiple_of(VEC) && outputs.start <= outputs.end && outputs.end <= w.outputs, "output range");
    assert!(inputs.start.is_multiple_of(2) && inputs.start <= inputs.end && inputs.end <= w.inputs, "input range");
    let depth = inputs.len().div_ceil(2) * 2;
    assert_eq!(a.len(), rows * depth, "activation size");
    assert_eq!(out.len(), rows * outputs.len(), "output size");
    if rows == 0 || outputs.is_empty() || inputs.is_empty() {
        return;
    }
    let region = Region {
        out: out.as_mut_ptr(),
        ldo: outputs.len(),
        first: outputs.start,
        last: outputs.end,
        steps: inputs.start / 2..inputs.end.div_ceil(2),
    };
    let (first, last) = (outputs.start / VEC, outputs.end.div_ceil(VEC));
    let mut v = first;
    while v < last {
        let vs = v..(v + PANEL).min(last);
        // SAFETY: the CPU has the features (asserted); `a` holds `rows` rows of the steps'
        // bf16 pairs (row i's step g at byte 4·(g − steps.start)), and `out` is
        // `rows × outputs.len()` (both checked above).
        unsafe { panel_bf16(a.as_ptr().cast(), 2 * depth, 0..rows, w, vs.clone(), &region, None, accumulate) }
        v = vs.end;
    }
}

/// Where a panel's sums go: `out` points at row 0 of the column of output `first` (a multiple
/// of 16), rows `ldo` floats apart; outputs `first..last` exist there, and the inner loop runs
/// over `steps` (all of `w`'s, or the pairs of a block of keys).
#[derive(Clone)]
struct Region {
    out: *mut f32,
    ldo: usize,
    first: usize,
    last: usize,
    steps: Range<usize>,
}

impl Region {
    /// All of `w` into a dense `(rows, w.outputs)` matrix.
    fn whole(out: *mut f32, w: &PackedW) -> Self {
        Region { out, ldo: w.outputs, first: 0, last: w.outputs, steps: 0..w.steps }
    }
}

/// # Safety
/// As for [`panel`], on a CPU with AVX-512 F/BW and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_bf16(
    a: *const u8,
    lda: usize,
    rows: Range<usize>,
    w: &PackedW,
    vs: Range<usize>,
    region: &Region,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe { panel::<true>(a, lda, rows, w, vs, region, bias, accumulate) }
}

/// # Safety
/// As for [`panel`], on a CPU with AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_f16(
    a: *const u8,
    lda: usize,
    rows: Range<usize>,
    w: &PackedW,
    vs: Range<usize>,
    region: &Region,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    // SAFETY: the caller's contract.
    unsafe { panel::<false>(a, lda, rows, w, vs, region, bias, accumulate) }
}

/// # Safety
/// Inlined only into a function with the features the format needs; `a` points at least
/// `rows.end` rows `lda` bytes apart of the format's activations, each starting at the
/// region's first step; `vs` are vectors of `w` whose outputs start inside `region.first..region.last`;
/// `region.out` points at a live f32 matrix of `rows.end` rows `region.ldo` apart whose rows
/// `rows` × the region's columns of `vs` no one else touches during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn panel<const BF: bool>(
    a: *const u8,
    lda: usize,
    rows: Range<usize>,
    w: &PackedW,
    vs: Range<usize>,
    region: &Region,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    let chunks = rows.len().div_ceil(ROWS);
    let block = w.block();
    let vectors = w.vectors();
    let next = vs.end.min(vectors)..(vs.end + PANEL).min(vectors);
    // 64-byte lines of the next panel's weights.
    let lines = next.len() * block / 32;
    let mut r0 = rows.start;
    for c in 0..chunks {
        let r1 = rows.start + rows.len() * (c + 1) / chunks;
        let t = Tile {
            // SAFETY: row r0 < rows.end of the activations (the caller's contract).
            a: unsafe { a.add(r0 * lda) },
            lda,
            w,
            // SAFETY: row r0 < rows.end of the region's matrix (the caller's contract).
            out: unsafe { region.out.add(r0 * region.ldo) },
            ldo: region.ldo,
            first: region.first,
            last: region.last,
            steps: region.steps.clone(),
            bias,
            accumulate,
            prefetch: w.data[(next.start * block).min(w.data.len())..].as_ptr(),
            lines: lines * c / chunks..lines * (c + 1) / chunks,
        };
        // SAFETY: the tile's rows r0..r1 lie in `rows` and its pointers are set just above.
        unsafe {
            match r1 - r0 {
                1 => t.kernel::<BF, 1>(vs.start),
                2 => t.kernel::<BF, 2>(vs.start),
                3 => t.kernel::<BF, 3>(vs.start),
                4 => t.kernel::<BF, 4>(vs.start),
                5 => t.kernel::<BF, 5>(vs.start),
                6 => t.kernel::<BF, 6>(vs.start),
                n => unreachable!("a tile of {n} rows"),
            }
        }
        r0 = r1;
    }
}

struct Tile<'a> {
    a: *const u8,
    lda: usize,
    w: &'a PackedW,
    out: *mut f32,
    ldo: usize,
    first: usize,
    last: usize,
    steps: Range<usize>,
    bias: Option<&'a [f32]>,
    accumulate: bool,
    prefetch: *const u16,
    lines: Range<usize>,
}

/// The same 512 bits as 32 bf16.
#[inline(always)]
pub(crate) fn bh(x: __m512) -> __m512bh {
    // SAFETY: both are 512-bit vectors with no invalid bit patterns.
    unsafe { std::mem::transmute::<__m512, __m512bh>(x) }
}

impl Tile<'_> {
    /// `R` rows against up to `PANEL` vectors from `v0` (fewer at the end of the outputs).
    ///
    /// # Safety
    /// Inlined only into a function with the format's features; `self.a` points at `R` rows
    /// `lda` bytes apart of the format's activations, `self.out` at `R` rows `ldo` apart of
    /// the region's columns that only this tile writes, `v0` is a vector of `w`.
    #[inline(always)]
    // Indices keep the accumulators plainly in registers (see `cols` below).
    #[allow(clippy::needless_range_loop)]
    unsafe fn kernel<const BF: bool, const R: usize>(&self, v0: usize) {
        // SAFETY: every load reads inside the packed weights (vectors v0.. of `w`, steps of
        // the region), the `R` activation rows or the bias, per the contract above; every store
        // writes the tile's own output rows, masked to the outputs that exist; prefetches are
        // hints that never fault.
        unsafe {
            const V: usize = PANEL;
            let w = self.w;
            let nv = V.min(w.vectors() - v0);
            let block = w.block();
            let step = if BF { VEC * 2 } else { VEC };
            let b = w.data.as_ptr().add(v0 * block);
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            // Past the last vector, it is loaded again and its sums dropped: with a branch per
            // vector, LLVM kept the accumulators in memory and stored every one after each
            // instruction, at half the speed.
            let cols: [*const u16; V] = std::array::from_fn(|j| b.add(j.min(nv - 1) * block));
            let (s0, total) = (self.steps.start, self.steps.len());
            let (mut line, count) = (self.lines.start, self.lines.len());
            let mut due = 0;
            for g in self.steps.clone() {
                due += count;
                while due >= total {
                    _mm_prefetch::<_MM_HINT_T1>(self.prefetch.add(line * 32) as *const i8);
                    line += 1;
                    due -= total;
                }
                let mut bv = [_mm512_setzero_ps(); V];
                for j in 0..V {
                    let p = cols[j].add(g * step);
                    bv[j] = if BF { _mm512_loadu_ps(p as *const f32) } else { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) };
                }
                for r in 0..R {
                    // A bf16 pair, or one f32.
                    let x = _mm512_set1_ps((self.a.add(r * self.lda + (g - s0) * 4) as *const f32).read_unaligned());
                    for j in 0..V {
                        acc[r][j] = if BF { _mm512_dpbf16_ps(acc[r][j], bh(x), bh(bv[j])) } else { _mm512_fmadd_ps(x, bv[j], acc[r][j]) };
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (j, &acc) in acc.iter().enumerate().take(nv) {
                    let c0 = (v0 + j) * VEC;
                    if c0 >= self.last {
                        break;
                    }
                    let mask = super::simd::tail_mask(c0, self.last);
                    let mut y = acc;
                    if let Some(bias) = self.bias {
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0)));
                    }
                    let o = self.out.add(r * self.ldo + c0 - self.first);
                    if self.accumulate {
                        y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), y);
                    }
                    _mm512_mask_storeu_ps(o, mask, y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_gemm_equals_the_definition_over_rounded_inputs() {
        for kind in [Half::BF16, Half::F16] {
            if !available(kind) {
                crate::skip_test(
                    "cpu::half_gemm::half_gemm_equals_the_definition_over_rounded_inputs",
                    &format!("no AVX-512 {kind:?} GEMM on this CPU"),
                );
                continue;
            }
            let round = |x: f32| kind.widen_one(kind.narrow_one(x));
            // Odd sizes: a partial vector, a partial panel, an odd depth, tiles of every height.
            for (rows, inputs, outputs) in [(1, 7, 5), (20, 71, 45), (131, 130, 100), (7, 256, 64)] {
                let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.0131).collect();
                let bits = kind.narrow(&w);
                let packed = PackedW::new(&bits, outputs, inputs, kind);
                for o in 0..outputs {
                    for k in 0..inputs {
                        assert_eq!(packed.at(o, k), bits[o * inputs + k]);
                    }
                }
                let stride = inputs + 3;
                let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.0517).collect();
                let mut a = vec![1u16; rows * packed.depth()];
                // bf16 rounds the activations as they enter; f16 reads them in place.
                let (act, xr): (Activations, Vec<f32>) = match kind {
                    Half::BF16 => {
                        round_rows(&x, rows, inputs, stride, packed.depth(), &mut a);
                        (Activations::Bf16(&a), x.iter().map(|&v| Half::BF16.widen_one(Half::BF16.narrow_one(v))).collect())
                    }
                    Half::F16 => (Activations::F32 { data: &x, stride }, x.clone()),
                };
                let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.1).collect();
                for accumulate in [false, true] {
                    let mut out = vec![1f32; rows * outputs];
                    gemm(act, rows, &packed, &mut out, Some(&b), accumulate);
                    for r in 0..rows {
                        for o in 0..outputs {
                            let dot: f64 = (0..inputs).map(|k| xr[r * stride + k] as f64 * round(w[o * inputs + k]) as f64).sum();
                            let want = if accumulate { 1.0 } else { 0.0 } + b[o] as f64 + dot;
                            let got = out[r * outputs + o] as f64;
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{kind:?} {rows}×{inputs}×{outputs} ({r},{o}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p eurobert --lib half_gemm_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn half_gemm_timing() {
        let (inputs, outputs) = (768, 2304);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        for kind in [Half::BF16, Half::F16] {
            if !available(kind) {
                continue;
            }
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
            let packed = PackedW::new(&kind.narrow(&w), outputs, inputs, kind);
            for rows in [20, 2048] {
                let x: Vec<f32> = (0..rows * inputs).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
                let mut a = vec![0u16; rows * packed.depth()];
                let mut out = vec![0f32; rows * outputs];
                pool.install(|| {
                    let mut best = 0f64;
                    for _ in 0..5 {
                        let t = std::time::Instant::now();
                        let act = match kind {
                            Half::BF16 => {
                                round_rows(&x, rows, inputs, inputs, packed.depth(), &mut a);
                                Activations::Bf16(&a)
                            }
                            Half::F16 => Activations::F32 { data: &x, stride: inputs },
                        };
                        gemm(act, rows, &packed, &mut out, None, false);
                        best = best.max(2.0 * (rows * inputs * outputs) as f64 / t.elapsed().as_secs_f64() / 1e9);
                    }
                    eprintln!("{kind:?} gemm {rows}×{inputs}×{outputs}, 1 thread: {best:.1} GFLOP/s");
                });
            }
        }
    }
}
