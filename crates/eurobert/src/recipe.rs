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
}

/// The prediction head's weights before the classifier, when it has one.
pub(crate) struct HeadWeights {
    pub dense: Dense,
    pub norm: NormWeights,
}
