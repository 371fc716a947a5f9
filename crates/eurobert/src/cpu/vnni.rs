//! The int8 GEMM of `dtype: 'q8'` on CPUs with AVX-512 VNNI, with the dequantization fused
//! into its store: `out (+)= (a·Wᵀ − 128·Σw) · sa · sw + bias`, written straight to f32.
//!
//! Why our own: rten-gemm packs the activations on every call and writes an i32 matrix that a
//! second pass turns into f32; a sentence's 20 rows then leave its kernel at half its
//! large-batch speed (`examples/int8_probe.rs`). Here activations are read in place (one
//! broadcast per row and 4 depths), the weights stream in the order the kernel reads them,
//! and the next panel's weights are fetched while this one computes.
//!
//! The integer sums are exact and the epilogue does rten's arithmetic in the same order
//! (`acc as f32 * sa * sw + b`, no fused multiply-add), so both paths give the same bits.
//! Self-contained (std, rayon and `shared.rs`) so the probes can include it.

use std::arch::x86_64::*;
use std::ops::Range;

use rayon::prelude::*;

use super::Shared;

/// Outputs per vector (16 i32 lanes).
const VEC: usize = 16;
/// Vectors per parallel task.
const PANEL: usize = 4;
/// Rows per parallel task: 96 rows of 4,096 inputs are 384 KB, which L2 holds.
const BLOCK: usize = 96;
/// Most rows of a tile: 6 rows × 4 vectors fill 24 of the 32 registers with accumulators,
/// and per 4 depths 10 loads feed 24 VNNI instructions. (Taller tiles with fewer vectors, so
/// that each weight byte meets more rows, measured slower: their broadcasts saturate the
/// loads, and 20 rows of 4,096 inputs leave L1.)
const ROWS: usize = 6;

/// Whether this CPU runs the kernel (AVX-512 F/BW and VNNI).
pub(crate) fn available() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512vnni")
    })
}

/// Weights `(outputs, inputs)` in int8, packed for the kernel: for each block of 16 outputs,
/// for each group of 4 inputs, 64 bytes `[output][input]`, so one load feeds one VNNI
/// instruction. Outputs are padded to 16 and inputs to 4 with zeros.
/// The same layout serves the AMX kernel (`amx.rs`: a block's 16 consecutive 64-byte rows are
/// one of its tiles), packed then with the inputs padded to 64 and the blocks to an even count.
pub(crate) struct PackedW {
    pub(super) data: Vec<i8>,
    /// `128 · Σₖ w[c, k]`: what the activations' zero point adds to output `c`.
    pub(super) zero_sum: Vec<i32>,
    outputs: usize,
    groups: usize,
    /// Packed for `amx.rs` (which then runs instead of this kernel).
    amx: bool,
}

impl PackedW {
    /// `q` is `(outputs, inputs)` row-major; packed for the AMX kernel (`amx` only where
    /// `amx::available`) or this one.
    pub fn packed(q: &[i8], outputs: usize, inputs: usize, amx: bool) -> Self {
        assert_eq!(q.len(), outputs * inputs, "weight size");
        let groups = if amx { super::amx::steps(inputs, 4) } else { inputs.div_ceil(4) };
        let blocks = if amx { super::amx::blocks(outputs) } else { outputs.div_ceil(VEC) };
        let mut data = vec![0i8; blocks * groups * VEC * 4];
        data.par_chunks_mut(groups * VEC * 4).enumerate().for_each(|(b, block)| {
            for c in 0..VEC.min(outputs.saturating_sub(b * VEC)) {
                let row = &q[(b * VEC + c) * inputs..(b * VEC + c + 1) * inputs];
                for (k, &v) in row.iter().enumerate() {
                    block[(k / 4) * VEC * 4 + c * 4 + k % 4] = v;
                }
            }
        });
        let mut zero_sum = vec![0i32; blocks * VEC];
        for (c, z) in zero_sum.iter_mut().take(outputs).enumerate() {
            *z = 128 * q[c * inputs..(c + 1) * inputs].iter().map(|&v| v as i32).sum::<i32>();
        }
        PackedW { data, zero_sum, outputs, groups, amx }
    }

    /// Whether the AMX kernel runs these weights.
    pub fn amx(&self) -> bool {
        self.amx
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Bytes of activation each row must have: the inputs rounded up to 4, padded with 128.
    pub fn depth(&self) -> usize {
        self.groups * 4
    }

    /// Blocks of 16 outputs.
    pub(super) fn vectors(&self) -> usize {
        self.outputs.div_ceil(VEC)
    }

    /// Bytes of one block of 16 outputs.
    pub(super) fn block(&self) -> usize {
        self.groups * VEC * 4
    }

    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * self.zero_sum.len()
    }
}

/// What turns the integer sums into `out`.
pub(crate) struct Epilogue<'a> {
    /// Scale of each activation row.
    pub row_scale: &'a [f32],
    /// Scale of each output.
    pub col_scale: &'a [f32],
    pub bias: Option<&'a [f32]>,
    /// `out +=` instead of `out =` (a fused residual add).
    pub accumulate: bool,
    /// An activation applied to each output as it is stored (`simd::activate`'s codes): a
    /// plain MLP's GELU here saves a pass over its widest matrix, which left the cache (5%
    /// of a q8 bert-base pass), with the same bits.
    pub act: Option<u8>,
}

/// `out (rows × outputs) (+)= ...` for `a`: `rows` rows of `w.depth()` u8 around zero point 128.
/// Panics unless [`available`] and the sizes agree.
pub(crate) fn gemm(a: &[u8], rows: usize, w: &PackedW, out: &mut [f32], e: &Epilogue) {
    assert!(available(), "AVX-512 VNNI");
    assert_eq!(a.len(), rows * w.depth(), "activation size");
    assert_eq!(out.len(), rows * w.outputs, "output size");
    assert!(e.row_scale.len() == rows && e.col_scale.len() == w.outputs, "scale sizes");
    assert!(e.bias.is_none_or(|b| b.len() == w.outputs), "bias size");
    if rows == 0 {
        return;
    }
    let vectors = w.vectors();
    let panels = vectors.div_ceil(PANEL);
    // Many rows go in blocks whose activations stay in L2 while the weights stream past
    // them; task order is block-major, so each thread walks all panels of its blocks.
    let blocks = rows.div_ceil(BLOCK);
    // Tasks write disjoint blocks (rows × columns) of `out`.
    let o = Shared(out.as_mut_ptr());
    (0..blocks * panels).into_par_iter().for_each(|t| {
        let (b, p) = (t / panels, t % panels);
        let rs = rows * b / blocks..rows * (b + 1) / blocks;
        // SAFETY: the CPU has the features (asserted); every pointer the panel forms lies in
        // `a`, `w` or rows `rs` × columns `p·64..` of `out`, whose sizes were checked above;
        // tasks write disjoint parts of `out`.
        unsafe { panel(a, rs, w, p * PANEL..vectors.min((p + 1) * PANEL), o.ptr(), e) }
    });
}

/// All rows against vectors `vs` of the weights, in tiles of rows, while the next panel's
/// weights are fetched into cache a share per tile: its memory traffic overlaps this
/// panel's arithmetic instead of stalling the next panel's first tile.
///
/// # Safety
/// The CPU has AVX-512 F/BW and VNNI; `a` holds at least `rows.end` rows of `w.depth()`;
/// `vs` are vectors of `w`; `out` points at a live `(rows.end.., w.outputs)` f32 matrix whose
/// rows `rows` × the columns of `vs` no one else touches during the call.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn panel(a: &[u8], rows: Range<usize>, w: &PackedW, vs: Range<usize>, out: *mut f32, e: &Epilogue) {
    // Tiles of equal height: 20 rows are 5 + 5 + 5 + 5, not 6 + 6 + 6 + 2.
    let chunks = rows.len().div_ceil(ROWS);
    let block = w.block();
    let vectors = w.vectors();
    let next = vs.end.min(vectors)..(vs.end + PANEL).min(vectors);
    let lines = next.len() * block / 64;
    let mut r0 = rows.start;
    for c in 0..chunks {
        let r1 = rows.start + rows.len() * (c + 1) / chunks;
        let t = Tile {
            // Bounds-checked: row r0 of `a`, and the next panel's first weights (or the end).
            a: a[r0 * w.depth()..].as_ptr(),
            w,
            // SAFETY: row r0 < rows.end of the matrix `out` points at (the caller's contract).
            out: unsafe { out.add(r0 * w.outputs) },
            rows: r0..r1,
            e,
            prefetch: w.data[(next.start * block).min(w.data.len())..].as_ptr(),
            lines: lines * c / chunks..lines * (c + 1) / chunks,
        };
        // SAFETY: the tile's rows r0..r1 lie in `rows`, its pointers are set just above, and
        // the features are this function's own.
        unsafe { t.run(vs.start) };
        r0 = r1;
    }
}

struct Tile<'a> {
    a: *const u8,
    w: &'a PackedW,
    out: *mut f32,
    rows: Range<usize>,
    e: &'a Epilogue<'a>,
    /// The next panel's weights, and which of their 64-byte lines this tile fetches.
    prefetch: *const i8,
    lines: Range<usize>,
}

impl Tile<'_> {
    /// # Safety
    /// As for [`Tile::kernel`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn run(&self, v0: usize) {
        // SAFETY: the caller's contract is the kernel's; R is the tile's row count.
        unsafe {
            match self.rows.len() {
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

    /// `R` rows against up to `V` vectors from `v0` (fewer at the end of the outputs).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW and VNNI; `self.a` points at `R` rows of `w.depth()` bytes,
    /// `self.out` at `R` rows of `w.outputs` f32 that only this tile writes, `v0` is a vector
    /// of `w`, and `self.rows` has `R` rows of the epilogue's scales.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn kernel<const R: usize>(&self, v0: usize) {
        // SAFETY: every load reads inside the packed weights (vectors v0.. of `w`, groups
        // 0..w.groups), the `R` activation rows or the scales, per the contract above; every
        // store writes the tile's own output rows, masked to the outputs that exist; the
        // prefetches are hints that never fault.
        unsafe {
            const V: usize = PANEL;
            let w = self.w;
            let nv = V.min(w.vectors() - v0);
            let block = w.block();
            let b = w.data.as_ptr().add(v0 * block);
            let lda = w.depth();
            let mut acc = [[_mm512_setzero_si512(); V]; R];
            // The tile's share of lines spread evenly over its groups, without a division per group.
            let (mut line, count) = (self.lines.start, self.lines.len());
            let mut due = 0;
            for g in 0..w.groups {
                due += count;
                while due >= w.groups {
                    _mm_prefetch::<_MM_HINT_T1>(self.prefetch.add(line * 64));
                    line += 1;
                    due -= w.groups;
                }
                let mut bv = [_mm512_setzero_si512(); V];
                for (j, bv) in bv.iter_mut().enumerate().take(nv) {
                    *bv = _mm512_loadu_si512(b.add(j * block + g * VEC * 4) as *const _);
                }
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32((self.a.add(r * lda + g * 4) as *const i32).read_unaligned());
                    for j in 0..V {
                        acc[j] = _mm512_dpbusd_epi32(acc[j], x, bv[j]);
                    }
                }
            }
            for j in 0..nv {
                let c0 = (v0 + j) * VEC;
                let cols = Columns::new(c0, w, self.e);
                for (r, acc) in acc.iter().enumerate() {
                    store(acc[j], self.rows.start + r, &cols, self.out.add(r * w.outputs + c0), self.e);
                }
            }
        }
    }
}

/// What the epilogue of one vector of 16 outputs (from `c0`, a multiple of 16 below
/// `w.outputs`) reads for every row: the lanes that exist, `128·Σw`, the weight scales and the
/// bias. Loaded once per tile or register block rather than once per row.
#[derive(Clone, Copy)]
pub(super) struct Columns {
    mask: __mmask16,
    zero_sum: __m512i,
    scale: __m512,
    bias: Option<__m512>,
}

impl Columns {
    /// # Safety
    /// The CPU has AVX-512 F/BW; `c0` is a multiple of 16 below `w.outputs`, and `e` holds
    /// `w.outputs` weight scales (and bias values).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    pub(super) unsafe fn new(c0: usize, w: &PackedW, e: &Epilogue) -> Self {
        let mask: __mmask16 = if w.outputs - c0 >= VEC { 0xffff } else { (1u16 << (w.outputs - c0)) - 1 };
        // SAFETY: `zero_sum` holds whole blocks of 16 from c0; the scales and the bias are
        // read under the mask of the outputs that exist (the contract above).
        unsafe {
            Columns {
                mask,
                zero_sum: _mm512_loadu_si512(w.zero_sum.as_ptr().add(c0) as *const _),
                scale: _mm512_maskz_loadu_ps(mask, e.col_scale.as_ptr().add(c0)),
                bias: e.bias.map(|b| _mm512_maskz_loadu_ps(mask, b.as_ptr().add(c0))),
            }
        }
    }
}

/// The epilogue of 16 sums of row `r` in the columns `c` into `o`: `(acc − 128·Σw) · sa · sw +
/// bias`, plus what `o` holds with `accumulate`, then the activation. This kernel's and
/// `amx.rs`'s, so both give the same bits.
///
/// # Safety
/// The CPU has AVX-512 F/BW; `o` points at row `r`'s outputs of the columns `c`, which only
/// the caller writes; `r` is a row of the epilogue's scales.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
pub(super) unsafe fn store(acc: __m512i, r: usize, c: &Columns, o: *mut f32, e: &Epilogue) {
    // SAFETY: `o` is read and written under the mask of the outputs that exist.
    unsafe {
        let sa = _mm512_set1_ps(e.row_scale[r]);
        let mut y = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, c.zero_sum)), sa), c.scale);
        if let Some(bias) = c.bias {
            y = _mm512_add_ps(y, bias);
        }
        if e.accumulate {
            y = _mm512_add_ps(_mm512_maskz_loadu_ps(c.mask, o), y);
        }
        if let Some(which) = e.act {
            y = super::simd::act_avx512(y, which);
        }
        _mm512_mask_storeu_ps(o, c.mask, y);
    }
}
