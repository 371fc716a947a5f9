//! EuroBERT (`EuroBertForTokenClassification`): Llama-style pre-norm layers with RMSNorm,
//! RoPE, grouped-query attention and a SwiGLU MLP, then a final norm and the classifier.

use super::{dense, is_projection, Family, Schema};
use crate::config::{eps, labels, rope_theta, Config, Fields, Tables};
use crate::error::Result;
use crate::recipe::{Act, Dense, EmbeddingWeights, Head, HeadWeights, LayerWeights, Mlp, NormKind, NormWeights, Positions, Recipe};
use crate::weights::Weights;

const EMBED_TOKENS: &str = "model.embed_tokens.weight";
const FINAL_NORM: &str = "model.norm.weight";
const LAYER_PREFIX: &str = "model.layers.";
const INPUT_NORM: &str = "input_layernorm.weight";
const POST_ATTENTION_NORM: &str = "post_attention_layernorm.weight";
const ATTENTION: [&str; 4] = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"];
const MLP: [&str; 3] = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"];

pub(super) fn parse_config(f: &Fields) -> Result<Config> {
    let hidden_size = f.usize_opt("hidden_size")?.unwrap_or(768);
    let num_attention_heads = f.usize_opt("num_attention_heads")?.unwrap_or(12);
    let num_key_value_heads = f.usize_opt("num_key_value_heads")?.unwrap_or(num_attention_heads);
    let head_dim = match f.usize_opt("head_dim")? {
        Some(d) => d,
        None => {
            if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
                return Err(f.error("hidden_size must be divisible by num_attention_heads when head_dim is absent"));
            }
            hidden_size / num_attention_heads
        }
    };
    let act = f.str_opt("hidden_act")?.unwrap_or("silu");
    if act != "silu" && act != "swish" {
        return Err(f.error(format!("unsupported hidden_act '{act}': EuroBERT uses 'silu'")));
    }
    let layers = super::bert::layer_count(f, "num_hidden_layers", 12)?;
    let theta = rope_theta(f)?;
    Ok(Config {
        model_type: "eurobert".into(),
        vocab_size: f.usize_opt("vocab_size")?.unwrap_or(128_256),
        hidden_size,
        intermediate_size: f.usize_opt("intermediate_size")?.unwrap_or(3072),
        num_hidden_layers: layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        max_position_embeddings: f.usize_opt("max_position_embeddings")?.unwrap_or(8192),
        labels: labels(f)?,
        family: Family::EuroBert {
            attention_bias: f.bool_opt("attention_bias")?.unwrap_or(false),
            mlp_bias: f.bool_opt("mlp_bias")?.unwrap_or(false),
        },
        recipe: Recipe {
            norm: NormKind::Rms,
            eps: eps(f, "rms_norm_eps", 1e-5)?,
            pre_norm: true,
            positions: Positions::Rope { thetas: vec![theta; layers] },
            token_type: false,
            embed_norm: false,
            embed_projection: false,
            project_then_norm: false,
            relative: None,
            first_attention_norm: true,
            mlp: Mlp::Glu(Act::Silu),
            final_norm: true,
            head: Head::Linear,
            windows: vec![None; layers],
        },
        tables: Tables { positions: 0, token_types: 0, embedding: hidden_size },
    })
}

pub(super) struct EuroBertSchema;

fn biases(c: &Config) -> (bool, bool) {
    match c.family {
        Family::EuroBert { attention_bias, mlp_bias } => (attention_bias, mlp_bias),
        _ => (false, false),
    }
}

impl Schema for EuroBertSchema {
    fn layer_prefix(&self, _c: &Config) -> String {
        LAYER_PREFIX.into()
    }

    fn uses_layer_tensor(&self, c: &Config, tail: &str) -> bool {
        let (ab, mb) = biases(c);
        tail == INPUT_NORM || tail == POST_ATTENTION_NORM || is_projection(tail, &ATTENTION, ab) || is_projection(tail, &MLP, mb)
    }

    fn uses_tensor(&self, _c: &Config, name: &str) -> bool {
        name == EMBED_TOKENS || name == FINAL_NORM || name == "classifier.weight" || name == "classifier.bias"
    }

    fn embeddings(&self, c: &Config, w: &Weights) -> Result<EmbeddingWeights> {
        Ok(EmbeddingWeights {
            tokens: w.read_f32(EMBED_TOKENS, &[c.vocab_size, c.hidden_size])?,
            positions: None,
            token_type: None,
            norm: None,
            projection: None,
            width: c.hidden_size,
        })
    }

    fn layer(&self, c: &Config, w: &Weights, i: usize) -> Result<LayerWeights> {
        let h = c.hidden_size;
        let name = |n: &str| format!("{LAYER_PREFIX}{i}.{n}");
        let (q_out, kv_out) = (c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim);
        let [q, k, v, o] = ATTENTION;
        let [gate, up, down] = MLP;
        let (ab, mb) = biases(c);
        let inter = c.intermediate_size;
        Ok(LayerWeights {
            attention_norm: Some(NormWeights { weight: w.read_f32(&name(INPUT_NORM), &[h])?, bias: None }),
            qkv: dense(w, &[(name(q), q_out), (name(k), kv_out), (name(v), kv_out)], h, ab)?,
            o: dense(w, &[(name(o), h)], q_out, ab)?,
            mlp_norm: NormWeights { weight: w.read_f32(&name(POST_ATTENTION_NORM), &[h])?, bias: None },
            up: dense(w, &[(name(gate), inter), (name(up), inter)], h, mb)?,
            down: dense(w, &[(name(down), h)], inter, mb)?,
            relative: None,
        })
    }

    fn final_norm(&self, c: &Config, w: &Weights) -> Result<Option<NormWeights>> {
        Ok(Some(NormWeights { weight: w.read_f32(FINAL_NORM, &[c.hidden_size])?, bias: None }))
    }

    fn head(&self, _c: &Config, _w: &Weights) -> Result<Option<HeadWeights>> {
        Ok(None)
    }

    fn classifier(&self, c: &Config, w: &Weights) -> Result<Dense> {
        dense(w, &[("classifier".to_string(), c.num_labels())], c.hidden_size, true)
    }
}
