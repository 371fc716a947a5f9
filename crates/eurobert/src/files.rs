//! Opening the files of a model folder: regular files only (a FIFO would block a worker
//! forever, `/dev/zero` would never end) and JSON read under a size cap.
//!
//! A model can also be a folder in memory (files given as bytes: a browser has no disk).
//! While such a model loads, [`in_memory`] makes every read of this module on that thread
//! come from its files, and nothing else: no path under it ever reaches the disk.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// The folder name a model in memory has in paths and messages.
pub const MEMORY_FOLDER: &str = "(in memory)";

/// A model folder's files as bytes, by plain file name.
#[derive(Default, Clone)]
pub struct MemoryFolder {
    files: HashMap<String, Arc<Vec<u8>>>,
}

impl MemoryFolder {
    /// Adds a file. Names are plain file names (`config.json`, `model-00001-of-00002.safetensors`),
    /// never paths: they become paths under the folder.
    pub fn insert(&mut self, name: &str, bytes: Vec<u8>) -> Result<()> {
        let plain = !name.is_empty()
            && name.len() <= 255
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain {
            return Err(Error::io(
                &Path::new(MEMORY_FOLDER).join(name),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "is not a plain file name ([A-Za-z0-9._-], not starting with '.')"),
            ));
        }
        if self.files.insert(name.to_string(), Arc::new(bytes)).is_some() {
            return Err(Error::io(
                &Path::new(MEMORY_FOLDER).join(name),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "is given twice"),
            ));
        }
        Ok(())
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }
}

thread_local! {
    static MEMORY: RefCell<Option<MemoryFolder>> = const { RefCell::new(None) };
}

/// Runs `f` with `folder` as the model folder [`MEMORY_FOLDER`] on this thread.
pub fn in_memory<T>(folder: MemoryFolder, f: impl FnOnce(&Path) -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            MEMORY.with(|m| m.borrow_mut().take());
        }
    }
    MEMORY.with(|m| *m.borrow_mut() = Some(folder));
    let _reset = Reset;
    f(Path::new(MEMORY_FOLDER))
}

/// `Some(file or None)` while a folder in memory loads: its file at `path`, if any.
fn memory_file(path: &Path) -> Option<Option<Arc<Vec<u8>>>> {
    MEMORY.with(|m| {
        let m = m.borrow();
        let folder = m.as_ref()?;
        let name = path.strip_prefix(MEMORY_FOLDER).ok().and_then(|p| p.to_str());
        Some(name.and_then(|n| folder.files.get(n).cloned()))
    })
}

/// Whether `path` is a model folder: a folder on disk, or the one in memory while it loads.
pub(crate) fn is_dir(path: &Path) -> bool {
    match MEMORY.with(|m| m.borrow().is_some()) {
        true => path == Path::new(MEMORY_FOLDER),
        false => path.is_dir(),
    }
}

/// An opened file: on disk, or bytes of a folder in memory.
pub(crate) enum Opened {
    File(File),
    Memory(Arc<Vec<u8>>, usize),
}

impl Opened {
    pub(crate) fn len(&self, path: &Path) -> Result<u64> {
        match self {
            Opened::File(f) => Ok(f.metadata().map_err(|e| Error::io(path, e))?.len()),
            Opened::Memory(b, _) => Ok(b.len() as u64),
        }
    }
}

impl Read for Opened {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Opened::File(f) => f.read(buf),
            Opened::Memory(b, at) => {
                let n = buf.len().min(b.len() - *at);
                buf[..n].copy_from_slice(&b[*at..*at + n]);
                *at += n;
                Ok(n)
            }
        }
    }
}

/// Opens `path` for reading if it is (or links to) a regular file.
pub(crate) fn open_regular(path: &Path) -> Result<Opened> {
    if let Some(file) = memory_file(path) {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "was not given");
        return file.map(|b| Opened::Memory(b, 0)).ok_or_else(|| Error::io(path, missing()));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {what}"))));
    }
    File::open(path).map(Opened::File).map_err(|e| Error::io(path, e))
}

/// Reads a UTF-8 text file of at most `cap` bytes.
pub(crate) fn read_text(path: &Path, cap: u64) -> Result<String> {
    let file = open_regular(path)?;
    let mut text = String::new();
    // One byte past the cap tells a file that is too long from one that is exactly the cap.
    file.take(cap + 1).read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
    if text.len() as u64 > cap {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("is larger than {} MB, too large for this kind of file", cap >> 20),
            ),
        ));
    }
    Ok(text)
}

/// Whether anything (even a dangling or looping symlink) is at `path`: such a link is an
/// error to report when read, not a file to treat as absent.
pub(crate) fn present(path: &Path) -> bool {
    if let Some(file) = memory_file(path) {
        return file.is_some();
    }
    std::fs::symlink_metadata(path).is_ok()
}
