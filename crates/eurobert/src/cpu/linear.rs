//! `y = x Wᵀ + b` with W packed once at load into the GEMM kernel's panel layout (as
//! onnxruntime's `MatMul::PrePack` does), so no call re-packs the weights.

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
    pub fn forward_act(&self, x: Rows, out: &mut [f32], act: u8) -> bool {
        match self {
            Projection::Q8(l) => l.forward_act(x, out, false, Some(act)),
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

/// The f32 GEMM kernel rten-gemm picked for this CPU.
pub(crate) fn kernel_name() -> String {
    EXEC.with(|e| e.kernel_name().to_string())
}

pub(crate) struct Linear {
    weight: PackedBMatrix<f32>,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
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
        let wt = NdTensorView::from_data_with_strides([inputs, outputs], weight, [1, inputs])
            .expect("a transposed view of a full matrix is valid");
        Linear { weight: EXEC.with(|e| e.prepack_b(wt)), bias, inputs, outputs }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Bytes the packed weights and bias hold.
    pub fn bytes(&self) -> usize {
        let cols = self.outputs.next_multiple_of(32);
        4 * (cols * self.inputs + self.bias.as_ref().map_or(0, Vec::len))
    }

    /// `out = x Wᵀ + b`, or `out += x Wᵀ + b` with `accumulate` (a fused residual add).
    /// `out` is `x.rows × outputs`, dense.
    pub fn forward(&self, x: Rows, out: &mut [f32], accumulate: bool) {
        assert_eq!(x.cols, self.inputs, "linear input width");
        assert_eq!(out.len(), x.rows * self.outputs, "linear output size");
        if x.rows == 0 {
            return;
        }
        let a = Matrix::from_data_with_strides([x.rows, x.cols], &x.data[..(x.rows - 1) * x.stride + x.cols], [x.stride, 1])
            .expect("activation rows lie inside their buffer");
        let opts =
            GemmOptions { beta: if accumulate { 1.0 } else { 0.0 }, bias: self.bias.as_deref().map(BiasVector::Row), ..Default::default() };
        EXEC.with(|e| e.gemm(out, GemmInputA::Unpacked(a), GemmInputB::Packed(&self.weight), opts)).expect("shapes were checked above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_linear_equals_the_definition_and_accumulates() {
        let (rows, inp, outp) = (37, 70, 45);
        let w: Vec<f32> = (0..outp * inp).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.01).collect();
        let b: Vec<f32> = (0..outp).map(|i| i as f32 * 0.1).collect();
        // Rows with a stride wider than the row, as the gated half of the MLP is read.
        let stride = 90;
        let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.05).collect();
        let lin = Linear::new(&w, outp, inp, Some(b.clone()));
        let mut out = vec![1f32; rows * outp];
        lin.forward(Rows { data: &x, rows, cols: inp, stride }, &mut out, true);
        for r in 0..rows {
            for o in 0..outp {
                let want: f64 = 1.0 + b[o] as f64 + (0..inp).map(|k| x[r * stride + k] as f64 * w[o * inp + k] as f64).sum::<f64>();
                assert!((out[r * outp + o] as f64 - want).abs() < 1e-4, "({r},{o})");
            }
        }
    }
}
