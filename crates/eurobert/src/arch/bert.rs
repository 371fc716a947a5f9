//! BERT and the encoders saved in its shape: post-norm layers with LayerNorm (with bias),
//! learned absolute positions, a token-type row, biased projections and a GELU MLP.
//! - RoBERTa, XLM-R and CamemBERT: prefix `roberta.`, positions from `pad + 1`;
//! - ELECTRA: prefix `electra.`, embeddings of `embedding_size` projected to the hidden size;
//! - DistilBERT: its own names and config keys, no token types, ε fixed at 1e-12.
//!
//! As `modeling_bert.py` (and the others) in transformers 5.25 compute them.

use super::{dense, is_norm, is_projection, norm, Family, Schema};
use crate::config::{eps, labels, Config, Fields, Tables};
use crate::error::Result;
use crate::recipe::{Act, Dense, EmbeddingWeights, Head, HeadWeights, LayerWeights, Mlp, NormKind, NormWeights, Positions, Recipe};
use crate::weights::Weights;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BertKind {
    Bert,
    Roberta,
    XlmRoberta,
    Camembert,
    Electra,
    DistilBert,
}

impl BertKind {
    pub const ALL: [BertKind; 6] =
        [BertKind::Bert, BertKind::Roberta, BertKind::XlmRoberta, BertKind::Camembert, BertKind::Electra, BertKind::DistilBert];

    pub fn from_model_type(t: &str) -> Option<BertKind> {
        BertKind::ALL.into_iter().find(|k| k.model_type() == t)
    }

    pub fn model_type(self) -> &'static str {
        match self {
            BertKind::Bert => "bert",
            BertKind::Roberta => "roberta",
            BertKind::XlmRoberta => "xlm-roberta",
            BertKind::Camembert => "camembert",
            BertKind::Electra => "electra",
            BertKind::DistilBert => "distilbert",
        }
    }

    pub fn class(self) -> &'static str {
        match self {
            BertKind::Bert => "BertForTokenClassification",
            BertKind::Roberta => "RobertaForTokenClassification",
            BertKind::XlmRoberta => "XLMRobertaForTokenClassification",
            BertKind::Camembert => "CamembertForTokenClassification",
            BertKind::Electra => "ElectraForTokenClassification",
            BertKind::DistilBert => "DistilBertForTokenClassification",
        }
    }

    /// The attribute the encoder sits under in the token classifier.
    fn prefix(self) -> &'static str {
        match self {
            BertKind::Bert => "bert",
            BertKind::Roberta | BertKind::XlmRoberta | BertKind::Camembert => "roberta",
            BertKind::Electra => "electra",
            BertKind::DistilBert => "distilbert",
        }
    }

    fn roberta_like(self) -> bool {
        matches!(self, BertKind::Roberta | BertKind::XlmRoberta | BertKind::Camembert)
    }
}

/// A layer count read before anything is sized from it (a per-layer table of a claimed
/// trillion layers must fail here, not in the allocator).
pub(crate) fn layer_count(f: &Fields, key: &str, default: usize) -> Result<usize> {
    let n = f.usize_opt(key)?.unwrap_or(default);
    if n > 4096 {
        return Err(f.error(format!("num_hidden_layers {n} is out of range (at most 4096)")));
    }
    Ok(n)
}

pub(super) fn parse_config(kind: BertKind, f: &Fields) -> Result<Config> {
    let distil = kind == BertKind::DistilBert;
    // DistilBERT's config names (its `attribute_map` in transformers).
    let key = |bert: &'static str, distil_key: &'static str| if distil { distil_key } else { bert };
    let hidden_size = f.usize_opt(key("hidden_size", "dim"))?.unwrap_or(if kind == BertKind::Electra { 256 } else { 768 });
    let heads = f.usize_opt(key("num_attention_heads", "n_heads"))?.unwrap_or(if kind == BertKind::Electra { 4 } else { 12 });
    if heads == 0 || hidden_size % heads != 0 {
        return Err(f.error(format!("hidden_size ({hidden_size}) must be a multiple of num_attention_heads ({heads})")));
    }
    let layers = layer_count(f, key("num_hidden_layers", "n_layers"), if distil { 6 } else { 12 })?;
    let act_name = f.str_opt(key("hidden_act", "activation"))?.unwrap_or("gelu");
    let act = Act::parse(act_name).filter(|a| *a != Act::Silu || !distil).ok_or_else(|| {
        f.error(format!(
            "unsupported {} '{act_name}' (implemented: gelu, gelu_new, gelu_pytorch_tanh, silu)",
            key("hidden_act", "activation")
        ))
    })?;
    if let Some(p) = f.str_opt("position_embedding_type")? {
        // transformers 5 removed the relative variants; old configs still say "absolute".
        if p != "absolute" {
            return Err(f.error(format!("position_embedding_type '{p}' is not supported (only 'absolute')")));
        }
    }
    let pad = f.usize_opt("pad_token_id")?.unwrap_or(if kind.roberta_like() { 1 } else { 0 });
    let position_rows = f.usize_opt("max_position_embeddings")?.unwrap_or(512);
    // RoBERTa's positions are pad + 1 + t: the first pad + 1 rows are never read by a text.
    let offset = if kind.roberta_like() { pad + 1 } else { 0 };
    let embedding = if kind == BertKind::Electra { f.usize_opt("embedding_size")?.unwrap_or(128) } else { hidden_size };
    let token_types = if distil { 0 } else { f.usize_opt("type_vocab_size")?.unwrap_or(2) };
    if !distil && token_types == 0 {
        return Err(f.error("type_vocab_size must be at least 1 (transformers adds the first token type to every embedding)"));
    }
    // DistilBERT hard-codes its epsilon (modeling_distilbert.py); the others read theirs.
    let eps = if distil { 1e-12 } else { eps(f, "layer_norm_eps", 1e-12)? };
    let intermediate_size = f.usize_opt(key("intermediate_size", "hidden_dim"))?.unwrap_or(match kind {
        BertKind::Electra => 1024,
        _ => 3072,
    });
    Ok(Config {
        model_type: kind.model_type().into(),
        vocab_size: f.usize_opt("vocab_size")?.unwrap_or(match kind {
            BertKind::Roberta => 50265,
            _ => 30522,
        }),
        hidden_size,
        intermediate_size,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: heads,
        head_dim: hidden_size / heads,
        max_position_embeddings: position_rows.saturating_sub(offset),
        labels: labels(f)?,
        family: Family::Bert(kind),
        recipe: Recipe {
            norm: NormKind::Layer,
            eps,
            pre_norm: false,
            positions: Positions::Absolute { offset },
            token_type: !distil,
            embed_norm: true,
            embed_projection: kind == BertKind::Electra && embedding != hidden_size,
            project_then_norm: false,
            relative: None,
            first_attention_norm: true,
            mlp: Mlp::Plain(act),
            final_norm: false,
            head: Head::Linear,
            windows: vec![None; layers],
        },
        tables: Tables { positions: position_rows, token_types, embedding },
    })
}

pub(super) struct BertSchema;

fn kind(c: &Config) -> BertKind {
    match c.family {
        Family::Bert(k) => k,
        _ => BertKind::Bert,
    }
}

/// The per-layer tensor names of a kind: q, k, v, attention output, attention norm,
/// intermediate, output, output norm.
fn layer_names(k: BertKind) -> [&'static str; 8] {
    if k == BertKind::DistilBert {
        [
            "attention.q_lin",
            "attention.k_lin",
            "attention.v_lin",
            "attention.out_lin",
            "sa_layer_norm",
            "ffn.lin1",
            "ffn.lin2",
            "output_layer_norm",
        ]
    } else {
        [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ]
    }
}

impl Schema for BertSchema {
    fn layer_prefix(&self, c: &Config) -> String {
        let k = kind(c);
        if k == BertKind::DistilBert {
            "distilbert.transformer.layer.".into()
        } else {
            format!("{}.encoder.layer.", k.prefix())
        }
    }

    fn uses_layer_tensor(&self, c: &Config, tail: &str) -> bool {
        let [q, k, v, o, attn_norm, up, down, out_norm] = layer_names(kind(c));
        is_projection(tail, &[q, k, v, o, up, down], true) || is_norm(tail, attn_norm, true) || is_norm(tail, out_norm, true)
    }

    fn uses_tensor(&self, c: &Config, name: &str) -> bool {
        let k = kind(c);
        let Some(rest) = name.strip_prefix(k.prefix()).and_then(|r| r.strip_prefix('.')) else {
            return name == "classifier.weight" || name == "classifier.bias";
        };
        let Some(e) = rest.strip_prefix("embeddings.") else {
            return c.recipe.embed_projection && is_projection(rest, &["embeddings_project"], true);
        };
        e == "word_embeddings.weight"
            || e == "position_embeddings.weight"
            || (c.recipe.token_type && e == "token_type_embeddings.weight")
            || is_norm(e, "LayerNorm", true)
    }

    fn embeddings(&self, c: &Config, w: &Weights) -> Result<EmbeddingWeights> {
        let p = format!("{}.embeddings", kind(c).prefix());
        let e = c.tables.embedding;
        let token_type = if c.recipe.token_type {
            let table = w.read_f32(&format!("{p}.token_type_embeddings.weight"), &[c.tables.token_types, e])?;
            Some(table[..e].to_vec())
        } else {
            None
        };
        let projection = if c.recipe.embed_projection {
            Some(dense(w, &[(format!("{}.embeddings_project", kind(c).prefix()), c.hidden_size)], e, true)?)
        } else {
            None
        };
        Ok(EmbeddingWeights {
            tokens: w.read_f32(&format!("{p}.word_embeddings.weight"), &[c.vocab_size, e])?,
            positions: Some(w.read_f32(&format!("{p}.position_embeddings.weight"), &[c.tables.positions, e])?),
            token_type,
            norm: Some(norm(w, &format!("{p}.LayerNorm"), e, true)?),
            projection,
            width: e,
        })
    }

    fn layer(&self, c: &Config, w: &Weights, i: usize) -> Result<LayerWeights> {
        let h = c.hidden_size;
        let base = format!("{}{i}.", self.layer_prefix(c));
        let name = |n: &str| format!("{base}{n}");
        let [q, k, v, o, attn_norm, up, down, out_norm] = layer_names(kind(c));
        let inter = c.intermediate_size;
        Ok(LayerWeights {
            attention_norm: Some(norm(w, &name(attn_norm), h, true)?),
            qkv: dense(w, &[(name(q), h), (name(k), h), (name(v), h)], h, true)?,
            o: dense(w, &[(name(o), h)], h, true)?,
            mlp_norm: norm(w, &name(out_norm), h, true)?,
            up: dense(w, &[(name(up), inter)], h, true)?,
            down: dense(w, &[(name(down), h)], inter, true)?,
            relative: None,
        })
    }

    fn final_norm(&self, _c: &Config, _w: &Weights) -> Result<Option<NormWeights>> {
        Ok(None)
    }

    fn head(&self, _c: &Config, _w: &Weights) -> Result<Option<HeadWeights>> {
        Ok(None)
    }

    fn classifier(&self, c: &Config, w: &Weights) -> Result<Dense> {
        dense(w, &[("classifier".to_string(), c.num_labels())], c.hidden_size, true)
    }
}
