//! Bidirectional grouped-query attention over packed sequences, blocked as FlashAttention:
//! keys are visited in blocks with an online softmax, so memory is `O(block²)` per task
//! whatever the sequence length, and the `T × T` score matrix never exists.
//!
//! Work is split into tasks of (sequence, KV head, block of query rows); each task runs the
//! query heads that share its KV head one after another over the same K/V rows (grouped-
//! query attention without copying K/V). Sequences never see each other: each one attends
//! over its own token range, so packed batches need no mask. Accumulation is f32.
//!
//! With `bf16` (`dtype: 'q8'` on a CPU with AVX512-BF16), QKᵀ and PV run as bf16 products
//! (`half_gemm.rs`): Q·scale, K, P and V rounded to bf16 as they enter, sums, the online
//! softmax and the output in f32. Where the CPU has AMX-BF16, the products run on its tiles
//! (`amx::gemm_bf16_part`; `vdpbf16ps` is slow on those CPUs) from [`TILES_FROM`] tokens:
//! BERT-base heads at 424 tokens 144 → 233 GFLOP/s on 2 cores, 730-token GQA 207 → 390
//! (`attention_timing`).

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::half_gemm::PackedW;
use super::short_attention;
use super::simd;

/// Query rows per task (the bf16 products, and local windows, whose rows see few keys).
const QUERY_BLOCK: usize = 64;
/// Rows (query rows × the query heads sharing a KV head) per task of f32 products over all
/// the keys: the `gemm` crate packs each key block once per call, so more rows a call pay it
/// back (`attention_timing`, one thread, 64 → 256 query rows: 610m heads at 730 tokens 94.7 →
/// 104.1 GFLOP/s, at 2,000 97.1 → 110.7, BERT heads at 424 61.7 → 78.7; the AMX tiles lost
/// 5% and keep 64). Capped so a task's scores stay within L2 whatever the grouping.
const F32_TASK_ROWS: usize = 768;

/// Query rows per task of f32 products over all the keys, for `n_rep` query heads per KV head.
fn f32_query_block(n_rep: usize) -> usize {
    (F32_TASK_ROWS / n_rep.max(1)).clamp(QUERY_BLOCK, 4 * QUERY_BLOCK)
}
/// Keys per online-softmax step.
const KEY_BLOCK: usize = 256;
/// Shortest sequence whose attention runs in bf16 (when asked): below it, packing K and V and
/// rounding P cost more than the faster products give back in the blocked path
/// (`attention_timing`); the short kernel's bf16 gains 10–15% at 22–90 tokens, too little
/// to give up f32 products there, and 30–40% over the blocked bf16 at 128–256.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const BF16_FROM: usize = 128;
/// Shortest sequence whose attention runs on AMX-BF16 tiles rather than the short f32 kernel
/// (where bf16 is asked and the tiles exist): `attention_timing`, BERT heads, the tiles
/// against the short kernel at 22–40 tokens 0.56–0.65×, at 64 1.01–1.03×, at 90 1.15–1.19×.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const TILES_FROM: usize = 72;

/// `EUROBERT_NO_SHORT_ATTENTION=1` sends short sequences through the blocked path too (to
/// compare the two).
fn short_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EUROBERT_NO_SHORT_ATTENTION").map_or(true, |v| v != "1"))
}

/// Where the heads live in the fused QKV rows and in the output rows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    pub query: usize,
    pub kv: usize,
    pub dim: usize,
}

impl Heads {
    /// Width of one fused QKV row: query heads, then key heads, then value heads.
    pub fn qkv_width(&self) -> usize {
        (self.query + 2 * self.kv) * self.dim
    }
    pub fn out_width(&self) -> usize {
        self.query * self.dim
    }
}

/// A raw pointer that tasks write through, each into rows and columns no other task touches.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);
// SAFETY: tasks write disjoint (rows, head) regions; see `attention`.
unsafe impl Send for SharedOut {}
// SAFETY: as for Send: no two tasks touch the same element.
unsafe impl Sync for SharedOut {}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[t, h]` = softmax(q_h(t) · K_g(seq)ᵀ · scale) · V_g(seq) for every token `t` of every
/// sequence, with `g = h / (query / kv)`. `qkv` is `(tokens, heads.qkv_width())`, `out` is
/// `(tokens, heads.out_width())`, and `sequences` are disjoint token ranges covering both.
///
/// With `window`, token `t` attends only to keys `j` with `|t − j| ≤ window` (ModernBERT's
/// local layers): each task visits just the keys its rows can see, and masks the rest.
pub(crate) fn attention(
    qkv: &[f32],
    out: &mut [f32],
    sequences: &[Range<usize>],
    heads: Heads,
    scale: f32,
    window: Option<usize>,
    bf16: bool,
) {
    // The bf16 products pair the head dimension.
    #[cfg(target_arch = "x86_64")]
    let bf16 = bf16 && heads.dim.is_multiple_of(2) && super::half_gemm::available(super::Half::BF16);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bf16;
    // On AMX-BF16 the blocked path's products run on the tiles; the short kernel's bf16
    // variant (`vdpbf16ps`, slow on those CPUs: `half_gemm::dot_pays`) is not used there.
    #[cfg(target_arch = "x86_64")]
    let tiles = bf16 && super::amx::bf16_available();
    let (qw, ow) = (heads.qkv_width(), heads.out_width());
    let tokens = out.len() / ow;
    assert_eq!(qkv.len(), tokens * qw, "qkv rows");
    // Tasks write through a shared pointer, one block of rows each: that is sound only if no
    // two sequences share a row. Checked here, so no caller of this safe function can break it.
    assert!(sequences.iter().all(|s| s.start < s.end && s.end <= tokens), "sequence ranges");
    let mut starts: Vec<&Range<usize>> = sequences.iter().collect();
    starts.sort_unstable_by_key(|s| s.start);
    assert!(starts.windows(2).all(|p| p[0].end <= p[1].start), "sequences must be disjoint token ranges");
    // Sequences of one key block skip the GEMM library (`short_attention.rs`), one task per
    // sequence and KV head, so K is transposed once.
    let short = window.is_none() && short_attention::fits(heads.dim) && short_enabled();
    // In bf16 (from BF16_FROM keys), the short kernel's own bf16 variant takes what it fits.
    #[cfg(target_arch = "x86_64")]
    let short_in_bf16 = |len: usize| bf16 && !tiles && len >= BF16_FROM;
    #[cfg(target_arch = "x86_64")]
    let is_short = |len: usize| short && len <= short_attention::SHORT_MAX && !(tiles && len >= TILES_FROM);
    #[cfg(not(target_arch = "x86_64"))]
    let is_short = |len: usize| short && len <= short_attention::SHORT_MAX;
    // The blocked path's bf16 tasks.
    #[cfg(target_arch = "x86_64")]
    let blocked_bf16 = |len: usize| bf16 && len >= if tiles { TILES_FROM } else { BF16_FROM } && !is_short(len);
    #[cfg(target_arch = "x86_64")]
    let f32_products = |len: usize| !is_short(len) && !blocked_bf16(len) && window.is_none();
    #[cfg(not(target_arch = "x86_64"))]
    let f32_products = |len: usize| !is_short(len) && window.is_none();
    // The f32 block, halved while the call would give its pool's threads fewer than 4 tasks
    // each (one long document on many threads).
    let f32_tasks =
        |block: usize| sequences.iter().filter(|s| f32_products(s.len())).map(|s| s.len().div_ceil(block) * heads.kv).sum::<usize>();
    let mut f32_block = f32_query_block(heads.query / heads.kv);
    while f32_block > QUERY_BLOCK && f32_tasks(f32_block) < 4 * rayon::current_num_threads() {
        f32_block /= 2;
    }
    let mut tasks = Vec::new();
    for (i, seq) in sequences.iter().enumerate() {
        let block = if is_short(seq.len()) {
            seq.len()
        } else if f32_products(seq.len()) {
            f32_block
        } else {
            QUERY_BLOCK
        };
        for g in 0..heads.kv {
            let mut q0 = seq.start;
            while q0 < seq.end {
                let q1 = (q0 + block).min(seq.end);
                tasks.push((i, g, q0..q1));
                q0 = q1;
            }
        }
    }
    // bf16: K and V of each (sequence, KV head) packed once, for all the tasks that read them.
    #[cfg(target_arch = "x86_64")]
    let packed: Vec<(PackedW, PackedW)> = if bf16 {
        let (qw, d) = (heads.qkv_width(), heads.dim);
        (0..sequences.len() * heads.kv)
            .into_par_iter()
            .map(|i| {
                let (seq, g) = (&sequences[i / heads.kv], i % heads.kv);
                let (k_col, v_col) = ((heads.query + g) * d, (heads.query + heads.kv + g) * d);
                let (mut k, mut v) = (PackedW::empty_bf16(), PackedW::empty_bf16());
                if !blocked_bf16(seq.len()) {
                    return (k, v);
                }
                k.pack_heads(&qkv[seq.start * qw + k_col..], seq.len(), qw, d, false, tiles);
                v.pack_heads(&qkv[seq.start * qw + v_col..], seq.len(), qw, d, true, tiles);
                (k, v)
            })
            .collect()
    } else {
        Vec::new()
    };
    let dst = SharedOut(out.as_mut_ptr());
    // Short tasks are grouped so that rayon's per-task overhead stays small.
    let min_len = (4096 / sequences.iter().map(|s| s.len()).max().unwrap_or(1).pow(2)).max(1);
    tasks.par_iter().with_min_len(min_len).for_each(|&(i, g, ref rows)| {
        let seq = sequences[i].clone();
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            // (Never off x86-64: `short_attention::fits` is false there.)
            #[cfg(target_arch = "x86_64")]
            if is_short(seq.len()) {
                if short_in_bf16(seq.len()) {
                    // SAFETY: as below; `bf16` is only set where the CPU has AVX512-BF16.
                    return unsafe { short_attention::attend_bf16(qkv, dst, seq, g, rows.clone(), heads, scale, &mut s) };
                }
                // SAFETY: as below.
                return unsafe { short_attention::attend(qkv, dst, seq, g, rows.clone(), heads, scale, &mut s) };
            }
            #[cfg(target_arch = "x86_64")]
            if blocked_bf16(seq.len()) {
                return LOW.with(|low| {
                    let (k, v) = &packed[i * heads.kv + g];
                    let mut low = low.borrow_mut();
                    let (q, p) = &mut *low;
                    let low = Low { q, p, k, v };
                    // SAFETY: as below.
                    unsafe { attend(qkv, dst, seq, g, rows.clone(), heads, scale, window, &mut s, Some(low)) }
                });
            }
            // SAFETY: the task's output block (its query rows, the columns of its KV group's
            // query heads) is written by this task only, and `out` outlives the parallel loop.
            unsafe { attend(qkv, dst, seq, g, rows.clone(), heads, scale, window, &mut s, None) }
        })
    });
}

/// What a bf16 task works with: its Q·scale and P rounded (per-thread buffers), and the K and V
/// of its sequence and KV head, packed.
#[cfg(target_arch = "x86_64")]
struct Low<'a> {
    q: &'a mut Vec<u16>,
    p: &'a mut Vec<u16>,
    k: &'a PackedW,
    v: &'a PackedW,
}

#[cfg(not(target_arch = "x86_64"))]
struct Low<'a>(std::marker::PhantomData<&'a ()>);

#[cfg(target_arch = "x86_64")]
thread_local! {
    static LOW: RefCell<(Vec<u16>, Vec<u16>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// One task: the query heads of KV head `g` for query rows `rows` of sequence `seq`. The
/// rows of all those heads are gathered into one matrix (head-major), so each key block costs
/// two GEMM calls however many query heads share the KV head.
///
/// # Safety
/// `out` must point at a live `(tokens, heads.out_width())` f32 matrix with `seq` inside its
/// rows, that no one else reads or writes in rows `rows`, columns of KV group `g`'s query
/// heads, until this call returns (tasks of `attention` own disjoint blocks).
#[allow(clippy::too_many_arguments)]
unsafe fn attend(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    g: usize,
    rows: Range<usize>,
    heads: Heads,
    scale: f32,
    window: Option<usize>,
    scratch: &mut Vec<f32>,
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))] mut low: Option<Low>,
) {
    let (d, qw, ow) = (heads.dim, heads.qkv_width(), heads.out_width());
    let n_rep = heads.query / heads.kv;
    let m = rows.len() * n_rep;
    let kb = KEY_BLOCK.min(seq.len());
    scratch.resize(m * (kb + 2 * d + 2), 0.0);
    let (scores, rest) = scratch.split_at_mut(m * kb);
    let (q, rest) = rest.split_at_mut(m * d);
    let (o, stats) = rest.split_at_mut(m * d);
    let (row_max, row_sum) = stats.split_at_mut(m);
    // Row r·len + i of `q`/`o` is query head g·n_rep + r at token rows.start + i.
    for r in 0..n_rep {
        let h = g * n_rep + r;
        for (i, t) in rows.clone().enumerate() {
            q[(r * rows.len() + i) * d..][..d].copy_from_slice(&qkv[t * qw + h * d..][..d]);
        }
    }
    let k_col = (heads.query + g) * d;
    let v_col = (heads.query + heads.kv + g) * d;
    #[cfg(target_arch = "x86_64")]
    if let Some(low) = low.as_mut() {
        // Q·scale in bf16, once for all key blocks, shaped for the kernel K was packed for.
        q.iter_mut().for_each(|x| *x *= scale * std::f32::consts::LOG2_E);
        let (rows, depth) = low.k.activation_shape(m, d);
        low.q.resize(rows * depth, 0);
        super::half_gemm::round_rows_serial(q, m, d, d, depth, &mut low.q[..m * depth]);
    }
    // The keys any row of this task can see. Every row has one in the first key block (its
    // first visible key is at most QUERY_BLOCK − 1 past the block's start), so no row starts
    // the online softmax from nothing (with a window, query blocks are QUERY_BLOCK rows).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let (mut key_start, key_end) = match window {
        Some(w) => (rows.start.saturating_sub(w).max(seq.start), (rows.end + w).min(seq.end)),
        None => (seq.start, seq.end),
    };
    // The packed K starts its vectors of 16 keys at the sequence's start (the tiles take
    // them, and V's pairs of keys, from multiples of 32); keys added by rounding down lie
    // outside every row's window and are masked below.
    #[cfg(target_arch = "x86_64")]
    if let Some(low) = &low {
        let align = if low.k.tiles() { 32 } else { 16 };
        key_start = seq.start + (key_start - seq.start) / align * align;
    }
    let mut k0 = key_start;
    while k0 < key_end {
        let n = (k0 + kb).min(key_end) - k0;
        let s = &mut scores[..m * n];
        // Bounds-checked starts: rows k0.. of the K and V columns, inside `qkv`.
        let k = qkv[k0 * qw + k_col..].as_ptr();
        let v = qkv[k0 * qw + v_col..].as_ptr();
        debug_assert!((k0 + n - 1) * qw + v_col + d <= qkv.len());
        // S = scale · Q Kᵀ  (m × n)
        #[cfg(target_arch = "x86_64")]
        if let Some(low) = low.as_mut() {
            let keys = k0 - seq.start..k0 - seq.start + n;
            super::half_gemm::gemm_serial(low.q, m, low.k, keys, 0..d, s, false);
        }
        if low.is_none() {
            // SAFETY: `s` is m × n (row stride n); `q` is m × d (row stride d); K is read as
            // d × n with column stride qw from row k0, and its last element, row k0 + n - 1 of
            // the K columns, lies inside `qkv` (k0 + n <= seq.end <= tokens, checked by
            // `attention`).
            unsafe { super::gemm_rows(m, n, d, s.as_mut_ptr(), n, false, q.as_ptr(), d, k, 1, qw, scale * std::f32::consts::LOG2_E) }
        };
        if let Some(w) = window {
            // Keys outside a row's window get no weight (exp(−∞) = 0).
            for r in 0..n_rep {
                for (i, t) in rows.clone().enumerate() {
                    let row = &mut s[(r * rows.len() + i) * n..][..n];
                    for (j, v) in row.iter_mut().enumerate() {
                        if (k0 + j).abs_diff(t) > w {
                            *v = f32::NEG_INFINITY;
                        }
                    }
                }
            }
        }
        let first = k0 == key_start;
        for i in 0..m {
            let row = &mut s[i * n..(i + 1) * n];
            let block_max = simd::max(row);
            let new_max = if first { block_max } else { row_max[i].max(block_max) };
            let sum = simd::exp2_shifted(row, new_max);
            if first {
                row_sum[i] = sum;
            } else {
                // Rescale what earlier key blocks accumulated to the new maximum.
                let c = (row_max[i] - new_max).exp2();
                row_sum[i] = row_sum[i] * c + sum;
                simd::scale(&mut o[i * d..(i + 1) * d], c);
            }
            row_max[i] = new_max;
        }
        // O = O + P V  (m × d); the first block overwrites.
        #[cfg(target_arch = "x86_64")]
        if let Some(low) = low.as_mut() {
            let keys = k0 - seq.start..k0 - seq.start + n;
            let (rows, depth) = low.v.activation_shape(m, n);
            low.p.resize(rows * depth, 0);
            super::half_gemm::round_rows_serial(s, m, n, n, depth, &mut low.p[..m * depth]);
            super::half_gemm::gemm_serial(low.p, m, low.v, 0..d, keys, o, !first);
        }
        if low.is_none() {
            // SAFETY: `o` is m × d, `s` m × n, and V is read as n × d with row stride qw from
            // row k0 of the V columns: rows k0..k0 + n of a sequence inside `qkv`, as above.
            unsafe { super::gemm_rows(m, d, n, o.as_mut_ptr(), d, !first, s.as_ptr(), n, v, qw, 1, 1.0) }
        };
        k0 += n;
    }
    for r in 0..n_rep {
        let h = g * n_rep + r;
        for (i, t) in rows.clone().enumerate() {
            let row = r * rows.len() + i;
            // SAFETY: row t, columns of head h: inside the `(tokens, ow)` matrix `out` points at
            // (t < seq.end <= tokens), and owned by this task alone (the caller's contract).
            let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add(t * ow + h * d), d) };
            for (x, &y) in dst.iter_mut().zip(&o[row * d..(row + 1) * d]) {
                *x = y / row_sum[row];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain softmax attention in f64, one sequence at a time.
    fn reference(qkv: &[f32], seqs: &[Range<usize>], h: Heads, scale: f32, window: Option<usize>) -> Vec<f32> {
        let (qw, ow, d) = (h.qkv_width(), h.out_width(), h.dim);
        let tokens = qkv.len() / qw;
        let mut out = vec![0f32; tokens * ow];
        let n_rep = h.query / h.kv;
        for seq in seqs {
            for head in 0..h.query {
                let g = head / n_rep;
                for t in seq.clone() {
                    let q = &qkv[t * qw + head * d..][..d];
                    let scores: Vec<f64> = seq
                        .clone()
                        .map(|j| {
                            if window.is_some_and(|w| j.abs_diff(t) > w) {
                                return f64::NEG_INFINITY;
                            }
                            let k = &qkv[j * qw + (h.query + g) * d..][..d];
                            q.iter().zip(k).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale as f64
                        })
                        .collect();
                    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let mut acc = 0f64;
                        for (p, j) in e.iter().zip(seq.clone()) {
                            acc += p / z * qkv[j * qw + (h.query + h.kv + g) * d + c] as f64;
                        }
                        out[t * ow + head * d + c] = acc as f32;
                    }
                }
            }
        }
        out
    }

    /// Sequences of these lengths packed one after another, their token count, and seeded QKV
    /// rows in [-3, 3).
    fn packed(lens: &[usize], heads: Heads, seed: u64) -> (Vec<Range<usize>>, usize, Vec<f32>) {
        let mut seqs = Vec::new();
        let mut t = 0;
        for &l in lens {
            seqs.push(t..t + l);
            t += l;
        }
        let mut state = seed;
        let qkv = (0..t * heads.qkv_width())
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            })
            .collect();
        (seqs, t, qkv)
    }

    #[test]
    fn short_sequences_equal_plain_softmax_attention() {
        if !crate::cpu::short_attention::fits(32) {
            crate::skip_test("cpu::flash::short_sequences_equal_plain_softmax_attention", "no AVX-512 on this CPU");
            return;
        }
        // Lengths around the key padding (16) and the kernel's limit (256: 257 takes the
        // blocked path); heads of 1, 2 and 3 W-column blocks, grouped and not.
        let lens = [1usize, 7, 15, 16, 17, 33, 90, 255, 256, 257];
        for heads in [Heads { query: 8, kv: 4, dim: 32 }, Heads { query: 12, kv: 12, dim: 64 }, Heads { query: 6, kv: 2, dim: 96 }] {
            let (seqs, t, qkv) = packed(&lens, heads, 777);
            let mut out = vec![f32::NAN; t * heads.out_width()];
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            pool.install(|| attention(&qkv, &mut out, &seqs, heads, 0.125, None, false));
            let want = reference(&qkv, &seqs, heads, 0.125, None);
            let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-5, "{heads:?}: max abs diff {worst}");
        }
    }

    #[test]
    fn blocked_attention_equals_plain_softmax_attention_on_packed_sequences() {
        let heads = Heads { query: 6, kv: 2, dim: 16 };
        // Lengths around the block sizes: one key block, several, and a ragged tail.
        let (seqs, t, qkv) = packed(&[1, 7, 48, 49, 64, 65, 300, 530], heads, 12345);
        let mut out = vec![f32::NAN; t * heads.out_width()];
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| attention(&qkv, &mut out, &seqs, heads, 0.25, None, false));
        let want = reference(&qkv, &seqs, heads, 0.25, None);
        let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 2e-5, "max abs diff {worst}");
        // Local windows, narrower and wider than the blocks (ModernBERT's is 64 each side).
        for w in [0usize, 2, 63, 64, 200] {
            let mut out = vec![f32::NAN; t * heads.out_width()];
            pool.install(|| attention(&qkv, &mut out, &seqs, heads, 0.25, Some(w), false));
            let want = reference(&qkv, &seqs, heads, 0.25, Some(w));
            let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-5, "window {w}: max abs diff {worst}");
        }
    }

    #[test]
    fn short_bf16_attention_stays_near_plain_softmax_attention() {
        #[cfg(target_arch = "x86_64")]
        let bf16 = crate::cpu::short_attention::fits(32) && crate::cpu::half_gemm::available(crate::cpu::Half::BF16);
        #[cfg(not(target_arch = "x86_64"))]
        let bf16 = false;
        if !bf16 {
            crate::skip_test("cpu::flash::short_bf16_attention_stays_near_plain_softmax_attention", "no AVX512-BF16 on this CPU");
            return;
        }
        // From BF16_FROM to SHORT_MAX keys the short kernel runs bf16 products (on AMX-BF16
        // the blocked path's tiles do, from TILES_FROM): odd and even lengths (the last pair
        // of keys half padding), a whole and a half vector of pairs, and 257 (the blocked
        // path); heads of 1, 2 and 3 column blocks, grouped and not.
        #[cfg(target_arch = "x86_64")]
        let from = if crate::cpu::amx::bf16_available() { TILES_FROM } else { BF16_FROM };
        #[cfg(not(target_arch = "x86_64"))]
        let from = BF16_FROM;
        let lens = [60usize, 100, 128, 129, 143, 144, 255, 256, 257];
        for heads in [Heads { query: 8, kv: 4, dim: 32 }, Heads { query: 12, kv: 12, dim: 64 }, Heads { query: 6, kv: 2, dim: 96 }] {
            let (seqs, t, qkv) = packed(&lens, heads, 4242);
            let mut out = vec![f32::NAN; t * heads.out_width()];
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            pool.install(|| attention(&qkv, &mut out, &seqs, heads, 0.125, None, true));
            let want = reference(&qkv, &seqs, heads, 0.125, None);
            for (seq, len) in seqs.iter().zip(lens) {
                let rows = seq.start * heads.out_width()..seq.end * heads.out_width();
                let worst = out[rows.clone()].iter().zip(&want[rows]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                eprintln!("short bf16 attention {heads:?}, {len} tokens: max abs diff {worst:e}");
                // Below `from` f32 products; above, bf16's: on these inputs (±3, scores up to
                // ~70) the blocked bf16 path (EUROBERT_NO_SHORT_ATTENTION=1) is off by the
                // same 1.5e-2 to 4.6e-2, as the rounding of Q, K, P and V dominates.
                if len < from {
                    assert!(worst < 2e-5, "{heads:?}, {len} tokens: max abs diff {worst}");
                } else {
                    assert!(worst > 1e-4 && worst < 5e-2, "{heads:?}, {len} tokens: max abs diff {worst}");
                }
            }
        }
    }

    #[test]
    fn bf16_attention_stays_near_plain_softmax_attention() {
        #[cfg(target_arch = "x86_64")]
        if !crate::cpu::half_gemm::available(crate::cpu::Half::BF16) {
            crate::skip_test("cpu::flash::bf16_attention_stays_near_plain_softmax_attention", "no AVX512-BF16 on this CPU");
            return;
        }
        let heads = Heads { query: 6, kv: 2, dim: 16 };
        // Short sequences stay f32; from BF16_FROM tokens on they run in bf16.
        let lens = [1usize, 7, 64, 65, 127, 128, 300, 530];
        let mut seqs = Vec::new();
        let mut t = 0;
        for l in lens {
            seqs.push(t..t + l);
            t += l;
        }
        let mut state = 999u64;
        let qkv: Vec<f32> = (0..t * heads.qkv_width())
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
            })
            .collect();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        for w in [None, Some(2), Some(64)] {
            let mut out = vec![f32::NAN; t * heads.out_width()];
            pool.install(|| attention(&qkv, &mut out, &seqs, heads, 0.25, w, true));
            let want = reference(&qkv, &seqs, heads, 0.25, w);
            let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // bf16 keeps 8 bits of each factor: values of magnitude ~1.5 move by ~1e-2.
            eprintln!("bf16 attention, window {w:?}: max abs diff {worst:e}");
            assert!(worst < 3e-2, "window {w:?}: max abs diff {worst}");
        }
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -p eurobert attention_timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn attention_timing() {
        for (len, heads) in [
            (22usize, Heads { query: 8, kv: 4, dim: 32 }),
            (40, Heads { query: 12, kv: 12, dim: 64 }),
            (64, Heads { query: 12, kv: 12, dim: 64 }),
            (90, Heads { query: 12, kv: 12, dim: 64 }),
            (22, Heads { query: 18, kv: 6, dim: 64 }),
            (128, Heads { query: 8, kv: 4, dim: 32 }),
            (128, Heads { query: 18, kv: 6, dim: 64 }),
            (400, Heads { query: 8, kv: 4, dim: 32 }),
            (424, Heads { query: 12, kv: 12, dim: 64 }),
            (730, Heads { query: 18, kv: 6, dim: 64 }),
        ] {
            if std::env::var("LEN").is_ok_and(|l| l != len.to_string()) {
                continue;
            }
            let count = 32;
            let seqs: Vec<Range<usize>> = (0..count).map(|i| i * len..(i + 1) * len).collect();
            let t = count * len;
            let qkv: Vec<f32> = (0..t * heads.qkv_width()).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
            let mut out = vec![0f32; t * heads.out_width()];
            let threads = std::env::var("THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            for bf16 in [false, true] {
                let reps = (200 * 22 * 22 / (len * len)).max(3);
                let start = std::time::Instant::now();
                pool.install(|| {
                    for _ in 0..reps {
                        attention(&qkv, &mut out, &seqs, heads, 0.2, None, bf16)
                    }
                });
                let per = start.elapsed().as_secs_f64() / reps as f64;
                let flops = 4.0 * (count * len * len * heads.query * heads.dim) as f64;
                eprintln!(
                    "len {len} heads {heads:?} bf16 {bf16}: {:.3} ms per batch of {count}, {:.1} GFLOP/s",
                    per * 1e3,
                    flops / per / 1e9
                );
            }
        }
    }
}
