//! `config.json` of a Hugging Face EuroBERT checkpoint: every field that changes the math,
//! validated up front so a bad file fails at load with its name, not mid-forward.

use std::path::Path;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest size any config field may claim (a model file from the Hub must never make us
/// allocate from an absurd number); real EuroBERTs are far below (vocab 128,256).
const MAX_SIZE: usize = 1 << 24;
const MAX_LAYERS: usize = 4096;
/// Most labels generated as `LABEL_i` when the config has `num_labels` but no `id2label`.
const MAX_LABELS: usize = 1 << 16;

/// Absent fields take `transformers.EuroBertConfig`'s defaults, as `from_pretrained` does.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    /// Label names indexed by class id (`id2label`), `LABEL_i` where the config has none.
    pub labels: Vec<String>,
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

        match obj.get("model_type").and_then(Value::as_str) {
            Some("eurobert") => {}
            Some(other) => {
                return Err(Error::config(path, format!("unsupported model_type '{other}': this runtime implements 'eurobert' only")))
            }
            None => return Err(Error::config(path, "missing string field 'model_type'")),
        }

        let hidden_size = f.usize_opt("hidden_size")?.unwrap_or(768);
        let num_attention_heads = f.usize_opt("num_attention_heads")?.unwrap_or(12);
        let num_key_value_heads = f.usize_opt("num_key_value_heads")?.unwrap_or(num_attention_heads);
        let head_dim = match f.usize_opt("head_dim")? {
            Some(d) => d,
            None => {
                if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
                    return Err(Error::config(path, "hidden_size must be divisible by num_attention_heads when head_dim is absent"));
                }
                hidden_size / num_attention_heads
            }
        };
        if num_attention_heads == 0 || num_key_value_heads == 0 || num_attention_heads % num_key_value_heads != 0 {
            return Err(Error::config(
                path,
                format!("num_attention_heads ({num_attention_heads}) must be a positive multiple of num_key_value_heads ({num_key_value_heads})"),
            ));
        }
        if head_dim == 0 || head_dim % 2 != 0 {
            return Err(Error::config(path, format!("head_dim must be even and positive, got {head_dim}")));
        }

        let act = obj.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        if act != "silu" && act != "swish" {
            return Err(Error::config(path, format!("unsupported hidden_act '{act}': EuroBERT uses 'silu'")));
        }

        let config = Config {
            vocab_size: f.usize_opt("vocab_size")?.unwrap_or(128_256),
            hidden_size,
            intermediate_size: f.usize_opt("intermediate_size")?.unwrap_or(3072),
            num_hidden_layers: f.usize_opt("num_hidden_layers")?.unwrap_or(12),
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: f.f64_opt("rms_norm_eps")?.unwrap_or(1e-5),
            rope_theta: rope_theta(&f)?,
            max_position_embeddings: f.usize_opt("max_position_embeddings")?.unwrap_or(8192),
            attention_bias: f.bool_opt("attention_bias")?.unwrap_or(false),
            mlp_bias: f.bool_opt("mlp_bias")?.unwrap_or(false),
            labels: labels(&f)?,
        };
        if config.hidden_size == 0 || config.intermediate_size == 0 || config.vocab_size == 0 {
            return Err(Error::config(path, "hidden_size, intermediate_size and vocab_size must be positive"));
        }
        for (name, v, max) in [
            ("vocab_size", config.vocab_size, MAX_SIZE),
            ("hidden_size", config.hidden_size, MAX_SIZE),
            ("intermediate_size", config.intermediate_size, MAX_SIZE),
            ("num_hidden_layers", config.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", config.num_attention_heads, 1 << 12),
            ("num_key_value_heads", config.num_key_value_heads, 1 << 12),
            ("head_dim", config.head_dim, 1 << 12),
            // RoPE tables grow with the longest sequence run, so a large claim costs nothing.
            ("max_position_embeddings", config.max_position_embeddings, 1 << 30),
        ] {
            if v > max {
                return Err(Error::config(path, format!("{name} {v} is out of range (at most {max})")));
            }
        }
        if config.max_position_embeddings == 0 {
            return Err(Error::config(path, "max_position_embeddings must be positive"));
        }
        if !(config.rms_norm_eps.is_finite() && config.rms_norm_eps > 0.0 && config.rms_norm_eps < 1.0) {
            return Err(Error::config(path, format!("rms_norm_eps must be a small positive number, got {}", config.rms_norm_eps)));
        }
        if !((config.rope_theta as f32).is_finite() && config.rope_theta >= 1.0) {
            return Err(Error::config(
                path,
                format!("rope_theta must be a finite number of at least 1 (in f32), got {}", config.rope_theta),
            ));
        }
        Ok(config)
    }

    pub fn num_labels(&self) -> usize {
        self.labels.len()
    }
}

/// `rope_parameters` (transformers v5) wins over legacy `rope_theta`/`rope_scaling`; only
/// the default RoPE is implemented, so any scaling is refused rather than silently ignored.
fn rope_theta(f: &Fields) -> Result<f64> {
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

fn labels(f: &Fields) -> Result<Vec<String>> {
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

struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn present(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }
    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| Error::config(self.path, format!("'{key}' must be a non-negative integer, got {v}"))),
        }
    }
    fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.present(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| Error::config(self.path, format!("'{key}' must be a number, got {v}"))),
        }
    }
    fn bool_opt(&self, key: &str) -> Result<Option<bool>> {
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
        assert_eq!(c.rope_theta, 250000.0);
        assert_eq!(c.rms_norm_eps, 1e-5);
        assert_eq!(c.labels, vec!["O", "B-PER", "I-PER"]);
        assert!(!c.attention_bias && !c.mlp_bias);
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = parse(r#"{"model_type":"eurobert"}"#).unwrap();
        assert_eq!((c.vocab_size, c.hidden_size, c.num_attention_heads, c.num_key_value_heads), (128_256, 768, 12, 12));
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.rope_theta, 10_000.0);
        assert_eq!(c.labels, vec!["LABEL_0", "LABEL_1"]);
    }

    #[test]
    fn legacy_rope_theta_and_null_scaling_are_read() {
        let c = parse(r#"{"model_type":"eurobert","rope_theta":500000.0,"rope_scaling":null,"num_labels":3}"#).unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert_eq!(c.labels.len(), 3);
    }

    #[test]
    fn rejects_what_it_cannot_compute() {
        let cases = [
            (r#"{"model_type":"bert"}"#.to_string(), "unsupported model_type 'bert'"),
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
                "num_labels 1099511627776 without id2label is out of range",
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
