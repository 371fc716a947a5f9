#!/usr/bin/env python3
"""A tiny EuroBERT token classifier with a word-aware tokenizer, and transformers' pipeline
output on it: the fixture for tokenizers that are not byte-level.

The tokenizer is a BPE trained with `continuing_subword_prefix="##"` and `unk_token="[UNK]"`
behind BERT's pre-tokenizer (whitespace and punctuation), so transformers' pipeline takes its
"word-aware" branch: a token is a subword when its string is longer than the text it covers,
and an [UNK] token's word is the text it covers. Not run by CI; regenerate with (torch,
transformers, tokenizers from PyPI):

    python tools/make_wordpiece_fixture.py --norne ../shared/norne

Writes __test__/fixtures/tiny-wordpiece/ and __test__/fixtures/tiny-wordpiece.pipeline.json.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast, pipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eurobert_tokenizer import norne_texts  # noqa: E402
from make_fixtures import STRATEGIES, build_model, entity_record, write_json  # noqa: E402

SPECIALS = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]"]
TEXTS = [
    "一二三 Oslo",
    "Oslo-mannen i Drammen.",
    "Erna Solberg besøkte Universitetet i Oslo.",
    "Kari 😀 jobber hos DNB i Trondheim, sa NRK.",
    "Bjørnstad-Hansen (42) frå Bodø vann «Holmenkollstafetten».",
    "北京 og Tromsø",
]


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norne", required=True)
    ap.add_argument("--out", default=os.path.join(root, "__test__", "fixtures"))
    ap.add_argument("--seed", type=int, default=20261126)
    args = ap.parse_args()
    model_dir = os.path.join(args.out, "tiny-wordpiece")
    os.makedirs(model_dir, exist_ok=True)

    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=SPECIALS, continuing_subword_prefix="##", show_progress=False)
    tok.train_from_iterator(norne_texts(args.norne, "train"), trainer)
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]",
        bos_token="[CLS]", eos_token="[SEP]", model_max_length=256,
    )
    fast.save_pretrained(model_dir)
    model = build_model(tok.get_vocab_size(), {"<|begin_of_text|>": ids["[CLS]"], "<|end_of_text|>": ids["[SEP]"], "<|mask|>": ids["[MASK]"]}, args.seed)
    with torch.no_grad():
        model.classifier.bias[0] -= 1.0  # fewer O labels: more entities for the grouping rules to meet
    model.save_pretrained(model_dir, safe_serialization=True)

    ner = pipeline("token-classification", model=model_dir, tokenizer=model_dir, device=-1)
    cases = []
    for strategy in STRATEGIES:
        for text in TEXTS:
            out = ner(text, aggregation_strategy=strategy)
            cases.append({"text": text, "aggregation_strategy": strategy, "entities": [entity_record(text, e) for e in out]})
    write_json(
        os.path.join(args.out, "tiny-wordpiece.pipeline.json"),
        {
            "generator": "tools/make_wordpiece_fixture.py",
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
            "unk_token_id": fast.unk_token_id,
            "tokens": {t: fast.convert_ids_to_tokens(fast(t)["input_ids"]) for t in TEXTS},
            "cases": cases,
        },
    )
    print(f"wrote {model_dir} and tiny-wordpiece.pipeline.json")


if __name__ == "__main__":
    main()
