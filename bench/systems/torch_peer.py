"""Python transformers' token-classification pipeline on PyTorch CPU (optional peer)."""
import json
import resource
import sys
import time

import torch
from transformers import pipeline

a = dict(zip(sys.argv[1::2], sys.argv[2::2]))
torch.set_num_threads(int(a["--threads"]))
w = json.load(open(a["--work"]))
bs = int(a["--batch-size"])

t = time.perf_counter()
ner = pipeline("token-classification", model=a["--model"], device=-1, dtype=torch.float32)
load_ms = (time.perf_counter() - t) * 1000
opts = {"aggregation_strategy": "simple"}
ner(w["short"][:8], **opts)
t = time.perf_counter()
ner(w["short"], batch_size=bs, **opts)
short_ms = (time.perf_counter() - t) * 1000
t = time.perf_counter()
for doc in w["long"]:
    ner(doc, stride=int(a["--stride"]), **opts)
long_ms = (time.perf_counter() - t) * 1000
lat = []
for text in w["latency"]:
    t = time.perf_counter()
    ner(text, **opts)
    lat.append((time.perf_counter() - t) * 1000)
lat.sort()
print(json.dumps({"system": "transformers (PyTorch)", "loadMs": load_ms, "shortMs": short_ms, "longMs": long_ms,
                  "p50": lat[len(lat) // 2], "p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))], "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))], "calls": len(lat),
                  "peakRssMB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))
