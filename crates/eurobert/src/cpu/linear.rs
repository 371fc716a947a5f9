//! `y = x Wᵀ + b` with W packed once at load into the GEMM kernel's panel layout (as
//! onnxruntime's `MatMul::PrePack` does), so a short call never re-packs the weights; on
//! AVX-512, many rows go to the `gemm` crate, which packs its own tiles of
//! them per call (see [`large_rows`]).

use rten_gemm::{BiasVector, GemmExecutor, GemmInputA, GemmInputB, GemmOptions, PackedBMatrix};
use rten_tensor::{Matrix, NdTensorView};

use super::half_linear::HalfLinear;
use super::qlinear::QLinear;
use super::Stored;

/// A projection of the encoder blocks, in f32, int8 (`dtype: 'q8'`) or with 16-bit weights
/// (`'f16'`, `'bf16'`).
pub(crate) enum Projection {
    F32(Linear),
    Q8(QLinear),
    Half(HalfLinear),
}

impl Projection {
    pub fn new(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>, stored: Stored) -> Self {
        match stored {
            Stored::F32 => Projection::F32(Linear::new(weight, outputs, inputs, bias)),
            Stored::Q8 => Projection::Q8(QLinear::new(weight, outputs, inputs, bias)),
            Stored::Half(kind) => Projection::Half(HalfLinear::new(weight, outputs, inputs, bias, kind)),
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            Projection::F32(l) => l.outputs(),
            Projection::Q8(l) => l.outputs(),
            Projection::Half(l) => l.outputs(),
        }
    }

    pub fn bytes(&self) -> usize {
        match self {
            Projection::F32(l) => l.bytes(),
            Projection::Q8(l) => l.bytes(),
            Projection::Half(l) => l.bytes(),
        }
    }

    /// `out = act(x Wᵀ + b)` where the kernel applies the activation (`simd::activate`'s
    /// codes) as it stores, and then returns true; otherwise `out = x Wᵀ + b` and false.
    // Off x86-64 there is only rten-gemm's packing, which applies no activation.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub fn forward_act(&self, x: Rows, out: &mut [f32], act: u8) -> bool {
        match self {
            Projection::Q8(l) => l.forward_act(x, out, false, Some(act)),
            Projection::F32(l) => l.forward_act(x, out, act),
            _ => {
                self.forward(x, out, false);
                false
            }
        }
    }

    /// `out = x Wᵀ + b`, or `out += x Wᵀ + b` with `accumulate` (a fused residual add).
    pub fn forward(&self, x: Rows, out: &mut [f32], accumulate: bool) {
        match self {
            Projection::F32(l) => l.forward(x, out, accumulate),
            Projection::Q8(l) => l.forward(x, out, accumulate),
            Projection::Half(l) => l.forward(x, out, accumulate),
        }
    }
}

thread_local! {
    /// The f32 GEMM, its kernel chosen by CPUID (AVX-512, AVX2+FMA, NEON, ...); per thread
    /// because the executor is not `Send`. Every thread picks the same kernel, so weights
    /// packed on one thread suit all.
    static EXEC: GemmExecutor<f32, f32, f32> = GemmExecutor::default();
}

/// The f32 GEMM kernels this CPU runs: rten-gemm's pick, and ours for large matrices.
pub(crate) fn kernel_name() -> String {
    let rten = EXEC.with(|e| e.kernel_name().to_string());
    #[cfg(target_arch = "x86_64")]
    if streamed() {
        return format!("ours-f32-avx512 (the gemm crate from {} rows)", large_rows());
    }
    rten
}

/// The f32 weights, packed once for the kernel that runs them.
enum Packed {
    Rten(PackedBMatrix<f32>),
    /// `half_gemm.rs`'s f32 format (AVX-512): see [`streamed`].
    #[cfg(target_arch = "x86_64")]
    Ours(super::half_gemm::PackedW),
}

pub(crate) struct Linear {
    weight: Packed,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

/// On AVX-512 every f32 matrix is packed for our kernel (`half_gemm.rs`, strips of 64
/// outputs), which streams the weights for few rows and fetches the next panel while it
/// computes, and runs many rows through the `gemm` crate ([`large_rows`]). Against rten-gemm
/// (Xeon, 2 threads): one bert-base sentence 32–37 → 21–24 ms (a short input reads the
/// weights from memory, and rten-gemm, splitting a few rows over threads, waited on them); the
/// compact model, whose matrices stay in cache, 1,259–1,279 → 1,486–1,567 sentences/s and one
/// sentence 1.12–1.20 → 0.84–0.89 ms. Elsewhere rten-gemm runs them (its kernel chosen by
/// CPUID). `EUROBERT_F32_GEMM=rten|ours` overrides (for comparisons).
/// `EUROBERT_F32_GEMM`: `Some(true)` for ours, `Some(false)` for rten-gemm's.
#[cfg(target_arch = "x86_64")]
fn forced() -> Option<bool> {
    use std::sync::OnceLock;
    static CHOICE: OnceLock<Option<bool>> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("EUROBERT_F32_GEMM").as_deref() {
        Ok("rten") => Some(false),
        Ok("ours") => Some(true),
        _ => None,
    })
}

/// Rows from which our f32 weights go to the `gemm` crate, which reads each strip of them
/// in place and packs what it needs per call. It keeps a tile of weights in L1 across 64-row
/// tiles of packed activations, where our kernel streams a panel of weights from L2 per tile
/// of 6 rows: from 64 rows on it is faster at every bert-base shape (`f32_crossover`: 292–305
/// against 242–257 GFLOP/s at 128 rows, Xeon, 2 threads); below, the weights outweigh the
/// activations and our kernel, which streams them once, wins (one sentence through the crate:
/// 27 → 70 ms). `EUROBERT_F32_LARGE_ROWS` overrides (for comparisons).
#[cfg(target_arch = "x86_64")]
fn large_rows() -> usize {
    use std::sync::OnceLock;
    static ROWS: OnceLock<usize> = OnceLock::new();
    *ROWS.get_or_init(|| std::env::var("EUROBERT_F32_LARGE_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(LARGE_ROWS))
}

#[cfg(target_arch = "x86_64")]
const LARGE_ROWS: usize = 64;

/// Whether f32 weights go to our kernel: where it runs (AVX-512), unless overridden.
#[cfg(target_arch = "x86_64")]
fn streamed() -> bool {
    super::half_gemm::avx512() && forced().unwrap_or(true)
}

/// Rows of an activation matrix: `rows × cols` values, `stride` apart.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> Rows<'a> {
    pub fn dense(data: &'a [f32], cols: usize) -> Self {
        Rows { data, rows: data.len() / cols, cols, stride: cols }
    }
}

impl Linear {
    /// `weight` is `(outputs, inputs)` row-major, as PyTorch stores it.
    pub fn new(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Self {
        assert_eq!(weight.len(), outputs * inputs, "weight size");
        #[cfg(target_arch = "x86_64")]
        if streamed() {
            return Self::ours(weight, outputs, inputs, bias);
        }
        Self::rten(weight, outputs, inputs, bias)
    }

    /// Packed for our AVX-512 kernel, whatever the size (its caller checks `avx512()`).
    #[cfg(target_arch = "x86_64")]
    fn ours(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Self {
        Linear { weight: Packed::Ours(super::half_gemm::PackedW::f32(weight, outputs, inputs)), bias, inputs, outputs }
    }

    /// Packed for rten-gemm, whatever the size.
    pub fn rten(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>) -> Self {
        assert_eq!(weight.len(), outputs * inputs, "weight size");
        let wt = NdTensorView::from_data_with_strides([inputs, outputs], weight, [1, inputs])
            .expect("a transposed view of a full matrix is valid");
        Linear { weight: Packed::Rten(EXEC.with(|e| e.prepack_b(wt))), bias, inputs, outputs }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Bytes the packed weights and bias hold.
    pub fn bytes(&self) -> usize {
        let packed = match &self.weight {
            Packed::Rten(_) => 4 * self.outputs.next_multiple_of(32) * self.inputs,
            #[cfg(target_arch = "x86_64")]
            Packed::Ours(w) => w.bytes(),
        };
        packed + 4 * self.bias.as_ref().map_or(0, Vec::len)
    }

    /// `out = act(x Wᵀ + b)` where our kernel runs these rows, the activation applied to each
    /// task's block as it finishes (one bert-base sentence: the separate pass over its
    /// 3,072-wide activations cost ~1 ms of 25), and then true; else `out = x Wᵀ + b` and false
    /// (done the same way in the `gemm` crate's tasks, batches gained nothing: bert-base
    /// sentences 36.5–37.1 → 36.1–37.2 a second, documents 1,355–1,397 → 1,316–1,368 tokens/s).
    pub fn forward_act(&self, x: Rows, out: &mut [f32], act: u8) -> bool {
        self.run(x, out, false, Some(act))
    }

    /// `out = x Wᵀ + b`, or `out += x Wᵀ + b` with `accumulate` (a fused residual add).
    /// `out` is `x.rows × outputs`, dense.
    pub fn forward(&self, x: Rows, out: &mut [f32], accumulate: bool) {
        self.run(x, out, accumulate, None);
    }

    /// [`Linear::forward`], and `act` applied where our kernel runs the rows: whether it was
    /// (the `gemm` crate's path for many rows and rten-gemm's packing leave it to the caller).
    fn run(&self, x: Rows, out: &mut [f32], accumulate: bool, act: Option<u8>) -> bool {
        assert_eq!(x.cols, self.inputs, "linear input width");
        assert_eq!(out.len(), x.rows * self.outputs, "linear output size");
        if x.rows == 0 {
            return act.is_some();
        }
        let weight = match &self.weight {
            Packed::Rten(w) => w,
            #[cfg(target_arch = "x86_64")]
            Packed::Ours(w) => {
                if x.rows >= large_rows() {
                    if let Some(strips) = w.f32_strips() {
                        self.gemm_crate(x, strips, out, accumulate);
                        return false;
                    }
                }
                let a = super::half_gemm::Activations::F32 { data: x.data, stride: x.stride };
                super::half_gemm::gemm_act(a, x.rows, w, out, self.bias.as_deref(), accumulate, act);
                return act.is_some();
            }
        };
        let a = Matrix::from_data_with_strides([x.rows, x.cols], &x.data[..(x.rows - 1) * x.stride + x.cols], [x.stride, 1])
            .expect("activation rows lie inside their buffer");
        let opts =
            GemmOptions { beta: if accumulate { 1.0 } else { 0.0 }, bias: self.bias.as_deref().map(BiasVector::Row), ..Default::default() };
        EXEC.with(|e| e.gemm(out, GemmInputA::Unpacked(a), GemmInputB::Packed(weight), opts)).expect("shapes were checked above");
        false
    }
}

impl Linear {
    /// `out (+)= x Wᵀ + b` through the `gemm` crate, one task per block of rows and strip of
    /// [`STRIP`] outputs, each strip of `strips` a plain `inputs × STRIP` matrix.
    #[cfg(target_arch = "x86_64")]
    fn gemm_crate(&self, x: Rows, strips: &[f32], out: &mut [f32], accumulate: bool) {
        use super::half_gemm::STRIP;
        use rayon::prelude::*;
        let (m, n, k) = (x.rows, self.outputs, self.inputs);
        assert!(x.stride >= k && x.data.len() >= (m - 1) * x.stride + k, "activation rows lie inside their buffer");
        assert!(strips.len() >= n.div_ceil(STRIP) * k * STRIP, "weight strips");
        assert_eq!(out.len(), m * n, "output size");
        // The bias enters as the sums' starting value (or is added to the residual).
        if let Some(b) = &self.bias {
            out.par_chunks_mut(n).with_min_len(64).for_each(|row| {
                if accumulate {
                    row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
                } else {
                    row.copy_from_slice(b);
                }
            });
        }
        let read = accumulate || self.bias.is_some();
        let (blocks, count) = (m.div_ceil(CRATE_ROWS), n.div_ceil(STRIP));
        let o = super::Shared(out.as_mut_ptr());
        (0..blocks * count).into_par_iter().for_each(|t| {
            let (b, s) = (t / count, t % count);
            let (r0, r1) = (m * b / blocks, m * (b + 1) / blocks);
            let (c0, c1) = (s * STRIP, ((s + 1) * STRIP).min(n));
            // SAFETY: rows r0..r1 of x lie in `x.data` and strip s (k rows of STRIP) in
            // `strips` (asserted above); the task writes rows r0..r1 × columns c0..c1 of `out`
            // (m × n, asserted), which no other task touches.
            unsafe {
                super::gemm_rows(
                    r1 - r0,
                    c1 - c0,
                    k,
                    o.ptr().add(r0 * n + c0),
                    n,
                    read,
                    x.data.as_ptr().add(r0 * x.stride),
                    x.stride,
                    strips.as_ptr().add(s * k * STRIP),
                    STRIP,
                    1,
                    1.0,
                )
            }
        });
    }
}

/// Rows per task of [`Linear::gemm_crate`]: each task packs its rows for the crate, once per
/// strip, so blocks of 512 rows (256: −3% on bert-base's batches of sentences).
#[cfg(target_arch = "x86_64")]
const CRATE_ROWS: usize = 512;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_linear_equals_the_definition_and_accumulates() {
        let (inp, outp) = (70, 45);
        let w: Vec<f32> = (0..outp * inp).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.01).collect();
        let b: Vec<f32> = (0..outp).map(|i| i as f32 * 0.1).collect();
        // Rows with a stride wider than the row, as the gated half of the MLP is read; few
        // rows for our kernel, many for the gemm crate (our packing on AVX-512).
        let stride = 90;
        #[cfg(target_arch = "x86_64")]
        let many = large_rows().min(512) + 3;
        #[cfg(not(target_arch = "x86_64"))]
        let many = 300;
        for rows in [37, many] {
            let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.05).collect();
            for bias in [Some(b.clone()), None] {
                #[allow(unused_mut)]
                let mut packings = vec![Linear::rten(&w, outp, inp, bias.clone())];
                #[cfg(target_arch = "x86_64")]
                if super::super::half_gemm::avx512() {
                    packings.push(Linear::ours(&w, outp, inp, bias.clone()));
                }
                for lin in packings {
                    for accumulate in [true, false] {
                        let mut out = vec![1f32; rows * outp];
                        lin.forward(Rows { data: &x, rows, cols: inp, stride }, &mut out, accumulate);
                        for r in 0..rows {
                            for o in 0..outp {
                                let sum: f64 = (0..inp).map(|k| x[r * stride + k] as f64 * w[o * inp + k] as f64).sum();
                                let want = sum + if accumulate { 1.0 } else { 0.0 } + bias.as_ref().map_or(0.0, |b| b[o] as f64);
                                assert!((out[r * outp + o] as f64 - want).abs() < 1e-4, "rows {rows} ({r},{o})");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod fused_activation {
    use super::*;

    /// The activation applied by our kernel's tasks gives the same bits as a pass of its own
    /// afterwards (few rows); many rows (the `gemm` crate) leave it to the caller.
    #[test]
    fn fused_activation_equals_a_pass_after() {
        if !streamed() {
            return;
        }
        let (inputs, outputs) = (96, 200);
        let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 2.1e-3).collect();
        let b: Vec<f32> = (0..outputs).map(|i| (i as f32 - 90.0) * 0.01).collect();
        let lin = Linear::new(&w, outputs, inputs, Some(b));
        for rows in [1, 9, large_rows() + 5] {
            let x: Vec<f32> = (0..rows * inputs).map(|i| ((i * 13 % 97) as f32 - 48.0) * 0.03).collect();
            for act in [0u8, 1, 2] {
                let mut plain = vec![0f32; rows * outputs];
                lin.forward(Rows::dense(&x, inputs), &mut plain, false);
                super::super::simd::activate(&mut plain, act);
                let mut fused = vec![7f32; rows * outputs];
                assert_eq!(lin.forward_act(Rows::dense(&x, inputs), &mut fused, act), rows < large_rows());
                if rows >= large_rows() {
                    super::super::simd::activate(&mut fused, act);
                }
                assert!(plain.iter().zip(&fused).all(|(a, b)| a.to_bits() == b.to_bits()), "{rows} rows, activation {act}");
                assert!(plain.iter().any(|&v| v < 0.0) && plain.iter().any(|&v| v > 1.0));
            }
        }
    }
}

#[cfg(test)]
mod batch_invariance {
    use super::*;

    /// A row's outputs are the same bits alone, among a few rows (our kernel, its strips swept
    /// in blocks) and among many (the `gemm` crate): a text's entities and scores must not
    /// depend on what it is batched with (the pipeline's tests compare them exactly, on small
    /// models). It holds up to the depth from which the crate splits its sums into blocks
    /// (768 inputs already differ there: one chain of FMAs against sums of blocks).
    #[test]
    fn a_rows_result_does_not_depend_on_the_rows_beside_it() {
        for (inputs, outputs, bias) in [(40, 45, true), (200, 70, true), (200, 70, false)] {
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 1.3e-3).collect();
            let b: Vec<f32> = (0..outputs).map(|i| (i as f32 - 20.0) * 0.07).collect();
            let lin = Linear::new(&w, outputs, inputs, bias.then_some(b));
            let row = |r: usize| -> Vec<f32> { (0..inputs).map(|k| (((r * 31 + k) * 13 % 97) as f32 - 48.0) * 0.021).collect() };
            for accumulate in [false, true] {
                let run = |rows: usize| -> Vec<f32> {
                    let x: Vec<f32> = (0..rows).flat_map(row).collect();
                    let mut out: Vec<f32> = (0..rows * outputs).map(|i| (i % 11) as f32 * 0.3).collect();
                    lin.forward(Rows::dense(&x, inputs), &mut out, accumulate);
                    out
                };
                let many = run(150);
                for rows in [1, 7, 20, 63] {
                    let few = run(rows);
                    for r in 0..rows {
                        let (a, z) = (&few[r * outputs..(r + 1) * outputs], &many[r * outputs..(r + 1) * outputs]);
                        assert!(
                            a.iter().zip(z).all(|(a, z)| a.to_bits() == z.to_bits()),
                            "{inputs}×{outputs}, row {r} of {rows} against 150 rows, bias {bias}, accumulate {accumulate}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod timing {
    use super::*;

    /// GFLOP/s of one call of `f` doing `flops` floating-point operations.
    fn gflops(flops: f64, f: impl FnOnce()) -> f64 {
        let t = std::time::Instant::now();
        f();
        flops / t.elapsed().as_secs_f64() / 1e9
    }

    /// Our strips through the crate, one task per block and strip, against one crate call on
    /// the whole matrix in PyTorch's layout (rayon inside the crate, which then packs the
    /// activations once for all outputs), at bert-base's and the 610m's shapes:
    /// `cargo test --release -p eurobert --lib f32_layouts -- --ignored --nocapture`.
    /// Xeon, 2 threads, 2026-12-07: the whole matrix is 7–12% faster from 3,072 rows with
    /// 1,920 or more outputs, slower with 768–1,152 outputs or 512 rows (RESULTS.md).
    #[test]
    #[ignore]
    fn f32_layouts() {
        if !super::super::half_gemm::avx512() {
            return;
        }
        for (outputs, inputs) in [(2304, 768), (768, 768), (3072, 768), (768, 3072), (8192, 1152), (1152, 4096)] {
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
            let lin = Linear::ours(&w, outputs, inputs, None);
            let Packed::Ours(packed) = &lin.weight else { unreachable!() };
            for rows in [512, 3072] {
                let x: Vec<f32> = (0..rows * inputs).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
                let mut out = vec![0f32; rows * outputs];
                let flops = 2.0 * (rows * inputs * outputs) as f64;
                let (mut ours, mut whole) = (0f64, 0f64);
                for _ in 0..5 {
                    ours =
                        ours.max(gflops(flops, || lin.gemm_crate(Rows::dense(&x, inputs), packed.f32_strips().unwrap(), &mut out, false)));
                    // SAFETY: x is rows × inputs, w outputs × inputs (read as its transpose), out rows × outputs.
                    whole = whole.max(gflops(flops, || unsafe {
                        gemm::gemm(
                            rows,
                            outputs,
                            inputs,
                            out.as_mut_ptr(),
                            1,
                            outputs as isize,
                            false,
                            x.as_ptr(),
                            1,
                            inputs as isize,
                            w.as_ptr(),
                            inputs as isize,
                            1,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::Rayon(0),
                        )
                    }));
                }
                eprintln!("{rows:5}×{inputs}×{outputs}: strips {ours:6.1}, whole matrix {whole:6.1} GFLOP/s");
            }
        }
    }

    /// Our f32 kernel against the `gemm` crate on our strips, by rows, at bert-base's shapes
    /// (where [`LARGE_ROWS`] comes from):
    /// `cargo test --release -p eurobert --lib f32_crossover -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn f32_crossover() {
        if !super::super::half_gemm::avx512() {
            return;
        }
        for (outputs, inputs) in [(2304, 768), (768, 768), (3072, 768), (768, 3072)] {
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
            let lin = Linear::ours(&w, outputs, inputs, None);
            let Packed::Ours(packed) = &lin.weight else { unreachable!() };
            for rows in [32, 64, 96, 128, 192, 256, 512] {
                let x: Vec<f32> = (0..rows * inputs).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
                let mut out = vec![0f32; rows * outputs];
                let flops = 2.0 * (rows * inputs * outputs) as f64;
                let (mut ours, mut theirs) = (0f64, 0f64);
                for _ in 0..9 {
                    let a = super::super::half_gemm::Activations::F32 { data: &x, stride: inputs };
                    ours = ours.max(gflops(flops, || super::super::half_gemm::gemm(a, rows, packed, &mut out, None, false)));
                    theirs = theirs
                        .max(gflops(flops, || lin.gemm_crate(Rows::dense(&x, inputs), packed.f32_strips().unwrap(), &mut out, false)));
                }
                eprintln!("{rows:4}×{inputs}×{outputs}: ours {ours:6.1}, gemm crate {theirs:6.1} GFLOP/s");
            }
        }
    }
}
