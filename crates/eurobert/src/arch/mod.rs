//! The architectures this runtime implements. Each one adds three things: a config parser
//! (its `config.json` fields onto `Config` and a `Recipe`), a tensor schema (its checkpoint's
//! names onto the recipe's weights), and nothing else: the encoders run any recipe.

mod bert;
mod deberta;
mod eurobert;
mod modernbert;

use crate::config::{Config, Fields};
use crate::error::Result;
use crate::recipe::{Dense, EmbeddingWeights, HeadWeights, LayerWeights, NormWeights};
use crate::weights::Weights;

pub(crate) use bert::BertKind;

/// An architecture and the config facts its tensor schema needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    EuroBert {
        attention_bias: bool,
        mlp_bias: bool,
    },
    /// BERT and the models that share its encoder: RoBERTa, XLM-R, CamemBERT, ELECTRA and
    /// DistilBERT (under its own tensor names).
    Bert(BertKind),
    ModernBert(modernbert::Biases),
    /// DeBERTa-v2 and -v3.
    Deberta(deberta::DebertaFacts),
}

impl Family {
    /// The family of a `model_type`, with its config facts still at their defaults.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "eurobert" => Some(Family::EuroBert { attention_bias: false, mlp_bias: false }),
            "modernbert" => Some(Family::ModernBert(modernbert::Biases { norm: false, attention: false, mlp: false, classifier: false })),
            "deberta-v2" => Some(Family::Deberta(deberta::DebertaFacts { share_att_key: false, norm_rel: false })),
            other => BertKind::from_model_type(other).map(Family::Bert),
        }
    }

    /// Every `model_type` implemented, for the error that refuses another.
    pub fn supported() -> Vec<&'static str> {
        let mut all = vec!["eurobert"];
        all.extend(BertKind::ALL.iter().map(|k| k.model_type()));
        all.push("modernbert");
        all.push("deberta-v2");
        all
    }

    /// transformers' token-classification class of the family.
    pub fn class(&self) -> &'static str {
        match self {
            Family::EuroBert { .. } => "EuroBertForTokenClassification",
            Family::Bert(k) => k.class(),
            Family::ModernBert(_) => "ModernBertForTokenClassification",
            Family::Deberta(_) => "DebertaV2ForTokenClassification",
        }
    }

    pub fn schema(&self) -> &'static dyn Schema {
        match self {
            Family::EuroBert { .. } => &eurobert::EuroBertSchema,
            Family::Bert(_) => &bert::BertSchema,
            Family::ModernBert(_) => &modernbert::ModernBertSchema,
            Family::Deberta(_) => &deberta::DebertaSchema,
        }
    }
}

/// Reads a family's config; sizes are checked by the caller (`Config::check`).
pub(crate) fn parse_config(family: Family, f: &Fields) -> Result<Config> {
    match family {
        Family::EuroBert { .. } => eurobert::parse_config(f),
        Family::Bert(kind) => bert::parse_config(kind, f),
        Family::ModernBert(_) => modernbert::parse_config(f),
        Family::Deberta(_) => deberta::parse_config(f),
    }
}

/// A family's checkpoint: its tensor names, read into the recipe's weights.
pub(crate) trait Schema: Sync {
    /// The prefix of layer `i`'s tensors, before `{i}.`: `model.layers.`, `bert.encoder.layer.`.
    fn layer_prefix(&self, c: &Config) -> String;
    /// Whether a tensor under a layer (its name after `{prefix}{i}.`) is one the model reads.
    fn uses_layer_tensor(&self, c: &Config, tail: &str) -> bool;
    /// Whether a tensor outside the layers is one the model reads.
    fn uses_tensor(&self, c: &Config, name: &str) -> bool;
    fn embeddings(&self, c: &Config, w: &Weights) -> Result<EmbeddingWeights>;
    fn layer(&self, c: &Config, w: &Weights, i: usize) -> Result<LayerWeights>;
    fn final_norm(&self, c: &Config, w: &Weights) -> Result<Option<NormWeights>>;
    fn head(&self, c: &Config, w: &Weights) -> Result<Option<HeadWeights>>;
    /// The token classification head (always with a bias).
    fn classifier(&self, c: &Config, w: &Weights) -> Result<Dense> {
        dense(w, &[("classifier".to_string(), c.num_labels())], c.hidden_size, true)
    }
}

/// Projections `(prefix, outputs)` of the same input, stacked along the outputs (q, k and v
/// into one; gate and up into one), each `{prefix}.weight` and, with `bias`, `{prefix}.bias`.
pub(crate) fn dense(w: &Weights, parts: &[(String, usize)], inputs: usize, bias: bool) -> Result<Dense> {
    let outputs: usize = parts.iter().map(|p| p.1).sum();
    if let [(prefix, rows)] = parts {
        let weight = w.read_f32(&format!("{prefix}.weight"), &[*rows, inputs])?;
        let bias = if bias { Some(w.read_f32(&format!("{prefix}.bias"), &[*rows])?) } else { None };
        return Ok(Dense { weight, bias, outputs, inputs });
    }
    let mut weight = Vec::with_capacity(outputs * inputs);
    let mut b = bias.then(|| Vec::with_capacity(outputs));
    for (prefix, rows) in parts {
        weight.extend(w.read_f32(&format!("{prefix}.weight"), &[*rows, inputs])?);
        if let Some(b) = &mut b {
            b.extend(w.read_f32(&format!("{prefix}.bias"), &[*rows])?);
        }
    }
    Ok(Dense { weight, bias: b, outputs, inputs })
}

/// A norm `{prefix}.weight` (and `{prefix}.bias` with `bias`), also under the legacy names
/// `gamma`/`beta` that transformers still renames on load.
pub(crate) fn norm(w: &Weights, prefix: &str, width: usize, bias: bool) -> Result<NormWeights> {
    let read = |new: &str, old: &str| {
        let name = format!("{prefix}.{new}");
        if w.has(&name) {
            w.read_f32(&name, &[width])
        } else if w.has(&format!("{prefix}.{old}")) {
            w.read_f32(&format!("{prefix}.{old}"), &[width])
        } else {
            w.read_f32(&name, &[width]) // the missing-tensor error names the current name
        }
    };
    Ok(NormWeights { weight: read("weight", "gamma")?, bias: if bias { Some(read("bias", "beta")?) } else { None } })
}

/// Whether `tail` is a norm the schema reads (`weight`/`bias`, or their legacy names).
pub(crate) fn is_norm(tail: &str, prefix: &str, bias: bool) -> bool {
    tail.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .is_some_and(|r| r == "weight" || r == "gamma" || (bias && (r == "bias" || r == "beta")))
}

/// Whether `tail` is one of the projections `names` (`.weight`, and `.bias` with `bias`).
pub(crate) fn is_projection(tail: &str, names: &[&str], bias: bool) -> bool {
    names.iter().any(|p| tail.strip_prefix(p).is_some_and(|r| r == ".weight" || (bias && r == ".bias")))
}
