//! Safetensors checkpoints (single file or sharded with `model.safetensors.index.json`).
//!
//! Headers are parsed and checked before any tensor is read: the header size is capped, every
//! tensor's byte range must match its shape and dtype and lie inside the file, and ranges may
//! not overlap. Tensors are then read with positional reads straight into the buffer that
//! keeps them, so loading holds one copy of the weights (no memory map whose pages would
//! count twice, and nothing a file truncated under us could turn into a SIGBUS).

use std::collections::{BTreeMap, HashMap};
#[cfg(not(target_family = "wasm"))]
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::files::Opened;

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// safetensors' own limit on the JSON header.
const MAX_HEADER: u64 = 100 << 20;
/// Largest index file read (the 2.1B model's is ~30 kB).
const MAX_INDEX: u64 = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    F32,
    F16,
    BF16,
}

#[derive(Debug, Clone)]
struct TensorInfo {
    /// The dtype as safetensors names it ("F32", "I64", ...).
    dtype: String,
    shape: Vec<usize>,
    /// Absolute byte range in the file.
    start: u64,
    end: u64,
}

struct Shard {
    path: PathBuf,
    source: Source,
    tensors: HashMap<String, TensorInfo>,
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
        if crate::files::present(&single) {
            return Self::open_files(std::slice::from_ref(&single), single.clone());
        }
        if crate::files::present(&index) {
            let text = crate::files::read_text(&index, MAX_INDEX)?;
            let value: Value = serde_json::from_str(&text).map_err(|e| Error::Json { path: index.clone(), message: e.to_string() })?;
            let map =
                value.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::config(&index, "missing object 'weight_map'"))?;
            let mut files: Vec<PathBuf> = Vec::new();
            for (name, file) in map {
                let file = file.as_str().ok_or_else(|| Error::config(&index, format!("weight_map['{name}'] must be a file name")))?;
                // Shard names are plain `.safetensors` file names in the model folder, never
                // paths out of it (`..`, `/x`, `C:x`, `\\server\x`): the Hub loader's rule too
                // (hub.ts `SHARD`), so a folder it downloaded loads and nothing else does.
                let plain = is_shard_name(file);
                if !plain {
                    return Err(Error::config(
                        &index,
                        format!("weight_map['{name}'] = '{file}' is not a .safetensors file name in the model folder"),
                    ));
                }
                let path = dir.join(file);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
            if files.is_empty() {
                return Err(Error::config(&index, "'weight_map' is empty"));
            }
            let weights = Self::open_files(&files, index.clone())?;
            for (name, file) in map {
                let want = dir.join(file.as_str().unwrap_or_default());
                match weights.location.get(name) {
                    Some(&i) if weights.shards[i].path == want => {}
                    _ => return Err(Error::weights(&want, format!("has no tensor '{name}', which {INDEX_FILE} places there"))),
                }
            }
            return Ok(weights);
        }
        let other = ["pytorch_model.bin", "model.bin", "model.pt", "tf_model.h5"].iter().find(|f| crate::files::present(&dir.join(f)));
        let hint = match other {
            Some(f) => format!(" (found {f}: only safetensors are loaded, never pickles; convert it with the safetensors library)"),
            None => String::new(),
        };
        Err(Error::weights(&single, format!("no {SINGLE_FILE} or {INDEX_FILE} in the model folder{hint}")))
    }

    pub fn open_files(paths: &[PathBuf], describe: PathBuf) -> Result<Self> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut location = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let shard = Shard::open(path)?;
            for name in shard.tensors.keys() {
                if location.insert(name.clone(), i).is_some() {
                    return Err(Error::weights(path, format!("tensor '{name}' is also in another shard")));
                }
            }
            shards.push(shard);
        }
        Ok(Weights { shards, location, describe })
    }

    /// Whether the checkpoint has a tensor of this name.
    pub fn has(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// Every tensor name in the checkpoint.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.location.keys().map(String::as_str)
    }

    /// Reads `name` as f32, checking its shape against `shape` (from config.json) and that
    /// every value is finite. F16 and BF16 are widened exactly.
    pub fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (shard, info, stored) = self.locate(name, shape)?;
        let n: usize = shape.iter().product();
        let err = |e: std::io::Error| Error::weights(&shard.path, format!("tensor '{name}': {e}"));
        let values = match stored {
            Stored::F32 => {
                let mut v = vec![0f32; n];
                shard.source.read_exact_at(bytes_of_mut(&mut v), info.start).map_err(err)?;
                if cfg!(target_endian = "big") {
                    v.iter_mut().for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
                }
                v
            }
            Stored::F16 | Stored::BF16 => {
                let mut h = vec![0u16; n];
                shard.source.read_exact_at(bytes_of_mut(&mut h), info.start).map_err(err)?;
                let widen = |b: u16| {
                    let b = u16::from_le(b);
                    if stored == Stored::F16 {
                        half::f16::from_bits(b).to_f32()
                    } else {
                        half::bf16::from_bits(b).to_f32()
                    }
                };
                h.into_iter().map(widen).collect()
            }
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::weights(
                &shard.path,
                format!("tensor '{name}' holds a non-finite value ({}) at flat index {i}; the checkpoint is corrupt", values[i]),
            ));
        }
        Ok(values)
    }

    fn locate(&self, name: &str, shape: &[usize]) -> Result<(&Shard, &TensorInfo, Stored)> {
        let &i = self.location.get(name).ok_or_else(|| Error::weights(&self.describe, format!("missing tensor '{name}'")))?;
        let shard = &self.shards[i];
        let info = &shard.tensors[name];
        if info.shape != shape {
            return Err(Error::weights(
                &shard.path,
                format!("tensor '{name}' has shape {:?}, expected {:?} from config.json", info.shape, shape),
            ));
        }
        let stored = match info.dtype.as_str() {
            "F32" => Stored::F32,
            "F16" => Stored::F16,
            "BF16" => Stored::BF16,
            other => {
                return Err(Error::weights(
                    &shard.path,
                    format!("tensor '{name}' has dtype {other}; only F32, F16 and BF16 weights are supported"),
                ))
            }
        };
        Ok((shard, info, stored))
    }
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let bad = |m: String| Error::weights(path, format!("not a valid safetensors file: {m}"));
        let file = crate::files::open_regular(path)?;
        let len = file.len(path)?;
        if len < 8 {
            return Err(bad(format!("{len} bytes is too short for a header")));
        }
        let mut n = [0u8; 8];
        let source = Source::open(file, len).map_err(|e| Error::io(path, e))?;
        source.read_exact_at(&mut n, 0).map_err(|e| Error::io(path, e))?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER || header_len > len - 8 {
            return Err(bad(format!("header length {header_len} exceeds {} (file of {len} bytes)", MAX_HEADER.min(len - 8))));
        }
        let mut header = vec![0u8; header_len as usize];
        source.read_exact_at(&mut header, 8).map_err(|e| Error::io(path, e))?;
        let header: BTreeMap<String, Value> =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header is not a JSON object: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = len - data_start;
        let mut tensors = HashMap::new();
        let mut ranges: Vec<(u64, u64, String)> = Vec::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let info = parse_info(&name, &v, data_len).map_err(bad)?;
            ranges.push((info.start, info.end, name.clone()));
            tensors.insert(name, TensorInfo { start: data_start + info.start, end: data_start + info.end, ..info });
        }
        // As safetensors requires: tensors tile the data area, in order, without overlap.
        ranges.sort();
        let mut at = 0;
        for (start, end, name) in &ranges {
            if *start != at {
                return Err(bad(format!(
                    "tensor '{name}' starts at byte {start} of the data, expected {at} (overlapping or missing data)"
                )));
            }
            at = *end;
        }
        if at != data_len {
            return Err(bad(format!("tensors cover {at} bytes but the file holds {data_len} bytes of data (truncated or padded)")));
        }
        Ok(Shard { path: path.to_path_buf(), source, tensors })
    }
}

/// Where a shard's bytes are read from: the open file natively; bytes for a model given in
/// memory, and in WebAssembly the whole file, read on the loading thread: WASI threads each
/// have their own descriptor table, so a file opened on one cannot be read from the pool's
/// threads (EBADF).
enum Source {
    #[cfg(not(target_family = "wasm"))]
    File(File),
    Memory(Arc<Vec<u8>>),
}

impl Source {
    fn open(file: Opened, len: u64) -> std::io::Result<Self> {
        match file {
            Opened::Memory(bytes, _) => Ok(Source::Memory(bytes)),
            #[cfg(not(target_family = "wasm"))]
            Opened::File(file) => {
                let _ = len;
                Ok(Source::File(file))
            }
            #[cfg(target_family = "wasm")]
            Opened::File(file) => {
                use std::io::Read;
                let too_large =
                    || std::io::Error::new(std::io::ErrorKind::OutOfMemory, format!("{len} bytes do not fit this WebAssembly memory"));
                let n = usize::try_from(len).map_err(|_| too_large())?;
                let mut bytes = Vec::new();
                bytes.try_reserve_exact(n).map_err(|_| too_large())?;
                // No more than the size checked: a file that grows meanwhile is cut, and then
                // fails the header's range checks like a truncated one.
                file.take(len).read_to_end(&mut bytes)?;
                Ok(Source::Memory(Arc::new(bytes)))
            }
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            #[cfg(not(target_family = "wasm"))]
            Source::File(file) => read_exact_at(file, buf, offset),
            Source::Memory(bytes) => {
                let at = usize::try_from(offset).ok().filter(|&at| at <= bytes.len() && bytes.len() - at >= buf.len());
                let at = at.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(&bytes[at..at + buf.len()]);
                Ok(())
            }
        }
    }
}

/// A header entry `{"dtype": "F32", "shape": [..], "data_offsets": [start, end]}`, offsets
/// relative to the data area of `data_len` bytes.
fn parse_info(name: &str, v: &Value, data_len: u64) -> std::result::Result<TensorInfo, String> {
    let dtype = v.get("dtype").and_then(Value::as_str).ok_or_else(|| format!("tensor '{name}' has no dtype"))?.to_string();
    let size: u64 = match dtype.as_str() {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        other => return Err(format!("tensor '{name}' has unknown dtype '{other}'")),
    };
    let shape: Vec<usize> = v
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("tensor '{name}' has no shape"))?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("tensor '{name}' has a shape that is not a list of sizes"))?;
    let offsets: Vec<u64> = v
        .get("data_offsets")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().map(Value::as_u64).collect::<Option<Vec<_>>>())
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("tensor '{name}' has no data_offsets [start, end]"))?;
    let (start, end) = (offsets[0], offsets[1]);
    let bytes = shape
        .iter()
        .try_fold(size, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| format!("tensor '{name}' has shape {shape:?}, too large to exist"))?;
    if start > end || end > data_len || end - start != bytes {
        return Err(format!(
            "tensor '{name}' ({dtype} {shape:?}, {bytes} bytes) has data_offsets [{start}, {end}] that do not fit the {data_len} bytes of data"
        ));
    }
    Ok(TensorInfo { dtype, shape, start, end })
}

/// `[A-Za-z0-9_-][A-Za-z0-9_.-]*\.safetensors`.
fn is_shard_name(name: &str) -> bool {
    let ok = |b: u8, first: bool| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (!first && b == b'.');
    name.strip_suffix(".safetensors").is_some_and(|stem| {
        let b = name.as_bytes();
        !stem.is_empty() && ok(b[0], true) && b.iter().all(|&c| ok(c, false))
    })
}

/// Plain numbers every bit pattern of which is a valid value, with no padding: the only types
/// whose bytes a file may overwrite. Sealed: no other type can claim it.
trait Plain: Copy + sealed::Sealed {}
impl Plain for f32 {}
impl Plain for u16 {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for u16 {}
}

fn bytes_of_mut<T: Plain>(v: &mut [T]) -> &mut [u8] {
    // SAFETY: `Plain` types have no padding and no invalid bit patterns, so any bytes written
    // through the returned slice leave valid values; the slice covers exactly `v`'s memory
    // and borrows it mutably for its lifetime.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn shard_names_follow_the_hub_loaders_rule() {
        for good in ["model-00001-of-00002.safetensors", "a.b.safetensors", "_x.safetensors"] {
            assert!(super::is_shard_name(good), "{good}");
        }
        for bad in [
            "../x.safetensors",
            ".safetensors",
            ".x.safetensors",
            "a/b.safetensors",
            "C:x.safetensors",
            "a\\b.safetensors",
            "x.bin",
            "æ.safetensors",
            "",
        ] {
            assert!(!super::is_shard_name(bad), "{bad}");
        }
    }
}
