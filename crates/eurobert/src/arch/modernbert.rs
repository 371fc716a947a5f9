//! ModernBERT (`ModernBertForTokenClassification`): pre-norm layers with bias-free LayerNorm,
//! RoPE with a θ per layer type, local attention (|i − j| ≤ local_attention / 2) on the
//! sliding layers, a GeGLU MLP, no norm before the first layer's attention, a final norm, and a
//! prediction head (dense, activation, norm) before the classifier. As transformers 5.25 runs
//! it; both config forms are read (`layer_types` / `rope_parameters`, and the legacy
//! `global_attn_every_n_layers` / `global_rope_theta` / `local_rope_theta`).

use serde_json::Value;

use super::{dense, is_norm, is_projection, norm, Family, Schema};
use crate::config::{eps, labels, Config, Fields, Tables};
use crate::error::Result;
use crate::recipe::{Act, Dense, EmbeddingWeights, Head, HeadWeights, LayerWeights, Mlp, NormKind, NormWeights, Positions, Recipe};
use crate::weights::Weights;

/// The flags the schema needs: which projections and norms have biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Biases {
    pub norm: bool,
    pub attention: bool,
    pub mlp: bool,
    pub classifier: bool,
}

fn theta(f: &Fields, layer_type: &str, legacy: &str, default: f64) -> Result<f64> {
    if let Some(p) = f.present("rope_parameters").and_then(|v| v.get(layer_type)).filter(|v| !v.is_null()) {
        let ty = p.get("rope_type").and_then(Value::as_str).unwrap_or("default");
        if ty != "default" {
            return Err(f.error(format!("rope_parameters.{layer_type}.rope_type '{ty}' is not supported (only 'default' RoPE)")));
        }
        if let Some(t) = p.get("rope_theta") {
            return t
                .as_f64()
                .filter(|t| *t > 0.0)
                .ok_or_else(|| f.error(format!("rope_parameters.{layer_type}.rope_theta must be a positive number")));
        }
    }
    Ok(f.f64_opt(legacy)?.unwrap_or(default))
}

pub(super) fn parse_config(f: &Fields) -> Result<Config> {
    let hidden_size = f.usize_opt("hidden_size")?.unwrap_or(768);
    let heads = f.usize_opt("num_attention_heads")?.unwrap_or(12);
    if heads == 0 || hidden_size % heads != 0 {
        return Err(f.error(format!("hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({heads})")));
    }
    let layers = super::bert::layer_count(f, "num_hidden_layers", 22)?;
    let act = |key: &str| -> Result<Act> {
        let name = f.str_opt(key)?.unwrap_or("gelu");
        Act::parse(name).ok_or_else(|| f.error(format!("unsupported {key} '{name}'")))
    };
    let types: Vec<String> = match f.present("layer_types") {
        Some(v) => {
            let list = v.as_array().ok_or_else(|| f.error("'layer_types' must be a list"))?;
            if list.len() != layers {
                return Err(f.error(format!("layer_types has {} entries for {layers} layers", list.len())));
            }
            list.iter()
                .map(|t| match t.as_str() {
                    Some(s @ ("full_attention" | "sliding_attention")) => Ok(s.to_string()),
                    _ => Err(f.error(format!("layer_types entry {t} is neither 'full_attention' nor 'sliding_attention'"))),
                })
                .collect::<Result<_>>()?
        }
        None => {
            let every = f.usize_opt("global_attn_every_n_layers")?.unwrap_or(3).max(1);
            (0..layers).map(|i| if i % every == 0 { "full_attention" } else { "sliding_attention" }.to_string()).collect()
        }
    };
    let (global, local) =
        (theta(f, "full_attention", "global_rope_theta", 160_000.0)?, theta(f, "sliding_attention", "local_rope_theta", 10_000.0)?);
    let local_attention = f.usize_opt("local_attention")?.unwrap_or(128);
    let sliding = |t: &String| t == "sliding_attention";
    let biases = Biases {
        norm: f.bool_opt("norm_bias")?.unwrap_or(false),
        attention: f.bool_opt("attention_bias")?.unwrap_or(false),
        mlp: f.bool_opt("mlp_bias")?.unwrap_or(false),
        classifier: f.bool_opt("classifier_bias")?.unwrap_or(false),
    };
    // Hub configs carry both norm_eps and layer_norm_eps; transformers reads norm_eps.
    let norm_eps = if f.present("norm_eps").is_some() { eps(f, "norm_eps", 1e-5)? } else { eps(f, "layer_norm_eps", 1e-5)? };
    Ok(Config {
        model_type: "modernbert".into(),
        vocab_size: f.usize_opt("vocab_size")?.unwrap_or(50368),
        hidden_size,
        intermediate_size: f.usize_opt("intermediate_size")?.unwrap_or(1152),
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: hidden_size / heads,
        max_position_embeddings: f.usize_opt("max_position_embeddings")?.unwrap_or(8192),
        labels: labels(f)?,
        family: Family::ModernBert(biases),
        recipe: Recipe {
            norm: NormKind::Layer,
            eps: norm_eps,
            pre_norm: true,
            positions: Positions::Rope { thetas: types.iter().map(|t| if sliding(t) { local } else { global }).collect() },
            token_type: false,
            embed_norm: true,
            embed_projection: false,
            project_then_norm: false,
            relative: None,
            first_attention_norm: false,
            mlp: Mlp::Glu(act("hidden_activation")?),
            final_norm: true,
            head: Head::DenseActNorm(act("classifier_activation")?),
            windows: types.iter().map(|t| sliding(t).then_some(local_attention / 2)).collect(),
        },
        tables: Tables { positions: 0, token_types: 0, embedding: hidden_size },
    })
}

pub(super) struct ModernBertSchema;

fn biases(c: &Config) -> Biases {
    match c.family {
        Family::ModernBert(b) => b,
        _ => Biases { norm: false, attention: false, mlp: false, classifier: false },
    }
}

impl Schema for ModernBertSchema {
    fn layer_prefix(&self, _c: &Config) -> String {
        "model.layers.".into()
    }

    fn uses_layer_tensor(&self, c: &Config, tail: &str) -> bool {
        let b = biases(c);
        is_norm(tail, "attn_norm", b.norm)
            || is_norm(tail, "mlp_norm", b.norm)
            || is_projection(tail, &["attn.Wqkv", "attn.Wo"], b.attention)
            || is_projection(tail, &["mlp.Wi", "mlp.Wo"], b.mlp)
    }

    fn uses_tensor(&self, c: &Config, name: &str) -> bool {
        let b = biases(c);
        name == "model.embeddings.tok_embeddings.weight"
            || is_norm(name, "model.embeddings.norm", b.norm)
            || is_norm(name, "model.final_norm", b.norm)
            || is_projection(name, &["head.dense"], b.classifier)
            || is_norm(name, "head.norm", b.norm)
            || is_projection(name, &["classifier"], true)
    }

    fn embeddings(&self, c: &Config, w: &Weights) -> Result<EmbeddingWeights> {
        let h = c.hidden_size;
        Ok(EmbeddingWeights {
            tokens: w.read_f32("model.embeddings.tok_embeddings.weight", &[c.vocab_size, h])?,
            positions: None,
            token_type: None,
            norm: Some(norm(w, "model.embeddings.norm", h, biases(c).norm)?),
            projection: None,
            width: h,
        })
    }

    fn layer(&self, c: &Config, w: &Weights, i: usize) -> Result<LayerWeights> {
        let (h, inter, b) = (c.hidden_size, c.intermediate_size, biases(c));
        let name = |n: &str| format!("model.layers.{i}.{n}");
        Ok(LayerWeights {
            // The first layer's attention norm is an identity (the embeddings were just normed).
            attention_norm: if i == 0 { None } else { Some(norm(w, &name("attn_norm"), h, b.norm)?) },
            qkv: dense(w, &[(name("attn.Wqkv"), 3 * h)], h, b.attention)?,
            o: dense(w, &[(name("attn.Wo"), h)], h, b.attention)?,
            mlp_norm: norm(w, &name("mlp_norm"), h, b.norm)?,
            up: dense(w, &[(name("mlp.Wi"), 2 * inter)], h, b.mlp)?,
            down: dense(w, &[(name("mlp.Wo"), h)], inter, b.mlp)?,
            relative: None,
        })
    }

    fn final_norm(&self, c: &Config, w: &Weights) -> Result<Option<NormWeights>> {
        Ok(Some(norm(w, "model.final_norm", c.hidden_size, biases(c).norm)?))
    }

    fn head(&self, c: &Config, w: &Weights) -> Result<Option<HeadWeights>> {
        let (h, b) = (c.hidden_size, biases(c));
        Ok(Some(HeadWeights {
            dense: dense(w, &[("head.dense".to_string(), h)], h, b.classifier)?,
            norm: norm(w, "head.norm", h, b.norm)?,
        }))
    }

    fn classifier(&self, c: &Config, w: &Weights) -> Result<Dense> {
        dense(w, &[("classifier".to_string(), c.num_labels())], c.hidden_size, true)
    }
}
