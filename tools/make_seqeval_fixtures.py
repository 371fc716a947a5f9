#!/usr/bin/env python3
"""Records seqeval's own results on crafted IOB2 tag sequences, invalid ones included.

Not run by CI; the output is committed and the evaluation tests compare against it.
    python tools/make_seqeval_fixtures.py      # seqeval and numpy from PyPI
writes __test__/fixtures/seqeval.json: for every case, classification_report strings (digits
2 and 4) and per-type / micro / macro / weighted precision, recall, F1 and support, in the
default (conlleval) mode and in mode="strict" with scheme=IOB2.
"""
from __future__ import annotations

import json
import os
import random
import warnings

import seqeval
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import precision_recall_fscore_support as prfs_default
from seqeval.metrics.v1 import precision_recall_fscore_support as prfs_strict
from seqeval.scheme import IOB2

TYPES = ["PER", "ORG", "LOC", "GPE_LOC", "GPE_ORG", "PROD", "EVT", "DRV", "MISC"]


def random_tags(rng: random.Random, n: int, invalid: float) -> list[str]:
    tags, prev = [], "O"
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            tag = "O"
        elif prev != "O" and r < 0.8:
            tag = "I-" + prev[2:]
        elif r < 0.8 + invalid:
            tag = "I-" + rng.choice(TYPES)  # I- after O or after another type
        else:
            tag = "B-" + rng.choice(TYPES)
        tags.append(tag)
        prev = tag
    return tags


def noisy(rng: random.Random, gold: list[str], p: float) -> list[str]:
    out = []
    for tag in gold:
        r = rng.random()
        if r < p / 3:
            out.append("O")
        elif r < 2 * p / 3:
            out.append(("B-" if rng.random() < 0.5 else "I-") + rng.choice(TYPES))
        elif r < p and tag != "O":
            out.append("I-" + tag[2:])
        else:
            out.append(tag)
    return out


def crafted() -> list[tuple[str, list[list[str]], list[list[str]]]]:
    cases = [
        ("notes example",
         [["B-PER", "I-PER", "O", "B-GPE_LOC", "O", "O", "B-ORG"], ["O", "B-PROD", "I-PROD", "O"]],
         [["B-PER", "I-PER", "O", "I-GPE_LOC", "O", "B-LOC", "I-ORG"], ["O", "B-PROD", "I-MISC", "O"]]),
        # precision 1/8 = 0.125 and 1/32 = 0.03125: exact binary ties for half-to-even rounding.
        ("rounding ties",
         [["B-PER", "O"] + ["O"] * 7, ["B-LOC"] + ["O"] * 31],
         [["B-PER", "O"] + ["B-PER"] * 7, ["B-LOC"] * 32]),
        ("predicted type absent from gold",
         [["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "B-EVT"]]),
        ("gold type never predicted",
         [["B-PER", "O", "B-DRV", "I-DRV"]], [["B-PER", "O", "O", "O"]]),
        ("only I- tags", [["I-PER", "I-PER", "O", "I-LOC"]], [["I-PER", "O", "I-LOC", "I-LOC"]]),
        ("B after B and I after other type",
         [["B-ORG", "B-ORG", "I-ORG", "O", "B-MISC", "I-MISC"]],
         [["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC", "I-PER"]]),
        ("entity at sentence end then start of next",
         [["O", "B-LOC"], ["I-LOC", "O"]], [["O", "B-LOC"], ["I-LOC", "O"]]),
    ]
    rng = random.Random(20261125)
    for i in range(24):
        gold = [random_tags(rng, rng.randint(1, 25), 0.0 if i % 3 == 0 else 0.05) for _ in range(rng.randint(1, 12))]
        pred = [noisy(rng, g, 0.1 + 0.05 * (i % 5)) for g in gold]
        cases.append((f"random {i}", gold, pred))
    return cases


def numbers(prfs, y_true, y_pred, **kw) -> dict:
    out = {}
    for average in (None, "micro", "macro", "weighted"):
        p, r, f, s = prfs(y_true, y_pred, average=average, **kw)
        key = average or "per_type"
        if average is None:
            out[key] = {"precision": p.tolist(), "recall": r.tolist(), "f1": f.tolist(), "support": [int(x) for x in s]}
        else:
            out[key] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for name, y_true, y_pred in crafted():
        rec = {"name": name, "y_true": y_true, "y_pred": y_pred}
        for mode, prfs, kw in (("default", prfs_default, {}), ("strict", prfs_strict, {"mode": "strict", "scheme": IOB2})):
            try:
                rec[mode] = {"numbers": numbers(prfs, y_true, y_pred, **({"scheme": IOB2} if kw else {}))}
                for digits in (2, 4):
                    rec[mode][f"report_{digits}"] = classification_report(y_true, y_pred, digits=digits, **kw)
            except ValueError as e:  # e.g. no entity at all: seqeval's report cannot be built
                rec[mode] = {"error": str(e)}
        out.append(rec)
    path = os.path.join(root, "__test__", "fixtures", "seqeval.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/make_seqeval_fixtures.py", "seqeval": seqeval.__version__ if hasattr(seqeval, "__version__") else "1.2.2",
                   "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {path} ({len(out)} cases)")


if __name__ == "__main__":
    main()
