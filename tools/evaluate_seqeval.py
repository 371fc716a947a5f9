#!/usr/bin/env python3
"""Scores a saved model folder on NorNE dev (or CoNLL-U files) with transformers and seqeval.

The cross-check for `eurobert-ner evaluate`: same sentences (text rebuilt from tokens and
SpaceAfter), same rule (a word takes the label of its first model token), but transformers'
forward pass and seqeval's classification_report. Not run by CI.

    python tools/evaluate_seqeval.py --model models/norne-compact --norne ../shared/norne
    python tools/evaluate_seqeval.py --model models/norne-compact \
        --conllu __test__/fixtures/eval.conllu --record __test__/fixtures/eval.seqeval.json

`--record` writes seqeval's reports (digits 2 and 4, default and strict IOB2 modes), its
micro scores and the predicted tags, which the tests compare `evaluate()` and the CLI against.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
from tokenizers import Tokenizer
from transformers import AutoModelForTokenClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_compact import encode, load_split, predict, read_conllu  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--norne")
    ap.add_argument("--conllu", nargs="+", help="CoNLL-U files with name= tags instead of NorNE")
    ap.add_argument("--record", help="write reports, scores and predictions to this JSON file")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForTokenClassification.from_pretrained(args.model, dtype=torch.float32).eval()
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    sentences = [s for f in args.conllu for s in read_conllu(f)] if args.conllu else load_split(args.norne, args.split)
    data = encode(tok, sentences, model.config.max_position_embeddings)
    gold = [tags for _, _, tags in sentences]
    pred = predict(model, data, model.config.pad_token_id)
    print(classification_report(gold, pred, digits=4))
    scores = {"precision": precision_score(gold, pred), "recall": recall_score(gold, pred), "f1": f1_score(gold, pred)}
    print(json.dumps(scores))
    if args.record:
        import seqeval
        from seqeval.scheme import IOB2

        record = {
            "generator": "tools/evaluate_seqeval.py",
            "versions": {"seqeval": getattr(seqeval, "__version__", "1.2.2"), "torch": torch.__version__},
            "model": args.model,
            "files": args.conllu,
            "y_pred": pred,
            "micro": scores,
            "report": {
                "default_2": classification_report(gold, pred, digits=2),
                "default_4": classification_report(gold, pred, digits=4),
                "strict_4": classification_report(gold, pred, digits=4, mode="strict", scheme=IOB2),
            },
        }
        with open(args.record, "w") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
