#!/usr/bin/env python3
"""Scores a saved model folder on NorNE dev with transformers and seqeval itself.

The cross-check for `eurobert-ner evaluate`: same sentences (text rebuilt from tokens and
SpaceAfter), same rule (a word takes the label of its first model token), but transformers'
forward pass and seqeval's classification_report. Not run by CI.

    python tools/evaluate_seqeval.py --model models/norne-compact --norne ../shared/norne
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
from train_compact import encode, load_split, predict  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--norne", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = AutoModelForTokenClassification.from_pretrained(args.model, dtype=torch.float32).eval()
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    sentences = load_split(args.norne, args.split)
    data = encode(tok, sentences, model.config.max_position_embeddings)
    gold = [tags for _, _, tags in sentences]
    pred = predict(model, data, model.config.pad_token_id)
    print(classification_report(gold, pred, digits=4))
    print(json.dumps({"precision": precision_score(gold, pred), "recall": recall_score(gold, pred), "f1": f1_score(gold, pred)}))


if __name__ == "__main__":
    main()
