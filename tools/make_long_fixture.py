#!/usr/bin/env python3
"""Records transformers' logits for one 8,192-token window of the tiny fixture model.

The committed `__test__/fixtures/tiny-eurobert` is loaded with `max_position_embeddings` raised
to 8192 (RoPE has no learned positions, so the weights are unchanged) and run on 8,192 seeded
random token ids, BOS first. Not run by CI; regenerate with (torch, transformers from PyPI):

    python tools/make_long_fixture.py

Writes `__test__/fixtures/tiny-eurobert.long.json`: the ids, and the logits of every 61st
token plus the first and last 16 (all 8,192 rows would be 2 MB of JSON).
"""
from __future__ import annotations

import json
import os

import torch
import transformers
from transformers import AutoConfig, AutoModelForTokenClassification

LENGTH = 8192


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    fixtures = os.path.join(root, "__test__", "fixtures")
    model_dir = os.path.join(fixtures, "tiny-eurobert")
    config = AutoConfig.from_pretrained(model_dir)
    config.max_position_embeddings = LENGTH
    model = AutoModelForTokenClassification.from_pretrained(model_dir, config=config, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(8192)
    ids = torch.randint(3, config.vocab_size, (LENGTH,), generator=gen)
    ids[0] = config.bos_token_id
    with torch.no_grad():
        logits = model(input_ids=ids[None]).logits[0]
    rows = sorted(set(range(16)) | set(range(0, LENGTH, 61)) | set(range(LENGTH - 16, LENGTH)))
    out = {
        "generator": "tools/make_long_fixture.py",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "attn_implementation": model.config._attn_implementation,
        "max_position_embeddings": LENGTH,
        "ids": ids.tolist(),
        "rows": rows,
        "logits": [[float(v) for v in logits[r].tolist()] for r in rows],
    }
    path = os.path.join(fixtures, "tiny-eurobert.long.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
