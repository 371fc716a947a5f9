//! The `gemm` crate's product for row-major matrices on the calling thread: what every f32
//! product outside our own kernels calls (attention without bf16, DeBERTa's relative scores,
//! f16/bf16 weights widened where our kernel does not run, f32 strips from many rows on).

/// `c (+)= scale · a·b` through the `gemm` crate, on this thread: `c` is `m × n` with rows
/// `ldc` apart, `a` is `m × k` with rows `lda` apart, and element `(i, j)` of `b` (`k × n`) is
/// at `b + i·b_row + j·b_col`. With `accumulate` the product is added to `c`, else `c` is
/// overwritten.
///
/// # Safety
/// Every element the sizes and strides name lies inside the allocations `a`, `b` and `c`
/// point into, and `c` does not alias `a` or `b` (nor is it written by anyone else meanwhile).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_rows(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
    a: *const f32,
    lda: usize,
    b: *const f32,
    b_row: usize,
    b_col: usize,
    scale: f32,
) {
    // SAFETY: the caller's contract; the crate reads `c` only with `accumulate` (`alpha`
    // scales it then, and is otherwise ignored).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a,
            1,
            lda as isize,
            b,
            b_col as isize,
            b_row as isize,
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
