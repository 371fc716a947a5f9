//! The `gemm` crate on the 610m projections at 4,096 rows, a whole matrix (the crate's own
//! threading) against the tasks `linear.rs` gives it (`RB` rows, default 512, × one strip of
//! 64 outputs, weights in strips), best of 5 each:
//! `RB=512 cargo run --release -p eurobert --example strip_probe -- [threads]`.
mod common;

use common::{gflops, threads_and_pool, SHAPES_610M};
use rayon::prelude::*;

/// `c = a · b` on this thread, every operand by its strides.
///
/// # Safety
/// Every element the strides reach lies inside its buffer.
#[allow(clippy::too_many_arguments)]
unsafe fn g(
    m: usize,
    n: usize,
    k: usize,
    c: *mut f32,
    ldc: usize,
    a: *const f32,
    a_rs: isize,
    a_cs: isize,
    b: *const f32,
    b_rs: isize,
    b_cs: isize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(m, n, k, c, 1, ldc as isize, false, a, a_cs, a_rs, b, b_cs, b_rs, 0.0, 1.0, false, false, false, gemm::Parallelism::None)
    }
}

#[derive(Clone, Copy)]
struct P(*mut f32);
// SAFETY: each task writes its own rows × strip of `c`.
unsafe impl Send for P {}
// SAFETY: as above.
unsafe impl Sync for P {}

impl P {
    /// A method, so a closure captures the whole `Send` wrapper, not its field.
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

fn main() {
    let (threads, pool) = threads_and_pool();
    let rows_block: usize = std::env::var("RB").ok().and_then(|v| v.parse().ok()).unwrap_or(512);
    pool.install(|| {
        for (name, n, k) in SHAPES_610M {
            let w: Vec<f32> = (0..n * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            // strips [s][k][64]
            let mut strips = vec![0f32; n * k];
            for s in 0..n / 64 {
                for i in 0..k {
                    for j in 0..64 {
                        strips[s * k * 64 + i * 64 + j] = w[(s * 64 + j) * k + i];
                    }
                }
            }
            let m = 4096;
            let x: Vec<f32> = (0..m * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
            let mut c = vec![0f32; m * n];
            let flops = 2.0 * (m * n * k) as f64;
            let (mut a, mut b) = (0f64, 0f64);
            let blocks = m / rows_block;
            let count = n / 64;
            for _ in 0..5 {
                let cp = P(c.as_mut_ptr());
                a = a.max(gflops(flops, || common::gemm_crate(m, n, k, &mut c, &x, &w, 1, k, threads)));
                b = b.max(gflops(flops, || {
                    (0..blocks * count).into_par_iter().for_each(|t| {
                        let (bl, s) = (t / count, t % count);
                        let r0 = bl * rows_block;
                        // SAFETY: rows r0.. × strip s lie inside x, strips and c.
                        unsafe {
                            g(
                                rows_block,
                                64,
                                k,
                                cp.at(r0 * n + s * 64),
                                n,
                                x.as_ptr().add(r0 * k),
                                k as isize,
                                1,
                                strips.as_ptr().add(s * k * 64),
                                64,
                                1,
                            )
                        }
                    })
                }));
            }
            println!("{name:8} M {m}  whole {a:6.1}  strips {b:6.1}  strips÷whole {:.2}", b / a);
        }
    });
}
