//! `tokenizer.json` through the `tokenizers` crate, with the checkpoint's own post-processor
//! (special tokens exactly as the checkpoint defines them). Offsets leave this module in
//! UTF-16 code units, the unit of JavaScript strings: this is the one place they are converted.

use std::path::{Path, PathBuf};

use tokenizers::{Decoder, Tokenizer as HfTokenizer};

use crate::error::{Error, Result};
use crate::rebuild;

/// One tokenized text, unpadded.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    /// Vocabulary strings of the tokens (`ĠOslo` for byte-level BPE).
    pub tokens: Vec<String>,
    /// `[start, end)` of each token in UTF-16 code units of the input; `(0, 0)` for added
    /// special tokens.
    pub offsets: Vec<(u32, u32)>,
    /// 1 for tokens the post-processor added (BOS/EOS), 0 for tokens of the text.
    pub special_tokens_mask: Vec<u8>,
    pub attention_mask: Vec<u8>,
    /// Index of the pre-tokenizer word each token belongs to; -1 for special tokens.
    pub word_ids: Vec<i32>,
}

impl Encoded {
    pub(crate) fn empty() -> Self {
        Encoded {
            ids: Vec::new(),
            tokens: Vec::new(),
            offsets: Vec::new(),
            special_tokens_mask: Vec::new(),
            attention_mask: Vec::new(),
            word_ids: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Largest `tokenizer.json` read (EuroBERT's Llama-3 vocabulary makes ~9 MB).
const MAX_TOKENIZER_JSON: u64 = 256 << 20;
/// Largest `tokenizer_config.json` read.
const MAX_TOKENIZER_CONFIG: u64 = 16 << 20;

pub struct Tokenizer {
    inner: HfTokenizer,
    path: PathBuf,
    model_max_length: Option<usize>,
}

impl Tokenizer {
    /// The tokenizer of a model folder as transformers 5 builds it for `model_type`
    /// (`rebuild.rs`): `tokenizer.json`, or the files older repos ship (`vocab.txt`), with the
    /// flags and `model_max_length` (or the legacy `max_len`) of `tokenizer_config.json`.
    pub fn from_dir(dir: &Path, model_type: &str) -> Result<Self> {
        let config_path = dir.join("tokenizer_config.json");
        let cfg = read_tokenizer_config(&config_path)?;
        let json = dir.join("tokenizer.json");
        let class = rebuild::class(&cfg, model_type);
        let source = rebuild::files(class).iter().map(|f| dir.join(f)).find(|p| crate::files::present(p));
        let Some(path) = source else {
            let names = rebuild::files(class).join(" or ");
            return Err(Error::Tokenizer { path: json, message: format!("file not found (the tokenizer needs {names})") });
        };
        let from_json = path == json;
        // The raw JSON, for the parts a rebuilding class keeps (its vocabulary, merges, map).
        let raw = || -> Result<serde_json::Value> {
            let text = crate::files::read_text(&json, MAX_TOKENIZER_JSON)?;
            serde_json::from_str(&text).map_err(|e| Error::Tokenizer { path: json.clone(), message: e.to_string() })
        };
        let inner = match class {
            rebuild::Class::Verbatim => Self::from_file(&json)?.inner,
            rebuild::Class::Bert => {
                let vocab = if from_json {
                    rebuild::wordpiece_vocab(&Self::from_file(&json)?.inner, &json)?
                } else {
                    rebuild::read_vocab_txt(&path)?
                };
                rebuild::bert(vocab, &cfg, &path)?
            }
            rebuild::Class::Roberta => {
                let (vocab, merges) = if from_json { rebuild::bpe_parts(&raw()?, &json)? } else { rebuild::read_vocab_merges(dir)? };
                rebuild::roberta(vocab, merges, &cfg, &path)?
            }
            rebuild::Class::XlmRoberta | rebuild::Class::Camembert => {
                let (vocab, charsmap) = if from_json {
                    rebuild::unigram_parts(&raw()?, &json)?
                } else {
                    let (v, m) = rebuild::from_spm(class, crate::spm::read(&path)?, &cfg);
                    (v, Some(m))
                };
                rebuild::unigram(class, vocab, charsmap, &cfg, &path)?
            }
            rebuild::Class::DebertaV2 => {
                // The unknown id when the vocabulary has no `(unk, 0.0)`: the SentencePiece
                // trainer's, else `unk_id` from tokenizer_config.json, else the class's 1.
                let configured =
                    cfg.get("unk_id").and_then(serde_json::Value::as_u64).map_or(1, |u| usize::try_from(u).unwrap_or(usize::MAX));
                let (vocab, charsmap, unk) = if from_json {
                    let (v, m) = rebuild::unigram_parts(&raw()?, &json)?;
                    (v, m, configured)
                } else {
                    let spm = crate::spm::read(&path)?;
                    let unk = spm.unk_id as usize;
                    (spm.pieces.into_iter().map(|p| (p.piece, p.score as f64)).collect(), Some(spm.precompiled_charsmap), unk)
                };
                rebuild::deberta(vocab, charsmap, unk, &cfg, &path)?
            }
        };
        let mut t = Tokenizer { inner, path, model_max_length: None };
        t.model_max_length = model_max_length(&cfg);
        // A post-processor naming special tokens the vocabulary lacks fails on every text;
        // say so now, with the file, rather than on each call. The tokenizers crate panics
        // there (an unchecked map lookup), and a panic aborts where nothing unwinds
        // (WebAssembly): its templates are checked first, the probe is the native net.
        if let Some(missing) =
            t.inner.get_post_processor().and_then(|pp| serde_json::to_value(pp).ok()).and_then(|pp| undefined_special_token(&pp))
        {
            return Err(Error::Tokenizer {
                path: t.path.clone(),
                message: format!("its post-processor adds the special token '{missing}', which its special_tokens does not define"),
            });
        }
        let probe = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.inner.encode("Oslo", true)));
        let failure = match probe {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(panic) => Some(
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into()),
            ),
        };
        if let Some(why) = failure {
            return Err(Error::Tokenizer {
                path: t.path.clone(),
                message: format!(
                    "its post-processor cannot encode a text ({why}); are the special tokens it adds listed in its special_tokens?"
                ),
            });
        }
        Ok(t)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let fail = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
        let text = match crate::files::read_text(path, MAX_TOKENIZER_JSON) {
            Ok(t) => t,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Err(fail("file not found".into())),
            Err(Error::Io { source, .. }) => return Err(fail(source.to_string())),
            Err(e) => return Err(e),
        };
        let mut inner: HfTokenizer = text.parse().map_err(|e: tokenizers::Error| fail(e.to_string()))?;
        // Padding and truncation are decided by the caller (batches, windows), never by
        // settings saved in the file.
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| Error::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(Tokenizer { inner, path: path.to_path_buf(), model_max_length: None })
    }

    /// The tokenizer's `model_max_length`, if `tokenizer_config.json` sets one.
    pub fn model_max_length(&self) -> Option<usize> {
        self.model_max_length
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Special tokens the post-processor adds around one text (BOS and EOS: 2), which every
    /// window repeats; the stride rule counts a window's text budget without them.
    pub fn special_tokens(&self) -> usize {
        use tokenizers::PostProcessor;
        self.inner.get_post_processor().map_or(0, |p| p.added_tokens(false))
    }

    /// Size of the vocabulary including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The prefix of tokens that continue a word (`##`), for tokenizers that have one. With
    /// it, transformers' pipeline decides "is a subword" by comparing a token's string with
    /// the text it covers, instead of by the space before it.
    pub fn continuing_subword_prefix(&self) -> Option<String> {
        use tokenizers::models::ModelWrapper;
        match self.inner.get_model() {
            ModelWrapper::BPE(b) => b.get_continuing_subword_prefix().clone(),
            ModelWrapper::WordPiece(w) => Some(w.continuing_subword_prefix.clone()),
            _ => None,
        }
        .filter(|p| !p.is_empty())
    }

    /// Id of the unknown token, where the tokenizer's model has one.
    pub fn unk_token_id(&self) -> Option<u32> {
        use tokenizers::models::ModelWrapper;
        let unk = match self.inner.get_model() {
            ModelWrapper::BPE(b) => b.get_unk_token().clone(),
            ModelWrapper::WordPiece(w) => Some(w.unk_token.clone()),
            ModelWrapper::WordLevel(w) => Some(w.unk_token.clone()),
            // Unigram keeps its unknown id private; its checkpoints name the token `<unk>`.
            ModelWrapper::Unigram(_) => Some("<unk>".to_string()),
        };
        unk.and_then(|t| self.inner.token_to_id(&t))
    }

    /// The underlying `tokenizers` object (decoder, vocabulary).
    pub fn inner(&self) -> &HfTokenizer {
        &self.inner
    }

    /// Tokenizes with special tokens added by the checkpoint's post-processor.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self.inner.encode(text, true).map_err(|e| Error::Encode(e.to_string()))?;
        let to_utf16 = Utf16Index::new(text);
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            tokens: enc.get_tokens().to_vec(),
            offsets: enc.get_offsets().iter().map(|&(s, e)| (to_utf16.at(s), to_utf16.at(e))).collect(),
            special_tokens_mask: enc.get_special_tokens_mask().iter().map(|&m| m as u8).collect(),
            attention_mask: enc.get_attention_mask().iter().map(|&m| m as u8).collect(),
            word_ids: enc.get_word_ids().iter().map(|w| w.map_or(-1, |w| w as i32)).collect(),
        })
    }

    /// Decodes token strings with the checkpoint's decoder, as transformers'
    /// `convert_tokens_to_string` does (`" Oslo"` from `["ĠOslo"]`).
    pub fn decode_tokens(&self, tokens: &[String]) -> Result<String> {
        match self.inner.get_decoder() {
            Some(decoder) => decoder.decode(tokens.to_vec()).map_err(|e| Error::Encode(e.to_string())),
            None => Ok(tokens.join(" ")),
        }
    }
}

/// `tokenizer_config.json` as an object; empty when the file is absent.
fn read_tokenizer_config(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    if !crate::files::present(path) {
        return Ok(Default::default());
    }
    let text = crate::files::read_text(path, MAX_TOKENIZER_CONFIG)?;
    match serde_json::from_str(&text).map_err(|e| Error::Json { path: path.to_path_buf(), message: e.to_string() })? {
        serde_json::Value::Object(o) => Ok(o),
        _ => Err(Error::Json { path: path.to_path_buf(), message: "expected a JSON object".into() }),
    }
}

/// The first special token a post-processor's templates add without defining it, looking
/// into `Sequence` processors.
fn undefined_special_token(pp: &serde_json::Value) -> Option<String> {
    match pp.get("type").and_then(serde_json::Value::as_str) {
        Some("Sequence") => pp.get("processors")?.as_array()?.iter().find_map(undefined_special_token),
        Some("TemplateProcessing") => {
            let defined = pp.get("special_tokens").and_then(serde_json::Value::as_object);
            ["single", "pair"]
                .iter()
                .filter_map(|k| pp.get(*k).and_then(serde_json::Value::as_array))
                .flatten()
                .filter_map(|piece| piece.get("SpecialToken")?.get("id")?.as_str())
                .find(|id| !defined.is_some_and(|d| d.contains_key(*id)))
                .map(str::to_string)
        }
        _ => None,
    }
}

/// `model_max_length` (or the legacy `max_len`, which transformers still reads) of a
/// tokenizer config; `None` when unset (transformers writes ~1e30 for "unset").
fn model_max_length(cfg: &serde_json::Map<String, serde_json::Value>) -> Option<usize> {
    let get = |k: &str| cfg.get(k).and_then(serde_json::Value::as_u64).filter(|&m| m > 0 && m < 1_000_000_000);
    get("model_max_length").or_else(|| get("max_len")).map(|m| m as usize)
}

/// Maps UTF-8 byte offsets of a string to UTF-16 code-unit offsets.
struct Utf16Index {
    /// `units[b]` is the UTF-16 offset of the character that starts at or contains byte `b`;
    /// `units[len]` is the string's UTF-16 length.
    units: Vec<u32>,
}

impl Utf16Index {
    fn new(text: &str) -> Self {
        let mut units = Vec::with_capacity(text.len() + 1);
        let mut u = 0u32;
        for c in text.chars() {
            for _ in 0..c.len_utf8() {
                units.push(u);
            }
            u += c.len_utf16() as u32;
        }
        units.push(u);
        Utf16Index { units }
    }

    fn at(&self, byte: usize) -> u32 {
        self.units[byte.min(self.units.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::Utf16Index;

    #[test]
    fn utf16_index_counts_surrogate_pairs_and_multibyte_chars() {
        let text = "Ø😀e\u{301}x";
        let idx = Utf16Index::new(text);
        // bytes: Ø=2, 😀=4, e=1, U+0301=2, x=1
        assert_eq!(idx.at(0), 0);
        assert_eq!(idx.at(2), 1); // 😀 starts at unit 1
        assert_eq!(idx.at(6), 3); // e after the surrogate pair
        assert_eq!(idx.at(7), 4);
        assert_eq!(idx.at(9), 5);
        assert_eq!(idx.at(10), 6);
        assert_eq!(text.encode_utf16().count(), 6);
    }
}
