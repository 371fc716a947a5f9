//! Opening the files of a model folder: regular files only (a FIFO would block a worker
//! forever, `/dev/zero` would never end) and JSON read under a size cap.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Opens `path` for reading if it is (or links to) a regular file.
pub(crate) fn open_regular(path: &Path) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("is {what}"))));
    }
    File::open(path).map_err(|e| Error::io(path, e))
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
    std::fs::symlink_metadata(path).is_ok()
}
