//! The bf16 GEMM of `dtype: 'bf16'` on CPUs with AVX512-BF16 (Zen 4, Cooper Lake, Sapphire
//! Rapids): `out (+)= a·Wᵀ + bias` with `vdpbf16ps`, which multiplies pairs of bf16 and
//! accumulates in f32 at twice the rate of f32 FMAs. The activations are rounded to bf16 (to
//! nearest even) as they enter; sums, bias and everything outside the projections stay f32.
//!
//! The layout and blocking are the int8 kernel's (`vnni.rs`): weights packed once per block of
//! 16 outputs as `[pair of inputs][output][2]`, so one 64-byte load feeds one instruction;
//! activation rows read in place, one broadcast per row and pair; tiles of up to 6 rows × 4
//! vectors (24 accumulators); the next panel's weights fetched while this one computes.

use std::arch::x86_64::*;
use std::ops::Range;

use rayon::prelude::*;

/// Outputs per vector (16 f32 lanes).
const VEC: usize = 16;
/// Vectors per parallel task.
const PANEL: usize = 4;
/// Rows per parallel task: 96 rows of 2,048 bf16 inputs are 384 KB, which L2 holds.
const BLOCK: usize = 96;
/// Most rows of a tile: 6 rows × 4 vectors fill 24 of the 32 registers with accumulators.
const ROWS: usize = 6;

/// Whether this CPU runs the kernel (AVX-512 F/BW and BF16).
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        std::env::var_os("EUROBERT_NO_BF16").is_none()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512bf16")
    })
}

/// Weights `(outputs, inputs)` in bf16 bits, packed for the kernel; outputs padded to 16 and
/// inputs to 2 with zeros.
pub(crate) struct PackedW {
    data: Vec<u16>,
    outputs: usize,
    pairs: usize,
}

impl PackedW {
    /// `w` is `(outputs, inputs)` row-major, already bf16 bits.
    pub fn new(w: &[u16], outputs: usize, inputs: usize) -> Self {
        assert_eq!(w.len(), outputs * inputs, "weight size");
        let pairs = inputs.div_ceil(2);
        let blocks = outputs.div_ceil(VEC);
        let mut data = vec![0u16; blocks * pairs * VEC * 2];
        data.par_chunks_mut(pairs * VEC * 2).enumerate().for_each(|(b, block)| {
            for c in 0..VEC.min(outputs - b * VEC) {
                let row = &w[(b * VEC + c) * inputs..(b * VEC + c + 1) * inputs];
                for (k, &v) in row.iter().enumerate() {
                    block[(k / 2) * VEC * 2 + c * 2 + k % 2] = v;
                }
            }
        });
        PackedW { data, outputs, pairs }
    }

    /// bf16 values each activation row must have: the inputs rounded up to 2, padded with 0.
    pub fn depth(&self) -> usize {
        self.pairs * 2
    }

    fn vectors(&self) -> usize {
        self.outputs.div_ceil(VEC)
    }

    /// Elements of one block of 16 outputs.
    fn block(&self) -> usize {
        self.pairs * VEC * 2
    }

    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }

    /// Weight `(o, k)` back as bf16 bits (for the tests).
    #[cfg(test)]
    fn at(&self, o: usize, k: usize) -> u16 {
        self.data[(o / VEC) * self.block() + (k / 2) * VEC * 2 + (o % VEC) * 2 + k % 2]
    }
}

/// Rows of f32 activations (`cols` of each, rows `stride` apart) rounded to bf16 into `out`,
/// `rows × depth`, the columns past `cols` zero. Panics unless [`available`].
pub(crate) fn round_rows(x: &[f32], rows: usize, cols: usize, stride: usize, depth: usize, out: &mut [u16]) {
    assert!(available(), "AVX512-BF16");
    assert!(depth >= cols && out.len() == rows * depth, "bf16 row sizes");
    assert!(rows == 0 || x.len() >= (rows - 1) * stride + cols, "activation rows lie inside their buffer");
    out.par_chunks_mut(depth).enumerate().with_min_len(16).for_each(|(r, o)| {
        // SAFETY: the features are present (asserted); the row's `cols` values lie inside `x`
        // (asserted above) and `o` holds `depth >= cols` values.
        unsafe { round_row(&x[r * stride..r * stride + cols], o) }
    });
}

/// # Safety
/// The CPU has AVX-512 F and BF16; `o.len() >= x.len()`.
#[target_feature(enable = "avx512f,avx512bf16")]
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

#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: tasks write disjoint blocks (rows × columns) of the output.
unsafe impl Send for Out {}
// SAFETY: as for Send: no two tasks touch the same element.
unsafe impl Sync for Out {}

impl Out {
    /// Through a method, so closures capture the `Send` wrapper, not its raw pointer.
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `out (rows × outputs) (+)= a·Wᵀ + bias` for `a`: `rows` rows of `w.depth()` bf16 bits.
/// Panics unless [`available`] and the sizes agree.
pub(crate) fn gemm(a: &[u16], rows: usize, w: &PackedW, out: &mut [f32], bias: Option<&[f32]>, accumulate: bool) {
    assert!(available(), "AVX512-BF16");
    assert_eq!(a.len(), rows * w.depth(), "activation size");
    assert_eq!(out.len(), rows * w.outputs, "output size");
    assert!(bias.is_none_or(|b| b.len() == w.outputs), "bias size");
    if rows == 0 {
        return;
    }
    let vectors = w.vectors();
    let panels = vectors.div_ceil(PANEL);
    let blocks = rows.div_ceil(BLOCK);
    let o = Out(out.as_mut_ptr());
    (0..blocks * panels).into_par_iter().for_each(|t| {
        let (b, p) = (t / panels, t % panels);
        let rs = rows * b / blocks..rows * (b + 1) / blocks;
        // SAFETY: the CPU has the features (asserted); every pointer the panel forms lies in
        // `a`, `w` or rows `rs` × columns `p·64..` of `out`, whose sizes were checked above;
        // tasks write disjoint parts of `out`.
        unsafe { panel(a, rs, w, p * PANEL..vectors.min((p + 1) * PANEL), o.ptr(), bias, accumulate) }
    });
}

/// # Safety
/// The CPU has AVX-512 F/BW and BF16; `a` holds at least `rows.end` rows of `w.depth()`;
/// `vs` are vectors of `w`; `out` points at a live `(rows.end.., w.outputs)` f32 matrix whose
/// rows `rows` × the columns of `vs` no one else touches during the call.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn panel(a: &[u16], rows: Range<usize>, w: &PackedW, vs: Range<usize>, out: *mut f32, bias: Option<&[f32]>, accumulate: bool) {
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
            a: a[r0 * w.depth()..].as_ptr(),
            w,
            // SAFETY: row r0 < rows.end of the matrix `out` points at (the caller's contract).
            out: unsafe { out.add(r0 * w.outputs) },
            bias,
            accumulate,
            prefetch: w.data[(next.start * block).min(w.data.len())..].as_ptr(),
            lines: lines * c / chunks..lines * (c + 1) / chunks,
        };
        // SAFETY: the tile's rows r0..r1 lie in `rows`, its pointers are set just above, and
        // the features are this function's own.
        unsafe { t.run(r1 - r0, vs.start) };
        r0 = r1;
    }
}

struct Tile<'a> {
    a: *const u16,
    w: &'a PackedW,
    out: *mut f32,
    bias: Option<&'a [f32]>,
    accumulate: bool,
    prefetch: *const u16,
    lines: Range<usize>,
}

impl Tile<'_> {
    /// # Safety
    /// As for [`Tile::kernel`], with `rows` in 1..=ROWS.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    unsafe fn run(&self, rows: usize, v0: usize) {
        // SAFETY: the caller's contract is the kernel's; R is the tile's row count.
        unsafe {
            match rows {
                1 => self.kernel::<1>(v0),
                2 => self.kernel::<2>(v0),
                3 => self.kernel::<3>(v0),
                4 => self.kernel::<4>(v0),
                5 => self.kernel::<5>(v0),
                6 => self.kernel::<6>(v0),
                n => unreachable!("a tile of {n} rows"),
            }
        }
    }

    /// `R` rows against up to `PANEL` vectors from `v0` (fewer at the end of the outputs).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW and BF16; `self.a` points at `R` rows of `w.depth()` bf16,
    /// `self.out` at `R` rows of `w.outputs` f32 that only this tile writes, `v0` is a vector
    /// of `w`.
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    #[inline]
    unsafe fn kernel<const R: usize>(&self, v0: usize) {
        // SAFETY: every load reads inside the packed weights (vectors v0.. of `w`, pairs
        // 0..w.pairs), the `R` activation rows or the bias, per the contract above; every store
        // writes the tile's own output rows, masked to the outputs that exist; prefetches are
        // hints that never fault.
        unsafe {
            const V: usize = PANEL;
            let w = self.w;
            let nv = V.min(w.vectors() - v0);
            let block = w.block();
            let b = w.data.as_ptr().add(v0 * block);
            let lda = w.depth();
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            let cols: [*const u16; V] = std::array::from_fn(|j| b.add(j.min(nv - 1) * block));
            let (mut line, count) = (self.lines.start, self.lines.len());
            let mut due = 0;
            for g in 0..w.pairs {
                due += count;
                while due >= w.pairs {
                    _mm_prefetch::<_MM_HINT_T1>(self.prefetch.add(line * 32) as *const i8);
                    line += 1;
                    due -= w.pairs;
                }
                // Loads with no branch (past the last vector, it is loaded again and its sums
                // dropped): with a branch per vector, LLVM kept the accumulators in memory and
                // stored every one after each instruction, at half the speed.
                let mut bv = [_mm512_setzero_ps(); V];
                for j in 0..V {
                    bv[j] = _mm512_loadu_ps(cols[j].add(g * VEC * 2) as *const f32);
                }
                for r in 0..R {
                    let x = _mm512_set1_ps((self.a.add(r * lda + g * 2) as *const f32).read_unaligned());
                    for j in 0..V {
                        acc[r][j] = _mm512_dpbf16_ps(acc[r][j], bh(x), bh(bv[j]));
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate() {
                for (j, &acc) in acc.iter().enumerate().take(nv) {
                    let c0 = (v0 + j) * VEC;
                    let mask: __mmask16 = if w.outputs - c0 >= VEC { 0xffff } else { (1u16 << (w.outputs - c0)) - 1 };
                    let mut y = acc;
                    if let Some(bias) = self.bias {
                        y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(c0)));
                    }
                    let o = self.out.add(r * w.outputs + c0);
                    if self.accumulate {
                        y = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, o), y);
                    }
                    _mm512_mask_storeu_ps(o, mask, y);
                }
            }
        }
    }
}

/// The same 512 bits as 32 bf16.
#[inline(always)]
fn bh(x: __m512) -> __m512bh {
    // SAFETY: both are 512-bit vectors with no invalid bit patterns.
    unsafe { std::mem::transmute::<__m512, __m512bh>(x) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(x: f32) -> f32 {
        half::bf16::from_f32(x).to_f32()
    }

    #[test]
    fn bf16_gemm_equals_the_definition_over_rounded_inputs() {
        if !available() {
            eprintln!("skipped: no AVX512-BF16 on this CPU");
            return;
        }
        // Odd sizes: a partial vector, a partial panel, an odd depth, tiles of every height.
        for (rows, inputs, outputs) in [(1, 7, 5), (20, 71, 45), (131, 130, 100), (7, 256, 64)] {
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.0131).collect();
            let bits: Vec<u16> = w.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect();
            let packed = PackedW::new(&bits, outputs, inputs);
            for o in 0..outputs {
                for k in 0..inputs {
                    assert_eq!(packed.at(o, k), bits[o * inputs + k]);
                }
            }
            let stride = inputs + 3;
            let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.0517).collect();
            let mut a = vec![1u16; rows * packed.depth()];
            round_rows(&x, rows, inputs, stride, packed.depth(), &mut a);
            let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.1).collect();
            for accumulate in [false, true] {
                let mut out = vec![1f32; rows * outputs];
                gemm(&a, rows, &packed, &mut out, Some(&b), accumulate);
                for r in 0..rows {
                    for o in 0..outputs {
                        let dot: f64 = (0..inputs).map(|k| bf16(x[r * stride + k]) as f64 * bf16(w[o * inputs + k]) as f64).sum();
                        let want = if accumulate { 1.0 } else { 0.0 } + b[o] as f64 + dot;
                        let got = out[r * outputs + o] as f64;
                        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{rows}×{inputs}×{outputs} ({r},{o}): {got} vs {want}");
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p eurobert --lib bf16_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bf16_timing() {
        if !available() {
            return;
        }
        let (rows, inputs, outputs) = (2048, 768, 2304);
        let w: Vec<u16> = (0..outputs * inputs).map(|i| half::bf16::from_f32(((i % 23) as f32 - 11.0) * 0.01).to_bits()).collect();
        let packed = PackedW::new(&w, outputs, inputs);
        let a: Vec<u16> = (0..rows * inputs).map(|i| half::bf16::from_f32(((i % 17) as f32 - 8.0) * 0.01).to_bits()).collect();
        let mut out = vec![0f32; rows * outputs];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        pool.install(|| {
            for _ in 0..3 {
                let t = std::time::Instant::now();
                gemm(&a, rows, &packed, &mut out, None, false);
                let s = t.elapsed().as_secs_f64();
                eprintln!("bf16 gemm {rows}×{inputs}×{outputs}, 1 thread: {:.1} GFLOP/s", 2.0 * (rows * inputs * outputs) as f64 / s / 1e9);
            }
        });
    }
}
