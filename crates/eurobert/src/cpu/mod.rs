//! The f32 CPU encoder: EuroBERT computed over *packed* batches, every sequence of a batch
//! laid end to end in one `(tokens, hidden)` matrix with no padding. Projections, norms and
//! the MLP are per token, so they run as single GEMMs over all tokens of the batch; attention
//! runs per sequence over its own range (`flash`). Weights are packed once at load for the
//! GEMM kernel (`linear`); element-wise work uses run-time dispatched SIMD (`simd`).

mod attention;
mod flash;
mod linear;
mod mlp;
mod profile;
mod qlinear;
pub(crate) mod simd;
#[cfg(target_arch = "x86_64")]
mod vnni;

use std::ops::Range;

use rayon::prelude::*;

use crate::batching::Layout;
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, Dense, LayerWeights};
use crate::config::Config;
use crate::encoder::Encoder;
use crate::error::Result;
use crate::rope::Rope;
use attention::Attention;
use linear::{Linear, Projection, Rows};
use mlp::Mlp;
use profile::{span, Op};

/// Sequences packed end to end.
pub(crate) struct Batch {
    pub ids: Vec<u32>,
    /// Position of each token within its own sequence.
    pub positions: Vec<u32>,
    pub sequences: Vec<Range<usize>>,
}

impl Batch {
    pub fn pack(sequences: &[&[u32]]) -> Self {
        let total = sequences.iter().map(|s| s.len()).sum();
        let mut b =
            Batch { ids: Vec::with_capacity(total), positions: Vec::with_capacity(total), sequences: Vec::with_capacity(sequences.len()) };
        for s in sequences {
            let start = b.ids.len();
            b.ids.extend_from_slice(s);
            b.positions.extend(0..s.len() as u32);
            b.sequences.push(start..b.ids.len());
        }
        b
    }

    pub fn tokens(&self) -> usize {
        self.ids.len()
    }
}

/// Activation buffers of one forward pass, reused by every layer.
pub(crate) struct Scratch {
    normed: Vec<f32>,
    qkv: Vec<f32>,
    attn: Vec<f32>,
    mlp: Vec<f32>,
}

/// Turns the checkpoint's dense f32 projections into the layouts the blocks keep.
#[derive(Clone, Copy)]
pub(crate) struct Precision {
    /// Block projections in int8 (`dtype: 'q8'`); the classifier always stays f32.
    q8: bool,
}

impl Precision {
    fn projection(self, d: Dense) -> Projection {
        Projection::new(&d.weight, d.outputs, d.inputs, d.bias, self.q8)
    }
}

struct Layer {
    input_norm: Vec<f32>,
    attention: Attention,
    post_attention_norm: Vec<f32>,
    mlp: Mlp,
}

impl Layer {
    fn new(w: LayerWeights, p: Precision, c: &Config) -> Self {
        Layer {
            input_norm: w.input_norm,
            attention: Attention::new(w.qkv, w.o, p, c),
            post_attention_norm: w.post_attention_norm,
            mlp: Mlp::new(w.gate_up, w.down, p),
        }
    }

    fn forward(&self, x: &mut [f32], batch: &Batch, rope: &crate::rope::RopeTable, eps: f32, s: &mut Scratch) {
        let n = x.len();
        let mut normed = std::mem::take(&mut s.normed);
        rms_norm(x, &self.input_norm, eps, &mut normed[..n]);
        self.attention.forward(&normed[..n], x, batch, rope, s);
        rms_norm(x, &self.post_attention_norm, eps, &mut normed[..n]);
        self.mlp.forward(&normed[..n], x, s);
        s.normed = normed;
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let _t = span(Op::Norm);
    let rows = 32 * w.len();
    x.par_chunks(rows).zip(out.par_chunks_mut(rows)).for_each(|(x, o)| simd::rms_norm(x, w, eps, o));
}

pub(crate) struct CpuEncoder {
    config: Config,
    /// `(vocab, hidden)`, row-major.
    embed_tokens: Vec<f32>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    classifier: Linear,
    rope: Rope,
}

impl CpuEncoder {
    /// With `q8`, the block projections run in int8 (`qlinear`). Layers are read and packed
    /// one at a time, so the load holds at most one layer in f32 beside what it keeps.
    pub fn load(config: &Config, checkpoint: &Checkpoint, q8: bool) -> Result<Self> {
        let c = config;
        let p = Precision { q8 };
        let layers = (0..c.num_hidden_layers).map(|i| Ok(Layer::new(checkpoint.layer(i)?, p, c))).collect::<Result<Vec<_>>>()?;
        let head = checkpoint.classifier()?;
        Ok(CpuEncoder {
            config: c.clone(),
            embed_tokens: checkpoint.embed_tokens()?,
            layers,
            norm: checkpoint.final_norm()?,
            classifier: Linear::new(&head.weight, head.outputs, head.inputs, head.bias),
            rope: Rope::new(c.head_dim, c.rope_theta, c.max_position_embeddings),
        })
    }

    /// Logits `(tokens, num_labels)` of a packed batch, row-major, in batch order.
    fn forward_packed(&self, batch: &Batch, cancel: &Cancel) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, n) = (c.hidden_size, batch.tokens());
        let longest = batch.sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let rope = self.rope.table(longest);
        let mut x = vec![0f32; n * h];
        {
            let _t = span(Op::Embed);
            x.par_chunks_mut(h).zip(batch.ids.par_iter()).with_min_len(64).for_each(|(row, &id)| {
                row.copy_from_slice(&self.embed_tokens[id as usize * h..][..h]);
            });
        }
        let mlp_rows = self.layers.first().map_or(0, |l| l.mlp.chunk_rows()).min(n);
        let mut s = Scratch {
            normed: vec![0f32; n * h],
            qkv: vec![0f32; n * (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim],
            attn: vec![0f32; n * c.num_attention_heads * c.head_dim],
            mlp: vec![0f32; mlp_rows * 2 * c.intermediate_size],
        };
        let eps = c.rms_norm_eps as f32;
        for layer in &self.layers {
            cancel.check()?;
            layer.forward(&mut x, batch, &rope, eps, &mut s);
        }
        let mut normed = std::mem::take(&mut s.normed);
        drop(s);
        rms_norm(&x, &self.norm, eps, &mut normed);
        let mut logits = vec![0f32; n * c.num_labels()];
        {
            let _t = span(Op::Classifier);
            self.classifier.forward(Rows::dense(&normed, h), &mut logits, false);
        }
        profile::report(n, batch.sequences.len());
        Ok(logits)
    }
}

impl Encoder for CpuEncoder {
    fn layout(&self) -> Layout {
        Layout::Packed
    }

    fn forward(&self, sequences: &[&[u32]], cancel: &Cancel) -> Result<Vec<f32>> {
        self.forward_packed(&Batch::pack(sequences), cancel)
    }

    fn weight_bytes(&self) -> usize {
        4 * (self.embed_tokens.len() + self.norm.len())
            + self.classifier.bytes()
            + self
                .layers
                .iter()
                .map(|l| 4 * (l.input_norm.len() + l.post_attention_norm.len()) + l.attention.bytes() + l.mlp.bytes())
                .sum::<usize>()
    }
}
