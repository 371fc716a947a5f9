//! EuroBERT token classification with no dependency on Node: reads a Hugging Face model
//! folder (`config.json`, safetensors weights, `tokenizer.json`) and computes per-token logits
//! exactly as transformers' `EuroBertForTokenClassification`.
//!
//! The public surface is what the binding and the tests use; every module is private.

mod arch;
mod awake;
mod batching;
mod cancel;
mod candle;
mod checkpoint;
mod classifier;
mod config;
mod cpu;
mod device;
mod encoder;
mod error;
mod files;
mod options;
mod prepared;
mod rebuild;
mod recipe;
mod rope;
mod spm;
mod tokenize;
mod weights;
mod windows;

pub use cancel::Cancel;
pub use classifier::{Classified, ScoredText, ScoredWindow, TokenClassifier};
pub use config::Config;
pub use device::{backends, cuda_devices};
pub use error::{Error, Result};
pub use files::{MemoryFolder, MEMORY_FOLDER};
pub use options::{max_threads, DeviceKind, Dtype, LoadOptions, RunOptions, WindowOptions};
pub use prepared::{softmax_rows, PackedScores, Prepared, WINDOW_FIELDS};
pub use tokenize::{Encoded, Tokenizer};
pub use windows::Window;

/// Every `model_type` this runtime implements (`eurobert`, `bert`, ...).
pub fn supported_model_types() -> Vec<&'static str> {
    arch::Family::supported()
}

/// The CPU kernels this process runs, as `(part, kernel)` pairs: our element-wise level
/// (avx512, avx2+fma, baseline or neon), the f32 and int8 GEMM kernels (rten-gemm's or ours:
/// AVX-512 f32, AVX-512 VNNI or AMX int8), and what runs bf16 weights.
pub fn cpu_kernels() -> Vec<(&'static str, String)> {
    cpu::simd::kernels().into()
}

/// Marks the calling test as skipped (libtest has no run-time skip): the test returns without
/// asserting, and the line written to `$EUROBERT_SKIP_LOG` lets `npm test` count it as skipped,
/// not passed. (CPU-feature tests skip on other machines: aarch64, WebAssembly, older x86.)
#[cfg(test)]
pub(crate) fn skip_test(name: &str, why: &str) {
    use std::io::Write;
    eprintln!("skipped: {name}: {why}");
    if let Some(path) = std::env::var_os("EUROBERT_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{name}: {why}");
        }
    }
}
