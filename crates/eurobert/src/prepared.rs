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
}

impl Prepared {
    pub(crate) fn new(num_labels: usize) -> Self {
        Prepared { texts: Vec::new(), owner: Vec::new(), first: vec![0], logits: Vec::new(), num_labels }
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

    /// Stores the logits of window `i` (all its rows, `tokens × num_labels`).
    pub fn store(&mut self, i: usize, logits: Vec<f32>) -> Result<()> {
        let want = self.window_len(i) * self.num_labels;
        if logits.len() != want {
            return Err(Error::Compute(format!("window {i} got {} logits, expected {want}", logits.len())));
        }
        self.logits[i] = Some(logits);
        Ok(())
    }

    /// The scored texts `texts`, moved out: every one of their windows must have run. Their
    /// logits keep the content rows only (special tokens never become entities).
    pub fn take(&mut self, texts: Range<usize>) -> Result<Vec<ScoredText>> {
        let l = self.num_labels;
        let windows = self.first[texts.start]..self.first[texts.end];
        if let Some(i) = windows.clone().find(|&i| self.logits[i].is_none()) {
            return Err(Error::InvalidArgument(format!("window {i} has not run (or was taken already)")));
        }
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let text = &mut self.texts[t];
            let prefix = text.prefix;
            let first = self.first[t];
            let windows = std::mem::take(&mut text.windows)
                .into_iter()
                .enumerate()
                .map(|(k, window)| {
                    let all = self.logits[first + k].take().unwrap_or_default();
                    let logits = all[prefix * l..(prefix + window.to - window.from) * l].to_vec();
                    ScoredWindow { window, logits }
                })
                .collect();
            let encoded = std::mem::replace(&mut text.encoded, Encoded::empty());
            out.push(ScoredText { encoded, windows });
        }
        Ok(out)
    }
}
