//! The int8 projections at EuroBERT-610m's shapes, rten-gemm (weights packed once, i32 out)
//! against our VNNI kernel (`src/cpu/vnni.rs`, f32 out with the dequantization fused): GOP/s
//! and the weight bytes streamed per second, rows M from one sentence to a long window;
//! weights from memory, best of 7 each:
//! `cargo run --release -p eurobert --example int8_probe -- [threads] [compact|bert]` (`compact`:
//! the bundled model's shapes, `bert`: BERT-base's).
#[cfg(target_arch = "x86_64")]
#[allow(dead_code)] // the bf16 kernel
#[path = "../src/cpu/amx.rs"]
mod amx;
#[allow(dead_code)] // the f32 probes' gemm-crate call
mod common;
#[cfg(target_arch = "x86_64")]
#[path = "../src/cpu/shared.rs"]
mod shared;
#[cfg(target_arch = "x86_64")]
#[allow(dead_code)] // the model's byte count
#[path = "../src/cpu/vnni.rs"]
mod vnni;
#[cfg(target_arch = "x86_64")]
use shared::Shared;
/// The kernel's epilogue may apply the crate's activations; the probe asks for none.
#[cfg(target_arch = "x86_64")]
mod simd {
    pub(crate) fn act_avx512(x: std::arch::x86_64::__m512, _which: u8) -> std::arch::x86_64::__m512 {
        x
    }
}

/// Elsewhere the kernel does not exist: the probe shows rten-gemm alone.
#[cfg(not(target_arch = "x86_64"))]
#[allow(dead_code)]
mod vnni {
    pub struct PackedW;
    impl PackedW {
        pub fn packed(_: &[i8], _: usize, _: usize, _: bool) -> Self {
            PackedW
        }
    }
    pub struct Epilogue<'a> {
        pub row_scale: &'a [f32],
        pub col_scale: &'a [f32],
        pub bias: Option<&'a [f32]>,
        pub accumulate: bool,
        pub act: Option<u8>,
    }
    pub fn available() -> bool {
        false
    }
    pub fn gemm(_: &[u8], _: usize, _: &PackedW, _: &mut [f32], _: &Epilogue) {}
}
#[cfg(not(target_arch = "x86_64"))]
mod amx {
    pub fn rows_read(rows: usize) -> usize {
        rows
    }
    pub fn available() -> bool {
        false
    }
    pub fn gemm(_: &[u8], _: usize, _: &super::vnni::PackedW, _: &mut [f32], _: &super::vnni::Epilogue) {}
}

use common::{gflops, threads_and_pool, SHAPES_610M, SHAPES_BERT, SHAPES_COMPACT};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB, GemmUninitOptions, QuantParams};
use rten_tensor::{Matrix, NdTensorView};

fn main() {
    let (_, pool) = threads_and_pool();
    pool.install(|| {
        let shapes = match std::env::args().nth(2).as_deref() {
            Some("compact") => SHAPES_COMPACT,
            Some("bert") => SHAPES_BERT,
            _ => SHAPES_610M,
        };
        for (name, n, k) in shapes {
            let w: Vec<i8> = (0..n * k).map(|i| ((i * 7919) % 255) as i8).collect();
            let exec = GemmExecutor::<u8, i8, i32>::default();
            let wt = NdTensorView::from_data_with_strides([k, n], w.as_slice(), [1, k]).unwrap();
            // Copies filling 96 MB, used in turn: the weights come from memory, as in a model.
            let copies: Vec<_> = (0..(96 << 20) / (n * k) + 1).map(|_| exec.prepack_b(wt.view())).collect();
            let bz = vec![0i8; n];
            let ours: Vec<_> = (0..copies.len()).map(|_| vnni::PackedW::packed(&w, n, k, false)).collect();
            let tiles: Vec<_> = if amx::available() {
                (0..copies.len()).map(|_| vnni::PackedW::packed(&w, n, k, true)).collect()
            } else {
                Vec::new()
            };
            let col_scale = vec![1e-3f32; n];
            for m in [1usize, 8, 20, 64, 512, 900, 3072] {
                // Rows to whole AMX tiles (the AMX kernel reads them; k is a multiple of 64 here).
                let x: Vec<u8> = (0..amx::rows_read(m) * k).map(|i| (i % 251) as u8).collect();
                let az = vec![128u8; m];
                let mut c = vec![std::mem::MaybeUninit::new(0i32); m * n];
                let ops = 2.0 * (m * n * k) as f64;
                let mut best = 0f64;
                let mut best_v = 0f64;
                let mut best_a = 0f64;
                let row_scale = vec![1e-2f32; m];
                let mut out = vec![0f32; m * n];
                for rep in 0..7 {
                    let packed = &copies[rep % copies.len()];
                    let a = Matrix::from_data([m, k], &x[..m * k]);
                    let opts = GemmUninitOptions {
                        a_quant: Some(QuantParams { zero_point: &az }),
                        b_quant: Some(QuantParams { zero_point: &bz }),
                        ..Default::default()
                    };
                    best = best.max(gflops(ops, || {
                        exec.gemm_uninit(&mut c, GemmInputA::Unpacked(a), GemmInputB::Packed(packed), opts).unwrap();
                    }));
                    if vnni::available() {
                        let e = vnni::Epilogue { row_scale: &row_scale, col_scale: &col_scale, bias: None, accumulate: false, act: None };
                        let w = &ours[(rep + 3) % ours.len()];
                        best_v = best_v.max(gflops(ops, || vnni::gemm(&x[..m * k], m, w, &mut out, &e)));
                        if let Some(w) = tiles.get((rep + 5) % tiles.len().max(1)) {
                            best_a = best_a.max(gflops(ops, || amx::gemm(&x, m, w, &mut out, &e)));
                        }
                    }
                }
                let gbs = best * 1e9 / ops * (n * k) as f64 / 1e9;
                let gbs_v = best_v * 1e9 / ops * (n * k) as f64 / 1e9;
                println!(
                    "{name:8} M {m:4}  rten {best:7.1} GOP/s {gbs:5.1} GB/s   ours {best_v:7.1} GOP/s {gbs_v:5.1} GB/s  ours÷rten {:.2}   amx {best_a:7.1} GOP/s",
                    best_v / best
                );
            }
        }
    });
}
