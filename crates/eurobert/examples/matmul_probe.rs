//! Measures the machine's FP32 matrix-multiply peak: the best of a square matmul through the
//! `gemm` crate (AVX-512 kernels on) and through rten-gemm with a prepacked B (the kernel of
//! our projections): `cargo run --release -p eurobert --example matmul_probe -- [threads] [n]`.
mod common;

use common::{gemm_crate, gflops, threads_and_pool};
use rten_gemm::{GemmExecutor, GemmInputA, GemmInputB};
use rten_tensor::Matrix;

fn best_of<F: FnMut()>(mut f: F, flops: f64) -> f64 {
    f(); // warm-up
    (0..5).map(|_| gflops(flops, &mut f)).fold(0.0, f64::max)
}

fn main() {
    let (threads, pool) = threads_and_pool();
    let n: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut c = vec![0f32; n * n];
    let flops = 2.0 * (n as f64).powi(3);
    let (g, r) = pool.install(|| {
        let g = best_of(|| gemm_crate(n, n, n, &mut c, &a, &b, n, 1, threads), flops);
        let exec = GemmExecutor::<f32, f32, f32>::default();
        let packed = exec.prepack_b(Matrix::from_data([n, n], b.as_slice()));
        let am = Matrix::from_data([n, n], a.as_slice());
        let r = best_of(|| exec.gemm(&mut c, GemmInputA::Unpacked(am), GemmInputB::Packed(&packed), Default::default()).unwrap(), flops);
        (g, r)
    });
    println!("{{\"threads\":{threads},\"n\":{n},\"gflops\":{:.1},\"gemmGflops\":{g:.1},\"rtenGflops\":{r:.1}}}", g.max(r));
}
