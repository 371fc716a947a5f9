//! The EuroBERT checkpoint schema, in one place: the tensor names of
//! `EuroBertForTokenClassification`, their shapes from `config.json`, and the fusions every
//! encoder uses (q/k/v stacked into one projection, gate/up into another).
//!
//! Encoders read the checkpoint through `Checkpoint` one layer at a time, so a load holds the
//! encoder's own copy of the weights plus at most one layer in f32.

use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::weights::Weights;

const EMBED_TOKENS: &str = "model.embed_tokens.weight";
const FINAL_NORM: &str = "model.norm.weight";
const CLASSIFIER: &str = "classifier";
const LAYER_PREFIX: &str = "model.layers.";
const INPUT_NORM: &str = "input_layernorm.weight";
const POST_ATTENTION_NORM: &str = "post_attention_layernorm.weight";
/// Projections of a layer, each a `{name}.weight` and, with the config's bias flag, `{name}.bias`.
const ATTENTION: [&str; 4] = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"];
const MLP: [&str; 3] = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

/// A dense projection `y = x Wᵀ + b` in f32: `weight` is `(outputs, inputs)`, row-major, as
/// PyTorch stores it.
pub(crate) struct Dense {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub outputs: usize,
    pub inputs: usize,
}

/// One encoder layer's weights, fused as every encoder runs them.
pub(crate) struct LayerWeights {
    pub input_norm: Vec<f32>,
    /// q, k and v stacked along the outputs: `(heads + 2·kv_heads)·head_dim` rows.
    pub qkv: Dense,
    pub o: Dense,
    pub post_attention_norm: Vec<f32>,
    /// gate and up stacked along the outputs: `2·intermediate` rows, gate first.
    pub gate_up: Dense,
    pub down: Dense,
}

/// A checkpoint whose tensor names were checked against the config.
pub(crate) struct Checkpoint<'a> {
    config: &'a Config,
    weights: &'a Weights,
    /// What was accepted but is worth telling (tensors the model does not use).
    pub warnings: Vec<String>,
}

impl<'a> Checkpoint<'a> {
    /// Compares the checkpoint's tensor names with the ones the config implies, before any
    /// tensor is read: layers past `num_hidden_layers` are an error (a config that silently
    /// drops layers computes garbage); tensors the token classifier does not use (an
    /// `lm_head`, a pooler) load with a warning that names them, as transformers does.
    pub fn open(config: &'a Config, weights: &'a Weights, config_path: &Path) -> Result<Self> {
        let c = config;
        let mut layers_seen = 0usize;
        let mut extra_layer: Option<usize> = None;
        let mut unused: Vec<&str> = Vec::new();
        let projection = |rest: &str, names: &[&str], bias: bool| {
            names.iter().any(|p| rest.strip_prefix(p) == Some(".weight") || (bias && rest.strip_prefix(p) == Some(".bias")))
        };
        for name in weights.names() {
            if let Some(rest) = name.strip_prefix(LAYER_PREFIX) {
                let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
                if let Ok(i) = index.parse::<usize>() {
                    layers_seen = layers_seen.max(i + 1);
                    if i >= c.num_hidden_layers {
                        extra_layer = Some(extra_layer.map_or(i, |e| e.min(i)));
                    } else if !(tail == INPUT_NORM
                        || tail == POST_ATTENTION_NORM
                        || projection(tail, &ATTENTION, c.attention_bias)
                        || projection(tail, &MLP, c.mlp_bias))
                    {
                        unused.push(name);
                    }
                    continue;
                }
            }
            let head = name.strip_prefix(CLASSIFIER).is_some_and(|r| r == ".weight" || r == ".bias");
            if !(name == EMBED_TOKENS || name == FINAL_NORM || head) {
                unused.push(name);
            }
        }
        if let Some(i) = extra_layer {
            return Err(Error::config(
                config_path,
                format!(
                    "the checkpoint has tensors of {LAYER_PREFIX}{i} but num_hidden_layers is {}: the config does not describe these weights",
                    c.num_hidden_layers
                ),
            ));
        }
        if layers_seen < c.num_hidden_layers {
            return Err(Error::config(
                config_path,
                format!(
                    "num_hidden_layers is {} but the checkpoint has tensors for {layers_seen} layers (no {LAYER_PREFIX}{layers_seen})",
                    c.num_hidden_layers
                ),
            ));
        }
        let mut warnings = Vec::new();
        if !unused.is_empty() {
            unused.sort();
            let shown: Vec<&str> = unused.iter().take(8).copied().collect();
            let more = if unused.len() > 8 { format!(" and {} more", unused.len() - 8) } else { String::new() };
            warnings.push(format!(
                "{} tensor(s) of the checkpoint are not used by EuroBertForTokenClassification and were ignored: {}{more}",
                unused.len(),
                shown.join(", ")
            ));
        }
        Ok(Checkpoint { config, weights, warnings })
    }

    /// `(vocab, hidden)`, row-major.
    pub fn embed_tokens(&self) -> Result<Vec<f32>> {
        let c = self.config;
        self.weights.read_f32(EMBED_TOKENS, &[c.vocab_size, c.hidden_size])
    }

    pub fn final_norm(&self) -> Result<Vec<f32>> {
        self.weights.read_f32(FINAL_NORM, &[self.config.hidden_size])
    }

    /// The token classification head (always with a bias).
    pub fn classifier(&self) -> Result<Dense> {
        let c = self.config;
        self.dense(&[(CLASSIFIER.to_string(), c.num_labels())], c.hidden_size, true)
    }

    pub fn layer(&self, i: usize) -> Result<LayerWeights> {
        let c = self.config;
        let h = c.hidden_size;
        let name = |n: &str| format!("{LAYER_PREFIX}{i}.{n}");
        let (q_out, kv_out) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let [q, k, v, o] = ATTENTION;
        let [gate, up, down] = MLP;
        let (ab, mb, inter) = (c.attention_bias, c.mlp_bias, c.intermediate_size);
        Ok(LayerWeights {
            input_norm: self.weights.read_f32(&name(INPUT_NORM), &[h])?,
            qkv: self.dense(&[(name(q), q_out), (name(k), kv_out), (name(v), kv_out)], h, ab)?,
            o: self.dense(&[(name(o), h)], q_out, ab)?,
            post_attention_norm: self.weights.read_f32(&name(POST_ATTENTION_NORM), &[h])?,
            gate_up: self.dense(&[(name(gate), inter), (name(up), inter)], h, mb)?,
            down: self.dense(&[(name(down), h)], inter, mb)?,
        })
    }

    /// Projections `(prefix, outputs)` of the same input, stacked along the outputs.
    fn dense(&self, parts: &[(String, usize)], inputs: usize, bias: bool) -> Result<Dense> {
        let outputs: usize = parts.iter().map(|p| p.1).sum();
        if let [(prefix, rows)] = parts {
            let weight = self.weights.read_f32(&format!("{prefix}.weight"), &[*rows, inputs])?;
            let bias = if bias { Some(self.weights.read_f32(&format!("{prefix}.bias"), &[*rows])?) } else { None };
            return Ok(Dense { weight, bias, outputs, inputs });
        }
        let mut weight = Vec::with_capacity(outputs * inputs);
        let mut b = bias.then(|| Vec::with_capacity(outputs));
        for (prefix, rows) in parts {
            weight.extend(self.weights.read_f32(&format!("{prefix}.weight"), &[*rows, inputs])?);
            if let Some(b) = &mut b {
                b.extend(self.weights.read_f32(&format!("{prefix}.bias"), &[*rows])?);
            }
        }
        Ok(Dense { weight, bias: b, outputs, inputs })
    }
}
