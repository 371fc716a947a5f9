//! napi-rs addon: translates between JavaScript and the `eurobert` crate, nothing more.
//!
//! Model work runs in `AsyncTask`s (libuv worker threads, then the model's own rayon pool),
//! never on the JavaScript thread. Every error, and any panic, becomes a rejected promise
//! with a JavaScript `Error`; nothing unwinds across the FFI boundary.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use eurobert::{DType, DeviceKind, TokenClassifier};
use napi::bindgen_prelude::*;
use napi_derive::napi;

fn js_error(e: eurobert::Error) -> Error {
    Error::new(Status::GenericFailure, e.to_string())
}

/// Runs `f`, turning a panic into an error so it cannot take the host process down.
fn guarded<T>(what: &str, f: impl FnOnce() -> eurobert::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(js_error),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::new(
                Status::GenericFailure,
                format!("internal error while {what}: {msg}"),
            ))
        }
    }
}

#[napi(object)]
pub struct NativeLoadOptions {
    /// CPU threads of the model's pool (default: available cores).
    pub threads: Option<u32>,
    /// "f32" (default), "f16" or "bf16".
    pub dtype: Option<String>,
    /// "cpu" (default), "cuda", "cuda:N" or "metal".
    pub device: Option<String>,
}

#[napi(object)]
pub struct NativeRunOptions {
    pub batch_size: Option<u32>,
    pub max_batch_tokens: Option<u32>,
}

/// One tokenized text; `logits` is present for `classify`.
#[napi(object, object_from_js = false)]
pub struct NativeTokens {
    pub ids: Uint32Array,
    /// Vocabulary strings (`ĠOslo`).
    pub tokens: Vec<String>,
    /// `[start0, end0, start1, end1, ...]` in UTF-16 code units of the input string.
    pub offsets: Uint32Array,
    pub special_tokens_mask: Uint8Array,
    pub attention_mask: Uint8Array,
    /// Pre-tokenizer word index per token, -1 for special tokens.
    pub word_ids: Int32Array,
    /// `tokens × numLabels` row-major.
    pub logits: Option<Float32Array>,
}

#[napi(object, object_from_js = false)]
pub struct NativeModelInfo {
    pub dir: String,
    pub labels: Vec<String>,
    pub max_position_embeddings: u32,
    pub hidden_size: u32,
    pub num_hidden_layers: u32,
    pub vocab_size: u32,
    pub threads: u32,
}

fn parse_dtype(s: Option<&str>) -> Result<DType> {
    match s.unwrap_or("f32") {
        "f32" | "float32" => Ok(DType::F32),
        "f16" | "float16" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::new(
            Status::InvalidArg,
            format!("invalid dtype '{other}': use 'f32', 'f16' or 'bf16'"),
        )),
    }
}

fn parse_device(s: Option<&str>) -> Result<DeviceKind> {
    let s = s.unwrap_or("cpu");
    let (name, index) = match s.split_once(':') {
        Some((n, i)) => match i.parse::<usize>() {
            Ok(i) => (n, i),
            Err(_) => {
                return Err(Error::new(
                    Status::InvalidArg,
                    format!("invalid device '{s}': the index must be a number"),
                ))
            }
        },
        None => (s, 0),
    };
    match name {
        "cpu" => Ok(DeviceKind::Cpu),
        "cuda" => Ok(DeviceKind::Cuda(index)),
        "metal" => Ok(DeviceKind::Metal(index)),
        _ => Err(Error::new(
            Status::InvalidArg,
            format!("invalid device '{s}': use 'cpu', 'cuda', 'cuda:N' or 'metal'"),
        )),
    }
}

fn run_options(options: Option<NativeRunOptions>) -> Result<eurobert::RunOptions> {
    let defaults = eurobert::RunOptions::default();
    let options = match options {
        None => defaults,
        Some(o) => eurobert::RunOptions {
            batch_size: o.batch_size.map_or(defaults.batch_size, |b| b as usize),
            max_batch_tokens: o
                .max_batch_tokens
                .map_or(defaults.max_batch_tokens, |b| b as usize),
        },
    };
    if options.batch_size == 0 {
        return Err(Error::new(
            Status::InvalidArg,
            "batchSize must be at least 1".to_string(),
        ));
    }
    Ok(options)
}

fn tokens_to_js(e: eurobert::Encoded, logits: Option<Vec<f32>>) -> NativeTokens {
    let offsets: Vec<u32> = e.offsets.iter().flat_map(|&(s, t)| [s, t]).collect();
    NativeTokens {
        ids: e.ids.into(),
        tokens: e.tokens,
        offsets: offsets.into(),
        special_tokens_mask: e.special_tokens_mask.into(),
        attention_mask: e.attention_mask.into(),
        word_ids: e.word_ids.into(),
        logits: logits.map(Into::into),
    }
}

pub struct LoadTask {
    dir: PathBuf,
    options: eurobert::LoadOptions,
}

impl Task for LoadTask {
    type Output = TokenClassifier;
    type JsValue = NativeModel;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("loading the model", || {
            TokenClassifier::load(&self.dir, &self.options)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeModel {
            inner: Some(Arc::new(output)),
        })
    }
}

pub struct ClassifyTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
    options: eurobert::RunOptions,
}

impl Task for ClassifyTask {
    type Output = Vec<eurobert::Classified>;
    type JsValue = Vec<NativeTokens>;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("running the model", || {
            self.model.classify(&self.texts, &self.options)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output
            .into_iter()
            .map(|c| tokens_to_js(c.encoded, Some(c.logits)))
            .collect())
    }
}

pub struct ForwardTask {
    model: Arc<TokenClassifier>,
    sequences: Vec<Vec<u32>>,
    options: eurobert::RunOptions,
}

impl Task for ForwardTask {
    type Output = Vec<Vec<f32>>;
    type JsValue = Vec<Float32Array>;

    fn compute(&mut self) -> Result<Self::Output> {
        let seqs: Vec<&[u32]> = self.sequences.iter().map(Vec::as_slice).collect();
        guarded("running the model", || {
            self.model.forward_ids(&seqs, &self.options)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into_iter().map(Into::into).collect())
    }
}

pub struct TokenizeTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
}

impl Task for TokenizeTask {
    type Output = Vec<eurobert::Encoded>;
    type JsValue = Vec<NativeTokens>;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("tokenizing", || self.model.encode(&self.texts))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into_iter().map(|e| tokens_to_js(e, None)).collect())
    }
}

/// A loaded EuroBERT token classifier.
#[napi]
pub struct NativeModel {
    inner: Option<Arc<TokenClassifier>>,
}

#[napi]
impl NativeModel {
    /// Loads a model folder off the main thread.
    #[napi(ts_return_type = "Promise<NativeModel>")]
    pub fn load(dir: String, options: Option<NativeLoadOptions>) -> Result<AsyncTask<LoadTask>> {
        let o = options.unwrap_or(NativeLoadOptions {
            threads: None,
            dtype: None,
            device: None,
        });
        if o.threads == Some(0) {
            return Err(Error::new(
                Status::InvalidArg,
                "threads must be at least 1".to_string(),
            ));
        }
        let options = eurobert::LoadOptions {
            dtype: parse_dtype(o.dtype.as_deref())?,
            device: parse_device(o.device.as_deref())?,
            threads: o.threads.map(|t| t as usize),
        };
        Ok(AsyncTask::new(LoadTask {
            dir: PathBuf::from(dir),
            options,
        }))
    }

    fn model(&self) -> Result<&Arc<TokenClassifier>> {
        self.inner.as_ref().ok_or_else(|| {
            Error::new(
                Status::GenericFailure,
                "the model has been disposed".to_string(),
            )
        })
    }

    #[napi(getter)]
    pub fn info(&self) -> Result<NativeModelInfo> {
        let m = self.model()?;
        let c = m.config();
        Ok(NativeModelInfo {
            dir: m.dir().display().to_string(),
            labels: c.labels.clone(),
            max_position_embeddings: c.max_position_embeddings as u32,
            hidden_size: c.hidden_size as u32,
            num_hidden_layers: c.num_hidden_layers as u32,
            vocab_size: c.vocab_size as u32,
            threads: m.threads() as u32,
        })
    }

    /// Tokenizes and classifies `texts` off the main thread.
    #[napi(ts_return_type = "Promise<NativeTokens[]>")]
    pub fn classify(
        &self,
        texts: Vec<String>,
        options: Option<NativeRunOptions>,
    ) -> Result<AsyncTask<ClassifyTask>> {
        let options = run_options(options)?;
        Ok(AsyncTask::new(ClassifyTask {
            model: self.model()?.clone(),
            texts,
            options,
        }))
    }

    /// Logits for id sequences that already carry their special tokens (e.g. windows of a
    /// long text), off the main thread; `tokens × numLabels` each, in input order.
    #[napi(ts_return_type = "Promise<Float32Array[]>")]
    pub fn forward_ids(
        &self,
        sequences: Vec<Uint32Array>,
        options: Option<NativeRunOptions>,
    ) -> Result<AsyncTask<ForwardTask>> {
        let options = run_options(options)?;
        // Copied now: the JavaScript side may reuse its arrays while the task runs.
        let sequences = sequences.iter().map(|s| s.to_vec()).collect();
        Ok(AsyncTask::new(ForwardTask {
            model: self.model()?.clone(),
            sequences,
            options,
        }))
    }

    /// Tokenizes `texts` off the main thread (no model computation).
    #[napi(ts_return_type = "Promise<NativeTokens[]>")]
    pub fn tokenize(&self, texts: Vec<String>) -> Result<AsyncTask<TokenizeTask>> {
        Ok(AsyncTask::new(TokenizeTask {
            model: self.model()?.clone(),
            texts,
        }))
    }

    /// Joins token strings with the tokenizer's decoder (`["ĠOslo"]` -> `" Oslo"`).
    #[napi]
    pub fn decode_tokens(&self, tokens: Vec<String>) -> Result<String> {
        let m = self.model()?;
        guarded("decoding tokens", || m.tokenizer().decode_tokens(&tokens))
    }

    /// Releases the weights now instead of at garbage collection. Calls already running
    /// finish first; later calls fail with a clear error.
    #[napi]
    pub fn dispose(&mut self) {
        self.inner = None;
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.inner.is_none()
    }
}
