#!/usr/bin/env python3
"""Fixtures for the token-classification families beyond EuroBERT, from transformers' own classes.

For each family: small random `*ForTokenClassification(config)` models saved with
`save_pretrained` (safetensors, committed), with the tokenizer types those families ship
(`tokenizer.json`, or only `vocab.txt` / `vocab.json`+`merges.txt` as older Hub repos do), and
what transformers gives on them: tokens, ids, offsets and logits of the parity texts, and the
token-classification pipeline under all five aggregation strategies, with and without stride,
at the model's real maximum window. A base-sized model of each family (768 hidden, 12 heads,
3,072 intermediate, 2 layers) is too large to commit: its weights come from a deterministic
generator that the tests re-implement (`__test__/helpers/generated.ts`), and only its logits
are committed.

Not run by CI; regenerate with torch, transformers and tokenizers from PyPI:

    python tools/make_family_fixtures.py --norne ../shared/norne

Writes __test__/fixtures/families/<name>/ and __test__/fixtures/families/<name>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer, pipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eurobert_tokenizer import norne_texts  # noqa: E402
from make_fixtures import PIPELINE_EXTRA, STRATEGIES, TEXTS, entity_record, f32_list, utf16_offsets, write_json  # noqa: E402

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
# Texts for the tokenizer rules BERT's normalizer and pre-tokenizer apply: accents, case,
# Chinese characters, control characters, punctuation.
EXTRA = ["ÅLESUND og Tromsø: Ærlig talt, René!", "北京大学 i Oslo", "Naïve café\u0301 i Trondheim\u0007.", "Dr. Ola-Nordmann (NRK) sa «nei»..."]
SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def generated(name: str, n: int, scale: float, center: float = 0.0) -> np.ndarray:
    """Deterministic weights, re-implemented in __test__/helpers/generated.ts: a 32-bit hash of
    (FNV-1a of the name, index) mapped to [-1, 1) exactly, times scale, plus center."""
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    i = np.arange(n, dtype=np.uint64)
    x = (np.uint64(h) + i * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x846CA68B)) & np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    u = (x >> np.uint64(8)).astype(np.float64) / 16777216.0  # [0, 1), exact in f64 and f32
    return ((u * 2.0 - 1.0) * scale + center).astype(np.float32)


def fill_generated(model: torch.nn.Module) -> None:
    """Every parameter from `generated`: norms near 1, biases small, the rest ±0.05."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name or name.endswith("norm.weight"):
                v = generated(name, p.numel(), 0.1, 1.0)
            elif name.endswith("bias"):
                v = generated(name, p.numel(), 0.02)
            else:
                v = generated(name, p.numel(), 0.05)
            p.copy_(torch.from_numpy(v).reshape(p.shape))


def wordpiece_vocab(norne: str, out: str, size: int, lowercase: bool) -> str:
    """A WordPiece vocabulary trained on NorNE train text, written as vocab.txt (id order)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(norne_texts(norne, "train"), trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIALS_BERT, show_progress=False))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    path = os.path.join(out, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        for t, _ in vocab:
            f.write(t + "\n")
    return path


def label_config(cfg):
    cfg.id2label = dict(enumerate(LABELS))
    cfg.label2id = {l: i for i, l in enumerate(LABELS)}
    return cfg


def record(model_dir: str, generated_weights: bool = False) -> dict:
    """What transformers gives on a saved model folder."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    texts = TEXTS + EXTRA
    singles = []
    with torch.no_grad():
        for text in texts:
            enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
            ids = enc["input_ids"]
            logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits[0]
            singles.append({
                "text": text,
                "ids": ids,
                "tokens": tok.convert_ids_to_tokens(ids),
                "offsets_utf16": utf16_offsets(text, enc["offset_mapping"]),
                "special_tokens_mask": enc["special_tokens_mask"],
                "logits": f32_list(logits),
            })
    out = {
        "generator": "tools/make_family_fixtures.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "model_type": model.config.model_type,
        "tokenizer_class": type(tok).__name__,
        "model_max_length": tok.model_max_length if tok.model_max_length < 1e9 else None,
        "labels": LABELS,
        "singles": singles,
    }
    if generated_weights:
        return out
    ner = pipeline("token-classification", model=model, tokenizer=tok, device=-1)
    cases = []
    for strategy in STRATEGIES:
        for text in texts + PIPELINE_EXTRA:
            res = ner(text, aggregation_strategy=strategy)
            cases.append({"text": text, "aggregation_strategy": strategy, "entities": [entity_record(text, e) for e in res]})
    out["cases"] = cases
    # A text longer than the model's real window, with and without stride.
    long_text = " ".join(f"{t} ({i})" for i in range(3) for t in TEXTS)
    n = len(tok(long_text)["input_ids"])
    runs = []
    for strategy in STRATEGIES[1:]:
        for stride in (None, 16, 128):
            kw = {} if stride is None else {"stride": stride}
            res = ner(long_text, aggregation_strategy=strategy, **kw)
            runs.append({"aggregation_strategy": strategy, "stride": stride, "entities": [entity_record(long_text, e) for e in res]})
    out["long"] = {"text": long_text, "num_tokens": n, "runs": runs}
    return out


def bert_family(args, root: str) -> None:
    fx = os.path.join(root, "__test__", "fixtures", "families")
    os.makedirs(fx, exist_ok=True)
    vocab_dir = os.path.join(args.scratch, "vocab-cased")
    os.makedirs(vocab_dir, exist_ok=True)
    cased_vocab = wordpiece_vocab(args.norne, vocab_dir, 1500, lowercase=False)
    uncased_dir = os.path.join(args.scratch, "vocab-uncased")
    os.makedirs(uncased_dir, exist_ok=True)
    uncased_vocab = wordpiece_vocab(args.norne, uncased_dir, 1500, lowercase=True)

    def bert_config(**kw):
        base = dict(vocab_size=1500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12)
        base.update(kw)
        return label_config(transformers.BertConfig(**base))

    cases = [
        # (name, config, tokenizer: (vocab, tokenizer kwargs), files kept)
        ("bert-cased", bert_config(), (cased_vocab, {"do_lower_case": False, "model_max_length": 512}), "tokenizer.json"),
        # dslim/bert-base-NER's layout: vocab.txt and a tokenizer_config with the old key max_len.
        ("bert-vocab-only", bert_config(hidden_size=48, num_attention_heads=6, intermediate_size=96, layer_norm_eps=1e-5),
         (cased_vocab, {"do_lower_case": False, "max_len": 512}), "vocab.txt"),
        # An uncased model whose tokenizer_config does not say so: transformers 5 lowercases by default.
        ("bert-uncased", bert_config(num_hidden_layers=3, hidden_act="gelu_new"), (uncased_vocab, {"model_max_length": 512}), "tokenizer.json"),
    ]
    for name, cfg, (vocab, tk), files in cases:
        d = os.path.join(fx, name)
        os.makedirs(d, exist_ok=True)
        torch.manual_seed(20261204)
        model = AutoModelForTokenClassification.from_config(cfg)
        with torch.no_grad():
            model.classifier.bias[0] -= 1.0  # fewer O labels: more entities for the grouping rules
        model.save_pretrained(d, safe_serialization=True)
        tok = transformers.BertTokenizer(vocab=vocab, **{k: v for k, v in tk.items() if k != "max_len"})
        tok.save_pretrained(d)
        tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
        if "max_len" in tk:
            tc.pop("model_max_length", None)
            tc["max_len"] = tk["max_len"]
        if "do_lower_case" not in tk:
            tc.pop("do_lower_case", None)
        # Keep what such repos hold: only the files named.
        keep = {"config.json", "model.safetensors", "tokenizer_config.json", files}
        for f in os.listdir(d):
            if f not in keep:
                os.remove(os.path.join(d, f))
        if files == "vocab.txt":
            import shutil
            shutil.copy(vocab, os.path.join(d, "vocab.txt"))
        json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
        write_json(os.path.join(fx, f"{name}.json"), record(d))
        print("wrote", name)

    # Base-sized: weights from the generator, not committed (the test writes them).
    d = os.path.join(args.scratch, "bert-base-generated")
    os.makedirs(d, exist_ok=True)
    cfg = bert_config(vocab_size=1500, hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=2)
    model = AutoModelForTokenClassification.from_config(cfg)
    fill_generated(model)
    model.save_pretrained(d, safe_serialization=True)
    transformers.BertTokenizer(vocab=cased_vocab, do_lower_case=False, model_max_length=512).save_pretrained(d)
    rec = record(d, generated_weights=True)
    rec["config"] = json.load(open(os.path.join(d, "config.json")))
    rec["shapes"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    rec["tokenizer_from"] = "bert-cased"  # the same vocabulary and flags
    write_json(os.path.join(fx, "bert-base-generated.json"), rec)
    print("wrote bert-base-generated")


def bytelevel_bpe(norne: str, out: str, size: int) -> tuple[str, str]:
    """A byte-level BPE (RoBERTa's kind) trained on NorNE train text: vocab.json + merges.txt."""
    from tokenizers import ByteLevelBPETokenizer

    tok = ByteLevelBPETokenizer()
    tok.train_from_iterator(norne_texts(norne, "train"), vocab_size=size, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    tok.save_model(out)
    return os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt")


def sentencepiece_model(norne: str, out: str, size: int) -> str:
    """A SentencePiece Unigram model trained on NorNE train text, as XLM-R and CamemBERT ship
    them (`sentencepiece.bpe.model`, despite the name): <unk> 0, <s> 1, </s> 2."""
    import sentencepiece as spm

    text = os.path.join(out, "train.txt")
    with open(text, "w", encoding="utf-8") as f:
        for t in norne_texts(norne, "train"):
            f.write(t + "\n")
    prefix = os.path.join(out, "sentencepiece.bpe")
    spm.SentencePieceTrainer.train(input=text, model_prefix=prefix, vocab_size=size, model_type="unigram", character_coverage=1.0,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    return prefix + ".model"


def roberta_family(args, root: str) -> None:
    import shutil

    fx = os.path.join(root, "__test__", "fixtures", "families")
    scratch = os.path.join(args.scratch, "roberta-vocab")
    os.makedirs(scratch, exist_ok=True)
    vocab, merges = bytelevel_bpe(args.norne, scratch, 2000)
    spm_dir = os.path.join(args.scratch, "spm")
    os.makedirs(spm_dir, exist_ok=True)
    spm_model = sentencepiece_model(args.norne, spm_dir, 2000)

    def cfg(cls, **kw):
        # The RoBERTa family's checkpoints: 514 positions after the padding id 1, one token type, eps 1e-5.
        base = dict(vocab_size=2100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=514, type_vocab_size=1, layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        base.update(kw)
        return label_config(cls(**base))

    def from_files(cls, files: list[str]):
        """The class loaded as from_pretrained loads a repo holding only `files`."""
        def make(d):
            src = os.path.join(d, "_tok")
            os.makedirs(src, exist_ok=True)
            for f in files:
                shutil.copy(f, os.path.join(src, os.path.basename(f)))
            json.dump({"tokenizer_class": cls.__name__, "model_max_length": 512}, open(os.path.join(src, "tokenizer_config.json"), "w"))
            tok = cls.from_pretrained(src)
            shutil.rmtree(src)
            return tok
        return make

    cases = [
        ("roberta", cfg(transformers.RobertaConfig), from_files(transformers.RobertaTokenizer, [vocab, merges]), "tokenizer.json"),
        # Jean-Baptiste/roberta-large-ner-english's layout: vocab.json and merges.txt.
        ("roberta-vocab-merges", cfg(transformers.RobertaConfig, hidden_size=48, num_attention_heads=6, intermediate_size=96),
         from_files(transformers.RobertaTokenizer, [vocab, merges]), "vocab.json"),
        ("xlm-roberta", cfg(transformers.XLMRobertaConfig, num_hidden_layers=3), from_files(transformers.XLMRobertaTokenizer, [spm_model]), "tokenizer.json"),
        # Davlan/xlm-roberta-base-ner-hrl's layout: sentencepiece.bpe.model only.
        ("xlm-roberta-spm", cfg(transformers.XLMRobertaConfig), from_files(transformers.XLMRobertaTokenizer, [spm_model]), "sentencepiece.bpe.model"),
        ("camembert-spm", cfg(transformers.CamembertConfig, bos_token_id=5, eos_token_id=6), from_files(transformers.CamembertTokenizer, [spm_model]), "sentencepiece.bpe.model"),
        ("camembert", cfg(transformers.CamembertConfig, bos_token_id=5, eos_token_id=6, hidden_act="gelu_new", num_hidden_layers=3),
         from_files(transformers.CamembertTokenizer, [spm_model]), "tokenizer.json"),
    ]
    for name, config, make_tok, kept in cases:
        if not wanted(args, name):
            continue
        d = os.path.join(fx, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tok = make_tok(d)
        config.vocab_size = max(config.vocab_size, len(tok))
        torch.manual_seed(20261205)
        model = AutoModelForTokenClassification.from_config(config)
        with torch.no_grad():
            model.classifier.bias[0] -= 1.0
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        if kept == "vocab.json":
            shutil.copy(vocab, os.path.join(d, "vocab.json"))
            shutil.copy(merges, os.path.join(d, "merges.txt"))
            keep = {"vocab.json", "merges.txt"}
        elif kept == "sentencepiece.bpe.model":
            shutil.copy(spm_model, os.path.join(d, "sentencepiece.bpe.model"))
            keep = {"sentencepiece.bpe.model"}
        else:
            keep = {"tokenizer.json"}
        for f in os.listdir(d):
            if f not in keep | {"config.json", "model.safetensors", "tokenizer_config.json"}:
                os.remove(os.path.join(d, f))
        write_json(os.path.join(fx, f"{name}.json"), record(d))
        print("wrote", name)


def distil_electra(args, root: str) -> None:
    """DistilBERT (elastic/distilbert-base-cased-finetuned-conll03-english ships vocab.txt) and
    ELECTRA with embeddings narrower than the hidden size (a projection between them)."""
    import shutil

    fx = os.path.join(root, "__test__", "fixtures", "families")
    vocab_dir = os.path.join(args.scratch, "vocab-cased-2")
    os.makedirs(vocab_dir, exist_ok=True)
    vocab = wordpiece_vocab(args.norne, vocab_dir, 1500, lowercase=False)
    n = sum(1 for _ in open(vocab, encoding="utf-8"))
    cases = [
        ("distilbert-vocab-only", label_config(transformers.DistilBertConfig(vocab_size=n, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=512)),
         {"do_lower_case": False, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}, "vocab.txt"),
        ("electra", label_config(transformers.ElectraConfig(vocab_size=n, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                                            intermediate_size=64, max_position_embeddings=512, layer_norm_eps=1e-12)),
         {"do_lower_case": False, "model_max_length": 512, "tokenizer_class": "ElectraTokenizer"}, "tokenizer.json"),
        # tokenizer.json with a config that lowercases; transformers' other activation.
        ("distilbert", label_config(transformers.DistilBertConfig(vocab_size=n, dim=48, n_layers=3, n_heads=6, hidden_dim=96, max_position_embeddings=512, activation="gelu")),
         {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}, "tokenizer.json"),
        # Embeddings as wide as the hidden states: no projection; gelu_new.
        ("electra-no-projection", label_config(transformers.ElectraConfig(vocab_size=n, embedding_size=32, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                                          intermediate_size=64, max_position_embeddings=512, hidden_act="gelu_new")),
         {"do_lower_case": False, "model_max_length": 512, "tokenizer_class": "ElectraTokenizer"}, "vocab.txt"),
    ]
    for name, cfg, tk, kept in cases:
        if not wanted(args, name):
            continue
        d = os.path.join(fx, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        torch.manual_seed(20261206)
        model = AutoModelForTokenClassification.from_config(cfg)
        with torch.no_grad():
            model.classifier.bias[0] -= 1.0
        model.save_pretrained(d, safe_serialization=True)
        tok = transformers.BertTokenizer(vocab=vocab, do_lower_case=False, model_max_length=512)
        tok.save_pretrained(d)
        tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
        tc.update(tk)
        json.dump(tc, open(os.path.join(d, "tokenizer_config.json"), "w"), indent=2)
        if kept == "vocab.txt":
            shutil.copy(vocab, os.path.join(d, "vocab.txt"))
        for f in os.listdir(d):
            if f not in {"config.json", "model.safetensors", "tokenizer_config.json", kept}:
                os.remove(os.path.join(d, f))
        write_json(os.path.join(fx, f"{name}.json"), record(d))
        print("wrote", name)


def base_generated(args, root: str) -> None:
    """Base-sized models of the other families (768 hidden, 12 heads, 3,072 intermediate, 2
    layers), weights from the generator, tokenizers from the committed fixtures."""
    fx = os.path.join(root, "__test__", "fixtures", "families")
    base = dict(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=2)
    cases = [
        ("roberta-base-generated", "roberta", label_config(transformers.RobertaConfig(vocab_size=2100, max_position_embeddings=514, type_vocab_size=1,
                                                                                     layer_norm_eps=1e-5, pad_token_id=1, **base))),
        ("xlm-roberta-base-generated", "xlm-roberta-spm", label_config(transformers.XLMRobertaConfig(vocab_size=2100, max_position_embeddings=514, type_vocab_size=1,
                                                                                                   layer_norm_eps=1e-5, pad_token_id=1, **base))),
        ("distilbert-base-generated", "distilbert-vocab-only", label_config(transformers.DistilBertConfig(vocab_size=1500, dim=768, n_heads=12, hidden_dim=3072, n_layers=2))),
        ("electra-base-generated", "electra", label_config(transformers.ElectraConfig(vocab_size=1500, embedding_size=768, **base))),
    ]
    for name, tok_from, cfg in cases:
        d = os.path.join(args.scratch, name)
        os.makedirs(d, exist_ok=True)
        src = os.path.join(fx, tok_from)
        cfg.vocab_size = max(cfg.vocab_size, len(AutoTokenizer.from_pretrained(src)))
        model = AutoModelForTokenClassification.from_config(cfg)
        fill_generated(model)
        model.save_pretrained(d, safe_serialization=True)
        for f in os.listdir(src):
            if f not in ("config.json", "model.safetensors"):
                shutil.copy(os.path.join(src, f), os.path.join(d, f))
        rec = record(d, generated_weights=True)
        rec["config"] = json.load(open(os.path.join(d, "config.json")))
        rec["shapes"] = {k: list(v.shape) for k, v in model.state_dict().items()}
        rec["tokenizer_from"] = tok_from
        write_json(os.path.join(fx, f"{name}.json"), rec)
        print("wrote", name)


def modernbert_family(args, root: str) -> None:
    """ModernBERT: a byte-level BPE tokenizer.json used verbatim (transformers forces
    TokenizersBackend for it), local attention on the sliding layers, both config forms."""
    import shutil
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    fx = os.path.join(root, "__test__", "fixtures", "families")
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    bl = ByteLevelBPETokenizer()
    bl.train_from_iterator(norne_texts(args.norne, "train"), vocab_size=2000, special_tokens=specials, show_progress=False)
    tok_obj = bl._tokenizer
    ids = {t: tok_obj.token_to_id(t) for t in specials}
    tok_obj.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
                                                           special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])

    def tokenizer(max_len):
        return PreTrainedTokenizerFast(tokenizer_object=tok_obj, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                       mask_token="[MASK]", model_max_length=max_len)

    def cfg(**kw):
        base = dict(vocab_size=2000, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4, local_attention=8,
                    max_position_embeddings=8192, pad_token_id=ids["[PAD]"], bos_token_id=ids["[CLS]"], eos_token_id=ids["[SEP]"],
                    cls_token_id=ids["[CLS]"], sep_token_id=ids["[SEP]"])
        base.update(kw)
        return label_config(transformers.ModernBertConfig(**base))

    cases = [
        ("modernbert", cfg(), 512, None),
        # The Hub's legacy keys (answerdotai/ModernBERT-base and its fine-tunes), read by transformers too.
        ("modernbert-legacy-config", cfg(num_hidden_layers=3), 8192,
         {"global_attn_every_n_layers": 2, "global_rope_theta": 80000.0, "local_rope_theta": 5000.0, "layer_norm_eps": 1e-5, "norm_eps": 1e-5}),
        ("modernbert-biases", cfg(norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True, hidden_activation="gelu_new",
                                  classifier_activation="silu", local_attention=4, norm_eps=1e-6), 512, None),
    ]
    for name, config, max_len, legacy in cases:
        d = os.path.join(fx, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        torch.manual_seed(20261207)
        model = AutoModelForTokenClassification.from_config(config)
        with torch.no_grad():
            model.classifier.bias[0] -= 1.0
            for n, p in model.named_parameters():
                if "norm" in n and n.endswith("weight"):  # not all ones: the norms must matter
                    p.add_(torch.randn_like(p) * 0.1)
        model.save_pretrained(d, safe_serialization=True)
        if legacy:
            c = json.load(open(os.path.join(d, "config.json")))
            layers = c["num_hidden_layers"]
            for k in ("layer_types", "rope_parameters"):
                c.pop(k, None)
            c.update(legacy)
            assert layers == 3
            json.dump(c, open(os.path.join(d, "config.json"), "w"), indent=2)
        tokenizer(max_len).save_pretrained(d)
        for f in os.listdir(d):
            if f not in {"config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"}:
                os.remove(os.path.join(d, f))
        rec = record(d)
        write_json(os.path.join(fx, f"{name}.json"), rec)
        print("wrote", name, AutoConfig.from_pretrained(d).layer_types)
    # Base-sized, generated.
    d = os.path.join(args.scratch, "modernbert-base-generated")
    os.makedirs(d, exist_ok=True)
    config = cfg(hidden_size=768, num_attention_heads=12, intermediate_size=3072, num_hidden_layers=3, local_attention=128)
    model = AutoModelForTokenClassification.from_config(config)
    fill_generated(model)
    model.save_pretrained(d, safe_serialization=True)
    tokenizer(8192).save_pretrained(d)
    rec = record(d, generated_weights=True)
    rec["config"] = json.load(open(os.path.join(d, "config.json")))
    rec["shapes"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    rec["tokenizer_from"] = "modernbert-legacy-config"  # the same tokenizer, model_max_length 8192
    write_json(os.path.join(fx, "modernbert-base-generated.json"), rec)
    print("wrote modernbert-base-generated")


def deberta_family(args, root: str) -> None:
    """DeBERTa-v2/v3: disentangled attention with (log-bucketed) relative positions; the
    tokenizer a SentencePiece Unigram (`spm.model`) rebuilt by DebertaV2Tokenizer."""
    import sentencepiece as spm_lib

    fx = os.path.join(root, "__test__", "fixtures", "families")
    spm_dir = os.path.join(args.scratch, "spm-deberta")
    os.makedirs(spm_dir, exist_ok=True)
    text = os.path.join(spm_dir, "train.txt")
    with open(text, "w", encoding="utf-8") as f:
        for t in norne_texts(args.norne, "train"):
            f.write(t + "\n")
    # deberta-v3's layout: [PAD] 0, [CLS] 1, [SEP] 2, [UNK] 3.
    spm_lib.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(spm_dir, "spm"), vocab_size=2000, model_type="unigram",
                                       character_coverage=1.0, pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]",
                                       bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]", user_defined_symbols=["[MASK]"], minloglevel=2)
    spm_model = os.path.join(spm_dir, "spm.model")

    def tokenizer(d, **tk):
        src = os.path.join(d, "_tok")
        os.makedirs(src, exist_ok=True)
        shutil.copy(spm_model, os.path.join(src, "spm.model"))
        json.dump({"tokenizer_class": "DebertaV2Tokenizer", "model_max_length": 512, **tk}, open(os.path.join(src, "tokenizer_config.json"), "w"))
        tok = transformers.DebertaV2Tokenizer.from_pretrained(src)
        shutil.rmtree(src)
        return tok

    def cfg(**kw):
        # microsoft/deberta-v3-base's kind, small.
        base = dict(vocab_size=2100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
                    relative_attention=True, position_buckets=16, max_relative_positions=-1, norm_rel_ebd="layer_norm", share_att_key=True,
                    pos_att_type="p2c|c2p", position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7, pad_token_id=0)
        base.update(kw)
        return label_config(transformers.DebertaV2Config(**base))

    cases = [
        ("deberta-v3", cfg(), {}, "tokenizer.json"),
        ("deberta-v3-spm", cfg(num_hidden_layers=3), {}, "spm.model"),
        # deberta-v2's kind: no buckets, a relative span of 64, its own position projections,
        # absolute positions too, token types, only c2p; a tokenizer that lowercases and splits punctuation.
        ("deberta-v2", cfg(position_buckets=-1, max_relative_positions=64, norm_rel_ebd="none", share_att_key=False, pos_att_type=["c2p"],
                           position_biased_input=True, type_vocab_size=2), {"do_lower_case": True, "split_by_punct": True}, "tokenizer.json"),
    ]
    for name, config, tk, kept in cases:
        d = os.path.join(fx, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        tok = tokenizer(d, **tk)
        config.vocab_size = max(config.vocab_size, len(tok))
        torch.manual_seed(20261208)
        model = AutoModelForTokenClassification.from_config(config)
        with torch.no_grad():
            model.classifier.bias[0] -= 1.0
            for n, p in model.named_parameters():
                if "rel_embeddings" in n:
                    p.normal_(0, 0.5)  # relative positions that matter
        model.save_pretrained(d, safe_serialization=True)
        tok.save_pretrained(d)
        if kept == "spm.model":
            shutil.copy(spm_model, os.path.join(d, "spm.model"))
        for f in os.listdir(d):
            if f not in {"config.json", "model.safetensors", "tokenizer_config.json", kept}:
                os.remove(os.path.join(d, f))
        write_json(os.path.join(fx, f"{name}.json"), record(d))
        print("wrote", name)
    d = os.path.join(args.scratch, "deberta-v3-base-generated")
    os.makedirs(d, exist_ok=True)
    config = cfg(hidden_size=768, num_attention_heads=12, intermediate_size=3072, position_buckets=256)
    model = AutoModelForTokenClassification.from_config(config)
    fill_generated(model)
    model.save_pretrained(d, safe_serialization=True)
    tokenizer(d).save_pretrained(d)
    rec = record(d, generated_weights=True)
    rec["config"] = json.load(open(os.path.join(d, "config.json")))
    rec["shapes"] = {k: list(v.shape) for k, v in model.state_dict().items()}
    rec["tokenizer_from"] = "deberta-v3"
    write_json(os.path.join(fx, "deberta-v3-base-generated.json"), rec)
    print("wrote deberta-v3-base-generated")


def deberta_buckets(root: str) -> None:
    """transformers' log buckets of relative distances, for configs real models use and small
    ones, over twice the reach of each: the Rust side must land every distance in the same row."""
    from transformers.models.deberta_v2.modeling_deberta_v2 import make_log_bucket_position

    cases = []
    for buckets, max_position in [(16, 512), (256, 512), (256, 1024), (128, 256), (64, 4096), (8, 10)]:
        reach = 2 * max_position
        r = torch.arange(-reach, reach + 1)
        cases.append({"buckets": buckets, "max_position": max_position, "from": -reach,
                      "values": make_log_bucket_position(r, buckets, max_position).long().tolist()})
    out = {"generator": "tools/make_family_fixtures.py", "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
           "cases": cases}
    write_json(os.path.join(root, "__test__", "fixtures", "families", "deberta-buckets.json"), out)
    print("wrote deberta-buckets")


def wanted(args, name: str) -> bool:
    """Whether `--cases` (default: every case) names this fixture."""
    return not args.cases or name in args.cases.split(",")


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norne", required=True)
    ap.add_argument("--scratch", default="/tmp/eurobert-family-fixtures")
    ap.add_argument("--families", default="bert,roberta,distil-electra,base,modernbert,deberta", help="comma-separated: bert, roberta, distil-electra")
    ap.add_argument("--cases", default="", help="comma-separated fixture names to (re)write within those families (default: all)")
    args = ap.parse_args()
    families = args.families.split(",")
    if "bert" in families:
        bert_family(args, root)
    if "roberta" in families:
        roberta_family(args, root)
    if "distil-electra" in families:
        distil_electra(args, root)
    if "base" in families:
        base_generated(args, root)
    if "modernbert" in families:
        modernbert_family(args, root)
    if "deberta" in families:
        deberta_family(args, root)
        deberta_buckets(root)


if __name__ == "__main__":
    main()
