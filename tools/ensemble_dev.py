#!/usr/bin/env python3
"""NorNE dev micro F1 of the mean word-level distribution of several model folders: what a
distillation teacher built from them (train_compact.py --teacher) knows. Not run by CI.

    python tools/ensemble_dev.py --norne ../shared/norne DIR [DIR ...]
"""
from __future__ import annotations

import argparse
import os
import sys

import torch
from seqeval.metrics import f1_score
from tokenizers import Tokenizer
from transformers import EuroBertForTokenClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_compact import EOS, NORNE_LABELS, encode, load_split, predict, viterbi  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--norne", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("dirs", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = load_split(args.norne, "dev")
    gold = [t for _, _, t in dev]
    total = None
    with torch.no_grad():
        for d in args.dirs:
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            model = EuroBertForTokenClassification.from_pretrained(d, dtype=torch.float32)
            pred, logps = predict(model, encode(tok, dev, 512), tok.token_to_id(EOS), with_logp=True)
            probs = [lp.exp() for lp in logps]
            total = probs if total is None else [a + b for a, b in zip(total, probs)]
            print(f"{d}: dev F1 {f1_score(gold, pred):.4f}", flush=True)
    logp = [(p / len(args.dirs)).log() for p in total]
    pred = [[NORNE_LABELS[int(j)] for j in lp.argmax(-1)] for lp in logp]
    print(f"ensemble of {len(args.dirs)}: dev F1 {f1_score(gold, pred):.4f} argmax, "
          f"{f1_score(gold, [viterbi(lp) for lp in logp]):.4f} viterbi")


if __name__ == "__main__":
    main()
