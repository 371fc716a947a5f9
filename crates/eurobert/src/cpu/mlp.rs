//! The SwiGLU MLP block, run over chunks of rows so its widest activation (`tokens ×
//! 2·intermediate`) stays a few megabytes however long the batch.

use rayon::prelude::*;

use super::linear::{Projection, Rows};
use super::profile::{span, Op};
use super::{simd, Precision, Scratch};
use crate::checkpoint::Dense;

/// Bytes of gate/up activations per chunk.
const CHUNK_BYTES: usize = 8 << 20;

pub(crate) struct Mlp {
    /// gate and up projections stacked along the output dimension.
    gate_up: Projection,
    down: Projection,
    intermediate: usize,
}

impl Mlp {
    pub fn new(gate_up: Dense, down: Dense, p: Precision) -> Self {
        let intermediate = down.inputs;
        Mlp { gate_up: p.projection(gate_up), down: p.projection(down), intermediate }
    }

    pub fn bytes(&self) -> usize {
        self.gate_up.bytes() + self.down.bytes()
    }

    /// Rows per chunk: a multiple of 64 (the GEMM's row block) within `CHUNK_BYTES`.
    pub fn chunk_rows(&self) -> usize {
        (CHUNK_BYTES / (8 * self.intermediate)).max(64) / 64 * 64
    }

    /// `x += down(silu(gate(normed)) * up(normed))`.
    pub fn forward(&self, normed: &[f32], x: &mut [f32], s: &mut Scratch) {
        let hidden = self.down.outputs();
        let i = self.intermediate;
        let rows = self.chunk_rows();
        for (inp, out) in normed.chunks(rows * hidden).zip(x.chunks_mut(rows * hidden)) {
            let r = inp.len() / hidden;
            let gu = &mut s.mlp[..r * 2 * i];
            {
                let _t = span(Op::GateUp);
                self.gate_up.forward(Rows::dense(inp, hidden), gu, false);
            }
            {
                let _t = span(Op::Act);
                gu.par_chunks_mut(2 * i * 8).for_each(|c| simd::silu_mul(c, i));
            }
            let _t = span(Op::Down);
            // The activations sit in the gate half of each row: read them with its stride.
            self.down.forward(Rows { data: gu, rows: r, cols: i, stride: 2 * i }, out, true);
        }
    }
}
