//! Time per operation of the CPU forward pass, printed to stderr after each batch when the
//! environment sets `EUROBERT_PROFILE=1`. Off, a span costs one relaxed load.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

#[derive(Clone, Copy)]
pub(crate) enum Op {
    Embed,
    Norm,
    Qkv,
    Rope,
    Attention,
    Output,
    GateUp,
    Act,
    Down,
    Classifier,
    /// Activations to int8 (inside the projections' own times).
    Quantize,
}

const NAMES: [&str; 11] = ["embed", "norm", "qkv", "rope", "attention", "output", "gate_up", "act", "down", "classifier", "quantize"];

static TOTALS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];

pub(crate) fn enabled() -> bool {
    static ON: OnceLock<AtomicBool> = OnceLock::new();
    ON.get_or_init(|| AtomicBool::new(std::env::var("EUROBERT_PROFILE").is_ok_and(|v| v == "1"))).load(Ordering::Relaxed)
}

/// Adds the time until it is dropped to `op`'s total.
pub(crate) struct Span(Option<(Op, Instant)>);

pub(crate) fn span(op: Op) -> Span {
    Span(enabled().then(|| (op, Instant::now())))
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((op, t)) = self.0 {
            TOTALS[op as usize].fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

/// Prints and resets the totals.
pub(crate) fn report(tokens: usize, sequences: usize) {
    if !enabled() {
        return;
    }
    let parts: Vec<String> =
        NAMES.iter().zip(&TOTALS).map(|(n, t)| format!("{n} {:.2}", t.swap(0, Ordering::Relaxed) as f64 / 1e6)).collect();
    eprintln!("eurobert profile ({tokens} tokens, {sequences} sequences), ms: {}", parts.join(", "));
}
