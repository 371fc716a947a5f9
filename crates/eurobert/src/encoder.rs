//! What the token classifier asks of a forward pass, whichever backend computes it.

use crate::batching::Layout;
use crate::cancel::Cancel;
use crate::error::Result;

/// A EuroBERT encoder with its classification head. Ids and lengths are validated by the
/// caller (`TokenClassifier`): every id is inside the vocabulary, every sequence is non-empty
/// and within the model's positions.
pub(crate) trait Encoder: Send + Sync {
    /// How this encoder lays a batch out, which decides what a batch's tokens cost.
    fn layout(&self) -> Layout;

    /// Logits of each sequence, `(tokens, num_labels)` row-major, concatenated in batch order.
    /// Runs inside the model's thread pool; returns `Error::Cancelled` at the first layer
    /// boundary after `cancel` is set.
    fn forward(&self, sequences: &[&[u32]], cancel: &Cancel) -> Result<Vec<f32>>;

    /// Bytes of weights the encoder holds (on its device).
    fn weight_bytes(&self) -> usize;
}
