//! The encoder described once, as data: what every supported architecture's forward pass is
//! made of (the norm and where it sits, the positions, the MLP, the head), and the weights in
//! the shapes both encoders (ours on the CPU, Candle's) run. Each architecture module
//! (`arch/`) maps its config and tensor names onto these; no encoder knows a family by name.

/// Normalization of the hidden states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum NormKind {
    /// `w · x / √(mean(x²) + ε)` (EuroBERT).
    Rms,
    /// `w · (x − μ) / √(σ² + ε) + b`, biased variance; `b` only when the checkpoint has one.
    Layer,
}

/// An activation, exactly as transformers' `ACT2FN` computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// `x · σ(x)` (`silu`, `swish`).
    Silu,
    /// `0.5 · x · (1 + erf(x / √2))` (`gelu`, `gelu_python`).
    GeluErf,
    /// `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 x³)))` (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
}

impl Act {
    /// transformers' name for an activation (`hidden_act`), or None when not implemented.
    pub fn parse(name: &str) -> Option<Act> {
        match name {
            "silu" | "swish" => Some(Act::Silu),
            "gelu" | "gelu_python" => Some(Act::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Act::GeluTanh),
            _ => None,
        }
    }
}

/// How a token's position enters the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Positions {
    /// Rotary embeddings on q and k, with each layer's θ (ModernBERT alternates two).
    Rope { thetas: Vec<f64> },
    /// A learned table added to the embeddings; token t of a sequence reads row `offset + t`
    /// (RoBERTa's positions start after the padding id: offset `pad + 1`).
    Absolute { offset: usize },
    /// None in the embeddings: DeBERTa-v3 has only relative positions, in attention.
    None,
}

/// DeBERTa's disentangled attention: each score `q_i·k_j` gains a content→position term
/// `q_i·Pk[δ]` (c2p) and a position→content term `k_j·Pq[δ]` (p2c), where `δ` indexes the
/// relative distance `i − j` (log-bucketed past half the buckets), and the sum is scaled by
/// `1/√(d·(1 + c2p + p2c))`. `Pk`/`Pq` are the layer's projections of the relative embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Relative {
    /// `att_span`: distances run over `2·span` embedding rows, `span` being the bucket count or
    /// `max_relative_positions`.
    pub span: usize,
    /// `position_buckets` (0: distances are not bucketed, only clamped).
    pub buckets: usize,
    /// `max_relative_positions`: the distance the last bucket reaches.
    pub max_position: usize,
    pub c2p: bool,
    pub p2c: bool,
}

impl Relative {
    /// The divisor's factor `1 + c2p + p2c`.
    pub fn scale_factor(&self) -> usize {
        1 + self.c2p as usize + self.p2c as usize
    }

    /// transformers' `make_log_bucket_position` for distance `r`, in f32 as torch computes it
    /// (a distance whose ratio rounds differently would land in another bucket).
    pub fn bucket(&self, r: i64) -> i64 {
        if self.buckets == 0 {
            return r;
        }
        let mid = (self.buckets / 2) as i64;
        if r.abs() <= mid {
            return r;
        }
        // torch: `abs / mid` in f32; `(max_position − 1) / mid` a Python float made f32.
        let ratio = (r.abs() as f32 / mid as f32).ln();
        let top = (((self.max_position as f64 - 1.0) / mid as f64) as f32).ln();
        let log_pos = (ratio / top * (mid - 1) as f32).ceil() + mid as f32;
        log_pos as i64 * r.signum()
    }

    /// The relative-embedding row of each distance `i − j` of a sequence of `len` tokens:
    /// entry `len − 1 + (i − j)`, `clamp(bucket(i − j) + span, 0, 2·span − 1)`.
    pub fn rows(&self, len: usize) -> Vec<u32> {
        let (len, span) = (len.max(1) as i64, self.span as i64);
        (-(len - 1)..len).map(|r| (self.bucket(r) + span).clamp(0, 2 * span - 1) as u32).collect()
    }
}

/// The MLP block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mlp {
    /// `down(act(a) ⊙ b)` with `[a | b] = up(x)`: SwiGLU (EuroBERT's gate/up) and GeGLU
    /// (ModernBERT's `Wi`).
    Glu(Act),
    /// `down(act(up(x)))`: BERT's intermediate and output dense layers.
    Plain(Act),
}

/// What runs after the last layer, before the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// `classifier(h)`.
    Linear,
    /// `classifier(norm(act(dense(h))))` (ModernBERT's prediction head).
    DenseActNorm(Act),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Recipe {
    pub norm: NormKind,
    pub eps: f32,
    /// Pre-norm (`x + f(norm(x))`, EuroBERT, ModernBERT) or post-norm (`norm(x + f(x))`, BERT).
    pub pre_norm: bool,
    pub positions: Positions,
    /// Add row 0 of a token-type table to every embedding (BERT's family: transformers adds it
    /// even when the tokenizer sends no token types).
    pub token_type: bool,
    /// A norm over the embeddings (BERT's `embeddings.LayerNorm`).
    pub embed_norm: bool,
    /// A projection from the embedding width to the hidden width (ELECTRA when E ≠ H).
    pub embed_projection: bool,
    /// The projection comes before the embedding norm (DeBERTa) rather than after (ELECTRA).
    pub project_then_norm: bool,
    /// DeBERTa's relative positions in attention.
    pub relative: Option<Relative>,
    /// Whether the first layer normalizes before attention (ModernBERT's is an identity).
    pub first_attention_norm: bool,
    pub mlp: Mlp,
    /// A norm after the last layer (pre-norm models).
    pub final_norm: bool,
    pub head: Head,
    /// Per layer: attend only to keys within this distance (ModernBERT's local layers).
    pub windows: Vec<Option<usize>>,
}

/// A dense projection `y = x Wᵀ + b` in f32: `weight` is `(outputs, inputs)`, row-major, as
/// PyTorch stores it.
pub(crate) struct Dense {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub outputs: usize,
    pub inputs: usize,
}

/// A norm's weights: the scale, and the shift where the norm has one.
pub(crate) struct NormWeights {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// What turns token ids into the first hidden states.
pub(crate) struct EmbeddingWeights {
    /// `(vocab, width)`, row-major; width is the embedding size.
    pub tokens: Vec<f32>,
    /// `(positions, width)` for absolute positions.
    pub positions: Option<Vec<f32>>,
    /// Row 0 of the token-type table.
    pub token_type: Option<Vec<f32>>,
    pub norm: Option<NormWeights>,
    pub projection: Option<Dense>,
    /// The embedding width (the hidden size unless projected).
    pub width: usize,
}

/// One encoder layer's weights, fused as every encoder runs them.
pub(crate) struct LayerWeights {
    /// Before attention (pre-norm) or after its residual (post-norm); None for ModernBERT's
    /// first layer.
    pub attention_norm: Option<NormWeights>,
    /// q, k and v stacked along the outputs: `(heads + 2·kv_heads)·head_dim` rows.
    pub qkv: Dense,
    pub o: Dense,
    pub mlp_norm: NormWeights,
    /// The MLP's input projection: `[a | b]` (2·intermediate rows) for a GLU.
    pub up: Dense,
    pub down: Dense,
    /// DeBERTa: this layer's projections of the relative embeddings.
    pub relative: Option<RelativeWeights>,
}

/// A layer's relative-position keys (for c2p) and queries (for p2c): `(2·span, heads·head_dim)`
/// row-major, biases included, computed once at load.
pub(crate) struct RelativeWeights {
    pub keys: Option<Vec<f32>>,
    pub queries: Option<Vec<f32>>,
}

/// The prediction head's weights before the classifier, when it has one.
pub(crate) struct HeadWeights {
    pub dense: Dense,
    pub norm: NormWeights,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every distance lands in transformers' bucket (`tools/make_family_fixtures.py`), for the
    /// configs real DeBERTa-v3 models use and small ones.
    #[test]
    fn log_buckets_equal_transformers() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../__test__/fixtures/families/deberta-buckets.json");
        let fx: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut checked = 0;
        for case in fx["cases"].as_array().unwrap() {
            let (buckets, max_position) = (case["buckets"].as_u64().unwrap() as usize, case["max_position"].as_u64().unwrap() as usize);
            let rel = Relative { span: buckets, buckets, max_position, c2p: true, p2c: true };
            let from = case["from"].as_i64().unwrap();
            for (k, want) in case["values"].as_array().unwrap().iter().enumerate() {
                let r = from + k as i64;
                assert_eq!(rel.bucket(r), want.as_i64().unwrap(), "buckets {buckets}, max {max_position}, distance {r}");
                checked += 1;
            }
        }
        assert!(checked > 20_000, "{checked} distances");
    }
}
