//! A loaded model folder: config, weights, tokenizer and the thread pool that runs them.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::batching::{self, Layout};
use crate::candle_encoder::CandleEncoder;
use crate::config::Config;
use crate::cpu::{Batch, CpuEncoder};
use crate::error::{Error, Result};
use crate::tokenize::{Encoded, Tokenizer};
use crate::weights::Weights;
use crate::windows::{self, Window};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda(usize),
    Metal(usize),
}

/// What a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// Exact (transformers' own precision); the default.
    F32,
    F16,
    /// GPUs only: the CPU has no bf16 matrix multiply here.
    BF16,
    /// CPU only: int8 projections (per-channel weights, per-token activations), the rest f32.
    Q8,
}

impl Dtype {
    fn candle(self) -> DType {
        match self {
            Dtype::F32 | Dtype::Q8 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype; f32 is the default and the only exact choice on CPU.
    pub dtype: Dtype,
    pub device: DeviceKind,
    /// CPU threads for this model's pool; `None` = one per physical core.
    pub threads: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: Dtype::F32,
            device: DeviceKind::Cpu,
            threads: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Most sequences in one forward pass.
    pub batch_size: usize,
    /// Most tokens in one forward pass (on GPUs, padded tokens: rows × longest row); bounds
    /// activation memory, which grows linearly with it.
    pub max_batch_tokens: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 32,
            max_batch_tokens: 16_384,
        }
    }
}

/// Logits of one text with the tokenization they belong to.
#[derive(Debug, Clone)]
pub struct Classified {
    pub encoded: Encoded,
    /// `tokens × num_labels`, row-major, f32.
    pub logits: Vec<f32>,
}

/// Windows of the NER pipeline and the batches they run in.
#[derive(Debug, Clone, Copy, Default)]
pub struct WindowOptions {
    /// Tokens per window, special tokens included (default: `model_max_length`).
    pub max_length: Option<usize>,
    /// Tokens shared by consecutive windows (default: a quarter of a window's text).
    pub stride: Option<usize>,
    pub run: RunOptions,
}

/// One window of a text and its logits.
#[derive(Debug, Clone)]
pub struct ScoredWindow {
    pub window: Window,
    /// `(window.to - window.from) × num_labels`: rows of the window's content tokens only.
    pub logits: Vec<f32>,
}

/// A text's whole tokenization and its windows.
#[derive(Debug, Clone)]
pub struct ScoredText {
    pub encoded: Encoded,
    pub windows: Vec<ScoredWindow>,
}

/// The forward pass: our own f32 CPU encoder, or Candle's for GPUs and f16/bf16.
enum Encoder {
    Cpu(CpuEncoder),
    Candle(CandleEncoder),
}

pub struct TokenClassifier {
    config: Config,
    device: DeviceKind,
    encoder: Encoder,
    /// What the load noticed but accepted (tensors the model does not use).
    warnings: Vec<String>,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
    dir: PathBuf,
}

impl TokenClassifier {
    /// Loads `config.json`, `model.safetensors` (or its sharded index) and `tokenizer.json`.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found"),
            });
        }
        let config = Config::from_file(&dir.join("config.json"))?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Tokenizer {
                path: tokenizer.path().to_path_buf(),
                message: format!(
                    "has {} tokens but config.json's vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let device = make_device(options.device)?;
        if device.is_cpu() && options.dtype == Dtype::BF16 {
            return Err(Error::InvalidArgument(
                "dtype bf16 is not supported on the CPU (no bf16 matrix multiply); use f32, q8 or f16"
                    .into(),
            ));
        }
        if !device.is_cpu() && options.dtype == Dtype::Q8 {
            return Err(Error::InvalidArgument(
                "dtype q8 runs on the CPU only; use f16 or bf16 on a GPU".into(),
            ));
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let threads = match options.threads {
            Some(0) => return Err(Error::InvalidArgument("threads must be at least 1".into())),
            Some(n) if n > max_threads() => {
                return Err(Error::InvalidArgument(format!(
                    "threads {n} is more than {} (4 per available core)",
                    max_threads()
                )))
            }
            Some(n) => n,
            None => cores,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("eurobert-{i}"))
            .build()
            .map_err(|e| Error::Compute(format!("cannot start {threads} threads: {e}")))?;
        let weights = Weights::open_dir(dir)?;
        let warnings = check_tensors(&config, &weights, &dir.join("config.json"))?;
        let encoder = if device.is_cpu() && matches!(options.dtype, Dtype::F32 | Dtype::Q8) {
            let q8 = options.dtype == Dtype::Q8;
            Encoder::Cpu(pool.install(|| CpuEncoder::load(&config, &weights, q8))?)
        } else {
            Encoder::Candle(pool.install(|| CandleEncoder::load(&config, &weights, options.dtype.candle(), &device))?)
        };
        Ok(TokenClassifier {
            config,
            device: options.device,
            encoder,
            warnings,
            tokenizer,
            pool,
            dir: dir.to_path_buf(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the load accepted but a user may want to know (tensors the model ignores).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn labels(&self) -> &[String] {
        &self.config.labels
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Longest window of the NER pipeline: the tokenizer's `model_max_length` where it is
    /// set and smaller than the model's positions.
    pub fn model_max_length(&self) -> usize {
        self.tokenizer
            .model_max_length()
            .map_or(self.config.max_position_embeddings, |m| m.min(self.config.max_position_embeddings))
    }

    /// What runs the model: `cpu`, `cuda:N` or `metal:N`.
    pub fn device(&self) -> String {
        match self.device {
            DeviceKind::Cpu => "cpu".into(),
            DeviceKind::Cuda(i) => format!("cuda:{i}"),
            DeviceKind::Metal(i) => format!("metal:{i}"),
        }
    }

    /// Bytes of weights the model holds in memory.
    pub fn weight_bytes(&self) -> usize {
        match &self.encoder {
            Encoder::Cpu(e) => e.bytes(),
            Encoder::Candle(e) => e.bytes(),
        }
    }

    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Encoded>> {
        use rayon::prelude::*;
        self.pool
            .install(|| texts.par_iter().map(|t| self.tokenizer.encode(t)).collect())
    }

    /// Tokenizes and classifies every text whole (no windows); results in input order.
    pub fn logits(&self, texts: &[String], options: &RunOptions) -> Result<Vec<Classified>> {
        let encoded = self.tokenize(texts)?;
        let ids: Vec<&[u32]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
        let logits = self.logits_for_ids(&ids, options)?;
        Ok(encoded
            .into_iter()
            .zip(logits)
            .map(|(encoded, logits)| Classified { encoded, logits })
            .collect())
    }

    /// What the NER pipeline needs in one call: tokenizes every text, cuts it into windows
    /// of `max_length` tokens sharing `stride` (one window when it fits) and runs all windows
    /// of all texts through the model together.
    pub fn score_windows(&self, texts: &[String], options: &WindowOptions) -> Result<Vec<ScoredText>> {
        let max_length = options.max_length.unwrap_or_else(|| self.model_max_length());
        if max_length > self.config.max_position_embeddings {
            return Err(Error::InvalidArgument(format!(
                "maxLength {max_length} exceeds the model's {} positions",
                self.config.max_position_embeddings
            )));
        }
        let encoded = self.tokenize(texts)?;
        let mut plans = Vec::with_capacity(encoded.len());
        let mut sequences: Vec<Vec<u32>> = Vec::new();
        for e in &encoded {
            let n = e.len();
            let prefix = e.special_tokens_mask.iter().take_while(|&&m| m != 0).count();
            let suffix = e.special_tokens_mask[prefix..].iter().rev().take_while(|&&m| m != 0).count();
            let ws = windows::windows(n, prefix, suffix, max_length, options.stride)?;
            for w in &ws {
                let mut ids = Vec::with_capacity(prefix + (w.to - w.from) + suffix);
                ids.extend_from_slice(&e.ids[..prefix]);
                ids.extend_from_slice(&e.ids[w.from..w.to]);
                ids.extend_from_slice(&e.ids[n - suffix..]);
                sequences.push(ids);
            }
            plans.push((prefix, ws));
        }
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let mut logits = self.logits_for_ids(&refs, &options.run)?.into_iter();
        let l = self.config.num_labels();
        Ok(encoded
            .into_iter()
            .zip(plans)
            .map(|(encoded, (prefix, ws))| {
                let windows = ws
                    .into_iter()
                    .map(|window| {
                        let all = logits.next().unwrap_or_default();
                        // Keep the content rows only: special tokens never become entities.
                        let logits = all[prefix * l..(prefix + window.to - window.from) * l].to_vec();
                        ScoredWindow { window, logits }
                    })
                    .collect();
                ScoredText { encoded, windows }
            })
            .collect())
    }

    /// Logits for id sequences that already carry their special tokens (windows of a long
    /// text, say), `tokens × num_labels` each, in input order. Sequences are grouped into
    /// batches longest first under `options`' caps.
    pub fn logits_for_ids(&self, sequences: &[&[u32]], options: &RunOptions) -> Result<Vec<Vec<f32>>> {
        if options.batch_size == 0 {
            return Err(Error::InvalidArgument("batch size must be at least 1".into()));
        }
        if options.max_batch_tokens == 0 {
            return Err(Error::InvalidArgument("max batch tokens must be at least 1".into()));
        }
        let max = self.config.max_position_embeddings;
        if let Some((i, s)) = sequences.iter().enumerate().find(|(_, s)| s.len() > max) {
            return Err(Error::InvalidArgument(format!(
                "text {i} has {} tokens; the model takes at most {max} (split long texts into windows)",
                s.len()
            )));
        }
        let num_labels = self.config.num_labels();
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let layout = match self.encoder {
            Encoder::Cpu(_) => Layout::Packed,
            Encoder::Candle(_) => Layout::Padded,
        };
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); sequences.len()];
        for rows in batching::plan(&lengths, options.batch_size, options.max_batch_tokens, layout) {
            let logits = match &self.encoder {
                Encoder::Cpu(enc) => {
                    let seqs: Vec<&[u32]> = rows.iter().map(|&i| sequences[i]).collect();
                    let batch = Batch::pack(&seqs);
                    self.pool.install(|| enc.forward(&batch))?
                }
                Encoder::Candle(enc) => {
                    let seq_len = lengths[rows[0]];
                    let mut ids = vec![0u32; rows.len() * seq_len];
                    for (r, &i) in rows.iter().enumerate() {
                        ids[r * seq_len..r * seq_len + lengths[i]].copy_from_slice(sequences[i]);
                    }
                    let lens: Vec<usize> = rows.iter().map(|&i| lengths[i]).collect();
                    let padded = self.pool.install(|| enc.forward(&ids, &lens, seq_len))?;
                    let padded: Vec<f32> = padded.flatten_all()?.to_vec1()?;
                    // Drop each row's padding so both encoders hand back packed rows.
                    rows.iter()
                        .enumerate()
                        .flat_map(|(r, &i)| padded[r * seq_len * num_labels..][..lengths[i] * num_labels].to_vec())
                        .collect()
                }
            };
            // Finite weights can still overflow f32 in the forward pass; garbage logits would
            // decode as "no entities", so they are an error instead.
            let mut at = 0;
            for &i in &rows {
                let n = lengths[i] * num_labels;
                if logits[at..at + n].iter().any(|v| !v.is_finite()) {
                    return Err(Error::Compute(format!(
                        "the model computed non-finite logits (NaN or infinity) for sequence {i}: its weights overflow \
                         float32 arithmetic ({}), so its output would be meaningless",
                        self.dir.display()
                    )));
                }
                out[i] = logits[at..at + n].to_vec();
                at += n;
            }
        }
        Ok(out)
    }
}

/// Compares the checkpoint's tensor names with the ones the config implies, before any tensor
/// is read: layers past `num_hidden_layers` are an error (a config that silently drops layers
/// computes garbage), tensors the token classifier does not use (an `lm_head`, a pooler) load
/// with a warning that names them, as transformers does.
fn check_tensors(c: &Config, weights: &Weights, config_path: &Path) -> Result<Vec<String>> {
    let mut layers_seen = 0usize;
    let mut extra_layer: Option<usize> = None;
    let mut unused: Vec<&str> = Vec::new();
    let per_layer = |rest: &str| {
        let attn = ["q_proj", "k_proj", "v_proj", "o_proj"];
        let mlp = ["gate_proj", "up_proj", "down_proj"];
        matches!(rest, "input_layernorm.weight" | "post_attention_layernorm.weight")
            || attn.iter().any(|p| rest == format!("self_attn.{p}.weight") || (c.attention_bias && rest == format!("self_attn.{p}.bias")))
            || mlp.iter().any(|p| rest == format!("mlp.{p}.weight") || (c.mlp_bias && rest == format!("mlp.{p}.bias")))
    };
    for name in weights.names() {
        if let Some(rest) = name.strip_prefix("model.layers.") {
            let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
            if let Ok(i) = index.parse::<usize>() {
                layers_seen = layers_seen.max(i + 1);
                if i >= c.num_hidden_layers {
                    extra_layer = Some(extra_layer.map_or(i, |e| e.min(i)));
                } else if !per_layer(tail) {
                    unused.push(name);
                }
                continue;
            }
        }
        if !matches!(name, "model.embed_tokens.weight" | "model.norm.weight" | "classifier.weight" | "classifier.bias") {
            unused.push(name);
        }
    }
    if let Some(i) = extra_layer {
        return Err(Error::config(
            config_path,
            format!(
                "the checkpoint has tensors of model.layers.{i} but num_hidden_layers is {}: the config does not describe these weights",
                c.num_hidden_layers
            ),
        ));
    }
    if layers_seen < c.num_hidden_layers {
        return Err(Error::config(
            config_path,
            format!(
                "num_hidden_layers is {} but the checkpoint has tensors for {layers_seen} layers (no model.layers.{layers_seen})",
                c.num_hidden_layers
            ),
        ));
    }
    if unused.is_empty() {
        return Ok(Vec::new());
    }
    unused.sort();
    let shown: Vec<&str> = unused.iter().take(8).copied().collect();
    let more = if unused.len() > 8 { format!(" and {} more", unused.len() - 8) } else { String::new() };
    Ok(vec![format!(
        "{} tensor(s) of the checkpoint are not used by EuroBertForTokenClassification and were ignored: {}{more}",
        unused.len(),
        shown.join(", ")
    )])
}

/// Most threads a model's pool may have: more only adds contention, and an absurd count
/// would spawn thousands of threads before failing.
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// How many CUDA GPUs this binary can use: 0 without the `cuda` feature, or without a driver
/// or a GPU.
pub fn cuda_devices() -> usize {
    #[cfg(feature = "cuda")]
    {
        use candle_core::cuda_backend::cudarc::driver::result;
        if result::init().is_ok() {
            return result::device::get_count().map_or(0, |n| n.max(0) as usize);
        }
    }
    0
}

/// The GPU backends this binary was built with.
pub fn backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if cfg!(feature = "cuda") {
        b.push("cuda");
    }
    if cfg!(feature = "metal") {
        b.push("metal");
    }
    b
}

fn make_device(kind: DeviceKind) -> Result<Device> {
    let unavailable = |name: &str, e: candle_core::Error| {
        Error::InvalidArgument(format!("device {name} is not available: {e}"))
    };
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda(i) => Device::new_cuda(i).map_err(|e| unavailable("cuda", e)),
        DeviceKind::Metal(i) => Device::new_metal(i).map_err(|e| unavailable("metal", e)),
    }
}
