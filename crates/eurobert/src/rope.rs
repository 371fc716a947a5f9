//! RoPE tables, built only as long as the longest sequence run so far (a config claiming
//! millions of positions costs nothing until such a sequence arrives).

use std::sync::{Arc, Mutex};

/// cos/sin of `position * inv_freq` for positions `0..len`, `half = head_dim / 2` per row,
/// each step rounded to f32 as transformers computes it
/// (`inv_freq = 1 / theta^(arange(0, d, 2) / d)`; `freqs = pos.float() * inv_freq`).
pub(crate) struct RopeTable {
    pub half: usize,
    pub len: usize,
    pub cos: Vec<f32>,
    pub sin: Vec<f32>,
}

impl RopeTable {
    fn new(head_dim: usize, theta: f64, len: usize) -> Self {
        let half = head_dim / 2;
        let theta = theta as f32;
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0f32 / theta.powf((2 * i) as f32 / head_dim as f32)).collect();
        let mut cos = Vec::with_capacity(len * half);
        let mut sin = Vec::with_capacity(len * half);
        for pos in 0..len {
            for &f in &inv_freq {
                let angle = pos as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        RopeTable { half, len, cos, sin }
    }

    pub fn cos_at(&self, pos: usize) -> &[f32] {
        &self.cos[pos * self.half..(pos + 1) * self.half]
    }

    pub fn sin_at(&self, pos: usize) -> &[f32] {
        &self.sin[pos * self.half..(pos + 1) * self.half]
    }
}

/// The table shared by every forward pass of a model, regrown on demand.
pub(crate) struct Rope {
    head_dim: usize,
    theta: f64,
    max_len: usize,
    table: Mutex<Arc<RopeTable>>,
}

impl Rope {
    pub fn new(head_dim: usize, theta: f64, max_len: usize) -> Self {
        Rope { head_dim, theta, max_len, table: Mutex::new(Arc::new(RopeTable::new(head_dim, theta, 0))) }
    }

    /// A table covering positions `0..len` (`len <= max_len`, checked by the caller).
    pub fn table(&self, len: usize) -> Arc<RopeTable> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if t.len < len {
            // Grow geometrically so a stream of ever longer texts rebuilds it O(log n) times.
            let target = len.max(2 * t.len).max(64).min(self.max_len.max(len));
            *t = Arc::new(RopeTable::new(self.head_dim, self.theta, target));
        }
        t.clone()
    }
}
