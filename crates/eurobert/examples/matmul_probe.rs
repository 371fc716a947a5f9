//! Measures the machine's FP32 matrix-multiply peak with Candle's GEMM (the kernel our forward
//! pass uses): `cargo run --release -p eurobert --example matmul_probe -- [threads] [n]`.
use candle_core::{Device, Tensor};

fn main() -> candle_core::Result<()> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2048);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    let a = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), &Device::Cpu)?;
    let mut best = 0f64;
    pool.install(|| -> candle_core::Result<()> {
        a.matmul(&b)?; // warm-up
        for _ in 0..5 {
            let t = std::time::Instant::now();
            let c = a.matmul(&b)?;
            let secs = t.elapsed().as_secs_f64();
            drop(c);
            best = best.max(2.0 * (n as f64).powi(3) / secs / 1e9);
        }
        Ok(())
    })?;
    println!("{{\"threads\":{threads},\"n\":{n},\"gflops\":{best:.1}}}");
    Ok(())
}
