//! Tokenizers as transformers 5 builds them, which is not always what `tokenizer.json` says.
//!
//! `AutoTokenizer` picks a class from `tokenizer_config.json`'s `tokenizer_class`, else from
//! the config's `model_type`. Classes that define their own pipeline (`BertTokenizer`, and
//! `DistilBert`/`Electra` through it) keep only the vocabulary of `tokenizer.json` and rebuild
//! the normalizer, pre-tokenizer, decoder and post-processor from `tokenizer_config.json`'s
//! flags, with the class defaults where a flag is absent (`do_lower_case` defaults to true:
//! a cased `tokenizer.json` whose config does not say so is lowercased). Repos without a
//! `tokenizer.json` (dslim/bert-base-NER ships `vocab.txt`) are built the same way.
//! `PreTrainedTokenizerFast` / `TokenizersBackend` (EuroBERT) take `tokenizer.json` verbatim.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer as HfTokenizer};

use crate::error::{Error, Result};

/// Largest `vocab.txt` read (bert-base-multilingual's is ~1 MB).
const MAX_VOCAB_TXT: u64 = 64 << 20;

/// How a tokenizer class builds its pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `tokenizer.json` as it is.
    Verbatim,
    /// `BertTokenizer`: WordPiece, rebuilt from the flags.
    Bert,
}

/// The class `AutoTokenizer` would use: `tokenizer_class` (without `Fast`), else the model
/// type's registered class.
pub(crate) fn class(tokenizer_config: &Map<String, Value>, model_type: &str) -> Class {
    let declared = tokenizer_config.get("tokenizer_class").and_then(Value::as_str).map(|c| c.trim_end_matches("Fast"));
    match declared {
        Some("BertTokenizer" | "DistilBertTokenizer" | "ElectraTokenizer") => Class::Bert,
        Some(_) => Class::Verbatim,
        None => match model_type {
            "bert" | "distilbert" | "electra" => Class::Bert,
            _ => Class::Verbatim,
        },
    }
}

/// A string flag of `tokenizer_config.json` (special tokens are strings, or objects with a
/// `content` in older files).
fn token(cfg: &Map<String, Value>, key: &str, default: &str) -> String {
    match cfg.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).unwrap_or(default).to_string(),
        _ => default.to_string(),
    }
}

fn flag(cfg: &Map<String, Value>, key: &str) -> Option<bool> {
    cfg.get(key).and_then(Value::as_bool)
}

/// `BertTokenizer` as transformers 5 builds it from a vocabulary and `tokenizer_config.json`.
pub(crate) fn bert(vocab: HashMap<String, u32>, cfg: &Map<String, Value>, path: &Path) -> Result<HfTokenizer> {
    let fail = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let unk = token(cfg, "unk_token", "[UNK]");
    let (cls, sep) = (token(cfg, "cls_token", "[CLS]"), token(cfg, "sep_token", "[SEP]"));
    let specials: Vec<String> =
        [unk.clone(), sep.clone(), token(cfg, "pad_token", "[PAD]"), cls.clone(), token(cfg, "mask_token", "[MASK]")].into();
    let id = |t: &str| vocab.get(t).copied();
    // The class falls back to ids 2 and 3 when the vocabulary lacks the tokens.
    let (cls_id, sep_id) = (id(&cls).unwrap_or(2), id(&sep).unwrap_or(3));
    let model = WordPiece::builder()
        .vocab(vocab.iter().map(|(k, v)| (k.clone(), *v)).collect::<ahash::AHashMap<String, u32>>())
        .unk_token(unk.clone())
        .continuing_subword_prefix("##".into())
        .max_input_chars_per_word(100)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut t = HfTokenizer::new(ModelWrapper::WordPiece(model));
    let lowercase = flag(cfg, "do_lower_case").unwrap_or(true);
    t.with_normalizer(Some(BertNormalizer::new(
        true,
        flag(cfg, "tokenize_chinese_chars").unwrap_or(true),
        flag(cfg, "strip_accents"),
        lowercase,
    )))
    .map_err(|e| fail(e.to_string()))?;
    t.with_pre_tokenizer(Some(BertPreTokenizer));
    t.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| fail(e.to_string()))?
        .special_tokens(vec![(cls.clone(), cls_id), (sep.clone(), sep_id)])
        .build()
        .map_err(|e| fail(e.to_string()))?;
    t.with_post_processor(Some(template));
    // The special tokens the vocabulary has are matched whole in a text, as the class
    // registers them.
    let added: Vec<AddedToken> = specials.iter().filter(|s| vocab.contains_key(*s)).map(|s| AddedToken::from(s.clone(), true)).collect();
    t.add_special_tokens(added).map_err(|e| fail(e.to_string()))?;
    Ok(t)
}

/// The vocabulary of a `tokenizer.json`'s WordPiece model, for a class that rebuilds the rest.
pub(crate) fn wordpiece_vocab(t: &HfTokenizer, path: &Path) -> Result<HashMap<String, u32>> {
    match t.get_model() {
        ModelWrapper::WordPiece(w) => Ok(tokenizers::Model::get_vocab(w)),
        _ => Err(Error::Tokenizer {
            path: path.to_path_buf(),
            message: "tokenizer_config.json names a BERT tokenizer but tokenizer.json's model is not WordPiece".into(),
        }),
    }
}

/// `vocab.txt`: one token per line, its id the line number (a repeated token keeps the last),
/// lines split as Python's text mode does (`\n`, `\r\n` or `\r`).
pub(crate) fn read_vocab_txt(path: &Path) -> Result<HashMap<String, u32>> {
    let text = crate::files::read_text(path, MAX_VOCAB_TXT)?.replace("\r\n", "\n").replace('\r', "\n");
    let mut vocab = HashMap::new();
    for (i, line) in text.split_inclusive('\n').enumerate() {
        vocab.insert(line.strip_suffix('\n').unwrap_or(line).to_string(), i as u32);
    }
    if vocab.is_empty() {
        return Err(Error::Tokenizer { path: path.to_path_buf(), message: "is empty".into() });
    }
    Ok(vocab)
}
