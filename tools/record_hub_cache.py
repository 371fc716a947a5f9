#!/usr/bin/env python3
"""Records the cache tree Python's huggingface_hub writes, and checks that transformers loads
the cache eurobert-ner writes, both against the test Hub server (__test__/helpers/hub-server.ts).

Not run by CI (it needs huggingface_hub, transformers and torch); the tests compare our cache
against what it records. Run from the repository root after `npm run build`:

    python tools/record_hub_cache.py

1. starts the test Hub on 127.0.0.1, serving __test__/fixtures/tiny-eurobert as repo test/tiny;
2. downloads the files our loader downloads with `huggingface_hub.snapshot_download` into an
   empty cache (HF_ENDPOINT pointing at the server) and lists that cache;
3. downloads the same repo with eurobert-ner into another empty cache and loads that cache in
   transformers with `local_files_only=True`, comparing its logits with the folder's.

Writes __test__/fixtures/hub-python-cache.json.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "model.safetensors"]


def tree(root: str) -> list:
    """The listing __test__/helpers/cache-tree.ts makes."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(d, root)
        if rel_dir.split(os.sep)[0] == ".locks":
            continue
        for name in sorted(dirs + files):
            p = os.path.join(d, name)
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if rel == ".locks":
                continue
            if os.path.islink(p):
                out.append([rel, "link", os.readlink(p).replace(os.sep, "/")])
            elif os.path.isfile(p):
                out.append([rel, "file", os.path.getsize(p)])
    return sorted(out)


def main() -> None:
    import huggingface_hub
    import torch
    import transformers
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    folder = os.path.join(ROOT, "__test__", "fixtures", "tiny-eurobert")
    server = subprocess.Popen(
        ["node", "--import", "tsx", os.path.join(ROOT, "__test__", "helpers", "hub-server.ts"), f"test/tiny={folder}"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        url = json.loads(server.stdout.readline())["url"]
        with tempfile.TemporaryDirectory() as tmp:
            py_cache, our_cache = os.path.join(tmp, "python"), os.path.join(tmp, "ours")
            os.environ["HF_ENDPOINT"] = url
            os.environ["HF_HUB_DISABLE_XET"] = "1"
            huggingface_hub.constants.ENDPOINT = url
            huggingface_hub.constants.HUGGINGFACE_CO_URL_TEMPLATE = url + "/{repo_id}/resolve/{revision}/{filename}"
            huggingface_hub.snapshot_download("test/tiny", cache_dir=py_cache, allow_patterns=FILES)

            script = (
                "const { resolveModel } = require('./dist/pipeline/hub.js');"
                f"resolveModel('test/tiny', {{ endpoint: {json.dumps(url)}, cacheDir: {json.dumps(our_cache)} }})"
                ".then((p) => console.log(p))"
            )
            subprocess.run(["node", "-e", script], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)

            text = "Erna Solberg besøkte Universitetet i Oslo."
            ref_tok = AutoTokenizer.from_pretrained(folder)
            ref = AutoModelForTokenClassification.from_pretrained(folder).eval()
            tok = AutoTokenizer.from_pretrained("test/tiny", cache_dir=our_cache, local_files_only=True)
            model = AutoModelForTokenClassification.from_pretrained("test/tiny", cache_dir=our_cache, local_files_only=True).eval()
            with torch.no_grad():
                a = ref(**ref_tok(text, return_tensors="pt")).logits
                b = model(**tok(text, return_tensors="pt")).logits
            record = {
                "generator": "tools/record_hub_cache.py",
                "versions": {"huggingface_hub": huggingface_hub.__version__, "transformers": transformers.__version__},
                "repo": "test/tiny",
                "files": FILES,
                "python_tree": tree(py_cache),
                "ours_tree": tree(our_cache),
                "python_loaded_ours": {"max_abs_diff": float((a - b).abs().max())},
            }
    finally:
        server.terminate()
    path = os.path.join(ROOT, "__test__", "fixtures", "hub-python-cache.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    print(json.dumps({k: record[k] for k in ("python_loaded_ours",)}), "same tree:", record["python_tree"] == record["ours_tree"])


if __name__ == "__main__":
    sys.exit(main())
