//! The f32/int8 CPU encoder: any recipe (`recipe.rs`) computed over *packed* batches, every
//! sequence of a batch laid end to end in one `(tokens, hidden)` matrix with no padding. Projections, norms and
//! the MLP are per token, so they run as single GEMMs over all tokens of the batch; attention
//! runs per sequence over its own range (`flash`). Weights are packed once at load for the
//! GEMM kernel (`linear`); element-wise work uses run-time dispatched SIMD (`simd`).

#[cfg(target_arch = "x86_64")]
mod amx;
mod attention;
mod disentangled;
mod flash;
#[cfg(target_arch = "x86_64")]
mod half_gemm;
mod half_linear;
mod linear;
mod mlp;
mod profile;
mod qlinear;
mod rows_gemm;
mod shared;
mod short_attention;
pub(crate) mod simd;
#[cfg(target_arch = "x86_64")]
mod vnni;

use std::ops::Range;

use rayon::prelude::*;

use crate::batching::Layout;
use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::encoder::Encoder;
use crate::error::Result;
use crate::recipe::{Act, Dense, Head, NormKind, NormWeights, Positions, Recipe};
use crate::rope::{Rope, RopeTable};
use attention::Attention;
pub(crate) use half_linear::Half;
use linear::{Linear, Projection, Rows};
use mlp::Mlp;
use profile::{span, Op};
pub(crate) use rows_gemm::gemm_rows;
pub(crate) use shared::Shared;

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

/// How the block projections keep their weights; the classifier, norms and biases always stay
/// f32, and so does every activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    F32,
    /// int8 (`dtype: 'q8'`): per-channel weights, per-token activations.
    Q8,
    /// `dtype: 'f16'` / `'bf16'`: 16-bit weights widened to f32 as they are used; the token
    /// embeddings are stored so too.
    Half(Half),
}

/// Turns the checkpoint's dense f32 projections into the layouts the blocks keep.
#[derive(Clone, Copy)]
pub(crate) struct Precision {
    stored: Stored,
}

impl Precision {
    fn projection(self, d: Dense) -> Projection {
        Projection::new(&d.weight, d.outputs, d.inputs, d.bias, self.stored)
    }
}

/// The token embedding table, `(vocab, width)` row-major, in f32 or 16 bits.
enum Table {
    F32(Vec<f32>),
    Half(Vec<u16>, Half),
}

impl Table {
    fn new(t: Vec<f32>, stored: Stored) -> Self {
        match stored {
            Stored::Half(kind) => Table::Half(kind.narrow(&t), kind),
            Stored::F32 | Stored::Q8 => Table::F32(t),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Table::F32(t) => 4 * t.len(),
            Table::Half(t, _) => 2 * t.len(),
        }
    }

    fn row_into(&self, id: usize, out: &mut [f32]) {
        let e = out.len();
        match self {
            Table::F32(t) => out.copy_from_slice(&t[id * e..][..e]),
            Table::Half(t, kind) => kind.widen(&t[id * e..][..e], out),
        }
    }
}

/// A norm with its weights: RMSNorm, or LayerNorm with or without a shift.
pub(crate) struct Norm {
    kind: NormKind,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    eps: f32,
}

impl Norm {
    fn new(w: NormWeights, recipe: &Recipe) -> Self {
        Norm { kind: recipe.norm, weight: w.weight, bias: w.bias, eps: recipe.eps }
    }

    fn bytes(&self) -> usize {
        4 * (self.weight.len() + self.bias.as_ref().map_or(0, Vec::len))
    }

    /// Each row of `x` normalized into `out`, rows in parallel.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let _t = span(Op::Norm);
        let rows = 32 * self.weight.len();
        let (w, b, eps) = (&self.weight, self.bias.as_deref(), self.eps);
        match self.kind {
            NormKind::Rms => x.par_chunks(rows).zip(out.par_chunks_mut(rows)).for_each(|(x, o)| simd::rms_norm(x, w, eps, o)),
            NormKind::Layer => x.par_chunks(rows).zip(out.par_chunks_mut(rows)).for_each(|(x, o)| simd::layer_norm(x, w, b, eps, o)),
        }
    }
}

struct Layer {
    attention_norm: Option<Norm>,
    attention: Attention,
    mlp_norm: Norm,
    mlp: Mlp,
    /// Which of the encoder's RoPE tables this layer rotates with, if any.
    rope: Option<usize>,
}

impl Layer {
    /// One layer over the packed batch `x`, pre-norm (`x + f(norm(x))`) or post-norm
    /// (`norm(x + f(x))`) as the recipe says.
    fn forward(&self, x: &mut Vec<f32>, batch: &Batch, rope: Option<&RopeTable>, distances: &[u32], pre_norm: bool, s: &mut Scratch) {
        let n = x.len();
        let mut normed = std::mem::take(&mut s.normed);
        if pre_norm {
            let input = match &self.attention_norm {
                Some(norm) => {
                    norm.forward(x, &mut normed[..n]);
                    Some(&normed[..n])
                }
                None => None,
            };
            self.attention.forward(input, x, batch, rope, distances, s);
            self.mlp_norm.forward(x, &mut normed[..n]);
            self.mlp.forward(Some(&normed[..n]), x, s);
        } else {
            self.attention.forward(None, x, batch, rope, distances, s);
            if let Some(norm) = &self.attention_norm {
                norm.forward(x, &mut normed[..n]);
                std::mem::swap(x, &mut normed);
            }
            self.mlp.forward(None, x, s);
            self.mlp_norm.forward(x, &mut normed[..n]);
            std::mem::swap(x, &mut normed);
        }
        s.normed = normed;
    }
}

/// What turns ids into the first hidden states, in the recipe's order: `(token + type) +
/// position`, then the embedding norm, then the projection to the hidden width.
struct Embeddings {
    tokens: Table,
    positions: Option<(Vec<f32>, usize)>,
    token_type: Option<Vec<f32>>,
    norm: Option<Norm>,
    projection: Option<Linear>,
    /// Project, then norm (DeBERTa), rather than norm, then project (ELECTRA).
    project_then_norm: bool,
    width: usize,
}

impl Embeddings {
    fn bytes(&self) -> usize {
        self.tokens.bytes()
            + 4 * (self.positions.as_ref().map_or(0, |p| p.0.len()) + self.token_type.as_ref().map_or(0, Vec::len))
            + self.norm.as_ref().map_or(0, Norm::bytes)
            + self.projection.as_ref().map_or(0, Linear::bytes)
    }

    /// `(tokens, hidden)` hidden states of a packed batch.
    fn forward(&self, batch: &Batch, hidden: usize) -> Vec<f32> {
        let _t = span(Op::Embed);
        let (e, n) = (self.width, batch.tokens());
        let mut x = vec![0f32; n * e];
        x.par_chunks_mut(e).zip(batch.ids.par_iter().zip(batch.positions.par_iter())).with_min_len(64).for_each(|(row, (&id, &pos))| {
            self.tokens.row_into(id as usize, row);
            if let Some(t) = &self.token_type {
                row.iter_mut().zip(t).for_each(|(r, v)| *r += v);
            }
            if let Some((table, offset)) = &self.positions {
                let p = &table[(offset + pos as usize) * e..][..e];
                row.iter_mut().zip(p).for_each(|(r, v)| *r += v);
            }
        });
        let norm = |x: Vec<f32>| match &self.norm {
            Some(norm) => {
                let mut out = vec![0f32; x.len()];
                norm.forward(&x, &mut out);
                out
            }
            None => x,
        };
        let project = |x: Vec<f32>| match &self.projection {
            Some(p) => {
                let mut out = vec![0f32; n * hidden];
                p.forward(Rows::dense(&x, e), &mut out, false);
                out
            }
            None => x,
        };
        if self.project_then_norm {
            norm(project(x))
        } else {
            project(norm(x))
        }
    }
}

/// The prediction head before the classifier, when the recipe has one.
struct PredictionHead {
    dense: Linear,
    act: Act,
    norm: Norm,
}

pub(crate) struct CpuEncoder {
    config: Config,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    final_norm: Option<Norm>,
    head: Option<PredictionHead>,
    classifier: Linear,
    /// One RoPE table per distinct θ of the layers.
    ropes: Vec<Rope>,
}

impl CpuEncoder {
    /// `stored` says how the block projections keep their weights (`Stored`). Layers are
    /// read and packed one at a time, so the load holds at most one layer in f32 beside what
    /// it keeps.
    pub fn load(config: &Config, checkpoint: &Checkpoint, stored: Stored) -> Result<Self> {
        let c = config;
        let r = &c.recipe;
        let p = Precision { stored };
        let mut thetas: Vec<f64> = Vec::new();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let w = checkpoint.layer(i)?;
            let rope = match &r.positions {
                Positions::Rope { thetas: t } => Some(match thetas.iter().position(|&x| x == t[i]) {
                    Some(k) => k,
                    None => {
                        thetas.push(t[i]);
                        thetas.len() - 1
                    }
                }),
                Positions::Absolute { .. } | Positions::None => None,
            };
            layers.push(Layer {
                attention_norm: w.attention_norm.map(|n| Norm::new(n, r)),
                attention: Attention::new(w.qkv, w.o, p, c, r.windows[i], w.relative),
                mlp_norm: Norm::new(w.mlp_norm, r),
                mlp: Mlp::new(w.up, w.down, p, r.mlp, c.intermediate_size),
                rope,
            });
        }
        let e = checkpoint.embeddings()?;
        let offset = match r.positions {
            Positions::Absolute { offset } => offset,
            Positions::Rope { .. } | Positions::None => 0,
        };
        let embeddings = Embeddings {
            project_then_norm: r.project_then_norm,
            positions: e.positions.map(|t| (t, offset)),
            token_type: e.token_type,
            norm: e.norm.map(|n| Norm::new(n, r)),
            projection: e.projection.map(|d| Linear::new(&d.weight, d.outputs, d.inputs, d.bias)),
            width: e.width,
            tokens: Table::new(e.tokens, stored),
        };
        let head = checkpoint.head()?.map(|h| PredictionHead {
            dense: Linear::new(&h.dense.weight, h.dense.outputs, h.dense.inputs, h.dense.bias),
            act: match r.head {
                Head::DenseActNorm(a) => a,
                Head::Linear => Act::GeluErf,
            },
            norm: Norm::new(h.norm, r),
        });
        let classifier = checkpoint.classifier()?;
        Ok(CpuEncoder {
            config: c.clone(),
            embeddings,
            layers,
            final_norm: checkpoint.final_norm()?.map(|n| Norm::new(n, r)),
            head,
            classifier: Linear::new(&classifier.weight, classifier.outputs, classifier.inputs, classifier.bias),
            ropes: thetas.into_iter().map(|t| Rope::new(c.head_dim, t, c.max_position_embeddings)).collect(),
        })
    }

    /// Logits `(tokens, num_labels)` of a packed batch, row-major, in batch order.
    fn forward_packed(&self, batch: &Batch, cancel: &Cancel) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, n) = (c.hidden_size, batch.tokens());
        let longest = batch.sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let tables: Vec<_> = self.ropes.iter().map(|r| r.table(longest)).collect();
        let distances = c.recipe.relative.map(|r| r.rows(longest)).unwrap_or_default();
        let mut x = self.embeddings.forward(batch, h);
        let mlp_rows = self.layers.first().map_or(0, |l| l.mlp.chunk_rows()).min(n);
        let mut s = Scratch {
            normed: vec![0f32; n * h],
            qkv: vec![0f32; n * (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim],
            attn: vec![0f32; n * c.num_attention_heads * c.head_dim],
            mlp: vec![0f32; mlp_rows * self.layers.first().map_or(0, |l| l.mlp.width())],
        };
        for layer in &self.layers {
            cancel.check()?;
            layer.forward(&mut x, batch, layer.rope.map(|k| &*tables[k]), &distances, c.recipe.pre_norm, &mut s);
        }
        let mut normed = std::mem::take(&mut s.normed);
        drop(s);
        if let Some(norm) = &self.final_norm {
            norm.forward(&x, &mut normed);
            std::mem::swap(&mut x, &mut normed);
        }
        if let Some(head) = &self.head {
            let _t = span(Op::Classifier);
            head.dense.forward(Rows::dense(&x, h), &mut normed, false);
            let which = act_code(head.act);
            normed.par_chunks_mut(32 * h).for_each(|c| simd::activate(c, which));
            head.norm.forward(&normed, &mut x);
        }
        let mut logits = vec![0f32; n * c.num_labels()];
        {
            let _t = span(Op::Classifier);
            self.classifier.forward(Rows::dense(&x, h), &mut logits, false);
        }
        profile::report(n, batch.sequences.len());
        Ok(logits)
    }
}

/// The code `simd::activate` takes for an activation.
pub(crate) fn act_code(a: Act) -> u8 {
    match a {
        Act::Silu => 0,
        Act::GeluErf => 1,
        Act::GeluTanh => 2,
    }
}

impl Encoder for CpuEncoder {
    fn layout(&self) -> Layout {
        Layout::Packed
    }

    fn forward(&self, sequences: &[&[u32]], cancel: &Cancel) -> Result<Vec<f32>> {
        // The pass's many short parallel steps would each wake a sleeping worker otherwise.
        crate::awake::run(|| self.forward_packed(&Batch::pack(sequences), cancel))
    }

    fn weight_bytes(&self) -> usize {
        self.embeddings.bytes()
            + self.final_norm.as_ref().map_or(0, Norm::bytes)
            + self.head.as_ref().map_or(0, |h| h.dense.bytes() + h.norm.bytes())
            + self.classifier.bytes()
            + self
                .layers
                .iter()
                .map(|l| l.attention_norm.as_ref().map_or(0, Norm::bytes) + l.mlp_norm.bytes() + l.attention.bytes() + l.mlp.bytes())
                .sum::<usize>()
    }
}
