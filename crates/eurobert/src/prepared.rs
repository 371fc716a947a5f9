//! A call's texts tokenized and cut into windows, before any forward pass: what each window
//! will cost (its tokens, special tokens included) is known here, so a caller can check a
//! budget first, and run the windows in pieces that interleave with other callers' work.

use std::ops::Range;

use crate::classifier::{ScoredText, ScoredWindow};
use crate::error::{Error, Result};
use crate::tokenize::Encoded;
use crate::windows::Window;

struct Text {
    encoded: Encoded,
    /// Special tokens before and after the content (each window repeats them).
    prefix: usize,
    suffix: usize,
    windows: Vec<Window>,
}

/// Tokenized texts and their windows; logits are stored per window as pieces are run. Window
/// ids are built when a piece runs, so preparing holds the tokenization only, whatever the
/// windows' overlap (which a budget may then refuse).
pub struct Prepared {
    texts: Vec<Text>,
    /// Text of each window: texts in order, windows in order.
    owner: Vec<usize>,
    /// Index of each text's first window, and the window count at the end.
    first: Vec<usize>,
    /// All rows of each window's logits, once its piece has run.
    logits: Vec<Option<Vec<f32>>>,
    num_labels: usize,
    /// Store softmax probabilities instead of logits (`keep_probabilities`).
    probabilities: bool,
}

impl Prepared {
    pub(crate) fn new(num_labels: usize) -> Self {
        Prepared { texts: Vec::new(), owner: Vec::new(), first: vec![0], logits: Vec::new(), num_labels, probabilities: false }
    }

    /// Adds a text with its windows over `encoded`, whose first `prefix` and last `suffix`
    /// tokens are special tokens.
    pub(crate) fn push(&mut self, encoded: Encoded, prefix: usize, suffix: usize, windows: Vec<Window>) {
        let t = self.texts.len();
        self.owner.extend(std::iter::repeat_n(t, windows.len()));
        self.logits.extend(std::iter::repeat_n(None, windows.len()));
        self.texts.push(Text { encoded, prefix, suffix, windows });
        self.first.push(self.owner.len());
    }

    pub fn text_count(&self) -> usize {
        self.texts.len()
    }

    pub fn window_count(&self) -> usize {
        self.owner.len()
    }

    fn window(&self, i: usize) -> (&Text, &Window) {
        let t = &self.texts[self.owner[i]];
        (t, &t.windows[i - self.first[self.owner[i]]])
    }

    /// Tokens window `i` runs, special tokens included.
    pub fn window_len(&self, i: usize) -> usize {
        let (t, w) = self.window(i);
        t.prefix + (w.to - w.from) + t.suffix
    }

    /// The windows of text `t`.
    pub fn text_windows(&self, t: usize) -> Range<usize> {
        self.first[t]..self.first[t + 1]
    }

    /// Tokens of text `t`'s whole tokenization, special tokens included.
    pub fn text_tokens(&self, t: usize) -> usize {
        self.texts[t].encoded.len()
    }

    /// What running the windows of `texts` costs: the tokens of those windows.
    pub fn cost(&self, texts: Range<usize>) -> usize {
        (self.first[texts.start]..self.first[texts.end]).map(|i| self.window_len(i)).sum()
    }

    /// The ids of window `i`: the text's leading special tokens, the window's content, the
    /// trailing special tokens.
    pub fn sequence(&self, i: usize) -> Vec<u32> {
        let (t, w) = self.window(i);
        let (ids, n) = (&t.encoded.ids, t.encoded.len());
        let mut out = Vec::with_capacity(self.window_len(i));
        out.extend_from_slice(&ids[..t.prefix]);
        out.extend_from_slice(&ids[w.from..w.to]);
        out.extend_from_slice(&ids[n - t.suffix..]);
        out
    }

    /// From now on each window keeps its rows' softmax probabilities instead of its logits
    /// (the NER pipeline's scores), computed where the window ran, off JavaScript's thread.
    pub fn keep_probabilities(&mut self) {
        self.probabilities = true;
    }

    /// Stores the logits of window `i` (all its rows, `tokens × num_labels`).
    pub fn store(&mut self, i: usize, mut logits: Vec<f32>) -> Result<()> {
        let want = self.window_len(i) * self.num_labels;
        if logits.len() != want {
            return Err(Error::Compute(format!("window {i} got {} logits, expected {want}", logits.len())));
        }
        if self.probabilities {
            softmax_rows(&mut logits, self.num_labels);
        }
        self.logits[i] = Some(logits);
        Ok(())
    }

    /// The scored texts `texts`, moved out: every one of their windows must have run. Their
    /// logits keep the content rows only (special tokens never become entities).
    pub fn take(&mut self, texts: Range<usize>) -> Result<Vec<ScoredText>> {
        let mut out = Vec::with_capacity(texts.len());
        self.drain(texts, |encoded, windows| {
            let windows = windows.into_iter().map(|(window, rows)| ScoredWindow { window, logits: rows.to_vec() }).collect();
            out.push(ScoredText { encoded, windows });
            Ok(())
        })?;
        Ok(out)
    }

    /// Moves `texts` out one by one, each with its windows and their content rows (read where
    /// they are stored): what `take` and `take_packed` share. Every window must have run.
    fn drain(&mut self, texts: Range<usize>, mut visit: impl FnMut(Encoded, Vec<(Window, &[f32])>) -> Result<()>) -> Result<()> {
        let l = self.num_labels;
        let windows = self.first[texts.start]..self.first[texts.end];
        if let Some(i) = windows.clone().find(|&i| self.logits[i].is_none()) {
            return Err(Error::InvalidArgument(format!("window {i} has not run (or was taken already)")));
        }
        for t in texts {
            let text = &mut self.texts[t];
            let first = self.first[t];
            let stored: Vec<Vec<f32>> = (first..first + text.windows.len()).map(|i| self.logits[i].take().unwrap_or_default()).collect();
            let windows = std::mem::take(&mut text.windows)
                .into_iter()
                .zip(&stored)
                .map(|(window, all)| {
                    let rows = &all[text.prefix * l..(text.prefix + window.to - window.from) * l];
                    (window, rows)
                })
                .collect();
            visit(std::mem::replace(&mut text.encoded, Encoded::empty()), windows)?;
        }
        Ok(())
    }
}

/// The scored texts of `Prepared::take_packed`, in a few flat arrays: what crosses to
/// JavaScript in one piece (a typed array per text and per window cost more there than the
/// pipeline's whole aggregation).
#[derive(Debug, Default)]
pub struct PackedScores {
    /// Token ids of the texts, one after another: text t's are `token_starts[t]..token_starts[t + 1]`.
    pub ids: Vec<u32>,
    /// `[start, end]` of each token, in UTF-16 code units of its text.
    pub offsets: Vec<u32>,
    pub token_starts: Vec<u32>,
    /// Vocabulary strings of every token, when asked for.
    pub tokens: Vec<String>,
    /// `WINDOW_FIELDS` numbers per window: its text (counted from the first one taken), its
    /// content tokens `from`, `to`, the positions it owns `[from, to)`, and where its rows
    /// start in `scores`.
    pub windows: Vec<u32>,
    /// The content rows of every window, `(to - from) × num_labels` each: logits, or
    /// probabilities after `keep_probabilities`.
    pub scores: Vec<f32>,
}

/// Numbers per window in `PackedScores::windows`.
pub const WINDOW_FIELDS: usize = 6;

impl Prepared {
    /// `take` packed into flat arrays (`PackedScores`), token strings only `with_tokens`; the
    /// rows are copied from where they are stored, once.
    pub fn take_packed(&mut self, texts: Range<usize>, with_tokens: bool) -> Result<PackedScores> {
        let mut out = PackedScores::default();
        let u32_of = |n: usize, what: &str| u32::try_from(n).map_err(|_| Error::TooLarge(format!("{what}: {n} does not fit 32 bits")));
        out.token_starts.push(0);
        let mut t = 0;
        self.drain(texts, |encoded, windows| {
            for (w, rows) in windows {
                out.windows.extend([
                    u32_of(t, "texts")?,
                    u32_of(w.from, "tokens")?,
                    u32_of(w.to, "tokens")?,
                    u32_of(w.owns.0, "tokens")?,
                    u32_of(w.owns.1, "tokens")?,
                    u32_of(out.scores.len(), "scores")?,
                ]);
                out.scores.extend_from_slice(rows);
            }
            out.ids.extend_from_slice(&encoded.ids);
            out.offsets.extend(encoded.offsets.iter().flat_map(|&(s, e)| [s, e]));
            if with_tokens {
                out.tokens.extend(encoded.tokens);
            }
            out.token_starts.push(u32_of(out.ids.len(), "tokens")?);
            t += 1;
            Ok(())
        })?;
        u32_of(out.scores.len(), "scores")?;
        Ok(out)
    }
}

/// Row-wise softmax of `num_labels`-wide rows in place, as the NER pipeline's JavaScript
/// computed it and numpy's float32 does: max-shifted, each exponential rounded to float32, a
/// float32 running sum, then each divided (a NaN logit makes its row NaN, as `Math.max` does).
pub fn softmax_rows(rows: &mut [f32], num_labels: usize) {
    if num_labels == 0 {
        return;
    }
    for row in rows.chunks_exact_mut(num_labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| if m.is_nan() || x.is_nan() { f32::NAN } else { m.max(x) });
        let mut sum = 0f32;
        for x in row.iter_mut() {
            *x = f64::from(*x - max).exp() as f32;
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::softmax_rows;

    #[test]
    fn softmax_rows_match_the_formula_and_keep_nan_rows_nan() {
        let mut rows = vec![1.0f32, 2.0, 3.0, 0.5, f32::NAN, 0.0];
        softmax_rows(&mut rows, 3);
        let e: Vec<f32> = [-2.0f64, -1.0, 0.0].iter().map(|x| x.exp() as f32).collect();
        let sum = e[0] + e[1] + e[2];
        assert_eq!(&rows[..3], &[e[0] / sum, e[1] / sum, e[2] / sum]);
        assert!(rows[3..].iter().all(|x| x.is_nan()));
    }
}
