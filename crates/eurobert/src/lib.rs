//! EuroBERT token classification with no dependency on Node: reads a Hugging Face model
//! folder (`config.json`, safetensors weights, `tokenizer.json`) and computes per-token logits
//! exactly as transformers' `EuroBertForTokenClassification`.

mod batching;
pub mod candle_encoder;
pub mod classifier;
pub mod config;
mod cpu;
pub mod error;
mod files;
mod rope;
pub mod tokenize;
pub mod weights;
pub mod windows;

pub use classifier::{Classified, DeviceKind, Dtype, LoadOptions, RunOptions, ScoredText, ScoredWindow, TokenClassifier, WindowOptions};
pub use config::Config;
pub use error::{Error, Result};
pub use tokenize::{Encoded, Tokenizer};

/// The CPU kernels this process runs, as `(part, kernel)` pairs: our element-wise level
/// (avx512, avx2+fma, baseline or neon) and rten-gemm's f32 and int8 GEMM kernels.
pub fn cpu_kernels() -> Vec<(&'static str, String)> {
    cpu::simd::kernels().into()
}
