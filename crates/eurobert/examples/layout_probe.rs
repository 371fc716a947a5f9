//! Few rows against f32 weights streamed from memory, in two layouts: strips of 64 outputs
//! (`inputs × 64` each, contiguous: what `half_gemm.rs` packs) and a plain row-major `inputs ×
//! outputs` matrix (Wᵀ, which the `gemm` crate could also read whole for many rows), each swept
//! in blocks of 64 inputs with the sums kept between blocks. A bert-base sentence's 48
//! projections (340 MB), the layouts alternated, median of the passes:
//! `cargo run --release -p eurobert --example layout_probe -- [threads] [rows] [passes]`.
mod common;

#[cfg(target_arch = "x86_64")]
mod probe {
    use std::arch::x86_64::*;
    use std::time::Instant;

    use super::common::{threads_and_pool, SHAPES_BERT};
    use rayon::prelude::*;

    /// Inputs per sweep block.
    const SWEEP: usize = 64;
    /// Inputs ahead of a block whose weights it fetches (64 rows of 256 bytes: 16 KB a strip).
    const AHEAD_ROWS: usize = 64;

    #[derive(Clone, Copy)]
    struct Ptr(*mut f32);
    // SAFETY: tasks write disjoint parts of the output (see the callers).
    unsafe impl Send for Ptr {}
    // SAFETY: as for Send.
    unsafe impl Sync for Ptr {}

    impl Ptr {
        /// The pointer (a method, so closures capture the whole `Ptr`, which is Send).
        fn get(self) -> *mut f32 {
            self.0
        }
    }

    /// `part[r][0..64] (+)= Σ_k x[r][k] · w[k][0..64]` over `ks`, for `R` rows; the weight row of
    /// input k at `w + k·ld`.
    ///
    /// # Safety
    /// AVX-512F; pointers valid for what the sizes say.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, F: Fn(usize) -> *const f32>(
        x: *const f32,
        ldx: usize,
        w: *const f32,
        ld: usize,
        ks: std::ops::Range<usize>,
        part: *mut f32,
        first: bool,
        pf: &F,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            if !first {
                for (r, a) in acc.iter_mut().enumerate() {
                    for (j, a) in a.iter_mut().enumerate() {
                        *a = _mm512_loadu_ps(part.add(r * 64 + j * 16));
                    }
                }
            }
            let k0 = ks.start;
            for k in ks {
                _mm_prefetch::<_MM_HINT_T1>(pf(k - k0).cast());
                let p = w.add(k * ld);
                let b = [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16)), _mm512_loadu_ps(p.add(32)), _mm512_loadu_ps(p.add(48))];
                for (r, a) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*x.add(r * ldx + k));
                    for j in 0..4 {
                        a[j] = _mm512_fmadd_ps(v, b[j], a[j]);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                for (j, a) in a.iter().enumerate() {
                    _mm512_storeu_ps(part.add(r * 64 + j * 16), *a);
                }
            }
        }
    }

    /// Every tile of `rows` over one strip's block `ks`; tile `i` fetches the lines `pf(i·steps + step)`.
    ///
    /// # Safety
    /// As [`tile`].
    #[allow(clippy::too_many_arguments)]
    unsafe fn tiles<F: Fn(usize) -> *const f32>(
        x: &[f32],
        rows: usize,
        ldx: usize,
        w: *const f32,
        ld: usize,
        ks: std::ops::Range<usize>,
        part: *mut f32,
        first: bool,
        pf: F,
    ) {
        let mut r = 0;
        let mut i = 0;
        let steps = ks.len();
        while r < rows {
            let n = (rows - r).min(6);
            let f = |s: usize| pf(i * steps + s);
            // SAFETY: rows r..r + n of x and of part (the caller's contract).
            unsafe {
                let (xp, pp) = (x.as_ptr().add(r * ldx), part.add(r * 64));
                match n {
                    6 => tile::<6, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                    5 => tile::<5, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                    4 => tile::<4, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                    3 => tile::<3, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                    2 => tile::<2, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                    _ => tile::<1, _>(xp, ldx, w, ld, ks.clone(), pp, first, &f),
                }
            }
            r += n;
            i += 1;
        }
    }

    /// The strips `ss` of one task swept in blocks of [`SWEEP`] inputs, each block over all of
    /// them, the sums kept in `part` between blocks and then stored into `out` (`rows × n`). Strip
    /// s's row of input kk (64 weights) is at `w[at(s) + kk·ld..]`; as the tiles run, they fetch
    /// (one line a step, spread over the tiles) the strip's rows [`AHEAD_ROWS`] on, inside `w`.
    #[allow(clippy::too_many_arguments)]
    fn sweep(
        x: &[f32],
        rows: usize,
        k: usize,
        w: &[f32],
        at: impl Fn(usize) -> usize,
        ld: usize,
        ss: std::ops::Range<usize>,
        out: Ptr,
        n: usize,
    ) {
        let mut part = vec![0f32; ss.len() * rows * 64];
        let (tiles_n, end) = (rows.div_ceil(6), w.as_ptr_range().end);
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + SWEEP).min(k);
            for s in ss.clone() {
                let base = w[at(s)..].as_ptr();
                let pf = |i: usize| {
                    // Step i of all the tiles' steps takes line i·4 / tiles of the 4 per row.
                    let l = i * 4 / tiles_n;
                    let p = base.wrapping_add((k0 + AHEAD_ROWS + l / 4) * ld + (l % 4) * 16);
                    if p < end {
                        p
                    } else {
                        base
                    }
                };
                // SAFETY: AVX-512 (asserted in main); rows k0..k1 of strip s, and its rows × 64 of
                // part.
                unsafe { tiles(x, rows, k, base, ld, k0..k1, part.as_mut_ptr().add((s - ss.start) * rows * 64), k0 == 0, pf) };
            }
            k0 = k1;
        }
        for s in ss.clone() {
            for r in 0..rows {
                // SAFETY: row r, columns of strip s of the rows × n output: this task's alone.
                unsafe {
                    std::ptr::copy_nonoverlapping(part.as_ptr().add(((s - ss.start) * rows + r) * 64), out.get().add(r * n + s * 64), 64)
                };
            }
        }
    }

    /// Strips: one task per strip, each `k × 64` and contiguous.
    fn strips(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        let o = Ptr(out.as_mut_ptr());
        (0..n / 64).into_par_iter().for_each(|s| sweep(x, rows, k, w, |s| s * k * 64, 64, s..s + 1, o, n));
    }

    /// Plain Wᵀ (`k × n`): `tasks` column ranges of it, each swept across all its strips.
    fn plain(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, out: &mut [f32], tasks: usize) {
        let (o, strips) = (Ptr(out.as_mut_ptr()), n / 64);
        (0..tasks).into_par_iter().for_each(|t| sweep(x, rows, k, w, |s| s * 64, n, strips * t / tasks..strips * (t + 1) / tasks, o, n));
    }

    pub fn main() {
        assert!(is_x86_feature_detected!("avx512f"), "AVX-512 only");
        let (threads, pool) = threads_and_pool();
        let rows: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(23);
        let passes: usize = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(15);
        // 12 layers of each shape, every matrix in both layouts (strips, then plain Wᵀ).
        let mats: Vec<(usize, usize, Vec<f32>, Vec<f32>)> = (0..12)
            .flat_map(|_| SHAPES_BERT)
            .map(|(_, n, k)| {
                let wt: Vec<f32> = (0..k * n).map(|i| ((i % 23) as f32 - 11.0) * 0.01).collect();
                let mut st = vec![0f32; k * n];
                for s in 0..n / 64 {
                    for kk in 0..k {
                        st[s * k * 64 + kk * 64..s * k * 64 + kk * 64 + 64].copy_from_slice(&wt[kk * n + s * 64..kk * n + s * 64 + 64]);
                    }
                }
                (n, k, st, wt)
            })
            .collect();
        let bytes: usize = mats.iter().map(|m| m.2.len() * 4).sum();
        let x: Vec<f32> = (0..rows * 3072).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
        let (mut a, mut b) = (vec![0f32; rows * 3072], vec![0f32; rows * 3072]);
        let variants: [(&str, usize); 3] = [("strips", 0), ("plain, 2 tasks", 2), ("plain, 4 tasks", 4)];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        pool.install(|| {
            for pass in 0..passes + 1 {
                for (v, &(_, tasks)) in variants.iter().enumerate() {
                    let t = Instant::now();
                    for (n, k, st, wt) in &mats {
                        if tasks == 0 {
                            strips(&x, rows, *k, st, *n, &mut a[..rows * n]);
                        } else {
                            plain(&x, rows, *k, wt, *n, &mut b[..rows * n], tasks);
                        }
                    }
                    if pass > 0 {
                        times[v].push(t.elapsed().as_secs_f64() * 1e3);
                    }
                }
                assert_eq!(a[..rows * 768], b[..rows * 768], "the layouts agree");
            }
        });
        println!("{rows} rows, {threads} threads, {} MB of weights a pass, median of {passes} passes:", bytes >> 20);
        for (v, (name, _)) in variants.iter().enumerate() {
            let t = &mut times[v];
            t.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let ms = t[t.len() / 2];
            println!("  {name:16} {ms:6.1} ms  {:5.1} GB/s", bytes as f64 / ms / 1e6);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    probe::main()
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("layout_probe: x86-64 with AVX-512 only");
}
