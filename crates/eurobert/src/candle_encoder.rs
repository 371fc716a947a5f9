//! The EuroBERT encoder on Candle, for GPU devices (CUDA, Metal) and f16/bf16 compute: right-
//! padded batches with a key mask. The f32 CPU path is `cpu`, which packs batches instead.
//!
//! Activations stay 2-D `(tokens, features)` between layers so every projection is one GEMM
//! over the whole padded batch; Q/K/V and gate/up are fused into single matrices at load.

use candle_core::{DType, Device, Tensor};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::rope::Rope;
use crate::weights::Weights;

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

struct Layer {
    input_norm: Tensor,
    /// q, k and v projections stacked along the output dimension.
    qkv: Linear,
    o: Linear,
    post_attention_norm: Tensor,
    /// gate and up projections stacked along the output dimension.
    gate_up: Linear,
    down: Linear,
}

pub struct CandleEncoder {
    config: Config,
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
    pub fn load(config: &Config, weights: &Weights, dtype: DType, device: &Device) -> Result<Self> {
        let c = config;
        let (h, d) = (c.hidden_size, c.head_dim);
        let q_out = c.num_attention_heads * d;
        let kv_out = c.num_key_value_heads * d;
        let bytes = std::cell::Cell::new(0usize);
        let get = |name: &str, shape: &[usize]| -> Result<Tensor> {
            let v = weights.read_f32(name, shape)?;
            bytes.set(bytes.get() + v.len() * dtype.size_in_bytes());
            Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
        };
        let linear = |prefix: &str, out: usize, inp: usize, bias: bool| -> Result<Linear> {
            Ok(Linear {
                weight: get(&format!("{prefix}.weight"), &[out, inp])?,
                bias: if bias {
                    Some(get(&format!("{prefix}.bias"), &[out])?)
                } else {
                    None
                },
            })
        };
        let stack = |parts: Vec<Linear>| -> Result<Linear> {
            let ws: Vec<&Tensor> = parts.iter().map(|l| &l.weight).collect();
            let bias = if parts.iter().all(|l| l.bias.is_some()) {
                let bs: Vec<&Tensor> = parts.iter().filter_map(|l| l.bias.as_ref()).collect();
                Some(Tensor::cat(&bs, 0)?)
            } else {
                None
            };
            Ok(Linear {
                weight: Tensor::cat(&ws, 0)?,
                bias,
            })
        };

        let mut layers = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let ab = c.attention_bias;
            let mb = c.mlp_bias;
            layers.push(Layer {
                input_norm: get(&format!("{p}.input_layernorm.weight"), &[h])?,
                qkv: stack(vec![
                    linear(&format!("{p}.self_attn.q_proj"), q_out, h, ab)?,
                    linear(&format!("{p}.self_attn.k_proj"), kv_out, h, ab)?,
                    linear(&format!("{p}.self_attn.v_proj"), kv_out, h, ab)?,
                ])?,
                o: linear(&format!("{p}.self_attn.o_proj"), h, q_out, ab)?,
                post_attention_norm: get(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
                gate_up: stack(vec![
                    linear(&format!("{p}.mlp.gate_proj"), c.intermediate_size, h, mb)?,
                    linear(&format!("{p}.mlp.up_proj"), c.intermediate_size, h, mb)?,
                ])?,
                down: linear(&format!("{p}.mlp.down_proj"), h, c.intermediate_size, mb)?,
            });
        }
        let embed_tokens = get("model.embed_tokens.weight", &[c.vocab_size, h])?;
        let norm = get("model.norm.weight", &[h])?;
        let classifier = linear("classifier", c.num_labels(), h, true)?;
        Ok(CandleEncoder {
            config: c.clone(),
            device: device.clone(),
            dtype,
            embed_tokens,
            layers,
            norm,
            classifier,
            bytes: bytes.get(),
            rope: Rope::new(c.head_dim, c.rope_theta, c.max_position_embeddings),
        })
    }

    /// Bytes of weights held on the device.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Logits for a right-padded batch.
    ///
    /// `ids` is `batch * seq_len` ids, row-major; `lengths[b]` is the number of real tokens of
    /// row `b` (positions `0..lengths[b]`). Keys past a row's length are masked, so padding
    /// never changes the logits of real tokens; pad ids only need to be valid ids.
    /// Returns f32 logits `(batch, seq_len, num_labels)`; rows past a length are junk.
    pub fn forward(&self, ids: &[u32], lengths: &[usize], seq_len: usize) -> Result<Tensor> {
        let c = &self.config;
        let batch = lengths.len();
        if ids.len() != batch * seq_len || seq_len == 0 {
            return Err(Error::InvalidArgument(format!(
                "forward: {} ids for {batch} rows of length {seq_len}",
                ids.len()
            )));
        }
        if seq_len > c.max_position_embeddings {
            return Err(Error::InvalidArgument(format!(
                "a sequence of {seq_len} tokens is longer than the model's max_position_embeddings ({})",
                c.max_position_embeddings
            )));
        }
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            return Err(Error::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary (vocab_size {})",
                c.vocab_size
            )));
        }
        if let Some(bad) = lengths.iter().find(|&&l| l == 0 || l > seq_len) {
            return Err(Error::InvalidArgument(format!(
                "row length {bad} is not in 1..={seq_len}"
            )));
        }

        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let n_rep = nh / nkv;
        let eps = c.rms_norm_eps as f32;
        let dev = &self.device;

        let ids_t = Tensor::from_slice(ids, batch * seq_len, dev)?;
        let mut x = self.embed_tokens.index_select(&ids_t, 0)?; // (N, H)

        let table = self.rope.table(seq_len);
        let half = table.half;
        let cos = Tensor::from_slice(&table.cos[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_slice(&table.sin[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?;
        let mask = self.key_mask(lengths, seq_len)?; // (B, 1, 1, T)
        let scale = (hd as f64).powf(-0.5);

        for layer in &self.layers {
            let residual = &x;
            let h = candle_nn::ops::rms_norm(&x, &layer.input_norm, eps)?;
            let qkv = layer.qkv.forward(&h)?;
            let heads = |start: usize, n: usize| -> Result<Tensor> {
                Ok(qkv
                    .narrow(1, start * hd, n * hd)?
                    .reshape((batch, seq_len, n, hd))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = candle_nn::rotary_emb::rope(&heads(0, nh)?, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&heads(nh, nkv)?, &cos, &sin)?;
            let v = heads(nh + nkv, nkv)?;
            // Query head h reads key/value head h / n_rep (transformers' repeat_kv): group the
            // n_rep query heads of each kv head as extra rows instead of copying k and v.
            let q = q.reshape((batch, nkv, n_rep * seq_len, hd))?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let attn = probs
                .matmul(&v)? // (B, KV, n_rep*T, D)
                .reshape((batch, nh, seq_len, hd))?
                .transpose(1, 2)?
                .reshape((batch * seq_len, nh * hd))?;
            x = (residual + layer.o.forward(&attn)?)?;

            let residual = &x;
            let h = candle_nn::ops::rms_norm(&x, &layer.post_attention_norm, eps)?;
            let gu = layer.gate_up.forward(&h)?;
            let i = c.intermediate_size;
            let act = (gu.narrow(1, 0, i)?.silu()? * gu.narrow(1, i, i)?)?;
            x = (residual + layer.down.forward(&act)?)?;
        }
        let x = candle_nn::ops::rms_norm(&x, &self.norm, eps)?;
        let logits = self.classifier.forward(&x)?.to_dtype(DType::F32)?;
        Ok(logits.reshape((batch, seq_len, c.num_labels()))?)
    }

    /// Additive mask over keys: 0 for real tokens, -inf for padding.
    fn key_mask(&self, lengths: &[usize], seq_len: usize) -> Result<Tensor> {
        let mut m = vec![0f32; lengths.len() * seq_len];
        for (row, &len) in m.chunks_mut(seq_len).zip(lengths) {
            row[len..].fill(f32::NEG_INFINITY);
        }
        Ok(
            Tensor::from_vec(m, (lengths.len(), 1, 1, seq_len), &self.device)?
                .to_dtype(self.dtype)?,
        )
    }
}
