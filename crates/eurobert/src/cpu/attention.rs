//! The self-attention block: fused QKV projection (with biases where the checkpoint has
//! them), RoPE in place where the recipe rotates, blocked attention per sequence, and the
//! output projection added straight onto the residual stream.

use rayon::prelude::*;

use super::disentangled::{self, Tables};
use super::flash::{self, Heads};
use super::linear::{Projection, Rows};
use super::profile::{span, Op};
use super::{simd, Batch, Precision, Scratch};
use crate::config::Config;
use crate::recipe::{Dense, RelativeWeights};
use crate::rope::RopeTable;

pub(crate) struct Attention {
    /// q, k and v projections stacked along the output dimension.
    qkv: Projection,
    o: Projection,
    heads: Heads,
    scale: f32,
    /// Attend only to keys within this distance (ModernBERT's local layers).
    window: Option<usize>,
    /// DeBERTa's relative tables.
    relative: Option<Tables>,
    /// QKᵀ and PV in bf16 where bf16 products pay on this CPU (`dtype: 'q8'`,
    /// `half_gemm::dot_pays`). Not for `dtype: 'bf16'`, whose parity with PyTorch's bf16 it
    /// would break (tests/half.rs: 0.043 against PyTorch's 0.036 on the tiny model at 8,192
    /// tokens).
    bf16: bool,
}

/// Whether bf16 products are faster than f32 FMAs on this CPU: `vdpbf16ps`
/// (`half_gemm::dot_pays`), or AMX-BF16 tiles.
fn bf16_pays() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::half_gemm::dot_pays() || super::amx::bf16_available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

impl Attention {
    /// `window`: attend only to keys within that distance; `relative`: DeBERTa's tables.
    pub fn new(qkv: Dense, o: Dense, p: Precision, c: &Config, window: Option<usize>, relative: Option<RelativeWeights>) -> Self {
        // DeBERTa divides by √(d · (1 + c2p + p2c)), the others by √d.
        let factor = c.recipe.relative.map_or(1, |r| r.scale_factor());
        Attention {
            qkv: p.projection(qkv),
            o: p.projection(o),
            bf16: p.stored == super::Stored::Q8 && bf16_pays(),
            heads: Heads { query: c.num_attention_heads, kv: c.num_key_value_heads, dim: c.head_dim },
            scale: 1.0 / ((c.head_dim * factor) as f32).sqrt(),
            window,
            relative: relative.filter(|r| r.keys.is_some() || r.queries.is_some()).map(|r| Tables { keys: r.keys, queries: r.queries }),
        }
    }

    pub fn bytes(&self) -> usize {
        let rel = self.relative.as_ref().map_or(0, |t| 4 * (t.keys.as_ref().map_or(0, Vec::len) + t.queries.as_ref().map_or(0, Vec::len)));
        self.qkv.bytes() + self.o.bytes() + rel
    }

    /// `x += o(attention(qkv(normed)))`, with `normed` None: `x += o(attention(qkv(x)))` (a
    /// post-norm layer; QKV is made before `x` changes, so no copy of it is needed).
    /// `distances`: the relative table row of each distance (`Relative::rows` of the batch's
    /// longest sequence), for DeBERTa.
    pub fn forward(
        &self,
        normed: Option<&[f32]>,
        x: &mut [f32],
        batch: &Batch,
        rope: Option<&RopeTable>,
        distances: &[u32],
        s: &mut Scratch,
    ) {
        let hidden = self.o.outputs();
        let (qw, ow) = (self.heads.qkv_width(), self.heads.out_width());
        let n = batch.tokens();
        let qkv = &mut s.qkv[..n * qw];
        {
            let _t = span(Op::Qkv);
            self.qkv.forward(Rows::dense(normed.unwrap_or(x), hidden), qkv, false);
        }
        if let Some(rope) = rope {
            let _t = span(Op::Rope);
            let rotated = self.heads.query + self.heads.kv;
            qkv.par_chunks_mut(qw)
                .zip(batch.positions.par_iter())
                .with_min_len(64)
                .for_each(|(row, &pos)| simd::rope(row, rotated, rope.cos_at(pos as usize), rope.sin_at(pos as usize)));
        }
        let attn = &mut s.attn[..n * ow];
        {
            let _t = span(Op::Attention);
            match &self.relative {
                Some(t) => disentangled::attention(qkv, attn, &batch.sequences, self.heads, self.scale, t, distances),
                None => flash::attention(qkv, attn, &batch.sequences, self.heads, self.scale, self.window, self.bf16),
            }
        }
        let _t = span(Op::Output);
        self.o.forward(Rows::dense(attn, ow), x, true);
    }
}
