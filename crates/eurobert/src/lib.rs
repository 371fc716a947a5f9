//! EuroBERT token classification on Candle, with no dependency on Node: reads a Hugging Face
//! model folder (`config.json`, safetensors weights, `tokenizer.json`) and computes per-token
//! logits exactly as transformers' `EuroBertForTokenClassification`.

pub mod classifier;
pub mod config;
pub mod error;
pub mod model;
pub mod tokenize;
pub mod weights;

pub use candle_core::DType;
pub use classifier::{Classified, DeviceKind, LoadOptions, RunOptions, TokenClassifier};
pub use config::Config;
pub use error::{Error, Result};
pub use tokenize::{Encoded, Tokenizer};
