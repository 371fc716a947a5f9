//! `y = x Wᵀ + b` in int8 (`dtype: 'q8'`): weights quantized once at load, symmetric per
//! output channel; activations quantized per token at run time, symmetric, as u8 around a
//! zero point of 128; products accumulated in i32 by rten-gemm's u8×i8 kernels (AVX-512
//! VNNI, AVX2, NEON dot product / i8mm, chosen at run time) and scaled back to f32.
//!
//! Every row shares the zero point 128: rten-gemm 0.27's A packing reads the zero points of
//! the first MR rows for every full panel (`pack_a_impl` indexes `zp[r]`, not
//! `zp[row_tile * MR + r]`), so per-row zero points would be wrong past row MR.
//!
//! Where the kernel may saturate (AVX2 `vpmaddubsw` sums two u8×i8 products in i16), weights
//! keep 7 bits so that no pair can overflow.
//!
//! On CPUs with AVX-512 VNNI our own kernel (`vnni.rs`) runs instead, with the same quantized
//! weights and activations, so the same integer sums and the same outputs: it reads the
//! activations in place and writes f32 directly, which pays most for a sentence's few rows.

use rayon::prelude::*;
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmUninitOptions, PackedBMatrix, QuantParams};
use rten_tensor::{Matrix, NdTensorView};

use super::linear::Rows;

thread_local! {
    static EXEC: GemmExecutor<u8, i8, i32> = GemmExecutor::default();
}

/// Whether our VNNI kernel runs here.
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::vnni::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The int8 GEMM kernel this CPU runs: ours with VNNI, else the one rten-gemm picked.
pub(crate) fn kernel_name() -> String {
    #[cfg(target_arch = "x86_64")]
    if super::amx::available() {
        return "x86_64-u8i8i32-amx".to_string();
    }
    if vnni() {
        return "x86_64-u8i8i32-avx512vnni".to_string();
    }
    EXEC.with(|e| e.kernel_name().to_string())
}

/// Which int8 kernel a projection runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernel {
    Rten,
    /// `vnni.rs` (AVX-512 VNNI).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Vnni,
    /// `amx.rs` (AMX-INT8), with `vnni.rs`'s packing.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Amx,
}

enum Packed {
    /// rten-gemm's panels, and the zero point of each weight column (all 0: symmetric).
    Rten(PackedBMatrix<i8>, Vec<i8>),
    #[cfg(target_arch = "x86_64")]
    Vnni(super::vnni::PackedW),
}

pub(crate) struct QLinear {
    weight: Packed,
    /// `w[c, k] ≈ scale[c] · q[c, k]`.
    scale: Vec<f32>,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

/// Per-token u8 activations: `x[r, k] ≈ scale[r] · (q[r, k] - zero[r])`, `zero[r] = 128`.
struct Quantized {
    q: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<u8>,
}

impl QLinear {
    /// `weight` is `(outputs, inputs)` row-major f32.
    pub fn new(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Self {
        #[cfg(target_arch = "x86_64")]
        let kernel = if super::amx::available() {
            Kernel::Amx
        } else if vnni() {
            Kernel::Vnni
        } else {
            Kernel::Rten
        };
        #[cfg(not(target_arch = "x86_64"))]
        let kernel = Kernel::Rten;
        Self::with_kernel(weight, outputs, inputs, bias, kernel)
    }

    /// With the given kernel (ours only where it runs).
    fn with_kernel(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>, kernel: Kernel) -> Self {
        let vnni = kernel != Kernel::Rten;
        assert_eq!(weight.len(), outputs * inputs, "weight size");
        let qmax = if !vnni && EXEC.with(|e| e.may_saturate()) { 63.0 } else { 127.0 };
        let mut q = vec![0i8; outputs * inputs];
        let mut scale = vec![0f32; outputs];
        q.par_chunks_mut(inputs).zip(weight.par_chunks(inputs)).zip(scale.par_iter_mut()).for_each(|((q, w), s)| {
            let m = w.iter().fold(0f32, |m, v| m.max(v.abs()));
            *s = if m > 0.0 { m / qmax } else { 1.0 };
            let inv = 1.0 / *s;
            for (q, &v) in q.iter_mut().zip(w) {
                *q = (v * inv).round().clamp(-qmax, qmax) as i8;
            }
        });
        #[cfg(target_arch = "x86_64")]
        if vnni {
            let packed = super::vnni::PackedW::packed(&q, outputs, inputs, kernel == Kernel::Amx);
            return QLinear { weight: Packed::Vnni(packed), scale, bias, inputs, outputs };
        }
        let wt = NdTensorView::from_data_with_strides([inputs, outputs], q.as_slice(), [1, inputs])
            .expect("a transposed view of a full matrix is valid");
        QLinear { weight: Packed::Rten(EXEC.with(|e| e.prepack_b(wt)), vec![0; outputs]), scale, bias, inputs, outputs }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn bytes(&self) -> usize {
        let packed = match &self.weight {
            Packed::Rten(..) => self.outputs.next_multiple_of(32) * self.inputs.next_multiple_of(4) + self.outputs,
            #[cfg(target_arch = "x86_64")]
            Packed::Vnni(w) => w.bytes(),
        };
        packed + 4 * self.outputs + 4 * self.bias.as_ref().map_or(0, Vec::len)
    }

    /// `out = x Wᵀ + b`, or `out += ...` with `accumulate`.
    pub fn forward(&self, x: Rows, out: &mut [f32], accumulate: bool) {
        self.forward_act(x, out, accumulate, None);
    }

    /// `forward`, then the activation `act` (`simd::activate`'s codes) where the kernel can
    /// apply it as it stores; returns whether it did (the AVX-512 VNNI kernel does).
    pub fn forward_act(&self, x: Rows, out: &mut [f32], accumulate: bool, act: Option<u8>) -> bool {
        assert_eq!(x.cols, self.inputs, "linear input width");
        assert_eq!(out.len(), x.rows * self.outputs, "linear output size");
        if x.rows == 0 {
            return act.is_some();
        }
        let (weight, zero) = match &self.weight {
            Packed::Rten(w, z) => (w, z),
            #[cfg(target_arch = "x86_64")]
            Packed::Vnni(w) => {
                // The AMX kernel reads whole tiles of rows: the rows past x.rows are scratch.
                // Short inputs run the same packing through the VNNI kernel.
                let amx = w.amx() && super::amx::runs(x.rows);
                let rows = if amx { super::amx::rows_read(x.rows) } else { x.rows };
                let a = quantize_rows(x, w.depth(), rows);
                let e = super::vnni::Epilogue { row_scale: &a.scale, col_scale: &self.scale, bias: self.bias.as_deref(), accumulate, act };
                if amx {
                    super::amx::gemm(&a.q, x.rows, w, out, &e);
                } else {
                    super::vnni::gemm(&a.q[..x.rows * w.depth()], x.rows, w, out, &e);
                }
                return act.is_some();
            }
        };
        let a = quantize_rows(x, x.cols, x.rows);
        // The GEMM writes every element, so the accumulator is not zeroed first.
        let mut acc: Vec<std::mem::MaybeUninit<i32>> = Vec::with_capacity(x.rows * self.outputs);
        // SAFETY: MaybeUninit needs no initialization; gemm_uninit initializes all of it.
        unsafe { acc.set_len(x.rows * self.outputs) };
        let am = Matrix::from_data([x.rows, x.cols], a.q.as_slice());
        let opts = GemmUninitOptions {
            a_quant: Some(QuantParams { zero_point: &a.zero }),
            b_quant: Some(QuantParams { zero_point: zero }),
            ..Default::default()
        };
        let acc: &[i32] = EXEC
            .with(|e| e.gemm_uninit(&mut acc, GemmInputA::Unpacked(am), GemmInputB::Packed(weight), opts))
            .expect("shapes were checked above");
        let n = self.outputs;
        out.par_chunks_mut(n)
            .zip(acc.par_chunks(n))
            .zip(a.scale.par_iter())
            .with_min_len(16)
            .for_each(|((o, acc), &sa)| dequantize(o, acc, sa, &self.scale, self.bias.as_deref(), accumulate));
        false
    }
}

/// Each row quantized into `depth ≥ cols` bytes, the rest being the zero point, in a buffer of
/// `rows ≥ x.rows` rows.
///
/// The bytes go into a buffer kept per thread: a fresh `vec!` of a batch's activations (3.5 MB
/// for 1,143 rows of 3,072) costs a fill and, past glibc's mmap threshold, a page fault per 4 KB
/// on every projection. Buffers above `KEEP` are freed after use, so a long document does not
/// pin its size.
fn quantize_rows(x: Rows, depth: usize, rows: usize) -> Quantized {
    let _t = super::profile::span(super::profile::Op::Quantize);
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    // Every byte of the x.rows rows is written below (row, then padding), so only growth is
    // filled here; rows past x.rows (`rows ≥ x.rows`, whole AMX tiles) keep what they hold.
    buf.resize(rows * depth, ZERO as u8);
    let mut q = Quantized { q: buf, scale: vec![0f32; x.rows], zero: vec![0u8; x.rows] };
    q.q[..x.rows * depth]
        .par_chunks_mut(depth)
        .zip(q.scale.par_iter_mut())
        .zip(q.zero.par_iter_mut())
        .enumerate()
        .with_min_len(SERIAL_ELEMENTS.div_ceil(depth).max(16))
        .for_each(|(r, ((q, s), z))| {
            let row = &x.data[r * x.stride..r * x.stride + x.cols];
            (*s, *z) = quantize_row(row, q);
            q[x.cols..].fill(ZERO as u8);
        });
    q
}

/// Elements a parallel task of `quantize_rows` takes at least: a sentence's rows (~10 µs of
/// work) cost less on one thread than waking a second for half of them.
const SERIAL_ELEMENTS: usize = 1 << 16;

/// Largest activation buffer a thread keeps between projections (a batch of ~1,300 rows of 3,072).
const KEEP: usize = 4 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for Quantized {
    fn drop(&mut self) {
        if self.q.capacity() <= KEEP {
            let q = std::mem::take(&mut self.q);
            SCRATCH.with(|s| *s.borrow_mut() = q);
        }
    }
}

/// The zero point of every activation row (see the module note).
const ZERO: f32 = 128.0;

/// Quantizes one row symmetrically to u8 around 128; returns its scale and zero point.
fn quantize_row(row: &[f32], q: &mut [u8]) -> (f32, u8) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::level() == super::simd::Level::Avx512 {
        assert!(q.len() >= row.len(), "quantized row size");
        // SAFETY: the level says the CPU has AVX-512 F/BW/VL; `q` holds the row (asserted).
        return unsafe { quantize_row_avx512(row, q) };
    }
    quantize_row_portable(row, q)
}

/// [`quantize_row_portable`]'s arithmetic, step for step, in AVX-512 (the same bits), 1.6×
/// as fast on one core (`quantize_timing`: 0.29 → 0.17 ns an element for 256-wide rows, 0.23
/// → 0.14 for 768): every int8 projection quantizes its input rows first.
///
/// # Safety
/// The CPU has AVX-512 F, BW and VL; `q.len() >= row.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512(row: &[f32], q: &mut [u8]) -> (f32, u8) {
    use std::arch::x86_64::*;
    let n = row.len();
    let (x, out) = (row.as_ptr(), q.as_mut_ptr());
    let tail = |i: usize| super::simd::tail_mask(i, n);
    let mut m = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY: every load below reads lanes `i..` of `row`, whole vectors or under a mask of
    // the elements left.
    unsafe {
        while i + 64 <= n {
            for (j, m) in m.iter_mut().enumerate() {
                *m = _mm512_max_ps(*m, _mm512_abs_ps(_mm512_loadu_ps(x.add(i + 16 * j))));
            }
            i += 64;
        }
        while i < n {
            m[0] = _mm512_max_ps(m[0], _mm512_abs_ps(_mm512_maskz_loadu_ps(tail(i), x.add(i))));
            i += 16;
        }
    }
    let m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])));
    let scale = if m > 0.0 { m / 127.0 } else { 1.0 };
    let (inv, off, lo, hi) = (_mm512_set1_ps(1.0 / scale), _mm512_set1_ps(ZERO + 0.5), _mm512_set1_ps(1.0), _mm512_set1_ps(255.0));
    let step = |v: __m512| {
        let y = _mm512_add_ps(_mm512_mul_ps(v, inv), off);
        let y = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(y), lo), hi);
        _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(y))
    };
    let mut i = 0;
    // SAFETY: as above for the loads; the stores write the same lanes of `q`, which holds the
    // row (the caller's contract).
    unsafe {
        while i + 16 <= n {
            _mm_storeu_si128(out.add(i) as *mut _, step(_mm512_loadu_ps(x.add(i))));
            i += 16;
        }
        if i < n {
            _mm_mask_storeu_epi8(out.add(i) as *mut _, tail(i), step(_mm512_maskz_loadu_ps(tail(i), x.add(i))));
        }
    }
    (scale, ZERO as u8)
}

super::simd::simd_fn! {
    /// Quantizes one row symmetrically to u8 around 128; returns its scale and zero point.
    /// Written to vectorize: 16 running maxima, and the rounding and u8 conversion done on
    /// float bits (a saturating `as u8` would stay scalar).
    fn quantize_row_portable(row: &[f32], q: &mut [u8]) -> (f32, u8) {
        const L: usize = 16;
        let mut m = [0f32; L];
        let chunks = row.chunks_exact(L);
        let tail = chunks.remainder();
        for c in chunks {
            for i in 0..L {
                m[i] = m[i].max(c[i].abs());
            }
        }
        let m = m.iter().chain(tail).fold(0f32, |a, &b| a.max(b.abs()));
        let scale = if m > 0.0 { m / 127.0 } else { 1.0 };
        let inv = 1.0 / scale;
        for (q, &v) in q.iter_mut().zip(row) {
            // In [1, 255] and integral after the floor, so 2^23 + y holds y in its low bits.
            let y = (v * inv + (ZERO + 0.5)).floor().clamp(1.0, 255.0);
            *q = (y + 8_388_608.0).to_bits() as u8;
        }
        (scale, ZERO as u8)
    }
}

super::simd::simd_fn! {
    /// One output row back to f32: `o (+)= acc · sa · sw + bias`.
    fn dequantize(o: &mut [f32], acc: &[i32], sa: f32, sw: &[f32], bias: Option<&[f32]>, accumulate: bool) {
        match (bias, accumulate) {
            (Some(b), true) => for i in 0..o.len() { o[i] += acc[i] as f32 * sa * sw[i] + b[i] },
            (Some(b), false) => for i in 0..o.len() { o[i] = acc[i] as f32 * sa * sw[i] + b[i] },
            (None, true) => for i in 0..o.len() { o[i] += acc[i] as f32 * sa * sw[i] },
            (None, false) => for i in 0..o.len() { o[i] = acc[i] as f32 * sa * sw[i] },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_linear_stays_close_to_f32_and_accumulates() {
        let (rows, inp, outp) = (29, 96, 40);
        let w: Vec<f32> = (0..outp * inp).map(|i| (((i * 7919) % 201) as f32 - 100.0) * 0.003).collect();
        let b: Vec<f32> = (0..outp).map(|i| i as f32 * 0.05).collect();
        let x: Vec<f32> = (0..rows * inp).map(|i| (((i * 104729) % 97) as f32 - 40.0) * 0.02).collect();
        let lin = QLinear::new(&w, outp, inp, Some(b.clone()));
        let mut out = vec![1f32; rows * outp];
        lin.forward(Rows::dense(&x, inp), &mut out, true);
        let mut worst = 0f64;
        let mut scale = 0f64;
        for r in 0..rows {
            for o in 0..outp {
                let want: f64 = 1.0 + b[o] as f64 + (0..inp).map(|k| x[r * inp + k] as f64 * w[o * inp + k] as f64).sum::<f64>();
                worst = worst.max((out[r * outp + o] as f64 - want).abs());
                scale = scale.max(want.abs());
            }
        }
        assert!(worst < 0.01 * scale, "max error {worst} on values up to {scale}");
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod vnni_kernel {
    use super::*;

    /// Our VNNI kernel gives rten-gemm's bits: the same integer sums, the same epilogue.
    #[test]
    fn vnni_equals_rten_bit_for_bit() {
        if !vnni() {
            return crate::skip_test("cpu::qlinear::vnni_equals_rten_bit_for_bit", "no AVX-512 VNNI on this CPU");
        }
        ours_equal_rten(Kernel::Vnni);
    }

    /// So does the AMX kernel.
    #[test]
    fn amx_equals_rten_bit_for_bit() {
        if !super::super::amx::available() {
            return crate::skip_test("cpu::qlinear::amx_equals_rten_bit_for_bit", "no AMX-INT8 here (or the OS refused it)");
        }
        ours_equal_rten(Kernel::Amx);
    }

    fn ours_equal_rten(kernel: Kernel) {
        // Rows from one to a few tiles (and uneven tiles), outputs not a multiple of 16 or 64,
        // inputs not a multiple of 4, strided rows, with and without bias and accumulation.
        for (rows, inp, outp, stride) in [
            (1usize, 256usize, 256usize, 256usize),
            (5, 70, 45, 90),
            (13, 1152, 1920, 1152),
            (37, 767, 100, 800),
            (130, 64, 1030, 64),
            (300, 768, 48, 768),
        ] {
            let w: Vec<f32> = (0..outp * inp).map(|i| (((i * 7919) % 201) as f32 - 100.0) * 0.003).collect();
            let b: Vec<f32> = (0..outp).map(|i| i as f32 * 0.05 - 1.0).collect();
            let x: Vec<f32> =
                (0..rows * stride).map(|i| (((i * 104729) % 97) as f32 - 40.0) * 0.02 * (1 + i / stride % 5) as f32).collect();
            let rows_of = || Rows { data: &x, rows, cols: inp, stride };
            for (bias, accumulate) in [(None, false), (Some(b.clone()), false), (Some(b.clone()), true), (None, true)] {
                let ours = QLinear::with_kernel(&w, outp, inp, bias.clone(), kernel);
                let theirs = QLinear::with_kernel(&w, outp, inp, bias.clone(), Kernel::Rten);
                let start: Vec<f32> = (0..rows * outp).map(|i| (i % 11) as f32 * 0.25).collect();
                let (mut a, mut b) = (start.clone(), start.clone());
                ours.forward(rows_of(), &mut a, accumulate);
                theirs.forward(rows_of(), &mut b, accumulate);
                let differ = a.iter().zip(&b).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{rows}x{inp}x{outp} bias {} accumulate {accumulate}: {differ} outputs differ", bias.is_some());
            }
            // The activation the kernel applies as it stores: the same bits as the separate
            // pass over the stored outputs (a plain MLP's GELU), for every activation.
            for which in 0..=super::super::simd::GELU_Q8 {
                let ours = QLinear::with_kernel(&w, outp, inp, Some(b.clone()), kernel);
                let (mut fused, mut apart) = (vec![0f32; rows * outp], vec![0f32; rows * outp]);
                assert!(ours.forward_act(rows_of(), &mut fused, false, Some(which)), "our kernel applies it");
                ours.forward(rows_of(), &mut apart, false);
                super::super::simd::activate(&mut apart, which);
                let differ = fused.iter().zip(&apart).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{rows}x{inp}x{outp} activation {which}: {differ} outputs differ");
                let theirs = QLinear::with_kernel(&w, outp, inp, Some(b.clone()), Kernel::Rten);
                assert!(!theirs.forward_act(rows_of(), &mut apart, false, Some(which)), "rten-gemm's path leaves it to the caller");
            }
        }
    }
}

#[cfg(test)]
mod shapes {
    use super::*;

    #[test]
    fn int8_linear_at_model_shapes() {
        for (rows, inp, outp, stride) in
            [(37usize, 256usize, 512usize, 256usize), (300, 768, 256, 1536), (70, 1152, 1920, 1152), (5, 4096, 1152, 8192)]
        {
            let mut worst_rel = 0f64;
            let w: Vec<f32> = (0..outp * inp).map(|i| (((i * 7919) % 201) as f32 - 100.0) * 0.001).collect();
            // Rows of very different magnitudes and offsets: each token has its own scale.
            let x: Vec<f32> = (0..rows * stride)
                .map(|i| ((((i * 104729) % 97) as f32 - 40.0) * 0.02 + (i / stride % 3) as f32) * (1 + (i / stride) % 7 * 13) as f32)
                .collect();
            let lin = QLinear::new(&w, outp, inp, None);
            let mut out = vec![0f32; rows * outp];
            lin.forward(Rows { data: &x, rows, cols: inp, stride }, &mut out, false);
            for r in 0..rows {
                let (mut worst, mut scale) = (0f64, 0f64);
                for o in 0..outp {
                    let want: f64 = (0..inp).map(|k| x[r * stride + k] as f64 * w[o * inp + k] as f64).sum();
                    worst = worst.max((out[r * outp + o] as f64 - want).abs());
                    scale = scale.max(want.abs());
                }
                worst_rel = worst_rel.max(worst / scale);
            }
            eprintln!("{rows}x{inp}x{outp}: worst row error {:.2}% of the row's largest output", 100.0 * worst_rel);
            // Measured up to 2.1%; a wrong zero point or scale for any row is off by 100% or more.
            assert!(worst_rel < 0.03, "{rows}x{inp}x{outp}: a row's error is {worst_rel} of its outputs");
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p eurobert --lib quantize_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn quantize_timing() {
        for (rows, cols) in [(700usize, 256usize), (700, 768)] {
            let x: Vec<f32> = (0..rows * cols).map(|i| (((i * 104729) % 97) as f32 - 40.0) * 0.02).collect();
            let mut q = vec![0u8; rows * cols];
            let reps = 200;
            let mut ns_per_element = |f: fn(&[f32], &mut [u8]) -> (f32, u8)| {
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    for (row, q) in x.chunks(cols).zip(q.chunks_mut(cols)) {
                        std::hint::black_box(f(row, q));
                    }
                }
                t.elapsed().as_nanos() as f64 / (reps * rows * cols) as f64
            };
            let (ns, portable) = (ns_per_element(quantize_row), ns_per_element(quantize_row_portable));
            eprintln!("{rows}x{cols}: {ns:.3} ns per element (portable {portable:.3}), one thread");
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod avx512_quantize {
    use super::*;

    /// The AVX-512 row quantizer gives the portable one's bits: scales, and every byte,
    /// on widths with and without a tail, rows of zeros, huge and tiny values, and halves
    /// exactly between two steps.
    #[test]
    fn avx512_quantize_equals_portable() {
        if super::super::simd::level() != super::super::simd::Level::Avx512 {
            return crate::skip_test("cpu::qlinear::avx512_quantize_equals_portable", "no AVX-512 on this CPU");
        }
        for cols in [1usize, 7, 16, 17, 63, 64, 65, 256, 300, 768, 3072] {
            for kind in 0..5 {
                let row: Vec<f32> = (0..cols)
                    .map(|i| match kind {
                        0 => 0.0,
                        1 => (((i * 104729) % 97) as f32 - 48.0) * 0.37,
                        2 => (((i * 7919) % 255) as f32 - 127.0) * 1e30,
                        3 => (((i * 31) % 17) as f32 - 8.0) * 1e-30,
                        // 127 at the end sets the scale to 1: the others sit on halves.
                        _ if i == cols - 1 => 127.0,
                        _ => (i % 255) as f32 * 0.5 - 63.0,
                    })
                    .collect();
                let (mut a, mut b) = (vec![7u8; cols + 5], vec![7u8; cols + 5]);
                // SAFETY: the CPU has AVX-512 (checked above) and `a` holds the row.
                let sa = unsafe { quantize_row_avx512(&row, &mut a) };
                let sb = quantize_row_portable(&row, &mut b);
                assert_eq!(sa.0.to_bits(), sb.0.to_bits(), "scale, width {cols}, kind {kind}");
                assert_eq!(a, b, "bytes, width {cols}, kind {kind}");
            }
        }
    }
}
