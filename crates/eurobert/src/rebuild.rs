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

/// A BPE vocabulary and its merges.
pub(crate) type BpeParts = (HashMap<String, u32>, Vec<(String, String)>);
/// A Unigram vocabulary (`(piece, score)` in id order) and its SentencePiece character map.
pub(crate) type UnigramParts = (Vec<(String, f64)>, Option<Vec<u8>>);

/// How a tokenizer class builds its pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// `tokenizer.json` as it is.
    Verbatim,
    /// `BertTokenizer`: WordPiece, rebuilt from the flags.
    Bert,
    /// `RobertaTokenizer`: byte-level BPE (`vocab.json` + `merges.txt`, or tokenizer.json's).
    Roberta,
    /// `XLMRobertaTokenizer`: Unigram (`sentencepiece.bpe.model`, or tokenizer.json's) in
    /// fairseq's id order.
    XlmRoberta,
    /// `CamembertTokenizer`: Unigram, with its `NOTUSED` placeholders.
    Camembert,
    /// `DebertaV2Tokenizer`: Unigram over `spm.model`'s pieces as they are, with its own
    /// normalizers and `[CLS] A [SEP]`.
    DebertaV2,
}

/// The class `AutoTokenizer` would use: `tokenizer_class` (without `Fast`), else the model
/// type's registered class.
pub(crate) fn class(tokenizer_config: &Map<String, Value>, model_type: &str) -> Class {
    let declared = tokenizer_config.get("tokenizer_class").and_then(Value::as_str).map(|c| c.trim_end_matches("Fast"));
    match declared {
        Some("BertTokenizer" | "DistilBertTokenizer" | "ElectraTokenizer") => Class::Bert,
        Some("RobertaTokenizer") => Class::Roberta,
        Some("XLMRobertaTokenizer") => Class::XlmRoberta,
        Some("CamembertTokenizer") => Class::Camembert,
        Some("DebertaV2Tokenizer") => Class::DebertaV2,
        Some(_) => Class::Verbatim,
        None => match model_type {
            "bert" | "distilbert" | "electra" => Class::Bert,
            "roberta" => Class::Roberta,
            "xlm-roberta" => Class::XlmRoberta,
            "camembert" => Class::Camembert,
            "deberta-v2" => Class::DebertaV2,
            _ => Class::Verbatim,
        },
    }
}

/// The files a class can be built from, in the order transformers prefers them.
pub(crate) fn files(class: Class) -> &'static [&'static str] {
    match class {
        Class::Verbatim => &["tokenizer.json"],
        Class::Bert => &["tokenizer.json", "vocab.txt"],
        Class::Roberta => &["tokenizer.json", "vocab.json"],
        Class::XlmRoberta | Class::Camembert => &["tokenizer.json", "sentencepiece.bpe.model"],
        Class::DebertaV2 => &["tokenizer.json", "spm.model"],
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

fn specials(cfg: &Map<String, Value>) -> [String; 7] {
    [
        token(cfg, "bos_token", "<s>"),
        token(cfg, "eos_token", "</s>"),
        token(cfg, "sep_token", "</s>"),
        token(cfg, "cls_token", "<s>"),
        token(cfg, "unk_token", "<unk>"),
        token(cfg, "pad_token", "<pad>"),
        token(cfg, "mask_token", "<mask>"),
    ]
}

/// Registers the special tokens a vocabulary has, as the class does (they match whole).
fn add_specials(t: &mut HfTokenizer, names: &[String], has: impl Fn(&str) -> bool, path: &Path) -> Result<()> {
    let mut seen = Vec::new();
    for s in names {
        if has(s) && !seen.contains(s) {
            seen.push(s.clone());
        }
    }
    let added: Vec<AddedToken> = seen.into_iter().map(|s| AddedToken::from(s, true)).collect();
    t.add_special_tokens(added).map_err(|e| Error::Tokenizer { path: path.to_path_buf(), message: e.to_string() })?;
    Ok(())
}

/// `RobertaTokenizer` as transformers 5 builds it: byte-level BPE with no unknown token,
/// `RobertaProcessing` (`<s> A </s>`, offsets trimmed of the leading space).
pub(crate) fn roberta(
    vocab: HashMap<String, u32>,
    merges: Vec<(String, String)>,
    cfg: &Map<String, Value>,
    path: &Path,
) -> Result<HfTokenizer> {
    use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;
    let fail = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let [bos, eos, sep, cls, unk, pad, mask] = specials(cfg);
    let add_prefix_space = flag(cfg, "add_prefix_space").unwrap_or(false);
    let trim_offsets = flag(cfg, "trim_offsets").unwrap_or(true);
    let model = BPE::builder()
        .vocab_and_merges(vocab.iter().map(|(k, v)| (k.clone(), *v)).collect::<ahash::AHashMap<String, u32>>(), merges)
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix(String::new())
        .fuse_unk(false)
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let mut t = HfTokenizer::new(ModelWrapper::BPE(model));
    t.with_pre_tokenizer(Some(ByteLevel::new(add_prefix_space, true, true)));
    t.with_decoder(Some(ByteLevelDecoder::default()));
    let id = |tok: &str| vocab.get(tok).copied().ok_or_else(|| fail(format!("the vocabulary has no '{tok}'")));
    let processor = RobertaProcessing::new((sep.clone(), id(&sep)?), (cls.clone(), id(&cls)?))
        .trim_offsets(trim_offsets)
        .add_prefix_space(add_prefix_space);
    t.with_post_processor(Some(processor));
    add_specials(&mut t, &[bos, eos, sep, cls, unk, pad, mask], |s| vocab.contains_key(s), path)?;
    Ok(t)
}

/// `XLMRobertaTokenizer` / `CamembertTokenizer` as transformers 5 builds them: Unigram over
/// `(piece, score)` in the model's id order, the SentencePiece character map as the
/// normalizer, whitespace split then Metaspace, and `<s> A </s>`.
pub(crate) fn unigram(
    class: Class,
    vocab: Vec<(String, f64)>,
    charsmap: Option<Vec<u8>>,
    cfg: &Map<String, Value>,
    path: &Path,
) -> Result<HfTokenizer> {
    use tokenizers::models::unigram::Unigram;
    use tokenizers::normalizers::Precompiled;
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::processors::template::TemplateProcessing;
    let fail = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let [bos, eos, sep, cls, unk, pad, mask] = specials(cfg);
    // XLM-R fixes the unknown id at 3; CamemBERT looks its unknown token up.
    let unk_id = match class {
        Class::Camembert => vocab.iter().position(|(t, _)| *t == unk).unwrap_or(0),
        _ => 3,
    };
    if unk_id >= vocab.len() {
        return Err(fail(format!("the vocabulary has {} pieces, none at the unknown id {unk_id}", vocab.len())));
    }
    let ids: HashMap<String, u32> = vocab.iter().enumerate().rev().map(|(i, (t, _))| (t.clone(), i as u32)).collect();
    let model = Unigram::from(vocab, Some(unk_id), false).map_err(|e| fail(e.to_string()))?;
    let mut t = HfTokenizer::new(ModelWrapper::Unigram(model));
    if let Some(map) = charsmap.filter(|m| !m.is_empty()) {
        let p = Precompiled::from(&map).map_err(|e| fail(format!("its precompiled character map is unreadable: {e}")))?;
        t.with_normalizer(Some(p)).map_err(|e| fail(e.to_string()))?;
    }
    let scheme = if flag(cfg, "add_prefix_space").unwrap_or(true) { PrependScheme::Always } else { PrependScheme::Never };
    let pre: Vec<tokenizers::PreTokenizerWrapper> = vec![WhitespaceSplit.into(), Metaspace::new('▁', scheme, true).into()];
    t.with_pre_tokenizer(Some(Sequence::new(pre)));
    t.with_decoder(Some(Metaspace::new('▁', scheme, true)));
    let id = |tok: &str| ids.get(tok).copied().ok_or_else(|| fail(format!("the vocabulary has no '{tok}'")));
    let template = TemplateProcessing::builder()
        .try_single(format!("{bos} $A {eos}"))
        .and_then(|b| b.try_pair(format!("{bos} $A {eos} {eos} $B {eos}")))
        .map_err(|e| fail(e.to_string()))?
        .special_tokens(vec![(bos.clone(), id(&bos)?), (eos.clone(), id(&eos)?)])
        .build()
        .map_err(|e| fail(e.to_string()))?;
    t.with_post_processor(Some(template));
    let mut names = vec![bos, eos, sep, cls, unk, pad, mask];
    if class == Class::Camembert {
        names.extend(["<s>NOTUSED", "</s>NOTUSED", "<unk>NOTUSED"].map(String::from));
    }
    add_specials(&mut t, &names, |s| ids.contains_key(s), path)?;
    Ok(t)
}

/// `DebertaV2Tokenizer` as transformers 5 builds it: Unigram over the vocabulary as it is
/// (the unknown id: that of `(unk_token, 0.0)`, else `unk_id`); normalizers `[Lowercase]` then
/// the character map, a right strip and runs of spaces made one (or, without a map, whitespace
/// runs and `\n\r\t` made one space, NFC and a right strip); `[Punctuation]` then Metaspace;
/// `[CLS] A [SEP]`. Every special token is added whole, as a new id where the vocabulary lacks
/// it (deberta-v3's `[MASK]` is 128000).
pub(crate) fn deberta(
    vocab: Vec<(String, f64)>,
    charsmap: Option<Vec<u8>>,
    unk_id: usize,
    cfg: &Map<String, Value>,
    path: &Path,
) -> Result<HfTokenizer> {
    use tokenizers::models::unigram::Unigram;
    use tokenizers::normalizers::{Lowercase, Precompiled, Replace, Strip, NFC};
    use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
    use tokenizers::pre_tokenizers::punctuation::Punctuation;
    use tokenizers::pre_tokenizers::sequence::Sequence;
    use tokenizers::{NormalizerWrapper, SplitDelimiterBehavior};
    let fail = |message: String| Error::Tokenizer { path: path.to_path_buf(), message };
    let tok = |key: &str, default: &str| token(cfg, key, default);
    let (bos, eos, unk, sep, pad, cls, mask) = (
        tok("bos_token", "[CLS]"),
        tok("eos_token", "[SEP]"),
        tok("unk_token", "[UNK]"),
        tok("sep_token", "[SEP]"),
        tok("pad_token", "[PAD]"),
        tok("cls_token", "[CLS]"),
        tok("mask_token", "[MASK]"),
    );
    let unk_id = vocab.iter().position(|(t, s)| *t == unk && *s == 0.0).unwrap_or(unk_id);
    if unk_id >= vocab.len() {
        return Err(fail(format!("the vocabulary has {} pieces, none at the unknown id {unk_id}", vocab.len())));
    }
    let ids: HashMap<String, u32> = vocab.iter().enumerate().rev().map(|(i, (t, _))| (t.clone(), i as u32)).collect();
    let model = Unigram::from(vocab, Some(unk_id), false).map_err(|e| fail(e.to_string()))?;
    let mut t = HfTokenizer::new(ModelWrapper::Unigram(model));
    let replace = |pattern: &str, with: &str| -> Result<NormalizerWrapper> {
        Ok(Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(pattern.into()), with)
            .map_err(|e| fail(e.to_string()))?
            .into())
    };
    let mut norms: Vec<NormalizerWrapper> = Vec::new();
    if flag(cfg, "do_lower_case").unwrap_or(false) {
        norms.push(Lowercase.into());
    }
    match charsmap.filter(|m| !m.is_empty()) {
        Some(map) => {
            norms.push(Precompiled::from(&map).map_err(|e| fail(format!("its precompiled character map is unreadable: {e}")))?.into());
            norms.push(Strip::new(false, true).into());
            norms.push(replace(" {2,}", " ")?);
        }
        None => {
            norms.push(replace(r"\s{2,}|[\n\r\t]", " ")?);
            norms.push(NFC.into());
            norms.push(Strip::new(false, true).into());
        }
    }
    t.with_normalizer(Some(tokenizers::normalizers::Sequence::new(norms))).map_err(|e| fail(e.to_string()))?;
    let scheme = if flag(cfg, "add_prefix_space").unwrap_or(true) { PrependScheme::Always } else { PrependScheme::First };
    let mut pre: Vec<tokenizers::PreTokenizerWrapper> = Vec::new();
    if flag(cfg, "split_by_punct").unwrap_or(false) {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(Metaspace::new('▁', scheme, true).into());
    t.with_pre_tokenizer(Some(Sequence::new(pre)));
    t.with_decoder(Some(Metaspace::new('▁', scheme, true)));
    let id = |tok: &str| ids.get(tok).copied().unwrap_or(0);
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| fail(e.to_string()))?
        .special_tokens(vec![(cls.clone(), id(&cls)), (sep.clone(), id(&sep))])
        .build()
        .map_err(|e| fail(e.to_string()))?;
    t.with_post_processor(Some(template));
    add_specials(&mut t, &[bos, eos, unk, sep, pad, cls, mask], |_| true, path)?;
    Ok(t)
}

/// The `(piece, score)` vocabulary of a SentencePiece model in the class's id order
/// (transformers' `XLMRobertaConverter` / `CamembertConverter`), and its character map.
pub(crate) fn from_spm(class: Class, spm: crate::spm::SpmModel, cfg: &Map<String, Value>) -> (Vec<(String, f64)>, Vec<u8>) {
    let [bos, eos, _sep, _cls, unk, pad, mask] = specials(cfg);
    let pieces = spm.pieces.into_iter().map(|p| (p.piece, p.score as f64));
    let mut vocab: Vec<(String, f64)> = match class {
        // fairseq's dictionary: <s> <pad> </s> <unk>, then the pieces after the model's own
        // three specials, then <mask>.
        Class::Camembert => {
            let mut v =
                vec![("<s>NOTUSED".into(), 0.0), (pad, 0.0), ("</s>NOTUSED".into(), 0.0), (unk, 0.0), ("<unk>NOTUSED".into(), -100.0)];
            v.extend(pieces.skip(1));
            v
        }
        _ => {
            let mut v = vec![(bos, 0.0), (pad, 0.0), (eos, 0.0), (unk, 0.0)];
            v.extend(pieces.skip(3));
            v
        }
    };
    vocab.push((mask, 0.0));
    (vocab, spm.precompiled_charsmap)
}

/// The BPE vocabulary and merges of a `tokenizer.json`, for a class that rebuilds the rest.
pub(crate) fn bpe_parts(json: &Value, path: &Path) -> Result<BpeParts> {
    let fail = |m: &str| Error::Tokenizer { path: path.to_path_buf(), message: m.to_string() };
    let model = json.get("model").ok_or_else(|| fail("has no model"))?;
    let vocab: HashMap<String, u32> = serde_json::from_value(model.get("vocab").cloned().unwrap_or(Value::Null))
        .map_err(|_| fail("its BPE model has no vocab object"))?;
    let merges = merges_of(model.get("merges").and_then(Value::as_array).ok_or_else(|| fail("its BPE model has no merges"))?)
        .ok_or_else(|| fail("its BPE merges are neither \"a b\" strings nor [a, b] pairs"))?;
    Ok((vocab, merges))
}

fn merges_of(list: &[Value]) -> Option<Vec<(String, String)>> {
    list.iter()
        .map(|m| match m {
            Value::String(s) => s.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())),
            Value::Array(p) if p.len() == 2 => Some((p[0].as_str()?.to_string(), p[1].as_str()?.to_string())),
            _ => None,
        })
        .collect()
}

/// The Unigram vocabulary and SentencePiece character map of a `tokenizer.json`.
pub(crate) fn unigram_parts(json: &Value, path: &Path) -> Result<UnigramParts> {
    let fail = |m: &str| Error::Tokenizer { path: path.to_path_buf(), message: m.to_string() };
    let vocab: Vec<(String, f64)> = serde_json::from_value(json.get("model").and_then(|m| m.get("vocab")).cloned().unwrap_or(Value::Null))
        .map_err(|_| fail("its model has no Unigram vocabulary ([piece, score] pairs)"))?;
    let mut charsmap = None;
    let norm = json.get("normalizer").cloned().unwrap_or(Value::Null);
    let list = match norm.get("type").and_then(Value::as_str) {
        Some("Sequence") => norm.get("normalizers").and_then(Value::as_array).cloned().unwrap_or_default(),
        Some(_) => vec![norm],
        None => vec![],
    };
    for n in list {
        if n.get("type").and_then(Value::as_str) == Some("Precompiled") {
            if let Some(b64) = n.get("precompiled_charsmap").and_then(Value::as_str) {
                charsmap = Some(base64(b64).ok_or_else(|| fail("its precompiled_charsmap is not base64"))?);
                break;
            }
        }
    }
    Ok((vocab, charsmap))
}

/// Standard base64 with padding (tokenizer.json's encoding of byte strings).
fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let trimmed: &[u8] = bytes.strip_suffix(b"==").or_else(|| bytes.strip_suffix(b"=")).unwrap_or(&bytes);
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    for chunk in trimmed.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let count = match chunk.len() {
            4 => 3,
            3 => 2,
            2 => 1,
            _ => return None,
        };
        out.extend_from_slice(&n.to_be_bytes()[1..1 + count]);
    }
    Some(out)
}

/// `vocab.json` and `merges.txt` of a RoBERTa repo without tokenizer.json (merges as
/// `a b` lines after an optional `#version` line).
pub(crate) fn read_vocab_merges(dir: &Path) -> Result<BpeParts> {
    let vocab_path = dir.join("vocab.json");
    let text = crate::files::read_text(&vocab_path, MAX_VOCAB_TXT)?;
    let vocab: HashMap<String, u32> =
        serde_json::from_str(&text).map_err(|e| Error::Json { path: vocab_path.clone(), message: e.to_string() })?;
    let merges_path = dir.join("merges.txt");
    let text = crate::files::read_text(&merges_path, MAX_VOCAB_TXT)?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if (i == 0 && line.starts_with("#version")) || line.is_empty() {
            continue;
        }
        let (a, b) = line
            .split_once(' ')
            .ok_or_else(|| Error::Tokenizer { path: merges_path.clone(), message: format!("line {} is not a merge \"a b\"", i + 1) })?;
        merges.push((a.to_string(), b.to_string()));
    }
    Ok((vocab, merges))
}
