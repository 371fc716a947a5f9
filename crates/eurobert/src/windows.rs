//! Overlapping windows over a long text's tokens, as the tokenizers library makes them for
//! transformers' `stride`: the content tokens (without the special tokens the post-processor
//! adds at either end) are cut into pieces of `max_length - specials` tokens, each starting
//! `budget - stride` after the previous one, until a piece reaches the end; every piece gets
//! the special tokens.

use crate::error::{Error, Result};

/// One window: content tokens `[from, to)` (positions in the whole tokenization), and the
/// positions `[owns.0, owns.1)` it is the reference for where windows overlap (the half of
/// each overlap nearer its own middle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: usize,
    pub to: usize,
    pub owns: (usize, usize),
}

/// Windows over a tokenization of `n` tokens whose first `prefix` and last `suffix` are
/// special tokens. `stride` defaults to a quarter of the content a window holds.
///
/// The stride rule is the tokenizers library's, which transformers' pipeline inherits: a stride
/// above the window's text budget is refused whatever the text (the check made when truncation
/// is set); a stride equal to it only when the text must be cut (the check made when cutting).
pub fn windows(n: usize, prefix: usize, suffix: usize, max_length: usize, stride: Option<usize>) -> Result<Vec<Window>> {
    let content = n - prefix - suffix;
    let budget = max_length.saturating_sub(prefix + suffix);
    let too_large =
        |stride: usize| Error::InvalidArgument(format!("stride must be less than the {budget} text tokens a window holds, got {stride}"));
    if let Some(stride) = stride.filter(|&s| s > budget) {
        return Err(too_large(stride));
    }
    if content <= budget {
        return Ok(vec![Window { from: prefix, to: prefix + content, owns: (prefix, prefix + content) }]);
    }
    if let Some(stride) = stride.filter(|&s| s >= budget) {
        return Err(too_large(stride));
    }
    if budget < 1 {
        return Err(Error::InvalidArgument(format!(
            "maxLength {max_length} leaves no room for text beside {} special tokens",
            prefix + suffix
        )));
    }
    let stride = stride.unwrap_or(budget / 4);
    let step = budget - stride;
    let count = (content - budget).div_ceil(step) + 1;
    let ranges: Vec<(usize, usize)> = (0..count).map(|k| (k * step, (k * step + budget).min(content))).collect();
    Ok(ranges
        .iter()
        .enumerate()
        .map(|(k, &(from, to))| {
            let own_from = if k == 0 { 0 } else { (from + ranges[k - 1].1) / 2 };
            let own_to = if k == count - 1 { content } else { (ranges[k + 1].0 + to) / 2 };
            Window { from: prefix + from, to: prefix + to, owns: (prefix + own_from, prefix + own_to) }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_tokenizers_overflow_rule() {
        // 1 BOS + 10 content + 1 EOS, windows of 6 tokens (4 content), stride 1: step 3.
        let w = windows(12, 1, 1, 6, Some(1)).unwrap();
        let spans: Vec<(usize, usize)> = w.iter().map(|w| (w.from, w.to)).collect();
        assert_eq!(spans, vec![(1, 5), (4, 8), (7, 11)]);
        // Ownership splits each overlap and covers every content token exactly once.
        let owns: Vec<(usize, usize)> = w.iter().map(|w| w.owns).collect();
        assert_eq!(owns, vec![(1, 4), (4, 7), (7, 11)]);
        // A text that fits is one window owning everything.
        assert_eq!(windows(5, 1, 0, 8, None).unwrap(), vec![Window { from: 1, to: 5, owns: (1, 5) }]);
    }

    #[test]
    fn any_stride_below_the_window_budget_is_taken_as_transformers_takes_it() {
        // transformers (the tokenizers overflow rule) accepts stride < max_length - specials.
        let w = windows(1102, 1, 0, 512, Some(510)).unwrap();
        assert_eq!(w.len(), 1101 - 511 + 1, "one token per step");
        assert!(w.windows(2).all(|p| p[1].from == p[0].from + 1));
        assert!(windows(1102, 1, 0, 512, Some(511)).unwrap_err().to_string().contains("less than the 511"));
        // A stride above the budget is refused for a short text too (the setting's check); one
        // equal to it only when the text must be cut (measured with transformers 5.25).
        assert!(windows(10, 1, 1, 512, Some(511)).unwrap_err().to_string().contains("less than the 510"));
        assert_eq!(windows(10, 1, 1, 512, Some(510)).unwrap().len(), 1);
        assert_eq!(windows(16, 1, 1, 20, Some(18)).unwrap().len(), 1);
        assert!(windows(16, 1, 1, 12, Some(10)).unwrap_err().to_string().contains("less than the 10"));
        assert_eq!(windows(16, 1, 1, 12, Some(9)).unwrap().len(), 5);
    }
}
