#!/usr/bin/env python3
"""Builds the tiny random EuroBERT token classifier and records transformers' outputs.

Not run by CI: the outputs are committed under __test__/fixtures/ and the tests compare our
runtime against them. Regenerate with (torch, transformers, tokenizers from PyPI):

    python tools/make_fixtures.py --norne ../shared/norne

Writes
    __test__/fixtures/tiny-eurobert/          HF model folder (config, safetensors, tokenizer)
    __test__/fixtures/tiny-eurobert.expected.json
        tokenization (ids, tokens, code-point and UTF-16 offsets, special-token mask, word ids)
        and logits for every text, run one at a time and as one right-padded batch, plus
        logits of the same model with its weights rounded to bf16 and f16.
    __test__/fixtures/tiny-eurobert.pipeline.json
        transformers' pipeline("token-classification") output for every aggregation strategy
        over texts that exercise its sub-word heuristic and offsets, with ignore_labels
        variants, and with `stride` windows over a long text.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import transformers
import tokenizers
from transformers import AutoModelForTokenClassification, AutoTokenizer, EuroBertConfig, EuroBertForTokenClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eurobert_tokenizer import BOS, EOS, MASK, norne_texts, tokenizer_config, train_tokenizer  # noqa: E402

NORNE_LABELS = [
    "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-GPE_LOC", "I-GPE_LOC", "B-PROD", "I-PROD",
    "B-LOC", "I-LOC", "B-GPE_ORG", "I-GPE_ORG", "B-DRV", "I-DRV", "B-EVT", "I-EVT", "B-MISC", "I-MISC",
]

# Hand-written sentences (Bokmål and Nynorsk) covering the offset edge cases: emoji and other
# astral characters, combining marks, CRLF, tabs, NBSP, quotes and parentheses.
TEXTS = [
    "Erna Solberg besøkte Universitetet i Oslo forrige uke.",
    "Jonas Gahr Støre møtte Equinor-sjefen i Stavanger.",
    "Eg budde i Bergen då NRK sende «Nytt på nytt» frå Marienlyst.",
    "Kari Nordmann 😀 jobber hos DNB i Trondheim.",
    "Ålesund og Tromsø\r\nfikk besøk av kong Harald.",
    "Norges Bank\tog Statistisk sentralbyrå (SSB) publiserte tall i går.",
    "Oslo\u00a0Børs stengte tidlig fredag.",
    "Ane Bjørnstad-Hansen (42) frå Bodø vann Holmenkollstafetten.",
    "Rene\u0301 Dahl og Zoe\u0308 Lie reiste til Lillehammer med \"Dovrebanen\".",
    "Hun leste Aftenposten og VG på toget til Gardermoen.",
    "Stortinget vedtok budsjettet, melde NTB onsdag.",
    "𝔊otisk skrift 𐍈 og 北京 står i Nasjonalbiblioteket 👩‍👩‍👧.",
]
EXTRA_SINGLE = [""]  # empty text: BOS/EOS only
# More cases for the pipeline: trailing punctuation, words after newline/tab/NBSP/brackets/quotes.
PIPELINE_EXTRA = [
    "Jeg bor i Oslo.",
    "Møtet i\nBergen\tvar (kort), og «Dagbladet» skrev om \"NRK\".",
    "Erna\u00a0Solberg og Jonas Gahr Støre",
    "  Tromsø  ",
    "Oslo",
    "",
]
STRATEGIES = ["none", "simple", "first", "average", "max"]


def utf16_offsets(text: str, offsets):
    prefix = [0]
    for ch in text:
        prefix.append(prefix[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return [[prefix[s], prefix[e]] for s, e in offsets]


def f32_list(t: torch.Tensor):
    return [[float(f"{v:.8g}") for v in row] for row in t.tolist()]


def build_model(vocab_size: int, ids: dict, seed: int) -> EuroBertForTokenClassification:
    config = EuroBertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=256,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 250000.0},
        bos_token_id=ids[BOS],
        eos_token_id=ids[EOS],
        pad_token_id=ids[EOS],
        mask_token_id=ids[MASK],
        id2label=dict(enumerate(NORNE_LABELS)),
        label2id={l: i for i, l in enumerate(NORNE_LABELS)},
    )
    torch.manual_seed(seed)
    model = EuroBertForTokenClassification(config)
    # Larger-than-default random weights, non-unit norm weights and a nudge towards O, so
    # that argmax labels vary from token to token and every code path sees real values.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
        model.classifier.bias[0] += 1.0
    return model.eval()


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norne", required=True, help="NorNE folder with nob/ and nno/ train.conllu")
    ap.add_argument("--out", default=os.path.join(root, "__test__", "fixtures"))
    ap.add_argument("--vocab-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261125)
    args = ap.parse_args()

    model_dir = os.path.join(args.out, "tiny-eurobert")
    os.makedirs(model_dir, exist_ok=True)

    tok = train_tokenizer(norne_texts(args.norne, "train"), args.vocab_size)
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(256), f, indent=2)
    ids = {t: tok.token_to_id(t) for t in (BOS, EOS, MASK)}

    build_model(tok.get_vocab_size(), ids, args.seed).save_pretrained(model_dir, safe_serialization=True)

    # Reload exactly as a user would, and record what transformers computes.
    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32).eval()

    def tokenization(text: str) -> dict:
        enc = hf_tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        offsets = [list(o) for o in enc["offset_mapping"]]
        return {
            "text": text,
            "ids": enc["input_ids"],
            "tokens": hf_tok.convert_ids_to_tokens(enc["input_ids"]),
            "offsets_codepoint": offsets,
            "offsets_utf16": utf16_offsets(text, offsets),
            "special_tokens_mask": enc["special_tokens_mask"],
            "attention_mask": enc["attention_mask"],
            "word_ids": [-1 if w is None else w for w in enc.word_ids()],
        }

    singles = []
    with torch.no_grad():
        for text in TEXTS + EXTRA_SINGLE:
            rec = tokenization(text)
            logits = model(input_ids=torch.tensor([rec["ids"]])).logits[0]
            rec["logits"] = f32_list(logits)
            singles.append(rec)

        batch = hf_tok(TEXTS, padding=True, return_tensors="pt")
        assert hf_tok.padding_side == "right"
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        batched = [f32_list(logits[i, : lengths[i]]) for i in range(len(TEXTS))]

        variants = {}
        for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
            rounded = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
            for p in rounded.parameters():
                p.copy_(p.to(dtype).to(torch.float32))
            variants[name] = [f32_list(rounded(input_ids=torch.tensor([s["ids"]])).logits[0]) for s in singles[:3]]

    expected = {
        "generator": "tools/make_fixtures.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__, "tokenizers": tokenizers.__version__},
        "attn_implementation": model.config._attn_implementation,
        "labels": NORNE_LABELS,
        "singles": singles,
        "batch": {"texts": TEXTS, "pad_token_id": int(hf_tok.pad_token_id), "logits": batched},
        "weight_dtype_variants": {"texts": [s["text"] for s in singles[:3]], **variants},
    }
    write_json(os.path.join(args.out, "tiny-eurobert.expected.json"), expected)
    write_json(os.path.join(args.out, "tiny-eurobert.pipeline.json"), pipeline_fixtures(model_dir))
    print(f"wrote {model_dir}, tiny-eurobert.expected.json and tiny-eurobert.pipeline.json")


def entity_record(text: str, e: dict) -> dict:
    rec = {k: (float(v) if k == "score" else int(v) if k in ("index", "start", "end") else v) for k, v in e.items()}
    rec["start_utf16"], rec["end_utf16"] = utf16_offsets(text, [(e["start"], e["end"])])[0]
    return rec


def pipeline_fixtures(model_dir: str) -> dict:
    from transformers import pipeline

    ner = pipeline("token-classification", model=model_dir, tokenizer=model_dir, device=-1)
    cases = []
    texts = TEXTS + PIPELINE_EXTRA
    for strategy in STRATEGIES:
        for text in texts:
            out = ner(text, aggregation_strategy=strategy)
            cases.append({"text": text, "aggregation_strategy": strategy, "entities": [entity_record(text, e) for e in out]})
    for strategy, ignore in (("simple", []), ("none", []), ("first", ["O", "PER", "B-ORG"]), ("average", ["LOC", "GPE_LOC"])):
        for text in texts[:4]:
            out = ner(text, aggregation_strategy=strategy, ignore_labels=ignore)
            cases.append({"text": text, "aggregation_strategy": strategy, "ignore_labels": ignore,
                          "entities": [entity_record(text, e) for e in out]})
    # A list of texts in one call gives a list of lists.
    batch_out = ner(texts[:3], aggregation_strategy="simple")
    long_text = " ".join(f"{t} ({i})" for i in range(4) for t in TEXTS)
    strided = []
    for strategy in STRATEGIES[1:]:
        for stride in (16, 100):
            out = ner(long_text, aggregation_strategy=strategy, stride=stride)
            strided.append({"aggregation_strategy": strategy, "stride": stride,
                            "entities": [entity_record(long_text, e) for e in out]})
    return {
        "generator": "tools/make_fixtures.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "model_max_length": ner.tokenizer.model_max_length,
        "cases": cases,
        "batch": {"texts": texts[:3], "aggregation_strategy": "simple",
                  "entities": [[entity_record(t, e) for e in out] for t, out in zip(texts[:3], batch_out)]},
        "long": {"text": long_text, "num_tokens": len(ner.tokenizer(long_text)["input_ids"]), "runs": strided},
    }


def write_json(path: str, value: dict) -> None:
    with open(path, "w") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
