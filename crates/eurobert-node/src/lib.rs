//! napi-rs addon: translates between JavaScript and the `eurobert` crate (every architecture it
//! implements, not only EuroBERT), nothing more.
//!
//! Model work runs on the model's own rayon pool (loading, and every task of WebAssembly
//! builds, in `AsyncTask`s on libuv worker threads), never on the JavaScript thread. Every
//! error, and any panic, becomes a rejected promise with a JavaScript `Error`; nothing unwinds
//! across the FFI boundary.
//!
//! Every async entry takes an optional call id, under which its `Cancel` flag is registered
//! while the task lives; `cancelCall(id)` (the TypeScript layer calls it when the caller's
//! `AbortSignal` fires) sets the flag. A task not yet started then rejects as it starts, and
//! one already running stops at the forward loop's next check, within one layer.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use eurobert::TokenClassifier;
use napi::bindgen_prelude::*;
use napi_derive::napi;

#[cfg(not(target_family = "wasm"))]
mod settle;

/// Bad arguments keep their status (`InvalidArg`), so the TypeScript layer can throw them as
/// `RangeError`s by kind, never by message text.
fn js_error(e: eurobert::Error) -> Error {
    match e {
        eurobert::Error::InvalidArgument(message) | eurobert::Error::TooLarge(message) => Error::new(Status::InvalidArg, message),
        eurobert::Error::Cancelled => Error::new(Status::Cancelled, "the operation was cancelled".to_string()),
        e => Error::new(Status::GenericFailure, e.to_string()),
    }
}

/// Cancel flags of the calls in flight, by call id. Not napi-rs' `AbortSignal` parameter: it
/// replaced the caller's `signal.onabort` (a user's handler was silently lost) and cost ~30 µs
/// of the JavaScript thread a call.
static CALLS: LazyLock<Mutex<HashMap<u32, eurobert::Cancel>>> = LazyLock::new(Default::default);
static LAST_CALL: AtomicU32 = AtomicU32::new(0);

fn calls() -> MutexGuard<'static, HashMap<u32, eurobert::Cancel>> {
    CALLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A call id no other call in flight has, in this whole process: every worker thread, and
/// every copy of the JavaScript package a test runner loads, shares this addon.
#[napi]
pub fn new_call_id() -> u32 {
    // Never 0; it wraps after 2³² − 1 calls, long after any call that had the id ended.
    LAST_CALL.fetch_add(1, Ordering::Relaxed) % u32::MAX + 1
}

/// Cancels call `id`, if it is still in flight: a task not yet started rejects as it starts,
/// a running one at its next check.
#[napi]
pub fn cancel_call(id: u32) {
    if let Some(cancel) = calls().get(&id) {
        cancel.cancel();
    }
}

/// A task and its cancel flag, registered as call `id` while the task lives.
pub struct Tracked<T> {
    task: T,
    cancel: eurobert::Cancel,
    id: Option<u32>,
}

/// `task` built with a fresh cancel flag, registered as call `call` (from `newCallId`) when
/// there is one.
fn tracked<T: Task>(call: Option<u32>, task: impl FnOnce(eurobert::Cancel) -> T) -> Tracked<T> {
    let cancel = eurobert::Cancel::new();
    if let Some(id) = call {
        calls().insert(id, cancel.clone());
    }
    Tracked { task: task(cancel.clone()), cancel, id: call }
}

/// Starts a loaded model's task, built by `task` from the model and a fresh cancel flag
/// (registered as call `call`), and returns its promise. Native builds run it on the model's
/// own threads and settle its promise through the environment's channel (`settle.rs`): the
/// work starts one thread hop sooner than through a libuv worker that would only hand it to
/// the pool and wait for it (on a virtual machine, ~60 µs of a one-sentence call).
/// WebAssembly builds keep napi's async work.
fn start<'env, T>(
    env: &'env Env,
    call: Option<u32>,
    model: Arc<TokenClassifier>,
    task: impl FnOnce(Arc<TokenClassifier>, eurobert::Cancel) -> T,
) -> Result<Unknown<'env>>
where
    T: Task + Send + 'static,
    T::Output: Send + 'static,
    T::JsValue: 'static,
{
    let pool = Arc::clone(&model);
    let task = tracked(call, |cancel| task(model, cancel));
    #[cfg(target_family = "wasm")]
    {
        drop(pool);
        Ok(env.spawn(task)?.promise_object().to_unknown())
    }
    #[cfg(not(target_family = "wasm"))]
    {
        let (settler, promise) = settle::promise(env)?;
        let mut task = task;
        pool.spawn(move || match catch_unwind(AssertUnwindSafe(|| task.compute())) {
            Ok(Ok(output)) => settler.send(move |env| {
                let value = task.resolve(env, output)?;
                // SAFETY: on the JavaScript thread, with the environment `resolve` was given.
                unsafe { ToNapiValue::to_napi_value(env.raw(), value) }
            }),
            Ok(Err(e)) => settler.send(move |_| Err(e)),
            Err(panic) => {
                let e = panicked("running the model", panic);
                settler.send(move |_| Err(e))
            }
        });
        // SAFETY: `promise` was just made in this environment.
        Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), promise) })
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut calls = calls();
            // Only this call's own entry goes (a caller could reuse an id it was given).
            if calls.get(&id).is_some_and(|c| c.same_flag(&self.cancel)) {
                calls.remove(&id);
            }
        }
    }
}

impl<T: Task> Task for Tracked<T> {
    type Output = T::Output;
    type JsValue = T::JsValue;

    fn compute(&mut self) -> Result<Self::Output> {
        if self.cancel.is_cancelled() {
            return Err(js_error(eurobert::Error::Cancelled));
        }
        self.task.compute()
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> Result<Self::JsValue> {
        self.task.resolve(env, output)
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Self::JsValue> {
        self.task.reject(env, err)
    }
}

/// Runs `f`, turning a panic into an error so it cannot take the host process down.
fn guarded<T>(what: &str, f: impl FnOnce() -> eurobert::Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(js_error),
        Err(panic) => Err(panicked(what, panic)),
    }
}

fn panicked(what: &str, panic: Box<dyn std::any::Any + Send>) -> Error {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(Status::GenericFailure, format!("internal error while {what}: {msg}"))
}

#[napi(object)]
pub struct NativeLoadOptions {
    /// CPU threads of the model's pool (default: available cores).
    pub threads: Option<u32>,
    /// "f32" (default), "q8" (CPU), "f16" or "bf16" (GPU).
    pub dtype: Option<String>,
    /// "cpu" (default), "cuda", "cuda:N" or "metal".
    pub device: Option<String>,
}

#[napi(object)]
pub struct NativeRunOptions {
    pub batch_size: Option<u32>,
    pub max_batch_tokens: Option<u32>,
}

#[napi(object)]
pub struct NativeWindowOptions {
    pub batch_size: Option<u32>,
    pub max_batch_tokens: Option<u32>,
    /// Most tokens the call's windows may run (special tokens included); over it, the call
    /// fails before any forward pass.
    pub max_tokens: Option<u32>,
    /// Tokens per window, special tokens included (default: the model's modelMaxLength).
    pub max_length: Option<u32>,
    /// Tokens shared by consecutive windows (default: a quarter of a window's text).
    pub stride: Option<u32>,
    /// Also return the token strings (for transformers-style words); off by default.
    pub tokens: Option<bool>,
    /// `prepare`/`prepareAndRun`: keep each window's softmax probabilities instead of its
    /// logits, computed on the thread that ran it (the NER pipeline's scores).
    pub probabilities: Option<bool>,
}

/// One window of a text: content tokens `[from, to)` of the whole tokenization, the positions
/// `[ownsFrom, ownsTo)` it is the reference for, and the logits of its content rows.
#[napi(object, object_from_js = false)]
pub struct NativeWindow {
    pub from: u32,
    pub to: u32,
    pub owns_from: u32,
    pub owns_to: u32,
    /// `(to - from) × numLabels`, row-major.
    pub logits: Float32Array,
}

/// A text's whole tokenization (what the pipeline reads of it) and its scored windows.
#[napi(object, object_from_js = false)]
pub struct NativeScoredText {
    pub ids: Uint32Array,
    /// `[start0, end0, start1, end1, ...]` in UTF-16 code units of the input string.
    pub offsets: Uint32Array,
    /// Vocabulary strings, only when asked for.
    pub tokens: Option<Vec<String>>,
    pub windows: Vec<NativeWindow>,
}

/// Texts `[from, to)` of a prepared call, packed (`eurobert::PackedScores`) into one array
/// that JavaScript views per part: 3 lengths (tokens, windows, scores), then as 32-bit words
/// the ids, the offsets (`[start, end]` per token), the texts' first tokens (and the token
/// count at the end), 6 numbers per window (text, from, to, ownsFrom, ownsTo, first score),
/// and the scores as floats.
#[napi(object, object_from_js = false)]
pub struct NativeScoredBatch {
    pub data: Float32Array,
    /// Vocabulary strings of every token, only when asked for.
    pub tokens: Option<Vec<String>>,
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
    /// Window length of the NER pipeline: the tokenizer's model_max_length, capped by the positions.
    pub model_max_length: u32,
    /// Bytes of weights held in memory.
    pub weight_bytes: f64,
    /// What the load accepted but a user may want to know (tensors the model ignores).
    pub warnings: Vec<String>,
    /// What runs the model: "cpu", "cuda:N" or "metal:N".
    pub device: String,
    /// The tokenizer's continuing-subword prefix (`##`), if it has one.
    pub continuing_subword_prefix: Option<String>,
    /// The tokenizer's unknown-token id, if it has one.
    pub unk_token_id: Option<u32>,
    /// Special tokens the tokenizer adds around each window (BOS/EOS, CLS/SEP: 2).
    pub special_tokens: u32,
    /// transformers' `model_type` ("eurobert", "bert", ...).
    pub model_type: String,
    /// The transformers class it computes as ("BertForTokenClassification").
    pub architecture: String,
}

/// Builds the core's load options from the JavaScript ones; the core validates them.
fn load_options(o: &NativeLoadOptions) -> Result<eurobert::LoadOptions> {
    let options = eurobert::LoadOptions {
        dtype: o.dtype.as_deref().unwrap_or("f32").parse().map_err(js_error)?,
        device: o.device.as_deref().unwrap_or("cpu").parse().map_err(js_error)?,
        threads: o.threads.map(|t| t as usize),
        candle: false,
    };
    options.validate().map_err(js_error)?;
    Ok(options)
}

fn run_options(batch_size: Option<u32>, max_batch_tokens: Option<u32>) -> Result<eurobert::RunOptions> {
    let defaults = eurobert::RunOptions::default();
    let options = eurobert::RunOptions {
        batch_size: batch_size.map_or(defaults.batch_size, |b| b as usize),
        max_batch_tokens: max_batch_tokens.map_or(defaults.max_batch_tokens, |b| b as usize),
        cancel: defaults.cancel,
    };
    options.validate().map_err(js_error)?;
    Ok(options)
}

fn tokens_to_js(e: eurobert::Encoded, logits: Option<Vec<f32>>) -> NativeTokens {
    let offsets: Vec<u32> = e.offsets.iter().flat_map(|&(s, t)| [s, t]).collect();
    NativeTokens {
        ids: e.ids.into(),
        tokens: e.tokens,
        offsets: offsets.into(),
        special_tokens_mask: e.special_tokens_mask.into(),
        word_ids: e.word_ids.into(),
        logits: logits.map(Into::into),
    }
}

fn window_options(options: Option<NativeWindowOptions>) -> Result<(eurobert::WindowOptions, bool)> {
    let o = options.unwrap_or(NativeWindowOptions {
        batch_size: None,
        max_batch_tokens: None,
        max_tokens: None,
        max_length: None,
        stride: None,
        tokens: None,
        probabilities: None,
    });
    let options = eurobert::WindowOptions {
        max_length: o.max_length.map(|m| m as usize),
        stride: o.stride.map(|s| s as usize),
        max_tokens: o.max_tokens.map(|m| m as usize),
        run: run_options(o.batch_size, o.max_batch_tokens)?,
    };
    Ok((options, o.tokens.unwrap_or(false)))
}

fn cancelled_by(options: eurobert::WindowOptions, cancel: eurobert::Cancel) -> eurobert::WindowOptions {
    eurobert::WindowOptions { run: eurobert::RunOptions { cancel, ..options.run }, ..options }
}

pub struct LoadTask {
    dir: PathBuf,
    options: eurobert::LoadOptions,
}

impl Task for LoadTask {
    type Output = TokenClassifier;
    type JsValue = NativeModel;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("loading the model", || TokenClassifier::load(&self.dir, &self.options))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeModel { inner: Mutex::new(Some(Arc::new(output))) })
    }
}

/// A model whose files are bytes from JavaScript: copied here, off the JavaScript thread.
pub struct LoadFilesTask {
    names: Vec<String>,
    contents: Vec<Uint8Array>,
    options: eurobert::LoadOptions,
}

impl Task for LoadFilesTask {
    type Output = TokenClassifier;
    type JsValue = NativeModel;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("loading the model", || {
            let mut folder = eurobert::MemoryFolder::default();
            for (name, bytes) in self.names.iter().zip(&self.contents) {
                let mut copy = Vec::new();
                // Fallible: a model too large for this memory (a 4 GiB WebAssembly heap) is an
                // error, not an abort.
                copy.try_reserve_exact(bytes.len())
                    .map_err(|_| eurobert::Error::Compute(format!("{name}: {} bytes do not fit in memory", bytes.len())))?;
                copy.extend_from_slice(bytes);
                folder.insert(name, copy)?;
            }
            // The JavaScript buffers are not needed past here.
            self.contents.clear();
            TokenClassifier::load_files(folder, &self.options)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativeModel { inner: Mutex::new(Some(Arc::new(output))) })
    }
}

pub struct LogitsTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
    options: eurobert::RunOptions,
}

impl Task for LogitsTask {
    type Output = Vec<eurobert::Classified>;
    type JsValue = Vec<NativeTokens>;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("running the model", || self.model.logits(&self.texts, &self.options))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into_iter().map(|c| tokens_to_js(c.encoded, Some(c.logits))).collect())
    }
}

pub struct LogitsForIdsTask {
    model: Arc<TokenClassifier>,
    sequences: Vec<Vec<u32>>,
    options: eurobert::RunOptions,
}

impl Task for LogitsForIdsTask {
    type Output = Vec<Vec<f32>>;
    type JsValue = Vec<Float32Array>;

    fn compute(&mut self) -> Result<Self::Output> {
        let seqs: Vec<&[u32]> = self.sequences.iter().map(Vec::as_slice).collect();
        guarded("running the model", || self.model.logits_for_ids(&seqs, &self.options))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into_iter().map(Into::into).collect())
    }
}

pub struct ScoreWindowsTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
    options: eurobert::WindowOptions,
    tokens: bool,
}

impl Task for ScoreWindowsTask {
    type Output = Vec<eurobert::ScoredText>;
    type JsValue = Vec<NativeScoredText>;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("running the model", || self.model.score_windows(&self.texts, &self.options))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(scored_to_js(output, self.tokens))
    }
}

fn scored_to_js(output: Vec<eurobert::ScoredText>, tokens: bool) -> Vec<NativeScoredText> {
    output
        .into_iter()
        .map(|t| {
            let offsets: Vec<u32> = t.encoded.offsets.iter().flat_map(|&(s, e)| [s, e]).collect();
            NativeScoredText {
                ids: t.encoded.ids.into(),
                offsets: offsets.into(),
                tokens: tokens.then_some(t.encoded.tokens),
                windows: t
                    .windows
                    .into_iter()
                    .map(|w| NativeWindow {
                        from: w.window.from as u32,
                        to: w.window.to as u32,
                        owns_from: w.window.owns.0 as u32,
                        owns_to: w.window.owns.1 as u32,
                        logits: w.logits.into(),
                    })
                    .collect(),
            }
        })
        .collect()
}

pub struct PrepareTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
    options: eurobert::WindowOptions,
    probabilities: bool,
}

impl Task for PrepareTask {
    type Output = eurobert::Prepared;
    type JsValue = NativePrepared;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("tokenizing", || {
            let mut prepared = self.model.prepare(&self.texts, &self.options)?;
            if self.probabilities {
                prepared.keep_probabilities();
            }
            Ok(prepared)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativePrepared::new(output))
    }
}

pub struct PrepareRunTask {
    model: Arc<TokenClassifier>,
    texts: Vec<String>,
    options: eurobert::WindowOptions,
    probabilities: bool,
}

impl Task for PrepareRunTask {
    type Output = eurobert::Prepared;
    type JsValue = NativePrepared;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("running the model", || {
            let mut prepared = self.model.prepare(&self.texts, &self.options)?;
            if self.probabilities {
                prepared.keep_probabilities();
            }
            let windows = prepared.window_count();
            self.model.run_windows(&mut [(&mut prepared, 0..windows)], &self.options.run)?;
            Ok(prepared)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(NativePrepared::new(output))
    }
}

pub struct RunWindowsTask {
    model: Arc<TokenClassifier>,
    parts: Vec<(Arc<Mutex<eurobert::Prepared>>, std::ops::Range<usize>)>,
    options: eurobert::RunOptions,
}

fn lock(p: &Mutex<eurobert::Prepared>) -> std::sync::MutexGuard<'_, eurobert::Prepared> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

impl Task for RunWindowsTask {
    type Output = u32;
    type JsValue = u32;

    fn compute(&mut self) -> Result<Self::Output> {
        guarded("running the model", || {
            // The same prepared call may appear in several parts (two callers' texts): each is
            // locked in turn, never two at once.
            let mut sequences: Vec<Vec<u32>> = Vec::new();
            for (p, range) in &self.parts {
                let p = lock(p);
                if range.end > p.window_count() {
                    return Err(eurobert::Error::InvalidArgument(format!("windows {range:?} of a call with {}", p.window_count())));
                }
                sequences.extend(range.clone().map(|i| p.sequence(i)));
            }
            let refs: Vec<&[u32]> = sequences.iter().map(Vec::as_slice).collect();
            let mut logits = self.model.logits_for_ids(&refs, &self.options)?.into_iter();
            for (p, range) in &self.parts {
                let mut p = lock(p);
                for i in range.clone() {
                    p.store(i, logits.next().unwrap_or_default())?;
                }
            }
            Ok(sequences.iter().map(Vec::len).sum::<usize>() as u32)
        })
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output)
    }
}

/// A call's texts tokenized and cut into windows, with no forward pass yet: what each window
/// costs, and the windows' logits once `NativeModel.runWindows` has run them.
#[napi]
pub struct NativePrepared {
    inner: Arc<Mutex<eurobert::Prepared>>,
    window_lengths: Vec<u32>,
    text_windows: Vec<u32>,
    text_tokens: Vec<u32>,
}

impl NativePrepared {
    fn new(p: eurobert::Prepared) -> Self {
        let texts = p.text_count();
        let mut text_windows: Vec<u32> = (0..texts).map(|t| p.text_windows(t).start as u32).collect();
        text_windows.push(p.window_count() as u32);
        NativePrepared {
            window_lengths: (0..p.window_count()).map(|i| p.window_len(i) as u32).collect(),
            text_tokens: (0..texts).map(|t| p.text_tokens(t) as u32).collect(),
            text_windows,
            inner: Arc::new(Mutex::new(p)),
        }
    }
}

#[napi]
impl NativePrepared {
    /// Tokens of each window, special tokens included: what running it costs.
    #[napi(getter)]
    pub fn window_lengths(&self) -> Uint32Array {
        self.window_lengths.clone().into()
    }

    /// Index of each text's first window, and the window count at the end.
    #[napi(getter)]
    pub fn text_windows(&self) -> Uint32Array {
        self.text_windows.clone().into()
    }

    /// Tokens of each text's whole tokenization, special tokens included.
    #[napi(getter)]
    pub fn text_tokens(&self) -> Uint32Array {
        self.text_tokens.clone().into()
    }

    /// The scored texts `[from, to)`, moved out; every one of their windows must have run.
    /// One array, copied into memory JavaScript owns: six external buffers (each with a
    /// finalizer and a reference) took 12 µs of a one-sentence call, five copies 9.
    #[napi(ts_return_type = "NativeScoredBatch")]
    pub fn take<'env>(&self, env: &'env Env, from: u32, to: u32, tokens: Option<bool>) -> Result<Object<'env>> {
        let mut p = lock(&self.inner);
        if from > to || to as usize > p.text_count() {
            return Err(Error::new(Status::InvalidArg, format!("texts {from}..{to} of a call with {}", p.text_count())));
        }
        let tokens = tokens.unwrap_or(false);
        let out = guarded("taking results", || p.take_packed(from as usize..to as usize, tokens))?;
        let words = 3 + out.ids.len() + out.offsets.len() + out.token_starts.len() + out.windows.len() + out.scores.len();
        let mut data: Vec<f32> = Vec::with_capacity(words);
        let lengths = [out.ids.len(), out.windows.len(), out.scores.len()].map(|n| n as u32);
        let parts = [&lengths[..], &out.ids, &out.offsets, &out.token_starts, &out.windows];
        data.extend(parts.into_iter().flatten().map(|&w| f32::from_bits(w)));
        data.extend_from_slice(&out.scores);
        let mut o = Object::new(env)?;
        o.set("data", Float32ArraySlice::copy_from(env, &data)?)?;
        if tokens {
            o.set("tokens", out.tokens)?;
        }
        Ok(o)
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
        guarded("tokenizing", || self.model.tokenize(&self.texts))
    }

    fn resolve(&mut self, _env: Env, output: Self::Output) -> Result<Self::JsValue> {
        Ok(output.into_iter().map(|e| tokens_to_js(e, None)).collect())
    }
}

/// How many CUDA GPUs this binary can use (0 in a CPU build, or without a driver or GPU).
#[napi]
pub fn cuda_devices() -> u32 {
    catch_unwind(eurobert::cuda_devices).unwrap_or(0) as u32
}

/// Every `model_type` this runtime implements ("eurobert", "bert", ...).
#[napi]
pub fn supported_model_types() -> Vec<String> {
    eurobert::supported_model_types().into_iter().map(String::from).collect()
}

/// The backends this binary was built with: "cpu", and "cuda" or "metal" where enabled.
#[napi]
pub fn backends() -> Vec<String> {
    eurobert::backends().into_iter().map(String::from).collect()
}

/// The CPU kernels this process runs (for diagnosing a machine): `{ elementwise, gemm_f32, gemm_int8, gemm_bf16 }`.
#[napi]
pub fn cpu_kernels() -> std::collections::HashMap<String, String> {
    eurobert::cpu_kernels().into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A loaded token classifier (any supported architecture).
#[napi]
pub struct NativeModel {
    /// `None` once disposed. Calls clone the `Arc`, so a dispose while they run frees the
    /// weights when the last of them finishes.
    inner: Mutex<Option<Arc<TokenClassifier>>>,
}

#[napi]
impl NativeModel {
    /// Loads a model from its files' bytes (`names[i]` holds `contents[i]`) off the main
    /// thread; nothing is read from disk.
    #[napi(ts_return_type = "Promise<NativeModel>")]
    pub fn load_files(
        names: Vec<String>,
        contents: Vec<Uint8Array>,
        options: Option<NativeLoadOptions>,
        call: Option<u32>,
    ) -> Result<AsyncTask<Tracked<LoadFilesTask>>> {
        if names.len() != contents.len() {
            return Err(Error::new(Status::InvalidArg, format!("{} names for {} files", names.len(), contents.len())));
        }
        let options = load_options(&options.unwrap_or(NativeLoadOptions { threads: None, dtype: None, device: None }))?;
        Ok(AsyncTask::new(tracked(call, |_| LoadFilesTask { names, contents, options })))
    }

    /// Loads a model folder off the main thread.
    #[napi(ts_return_type = "Promise<NativeModel>")]
    pub fn load(dir: String, options: Option<NativeLoadOptions>, call: Option<u32>) -> Result<AsyncTask<Tracked<LoadTask>>> {
        let options = load_options(&options.unwrap_or(NativeLoadOptions { threads: None, dtype: None, device: None }))?;
        Ok(AsyncTask::new(tracked(call, |_| LoadTask { dir: PathBuf::from(dir), options })))
    }

    fn model(&self) -> Result<Arc<TokenClassifier>> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.clone().ok_or_else(|| Error::new(Status::GenericFailure, "the model has been disposed".to_string()))
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
            model_max_length: m.model_max_length() as u32,
            weight_bytes: m.weight_bytes() as f64,
            warnings: m.warnings().to_vec(),
            device: m.device().to_string(),
            continuing_subword_prefix: m.tokenizer().continuing_subword_prefix(),
            unk_token_id: m.tokenizer().unk_token_id(),
            special_tokens: m.tokenizer().special_tokens() as u32,
            model_type: c.model_type.clone(),
            architecture: c.architecture().to_string(),
        })
    }

    /// Tokenizes and runs `texts` whole, off the main thread.
    #[napi(ts_return_type = "Promise<NativeTokens[]>")]
    pub fn logits<'env>(
        &self,
        env: &'env Env,
        texts: Vec<String>,
        options: Option<NativeRunOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let o = options.unwrap_or(NativeRunOptions { batch_size: None, max_batch_tokens: None });
        let (model, options) = (self.model()?, run_options(o.batch_size, o.max_batch_tokens)?);
        start(env, call, model, |model, cancel| LogitsTask { model, texts, options: eurobert::RunOptions { cancel, ..options } })
    }

    /// Logits for id sequences that already carry their special tokens (e.g. windows of a
    /// long text), off the main thread; `tokens × numLabels` each, in input order.
    #[napi(ts_return_type = "Promise<Float32Array[]>")]
    pub fn logits_for_ids<'env>(
        &self,
        env: &'env Env,
        sequences: Vec<Uint32Array>,
        options: Option<NativeRunOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let o = options.unwrap_or(NativeRunOptions { batch_size: None, max_batch_tokens: None });
        // Copied now: the JavaScript side may reuse its arrays while the task runs.
        let sequences = sequences.iter().map(|s| s.to_vec()).collect();
        let (model, options) = (self.model()?, run_options(o.batch_size, o.max_batch_tokens)?);
        start(env, call, model, |model, cancel| LogitsForIdsTask { model, sequences, options: eurobert::RunOptions { cancel, ..options } })
    }

    /// The NER pipeline's native half in one round trip, off the main thread: tokenizes,
    /// cuts long texts into windows and scores every window.
    #[napi(ts_return_type = "Promise<NativeScoredText[]>")]
    pub fn score_windows<'env>(
        &self,
        env: &'env Env,
        texts: Vec<String>,
        options: Option<NativeWindowOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let (options, tokens) = window_options(options)?;
        let model = self.model()?;
        start(env, call, model, |model, cancel| ScoreWindowsTask { model, texts, options: cancelled_by(options, cancel), tokens })
    }

    /// The first half of `scoreWindows`, off the main thread: tokenizes and cuts windows,
    /// with no forward pass. Refused here, before any pass, if over `maxTokens`.
    #[napi(ts_return_type = "Promise<NativePrepared>")]
    pub fn prepare<'env>(
        &self,
        env: &'env Env,
        texts: Vec<String>,
        options: Option<NativeWindowOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let probabilities = options.as_ref().and_then(|o| o.probabilities).unwrap_or(false);
        let (options, _) = window_options(options)?;
        let model = self.model()?;
        start(env, call, model, |model, cancel| PrepareTask { model, texts, options: cancelled_by(options, cancel), probabilities })
    }

    /// `prepare` and `runWindows` of every window in one round trip (the batcher's path for a
    /// short call on an idle pipeline: one hop less). Refused before any pass if over
    /// `maxTokens`.
    #[napi(ts_return_type = "Promise<NativePrepared>")]
    pub fn prepare_and_run<'env>(
        &self,
        env: &'env Env,
        texts: Vec<String>,
        options: Option<NativeWindowOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        let probabilities = options.as_ref().and_then(|o| o.probabilities).unwrap_or(false);
        let (options, _) = window_options(options)?;
        let model = self.model()?;
        start(env, call, model, |model, cancel| PrepareRunTask { model, texts, options: cancelled_by(options, cancel), probabilities })
    }

    /// Runs windows `[from[i], to[i])` of `prepared[i]` for every i, in shared forward passes,
    /// and stores their logits there; resolves with the tokens run.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn run_windows<'env>(
        &self,
        env: &'env Env,
        prepared: Vec<&NativePrepared>,
        from: Vec<u32>,
        to: Vec<u32>,
        options: Option<NativeRunOptions>,
        call: Option<u32>,
    ) -> Result<Unknown<'env>> {
        if prepared.len() != from.len() || prepared.len() != to.len() {
            return Err(Error::new(Status::InvalidArg, "prepared, from and to must have the same length".to_string()));
        }
        let mut parts = Vec::with_capacity(prepared.len());
        for ((p, &f), &t) in prepared.iter().zip(&from).zip(&to) {
            if f > t || t as usize > p.window_lengths.len() {
                return Err(Error::new(Status::InvalidArg, format!("windows {f}..{t} of a call with {}", p.window_lengths.len())));
            }
            parts.push((p.inner.clone(), f as usize..t as usize));
        }
        let o = options.unwrap_or(NativeRunOptions { batch_size: None, max_batch_tokens: None });
        let (model, options) = (self.model()?, run_options(o.batch_size, o.max_batch_tokens)?);
        start(env, call, model, |model, cancel| RunWindowsTask { model, parts, options: eurobert::RunOptions { cancel, ..options } })
    }

    /// Tokenizes `texts` off the main thread (no model computation).
    #[napi(ts_return_type = "Promise<NativeTokens[]>")]
    pub fn tokenize<'env>(&self, env: &'env Env, texts: Vec<String>, call: Option<u32>) -> Result<Unknown<'env>> {
        let model = self.model()?;
        start(env, call, model, |model, _| TokenizeTask { model, texts })
    }

    /// Joins token strings with the tokenizer's decoder (`["ĠOslo"]` -> `" Oslo"`).
    #[napi]
    pub fn decode_tokens(&self, tokens: Vec<String>) -> Result<String> {
        let m = self.model()?;
        guarded("decoding tokens", || m.tokenizer().decode_tokens(&tokens))
    }

    /// Checks load options as `load` would, without loading (so a bad option fails before a
    /// download).
    #[napi]
    pub fn check_load_options(options: NativeLoadOptions) -> Result<()> {
        load_options(&options).map(|_| ())
    }

    /// Releases the weights now instead of at garbage collection. Calls already running
    /// finish first; later calls fail with a clear error.
    #[napi]
    pub fn dispose(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    #[napi(getter)]
    pub fn disposed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).is_none()
    }
}
