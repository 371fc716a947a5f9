//! A loaded model folder: config, weights, tokenizer and the thread pool that runs them.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::batching;
use crate::candle::CandleEncoder;
use crate::checkpoint::Checkpoint;
use crate::config::Config;
use crate::cpu::{CpuEncoder, Half, Stored};
use crate::device;
use crate::encoder::Encoder;
use crate::error::{Error, Result};
use crate::files::MemoryFolder;
use crate::options::{DeviceKind, Dtype, LoadOptions, RunOptions, WindowOptions};
use crate::prepared::Prepared;
use crate::tokenize::{Encoded, Tokenizer};
use crate::weights::Weights;
use crate::windows::{self, Window};

/// Logits of one text with the tokenization they belong to.
#[derive(Debug, Clone)]
pub struct Classified {
    pub encoded: Encoded,
    /// `tokens × num_labels`, row-major, f32.
    pub logits: Vec<f32>,
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

pub struct TokenClassifier {
    config: Config,
    device: DeviceKind,
    /// Our own f32/int8 CPU encoder, or Candle's for GPUs and f16/bf16.
    encoder: Box<dyn Encoder>,
    /// What the load noticed but accepted (tensors the model does not use).
    warnings: Vec<String>,
    tokenizer: Tokenizer,
    pool: rayon::ThreadPool,
    dir: PathBuf,
}

impl TokenClassifier {
    /// Loads a model whose files are given as bytes (no filesystem: a browser, say); the same
    /// files and checks as a folder on disk, which it never touches.
    pub fn load_files(files: MemoryFolder, options: &LoadOptions) -> Result<Self> {
        crate::files::in_memory(files, |dir| Self::load(dir, options))
    }

    /// Loads `config.json`, `model.safetensors` (or its sharded index) and `tokenizer.json`.
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Self> {
        if !crate::files::is_dir(dir) {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "model folder not found"),
            });
        }
        let config = Config::from_file(&dir.join("config.json"))?;
        let tokenizer = Tokenizer::from_dir(dir, &config.model_type)?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Tokenizer {
                path: tokenizer.path().to_path_buf(),
                message: format!("has {} tokens but config.json's vocab_size is {}", tokenizer.vocab_size(), config.vocab_size),
            });
        }
        options.validate()?;
        let device = device::open(options.device)?;
        let threads = options.pool_threads();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("eurobert-{i}"))
            // A job `spawn`ed here catches its own panics; one that did not must not abort the
            // host process (rayon's default for a panic nobody joins).
            .panic_handler(|_| {})
            .build()
            .map_err(|e| Error::Compute(format!("cannot start {threads} threads: {e}")))?;
        let weights = Weights::open_dir(dir)?;
        let checkpoint = Checkpoint::open(&config, &weights, &dir.join("config.json"))?;
        let encoder: Box<dyn Encoder> = if device.is_cpu() && !options.candle {
            let stored = match options.dtype {
                Dtype::F32 => Stored::F32,
                Dtype::Q8 => Stored::Q8,
                Dtype::F16 => Stored::Half(Half::F16),
                Dtype::BF16 => Stored::Half(Half::BF16),
            };
            Box::new(pool.install(|| CpuEncoder::load(&config, &checkpoint, stored))?)
        } else {
            Box::new(pool.install(|| CandleEncoder::load(&config, &checkpoint, options.dtype.candle(), &device))?)
        };
        let warnings = checkpoint.warnings;
        Ok(TokenClassifier { config, device: options.device, encoder, warnings, tokenizer, pool, dir: dir.to_path_buf() })
    }

    /// Runs `job` on the model's own threads and returns at once: how a binding starts a call
    /// without a thread of its own waiting for the pool. `job` should catch its panics (the
    /// pool drops them, so a caller waiting on the job would wait forever).
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        self.pool.spawn(move || crate::awake::job(job));
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
        self.tokenizer.model_max_length().map_or(self.config.max_position_embeddings, |m| m.min(self.config.max_position_embeddings))
    }

    /// What runs the model: `cpu`, `cuda:N` or `metal:N`.
    pub fn device(&self) -> DeviceKind {
        self.device
    }

    /// Bytes of weights the model holds in memory.
    pub fn weight_bytes(&self) -> usize {
        self.encoder.weight_bytes()
    }

    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Encoded>> {
        use rayon::prelude::*;
        // One text is tokenized on the calling thread: a hop into the pool costs more.
        if texts.len() <= 1 {
            return texts.iter().map(|t| self.tokenizer.encode(t)).collect();
        }
        self.pool.install(|| texts.par_iter().map(|t| self.tokenizer.encode(t)).collect())
    }

    /// Tokenizes and classifies every text whole (no windows); results in input order.
    pub fn logits(&self, texts: &[String], options: &RunOptions) -> Result<Vec<Classified>> {
        let encoded = self.tokenize(texts)?;
        let ids: Vec<&[u32]> = encoded.iter().map(|e| e.ids.as_slice()).collect();
        let logits = self.logits_for_ids(&ids, options)?;
        Ok(encoded.into_iter().zip(logits).map(|(encoded, logits)| Classified { encoded, logits }).collect())
    }

    /// What the NER pipeline needs in one call: tokenizes every text, cuts it into windows
    /// of `max_length` tokens sharing `stride` (one window when it fits) and runs all windows
    /// of all texts through the model together.
    pub fn score_windows(&self, texts: &[String], options: &WindowOptions) -> Result<Vec<ScoredText>> {
        let mut prepared = self.prepare(texts, options)?;
        let windows = 0..prepared.window_count();
        self.run_windows(&mut [(&mut prepared, windows)], &options.run)?;
        prepared.take(0..texts.len())
    }

    /// The first half of `score_windows`: tokenizes every text and cuts it into windows, with
    /// no forward pass. What each window will cost is then known (`Prepared::cost`), and its
    /// windows can run in pieces (`run_windows`).
    pub fn prepare(&self, texts: &[String], options: &WindowOptions) -> Result<Prepared> {
        let max_length = options.max_length.unwrap_or_else(|| self.model_max_length());
        if max_length > self.config.max_position_embeddings {
            return Err(Error::InvalidArgument(format!(
                "maxLength {max_length} exceeds the model's {} positions",
                self.config.max_position_embeddings
            )));
        }
        options.run.cancel.check()?;
        let encoded = self.tokenize(texts)?;
        let mut prepared = Prepared::new(self.config.num_labels());
        for e in encoded {
            let n = e.len();
            let prefix = e.special_tokens_mask.iter().take_while(|&&m| m != 0).count();
            let suffix = e.special_tokens_mask[prefix..].iter().rev().take_while(|&&m| m != 0).count();
            let ws = windows::windows(n, prefix, suffix, max_length, options.stride)?;
            prepared.push(e, prefix, suffix, ws);
        }
        if let Some(max) = options.max_tokens {
            let cost = prepared.cost(0..prepared.text_count());
            if cost > max {
                return Err(Error::TooLarge(format!(
                    "the {} windows of this call would run {cost} tokens; the limit is {max}",
                    prepared.window_count()
                )));
            }
        }
        Ok(prepared)
    }

    /// Runs windows of prepared calls, several calls' pieces in shared forward passes, and
    /// stores their logits in them. Returns the tokens run.
    pub fn run_windows(&self, parts: &mut [(&mut Prepared, Range<usize>)], options: &RunOptions) -> Result<usize> {
        let sequences: Vec<Vec<u32>> = parts.iter().flat_map(|(p, r)| r.clone().map(|i| p.sequence(i))).collect();
        let tokens = sequences.iter().map(Vec::len).sum();
        let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
        let logits = self.logits_for_ids(&refs, options)?;
        let mut logits = logits.into_iter();
        for (p, r) in parts.iter_mut() {
            for i in r.clone() {
                p.store(i, logits.next().unwrap_or_default())?;
            }
        }
        Ok(tokens)
    }

    /// Logits for id sequences that already carry their special tokens (windows of a long
    /// text, say), `tokens × num_labels` each, in input order. Sequences are grouped into
    /// batches longest first under `options`' caps.
    pub fn logits_for_ids(&self, sequences: &[&[u32]], options: &RunOptions) -> Result<Vec<Vec<f32>>> {
        options.validate()?;
        self.check_ids(sequences)?;
        let num_labels = self.config.num_labels();
        let lengths: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); sequences.len()];
        for rows in batching::plan(&lengths, options.batch_size, options.max_batch_tokens, self.encoder.layout()) {
            options.cancel.check()?;
            let batch: Vec<&[u32]> = rows.iter().map(|&i| sequences[i]).collect();
            let logits = self.pool.install(|| self.encoder.forward(&batch, &options.cancel))?;
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

    /// The one check of what reaches an encoder: ids inside the vocabulary, sequences within
    /// the model's positions.
    fn check_ids(&self, sequences: &[&[u32]]) -> Result<()> {
        let c = &self.config;
        for (i, s) in sequences.iter().enumerate() {
            if s.len() > c.max_position_embeddings {
                return Err(Error::InvalidArgument(format!(
                    "text {i} has {} tokens; the model takes at most {} (split long texts into windows)",
                    s.len(),
                    c.max_position_embeddings
                )));
            }
            if let Some(bad) = s.iter().find(|&&id| id as usize >= c.vocab_size) {
                return Err(Error::InvalidArgument(format!("token id {bad} is outside the vocabulary (vocab_size {})", c.vocab_size)));
            }
        }
        Ok(())
    }
}
