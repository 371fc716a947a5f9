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

    /// Inputs per sweep block, and how far ahead (in blocks) the weights are fetched.
    const SWEEP: usize = 64;
    /// Inputs ahead of the plain sweep's block that it fetches (64 rows of 256 bytes = 16 KB a strip).
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

    /// Strips: one task per strip, swept in blocks, its next 16 KB fetched ahead (contiguous).
    fn strips(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, out: &mut [f32]) {
        let o = Ptr(out.as_mut_ptr());
        (0..n / 64).into_par_iter().for_each(|s| {
            let mut part = vec![0f32; rows * 64];
            // SAFETY: strip s of n / 64, each k × 64.
            let base = unsafe { w.as_ptr().add(s * k * 64) };
            let end = w.as_ptr_range().end;
            let mut k0 = 0;
            while k0 < k {
                let k1 = (k0 + SWEEP).min(k);
                // 16 KB ahead: this block's 64 steps of 256 bytes, 4 lines each, spread over the tiles.
                let lines = (k1 - k0) * 4;
                let tiles_n = rows.div_ceil(6);
                let pf = |i: usize| {
                    // Tile t's step s fetches lines t·L/T .. spread: map i to a line index.
                    let l = i * lines / (tiles_n * (k1 - k0));
                    let p = base.wrapping_add(k0 * 64 + 4096 + l * 16);
                    if p < end {
                        p
                    } else {
                        base
                    }
                };
                // SAFETY: AVX-512 (asserted in main); the strip's rows k0..k1, rows × 64 of part.
                unsafe { tiles(x, rows, k, base, 64, k0..k1, part.as_mut_ptr(), k0 == 0, pf) };
                k0 = k1;
            }
            for r in 0..rows {
                // SAFETY: row r, columns of strip s of the rows × n output: this task's alone.
                unsafe { std::ptr::copy_nonoverlapping(part.as_ptr().add(r * 64), o.get().add(r * n + s * 64), 64) };
            }
        });
    }

    /// Plain Wᵀ (`k × n`): `tasks` column ranges, each swept in blocks of inputs across all its
    /// strips, the rows [`AHEAD_ROWS`] on fetched as it goes.
    fn plain(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, out: &mut [f32], tasks: usize) {
        let o = Ptr(out.as_mut_ptr());
        let strips = n / 64;
        (0..tasks).into_par_iter().for_each(|t| {
            let (s0, s1) = (strips * t / tasks, strips * (t + 1) / tasks);
            let mut part = vec![0f32; (s1 - s0) * rows * 64];
            let end = w.as_ptr_range().end;
            let mut k0 = 0;
            while k0 < k {
                let k1 = (k0 + SWEEP).min(k);
                let tiles_n = rows.div_ceil(6);
                for s in s0..s1 {
                    // The rows `ahead` steps on, this strip's 256 bytes of each, spread over the tiles.
                    let steps = k1 - k0;
                    let pf = |i: usize| {
                        let l = i * steps * 4 / (tiles_n * steps);
                        let p = w.as_ptr().wrapping_add((k0 + AHEAD_ROWS + l / 4) * n + s * 64 + (l % 4) * 16);
                        if p < end {
                            p
                        } else {
                            w.as_ptr()
                        }
                    };
                    // SAFETY: AVX-512 (asserted in main); columns of strip s of rows k0..k1 of Wᵀ,
                    // and this strip's rows × 64 of part.
                    unsafe {
                        tiles(x, rows, k, w.as_ptr().add(s * 64), n, k0..k1, part.as_mut_ptr().add((s - s0) * rows * 64), k0 == 0, pf)
                    };
                }
                k0 = k1;
            }
            for s in s0..s1 {
                for r in 0..rows {
                    // SAFETY: row r, columns of strip s of the rows × n output: this task's alone.
                    unsafe {
                        std::ptr::copy_nonoverlapping(part.as_ptr().add(((s - s0) * rows + r) * 64), o.get().add(r * n + s * 64), 64)
                    };
                }
            }
        });
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
