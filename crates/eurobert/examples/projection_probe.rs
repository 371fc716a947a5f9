//! GFLOP/s of the encoder's projections at EuroBERT-610m's shapes, rten-gemm (weights packed
//! once) against the `gemm` crate (weights read in place), rows M from one sentence to a
//! batch of long windows; interleaved, best of 7 each:
//! `cargo run --release -p eurobert --example projection_probe -- [threads]`.
mod common;

use common::{gemm_crate, gflops, threads_and_pool, SHAPES_610M};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB};
use rten_tensor::{Matrix, NdTensorView};

fn main() {
    let (threads, pool) = threads_and_pool();
    pool.install(|| {
        for (name, n, k) in SHAPES_610M {
            let w: Vec<f32> = (0..n * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            let exec = GemmExecutor::<f32, f32, f32>::default();
            let wt = NdTensorView::from_data_with_strides([k, n], w.as_slice(), [1, k]).unwrap();
            let packed = exec.prepack_b(wt);
            for m in [16usize, 64, 256, 1024, 4096] {
                let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
                let mut c = vec![0f32; m * n];
                let flops = 2.0 * (m * n * k) as f64;
                let (mut best_r, mut best_g) = (0f64, 0f64);
                for _ in 0..7 {
                    let a = Matrix::from_data([m, k], x.as_slice());
                    let rten = || exec.gemm(&mut c, GemmInputA::Unpacked(a), GemmInputB::Packed(&packed), Default::default()).unwrap();
                    best_r = best_r.max(gflops(flops, rten));
                    // Wᵀ (k×n) read in place: its rows 1 apart, its columns k apart.
                    best_g = best_g.max(gflops(flops, || gemm_crate(m, n, k, &mut c, &x, &w, 1, k, threads)));
                }
                println!("{name:8} M {m:5}  rten {best_r:6.1}  gemm {best_g:6.1}  gemm÷rten {:.2}", best_g / best_r);
            }
        }
    });
}
