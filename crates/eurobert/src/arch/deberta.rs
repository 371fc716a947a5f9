//! DeBERTa-v2 and -v3 (`model_type` `deberta-v2`): BERT's post-norm layers with disentangled
//! attention over relative positions (`recipe::Relative`), the embeddings projected before
//! their norm, absolute positions only where `position_biased_input` says so.
//!
//! As `modeling_deberta_v2.py` in transformers 5.25 computes it. The relative embeddings are
//! normed (`norm_rel_ebd`) and projected through each layer's key/query projections (or its own
//! `pos_key_proj`/`pos_query_proj`) once, at load: they depend on no input.

use super::bert::layer_count;
use super::{dense, is_norm, is_projection, norm, Family, Schema};
use crate::config::{eps, labels, Config, Fields, Tables};
use crate::error::Result;
use crate::recipe::{
    Act, Dense, EmbeddingWeights, Head, HeadWeights, LayerWeights, Mlp, NormKind, NormWeights, Positions, Recipe, Relative, RelativeWeights,
};
use crate::weights::Weights;

/// The config facts the tensor schema needs beyond the recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DebertaFacts {
    /// The relative embeddings go through the layer's own query/key projections.
    pub share_att_key: bool,
    /// `norm_rel_ebd` has `layer_norm`: the relative embeddings are normed first.
    pub norm_rel: bool,
}

/// An integer field that may be negative (`-1` means "unset" in DeBERTa's config).
fn int(f: &Fields, key: &str, default: i64) -> Result<i64> {
    match f.present(key) {
        None => Ok(default),
        Some(v) => v.as_i64().ok_or_else(|| f.error(format!("'{key}' must be an integer, got {v}"))),
    }
}

pub(super) fn parse_config(f: &Fields) -> Result<Config> {
    let hidden_size = f.usize_opt("hidden_size")?.unwrap_or(1536);
    let heads = f.usize_opt("num_attention_heads")?.unwrap_or(24);
    if heads == 0 || hidden_size % heads != 0 {
        return Err(f.error(format!("hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({heads})")));
    }
    let head_dim = f.usize_opt("attention_head_size")?.unwrap_or(hidden_size / heads);
    let layers = layer_count(f, "num_hidden_layers", 24)?;
    let act_name = f.str_opt("hidden_act")?.unwrap_or("gelu");
    let act = Act::parse(act_name)
        .ok_or_else(|| f.error(format!("unsupported hidden_act '{act_name}' (implemented: gelu, gelu_new, gelu_pytorch_tanh, silu)")))?;
    if int(f, "conv_kernel_size", 0)? > 0 {
        return Err(f.error("conv_kernel_size > 0 (DeBERTa-v2-xlarge's convolution layer) is not implemented"));
    }
    let max_positions = f.usize_opt("max_position_embeddings")?.unwrap_or(512);
    // A list, or the older "p2c|c2p" string; transformers uses only c2p and p2c.
    let att_types: Vec<String> = match f.present("pos_att_type") {
        None => Vec::new(),
        Some(serde_json::Value::String(s)) => s.to_lowercase().split('|').map(|x| x.trim().to_string()).collect(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_str()).map(str::to_string).collect(),
        Some(v) => return Err(f.error(format!("'pos_att_type' must be a list or a string, got {v}"))),
    };
    let relative = if f.bool_opt("relative_attention")?.unwrap_or(false) {
        let max_rel = int(f, "max_relative_positions", -1)?;
        let fits = |key: &str, n: i64| usize::try_from(n).map_err(|_| f.error(format!("{key} {n} is out of range for this platform")));
        let max_position = if max_rel < 1 { max_positions } else { fits("max_relative_positions", max_rel)? };
        let buckets = fits("position_buckets", int(f, "position_buckets", -1)?.max(0))?;
        let span = if buckets > 0 { buckets } else { max_position };
        if buckets > 0 && max_position <= buckets / 2 + 1 {
            return Err(
                f.error(format!("max_relative_positions ({max_position}) must exceed position_buckets / 2 + 1 ({})", buckets / 2 + 1))
            );
        }
        if span == 0 || span > 1 << 20 {
            return Err(f.error(format!("the relative attention span {span} is out of range (1 to 2^20)")));
        }
        let has = |t: &str| att_types.iter().any(|x| x == t);
        Some(Relative { span, buckets, max_position, c2p: has("c2p"), p2c: has("p2c") })
    } else {
        None
    };
    let norm_rel = f.str_opt("norm_rel_ebd")?.unwrap_or("none").to_lowercase().split('|').any(|x| x.trim() == "layer_norm");
    let biased_input = f.bool_opt("position_biased_input")?.unwrap_or(true);
    let token_types = f.usize_opt("type_vocab_size")?.unwrap_or(0);
    let embedding = f.usize_opt("embedding_size")?.unwrap_or(hidden_size);
    Ok(Config {
        model_type: "deberta-v2".into(),
        vocab_size: f.usize_opt("vocab_size")?.unwrap_or(128100),
        hidden_size,
        intermediate_size: f.usize_opt("intermediate_size")?.unwrap_or(6144),
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim,
        max_position_embeddings: max_positions,
        labels: labels(f)?,
        family: Family::Deberta(DebertaFacts { share_att_key: f.bool_opt("share_att_key")?.unwrap_or(false), norm_rel }),
        recipe: Recipe {
            norm: NormKind::Layer,
            eps: eps(f, "layer_norm_eps", 1e-7)?,
            pre_norm: false,
            positions: if biased_input { Positions::Absolute { offset: 0 } } else { Positions::None },
            token_type: token_types > 0,
            embed_norm: true,
            embed_projection: embedding != hidden_size,
            project_then_norm: true,
            relative,
            first_attention_norm: true,
            mlp: Mlp::Plain(act),
            final_norm: false,
            head: Head::Linear,
            windows: vec![None; layers],
        },
        tables: Tables { positions: if biased_input { max_positions } else { 0 }, token_types, embedding },
    })
}

pub(super) struct DebertaSchema;

fn facts(c: &Config) -> DebertaFacts {
    match c.family {
        Family::Deberta(f) => f,
        _ => DebertaFacts { share_att_key: false, norm_rel: false },
    }
}

/// The layer's relative-position projections that its config uses, by tensor name.
fn relative_projections(c: &Config) -> Vec<&'static str> {
    let (Some(r), f) = (c.recipe.relative, facts(c)) else { return Vec::new() };
    if f.share_att_key {
        return Vec::new();
    }
    let mut v = Vec::new();
    if r.c2p {
        v.push("attention.self.pos_key_proj");
    }
    if r.p2c {
        v.push("attention.self.pos_query_proj");
    }
    v
}

/// `x Wᵀ + b` for `rows` rows of `x`, at load (the relative tables).
fn project(x: &[f32], rows: usize, d: &Dense) -> Vec<f32> {
    assert_eq!(x.len(), rows * d.inputs, "rows of the projected table");
    use rayon::prelude::*;
    let mut y = vec![0f32; rows * d.outputs];
    y.par_chunks_mut(d.outputs).enumerate().for_each(|(r, out)| {
        let row = &x[r * d.inputs..][..d.inputs];
        for (o, v) in out.iter_mut().enumerate() {
            let w = &d.weight[o * d.inputs..][..d.inputs];
            *v = dot(row, w) + d.bias.as_ref().map_or(0.0, |b| b[o]);
        }
    });
    y
}

/// A dot product in eight f32 lanes (a plain loop would not vectorize its sum).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

impl DebertaSchema {
    /// The relative embeddings as the layers read them: the first `2·span` rows, normed where
    /// the config says so.
    fn relative_embeddings(&self, c: &Config, w: &Weights, r: Relative) -> Result<Vec<f32>> {
        let h = c.hidden_size;
        let rows = 2 * r.span;
        let table = w.read_f32("deberta.encoder.rel_embeddings.weight", &[rows, h])?;
        if !facts(c).norm_rel {
            return Ok(table);
        }
        let n = norm(w, "deberta.encoder.LayerNorm", h, true)?;
        let mut out = vec![0f32; table.len()];
        crate::cpu::simd::layer_norm(&table, &n.weight, n.bias.as_deref(), c.recipe.eps, &mut out);
        Ok(out)
    }
}

impl Schema for DebertaSchema {
    fn layer_prefix(&self, _c: &Config) -> String {
        "deberta.encoder.layer.".into()
    }

    fn uses_layer_tensor(&self, c: &Config, tail: &str) -> bool {
        is_projection(
            tail,
            &[
                "attention.self.query_proj",
                "attention.self.key_proj",
                "attention.self.value_proj",
                "attention.output.dense",
                "intermediate.dense",
                "output.dense",
            ],
            true,
        ) || is_norm(tail, "attention.output.LayerNorm", true)
            || is_norm(tail, "output.LayerNorm", true)
            || is_projection(tail, &relative_projections(c), true)
    }

    fn uses_tensor(&self, c: &Config, name: &str) -> bool {
        if name == "classifier.weight" || name == "classifier.bias" {
            return true;
        }
        let r = &c.recipe;
        if let Some(e) = name.strip_prefix("deberta.embeddings.") {
            return e == "word_embeddings.weight"
                || (matches!(r.positions, Positions::Absolute { .. }) && e == "position_embeddings.weight")
                || (r.token_type && e == "token_type_embeddings.weight")
                || (r.embed_projection && e == "embed_proj.weight")
                || is_norm(e, "LayerNorm", true);
        }
        r.relative.is_some()
            && (name == "deberta.encoder.rel_embeddings.weight" || (facts(c).norm_rel && is_norm(name, "deberta.encoder.LayerNorm", true)))
    }

    fn embeddings(&self, c: &Config, w: &Weights) -> Result<EmbeddingWeights> {
        let e = c.tables.embedding;
        let p = "deberta.embeddings";
        let token_type = if c.recipe.token_type {
            let table = w.read_f32(&format!("{p}.token_type_embeddings.weight"), &[c.tables.token_types, e])?;
            Some(table[..e].to_vec())
        } else {
            None
        };
        let positions = match c.recipe.positions {
            Positions::Absolute { .. } => Some(w.read_f32(&format!("{p}.position_embeddings.weight"), &[c.tables.positions, e])?),
            _ => None,
        };
        let projection =
            if c.recipe.embed_projection { Some(dense(w, &[(format!("{p}.embed_proj"), c.hidden_size)], e, false)?) } else { None };
        Ok(EmbeddingWeights {
            tokens: w.read_f32(&format!("{p}.word_embeddings.weight"), &[c.vocab_size, e])?,
            positions,
            token_type,
            // After the projection: over the hidden width.
            norm: Some(norm(w, &format!("{p}.LayerNorm"), c.hidden_size, true)?),
            projection,
            width: e,
        })
    }

    fn layer(&self, c: &Config, w: &Weights, i: usize) -> Result<LayerWeights> {
        let (h, inter) = (c.hidden_size, c.intermediate_size);
        let all = c.num_attention_heads * c.head_dim;
        let name = |n: &str| format!("deberta.encoder.layer.{i}.{n}");
        let q = dense(w, &[(name("attention.self.query_proj"), all)], h, true)?;
        let k = dense(w, &[(name("attention.self.key_proj"), all)], h, true)?;
        let v = dense(w, &[(name("attention.self.value_proj"), all)], h, true)?;
        let relative = match c.recipe.relative {
            Some(r) => {
                let table = self.relative_embeddings(c, w, r)?;
                let rows = 2 * r.span;
                let (keys, queries) = if facts(c).share_att_key {
                    (r.c2p.then(|| project(&table, rows, &k)), r.p2c.then(|| project(&table, rows, &q)))
                } else {
                    let own = |n: &str| -> Result<Vec<f32>> { Ok(project(&table, rows, &dense(w, &[(name(n), all)], h, true)?)) };
                    (
                        if r.c2p { Some(own("attention.self.pos_key_proj")?) } else { None },
                        if r.p2c { Some(own("attention.self.pos_query_proj")?) } else { None },
                    )
                };
                Some(RelativeWeights { keys, queries })
            }
            None => None,
        };
        let mut weight = q.weight;
        weight.extend(k.weight);
        weight.extend(v.weight);
        let mut bias = q.bias.unwrap_or_default();
        bias.extend(k.bias.unwrap_or_default());
        bias.extend(v.bias.unwrap_or_default());
        Ok(LayerWeights {
            attention_norm: Some(norm(w, &name("attention.output.LayerNorm"), h, true)?),
            qkv: Dense { weight, bias: Some(bias), outputs: 3 * all, inputs: h },
            o: dense(w, &[(name("attention.output.dense"), h)], all, true)?,
            mlp_norm: norm(w, &name("output.LayerNorm"), h, true)?,
            up: dense(w, &[(name("intermediate.dense"), inter)], h, true)?,
            down: dense(w, &[(name("output.dense"), h)], inter, true)?,
            relative,
        })
    }

    fn final_norm(&self, _c: &Config, _w: &Weights) -> Result<Option<NormWeights>> {
        Ok(None)
    }

    fn head(&self, _c: &Config, _w: &Weights) -> Result<Option<HeadWeights>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::recipe::{Positions, Relative};

    fn parse(json: &str) -> crate::error::Result<Config> {
        Config::from_json_str(json, Path::new("config.json"))
    }

    #[test]
    fn config_fields_as_transformers_reads_them() {
        // deberta-v3-base's config (relative fields) with the older string pos_att_type.
        let c = parse(
            r#"{"model_type":"deberta-v2","hidden_size":768,"num_attention_heads":12,"num_hidden_layers":12,"intermediate_size":3072,
            "relative_attention":true,"position_buckets":256,"norm_rel_ebd":"layer_norm","share_att_key":true,"pos_att_type":"p2c|c2p",
            "max_relative_positions":-1,"position_biased_input":false,"type_vocab_size":0,"max_position_embeddings":512}"#,
        )
        .unwrap();
        assert_eq!(c.recipe.relative, Some(Relative { span: 256, buckets: 256, max_position: 512, c2p: true, p2c: true }));
        assert_eq!(c.recipe.positions, Positions::None);
        assert_eq!((c.recipe.eps, c.recipe.token_type, c.recipe.pre_norm), (1e-7, false, false));
        assert_eq!(c.architecture(), "DebertaV2ForTokenClassification");
        // No buckets: the span is max_relative_positions, else max_position_embeddings.
        let c =
            parse(r#"{"model_type":"deberta-v2","relative_attention":true,"pos_att_type":["c2p"],"max_relative_positions":64}"#).unwrap();
        assert_eq!(c.recipe.relative, Some(Relative { span: 64, buckets: 0, max_position: 64, c2p: true, p2c: false }));
        assert_eq!(c.recipe.positions, Positions::Absolute { offset: 0 });
        // transformers' class defaults: no relative attention at all.
        assert_eq!(parse(r#"{"model_type":"deberta-v2"}"#).unwrap().recipe.relative, None);
    }

    #[test]
    fn what_is_not_implemented_is_refused_by_name() {
        let e = parse(r#"{"model_type":"deberta-v2","conv_kernel_size":3}"#).unwrap_err().to_string();
        assert!(e.contains("conv_kernel_size"), "{e}");
        let e = parse(r#"{"model_type":"deberta"}"#).unwrap_err().to_string();
        assert!(e.contains("unsupported model_type 'deberta'") && e.contains("deberta-v2"), "{e}");
        let e = parse(r#"{"model_type":"deberta-v2","relative_attention":true,"position_buckets":256,"max_relative_positions":100}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_relative_positions"), "{e}");
    }
}
