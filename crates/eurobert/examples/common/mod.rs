//! What the GEMM probes share: their thread pool, the 610m projection shapes, timing one
//! call, and the `gemm` crate's row-major product.
use std::time::Instant;

/// (name, outputs N, inputs K): qkv, o, gate_up, down of the 610m shape.
#[allow(dead_code)] // matmul_probe's square matrices need none
pub const SHAPES_610M: [(&str, usize, usize); 4] =
    [("qkv", 1920, 1152), ("out", 1152, 1152), ("gate_up", 8192, 1152), ("down", 1152, 4096)];

/// BERT-base's projections (12 layers, 768 wide, 3,072 intermediate; GELU, so no gate).
#[allow(dead_code)] // int8_probe's alone
pub const SHAPES_BERT: [(&str, usize, usize); 4] = [("qkv", 2304, 768), ("out", 768, 768), ("inter", 3072, 768), ("down", 768, 3072)];

/// The bundled compact model's projections (4 layers, 256 wide, 8/4 heads, 768 intermediate).
#[allow(dead_code)] // int8_probe's alone
pub const SHAPES_COMPACT: [(&str, usize, usize); 4] = [("qkv", 512, 256), ("out", 256, 256), ("gate_up", 1536, 256), ("down", 256, 768)];

/// The thread count from the first argument (default 2) and a pool of that many threads.
pub fn threads_and_pool() -> (usize, rayon::ThreadPool) {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    (threads, rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool"))
}

/// GFLOP/s of one call of `f` doing `flops` floating-point operations.
#[allow(dead_code)] // layout_probe times whole passes
pub fn gflops(flops: f64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    flops / t.elapsed().as_secs_f64() / 1e9
}

/// `c (m×n, row-major) = a (m×k, row-major) · b`, where `b` (k×n) has its rows `b_row`
/// and its columns `b_col` elements apart, through the `gemm` crate on `threads` threads.
#[allow(clippy::too_many_arguments)]
#[allow(dead_code)] // layout_probe runs its own kernels
pub fn gemm_crate(m: usize, n: usize, k: usize, c: &mut [f32], a: &[f32], b: &[f32], b_row: usize, b_col: usize, threads: usize) {
    assert!(c.len() >= m * n && a.len() >= m * k && b.len() > (k - 1) * b_row + (n - 1) * b_col, "matrix sizes");
    // SAFETY: the assertion keeps every element the strides reach inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_col as isize,
            b_row as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(threads),
        )
    }
}
