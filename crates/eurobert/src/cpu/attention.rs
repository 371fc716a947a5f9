//! The self-attention block: fused QKV projection, RoPE in place, blocked attention per
//! sequence, and the output projection added straight onto the residual stream.

use rayon::prelude::*;

use super::flash::{self, Heads};
use super::linear::{Projection, Rows};
use super::profile::{span, Op};
use super::{simd, Batch, Scratch, Source};
use crate::config::Config;
use crate::error::Result;
use crate::rope::RopeTable;

pub(crate) struct Attention {
    /// q, k and v projections stacked along the output dimension.
    qkv: Projection,
    o: Projection,
    heads: Heads,
    scale: f32,
}

impl Attention {
    pub fn load(src: &Source, prefix: &str, c: &Config) -> Result<Self> {
        let heads = Heads {
            query: c.num_attention_heads,
            kv: c.num_key_value_heads,
            dim: c.head_dim,
        };
        let (h, q_out, kv_out) = (c.hidden_size, heads.out_width(), heads.kv * heads.dim);
        let p = |n: &str| format!("{prefix}.{n}");
        Ok(Attention {
            qkv: src.stacked(
                &[(p("q_proj"), q_out), (p("k_proj"), kv_out), (p("v_proj"), kv_out)],
                h,
                c.attention_bias,
            )?,
            o: src.projection(&p("o_proj"), h, q_out, c.attention_bias)?,
            heads,
            scale: (c.head_dim as f32).powf(-0.5),
        })
    }

    pub fn bytes(&self) -> usize {
        self.qkv.bytes() + self.o.bytes()
    }

    /// `x += o(attention(qkv(normed)))`.
    pub fn forward(&self, normed: &[f32], x: &mut [f32], batch: &Batch, rope: &RopeTable, s: &mut Scratch) {
        let hidden = self.o.outputs();
        let (qw, ow) = (self.heads.qkv_width(), self.heads.out_width());
        let n = batch.tokens();
        let qkv = &mut s.qkv[..n * qw];
        {
            let _t = span(Op::Qkv);
            self.qkv.forward(Rows::dense(normed, hidden), qkv, false);
        }
        {
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
            flash::attention(qkv, attn, &batch.sequences, self.heads, self.scale);
        }
        let _t = span(Op::Output);
        self.o.forward(Rows::dense(attn, ow), x, true);
    }
}
