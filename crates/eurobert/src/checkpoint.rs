//! A checkpoint read through its family's tensor schema (`arch/`): names checked against the
//! config before any tensor is read, then the weights in the recipe's shapes.
//!
//! Encoders read the checkpoint through `Checkpoint` one layer at a time, so a load holds the
//! encoder's own copy of the weights plus at most one layer in f32.

use std::path::Path;

use crate::arch::Schema;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::recipe::{Dense, EmbeddingWeights, HeadWeights, LayerWeights, NormWeights};
use crate::weights::Weights;

/// A checkpoint whose tensor names were checked against the config.
pub(crate) struct Checkpoint<'a> {
    config: &'a Config,
    weights: &'a Weights,
    schema: &'static dyn Schema,
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
        let schema = c.family.schema();
        let prefix = schema.layer_prefix(c);
        let mut layers_seen = 0usize;
        let mut extra_layer: Option<usize> = None;
        let mut unused: Vec<&str> = Vec::new();
        for name in weights.names() {
            if let Some(rest) = name.strip_prefix(prefix.as_str()) {
                let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
                if let Ok(i) = index.parse::<usize>() {
                    layers_seen = layers_seen.max(i + 1);
                    if i >= c.num_hidden_layers {
                        extra_layer = Some(extra_layer.map_or(i, |e| e.min(i)));
                    } else if !schema.uses_layer_tensor(c, tail) {
                        unused.push(name);
                    }
                    continue;
                }
            }
            if !schema.uses_tensor(c, name) {
                unused.push(name);
            }
        }
        if let Some(i) = extra_layer {
            return Err(Error::config(
                config_path,
                format!(
                    "the checkpoint has tensors of {prefix}{i} but num_hidden_layers is {}: the config does not describe these weights",
                    c.num_hidden_layers
                ),
            ));
        }
        if layers_seen < c.num_hidden_layers {
            return Err(Error::config(
                config_path,
                format!(
                    "num_hidden_layers is {} but the checkpoint has tensors for {layers_seen} layers (no {prefix}{layers_seen})",
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
                "{} tensor(s) of the checkpoint are not used by {} and were ignored: {}{more}",
                unused.len(),
                c.architecture(),
                shown.join(", ")
            ));
        }
        Ok(Checkpoint { config, weights, schema, warnings })
    }

    pub fn embeddings(&self) -> Result<EmbeddingWeights> {
        self.schema.embeddings(self.config, self.weights)
    }

    pub fn layer(&self, i: usize) -> Result<LayerWeights> {
        self.schema.layer(self.config, self.weights, i)
    }

    pub fn final_norm(&self) -> Result<Option<NormWeights>> {
        self.schema.final_norm(self.config, self.weights)
    }

    pub fn head(&self) -> Result<Option<HeadWeights>> {
        self.schema.head(self.config, self.weights)
    }

    /// The token classification head (always with a bias).
    pub fn classifier(&self) -> Result<Dense> {
        self.schema.classifier(self.config, self.weights)
    }
}
