//! What the integration tests share.

use std::path::PathBuf;

/// A fresh folder for one test's files, under cargo's target/tmp: `std::env::temp_dir()` and
/// `std::process::id()` panic under WASI, where these tests also run (scripts/test-wasi.mjs).
/// The clock and a counter keep runs and tests of one process apart.
pub fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("eurobert-{name}-{now:x}-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
