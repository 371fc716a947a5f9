//! Which sequences share a forward pass: longest first (as text-embeddings-inference sorts
//! its queue), each batch capped by a sequence count and a token budget, so memory is bounded
//! by tokens, whatever the lengths.

/// How a batch is laid out, which decides what its tokens cost.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Sequences end to end: a batch costs the sum of its lengths.
    Packed,
    /// Right-padded rows: a batch costs rows × its longest length.
    Padded,
}

/// Indices of `lengths` grouped into batches. Every non-empty sequence is in exactly one
/// batch; a sequence longer than the budget runs alone. Empty sequences are left out.
pub(crate) fn plan(lengths: &[usize], max_sequences: usize, max_tokens: usize, layout: Layout) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&i| lengths[i] > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut tokens = 0;
    for i in order {
        let len = lengths[i];
        let cost = match layout {
            Layout::Packed => tokens + len,
            // Longest first: the batch's first row sets its padded length.
            Layout::Padded => (current.len() + 1) * current.first().map_or(len, |&f| lengths[f]),
        };
        if !current.is_empty() && (current.len() >= max_sequences || cost > max_tokens) {
            batches.push(std::mem::take(&mut current));
            tokens = 0;
        }
        current.push(i);
        tokens += len;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_both_caps_and_cover_every_sequence_once() {
        let lengths = [5, 0, 9, 3, 9, 1, 12, 4];
        let packed = plan(&lengths, 3, 16, Layout::Packed);
        assert_eq!(packed, vec![vec![6], vec![2], vec![4, 0], vec![7, 3, 5]]);
        let padded = plan(&lengths, 8, 20, Layout::Padded);
        assert_eq!(padded, vec![vec![6], vec![2, 4], vec![0, 7, 3, 5]]);
        let mut seen: Vec<usize> = plan(&lengths, 2, 10, Layout::Packed).concat();
        seen.sort();
        assert_eq!(seen, vec![0, 2, 3, 4, 5, 6, 7]);
        // A sequence over the budget still runs, alone.
        assert_eq!(plan(&[50, 2], 4, 10, Layout::Packed), vec![vec![0], vec![1]]);
    }
}
