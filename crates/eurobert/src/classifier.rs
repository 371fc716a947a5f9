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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda(usize),
    Metal(usize),
}

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype; f32 is the default and the only exact choice on CPU.
    pub dtype: DType,
    pub device: DeviceKind,
    /// CPU threads for this model's pool; `None` = one per physical core.
    pub threads: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: DType::F32,
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

/// The forward pass: our own f32 CPU encoder, or Candle's for GPUs and f16/bf16.
enum Encoder {
    Cpu(CpuEncoder),
    Candle(CandleEncoder),
}

pub struct TokenClassifier {
    config: Config,
    encoder: Encoder,
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
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Tokenizer {
                path: tokenizer_path,
                message: format!(
                    "has {} tokens but config.json's vocab_size is {}",
                    tokenizer.vocab_size(),
                    config.vocab_size
                ),
            });
        }
        let device = make_device(options.device)?;
        if device.is_cpu() && options.dtype == DType::BF16 {
            return Err(Error::InvalidArgument(
                "dtype bf16 is not supported on the CPU (no bf16 matrix multiply); use f32 or f16"
                    .into(),
            ));
        }
        if !matches!(options.dtype, DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::InvalidArgument(format!(
                "dtype {:?} is not supported; use f32, f16 or bf16",
                options.dtype
            )));
        }
        let threads = match options.threads {
            Some(0) => return Err(Error::InvalidArgument("threads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("eurobert-{i}"))
            .build()
            .map_err(|e| Error::Compute(format!("cannot start {threads} threads: {e}")))?;
        let weights = Weights::open_dir(dir)?;
        let encoder = if device.is_cpu() && options.dtype == DType::F32 {
            Encoder::Cpu(pool.install(|| CpuEncoder::load(&config, &weights))?)
        } else {
            Encoder::Candle(pool.install(|| CandleEncoder::load(&config, &weights, options.dtype, &device))?)
        };
        Ok(TokenClassifier {
            config,
            encoder,
            tokenizer,
            pool,
            dir: dir.to_path_buf(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
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

    pub fn encode(&self, texts: &[String]) -> Result<Vec<Encoded>> {
        use rayon::prelude::*;
        self.pool
            .install(|| texts.par_iter().map(|t| self.tokenizer.encode(t)).collect())
    }

    /// Tokenizes and classifies every text. Texts are sorted by length and packed into
    /// padded batches; results come back in input order.
    pub fn classify(&self, texts: &[String], options: &RunOptions) -> Result<Vec<Classified>> {
        let encoded = self.encode(texts)?;
        let logits = self.forward_encoded(&encoded, options)?;
        Ok(encoded
            .into_iter()
            .zip(logits)
            .map(|(encoded, logits)| Classified { encoded, logits })
            .collect())
    }

    /// Logits for already tokenized sequences (`tokens × num_labels` each, input order).
    pub fn forward_encoded(
        &self,
        encoded: &[Encoded],
        options: &RunOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let ids: Vec<&[u32]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
        self.forward_ids(&ids, options)
    }

    /// Logits for id sequences that already carry their special tokens (windows of a long
    /// text, say), `tokens × num_labels` each, in input order. Sequences are grouped into
    /// batches longest first under `options`' caps.
    pub fn forward_ids(&self, sequences: &[&[u32]], options: &RunOptions) -> Result<Vec<Vec<f32>>> {
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
            let mut at = 0;
            for &i in &rows {
                let n = lengths[i] * num_labels;
                out[i] = logits[at..at + n].to_vec();
                at += n;
            }
        }
        Ok(out)
    }
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
