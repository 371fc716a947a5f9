//! The GEMMs of `dtype: 'bf16'` and `'f16'` on AVX-512 CPUs: `out (+)= a·Wᵀ + bias` with the
//! weights packed once in 16 bits, sums, bias and everything outside the projections in f32.
//! - bf16 (AVX512-BF16: Zen 4, Cooper Lake, Sapphire Rapids) uses `vdpbf16ps`, which multiplies
//!   pairs of bf16 and accumulates in f32 at twice the rate of f32 FMAs; the activations are
//!   rounded to bf16 (to nearest even) as they enter.
//! - f16 widens the weights with `vcvtph2ps` and multiplies the f32 activations, read in
//!   place, with f32 FMAs: the only rounding is the weights' own, and a short input, bound by
//!   the weights' bandwidth, reads half the bytes of f32.
//!
//! - f32 (`dtype: 'f32'`, `linear.rs`) runs here for few rows, its weights in strips of 64
//!   outputs (`[input][output]` each), which the `gemm` crate reads for many.
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
/// f32 outputs per strip of [`PackedW::f32`]: one panel, so a panel's weights are one
/// contiguous run of 256-byte rows, as streaming few rows wants. Wider strips read by a panel
/// in part were slower there (one bert-base sentence 27 → 36 ms with 128; 33–37 with whole
/// rows of Wᵀ), and the `gemm` crate is nearly as fast on strips of 64 as on all of Wᵀ up to
/// ~512 rows (from 3,072 rows and 1,920 outputs on, one call on all of Wᵀ is 7–12% faster:
/// `linear::timing::f32_layouts`).
pub(crate) const STRIP: usize = PANEL * VEC;
/// Rows per parallel task: 96 rows of 2,048 bf16 inputs are 384 KB, which L2 holds.
const BLOCK: usize = 96;
/// Most rows of a tile: 6 rows × 4 vectors fill 24 of the 32 registers with accumulators.
const ROWS: usize = 6;

/// Whether this CPU runs the kernel for `kind` (AVX-512 F/BW, and BF16 for bf16).
/// `EUROBERT_NO_HALF_GEMM=1` turns both off (the widening path of `half_linear.rs` runs).
pub(crate) fn available(kind: Half) -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    static BF16: OnceLock<bool> = OnceLock::new();
    let base = avx512() && !*OFF.get_or_init(|| std::env::var_os("EUROBERT_NO_HALF_GEMM").is_some());
    match kind {
        Half::F16 => base,
        Half::BF16 => base && *BF16.get_or_init(|| is_x86_feature_detected!("avx512bf16")),
    }
}

/// Whether the CPU has AVX-512 F/BW, all that the f32 format needs.
pub(crate) fn avx512() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"))
}

/// The kernel's ways of reading the weights: f16 widened to f32, bf16 pairs into
/// `vdpbf16ps`, bf16 widened to f32 (a shift), and f32 as they are (`dtype: 'f32'` on short
/// inputs: `linear.rs`).
const WIDE_F16: u8 = 0;
const PAIRS: u8 = 1;
const WIDE_BF16: u8 = 2;
const F32: u8 = 3;

/// Whether bf16 products (`vdpbf16ps`) are faster here than widening to f32 FMAs: measured
/// once per process, since the instruction's rate differs by CPU. On Zen 4 it retires at the
/// f32 FMA's instruction rate, twice its FLOPs; on the Sapphire Rapids-class Xeon we measured,
/// at a quarter of it (86 against 176 GFLOP/s on one core), so bf16 weights are widened there
/// and q8's attention stays f32. `EUROBERT_BF16_DOT=0|1` overrides (for comparisons).
pub(crate) fn dot_pays() -> bool {
    use std::sync::OnceLock;
    static PAYS: OnceLock<bool> = OnceLock::new();
    *PAYS.get_or_init(|| {
        if !available(Half::BF16) {
            return false;
        }
        match std::env::var("EUROBERT_BF16_DOT").as_deref() {
            Ok("0") => return false,
            Ok("1") => return true,
            _ => {}
        }
        // SAFETY: the CPU has AVX-512 F and BF16 (checked just above).
        let (dot, fma) = unsafe { instruction_rates() };
        // The pairs path must beat widening by a margin: it also rounds the activations.
        dot < 1.5 * fma
    })
}

/// Seconds for the same number of `vdpbf16ps` and of `vfmadd` on 512 bits, 12 independent
/// chains each, best of several interleaved tries (~0.3 ms in all).
///
/// # Safety
/// The CPU has AVX-512 F and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn instruction_rates() -> (f64, f64) {
    let x = std::hint::black_box(_mm512_set1_ps(1.0));
    let (mut dot, mut fma) = (f64::MAX, f64::MAX);
    for _ in 0..7 {
        // SAFETY: the closures run on this CPU, which has the features (the caller's contract).
        unsafe {
            dot = dot.min(chains(|a| _mm512_dpbf16_ps(a, bh(x), bh(x))));
            fma = fma.min(chains(|a| _mm512_fmadd_ps(a, x, x)));
        }
    }
    (dot, fma)
}

/// Seconds for 2,048 rounds of `op` on 12 independent accumulators.
///
/// # Safety
/// The CPU has AVX-512 F and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
unsafe fn chains(op: impl Fn(__m512) -> __m512) -> f64 {
    let mut acc = [_mm512_setzero_ps(); 12];
    let t = std::time::Instant::now();
    for _ in 0..2048 {
        for a in acc.iter_mut() {
            *a = op(*a);
        }
    }
    std::hint::black_box(acc);
    t.elapsed().as_secs_f64()
}

/// Weights `(outputs, inputs)` in 16-bit bits (or f32 as pairs of them), packed for the
/// kernel; outputs padded to 16 (and, for bf16 pairs, inputs to 2) with zeros.
pub(crate) struct PackedW {
    data: Vec<u16>,
    /// How the kernel reads them ([`WIDE_F16`], ...): bf16 in pairs of inputs for `vdpbf16ps`
    /// (activations rounded to bf16), or one input per step, widened to f32 in registers for
    /// f32 FMAs (f16 always, bf16 where the dot product does not pay: [`dot_pays`]), or f32
    /// (two u16 per value).
    format: u8,
    outputs: usize,
    inputs: usize,
    /// Steps of the inner loop: pairs of inputs (bf16 pairs) or inputs (the other formats).
    steps: usize,
    /// bf16 pairs padded for `amx.rs` (steps to 16, blocks to an even count), which runs them
    /// from a tile of rows on.
    amx: bool,
}

impl PackedW {
    /// `w` is `(outputs, inputs)` row-major, already in `kind`'s bits; bf16 in pairs for the
    /// dot product where it pays on this CPU.
    pub fn new(w: &[u16], outputs: usize, inputs: usize, kind: Half) -> Self {
        if kind == Half::BF16 && super::amx::bf16_available() {
            return Self::packed(w, outputs, inputs, kind, true, true);
        }
        Self::with_pairs(w, outputs, inputs, kind, kind == Half::BF16 && dot_pays())
    }

    /// As `new`, with bf16 in pairs (`pairs`) or widened; f16 is always widened.
    pub fn with_pairs(w: &[u16], outputs: usize, inputs: usize, kind: Half, pairs: bool) -> Self {
        Self::packed(w, outputs, inputs, kind, pairs, false)
    }

    /// As `with_pairs`, and for AMX (`amx`: bf16 pairs only, where `amx::bf16_available`).
    pub fn packed(w: &[u16], outputs: usize, inputs: usize, kind: Half, pairs: bool, amx: bool) -> Self {
        assert_eq!(w.len(), outputs * inputs, "weight size");
        assert!(!amx || (kind == Half::BF16 && pairs), "AMX takes bf16 pairs");
        let format = match kind {
            Half::BF16 if pairs => PAIRS,
            Half::BF16 => WIDE_BF16,
            Half::F16 => WIDE_F16,
        };
        let per = units(format);
        let steps = if amx { super::amx::steps(inputs, per) } else { inputs.div_ceil(per) };
        let blocks = if amx { super::amx::blocks(outputs) } else { outputs.div_ceil(VEC) };
        let mut data = vec![0u16; blocks * steps * VEC * per];
        data.par_chunks_mut(steps * VEC * per).enumerate().for_each(|(b, block)| {
            for c in 0..VEC.min(outputs.saturating_sub(b * VEC)) {
                let row = &w[(b * VEC + c) * inputs..(b * VEC + c + 1) * inputs];
                for (k, &v) in row.iter().enumerate() {
                    block[(k / per) * VEC * per + c * per + k % per] = v;
                }
            }
        });
        PackedW { data, format, outputs, inputs, steps, amx }
    }

    /// f32 weights `(outputs, inputs)` row-major, for f32 FMAs: Wᵀ in strips of [`STRIP`]
    /// outputs (zeros past the last output), each a plain `inputs × STRIP` matrix: one panel
    /// of this kernel, and a matrix the `gemm` crate reads in place for many rows
    /// ([`PackedW::f32_strips`]).
    pub fn f32(w: &[f32], outputs: usize, inputs: usize) -> Self {
        assert_eq!(w.len(), outputs * inputs, "weight size");
        let strips = outputs.div_ceil(STRIP);
        let mut data = vec![0u16; strips * inputs * STRIP * 2];
        data.par_chunks_mut(inputs * STRIP * 2).enumerate().for_each(|(s, strip)| {
            for c in 0..STRIP.min(outputs - s * STRIP) {
                for (k, &v) in w[(s * STRIP + c) * inputs..(s * STRIP + c + 1) * inputs].iter().enumerate() {
                    let i = (k * STRIP + c) * 2;
                    strip[i] = v.to_bits() as u16;
                    strip[i + 1] = (v.to_bits() >> 16) as u16;
                }
            }
        });
        PackedW { data, format: F32, outputs, inputs, steps: inputs, amx: false }
    }

    /// f32 weights ([`PackedW::f32`]) as their strips: the values, each strip an `inputs ×
    /// STRIP` row-major matrix, one after another; `None` for the other formats, or if the
    /// buffer is not 4-byte aligned (allocators give more, but a `Vec<u16>` promises 2).
    pub fn f32_strips(&self) -> Option<&[f32]> {
        if self.format != F32 || !(self.data.as_ptr() as usize).is_multiple_of(4) {
            return None;
        }
        // SAFETY: the buffer is 4-byte aligned (checked) and holds f32 as pairs of u16 (`f32`
        // packs them so), every bit pattern a valid f32; the borrow of `self` keeps it alive
        // and unchanged.
        Some(unsafe { std::slice::from_raw_parts(self.data.as_ptr().cast::<f32>(), self.data.len() / 2) })
    }

    /// `amx::gemm_bf16` from a tile of rows on, where `rows` activation rows run: `(data,
    /// block, outputs)` of a packing for it.
    pub fn amx_for(&self, rows: usize) -> Option<(&[u16], usize, usize)> {
        (self.amx && super::amx::runs(rows)).then(|| (self.data.as_slice(), self.block(), self.outputs))
    }

    /// Whether this packing runs on the AMX tiles.
    pub fn tiles(&self) -> bool {
        self.amx
    }

    /// `(rows, depth)` of the bf16 activation buffer [`gemm_serial`] reads for `rows` rows of
    /// `inputs` inputs: for the tiles, whole tiles of rows and depth (the rows past `rows`
    /// any initialized values, the columns past `inputs` zero, as [`round_rows_serial`]
    /// writes them); else the rows, the inputs rounded up to pairs.
    pub fn activation_shape(&self, rows: usize, inputs: usize) -> (usize, usize) {
        if self.amx {
            (super::amx::rows_read(rows), tile_depth(inputs))
        } else {
            (rows, inputs.div_ceil(2) * 2)
        }
    }

    /// Whether the kernel takes bf16 activation pairs ([`round_rows`]) rather than f32 rows.
    pub fn pairs(&self) -> bool {
        self.format == PAIRS
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
        self.steps * VEC * units(self.format)
    }

    /// Where vector `v` (outputs `16v..`) starts, in u16: its block in the blocked formats,
    /// its place in its strip in f32's (`v % 4` of a strip's 4 vectors, 64 bytes apart).
    fn vector_at(&self, v: usize) -> usize {
        if self.format == F32 {
            const PER: usize = STRIP / VEC;
            (v / PER) * self.steps * STRIP * 2 + (v % PER) * VEC * 2
        } else {
            v * self.block()
        }
    }

    pub fn bytes(&self) -> usize {
        2 * self.data.len()
    }

    /// Weight `(o, k)` back as 16-bit bits (for the tests).
    #[cfg(test)]
    fn at(&self, o: usize, k: usize) -> u16 {
        let per = units(self.format);
        self.data[self.vector_at(o / VEC) + (k / per) * step_units(self.format) + (o % VEC) * per + k % per]
    }
}

impl PackedW {
    /// An empty bf16 matrix for [`PackedW::repack_bf16`] to fill.
    pub fn empty_bf16() -> Self {
        PackedW { data: Vec::new(), format: PAIRS, outputs: 0, inputs: 0, steps: 0, amx: false }
    }

    /// Refills this matrix, serially and reusing its buffer, with `outputs × inputs` values
    /// `at(o, k)` rounded to bf16: how attention packs its K and V blocks inside one task.
    /// `amx`: padded for [`gemm_serial_tiles`] (where `amx::bf16_available`).
    pub fn repack_bf16(&mut self, outputs: usize, inputs: usize, amx: bool, at: impl Fn(usize, usize) -> f32) {
        self.zeroed_bf16(outputs, inputs, amx);
        let steps = self.steps;
        for o in 0..outputs {
            let base = (o / VEC) * steps * VEC * 2 + (o % VEC) * 2;
            for k in 0..inputs {
                self.data[base + (k / 2) * VEC * 2 + k % 2] = half::bf16::from_f32(at(o, k)).to_bits();
            }
        }
    }

    /// This matrix as `outputs × inputs` bf16 pairs of zeros, reusing its buffer.
    fn zeroed_bf16(&mut self, outputs: usize, inputs: usize, amx: bool) {
        let steps = if amx { super::amx::steps(inputs, 2) } else { inputs.div_ceil(2) };
        let blocks = if amx { super::amx::blocks(outputs) } else { outputs.div_ceil(VEC) };
        *self = PackedW { data: std::mem::take(&mut self.data), format: PAIRS, outputs, inputs, steps, amx };
        self.data.clear();
        self.data.resize(blocks * steps * VEC * 2, 0);
    }
}

impl PackedW {
    /// [`PackedW::repack_bf16`] of attention's K (`values: false`: `rows` outputs of `dim`
    /// inputs) or V (`values: true`: `dim` outputs of `rows` inputs) for one sequence and KV
    /// head, key `j`'s `dim` values at `x[j * stride..]`. The same bits as `repack_bf16`, in
    /// AVX512-BF16 where `dim` is a multiple of 32 (the scalar loop cost more than the products
    /// on the tiles: `attention_timing`).
    pub fn pack_heads(&mut self, x: &[f32], rows: usize, stride: usize, dim: usize, values: bool, amx: bool) {
        assert!(rows == 0 || x.len() >= (rows - 1) * stride + dim, "K/V rows lie inside their buffer");
        let (outputs, inputs) = if values { (dim, rows) } else { (rows, dim) };
        if !(available(Half::BF16) && dim.is_multiple_of(2 * VEC)) {
            let at = |o: usize, k: usize| if values { x[k * stride + o] } else { x[o * stride + k] };
            return self.repack_bf16(outputs, inputs, amx, at);
        }
        self.zeroed_bf16(outputs, inputs, amx);
        let block = self.block();
        // SAFETY: the CPU has AVX512-BF16 (checked above); the packing was just sized for
        // `outputs × inputs` and `x` holds the rows (asserted).
        unsafe {
            if values {
                pack_values(x, rows, stride, dim, &mut self.data, block)
            } else {
                pack_keys(x, rows, stride, dim, &mut self.data, block)
            }
        }
    }
}

/// K rows as outputs: key `j`'s pair of inputs `(c, c + 1)` at u32 `(j / 16)·block/2 +
/// (c / 2)·16 + j % 16` of `data` (16 pairs of a row at a time, scattered 64 bytes apart).
///
/// # Safety
/// The CPU has AVX-512 F and BF16; `dim` is a multiple of 32; `x` holds `rows` rows of `dim`
/// values `stride` apart; `data` is a packing of `rows` outputs × `dim` inputs in blocks of
/// `block` u16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_keys(x: &[f32], rows: usize, stride: usize, dim: usize, data: &mut [u16], block: usize) {
    assert!(rows.div_ceil(VEC) * block <= data.len() && dim / 2 * VEC <= block, "packing size");
    let lanes = _mm512_setr_epi32(0, 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240);
    let out = data.as_mut_ptr().cast::<i32>();
    for j in 0..rows {
        for c in (0..dim).step_by(2 * VEC) {
            // SAFETY: row j's values c..c + 32 lie inside `x`; the 16 pairs go to steps
            // c/2..c/2 + 16 of block j/16, inside `data` (asserted above).
            unsafe {
                let r = x.as_ptr().add(j * stride + c);
                let h = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(r.add(VEC)), _mm512_loadu_ps(r));
                let at = out.add((j / VEC) * block / 2 + (c / 2) * VEC + j % VEC);
                _mm512_i32scatter_epi32::<4>(at.cast(), lanes, std::mem::transmute::<__m512bh, __m512i>(h));
            }
        }
    }
}

/// V rows as inputs: keys `(j, j + 1)` of outputs `c..c + 16` are 64 contiguous bytes at u16
/// `(c / 16)·block + (j / 2)·32` of `data`, interleaved `[v_j[c], v_j+1[c], ...]`.
///
/// # Safety
/// As for [`pack_keys`], for a packing of `dim` outputs × `rows` inputs.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn pack_values(x: &[f32], rows: usize, stride: usize, dim: usize, data: &mut [u16], block: usize) {
    assert!(dim / VEC * block <= data.len() && rows.div_ceil(2) * 2 * VEC <= block, "packing size");
    // Word i of the result takes word idx[i]: a0 b0 a1 b1 ... of [a0..a15, b0..b15].
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0,
    );
    let out = data.as_mut_ptr();
    for j in (0..rows).step_by(2) {
        for c in (0..dim).step_by(VEC) {
            // SAFETY: rows j and j + 1 (a zero row past the end), values c..c + 16, lie inside
            // `x`; the 64 bytes go to step j/2 of block c/16, inside `data` (asserted above).
            unsafe {
                let a = _mm512_loadu_ps(x.as_ptr().add(j * stride + c));
                let b = if j + 1 < rows { _mm512_loadu_ps(x.as_ptr().add((j + 1) * stride + c)) } else { _mm512_setzero_ps() };
                let h = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(b, a));
                _mm512_storeu_si512(out.add((c / VEC) * block + (j / 2) * 2 * VEC).cast(), _mm512_permutexvar_epi16(idx, h));
            }
        }
    }
}

/// Whether this CPU runs the kernel for `format`: the bf16 formats as `available(Half::BF16)`
/// says, f16 as `available(Half::F16)`, f32 wherever there is AVX-512.
fn runs_here(format: u8) -> bool {
    match format {
        PAIRS | WIDE_BF16 => available(Half::BF16),
        F32 => avx512(),
        _ => available(Half::F16),
    }
}

/// u16 per output per step of the inner loop: bf16 pairs and f32 take two, the others one.
const fn units(format: u8) -> usize {
    match format {
        PAIRS | F32 => 2,
        _ => 1,
    }
}

/// u16 from one step of a vector to the next: 16 outputs' worth in the blocked formats, a
/// strip's row in f32's.
const fn step_units(format: u8) -> usize {
    if format == F32 {
        STRIP * 2
    } else {
        VEC * units(format)
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
    gemm_act(a, rows, w, out, bias, accumulate, None)
}

/// [`gemm`], then `act` (`simd::activate`'s codes) over each task's block of outputs while it
/// is still in L1, instead of a pass of its own over the whole matrix afterwards (with
/// `accumulate` false: the activation of a sum with a residual is not what anyone wants).
pub(crate) fn gemm_act(a: Activations, rows: usize, w: &PackedW, out: &mut [f32], bias: Option<&[f32]>, accumulate: bool, act: Option<u8>) {
    assert!(act.is_none() || !accumulate, "an activation over an accumulated sum");
    assert!(runs_here(w.format), "no AVX-512 kernel here for format {}", w.format);
    // Each row's start as bytes, and the bytes between rows.
    let (base, lda): (*const u8, usize) = match (a, w.pairs()) {
        (Activations::Bf16(a), true) => {
            assert_eq!(a.len(), rows * w.depth(), "activation size");
            (a.as_ptr().cast(), 2 * w.depth())
        }
        (Activations::F32 { data, stride }, false) => {
            assert!(
                stride >= w.inputs && (rows == 0 || data.len() >= (rows - 1) * stride + w.inputs),
                "activation rows lie inside their buffer"
            );
            (data.as_ptr().cast(), 4 * stride)
        }
        _ => panic!("activations do not match the weights (format {})", w.format),
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
            let region = Region::whole(o.ptr(), w);
            match w.format {
                PAIRS => panel_bf16(a.ptr(), lda, rs.clone(), w, vs.clone(), &region, bias, accumulate),
                WIDE_BF16 => panel_wide::<WIDE_BF16>(a.ptr(), lda, rs.clone(), w, vs.clone(), &region, bias, accumulate),
                F32 => sweep_f32(a.ptr(), lda, rs.clone(), w, vs.clone(), &region, bias, accumulate),
                _ => panel_wide::<WIDE_F16>(a.ptr(), lda, rs.clone(), w, vs.clone(), &region, bias, accumulate),
            }
        }
        if let Some(act) = act {
            let (c0, c1) = (vs.start * VEC, w.outputs.min(vs.end * VEC));
            for r in rs {
                // SAFETY: row r < rows of `out` (rows × w.outputs), columns c0..c1 of this
                // task's block, which it alone writes and has just written.
                let row = unsafe { std::slice::from_raw_parts_mut(o.ptr().add(r * w.outputs + c0), c1 - c0) };
                super::simd::activate(row, act);
            }
        }
    });
}

/// `out (+)= a·Wᵀ` over part of `w`, on the calling thread alone (inside a parallel task):
/// outputs `outputs` (starting at a multiple of 16) into `out`, `rows × outputs.len()`, and
/// inputs `inputs` (starting at an even input) from bf16 rows `a` shaped as
/// [`PackedW::activation_shape`] says. How attention runs a block of keys against K and V
/// packed once per sequence; a packing for AMX runs on the tiles ([`gemm_serial_tiles`]).
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
    if w.amx {
        return gemm_serial_tiles(a, rows, w, outputs, inputs, out, accumulate);
    }
    assert!(available(Half::BF16) && w.pairs(), "AVX512-BF16 and bf16 weights in pairs");
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

/// bf16 values per activation row of [`gemm_serial_tiles`] for `inputs` inputs: whole tiles.
fn tile_depth(inputs: usize) -> usize {
    inputs.next_multiple_of(super::amx::TILE_DEPTH / 2)
}

/// [`gemm_serial`] on the AMX tiles (`amx::gemm_bf16_part`), for a packing made by
/// `repack_bf16(.., amx: true)`: `a` holds [`amx::rows_read`] rows of
/// [`tile_depth`]`(inputs.len())` bf16 (the rows past `rows` are read, their sums never
/// stored; the columns past the inputs must be zero), outputs and inputs start at multiples
/// of 32. Panics unless the sizes agree and AMX-BF16 is available.
fn gemm_serial_tiles(a: &[u16], rows: usize, w: &PackedW, outputs: Range<usize>, inputs: Range<usize>, out: &mut [f32], accumulate: bool) {
    assert!(w.amx && w.pairs(), "bf16 pairs packed for AMX");
    assert!(outputs.start.is_multiple_of(2 * VEC) && outputs.start <= outputs.end && outputs.end <= w.outputs, "output range");
    assert!(inputs.start.is_multiple_of(32) && inputs.start <= inputs.end && inputs.end <= w.inputs, "input range");
    let depth = tile_depth(inputs.len());
    assert!(inputs.start / 2 + depth / 2 <= w.steps, "the packing holds the tiles' steps");
    assert!(a.len() >= super::amx::rows_read(rows) * depth, "activation size");
    assert_eq!(out.len(), rows * outputs.len(), "output size");
    if rows == 0 || outputs.is_empty() || inputs.is_empty() {
        return;
    }
    let part = super::amx::Part { data: &w.data, block: w.block(), first: outputs.start / VEC, step: inputs.start / 2 };
    super::amx::gemm_bf16_part(a, rows, depth, &part, out, outputs.len(), accumulate);
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
    unsafe { panel::<PAIRS>(a, lda, rows, w, vs, region, bias, accumulate) }
}

/// # Safety
/// As for [`panel`], on a CPU with AVX-512 F/BW; `M` is [`WIDE_F16`] or [`WIDE_BF16`].
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_wide<const M: u8>(
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
    unsafe { panel::<M>(a, lda, rows, w, vs, region, bias, accumulate) }
}

/// Steps of a strip per sweep block: 64 × 256 bytes of weights, which L1 keeps while every
/// tile of rows runs over them.
const SWEEP: usize = 64;
/// How far ahead of the block being computed its weights are fetched, in 64-byte lines of the
/// strips (contiguous: a thread's next strip follows this one): 16 KB. A probe of one stream
/// with 23 rows of FMAs per line (2 threads, 340 MB) ran at 11 GB/s without, 16–19 GB/s at
/// 1–8 KB ahead, and 18–27 GB/s from 16 KB.
const AHEAD: usize = 256;

/// [`panel`] for f32 strips, swept once: the strip is cut into blocks of [`SWEEP`] steps and
/// every tile of rows runs over a block while it is in L1, its sums kept in `part` between
/// blocks, so the weights come from memory once, in order, [`AHEAD`] of their use. Where tiles
/// ran over the whole strip one after the other, the next strip fetched into L2 meanwhile,
/// one bert-base sentence (whose 340 MB of weights stream from memory) ran at about the sum of
/// its memory and arithmetic times: its projections at 31 tokens took 33.6 ms, swept 27.8.
///
/// # Safety
/// As for [`panel`], on a CPU with AVX-512 F/BW; `w` holds f32 strips and `region` is whole.
#[target_feature(enable = "avx512f,avx512bw")]
#[allow(clippy::too_many_arguments)]
unsafe fn sweep_f32(
    a: *const u8,
    lda: usize,
    rows: Range<usize>,
    w: &PackedW,
    vs: Range<usize>,
    region: &Region,
    bias: Option<&[f32]>,
    accumulate: bool,
) {
    assert!(rows.len() <= BLOCK && w.format == F32, "a block of rows against f32 strips");
    let chunks = rows.len().div_ceil(ROWS);
    let (first, last) = (vs.start * VEC, region.last.min(vs.end * VEC));
    // Each row's sums so far over the strip's outputs (`STRIP` apart), which the next block's
    // tiles resume: the same chain of FMAs, and so the same bits, as one tile over the whole
    // strip (a text's results must not depend on what it is batched with). Not zeroed: the
    // first block stores every sum the later ones and the end read (the kernel masks the
    // columns past `last` on both sides).
    let mut part = std::mem::MaybeUninit::<[f32; BLOCK * STRIP]>::uninit();
    let part = part.as_mut_ptr().cast::<f32>();
    let (base, step, end) = (w.vector_at(vs.start), step_units(F32), w.data.len());
    let steps = region.steps.clone();
    let mut s = steps.start;
    while s < steps.end {
        let e = (s + SWEEP).min(steps.end);
        // This block's share of the stream, AHEAD lines on, spread over all its tiles (fetched
        // by the first tile alone, the bursts stalled it and the sweep gained nothing).
        let from = (base + (s - steps.start) * step + AHEAD * 32).min(end);
        let lines = ((e - s) * PANEL).min((end - from) / 32);
        let mut r0 = rows.start;
        for c in 0..chunks {
            let r1 = rows.start + rows.len() * (c + 1) / chunks;
            let t = Tile {
                // SAFETY: row r0 < rows.end of the activations, at step s (4 bytes a step).
                a: unsafe { a.add(r0 * lda + (s - steps.start) * 4) },
                lda,
                w,
                // SAFETY: row r0 − rows.start < BLOCK of `part`.
                out: unsafe { part.add((r0 - rows.start) * STRIP) },
                ldo: STRIP,
                first,
                last,
                steps: s..e,
                bias: None,
                accumulate: false,
                prefetch: w.data[from..].as_ptr(),
                lines: lines * c / chunks..lines * (c + 1) / chunks,
                resume: s > steps.start,
            };
            // SAFETY: the tile's rows r0..r1 lie in `rows` and its pointers are set above.
            unsafe { t.rows::<F32>(r1 - r0, vs.start) }
            r0 = r1;
        }
        s = e;
    }
    // The sums into the region after the bias and the residual, in the order the `gemm`
    // crate's path adds them for many rows ((residual + bias) + sums), so that a row's bits
    // do not depend on which path its batch took.
    for r in rows.clone() {
        // SAFETY: the first block's tiles stored columns first..last of every row of `part`.
        let sums = unsafe { std::slice::from_raw_parts(part.add((r - rows.start) * STRIP), last - first) };
        // SAFETY: row r of the region's matrix, its columns first..last (the contract).
        let o = unsafe { std::slice::from_raw_parts_mut(region.out.add(r * region.ldo + first - region.first), last - first) };
        for (c, (o, &y)) in o.iter_mut().zip(sums).enumerate() {
            *o = match (accumulate, bias) {
                (true, Some(b)) => (*o + b[first + c]) + y,
                (true, None) => *o + y,
                (false, Some(b)) => b[first + c] + y,
                (false, None) => y,
            };
        }
    }
}

/// # Safety
/// Inlined only into a function with the features the format needs; `a` points at least
/// `rows.end` rows `lda` bytes apart of the format's activations, each starting at the
/// region's first step; `vs` are vectors of `w` whose outputs start inside `region.first..region.last`;
/// `region.out` points at a live f32 matrix of `rows.end` rows `region.ldo` apart whose rows
/// `rows` × the region's columns of `vs` no one else touches during the call.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn panel<const M: u8>(
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
    let vectors = w.vectors();
    let next = vs.end.min(vectors)..(vs.end + PANEL).min(vectors);
    // 64-byte lines of the next panel's weights: its blocks, contiguous (f32 strips are
    // swept by `sweep_f32`, which fetches its own).
    let lines = next.len() * w.block() / 32;
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
            prefetch: w.data[w.vector_at(next.start).min(w.data.len())..].as_ptr(),
            lines: lines * c / chunks..lines * (c + 1) / chunks,
            resume: false,
        };
        // SAFETY: the tile's rows r0..r1 lie in `rows` and its pointers are set just above.
        unsafe { t.rows::<M>(r1 - r0, vs.start) }
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
    /// The sums start from the values at `out` (a sweep's sums so far), which the tile then
    /// overwrites, instead of from zero: one chain of FMAs over all the steps, as one tile over
    /// the whole strip makes, so a row's result does not depend on how it was cut.
    resume: bool,
}

/// The same 512 bits as 32 bf16.
#[inline(always)]
pub(crate) fn bh(x: __m512) -> __m512bh {
    // SAFETY: both are 512-bit vectors with no invalid bit patterns.
    unsafe { std::mem::transmute::<__m512, __m512bh>(x) }
}

impl Tile<'_> {
    /// [`Tile::kernel`] for a tile of `rows` (1 to [`ROWS`]) rows.
    ///
    /// # Safety
    /// As for [`Tile::kernel`], with `R = rows`.
    #[inline(always)]
    unsafe fn rows<const M: u8>(&self, rows: usize, v0: usize) {
        // SAFETY: the caller's contract, R being the tile's row count.
        unsafe {
            match rows {
                1 => self.kernel::<M, 1>(v0),
                2 => self.kernel::<M, 2>(v0),
                3 => self.kernel::<M, 3>(v0),
                4 => self.kernel::<M, 4>(v0),
                5 => self.kernel::<M, 5>(v0),
                6 => self.kernel::<M, 6>(v0),
                n => unreachable!("a tile of {n} rows"),
            }
        }
    }

    /// `R` rows against up to `PANEL` vectors from `v0` (fewer at the end of the outputs).
    ///
    /// # Safety
    /// Inlined only into a function with the format's features; `self.a` points at `R` rows
    /// `lda` bytes apart of the format's activations, `self.out` at `R` rows `ldo` apart of
    /// the region's columns that only this tile writes, `v0` is a vector of `w`.
    #[inline(always)]
    // Indices keep the accumulators plainly in registers (see `cols` below).
    #[allow(clippy::needless_range_loop)]
    unsafe fn kernel<const M: u8, const R: usize>(&self, v0: usize) {
        // SAFETY: every load reads inside the packed weights (vectors v0.. of `w`, steps of
        // the region), the `R` activation rows or the bias, per the contract above; every store
        // writes the tile's own output rows, masked to the outputs that exist; prefetches are
        // hints that never fault.
        unsafe {
            const V: usize = PANEL;
            let w = self.w;
            let nv = V.min(w.vectors() - v0);
            // Vectors of a panel lie a block apart, or 64 bytes apart in an f32 strip, where
            // they exist past the outputs too (zeros) and the offsets are constants.
            let offset = if M == F32 { VEC * 2 } else { w.block() };
            let step = step_units(M);
            let b = w.data.as_ptr().add(w.vector_at(v0));
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            if self.resume {
                for (r, acc) in acc.iter_mut().enumerate() {
                    for (j, acc) in acc.iter_mut().enumerate().take(nv) {
                        let c0 = (v0 + j) * VEC;
                        if c0 < self.last {
                            let o = self.out.add(r * self.ldo + c0 - self.first);
                            *acc = _mm512_maskz_loadu_ps(super::simd::tail_mask(c0, self.last), o);
                        }
                    }
                }
            }
            // Past the last vector, it is loaded again and its sums dropped: with a branch per
            // vector, LLVM kept the accumulators in memory and stored every one after each
            // instruction, at half the speed.
            let cols: [*const u16; V] = std::array::from_fn(|j| b.add(if M == F32 { j } else { j.min(nv - 1) } * offset));
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
                    bv[j] = match M {
                        PAIRS | F32 => _mm512_loadu_ps(p as *const f32),
                        // bf16 is the top half of an f32.
                        WIDE_BF16 => {
                            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))))
                        }
                        _ => _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)),
                    };
                }
                for r in 0..R {
                    // A bf16 pair, or one f32.
                    let x = _mm512_set1_ps((self.a.add(r * self.lda + (g - s0) * 4) as *const f32).read_unaligned());
                    for j in 0..V {
                        acc[r][j] =
                            if M == PAIRS { _mm512_dpbf16_ps(acc[r][j], bh(x), bh(bv[j])) } else { _mm512_fmadd_ps(x, bv[j], acc[r][j]) };
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
    fn attention_packing_equals_the_scalar_packing() {
        if !available(Half::BF16) {
            return crate::skip_test("cpu::half_gemm::attention_packing_equals_the_scalar_packing", "no AVX512-BF16 on this CPU");
        }
        // Odd key counts (a zero partner key), head widths of one to three 32-value steps,
        // rows strided inside a wider QKV row; both paddings.
        for (rows, dim, stride) in [(1usize, 32usize, 40usize), (17, 64, 200), (33, 96, 96), (130, 64, 64 * 5)] {
            let x: Vec<f32> = (0..(rows - 1) * stride + dim).map(|i| ((i * 7919 % 1009) as f32 - 504.0) * 0.013).collect();
            for values in [false, true] {
                for amx in [false, true] {
                    let (outputs, inputs) = if values { (dim, rows) } else { (rows, dim) };
                    let at = |o: usize, k: usize| if values { x[k * stride + o] } else { x[o * stride + k] };
                    let mut want = PackedW::empty_bf16();
                    want.repack_bf16(outputs, inputs, amx, at);
                    let mut got = PackedW::empty_bf16();
                    got.pack_heads(&x, rows, stride, dim, values, amx);
                    assert_eq!((got.steps, got.outputs, got.inputs), (want.steps, want.outputs, want.inputs));
                    assert!(got.data == want.data, "rows {rows} dim {dim} values {values} amx {amx}");
                }
            }
        }
    }

    #[test]
    fn half_gemm_equals_the_definition_over_rounded_inputs() {
        for (kind, pairs, amx) in
            [(Half::BF16, true, false), (Half::BF16, false, false), (Half::F16, false, false), (Half::BF16, true, true)]
        {
            if amx && !super::super::amx::bf16_available() {
                crate::skip_test("cpu::half_gemm::half_gemm_equals_the_definition_over_rounded_inputs", "no AMX-BF16 here");
                continue;
            }
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
                let packed = PackedW::packed(&bits, outputs, inputs, kind, pairs, amx);
                for o in 0..outputs {
                    for k in 0..inputs {
                        assert_eq!(packed.at(o, k), bits[o * inputs + k]);
                    }
                }
                let stride = inputs + 3;
                let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.0517).collect();
                // Rows to whole AMX tiles (the rows past `rows` hold junk the kernel must not store).
                let mut a = vec![1u16; super::super::amx::rows_read(rows) * packed.depth()];
                // bf16 pairs round the activations as they enter; widened weights read them in place.
                let (act, xr): (Activations, Vec<f32>) = if pairs {
                    round_rows(&x, rows, inputs, stride, packed.depth(), &mut a[..rows * packed.depth()]);
                    (
                        Activations::Bf16(&a[..rows * packed.depth()]),
                        x.iter().map(|&v| Half::BF16.widen_one(Half::BF16.narrow_one(v))).collect(),
                    )
                } else {
                    (Activations::F32 { data: &x, stride }, x.clone())
                };
                let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.1).collect();
                for accumulate in [false, true] {
                    let mut out = vec![1f32; rows * outputs];
                    match packed.amx_for(rows) {
                        Some((data, block, outs)) => {
                            let depth = packed.depth();
                            super::super::amx::gemm_bf16(&a, rows, depth, data, block, outs, &mut out, Some(&b), accumulate)
                        }
                        None => gemm(act, rows, &packed, &mut out, Some(&b), accumulate),
                    }
                    for r in 0..rows {
                        for o in 0..outputs {
                            let dot: f64 = (0..inputs).map(|k| xr[r * stride + k] as f64 * round(w[o * inputs + k]) as f64).sum();
                            let want = if accumulate { 1.0 } else { 0.0 } + b[o] as f64 + dot;
                            let got = out[r * outputs + o] as f64;
                            assert!(
                                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                                "{kind:?} (pairs: {pairs}) {rows}×{inputs}×{outputs} ({r},{o}): {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn f32_gemm_equals_the_definition() {
        if !avx512() {
            crate::skip_test("cpu::half_gemm::f32_gemm_equals_the_definition", "no AVX-512 on this CPU");
            return;
        }
        // Sweep blocks of SWEEP steps: one, several, a partial last one; full row blocks.
        for (rows, inputs, outputs) in [(1, 7, 5), (20, 71, 45), (131, 130, 100), (7, 256, 64), (96, 200, 70)] {
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.0131).collect();
            let packed = PackedW::f32(&w, outputs, inputs);
            let stride = inputs + 3;
            let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.0517).collect();
            let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.1).collect();
            for accumulate in [false, true] {
                let mut out = vec![1f32; rows * outputs];
                gemm(Activations::F32 { data: &x, stride }, rows, &packed, &mut out, Some(&b), accumulate);
                for r in 0..rows {
                    for o in 0..outputs {
                        let dot: f64 = (0..inputs).map(|k| x[r * stride + k] as f64 * w[o * inputs + k] as f64).sum();
                        let want = if accumulate { 1.0 } else { 0.0 } + b[o] as f64 + dot;
                        let got = out[r * outputs + o] as f64;
                        assert!((got - want).abs() < 1e-5 * (1.0 + want.abs()), "{rows}×{inputs}×{outputs} ({r},{o}): {got} vs {want}");
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
        if available(Half::BF16) {
            // SAFETY: the CPU has the features (checked just above).
            let (dot, fma) = unsafe { instruction_rates() };
            eprintln!(
                "vdpbf16ps {:.1}, vfmadd {:.1} G instructions/s on one core: bf16 products pay here: {}",
                24576.0 / dot / 1e9,
                24576.0 / fma / 1e9,
                dot_pays()
            );
        }
        for (kind, pairs, amx) in
            [(Half::BF16, true, false), (Half::BF16, false, false), (Half::F16, false, false), (Half::BF16, true, true)]
        {
            if !available(kind) || (amx && !super::super::amx::bf16_available()) {
                continue;
            }
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
            let packed = PackedW::packed(&kind.narrow(&w), outputs, inputs, kind, pairs, amx);
            for rows in [20, 2048] {
                let x: Vec<f32> = (0..rows * inputs).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
                let depth = packed.depth();
                let mut a = vec![0u16; super::super::amx::rows_read(rows) * depth];
                let mut out = vec![0f32; rows * outputs];
                pool.install(|| {
                    let mut best = 0f64;
                    for _ in 0..5 {
                        let t = std::time::Instant::now();
                        if pairs {
                            round_rows(&x, rows, inputs, inputs, depth, &mut a[..rows * depth]);
                        }
                        match packed.amx_for(rows) {
                            Some((data, block, outs)) => {
                                super::super::amx::gemm_bf16(&a, rows, depth, data, block, outs, &mut out, None, false)
                            }
                            None if pairs => gemm(Activations::Bf16(&a[..rows * depth]), rows, &packed, &mut out, None, false),
                            None => gemm(Activations::F32 { data: &x, stride: inputs }, rows, &packed, &mut out, None, false),
                        }
                        best = best.max(2.0 * (rows * inputs * outputs) as f64 / t.elapsed().as_secs_f64() / 1e9);
                    }
                    eprintln!("{kind:?} (pairs: {pairs}, AMX: {amx}) gemm {rows}×{inputs}×{outputs}, 1 thread: {best:.1} GFLOP/s");
                });
            }
        }
        // f32 weights: this kernel against rten-gemm's, each with weights packed once.
        let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
        let packed = PackedW::f32(&w, outputs, inputs);
        let rten = crate::cpu::linear::Linear::rten(&w, outputs, inputs, None);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for rows in [13, 40, 96, 256, 2048] {
                let x: Vec<f32> = (0..rows * inputs).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
                let mut out = vec![0f32; rows * outputs];
                let flops = 2.0 * (rows * inputs * outputs) as f64;
                let (mut ours, mut theirs) = (0f64, 0f64);
                pool.install(|| {
                    for _ in 0..7 {
                        let t = std::time::Instant::now();
                        gemm(Activations::F32 { data: &x, stride: inputs }, rows, &packed, &mut out, None, false);
                        ours = ours.max(flops / t.elapsed().as_secs_f64() / 1e9);
                        let t = std::time::Instant::now();
                        rten.forward(crate::cpu::linear::Rows::dense(&x, inputs), &mut out, false);
                        theirs = theirs.max(flops / t.elapsed().as_secs_f64() / 1e9);
                    }
                });
                eprintln!("F32 gemm {rows}×{inputs}×{outputs}, {threads} threads: ours {ours:.1}, rten-gemm {theirs:.1} GFLOP/s");
            }
        }
    }
}
