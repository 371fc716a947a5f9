//! `y = x Wᵀ + b` with W kept in f16 or bf16 (`dtype: 'f16'` / `'bf16'`): half the weight
//! memory, while accumulation, softmax, norms and the residual stream stay f32, so the error
//! does not grow with the sequence as a half-width softmax's does. On AVX-512 CPUs `half_gemm.rs`
//! runs: bf16 products where they pay (activations rounded to bf16 as they enter, twice the
//! f32 rate on Zen 4), else the weights widened in registers into f32 FMAs; otherwise each tile of the output widens its block of W to f32 in a per-thread buffer (a
//! block fits in L2) and multiplies f32 activations in f32, so the only rounding is the
//! weights' own.

use std::cell::RefCell;

use rayon::prelude::*;

use super::linear::Rows;
use super::Shared;

/// Which 16-bit float the weights are stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Half {
    F16,
    BF16,
}

impl Half {
    pub fn narrow(self, v: &[f32]) -> Vec<u16> {
        match self {
            Half::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_bits()).collect(),
            Half::BF16 => v.iter().map(|&x| half::bf16::from_f32(x).to_bits()).collect(),
        }
    }

    #[cfg(all(test, target_arch = "x86_64"))]
    pub fn narrow_one(self, x: f32) -> u16 {
        match self {
            Half::F16 => half::f16::from_f32(x).to_bits(),
            Half::BF16 => half::bf16::from_f32(x).to_bits(),
        }
    }

    #[cfg(all(test, target_arch = "x86_64"))]
    pub fn widen_one(self, b: u16) -> f32 {
        match self {
            Half::F16 => half::f16::from_bits(b).to_f32(),
            Half::BF16 => half::bf16::from_bits(b).to_f32(),
        }
    }

    pub fn widen(self, v: &[u16], out: &mut [f32]) {
        debug_assert_eq!(v.len(), out.len());
        match self {
            // `half` uses F16C where the CPU has it.
            Half::F16 => {
                use half::slice::HalfFloatSliceExt;
                // SAFETY: f16 is a transparent u16.
                let v: &[half::f16] = unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len()) };
                v.convert_to_f32_slice(out)
            }
            // bf16 is the top half of an f32: a shift, which vectorizes.
            Half::BF16 => out.iter_mut().zip(v).for_each(|(o, &b)| *o = f32::from_bits((b as u32) << 16)),
        }
    }
}

/// Output columns per tile: a 128 × 1,152 block of W is 590 KB in f32.
const COLS: usize = 128;
/// Rows of x per tile, so long inputs still split across threads.
const ROWS: usize = 256;

thread_local! {
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// What runs `dtype: 'bf16'`'s projections here: AMX tiles (from 16 rows; AVX512-BF16 below),
/// `vdpbf16ps` pairs where they beat f32 FMAs, bf16 widened into f32 FMAs in AVX-512, or the
/// portable widening path.
pub(crate) fn bf16_kernel_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use super::half_gemm::{available, dot_pays};
        if super::amx::bf16_available() {
            return "amx-bf16".to_string();
        }
        if dot_pays() {
            return "avx512bf16".to_string();
        }
        if available(Half::BF16) {
            return "avx512 (widened to f32)".to_string();
        }
    }
    "portable (widened to f32)".to_string()
}

pub(crate) struct HalfLinear {
    /// `(outputs, inputs)` row-major, as PyTorch stores it; empty when `packed` holds them.
    weight: Vec<u16>,
    #[cfg(target_arch = "x86_64")]
    packed: Option<super::half_gemm::PackedW>,
    kind: Half,
    bias: Option<Vec<f32>>,
    inputs: usize,
    outputs: usize,
}

impl HalfLinear {
    pub fn new(weight: &[f32], outputs: usize, inputs: usize, bias: Option<Vec<f32>>, kind: Half) -> Self {
        assert_eq!(weight.len(), outputs * inputs, "weight size");
        let narrow = kind.narrow(weight);
        #[cfg(target_arch = "x86_64")]
        if super::half_gemm::available(kind) {
            let packed = Some(super::half_gemm::PackedW::new(&narrow, outputs, inputs, kind));
            return HalfLinear { weight: Vec::new(), packed, kind, bias, inputs, outputs };
        }
        HalfLinear {
            weight: narrow,
            #[cfg(target_arch = "x86_64")]
            packed: None,
            kind,
            bias,
            inputs,
            outputs,
        }
    }

    pub fn outputs(&self) -> usize {
        self.outputs
    }

    pub fn bytes(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        let packed = self.packed.as_ref().map_or(0, super::half_gemm::PackedW::bytes);
        #[cfg(not(target_arch = "x86_64"))]
        let packed = 0;
        2 * self.weight.len() + packed + 4 * self.bias.as_ref().map_or(0, Vec::len)
    }

    /// `out = x Wᵀ + b`, or `out += x Wᵀ + b` with `accumulate`. `out` is `x.rows × outputs`.
    pub fn forward(&self, x: Rows, out: &mut [f32], accumulate: bool) {
        assert_eq!(x.cols, self.inputs, "linear input width");
        assert_eq!(out.len(), x.rows * self.outputs, "linear output size");
        if x.rows == 0 {
            return;
        }
        assert!(x.data.len() >= (x.rows - 1) * x.stride + x.cols, "activation rows lie inside their buffer");
        #[cfg(target_arch = "x86_64")]
        if let Some(w) = &self.packed {
            use super::half_gemm::{gemm, round_rows, Activations};
            let bias = self.bias.as_deref();
            if w.pairs() {
                // The tile unit reads whole tiles of rows: the rows past x.rows are zeros.
                let amx = w.amx_for(x.rows);
                let rows = if amx.is_some() { super::amx::rows_read(x.rows) } else { x.rows };
                let (mut a, depth) = (vec![0u16; rows * w.depth()], w.depth());
                round_rows(x.data, x.rows, x.cols, x.stride, depth, &mut a[..x.rows * depth]);
                match amx {
                    Some((data, block, outputs)) => super::amx::gemm_bf16(&a, x.rows, depth, data, block, outputs, out, bias, accumulate),
                    None => gemm(Activations::Bf16(&a), x.rows, w, out, bias, accumulate),
                }
            } else {
                gemm(Activations::F32 { data: x.data, stride: x.stride }, x.rows, w, out, bias, accumulate);
            }
            return;
        }
        let (k, n) = (self.inputs, self.outputs);
        // Each tile writes its own block (rows × columns) of `out`.
        let dst = Shared(out.as_mut_ptr());
        let tiles: Vec<(usize, usize)> = (0..x.rows).step_by(ROWS).flat_map(|r| (0..n).step_by(COLS).map(move |c| (r, c))).collect();
        tiles.into_par_iter().for_each(|(r0, c0)| {
            let (m, nb) = ((x.rows - r0).min(ROWS), (n - c0).min(COLS));
            WIDE.with(|w| {
                let mut w = w.borrow_mut();
                w.resize(nb * k, 0.0);
                self.kind.widen(&self.weight[c0 * k..(c0 + nb) * k], &mut w);
                // SAFETY: the tile reads rows r0..r0+m of x (inside `x.data`, asserted above)
                // and the widened block (nb × k, W's rows c0.. laid out as PyTorch's: column j of
                // Wᵀ is row j, stride k); it writes rows r0..r0+m, columns c0..c0+nb of `out`
                // (rows × n, checked above), a block no other tile touches.
                unsafe {
                    super::gemm_rows(
                        m,
                        nb,
                        k,
                        dst.ptr().wrapping_add(r0 * n + c0),
                        n,
                        accumulate,
                        x.data.as_ptr().add(r0 * x.stride),
                        x.stride,
                        w.as_ptr(),
                        1,
                        k,
                        1.0,
                    );
                    if let Some(b) = &self.bias {
                        for i in 0..m {
                            let row = std::slice::from_raw_parts_mut(dst.ptr().wrapping_add((r0 + i) * n + c0), nb);
                            row.iter_mut().zip(&b[c0..c0 + nb]).for_each(|(o, b)| *o += b);
                        }
                    }
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_linear_equals_the_definition_over_its_rounded_weights() {
        // Sizes that leave partial tiles on both axes.
        let (rows, inp, outp) = (300, 70, 200);
        let w: Vec<f32> = (0..outp * inp).map(|i| ((i * 7 % 23) as f32 - 11.0) * 0.013).collect();
        let b: Vec<f32> = (0..outp).map(|i| i as f32 * 0.1).collect();
        let stride = 90;
        let x: Vec<f32> = (0..rows * stride).map(|i| ((i * 13 % 17) as f32 - 8.0) * 0.05).collect();
        for kind in [Half::F16, Half::BF16] {
            let lin = HalfLinear::new(&w, outp, inp, Some(b.clone()), kind);
            let mut rounded = vec![0f32; w.len()];
            kind.widen(&kind.narrow(&w), &mut rounded);
            // The bf16 kernel rounds the activations too.
            #[cfg(target_arch = "x86_64")]
            let rounds = lin.packed.as_ref().is_some_and(|p| p.pairs());
            #[cfg(not(target_arch = "x86_64"))]
            let rounds = false;
            let x: Vec<f32> = if rounds { x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect() } else { x.clone() };
            for accumulate in [false, true] {
                let mut out = vec![1f32; rows * outp];
                lin.forward(Rows { data: &x, rows, cols: inp, stride }, &mut out, accumulate);
                for r in 0..rows {
                    for o in 0..outp {
                        let dot: f64 = (0..inp).map(|k| x[r * stride + k] as f64 * rounded[o * inp + k] as f64).sum();
                        let want = if accumulate { 1.0 } else { 0.0 } + b[o] as f64 + dot;
                        assert!((out[r * outp + o] as f64 - want).abs() < 1e-4, "{kind:?} ({r},{o})");
                    }
                }
            }
        }
    }
}
