//! The MLP block (a GLU: SwiGLU, GeGLU; or plain: `down(act(up(x)))`), run over chunks of
//! rows so its widest activation (`tokens × 2·intermediate` for a GLU) stays a few megabytes
//! however long the batch.

use rayon::prelude::*;

use super::linear::{Projection, Rows};
use super::profile::{span, Op};
use super::{act_code, simd, Precision, Scratch};
use crate::recipe::{Act, Dense, Mlp as Kind};

/// Bytes of gate/up activations per chunk.
const CHUNK_BYTES: usize = 8 << 20;

pub(crate) struct Mlp {
    /// The input projection: `[a | b]` stacked along the outputs for a GLU.
    up: Projection,
    down: Projection,
    intermediate: usize,
    kind: Kind,
    /// A plain MLP's activation code: GELU (erf) to int8's precision where the outputs go to
    /// an int8 projection (`simd::GELU_Q8`), else exact.
    act: u8,
}

impl Mlp {
    pub fn new(up: Dense, down: Dense, p: Precision, kind: Kind, intermediate: usize) -> Self {
        let act = match kind {
            Kind::Plain(Act::GeluErf) if p.stored == super::Stored::Q8 => simd::GELU_Q8,
            Kind::Plain(a) | Kind::Glu(a) => act_code(a),
        };
        Mlp { up: p.projection(up), down: p.projection(down), intermediate, kind, act }
    }

    /// Width of the input projection's output: 2·intermediate for a GLU.
    pub fn width(&self) -> usize {
        match self.kind {
            Kind::Glu(_) => 2 * self.intermediate,
            Kind::Plain(_) => self.intermediate,
        }
    }

    pub fn bytes(&self) -> usize {
        self.up.bytes() + self.down.bytes()
    }

    /// Rows per chunk: a multiple of 64 (the GEMM's row block) within `CHUNK_BYTES`.
    pub fn chunk_rows(&self) -> usize {
        (CHUNK_BYTES / (4 * self.width())).max(64) / 64 * 64
    }

    /// `x += down(act(a) * b)` with `[a | b] = up(normed)`, or `x += down(act(up(normed)))`;
    /// with `normed` None, of `x` itself (a post-norm layer: each chunk's `up` reads its rows
    /// before `down` adds to them, so no copy of `x` is needed).
    pub fn forward(&self, normed: Option<&[f32]>, x: &mut [f32], s: &mut Scratch) {
        let hidden = self.down.outputs();
        let (i, w) = (self.intermediate, self.width());
        let rows = self.chunk_rows();
        for start in (0..x.len()).step_by(rows * hidden) {
            let end = x.len().min(start + rows * hidden);
            let r = (end - start) / hidden;
            let h = &mut s.mlp[..r * w];
            // A plain MLP's activation is applied by the int8 kernel as it stores, where it can.
            let fused = {
                let _t = span(Op::GateUp);
                let inp = Rows::dense(&normed.unwrap_or(x)[start..end], hidden);
                match self.kind {
                    Kind::Plain(_) => self.up.forward_act(inp, h, self.act),
                    Kind::Glu(_) => {
                        self.up.forward(inp, h, false);
                        false
                    }
                }
            };
            if !fused {
                let _t = span(Op::Act);
                match self.kind {
                    Kind::Glu(Act::Silu) => h.par_chunks_mut(w * 8).for_each(|c| simd::silu_mul(c, i)),
                    Kind::Glu(a) => h.par_chunks_mut(w * 8).for_each(|c| simd::gelu_mul(c, i, a == Act::GeluTanh)),
                    Kind::Plain(_) => h.par_chunks_mut(w * 8).for_each(|c| simd::activate(c, self.act)),
                }
            }
            let _t = span(Op::Down);
            // A GLU's activations sit in the first half of each row: read them with its stride.
            self.down.forward(Rows { data: h, rows: r, cols: i, stride: w }, &mut x[start..end], true);
        }
    }
}
