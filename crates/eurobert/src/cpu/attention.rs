//! The self-attention block: fused QKV projection (with biases where the checkpoint has
//! them), RoPE in place where the recipe rotates, blocked attention per sequence, and the
//! output projection added straight onto the residual stream.

use rayon::prelude::*;

use super::flash::{self, Heads};
use super::linear::{Projection, Rows};
use super::profile::{span, Op};
use super::{simd, Batch, Precision, Scratch};
use crate::config::Config;
use crate::recipe::Dense;
use crate::rope::RopeTable;

pub(crate) struct Attention {
    /// q, k and v projections stacked along the output dimension.
    qkv: Projection,
    o: Projection,
    heads: Heads,
    scale: f32,
    /// Attend only to keys within this distance (ModernBERT's local layers).
    window: Option<usize>,
}

impl Attention {
    /// `window`: attend only to keys within that distance.
    pub fn new(qkv: Dense, o: Dense, p: Precision, c: &Config, window: Option<usize>) -> Self {
        Attention {
            qkv: p.projection(qkv),
            o: p.projection(o),
            heads: Heads { query: c.num_attention_heads, kv: c.num_key_value_heads, dim: c.head_dim },
            scale: (c.head_dim as f32).powf(-0.5),
            window,
        }
    }

    pub fn bytes(&self) -> usize {
        self.qkv.bytes() + self.o.bytes()
    }

    /// `x += o(attention(qkv(normed)))`.
    pub fn forward(&self, normed: &[f32], x: &mut [f32], batch: &Batch, rope: Option<&RopeTable>, s: &mut Scratch) {
        let hidden = self.o.outputs();
        let (qw, ow) = (self.heads.qkv_width(), self.heads.out_width());
        let n = batch.tokens();
        let qkv = &mut s.qkv[..n * qw];
        {
            let _t = span(Op::Qkv);
            self.qkv.forward(Rows::dense(normed, hidden), qkv, false);
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
            flash::attention(qkv, attn, &batch.sequences, self.heads, self.scale, self.window);
        }
        let _t = span(Op::Output);
        self.o.forward(Rows::dense(attn, ow), x, true);
    }
}
