//! Safetensors checkpoints (single file or sharded with `model.safetensors.index.json`),
//! memory-mapped; each tensor is checked for presence, shape and dtype with the file named.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use crate::error::{Error, Result};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

pub struct Weights {
    shards: Vec<Shard>,
    /// Tensor name -> shard index.
    location: HashMap<String, usize>,
    /// Where a missing tensor should have been, for the error message.
    describe: PathBuf,
}

impl Weights {
    /// Opens `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        if single.is_file() {
            return Self::open_files(&[single.clone()], single);
        }
        if index.is_file() {
            let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Json {
                    path: index.clone(),
                    message: e.to_string(),
                })?;
            let map = value
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::config(&index, "missing object 'weight_map'"))?;
            let mut files: Vec<PathBuf> = Vec::new();
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| {
                    Error::config(&index, format!("weight_map['{name}'] must be a file name"))
                })?;
                // Shard names are plain file names inside the model folder, never paths out of it.
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(Error::config(&index, format!("weight_map['{name}'] = '{file}' is not a file name in the model folder")));
                }
                let path = dir.join(file);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
            if files.is_empty() {
                return Err(Error::config(&index, "'weight_map' is empty"));
            }
            return Self::open_files(&files, index);
        }
        let other = ["pytorch_model.bin", "model.bin", "model.pt", "tf_model.h5"]
            .iter()
            .find(|f| dir.join(f).exists());
        let hint = match other {
            Some(f) => format!(" (found {f}: only safetensors are loaded, never pickles; convert it with the safetensors library)"),
            None => String::new(),
        };
        Err(Error::weights(
            &single,
            format!("no {SINGLE_FILE} or {INDEX_FILE} in the model folder{hint}"),
        ))
    }

    pub fn open_files(paths: &[PathBuf], describe: PathBuf) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut location = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            // SAFETY: the map is read-only; a checkpoint rewritten while loaded is undefined
            // behaviour, as for every mmap-based loader (transformers, candle).
            let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
                .map_err(|e| Error::weights(path, format!("not a valid safetensors file: {e}")))?;
            for name in metadata.tensors().keys() {
                location.insert(name.clone(), i);
            }
            shards.push(Shard {
                path: path.clone(),
                mmap,
                header_len,
                metadata,
            });
        }
        Ok(Weights {
            shards,
            location,
            describe,
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// Loads `name`, checks its shape and converts it to `dtype` on `device`.
    pub fn get(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let &i = self
            .location
            .get(name)
            .ok_or_else(|| Error::weights(&self.describe, format!("missing tensor '{name}'")))?;
        let shard = &self.shards[i];
        let info = shard
            .metadata
            .info(name)
            .expect("location lists only tensors of this shard");
        if info.shape != shape {
            return Err(Error::weights(
                &shard.path,
                format!(
                    "tensor '{name}' has shape {:?}, expected {:?} from config.json",
                    info.shape, shape
                ),
            ));
        }
        let stored = match info.dtype {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(Error::weights(
                    &shard.path,
                    format!("tensor '{name}' has dtype {other:?}; only F32, F16 and BF16 weights are supported"),
                ))
            }
        };
        let (start, end) = info.data_offsets;
        let base = 8 + shard.header_len;
        let bytes = shard.mmap.get(base + start..base + end).ok_or_else(|| {
            Error::weights(
                &shard.path,
                format!("tensor '{name}' lies outside the file (truncated download?)"),
            )
        })?;
        let tensor = Tensor::from_raw_buffer(bytes, stored, shape, device)
            .map_err(|e| Error::weights(&shard.path, format!("tensor '{name}': {e}")))?;
        Ok(if stored == dtype {
            tensor
        } else {
            tensor.to_dtype(dtype)?
        })
    }
}
