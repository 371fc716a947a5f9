#!/usr/bin/env python3
"""How far PyTorch's f16 and bf16 land from its own f32, on real weights and real text, at
window lengths up to 8,192 tokens: the bar `dtype: 'f16'` / `'bf16'` on our CPU encoder must
meet (`crates/eurobert/tests/half.rs`).

Two models, each loaded with `max_position_embeddings` raised to 8192 (RoPE has no learned
positions, so the weights are unchanged): the bundled `models/norne-compact` (real weights,
stored in f16, so its f16 is exact and its bf16 is the test) on NorNE dev sentences (Bokmål,
`# text = ` lines, in file order) tokenized end to end, BOS first, as one window; and the tiny
fixture model (random f32 weights, so f16 rounds them) on the 8,192 seeded ids of
`tiny-eurobert.long.json`. For each length, the prefix of that many ids runs in f32, f16 and bf16 (`model.to(dtype)`, as
users run it; logits compared in f32). Not run by CI; regenerate with (torch, transformers):

    python tools/make_half_fixture.py --norne ../shared/norne

Writes `__test__/fixtures/half.json`: per model its ids, and per length and dtype the largest
and mean absolute logit difference from f32 and the share of tokens whose argmax label agrees.
"""
from __future__ import annotations

import argparse
import json
import os

import torch
import transformers
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

LENGTHS = [128, 512, 2048, 8192]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--norne", required=True, help="the NorNE folder (nob/dev.conllu)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fixtures = os.path.join(root, "__test__", "fixtures")
    torch.manual_seed(0)
    torch.set_num_threads(2)

    compact = os.path.join(root, "models", "norne-compact")
    sentences = [l[len("# text = ") :].strip() for l in open(os.path.join(args.norne, "nob", "dev.conllu"), encoding="utf-8") if l.startswith("# text = ")]
    tok = AutoTokenizer.from_pretrained(compact)
    ids = [AutoConfig.from_pretrained(compact).bos_token_id]
    for s in sentences:
        ids.extend(tok(s, add_special_tokens=False)["input_ids"])
        if len(ids) >= max(LENGTHS):
            break
    tiny_ids = json.load(open(os.path.join(fixtures, "tiny-eurobert.long.json")))["ids"]
    models = {
        "norne-compact": {"path": "models/norne-compact", "ids": ids[: max(LENGTHS)]},
        "tiny-eurobert": {"path": "__test__/fixtures/tiny-eurobert", "ids": tiny_ids[: max(LENGTHS)]},
    }
    for name, m in models.items():
        config = AutoConfig.from_pretrained(os.path.join(root, m["path"]))
        config.max_position_embeddings = max(LENGTHS)
        model = AutoModelForTokenClassification.from_pretrained(os.path.join(root, m["path"]), config=config, dtype=torch.float32).eval()
        m["pytorch"] = []
        with torch.no_grad():
            for n in LENGTHS:
                x = torch.tensor([m["ids"][:n]])
                want = model.to(torch.float32)(input_ids=x).logits[0].float()
                row = {"length": n}
                for dname, dtype in [("f16", torch.float16), ("bf16", torch.bfloat16)]:
                    got = model.to(dtype)(input_ids=x).logits[0].float()
                    row[dname] = {
                        "max_abs_diff": float((got - want).abs().max()),
                        "mean_abs_diff": float((got - want).abs().mean()),
                        "argmax_agreement": float((got.argmax(-1) == want.argmax(-1)).float().mean()),
                    }
                print(name, json.dumps(row))
                m["pytorch"].append(row)
        attn = model.config._attn_implementation
    out = {
        "generator": "tools/make_half_fixture.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "attn_implementation": attn,
        "max_position_embeddings": max(LENGTHS),
        "models": models,
    }
    path = os.path.join(fixtures, "half.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
