//! Element-wise kernels of the CPU encoder, written as plain loops that LLVM vectorizes, each
//! compiled three times (AVX-512, AVX2+FMA, baseline) and picked once per process by CPUID,
//! so one x86-64 binary runs the widest code every CPU allows.
//!
//! Reductions keep 16 independent partial sums: without fast-math LLVM will not reorder a
//! single float accumulator, and 16 lanes fill one AVX-512 or two AVX2 registers.

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Baseline = 1,
    Avx2 = 2,
    Avx512 = 3,
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn level() -> Level {
    use std::sync::atomic::{AtomicU8, Ordering};
    static LEVEL: AtomicU8 = AtomicU8::new(0);
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Baseline,
        2 => Level::Avx2,
        3 => Level::Avx512,
        _ => {
            let l = if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("fma")
            {
                Level::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Level::Avx2
            } else {
                Level::Baseline
            };
            LEVEL.store(l as u8, Ordering::Relaxed);
            l
        }
    }
}

/// Names of the kernels this process runs: the level of our element-wise kernels, and the
/// f32 and int8 GEMM kernels rten-gemm picked (both follow CPUID, so an emulated CPU such as
/// `qemu-x86_64 -cpu Haswell` selects them all).
pub(crate) fn kernels() -> [(&'static str, String); 4] {
    #[cfg(target_arch = "x86_64")]
    let ours = match level() {
        Level::Avx512 => "avx512",
        Level::Avx2 => "avx2+fma",
        Level::Baseline => "baseline",
    };
    // WebAssembly's loops are portable Rust compiled with SIMD128 on (.cargo/config.toml).
    #[cfg(not(target_arch = "x86_64"))]
    let ours = if cfg!(target_arch = "aarch64") {
        "neon"
    } else if cfg!(all(target_family = "wasm", target_feature = "relaxed-simd")) {
        // The relaxed-SIMD build: rten-gemm's kernels use its fused multiply-add.
        "simd128+relaxed"
    } else if cfg!(all(target_family = "wasm", target_feature = "simd128")) {
        "simd128"
    } else {
        "baseline"
    };
    [
        ("elementwise", ours.to_string()),
        ("gemm_f32", super::linear::kernel_name()),
        ("gemm_int8", super::qlinear::kernel_name()),
        ("gemm_bf16", super::half_linear::bf16_kernel_name()),
    ]
}

/// Defines a function whose body is compiled for each SIMD level and dispatched at run time.
macro_rules! simd_fn {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { imp($($arg),*) }
                match $crate::cpu::simd::level() {
                    // SAFETY: the CPU has every feature the function was compiled for.
                    $crate::cpu::simd::Level::Avx512 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above, for the AVX2 + FMA build.
                    $crate::cpu::simd::Level::Avx2 => return unsafe { v3($($arg),*) },
                    $crate::cpu::simd::Level::Baseline => {}
                }
            }
            imp($($arg),*)
        }
    };
}

pub(crate) use simd_fn;

const LANES: usize = 16;

/// `e^x` for f32, within 2 ulp on the range softmax and SiLU use (Cephes' `expf` polynomial
/// with Cody-Waite range reduction); branch-free so it vectorizes. Inputs are clamped to
/// [-87.3, 88.3]: below, the result is ~1e-38 instead of 0, which no sum here can see.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n from the bits of (n + 127) + 2^23, whose low mantissa bits hold n + 127 in [1, 254]:
    // integer work on the bits vectorizes, where `n as i32` (saturating) does not.
    let biased = (n + 127.0 + 8_388_608.0).to_bits().wrapping_sub(0x4B00_0000);
    y * f32::from_bits(biased << 23)
}

#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i] * c[i];
        }
    }
    let mut s = tail.iter().map(|v| v * v).sum::<f32>();
    for a in acc {
        s += a;
    }
    s
}

simd_fn! {
    /// RMSNorm of each `width`-wide row of `x` into `out`, as transformers computes it in f32:
    /// `w * (x / sqrt(mean(x²) + eps))`.
    pub(crate) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
        let width = w.len();
        for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let inv = 1.0 / (sum_squares(row) / width as f32 + eps).sqrt();
            for ((o, &v), &g) in o.iter_mut().zip(row).zip(w) {
                *o = g * (v * inv);
            }
        }
    }
}

/// In each row, the first half (`gate`) becomes `silu(gate) * up`, `up` being the second half.
pub(crate) fn silu_mul(rows: &mut [f32], width: usize) {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { glu_avx512(rows, width, 0) };
    }
    silu_mul_plain(rows, width)
}

simd_fn! {
    /// `silu_mul` as plain loops.
    fn silu_mul_plain(rows: &mut [f32], width: usize) {
        for row in rows.chunks_exact_mut(2 * width) {
            let (gate, up) = row.split_at_mut(width);
            for (g, &u) in gate.iter_mut().zip(up.iter()) {
                *g = *g / (1.0 + exp(-*g)) * u;
            }
        }
    }
}

/// In each row, the first half `a` becomes `gelu(a) * b`, `b` being the second half (GeGLU);
/// `tanh` picks the tanh approximation over the exact erf form.
pub(crate) fn gelu_mul(rows: &mut [f32], width: usize, tanh: bool) {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { glu_avx512(rows, width, if tanh { 2 } else { 1 }) };
    }
    gelu_mul_plain(rows, width, tanh)
}

simd_fn! {
    /// `gelu_mul` as plain loops.
    fn gelu_mul_plain(rows: &mut [f32], width: usize, tanh: bool) {
        for row in rows.chunks_exact_mut(2 * width) {
            let (a, b) = row.split_at_mut(width);
            if tanh {
                for (x, &y) in a.iter_mut().zip(b.iter()) {
                    *x = gelu_tanh(*x) * y;
                }
            } else {
                for (x, &y) in a.iter_mut().zip(b.iter()) {
                    *x = gelu_erf(*x) * y;
                }
            }
        }
    }
}

/// `activate`'s code of GELU (erf) to `dtype: 'q8'`'s precision: [`gelu_q8`].
pub(crate) const GELU_Q8: u8 = 3;

/// The odd polynomial `erf(a) ≈ a·P(a²)` on `[0, 3]`, P of degree 8 (a weighted least-squares
/// fit, near minimax: `tools/fit_erf_poly.py`).
const ERF_POLY: [f32; 9] = [
    1.128_268_5,
    -0.375_314_87,
    0.111_079_33,
    -0.025_102_856,
    0.004_235_425,
    -0.000_511_036_25,
    4.106_044_4e-5,
    -1.944_817e-6,
    4.074_194e-8,
];

/// GELU (erf) within 2.5e-5 of erf (4.8e-5 of GELU at |x| ≈ 4, 1.2e-5·max(1, |x|) everywhere),
/// for `dtype: 'q8'`, whose next step rounds these outputs to 8 bits of their row's largest: a
/// polynomial and no exponential or division, 16 vector operations where the exact form takes
/// 37, and a BERT-shaped q8 pass spent 7% of its time in that form.
#[inline(always)]
fn gelu_q8(x: f32) -> f32 {
    let a = (x * std::f32::consts::FRAC_1_SQRT_2).abs().min(3.0);
    let s = a * a;
    let p = ERF_POLY[..8].iter().rev().fold(ERF_POLY[8], |p, &k| p * s + k);
    let e = (a * p).min(1.0).copysign(x);
    let h = 0.5 * x;
    h * e + h
}

/// An activation in place: `0` SiLU, `1` GELU (erf), `2` GELU (tanh), [`GELU_Q8`].
pub(crate) fn activate(x: &mut [f32], which: u8) {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { activate_avx512(x, which) };
    }
    activate_plain(x, which)
}

simd_fn! {
    /// `activate` as plain loops.
    fn activate_plain(x: &mut [f32], which: u8) {
        match which {
            0 => x.iter_mut().for_each(|v| *v = *v / (1.0 + exp(-*v))),
            1 => x.iter_mut().for_each(|v| *v = gelu_erf(*v)),
            GELU_Q8 => x.iter_mut().for_each(|v| *v = gelu_q8(*v)),
            _ => x.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
        }
    }
}

simd_fn! {
    /// LayerNorm of each `width`-wide row of `x` into `out`, as PyTorch computes it in f32:
    /// `w * (x - mean) / sqrt(var + eps) + b`, with the biased variance.
    pub(crate) fn layer_norm(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32, out: &mut [f32]) {
        let width = w.len();
        for (row, o) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
            let mean = sum(row) / width as f32;
            let mut acc = [0f32; LANES];
            let chunks = row.chunks_exact(LANES);
            let mut var = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum::<f32>();
            for c in chunks {
                for i in 0..LANES {
                    acc[i] += (c[i] - mean) * (c[i] - mean);
                }
            }
            for a in acc {
                var += a;
            }
            let inv = 1.0 / (var / width as f32 + eps).sqrt();
            match b {
                Some(b) => {
                    for (((o, &v), &g), &s) in o.iter_mut().zip(row).zip(w).zip(b) {
                        *o = (v - mean) * inv * g + s;
                    }
                }
                None => {
                    for ((o, &v), &g) in o.iter_mut().zip(row).zip(w) {
                        *o = (v - mean) * inv * g;
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let mut s = chunks.remainder().iter().sum::<f32>();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    for a in acc {
        s += a;
    }
    s
}

/// `erf(x)` within ~1.2e-7 of the exact value (Numerical Recipes' `erfc` Chebyshev fit, with
/// our `exp`); branch-free so it vectorizes.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut p = 0.170_872_77f32;
    p = p * t - 0.822_152_23;
    p = p * t + 1.488_515_9;
    p = p * t - 1.135_204;
    p = p * t + 0.278_868_07;
    p = p * t - 0.186_288_06;
    p = p * t + 0.096_784_18;
    p = p * t + 0.374_091_96;
    p = p * t + 1.000_023_7;
    p = p * t - 1.265_512_2;
    let erfc = t * exp(p - z * z);
    (1.0 - erfc).copysign(x)
}

/// GELU, exact form: `0.5 x (1 + erf(x / √2))` (PyTorch's `gelu`).
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU, tanh approximation (PyTorch's `gelu(approximate='tanh')`, transformers' `gelu_new`).
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const K: f32 = 0.797_884_6; // √(2/π)
    let y = K * (x + 0.044_715 * x * x * x);
    // tanh(y) = 1 - 2 / (e^{2y} + 1), with exp clamped (so ±1 at the ends).
    let t = 1.0 - 2.0 / (exp(2.0 * y) + 1.0);
    0.5 * x * (1.0 + t)
}

simd_fn! {
    /// Rotary embedding in place (transformers' `rotate_half` form) on `heads` consecutive
    /// heads of `x`; `cos`/`sin` hold the half-width table row of this position.
    pub(crate) fn rope(x: &mut [f32], heads: usize, cos: &[f32], sin: &[f32]) {
        let half = cos.len();
        for head in x.chunks_exact_mut(2 * half).take(heads) {
            let (a, b) = head.split_at_mut(half);
            for i in 0..half {
                let (x1, x2) = (a[i], b[i]);
                a[i] = x1 * cos[i] - x2 * sin[i];
                b[i] = x2 * cos[i] + x1 * sin[i];
            }
        }
    }
}

/// One online-softmax step over a row of scores: with `max` the new running maximum, replaces
/// each score `s` by `e^(s - max)` and returns their sum.
pub(crate) fn exp_shifted(s: &mut [f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { exp_shifted_avx512(s, max) };
    }
    exp_shifted_plain(s, max)
}

simd_fn! {
    /// `exp_shifted` as plain loops (AVX2, baseline, other architectures).
    fn exp_shifted_plain(s: &mut [f32], max: f32) -> f32 {
        exp_shifted_sum(s, max)
    }
}

/// [`exp_shifted`] in base 2: replaces each score `s` (already in log₂ units, the scale times
/// log₂ e folded into the product that made it) by `2^(s - max)` and returns their sum. Fewer
/// instructions than `e^x` (no Cody–Waite reduction: the shift is exact and the power of two
/// splits off whole), for attention's softmax.
pub(crate) fn exp2_shifted(s: &mut [f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { exp2_shifted_avx512(s, max) };
    }
    exp2_shifted_plain(s, max)
}

simd_fn! {
    /// `exp2_shifted` as plain loops (AVX2, baseline, other architectures).
    fn exp2_shifted_plain(s: &mut [f32], max: f32) -> f32 {
        let mut sum = 0f32;
        for v in s.iter_mut() {
            *v = exp((*v - max) * std::f32::consts::LN_2);
            sum += *v;
        }
        sum
    }
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp2_shifted_avx512(s: &mut [f32], max: f32) -> f32 {
    // SAFETY: the caller's contract.
    unsafe { shifted_avx512::<true>(s, max) }
}

/// `2^x` for `x ≤ 0` on 16 lanes (Cephes' `exp2f` polynomial on [−½, ½], within 2 ulp; −∞
/// gives 2⁻¹²⁷, as `exp`'s clamp gives ~e⁻⁸⁷; NaN stays NaN).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn exp2_nonpositive(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    // min/max return their second operand when one is NaN: x second keeps NaN.
    let x = _mm512_max_ps(c(-127.0), x);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(x);
    let f = _mm512_sub_ps(x, n);
    let mut q = c(1.535_336_2e-4);
    for k in [1.339_887_4e-3, 9.618_437e-3, 5.550_332_5e-2, 0.240_226_48, std::f32::consts::LN_2] {
        q = _mm512_fmadd_ps(q, f, c(k));
    }
    _mm512_scalef_ps(_mm512_fmadd_ps(q, f, c(1.0)), n)
}

/// The lanes of the 16 elements from `i` that lie before `n` (all 16 away from the end).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn tail_mask(i: usize, n: usize) -> u16 {
    if i + 16 <= n {
        0xffff
    } else {
        ((1u32 << n.saturating_sub(i)) - 1) as u16
    }
}

/// `exp_shifted` in AVX-512: `exp`'s polynomial with fused multiply-adds, 2ⁿ by `vscalefps`,
/// and the row's tail under a mask instead of one scalar `exp` per element. Softmax is a
/// quarter of short-sequence attention (`short_attention.rs`) and its rows are short there
/// (20–100 keys), so the tail mattered.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn exp_shifted_avx512(s: &mut [f32], max: f32) -> f32 {
    // SAFETY: the caller's contract.
    unsafe { shifted_avx512::<false>(s, max) }
}

/// The loop of [`exp_shifted_avx512`] (`BASE2` false: `e^(s − max)`) and
/// [`exp2_shifted_avx512`] (true: `2^(s − max)`): each score replaced, their sum returned.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn shifted_avx512<const BASE2: bool>(s: &mut [f32], max: f32) -> f32 {
    use std::arch::x86_64::*;
    let (n, p) = (s.len(), s.as_mut_ptr());
    let m = _mm512_set1_ps(max);
    let f = |x: __m512| if BASE2 { exp2_nonpositive(x) } else { exp_capped(x) };
    // Four vectors a step, each its own chain and sum: one vector at a time left the long
    // polynomial's latency exposed (a fifth of blocked attention's time, 610m heads).
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i + 64 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            // SAFETY: elements i + 16j .. i + 16j + 16 lie before n.
            unsafe {
                let y = f(_mm512_sub_ps(_mm512_loadu_ps(p.add(i + 16 * j)), m));
                _mm512_storeu_ps(p.add(i + 16 * j), y);
                *acc = _mm512_add_ps(*acc, y);
            }
        }
        i += 64;
    }
    while i < n {
        let mask = tail_mask(i, n);
        // SAFETY: lanes under `mask` are elements i..min(i + 16, n) of `s`.
        unsafe {
            let y = f(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p.add(i)), m));
            _mm512_mask_storeu_ps(p.add(i), mask, y);
            acc[0] = _mm512_mask_add_ps(acc[0], mask, acc[0], y);
        }
        i += 16;
    }
    _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])))
}

/// [`exp_avx512`] for `x ≤ 88.3` (every score minus its row's maximum), whose input it is
/// after the upper clamp.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn exp_capped(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    // min/max return their second operand when one is NaN: x second keeps NaN.
    let x = _mm512_max_ps(c(-87.3), x);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(x, c(std::f32::consts::LOG2_E)));
    let r = _mm512_fnmadd_ps(n, c(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, c(-2.121_944_4e-4), r);
    let mut q = c(1.987_569_1e-4);
    for k in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5] {
        q = _mm512_fmadd_ps(q, r, c(k));
    }
    let y = _mm512_add_ps(_mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r), c(1.0));
    _mm512_scalef_ps(y, n)
}

/// `exp` (above) on 16 lanes; NaN stays NaN.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn exp_avx512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    // min returns its second operand when one is NaN: x second keeps NaN.
    exp_capped(_mm512_min_ps(_mm512_set1_ps(88.3), x))
}

/// The activations in AVX-512, the same formulas as `silu`, `gelu_erf` and `gelu_tanh` above
/// with fused multiply-adds and `exp_avx512`: plain loops left them unfused (a multiply and an
/// add per polynomial term), and GELU took 7% of a q8 bert-base pass.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn act_avx512(x: std::arch::x86_64::__m512, which: u8) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let c = _mm512_set1_ps;
    match which {
        0 => _mm512_div_ps(x, _mm512_add_ps(c(1.0), exp_avx512(_mm512_sub_ps(c(0.0), x)))),
        1 => {
            let u = _mm512_mul_ps(x, c(std::f32::consts::FRAC_1_SQRT_2));
            let z = _mm512_abs_ps(u);
            let t = _mm512_div_ps(c(1.0), _mm512_fmadd_ps(c(0.5), z, c(1.0)));
            let mut p = c(0.170_872_77);
            for k in
                [-0.822_152_23, 1.488_515_9, -1.135_204, 0.278_868_07, -0.186_288_06, 0.096_784_18, 0.374_091_96, 1.000_023_7, -1.265_512_2]
            {
                p = _mm512_fmadd_ps(p, t, c(k));
            }
            let erfc = _mm512_mul_ps(t, exp_avx512(_mm512_fnmadd_ps(z, z, p)));
            // erf = copysign(1 - erfc, u): the sign bit of u onto 1 - erfc (which is ≥ 0).
            let sign = _mm512_and_si512(_mm512_castps_si512(u), _mm512_set1_epi32(i32::MIN));
            let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(_mm512_sub_ps(c(1.0), erfc)), sign));
            _mm512_mul_ps(_mm512_mul_ps(c(0.5), x), _mm512_add_ps(c(1.0), erf))
        }
        GELU_Q8 => {
            // `gelu_q8`, step for step.
            let u = _mm512_mul_ps(x, c(std::f32::consts::FRAC_1_SQRT_2));
            let a = _mm512_min_ps(_mm512_abs_ps(u), c(3.0));
            let s = _mm512_mul_ps(a, a);
            let mut p = c(ERF_POLY[8]);
            for k in ERF_POLY[..8].iter().rev() {
                p = _mm512_fmadd_ps(p, s, c(*k));
            }
            let e = _mm512_min_ps(_mm512_mul_ps(a, p), c(1.0));
            let sign = _mm512_and_si512(_mm512_castps_si512(u), _mm512_set1_epi32(i32::MIN));
            let e = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), sign));
            let h = _mm512_mul_ps(c(0.5), x);
            _mm512_fmadd_ps(h, e, h)
        }
        _ => {
            let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
            let y = _mm512_mul_ps(c(0.797_884_6), _mm512_fmadd_ps(c(0.044_715), x3, x));
            let t = _mm512_sub_ps(c(1.0), _mm512_div_ps(c(2.0), _mm512_add_ps(exp_avx512(_mm512_mul_ps(c(2.0), y)), c(1.0))));
            _mm512_mul_ps(_mm512_mul_ps(c(0.5), x), _mm512_add_ps(c(1.0), t))
        }
    }
}

/// `activate` in AVX-512, the tail under a mask.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn activate_avx512(x: &mut [f32], which: u8) {
    use std::arch::x86_64::*;
    let (n, p) = (x.len(), x.as_mut_ptr());
    let mut i = 0;
    while i < n {
        let mask = tail_mask(i, n);
        // SAFETY: lanes under `mask` are elements i..min(i + 16, n) of `x`.
        unsafe { _mm512_mask_storeu_ps(p.add(i), mask, act_avx512(_mm512_maskz_loadu_ps(mask, p.add(i)), which)) };
        i += 16;
    }
}

/// `silu_mul` (`which` 0) and `gelu_mul` (1 erf, 2 tanh) in AVX-512: in each `2·width` row,
/// `a = act(a) * b`.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn glu_avx512(rows: &mut [f32], width: usize, which: u8) {
    use std::arch::x86_64::*;
    for row in rows.chunks_exact_mut(2 * width) {
        let p = row.as_mut_ptr();
        let mut i = 0;
        while i < width {
            let mask = tail_mask(i, width);
            // SAFETY: lanes under `mask` are elements i..min(i + 16, width) of the row's first
            // half and the same of its second half (`width + i..`), both inside the row.
            unsafe {
                let a = act_avx512(_mm512_maskz_loadu_ps(mask, p.add(i)), which);
                let b = _mm512_maskz_loadu_ps(mask, p.add(width + i));
                _mm512_mask_storeu_ps(p.add(i), mask, _mm512_mul_ps(a, b));
            }
            i += 16;
        }
    }
}

/// `exp_avx512` of one value, for the tests.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn exp_avx512_scalar(x: f32) -> Option<f32> {
    use std::arch::x86_64::*;
    if level() != Level::Avx512 {
        return None;
    }
    // SAFETY: the CPU has AVX-512F.
    Some(unsafe { _mm512_cvtss_f32(exp_avx512(_mm512_set1_ps(x))) })
}

/// Largest value of a row (`-inf` for an empty one); NaNs are skipped.
pub(crate) fn max(s: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level() == Level::Avx512 {
        // SAFETY: the CPU has AVX-512F.
        return unsafe { max_avx512(s) };
    }
    max_plain(s)
}

simd_fn! {
    /// `max` as plain loops (AVX2, baseline, other architectures).
    fn max_plain(s: &[f32]) -> f32 {
        max_of(s)
    }
}

/// `max` in AVX-512 with four accumulators: the plain loop's `f32::max` (a compare and a
/// blend for NaN on top of each `vmaxps`, one chain) cost as much as the exponentials in
/// attention's softmax. `vmaxps` returns its second operand where one is NaN, so the
/// accumulator second skips NaN as `f32::max` does.
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max_avx512(s: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let (n, p) = (s.len(), s.as_ptr());
    let mut acc = [_mm512_set1_ps(f32::NEG_INFINITY); 4];
    let mut i = 0;
    // SAFETY: every load reads elements i..i + 64 (or the masked lanes i..n) of `s`.
    unsafe {
        while i + 64 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                *a = _mm512_max_ps(_mm512_loadu_ps(p.add(i + 16 * k)), *a);
            }
            i += 64;
        }
        while i < n {
            let x = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), tail_mask(i, n), p.add(i));
            acc[0] = _mm512_max_ps(x, acc[0]);
            i += 16;
        }
    }
    let m = _mm512_max_ps(_mm512_max_ps(acc[0], acc[1]), _mm512_max_ps(acc[2], acc[3]));
    _mm512_reduce_max_ps(m)
}

#[inline(always)]
fn max_of(s: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = s.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.into_iter().chain(tail.iter().copied()).fold(f32::NEG_INFINITY, f32::max)
}

#[inline(always)]
fn exp_shifted_sum(s: &mut [f32], max: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = s.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = exp(c[i] - max);
            acc[i] += c[i];
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    for a in acc {
        sum += a;
    }
    sum
}

simd_fn! {
    /// `x *= k` element-wise.
    pub(crate) fn scale(x: &mut [f32], k: f32) {
        for v in x {
            *v *= k;
        }
    }
}

/// `e^x`, exposed for the tests that compare it with the standard library.
#[cfg(test)]
pub(crate) fn exp_scalar(x: f32) -> f32 {
    exp(x)
}

#[cfg(test)]
pub(crate) fn gelu_scalar(x: f32, tanh: bool) -> f32 {
    if tanh {
        gelu_tanh(x)
    } else {
        gelu_erf(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run under an emulated CPU with `EUROBERT_EXPECT_SIMD` set (scripts/test.mjs does, for
    /// `qemu-x86_64 -cpu Haswell` and `-cpu Nehalem`): every kernel follows the CPU.
    #[test]
    fn the_kernels_follow_the_cpu() {
        let got = kernels();
        let all: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
        eprintln!("kernels: {got:?}");
        // The bf16 weights' kernel: widened by the portable path below AVX-512.
        if std::env::var("EUROBERT_EXPECT_SIMD").is_ok_and(|l| !l.starts_with("avx512")) {
            assert_eq!(all[3], "portable (widened to f32)");
        }
        let names = &all[..3];
        match std::env::var("EUROBERT_EXPECT_SIMD").as_deref() {
            Ok("avx512") => assert_eq!(names, ["avx512", "x86_64-f32-avx512", "x86_64-u8i8i32-avx512"]),
            Ok("avx512vnni") => assert_eq!(names, ["avx512", "x86_64-f32-avx512", "x86_64-u8i8i32-avx512vnni"]),
            Ok("avx2") => assert_eq!(names, ["avx2+fma", "x86_64-f32-fma", "x86_64-u8i8i32-avx2"]),
            Ok("baseline") => assert_eq!(names, ["baseline", "generic-f32", "generic-u8i8i32"]),
            // aarch64: plain NEON (e.g. qemu's cortex-a72), and with i8mm (qemu's default CPU).
            Ok("neon") => assert_eq!(names, ["neon", "aarch64-f32-neon", "aarch64-u8i8i32-mlal"]),
            Ok("neon-i8mm") => assert_eq!(names, ["neon", "aarch64-f32-neon", "aarch64-u8i8i32-i8mm"]),
            // WebAssembly built with SIMD128 (scripts/test-wasi.mjs).
            Ok("simd128") => assert_eq!(names, ["simd128", "wasm-f32", "wasm-u8i8i32"]),
            Ok("simd128+relaxed") => assert_eq!(names, ["simd128+relaxed", "wasm-f32", "wasm-u8i8i32"]),
            Ok(other) => panic!(
                "EUROBERT_EXPECT_SIMD={other}: expected avx512, avx512vnni, avx2, baseline, neon, neon-i8mm, simd128 or simd128+relaxed"
            ),
            Err(_) => assert!(names.iter().all(|n| !n.is_empty())),
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_the_standard_library() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_scalar(x), (x as f64).exp() as f32);
            let ulp = (got.to_bits() as i64 - want.to_bits() as i64).abs() as f32;
            worst = worst.max(ulp);
            x += 0.0137;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        let mut row = [0.5f32, -1.0, 3.0, 0.0, 2.5, -30.0, 1.0, 1.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, -0.9];
        let m = max(&row);
        assert_eq!(m, 3.0);
        let want: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
        let got = exp_shifted(&mut row, m);
        assert!(((got as f64) - want).abs() < 1e-6 * want, "{got} vs {want}");
    }

    #[test]
    fn max_equals_the_fold_at_every_length_and_skips_nan() {
        // Relaxed SIMD leaves a NaN lane's maximum to the engine, so the plain loop built with
        // it keeps f32::max's NaN rule only where the target defines it.
        let nan_defined = !cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd"));
        for with_nan in [false, true] {
            if with_nan && !nan_defined {
                continue;
            }
            for n in 0..150usize {
                let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.5).collect();
                if with_nan && n > 3 {
                    row[n / 2] = f32::NAN;
                }
                let want = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(max(&row).to_bits(), want.to_bits(), "length {n}, NaN {with_nan}");
                assert_eq!(max_plain(&row).to_bits(), want.to_bits(), "plain, length {n}, NaN {with_nan}");
            }
        }
        if nan_defined {
            assert_eq!(max(&[f32::NAN; 20]), f32::NEG_INFINITY);
        }
    }

    #[test]
    fn avx512_exp_is_within_two_ulp_and_exp_shifted_covers_every_tail_length() {
        #[cfg(target_arch = "x86_64")]
        {
            if exp_avx512_scalar(0.0).is_none() {
                crate::skip_test("cpu::simd::avx512_exp", "no AVX-512 on this CPU");
                return;
            }
            let mut worst = 0f32;
            let mut x = -87.0f32;
            while x < 88.0 {
                let (got, want) = (exp_avx512_scalar(x).unwrap(), (x as f64).exp() as f32);
                worst = worst.max((got.to_bits() as i64 - want.to_bits() as i64).abs() as f32);
                x += 0.0137;
            }
            assert!(worst <= 2.0, "worst error {worst} ulp");
            assert!(exp_avx512_scalar(f32::NAN).unwrap().is_nan());
            assert!(exp_avx512_scalar(f32::NEG_INFINITY).unwrap() < 1e-37);
        }
        // Every length around the vector width: each element, and the sum, as e^x computes them.
        for n in 0..50usize {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let m = 2.0;
            let want: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp()).collect();
            let sum = exp_shifted(&mut row, m);
            for (g, w) in row.iter().zip(&want) {
                assert!(((*g as f64) - w).abs() <= 3e-7 * w, "n {n}: {g} vs {w}");
            }
            let total: f64 = want.iter().sum();
            assert!(((sum as f64) - total).abs() <= 1e-6 * total.max(1e-30), "n {n}: sum {sum} vs {total}");
        }
    }

    #[test]
    fn exp2_shifted_is_within_two_ulp_at_every_tail_length() {
        // Every length around the vector width, and the wide loop's four vectors a step.
        for n in (0..50usize).chain([64, 65, 127, 128, 200]) {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7).collect();
            let m = 2.0;
            let want: Vec<f64> = row.iter().map(|&v| ((v - m) as f64).exp2()).collect();
            let sum = exp2_shifted(&mut row, m);
            for (g, w) in row.iter().zip(&want) {
                assert!(((*g as f64) - w).abs() <= 2.5e-7 * w, "n {n}: {g} vs {w}");
            }
            let total: f64 = want.iter().sum();
            assert!(((sum as f64) - total).abs() <= 1e-6 * total.max(1e-30), "n {n}: sum {sum} vs {total}");
        }
        // A masked key (−∞) weighs next to nothing (as `exp`'s clamp gives); NaN stays NaN.
        let mut row = vec![f32::NEG_INFINITY, 0.0, f32::NAN];
        exp2_shifted(&mut row, 0.0);
        assert!(row[0] < 1e-37 && row[1] == 1.0, "{row:?}");
        assert!(row[2].is_nan());
    }

    #[test]
    fn activations_agree_with_their_scalar_forms_at_every_length_and_in_glu_rows() {
        let scalar = |x: f32, which: u8| match which {
            0 => x / (1.0 + exp_scalar(-x)),
            1 => gelu_scalar(x, false),
            _ => gelu_scalar(x, true),
        };
        for which in 0..3u8 {
            for n in 1..40usize {
                let orig: Vec<f32> = (0..n).map(|i| (i as f32 * 0.77 - 12.0) * if i % 2 == 0 { 1.0 } else { -0.6 }).collect();
                let mut v = orig.clone();
                activate(&mut v, which);
                for (g, &x) in v.iter().zip(&orig) {
                    let want = scalar(x, which);
                    assert!((g - want).abs() <= 3e-7 * want.abs().max(1.0), "act {which} n {n} x {x}: {g} vs {want}");
                }
            }
            // GLU rows of widths around the vector: a = act(a) * b.
            for width in [1usize, 9, 16, 17, 33] {
                let orig: Vec<f32> = (0..3 * 2 * width).map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.31).collect();
                let mut rows = orig.clone();
                match which {
                    0 => silu_mul(&mut rows, width),
                    w => gelu_mul(&mut rows, width, w == 2),
                }
                for (r, row) in orig.chunks(2 * width).enumerate() {
                    for i in 0..width {
                        let want = scalar(row[i], which) * row[width + i];
                        let got = rows[r * 2 * width + i];
                        assert!((got - want).abs() <= 3e-7 * want.abs().max(1.0), "glu {which} width {width}: {got} vs {want}");
                        assert_eq!(rows[r * 2 * width + width + i], row[width + i], "b is left as it was");
                    }
                }
            }
        }
    }

    #[test]
    fn q8_gelu_stays_within_its_bound_of_the_exact_one() {
        let xs: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.004).chain([-30.0, -9.0, 9.0, 30.0, 0.0, -0.0]).collect();
        for n in [1usize, 15, 16, 17, xs.len()] {
            let mut v = xs[..n].to_vec();
            activate(&mut v, GELU_Q8);
            for (g, &x) in v.iter().zip(&xs) {
                let want = gelu_scalar(x, false);
                assert!((g - want).abs() <= 5e-5 * x.abs().max(1.0), "x {x}: {g} vs {want}");
                // The scalar form (other CPUs) within the same bound.
                assert!((gelu_q8(x) - want).abs() <= 5e-5 * x.abs().max(1.0), "scalar form, x {x}: {} vs {want}", gelu_q8(x));
            }
        }
    }

    #[test]
    fn gelu_and_layer_norm_follow_their_definitions() {
        // GELU against f64 (erf from its series / continued fraction via libm-free erf).
        fn erf64(x: f64) -> f64 {
            // Abramowitz-Stegun 7.1.26 is too coarse; integrate the series for |x| < 3, else 1.
            if x.abs() > 5.0 {
                return x.signum();
            }
            let (mut term, mut sum, mut n) = (x, x, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        }
        let mut worst = (0f64, 0f64);
        let mut x = -9.0f32;
        while x < 9.0 {
            let xe = x as f64;
            let want_erf = 0.5 * xe * (1.0 + erf64(xe / 2f64.sqrt()));
            let want_tanh = 0.5 * xe * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (xe + 0.044715 * xe.powi(3))).tanh());
            worst.0 = worst.0.max((gelu_scalar(x, false) as f64 - want_erf).abs());
            worst.1 = worst.1.max((gelu_scalar(x, true) as f64 - want_tanh).abs());
            x += 0.0173;
        }
        assert!(worst.0 < 2e-6 && worst.1 < 2e-6, "worst abs error erf {} tanh {}", worst.0, worst.1);
        let mut v: Vec<f32> = (0..40).map(|i| (i as f32 - 13.0) * 0.21).collect();
        let orig = v.clone();
        activate(&mut v, 1);
        assert!(v.iter().zip(&orig).all(|(g, &x)| (*g - gelu_scalar(x, false)).abs() < 1e-7));
        // LayerNorm with and without a bias.
        let x: Vec<f32> = (0..40).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.5 + 3.0).collect();
        let w: Vec<f32> = (0..20).map(|i| 1.0 + i as f32 * 0.02).collect();
        let b: Vec<f32> = (0..20).map(|i| i as f32 * 0.1 - 1.0).collect();
        for bias in [Some(b.as_slice()), None] {
            let mut out = vec![0f32; 40];
            layer_norm(&x, &w, bias, 1e-5, &mut out);
            for r in 0..2 {
                let row = &x[r * 20..(r + 1) * 20];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / 20.0;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 20.0;
                for i in 0..20 {
                    let want = (row[i] as f64 - mean) / (var + 1e-5).sqrt() * w[i] as f64 + bias.map_or(0.0, |b| b[i] as f64);
                    assert!((out[r * 20 + i] as f64 - want).abs() < 2e-6, "{} vs {want}", out[r * 20 + i]);
                }
            }
        }
    }

    #[test]
    fn rms_norm_and_silu_mul_follow_their_definitions() {
        let x: Vec<f32> = (0..40).map(|i| (i as f32 - 17.0) * 0.37).collect();
        let w: Vec<f32> = (0..20).map(|i| 1.0 + i as f32 * 0.01).collect();
        let mut out = vec![0f32; 40];
        rms_norm(&x, &w, 1e-5, &mut out);
        for r in 0..2 {
            let row = &x[r * 20..(r + 1) * 20];
            let ms: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 20.0;
            for i in 0..20 {
                let want = w[i] as f64 * row[i] as f64 / (ms + 1e-5).sqrt();
                assert!((out[r * 20 + i] as f64 - want).abs() < 1e-6 * want.abs().max(1.0));
            }
        }
        let mut gu: Vec<f32> = (0..36).map(|i| (i as f32 - 20.0) * 0.5).collect();
        let orig = gu.clone();
        silu_mul(&mut gu, 9);
        for r in 0..2 {
            for i in 0..9 {
                let (g, u) = (orig[r * 18 + i] as f64, orig[r * 18 + 9 + i] as f64);
                let want = g / (1.0 + (-g).exp()) * u;
                assert!((gu[r * 18 + i] as f64 - want).abs() < 1e-5 * want.abs().max(1.0));
            }
        }
    }
}
