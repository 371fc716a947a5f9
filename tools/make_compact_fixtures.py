#!/usr/bin/env python3
"""Records transformers' outputs for the bundled compact model (models/norne-compact).

Not run by CI; regenerate after retraining with
    python tools/make_compact_fixtures.py
Writes __test__/fixtures/norne-compact.expected.json: logits of a few hand-written sentences
(weights upcast to f32, as our runtime computes) and the token-classification pipeline's
entities for them with aggregation_strategy "first" and "simple".
"""
from __future__ import annotations

import json
import os

import torch
import transformers
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

SENTENCES = [
    "Erna Solberg besøkte Universitetet i Oslo forrige uke.",
    "Jonas Gahr Støre møtte styret i Equinor i Stavanger på tirsdag.",
    "Eg las om Vinter-OL i Dagbladet før eg reiste til Bergen.",
    "Norges Bank og Statistisk sentralbyrå la fram nye tal for Nord-Noreg.",
    "Kong Harald åpnet Nationaltheatret i Oslo sentrum.",
]


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model_dir = os.path.join(root, "models", "norne-compact")
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    ner = pipeline("token-classification", model=model, tokenizer=tok, device=-1)
    out = []
    with torch.no_grad():
        for text in SENTENCES:
            ids = tok(text)["input_ids"]
            logits = model(input_ids=torch.tensor([ids])).logits[0]
            rec = {"text": text, "ids": ids, "logits": [[float(f"{v:.8g}") for v in row] for row in logits.tolist()]}
            for strategy in ("first", "simple"):
                rec[strategy] = [
                    {k: (float(v) if k == "score" else int(v) if k in ("start", "end") else v) for k, v in e.items()}
                    for e in ner(text, aggregation_strategy=strategy)
                ]
            out.append(rec)
    path = os.path.join(root, "__test__", "fixtures", "norne-compact.expected.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/make_compact_fixtures.py", "transformers": transformers.__version__,
                   "sentences": out}, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
