//! The EuroBERT encoder on Candle, for GPU devices (CUDA, Metal) and f16/bf16 compute: right-
//! padded batches with a key mask. The f32 CPU path is `cpu`, which packs batches instead.
//!
//! Activations stay 2-D `(tokens, features)` between layers so every projection is one GEMM
//! over the whole padded batch; Q/K/V and gate/up come fused from the checkpoint.

use candle_core::{DType, Device, Tensor};

use crate::batching::Layout;
use crate::cancel::Cancel;
use crate::checkpoint::{Checkpoint, Dense};
use crate::config::Config;
use crate::encoder::Encoder;
use crate::error::Result;
use crate::rope::Rope;

/// Uploads checkpoint tensors to the device in the compute dtype, counting their bytes.
struct Upload<'a> {
    device: &'a Device,
    dtype: DType,
    bytes: usize,
}

impl Upload<'_> {
    fn vector(&mut self, v: Vec<f32>) -> Result<Tensor> {
        let n = v.len();
        self.tensor(v, &[n])
    }

    fn tensor(&mut self, v: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        self.bytes += v.len() * self.dtype.size_in_bytes();
        Ok(Tensor::from_vec(v, shape, self.device)?.to_dtype(self.dtype)?)
    }

    fn linear(&mut self, d: Dense) -> Result<Linear> {
        Ok(Linear { weight: self.tensor(d.weight, &[d.outputs, d.inputs])?, bias: d.bias.map(|b| self.vector(b)).transpose()? })
    }
}

struct Linear {
    /// `(out, in)`, as stored by PyTorch.
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

/// What one padded batch shares across layers.
struct Padded {
    batch: usize,
    seq_len: usize,
    cos: Tensor,
    sin: Tensor,
    /// Additive mask over keys `(batch, 1, 1, seq_len)`: 0 for real tokens, -inf for padding.
    mask: Tensor,
}

struct Attention {
    /// q, k and v projections stacked along the output dimension.
    qkv: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// `o(attention(qkv(x)))` for `x` of `(batch·seq_len, hidden)`.
    fn forward(&self, x: &Tensor, p: &Padded) -> Result<Tensor> {
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let (batch, seq_len) = (p.batch, p.seq_len);
        let qkv = self.qkv.forward(x)?;
        let heads = |start: usize, n: usize| -> Result<Tensor> {
            Ok(qkv.narrow(1, start * hd, n * hd)?.reshape((batch, seq_len, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let q = candle_nn::rotary_emb::rope(&heads(0, nh)?, &p.cos, &p.sin)?;
        let k = candle_nn::rotary_emb::rope(&heads(nh, nkv)?, &p.cos, &p.sin)?;
        let v = heads(nh + nkv, nkv)?;
        // Query head h reads key/value head h / n_rep (transformers' repeat_kv): group the
        // n_rep query heads of each kv head as extra rows instead of copying k and v.
        let n_rep = nh / nkv;
        let q = q.reshape((batch, nkv, n_rep * seq_len, hd))?;
        let scores = (q.matmul(&k.t()?)? * (hd as f64).powf(-0.5))?.broadcast_add(&p.mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let attn = probs
            .matmul(&v)? // (B, KV, n_rep*T, D)
            .reshape((batch, nh, seq_len, hd))?
            .transpose(1, 2)?
            .reshape((batch * seq_len, nh * hd))?;
        self.o.forward(&attn)
    }
}

struct Mlp {
    /// gate and up projections stacked along the output dimension.
    gate_up: Linear,
    down: Linear,
    intermediate: usize,
}

impl Mlp {
    /// `down(silu(gate(x)) * up(x))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let i = self.intermediate;
        let gu = self.gate_up.forward(x)?;
        let act = (gu.narrow(1, 0, i)?.silu()? * gu.narrow(1, i, i)?)?;
        self.down.forward(&act)
    }
}

struct Layer {
    input_norm: Tensor,
    attention: Attention,
    post_attention_norm: Tensor,
    mlp: Mlp,
}

impl Layer {
    fn forward(&self, x: Tensor, p: &Padded, eps: f32) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(&x, &self.input_norm, eps)?;
        let x = (x + self.attention.forward(&h, p)?)?;
        let h = candle_nn::ops::rms_norm(&x, &self.post_attention_norm, eps)?;
        Ok((x + self.mlp.forward(&h)?)?)
    }
}

pub(crate) struct CandleEncoder {
    num_labels: usize,
    eps: f32,
    device: Device,
    dtype: DType,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    classifier: Linear,
    rope: Rope,
    bytes: usize,
}

impl CandleEncoder {
    pub fn load(config: &Config, checkpoint: &Checkpoint, dtype: DType, device: &Device) -> Result<Self> {
        let c = config;
        let mut up = Upload { device, dtype, bytes: 0 };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let w = checkpoint.layer(i)?;
            layers.push(Layer {
                input_norm: up.vector(w.input_norm)?,
                attention: Attention {
                    qkv: up.linear(w.qkv)?,
                    o: up.linear(w.o)?,
                    heads: c.num_attention_heads,
                    kv_heads: c.num_key_value_heads,
                    head_dim: c.head_dim,
                },
                post_attention_norm: up.vector(w.post_attention_norm)?,
                mlp: Mlp { gate_up: up.linear(w.gate_up)?, down: up.linear(w.down)?, intermediate: c.intermediate_size },
            });
        }
        let embed_tokens = up.tensor(checkpoint.embed_tokens()?, &[c.vocab_size, c.hidden_size])?;
        let norm = up.vector(checkpoint.final_norm()?)?;
        let classifier = up.linear(checkpoint.classifier()?)?;
        Ok(CandleEncoder {
            num_labels: c.num_labels(),
            eps: c.rms_norm_eps as f32,
            device: device.clone(),
            dtype,
            embed_tokens,
            layers,
            norm,
            classifier,
            bytes: up.bytes,
            rope: Rope::new(c.head_dim, c.rope_theta, c.max_position_embeddings),
        })
    }

    /// Logits `(batch, seq_len, num_labels)` in f32 for a right-padded batch: `ids` is
    /// `batch × seq_len` ids, row-major; row `b` has `lengths[b]` real tokens. Keys past a
    /// row's length are masked, so padding never changes the logits of real tokens.
    fn forward_padded(&self, ids: &[u32], lengths: &[usize], seq_len: usize, cancel: &Cancel) -> Result<Vec<f32>> {
        let (batch, dev) = (lengths.len(), &self.device);
        let table = self.rope.table(seq_len);
        let half = table.half;
        let mut mask = vec![0f32; batch * seq_len];
        for (row, &len) in mask.chunks_mut(seq_len).zip(lengths) {
            row[len..].fill(f32::NEG_INFINITY);
        }
        let p = Padded {
            batch,
            seq_len,
            cos: Tensor::from_slice(&table.cos[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?,
            sin: Tensor::from_slice(&table.sin[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?,
            mask: Tensor::from_vec(mask, (batch, 1, 1, seq_len), dev)?.to_dtype(self.dtype)?,
        };
        let mut x = self.embed_tokens.index_select(&Tensor::from_slice(ids, batch * seq_len, dev)?, 0)?;
        for layer in &self.layers {
            cancel.check()?;
            x = layer.forward(x, &p, self.eps)?;
        }
        let x = candle_nn::ops::rms_norm(&x, &self.norm, self.eps)?;
        Ok(self.classifier.forward(&x)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }
}

impl Encoder for CandleEncoder {
    fn layout(&self) -> Layout {
        Layout::Padded
    }

    fn forward(&self, sequences: &[&[u32]], cancel: &Cancel) -> Result<Vec<f32>> {
        let seq_len = sequences.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; sequences.len() * seq_len];
        for (row, s) in ids.chunks_mut(seq_len.max(1)).zip(sequences) {
            row[..s.len()].copy_from_slice(s);
        }
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let padded = self.forward_padded(&ids, &lengths, seq_len, cancel)?;
        // Drop each row's padding: both encoders hand back packed rows.
        let l = self.num_labels;
        Ok(lengths.iter().enumerate().flat_map(|(r, &n)| &padded[r * seq_len * l..][..n * l]).copied().collect())
    }

    fn weight_bytes(&self) -> usize {
        self.bytes
    }
}
