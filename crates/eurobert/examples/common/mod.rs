//! What the GEMM probes share: timing one call, and the `gemm` crate's row-major product.
use std::time::Instant;

/// GFLOP/s of one call of `f` doing `flops` floating-point operations.
pub fn gflops(flops: f64, f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    flops / t.elapsed().as_secs_f64() / 1e9
}

/// `c (m×n, row-major) = a (m×k, row-major) · b`, where `b` (k×n) has its rows `b_row`
/// and its columns `b_col` elements apart, through the `gemm` crate on `threads` threads.
#[allow(clippy::too_many_arguments)]
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
