//! Any recipe's encoder on Candle, for GPU devices (CUDA, Metal) and f16/bf16 compute: right-
//! padded batches with a key mask. The f32 CPU path is `cpu`, which packs batches instead.
//!
//! Activations stay 2-D `(tokens, features)` between layers so every projection is one GEMM
//! over the whole padded batch; Q/K/V and gate/up come fused from the checkpoint.

use candle_core::{DType, Device, Tensor};

use crate::batching::Layout;
use crate::cancel::Cancel;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::encoder::Encoder;
use crate::error::Result;
use crate::recipe::{Act, Dense, Head, Mlp as MlpKind, NormKind, NormWeights, Positions, Recipe, Relative};
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

/// A norm on the device: RMSNorm, or LayerNorm (zero shift where the checkpoint has none).
struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    kind: NormKind,
    eps: f32,
}

impl Norm {
    fn new(up: &mut Upload, w: NormWeights, r: &Recipe) -> Result<Self> {
        let n = w.weight.len();
        let bias = match (r.norm, w.bias) {
            (NormKind::Layer, Some(b)) => Some(up.vector(b)?),
            (NormKind::Layer, None) => Some(up.vector(vec![0f32; n])?),
            (NormKind::Rms, _) => None,
        };
        Ok(Norm { weight: up.vector(w.weight)?, bias, kind: r.norm, eps: r.eps })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match (self.kind, &self.bias) {
            (NormKind::Layer, Some(b)) => candle_nn::ops::layer_norm(x, &self.weight, b, self.eps)?,
            _ => candle_nn::ops::rms_norm(x, &self.weight, self.eps)?,
        })
    }
}

fn activate(x: &Tensor, a: Act) -> Result<Tensor> {
    Ok(match a {
        Act::Silu => x.silu()?,
        Act::GeluErf => x.gelu_erf()?,
        Act::GeluTanh => x.gelu()?,
    })
}

/// What one padded batch shares across layers.
struct Padded {
    batch: usize,
    seq_len: usize,
    /// cos/sin of each of the encoder's RoPE tables, for positions `0..seq_len`.
    ropes: Vec<(Tensor, Tensor)>,
    /// Additive mask over keys `(batch, 1, 1, seq_len)`: 0 for real tokens, very negative for
    /// padding.
    mask: Tensor,
    /// DeBERTa: flat indexes into `(seq_len · 2·span)` rows of projected relative tables, for
    /// c2p (`i·2s + δ(i−j)`) and p2c (`j·2s + δ(i−j)`), each `seq_len²` long.
    distances: Option<(Tensor, Tensor)>,
}

struct Attention {
    /// q, k and v projections stacked along the output dimension.
    qkv: Linear,
    o: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Attend only to keys within this distance (ModernBERT's local layers).
    window: Option<usize>,
    /// `1/√(d·factor)`: DeBERTa's factor counts its relative terms.
    scale: f64,
    /// DeBERTa's relative keys and queries, `(2·span, heads·head_dim)`.
    relative: Option<(Option<Tensor>, Option<Tensor>)>,
}

impl Attention {
    /// A relative term: `x` `(B, H, T, d)` against table rows `(2s, H·d)`, gathered by `index`.
    fn relative_term(&self, x: &Tensor, table: &Tensor, index: &Tensor) -> Result<Tensor> {
        let (b, h, t, d) = x.dims4()?;
        let rows = table.dim(0)?;
        let per_head = table.reshape((rows, h, d))?.transpose(0, 1)?.transpose(1, 2)?.unsqueeze(0)?; // (1, H, d, 2s)
        let projected = x.broadcast_matmul(&per_head.contiguous()?)?.reshape((b * h, t * rows))?;
        Ok(projected.index_select(index, 1)?.reshape((b, h, t, t))?)
    }

    /// `o(attention(qkv(x)))` for `x` of `(batch·seq_len, hidden)`, rotated by `rope` if any.
    fn forward(&self, x: &Tensor, p: &Padded, rope: Option<usize>) -> Result<Tensor> {
        let (nh, nkv, hd) = (self.heads, self.kv_heads, self.head_dim);
        let (batch, seq_len) = (p.batch, p.seq_len);
        let qkv = self.qkv.forward(x)?;
        let heads = |start: usize, n: usize| -> Result<Tensor> {
            Ok(qkv.narrow(1, start * hd, n * hd)?.reshape((batch, seq_len, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let (mut q, mut k) = (heads(0, nh)?, heads(nh, nkv)?);
        if let Some(r) = rope {
            let (cos, sin) = &p.ropes[r];
            q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
            k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        }
        let v = heads(nh + nkv, nkv)?;
        // Query head h reads key/value head h / n_rep (transformers' repeat_kv): group the
        // n_rep query heads of each kv head as extra rows instead of copying k and v.
        let n_rep = nh / nkv;
        let q = q.reshape((batch, nkv, n_rep * seq_len, hd))?;
        let mut scores = q.matmul(&k.t()?)?;
        if let (Some((keys, queries)), Some((c2p, p2c))) = (&self.relative, &p.distances) {
            // n_rep is 1: q is (B, H, T, d).
            if let Some(pk) = keys {
                scores = (scores + self.relative_term(&q, pk, c2p)?)?;
            }
            if let Some(pq) = queries {
                scores = (scores + self.relative_term(&k, pq, p2c)?)?;
            }
        }
        let mut scores = (scores * self.scale)?.broadcast_add(&p.mask)?;
        if let Some(w) = self.window {
            // Rows are n_rep query heads of seq_len positions each; keys beyond w get −∞.
            let band: Vec<f32> = (0..n_rep * seq_len)
                .flat_map(|r| (0..seq_len).map(move |j| if (r % seq_len).abs_diff(j) > w { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            let band = Tensor::from_vec(band, (1, 1, n_rep * seq_len, seq_len), scores.device())?.to_dtype(scores.dtype())?;
            scores = scores.broadcast_add(&band)?;
        }
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
    /// The input projection: `[a | b]` stacked along the outputs for a GLU.
    up: Linear,
    down: Linear,
    intermediate: usize,
    kind: MlpKind,
}

impl Mlp {
    /// `down(act(a) * b)` with `[a | b] = up(x)`, or `down(act(up(x)))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let i = self.intermediate;
        let h = self.up.forward(x)?;
        let act = match self.kind {
            MlpKind::Glu(a) => (activate(&h.narrow(1, 0, i)?, a)? * h.narrow(1, i, i)?)?,
            MlpKind::Plain(a) => activate(&h, a)?,
        };
        self.down.forward(&act)
    }
}

struct Layer {
    attention_norm: Option<Norm>,
    attention: Attention,
    mlp_norm: Norm,
    mlp: Mlp,
    rope: Option<usize>,
}

impl Layer {
    fn forward(&self, x: Tensor, p: &Padded, pre_norm: bool) -> Result<Tensor> {
        if pre_norm {
            let h = match &self.attention_norm {
                Some(n) => n.forward(&x)?,
                None => x.clone(),
            };
            let x = (&x + self.attention.forward(&h, p, self.rope)?)?;
            let h = self.mlp_norm.forward(&x)?;
            Ok((&x + self.mlp.forward(&h)?)?)
        } else {
            let mut x = (&x + self.attention.forward(&x, p, self.rope)?)?;
            if let Some(n) = &self.attention_norm {
                x = n.forward(&x)?;
            }
            let x = (&x + self.mlp.forward(&x)?)?;
            self.mlp_norm.forward(&x)
        }
    }
}

pub(crate) struct CandleEncoder {
    num_labels: usize,
    pre_norm: bool,
    /// Project, then norm the embeddings (DeBERTa).
    project_then_norm: bool,
    relative: Option<Relative>,
    device: Device,
    dtype: DType,
    tokens: Tensor,
    token_type: Option<Tensor>,
    /// The absolute position table and the row the first token reads.
    positions: Option<(Tensor, usize)>,
    embed_norm: Option<Norm>,
    projection: Option<Linear>,
    layers: Vec<Layer>,
    final_norm: Option<Norm>,
    head: Option<(Linear, Act, Norm)>,
    classifier: Linear,
    ropes: Vec<Rope>,
    bytes: usize,
}

impl CandleEncoder {
    pub fn load(config: &Config, checkpoint: &Checkpoint, dtype: DType, device: &Device) -> Result<Self> {
        let c = config;
        let r = &c.recipe;
        let mut up = Upload { device, dtype, bytes: 0 };
        let mut thetas: Vec<f64> = Vec::new();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let w = checkpoint.layer(i)?;
            let rope = match &r.positions {
                Positions::Rope { thetas: t } => Some(thetas.iter().position(|&x| x == t[i]).unwrap_or_else(|| {
                    thetas.push(t[i]);
                    thetas.len() - 1
                })),
                Positions::Absolute { .. } | Positions::None => None,
            };
            let factor = r.relative.map_or(1, |x| x.scale_factor());
            let relative = match w.relative {
                Some(t) if t.keys.is_some() || t.queries.is_some() => {
                    let mut table = |v: Option<Vec<f32>>| -> Result<Option<Tensor>> {
                        v.map(|v| {
                            let rows = v.len() / (c.num_attention_heads * c.head_dim);
                            up.tensor(v, &[rows, c.num_attention_heads * c.head_dim])
                        })
                        .transpose()
                    };
                    Some((table(t.keys)?, table(t.queries)?))
                }
                _ => None,
            };
            layers.push(Layer {
                attention_norm: w.attention_norm.map(|n| Norm::new(&mut up, n, r)).transpose()?,
                attention: Attention {
                    qkv: up.linear(w.qkv)?,
                    o: up.linear(w.o)?,
                    heads: c.num_attention_heads,
                    kv_heads: c.num_key_value_heads,
                    head_dim: c.head_dim,
                    window: r.windows[i],
                    scale: 1.0 / ((c.head_dim * factor) as f64).sqrt(),
                    relative,
                },
                mlp_norm: Norm::new(&mut up, w.mlp_norm, r)?,
                mlp: Mlp { up: up.linear(w.up)?, down: up.linear(w.down)?, intermediate: c.intermediate_size, kind: r.mlp },
                rope,
            });
        }
        let e = checkpoint.embeddings()?;
        let width = e.width;
        let tokens = up.tensor(e.tokens, &[c.vocab_size, width])?;
        let offset = match r.positions {
            Positions::Absolute { offset } => offset,
            Positions::Rope { .. } | Positions::None => 0,
        };
        let positions = match e.positions {
            Some(t) => {
                let rows = t.len() / width.max(1);
                Some((up.tensor(t, &[rows, width])?, offset))
            }
            None => None,
        };
        let token_type = e.token_type.map(|t| up.tensor(t, &[1, width])).transpose()?;
        let embed_norm = e.norm.map(|n| Norm::new(&mut up, n, r)).transpose()?;
        let projection = e.projection.map(|d| up.linear(d)).transpose()?;
        let final_norm = checkpoint.final_norm()?.map(|n| Norm::new(&mut up, n, r)).transpose()?;
        let head = match checkpoint.head()? {
            Some(h) => {
                let act = match r.head {
                    Head::DenseActNorm(a) => a,
                    Head::Linear => Act::GeluErf,
                };
                Some((up.linear(h.dense)?, act, Norm::new(&mut up, h.norm, r)?))
            }
            None => None,
        };
        let classifier = up.linear(checkpoint.classifier()?)?;
        Ok(CandleEncoder {
            num_labels: c.num_labels(),
            pre_norm: r.pre_norm,
            project_then_norm: r.project_then_norm,
            relative: r.relative,
            device: device.clone(),
            dtype,
            tokens,
            token_type,
            positions,
            embed_norm,
            projection,
            layers,
            final_norm,
            head,
            classifier,
            bytes: up.bytes,
            ropes: thetas.into_iter().map(|t| Rope::new(c.head_dim, t, c.max_position_embeddings)).collect(),
        })
    }

    /// Logits `(batch, seq_len, num_labels)` in f32 for a right-padded batch: `ids` is
    /// `batch × seq_len` ids, row-major; row `b` has `lengths[b]` real tokens. Keys past a
    /// row's length are masked, so padding never changes the logits of real tokens.
    fn forward_padded(&self, ids: &[u32], lengths: &[usize], seq_len: usize, cancel: &Cancel) -> Result<Vec<f32>> {
        let (batch, dev) = (lengths.len(), &self.device);
        let mut mask = vec![0f32; batch * seq_len];
        for (row, &len) in mask.chunks_mut(seq_len).zip(lengths) {
            // Finite, unlike the window band's −∞: a padding row whose window holds only
            // padding must still get a finite softmax, or its NaN values would reach real rows
            // through 0·NaN in P·V. exp of this is exactly 0 next to any real score.
            row[len..].fill(if self.dtype == DType::F16 { -6.0e4 } else { -1.0e9 });
        }
        let mut ropes = Vec::with_capacity(self.ropes.len());
        for rope in &self.ropes {
            let table = rope.table(seq_len);
            let half = table.half;
            ropes.push((
                Tensor::from_slice(&table.cos[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?,
                Tensor::from_slice(&table.sin[..seq_len * half], (seq_len, half), dev)?.to_dtype(self.dtype)?,
            ));
        }
        let distances = match self.relative {
            Some(r) => {
                let (rows, span2) = (r.rows(seq_len), 2 * r.span as u32);
                let at = |i: usize, j: usize| rows[seq_len - 1 + i - j];
                let (t, s) = (seq_len, span2);
                let c2p: Vec<u32> = (0..t * t).map(|x| (x / t) as u32 * s + at(x / t, x % t)).collect();
                let p2c: Vec<u32> = (0..t * t).map(|x| (x % t) as u32 * s + at(x / t, x % t)).collect();
                Some((Tensor::from_vec(c2p, t * t, dev)?, Tensor::from_vec(p2c, t * t, dev)?))
            }
            None => None,
        };
        let p =
            Padded { batch, seq_len, ropes, mask: Tensor::from_vec(mask, (batch, 1, 1, seq_len), dev)?.to_dtype(self.dtype)?, distances };
        let mut x = self.tokens.index_select(&Tensor::from_slice(ids, batch * seq_len, dev)?, 0)?;
        if let Some(t) = &self.token_type {
            x = x.broadcast_add(t)?;
        }
        if let Some((table, offset)) = &self.positions {
            let rows: Vec<u32> = (0..seq_len).map(|t| (offset + t) as u32).collect();
            let pos = table.index_select(&Tensor::from_vec(rows, seq_len, dev)?, 0)?;
            let width = pos.dim(1)?;
            x = x.reshape((batch, seq_len, width))?.broadcast_add(&pos.unsqueeze(0)?)?.reshape((batch * seq_len, width))?;
        }
        let norm = |x: Tensor| -> Result<Tensor> { self.embed_norm.as_ref().map_or(Ok(x.clone()), |n| n.forward(&x)) };
        let project = |x: Tensor| -> Result<Tensor> { self.projection.as_ref().map_or(Ok(x.clone()), |p| p.forward(&x)) };
        x = if self.project_then_norm { norm(project(x)?)? } else { project(norm(x)?)? };
        for layer in &self.layers {
            cancel.check()?;
            x = layer.forward(x, &p, self.pre_norm)?;
        }
        if let Some(n) = &self.final_norm {
            x = n.forward(&x)?;
        }
        if let Some((dense, act, norm)) = &self.head {
            x = norm.forward(&activate(&dense.forward(&x)?, *act)?)?;
        }
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
