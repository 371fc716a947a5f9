//! What a caller chooses, validated here and nowhere else: the binding and the TypeScript
//! layer pass strings and numbers through and map `Error::InvalidArgument` to their own
//! argument errors.

use std::str::FromStr;

use candle_core::DType;

use crate::cancel::Cancel;
use crate::error::{Error, Result};

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Cpu,
    Cuda(usize),
    Metal(usize),
}

impl FromStr for DeviceKind {
    type Err = Error;

    /// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument(format!("device must be 'cpu', 'cuda', 'cuda:N', 'metal' or 'metal:N', got {s:?}"));
        let (name, index) = match s.split_once(':') {
            Some((n, i)) if !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) => (n, i.parse().map_err(|_| bad())?),
            Some(_) => return Err(bad()),
            None => (s, 0),
        };
        match name {
            "cpu" if index == 0 && !s.contains(':') => Ok(DeviceKind::Cpu),
            "cuda" => Ok(DeviceKind::Cuda(index)),
            "metal" => Ok(DeviceKind::Metal(index)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceKind::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

/// What a model computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// Exact (transformers' own precision); the default.
    F32,
    /// 16-bit weights. On the CPU our encoder keeps the weights in f16 (half the memory) and
    /// computes in f32; on a GPU everything runs in f16 (Candle).
    F16,
    /// As `F16`, with bfloat16 weights.
    BF16,
    /// CPU only: int8 projections (per-channel weights, per-token activations), the rest f32.
    Q8,
}

impl FromStr for Dtype {
    type Err = Error;

    /// `f32`, `q8`, `f16` or `bf16` (also `float32`, `int8`, `float16`, `bfloat16`).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" | "float32" => Ok(Dtype::F32),
            "f16" | "float16" => Ok(Dtype::F16),
            "bf16" | "bfloat16" => Ok(Dtype::BF16),
            "q8" | "int8" => Ok(Dtype::Q8),
            _ => Err(Error::InvalidArgument(format!("dtype must be 'f32', 'q8', 'f16' or 'bf16', got {s:?}"))),
        }
    }
}

impl Dtype {
    pub(crate) fn candle(self) -> DType {
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
    /// CPU threads for this model's pool; `None` = one per available core.
    pub threads: Option<usize>,
    /// Run on Candle even where our own CPU encoder would (f32 or q8 on the CPU): the GPU
    /// path's recipe, checked on the CPU by the parity tests.
    pub candle: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { dtype: Dtype::F32, device: DeviceKind::Cpu, threads: None, candle: false }
    }
}

impl LoadOptions {
    /// Checks what can be checked without a device: the thread count and the dtype/device pairs.
    pub fn validate(&self) -> Result<()> {
        if self.threads == Some(0) {
            return Err(Error::InvalidArgument("threads must be at least 1".into()));
        }
        if let Some(n) = self.threads {
            if n > max_threads() {
                return Err(Error::InvalidArgument(format!("threads must be at most {} (4 per available core), got {n}", max_threads())));
            }
        }
        match (self.device, self.dtype) {
            (DeviceKind::Cuda(_) | DeviceKind::Metal(_), Dtype::Q8) => {
                Err(Error::InvalidArgument("dtype q8 runs on the CPU only; use f16 or bf16 on a GPU".into()))
            }
            _ => Ok(()),
        }
    }

    /// Threads of the model's pool.
    pub(crate) fn pool_threads(&self) -> usize {
        self.threads.unwrap_or_else(available_cores)
    }
}

/// Most threads a model's pool may have: more only adds contention, and an absurd count
/// would spawn thousands of threads before failing.
pub fn max_threads() -> usize {
    4 * available_cores()
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Most sequences in one forward pass.
    pub batch_size: usize,
    /// Most tokens in one forward pass (on GPUs, padded tokens: rows × longest row); bounds
    /// activation memory, which grows linearly with it.
    pub max_batch_tokens: usize,
    /// Stops the call between forward passes and between layers once set.
    pub cancel: Cancel,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { batch_size: 32, max_batch_tokens: 16_384, cancel: Cancel::default() }
    }
}

impl RunOptions {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::InvalidArgument("batchSize must be at least 1".into()));
        }
        if self.max_batch_tokens == 0 {
            return Err(Error::InvalidArgument("maxBatchTokens must be at least 1".into()));
        }
        Ok(())
    }
}

/// Windows of the NER pipeline and the batches they run in.
#[derive(Debug, Clone, Default)]
pub struct WindowOptions {
    /// Tokens per window, special tokens included (default: `model_max_length`).
    pub max_length: Option<usize>,
    /// Tokens shared by consecutive windows (default: a quarter of a window's text); less
    /// than the text tokens a window holds, as transformers requires.
    pub stride: Option<usize>,
    /// Most tokens the call's windows may run (special tokens included), checked after
    /// tokenizing and before any forward pass: `Error::TooLarge` above it.
    pub max_tokens: Option<usize>,
    pub run: RunOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_dtypes_parse_once() {
        assert_eq!("cpu".parse::<DeviceKind>().unwrap(), DeviceKind::Cpu);
        assert_eq!("cuda".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceKind>().unwrap(), DeviceKind::Cuda(3));
        assert_eq!("metal".parse::<DeviceKind>().unwrap(), DeviceKind::Metal(0));
        for bad in ["", "gpu", "cuda:", "cuda:x", "cuda:-1", "cpu:1", "CUDA", "cuda:99999999999999999999"] {
            assert!(matches!(bad.parse::<DeviceKind>(), Err(Error::InvalidArgument(_))), "{bad}");
        }
        assert_eq!("bfloat16".parse::<Dtype>().unwrap(), Dtype::BF16);
        assert!(matches!("f64".parse::<Dtype>(), Err(Error::InvalidArgument(m)) if m.contains("got \"f64\"")));
        assert_eq!(DeviceKind::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn load_options_refuse_impossible_pairs() {
        let o = |dtype, device, threads| LoadOptions { dtype, device, threads, candle: false }.validate();
        assert!(o(Dtype::F32, DeviceKind::Cpu, Some(1)).is_ok());
        assert!(o(Dtype::F32, DeviceKind::Cpu, Some(0)).is_err());
        assert!(o(Dtype::F32, DeviceKind::Cpu, Some(max_threads() + 1)).is_err());
        assert!(o(Dtype::BF16, DeviceKind::Cpu, None).is_ok());
        assert!(o(Dtype::Q8, DeviceKind::Cuda(0), None).is_err());
        assert!(o(Dtype::F16, DeviceKind::Cuda(0), None).is_ok());
    }
}
