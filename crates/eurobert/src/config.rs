//! `config.json` of a Hugging Face token-classification checkpoint: every field that changes
//! the math, validated up front so a bad file fails at load with its name, not mid-forward.
//! The families' own fields are read in `arch/`; the helpers for reading them are here.

use std::path::Path;

use serde_json::{Map, Value};

use crate::arch::Family;
use crate::error::{Error, Result};
use crate::recipe::{Positions, Recipe};

/// Largest size any config field may claim (a model file from the Hub must never make us
/// allocate from an absurd number); real models are far below (XLM-R's vocab: 250,002).
const MAX_SIZE: usize = 1 << 24;
const MAX_LAYERS: usize = 4096;
/// Most labels generated as `LABEL_i` when the config has `num_labels` but no `id2label`.
const MAX_LABELS: usize = 1 << 16;

/// A token-classification checkpoint's `config.json`: the sizes every architecture has, and
/// (crate-internal) its family and the recipe its forward pass follows. Absent fields take the
/// defaults of the family's transformers config class, as `from_pretrained` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// transformers' `model_type` (`eurobert`, `bert`, `xlm-roberta`, ...).
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Longest sequence the model's positions take, special tokens included (RoBERTa's 514
    /// position rows start after the padding id: 512).
    pub max_position_embeddings: usize,
    /// Label names indexed by class id (`id2label`), `LABEL_i` where the config has none.
    pub labels: Vec<String>,
    pub(crate) family: Family,
    pub(crate) recipe: Recipe,
    /// Rows of the tables the checkpoint holds (for shape checks).
    pub(crate) tables: Tables,
}

/// Shapes of embedding tables that are not among the public sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Tables {
    /// Rows of an absolute position table (`max_position_embeddings` as written).
    pub positions: usize,
    /// Rows of the token-type table (`type_vocab_size`).
    pub token_types: usize,
    /// Width of the embeddings (ELECTRA's `embedding_size`; else the hidden size).
    pub embedding: usize,
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::files::read_text(path, 16 << 20)?;
        Self::from_json_str(&text, path)
    }

    /// `path` is used only in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })?;
        let obj = value.as_object().ok_or_else(|| Error::config(path, "expected a JSON object at the top level"))?;
        let f = Fields { obj, path };
        let model_type = match obj.get("model_type").and_then(Value::as_str) {
            Some(t) => t,
            None => return Err(Error::config(path, "missing string field 'model_type'")),
        };
        let Some(family) = Family::from_model_type(model_type) else {
            return Err(Error::config(
                path,
                format!("unsupported model_type '{model_type}': this runtime implements {}", Family::supported().join(", ")),
            ));
        };
        let config = crate::arch::parse_config(family, &f)?;
        config.check(path)?;
        Ok(config)
    }

    /// Sizes within what a model file may claim, before anything is allocated from them.
    fn check(&self, path: &Path) -> Result<()> {
        if self.hidden_size == 0 || self.intermediate_size == 0 || self.vocab_size == 0 {
            return Err(Error::config(path, "hidden_size, intermediate_size and vocab_size must be positive"));
        }
        if self.num_attention_heads == 0
            || self.num_key_value_heads == 0
            || !self.num_attention_heads.is_multiple_of(self.num_key_value_heads)
        {
            return Err(Error::config(
                path,
                format!(
                    "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                    self.num_attention_heads, self.num_key_value_heads
                ),
            ));
        }
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, MAX_SIZE),
            ("hidden_size", self.hidden_size, MAX_SIZE),
            ("intermediate_size", self.intermediate_size, MAX_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, 1 << 12),
            ("num_key_value_heads", self.num_key_value_heads, 1 << 12),
            ("head_dim", self.head_dim, 1 << 12),
            ("embedding_size", self.tables.embedding, MAX_SIZE),
            ("type_vocab_size", self.tables.token_types, MAX_SIZE),
            // Tables of absolute positions are read from the file; RoPE tables grow with
            // the longest sequence run, so a large claim costs nothing.
            ("max_position_embeddings", self.max_position_embeddings.max(self.tables.positions), 1 << 30),
        ] {
            if v > max {
                return Err(Error::config(path, format!("{name} {v} is out of range (at most {max})")));
            }
        }
        if self.max_position_embeddings == 0 {
            return Err(Error::config(path, "max_position_embeddings must be positive (after the position offset)"));
        }
        if self.head_dim == 0 {
            return Err(Error::config(path, "head_dim must be positive"));
        }
        let r = &self.recipe;
        if let Positions::Rope { thetas } = &r.positions {
            if !self.head_dim.is_multiple_of(2) {
                return Err(Error::config(path, format!("head_dim must be even and positive, got {}", self.head_dim)));
            }
            if let Some(t) = thetas.iter().find(|t| !((**t as f32).is_finite() && **t >= 1.0)) {
                return Err(Error::config(path, format!("rope_theta must be a finite number of at least 1 (in f32), got {t}")));
            }
        }
        Ok(())
    }

    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }

    /// The architecture's transformers class (`BertForTokenClassification`).
    pub fn architecture(&self) -> &'static str {
        self.family.class()
    }
}

/// `rope_parameters` (transformers v5) wins over legacy `rope_theta`/`rope_scaling`; only
/// the default RoPE is implemented, so any scaling is refused rather than silently ignored.
pub(crate) fn rope_theta(f: &Fields) -> Result<f64> {
    let check_type = |v: &Map<String, Value>, key: &str| -> Result<()> {
        let ty = v.get("rope_type").or_else(|| v.get("type")).and_then(Value::as_str).unwrap_or("default");
        if ty != "default" {
            return Err(Error::config(f.path, format!("{key}.rope_type '{ty}' is not supported (only 'default' RoPE)")));
        }
        Ok(())
    };
    if let Some(scaling) = f.obj.get("rope_scaling").filter(|v| !v.is_null()) {
        let scaling = scaling.as_object().ok_or_else(|| Error::config(f.path, "'rope_scaling' must be an object or null"))?;
        check_type(scaling, "rope_scaling")?;
    }
    if let Some(params) = f.obj.get("rope_parameters").filter(|v| !v.is_null()) {
        let params = params.as_object().ok_or_else(|| Error::config(f.path, "'rope_parameters' must be an object"))?;
        check_type(params, "rope_parameters")?;
        if let Some(theta) = params.get("rope_theta") {
            return theta
                .as_f64()
                .filter(|t| *t > 0.0)
                .ok_or_else(|| Error::config(f.path, "rope_parameters.rope_theta must be a positive number"));
        }
    }
    Ok(f.f64_opt("rope_theta")?.unwrap_or(10_000.0))
}

/// A norm epsilon under `key` (default `default`), checked: a zero or negative one divides by
/// zero or takes the root of a negative number.
pub(crate) fn eps(f: &Fields, key: &str, default: f64) -> Result<f32> {
    let e = f.f64_opt(key)?.unwrap_or(default);
    if !(e.is_finite() && e > 0.0 && e < 1.0) {
        return Err(f.error(format!("{key} must be a small positive number, got {e}")));
    }
    Ok(e as f32)
}

pub(crate) fn labels(f: &Fields) -> Result<Vec<String>> {
    let num_labels = f.usize_opt("num_labels")?;
    let Some(map) = f.obj.get("id2label").filter(|v| !v.is_null()) else {
        let n = num_labels.unwrap_or(2);
        if n == 0 || n > MAX_LABELS {
            return Err(Error::config(f.path, format!("num_labels {n} without id2label is out of range (1..={MAX_LABELS})")));
        }
        return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
    };
    let map = map.as_object().ok_or_else(|| Error::config(f.path, "'id2label' must be an object"))?;
    let mut labels = vec![None; map.len()];
    for (key, value) in map {
        let id: usize = key
            .parse()
            .ok()
            .filter(|id| *id < map.len())
            .ok_or_else(|| Error::config(f.path, format!("id2label key '{key}' is not an id in 0..{}", map.len())))?;
        let name = value.as_str().ok_or_else(|| Error::config(f.path, format!("id2label['{key}'] must be a string")))?;
        if labels[id].replace(name.to_string()).is_some() {
            return Err(Error::config(f.path, format!("id2label gives id {id} twice (key '{key}')")));
        }
    }
    // Each key took a distinct id in 0..len, so every slot is filled.
    let labels: Vec<String> = labels.into_iter().flatten().collect();
    if labels.is_empty() {
        return Err(Error::config(f.path, "'id2label' is empty"));
    }
    if let Some(n) = num_labels {
        if n != labels.len() {
            return Err(Error::config(f.path, format!("num_labels is {n} but id2label has {} entries", labels.len())));
        }
    }
    Ok(labels)
}

pub(crate) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub path: &'a Path,
}

impl Fields<'_> {
    pub fn present(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }
    pub fn str_opt(&self, key: &str) -> Result<Option<&str>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| Error::config(self.path, format!("'{key}' must be a string, got {v}"))),
        }
    }
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::config(self.path, message)
    }
    pub fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_u64().ok_or_else(|| Error::config(self.path, format!("'{key}' must be a non-negative integer, got {v}")))?;
                // On 32-bit targets (WebAssembly) a u64 may not fit: an error, never a wrap.
                usize::try_from(n).map(Some).map_err(|_| Error::config(self.path, format!("{key} {n} is out of range for this platform")))
            }
        }
    }
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| Error::config(self.path, format!("'{key}' must be a number, got {v}"))),
        }
    }
    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| Error::config(self.path, format!("'{key}' must be true or false, got {v}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config> {
        Config::from_json_str(json, Path::new("config.json"))
    }

    const BASE: &str = r#"{"model_type":"eurobert","vocab_size":100,"hidden_size":64,"intermediate_size":128,
        "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
        "rope_parameters":{"rope_type":"default","rope_theta":250000.0},
        "id2label":{"0":"O","1":"B-PER","2":"I-PER"}}"#;

    fn with(extra: &str) -> String {
        format!("{},{}", &BASE[..BASE.len() - 1], &extra[1..])
    }

    #[test]
    fn parses_every_field_that_changes_the_math() {
        let c = parse(BASE).unwrap();
        assert_eq!((c.hidden_size, c.intermediate_size, c.num_hidden_layers), (64, 128, 2));
        assert_eq!((c.num_attention_heads, c.num_key_value_heads, c.head_dim), (4, 2, 16));
        assert_eq!(c.recipe.positions, Positions::Rope { thetas: vec![250000.0; 2] });
        assert_eq!(c.recipe.eps, 1e-5);
        assert_eq!(c.labels, vec!["O", "B-PER", "I-PER"]);
        assert_eq!(c.family, Family::EuroBert { attention_bias: false, mlp_bias: false });
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = parse(r#"{"model_type":"eurobert"}"#).unwrap();
        assert_eq!((c.vocab_size, c.hidden_size, c.num_attention_heads, c.num_key_value_heads), (128_256, 768, 12, 12));
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.recipe.positions, Positions::Rope { thetas: vec![10_000.0; 12] });
        assert_eq!(c.labels, vec!["LABEL_0", "LABEL_1"]);
    }

    #[test]
    fn legacy_rope_theta_and_null_scaling_are_read() {
        let c = parse(r#"{"model_type":"eurobert","rope_theta":500000.0,"rope_scaling":null,"num_labels":3}"#).unwrap();
        assert_eq!(c.recipe.positions, Positions::Rope { thetas: vec![500000.0; 12] });
        assert_eq!(c.labels.len(), 3);
    }

    #[test]
    fn rejects_what_it_cannot_compute() {
        let cases = [
            (r#"{"model_type":"gpt2"}"#.to_string(), "unsupported model_type 'gpt2': this runtime implements eurobert, bert"),
            (r#"{"hidden_size":8}"#.to_string(), "missing string field 'model_type'"),
            (with(r#"{"rope_scaling":{"rope_type":"llama3","factor":8.0}}"#), "rope_type 'llama3'"),
            (with(r#"{"rope_parameters":{"rope_type":"yarn","rope_theta":1.0}}"#), "rope_type 'yarn'"),
            (with(r#"{"num_key_value_heads":3}"#), "multiple of num_key_value_heads"),
            (with(r#"{"hidden_act":"gelu"}"#), "unsupported hidden_act 'gelu'"),
            (with(r#"{"num_labels":5}"#), "num_labels is 5 but id2label has 3"),
            (with(r#"{"hidden_size":"big"}"#), "'hidden_size' must be a non-negative integer"),
            (with(r#"{"id2label":{"0":"O","7":"B-PER"}}"#), "id2label key '7'"),
            (with(r#"{"id2label":{"0":"O","00":"B-PER","1":"I-PER"}}"#), "id2label gives id 0 twice"),
            (
                r#"{"model_type":"eurobert","num_labels":1099511627776}"#.to_string(),
                // "without id2label is out of range" natively; 32-bit targets refuse it earlier.
                "num_labels 1099511627776",
            ),
            (with(r#"{"num_hidden_layers":1099511627776}"#), "num_hidden_layers 1099511627776 is out of range"),
            (with(r#"{"max_position_embeddings":4294967552}"#), "max_position_embeddings 4294967552 is out of range"),
            (with(r#"{"rms_norm_eps":0}"#), "rms_norm_eps must be a small positive number"),
            (with(r#"{"rms_norm_eps":-1e-5}"#), "rms_norm_eps must be a small positive number"),
            (with(r#"{"rope_parameters":{"rope_type":"default","rope_theta":1e308}}"#), "rope_theta must be a finite number"),
            ("{not json".to_string(), "invalid JSON"),
            ("[1,2]".to_string(), "expected a JSON object"),
        ];
        for (json, needle) in cases {
            let err = parse(&json).expect_err(&json).to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
            assert!(err.contains("config.json"), "{err:?} should name the file");
        }
    }
}
