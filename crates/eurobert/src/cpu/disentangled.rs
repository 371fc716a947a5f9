//! DeBERTa's disentangled attention over packed sequences: softmax over
//! `(q_i·k_j + q_i·Pk[δ(i−j)] + k_j·Pq[δ(i−j)]) · scale`, where `δ` maps a distance to a row
//! of the layer's relative tables (`recipe::Relative::rows`).
//!
//! One task per (sequence, head). A task first projects its queries onto the relative keys and
//! its keys onto the relative queries, only over the rows its distances can reach (`2L − 1` at
//! most, however many buckets the model has), then runs blocks of query rows against every key
//! of the sequence: scores, the two gathered terms, softmax, and `P·V` written in place. The
//! projections cost as much as `QKᵀ` itself, as in transformers.

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::flash::{Heads, SharedOut};
use super::simd;

/// Query rows per block.
const QUERY_BLOCK: usize = 64;

/// A layer's relative tables: `(2·span, heads·dim)` row-major, as `recipe::RelativeWeights`.
pub(crate) struct Tables {
    pub keys: Option<Vec<f32>>,
    pub queries: Option<Vec<f32>>,
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `out[t, h]` for every token of every sequence (see the module). `qkv` is `(tokens,
/// heads.qkv_width())`, `out` `(tokens, heads.out_width())`; `rows` holds the table row of
/// every distance of a sequence of `longest` tokens (`Relative::rows(longest)`), and no
/// sequence is longer.
pub(crate) fn attention(qkv: &[f32], out: &mut [f32], sequences: &[Range<usize>], heads: Heads, scale: f32, t: &Tables, rows: &[u32]) {
    let (qw, ow) = (heads.qkv_width(), heads.out_width());
    let tokens = out.len() / ow;
    assert_eq!(heads.query, heads.kv, "DeBERTa has as many key heads as query heads");
    assert_eq!(qkv.len(), tokens * qw, "qkv rows");
    assert!(sequences.iter().all(|s| s.start < s.end && s.end <= tokens), "sequence ranges");
    let mut starts: Vec<&Range<usize>> = sequences.iter().collect();
    starts.sort_unstable_by_key(|s| s.start);
    assert!(starts.windows(2).all(|p| p[0].end <= p[1].start), "sequences must be disjoint token ranges");
    let longest = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
    assert!(rows.len() + 1 >= 2 * longest, "the distance table covers the longest sequence");
    let table_rows = |v: &Option<Vec<f32>>| v.as_ref().map(|v| v.len() / ow);
    let span2 = table_rows(&t.keys).or(table_rows(&t.queries)).unwrap_or(0);
    assert!(rows.iter().all(|&r| (r as usize) < span2), "distance rows inside the tables");
    let tasks: Vec<(Range<usize>, usize)> = sequences.iter().flat_map(|s| (0..heads.query).map(move |h| (s.clone(), h))).collect();
    let dst = SharedOut(out.as_mut_ptr());
    let centre = rows.len() / 2;
    tasks.par_iter().for_each(|(seq, h)| {
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            // SAFETY: the task's output block (the sequence's rows, head h's columns) is written
            // by this task only (sequences are disjoint, checked above), and `out` outlives the
            // parallel loop.
            unsafe { attend(qkv, dst, seq.clone(), *h, heads, scale, t, &rows[centre + 1 - seq.len()..centre + seq.len()], &mut s) }
        })
    });
}

/// `C = A·Bᵀ` (`m × n`, row stride `ldc`) for `A` of `m × k` (row stride `lda`) and `B` of
/// `n × k` (row stride `ldb`).
///
/// # Safety
/// Every element the strides and sizes name must lie inside the allocations `a`, `b` and `c`
/// point into, and `c` must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
unsafe fn abt(m: usize, n: usize, k: usize, a: *const f32, lda: usize, b: *const f32, ldb: usize, c: *mut f32, ldc: usize) {
    // SAFETY: the caller's contract.
    unsafe { super::gemm_rows(m, n, k, c, ldc, false, a, lda, b, 1, ldb, 1.0) }
}

/// One (sequence, head) task. `rows` is the table row of each distance `i − j` of this
/// sequence: entry `len − 1 + (i − j)`.
///
/// # Safety
/// `out` must point at a live `(tokens, heads.out_width())` f32 matrix with `seq` inside its
/// rows, that no one else reads or writes in rows `seq`, columns of head `h`, until this call
/// returns.
#[allow(clippy::too_many_arguments)]
unsafe fn attend(
    qkv: &[f32],
    out: SharedOut,
    seq: Range<usize>,
    h: usize,
    heads: Heads,
    scale: f32,
    t: &Tables,
    rows: &[u32],
    scratch: &mut Vec<f32>,
) {
    let (d, qw, ow) = (heads.dim, heads.qkv_width(), heads.out_width());
    let len = seq.len();
    debug_assert_eq!(rows.len(), 2 * len - 1);
    // Rows are monotone in the distance: the sequence reaches rows lo..=hi only.
    let (lo, hi) = (rows[0] as usize, rows[2 * len - 2] as usize);
    let reach = hi - lo + 1;
    let qm = QUERY_BLOCK.min(len);
    scratch.resize(2 * len * reach + qm * len, 0.0);
    let (qp, rest) = scratch.split_at_mut(len * reach);
    let (kp, s) = rest.split_at_mut(len * reach);
    let q = qkv[seq.start * qw + h * d..].as_ptr();
    let k = qkv[seq.start * qw + (heads.query + h) * d..].as_ptr();
    let v = qkv[seq.start * qw + (heads.query + heads.kv + h) * d..].as_ptr();
    debug_assert!((seq.end - 1) * qw + (heads.query + heads.kv + h) * d + d <= qkv.len());
    // qp[i, r] = q_i · Pk[lo + r]; kp[j, r] = k_j · Pq[lo + r].
    for (dst, table, x) in [(&mut *qp, &t.keys, q), (&mut *kp, &t.queries, k)] {
        match table {
            // SAFETY: x reads rows seq of a head's columns inside qkv (checked by `attention`);
            // the table rows lo..=hi lie inside it (`attention` checks every row < 2·span);
            // dst is len × reach scratch.
            Some(p) => unsafe { abt(len, reach, d, x, qw, p[lo * ow + h * d..].as_ptr(), ow, dst.as_mut_ptr(), reach) },
            None => dst.fill(0.0),
        }
    }
    let mut q0 = 0;
    while q0 < len {
        let m = QUERY_BLOCK.min(len - q0);
        let s = &mut s[..m * len];
        // S = Q Kᵀ for the block's rows against every key of the sequence.
        // SAFETY: rows q0..q0 + m and 0..len of the sequence's q and k columns, inside qkv;
        // s is m × len.
        unsafe { abt(m, len, d, q.add(q0 * qw), qw, k, qw, s.as_mut_ptr(), len) };
        for (bi, row) in s.chunks_mut(len).enumerate() {
            let i = q0 + bi;
            let qp_i = &qp[i * reach..][..reach];
            // The row of distance i − j is rows[len − 1 + i − j].
            let dist = &rows[i..i + len];
            for (j, sc) in row.iter_mut().enumerate() {
                let r = dist[len - 1 - j] as usize - lo;
                *sc = (*sc + qp_i[r] + kp[j * reach + r]) * scale;
            }
            let max = simd::max(row);
            let sum = simd::exp_shifted(row, max);
            simd::scale(row, 1.0 / sum);
        }
        // O = P V, straight into the output rows of head h.
        // SAFETY: the destination rows seq.start + q0.., columns of head h, are this task's
        // alone (the caller's contract); V is len × d with row stride qw inside qkv.
        unsafe { super::gemm_rows(m, d, len, out.0.add((seq.start + q0) * ow + h * d), ow, false, s.as_ptr(), len, v, qw, 1, 1.0) };
        q0 += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Relative;

    /// transformers' formula in f64, one sequence and head at a time.
    fn reference(qkv: &[f32], seqs: &[Range<usize>], h: Heads, scale: f64, t: &Tables, rel: &Relative) -> Vec<f32> {
        let (qw, ow, d) = (h.qkv_width(), h.out_width(), h.dim);
        let tokens = qkv.len() / qw;
        let mut out = vec![0f32; tokens * ow];
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>();
        for seq in seqs {
            for head in 0..h.query {
                for i in seq.clone() {
                    let q = &qkv[i * qw + head * d..][..d];
                    let scores: Vec<f64> = seq
                        .clone()
                        .map(|j| {
                            let k = &qkv[j * qw + (h.query + head) * d..][..d];
                            let r = (rel.bucket(i as i64 - j as i64) + rel.span as i64).clamp(0, 2 * rel.span as i64 - 1) as usize;
                            let c2p = t.keys.as_ref().map_or(0.0, |p| dot(q, &p[r * ow + head * d..][..d]));
                            let p2c = t.queries.as_ref().map_or(0.0, |p| dot(k, &p[r * ow + head * d..][..d]));
                            (dot(q, k) + c2p + p2c) * scale
                        })
                        .collect();
                    let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..d {
                        let acc: f64 =
                            e.iter().zip(seq.clone()).map(|(p, j)| p / z * qkv[j * qw + (2 * h.query + head) * d + c] as f64).sum();
                        out[i * ow + head * d + c] = acc as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn disentangled_attention_equals_the_formula_on_packed_sequences() {
        let heads = Heads { query: 3, kv: 3, dim: 16 };
        let lens = [1usize, 2, 9, 64, 65, 130, 300];
        let mut seqs = Vec::new();
        let mut n = 0;
        for l in lens {
            seqs.push(n..n + l);
            n += l;
        }
        let mut state = 2026u64;
        let mut rand = |count: usize, amp: f32| -> Vec<f32> {
            (0..count)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * amp
                })
                .collect()
        };
        let qkv = rand(n * heads.qkv_width(), 2.0);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        // Log buckets (v3: 256 buckets over 512 positions, and a small 16), plain clamping
        // (v2: a span of 64), and each term alone.
        for (rel, c2p, p2c) in [
            (Relative { span: 16, buckets: 16, max_position: 512, c2p: true, p2c: true }, true, true),
            (Relative { span: 256, buckets: 256, max_position: 512, c2p: true, p2c: true }, true, true),
            (Relative { span: 64, buckets: 0, max_position: 64, c2p: true, p2c: false }, true, false),
            (Relative { span: 32, buckets: 0, max_position: 32, c2p: false, p2c: true }, false, true),
        ] {
            let table = 2 * rel.span * heads.out_width();
            let t = Tables { keys: c2p.then(|| rand(table, 2.0)), queries: p2c.then(|| rand(table, 2.0)) };
            let scale = 1.0 / ((heads.dim * rel.scale_factor()) as f32).sqrt();
            let mut out = vec![f32::NAN; n * heads.out_width()];
            pool.install(|| attention(&qkv, &mut out, &seqs, heads, scale, &t, &rel.rows(300)));
            let want = reference(&qkv, &seqs, heads, scale as f64, &t, &rel);
            let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-5, "{rel:?}: max abs diff {worst}");
        }
    }
}
