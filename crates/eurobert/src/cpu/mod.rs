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

use std::ops::Range;

use rayon::prelude::*;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::rope::Rope;
use crate::weights::Weights;
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
        let mut b = Batch {
            ids: Vec::with_capacity(total),
            positions: Vec::with_capacity(total),
            sequences: Vec::with_capacity(sequences.len()),
        };
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

/// Reads tensors of the checkpoint into the layouts the blocks keep.
pub(crate) struct Source<'a> {
    weights: &'a Weights,
    /// Block projections in int8 (`dtype: 'q8'`); the classifier always stays f32.
    q8: bool,
}

impl Source<'_> {
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        self.weights.read_f32(name, &[len])
    }

    /// `{prefix}.weight` `(out, inp)` and, with `bias`, `{prefix}.bias`, in f32.
    fn linear(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
        let w = self.weights.read_f32(&format!("{prefix}.weight"), &[out, inp])?;
        let b = if bias { Some(self.vector(&format!("{prefix}.bias"), out)?) } else { None };
        Ok(Linear::new(&w, out, inp, b))
    }

    /// A block projection: as `linear`, in the encoder's precision.
    fn projection(&self, prefix: &str, out: usize, inp: usize, bias: bool) -> Result<Projection> {
        self.stacked(&[(prefix.to_string(), out)], inp, bias)
    }

    /// Several projections of the same input stacked along the output dimension (one GEMM).
    fn stacked(&self, parts: &[(String, usize)], inp: usize, bias: bool) -> Result<Projection> {
        let out: usize = parts.iter().map(|p| p.1).sum();
        let mut w = Vec::with_capacity(out * inp);
        let mut b = bias.then(|| Vec::with_capacity(out));
        for (prefix, rows) in parts {
            w.extend(self.weights.read_f32(&format!("{prefix}.weight"), &[*rows, inp])?);
            if let Some(b) = &mut b {
                b.extend(self.vector(&format!("{prefix}.bias"), *rows)?);
            }
        }
        Ok(Projection::new(&w, out, inp, b, self.q8))
    }
}

struct Layer {
    input_norm: Vec<f32>,
    attention: Attention,
    post_attention_norm: Vec<f32>,
    mlp: Mlp,
}

impl Layer {
    fn load(src: &Source, i: usize, c: &Config) -> Result<Self> {
        let p = format!("model.layers.{i}");
        Ok(Layer {
            input_norm: src.vector(&format!("{p}.input_layernorm.weight"), c.hidden_size)?,
            attention: Attention::load(src, &format!("{p}.self_attn"), c)?,
            post_attention_norm: src.vector(&format!("{p}.post_attention_layernorm.weight"), c.hidden_size)?,
            mlp: Mlp::load(src, &format!("{p}.mlp"), c)?,
        })
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
    x.par_chunks(rows)
        .zip(out.par_chunks_mut(rows))
        .for_each(|(x, o)| simd::rms_norm(x, w, eps, o));
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
    /// With `q8`, the block projections run in int8 (`qlinear`).
    pub fn load(config: &Config, weights: &Weights, q8: bool) -> Result<Self> {
        let c = config;
        let src = Source { weights, q8 };
        let layers = (0..c.num_hidden_layers)
            .map(|i| Layer::load(&src, i, c))
            .collect::<Result<Vec<_>>>()?;
        Ok(CpuEncoder {
            config: c.clone(),
            embed_tokens: weights.read_f32("model.embed_tokens.weight", &[c.vocab_size, c.hidden_size])?,
            layers,
            norm: src.vector("model.norm.weight", c.hidden_size)?,
            classifier: src.linear("classifier", c.num_labels(), c.hidden_size, true)?,
            rope: Rope::new(c.head_dim, c.rope_theta, c.max_position_embeddings),
        })
    }

    /// Bytes of weights held.
    pub fn bytes(&self) -> usize {
        4 * (self.embed_tokens.len() + self.norm.len())
            + self.classifier.bytes()
            + self
                .layers
                .iter()
                .map(|l| 4 * (l.input_norm.len() + l.post_attention_norm.len()) + l.attention.bytes() + l.mlp.bytes())
                .sum::<usize>()
    }

    /// Logits `(tokens, num_labels)` of a packed batch, row-major, in batch order. Must run
    /// inside the model's thread pool.
    pub fn forward(&self, batch: &Batch) -> Result<Vec<f32>> {
        let c = &self.config;
        let (h, n) = (c.hidden_size, batch.tokens());
        let longest = batch.sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        if longest > c.max_position_embeddings {
            return Err(Error::InvalidArgument(format!(
                "a sequence of {longest} tokens is longer than the model's max_position_embeddings ({})",
                c.max_position_embeddings
            )));
        }
        if let Some(bad) = batch.ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary (vocab_size {})",
                c.vocab_size
            )));
        }
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
