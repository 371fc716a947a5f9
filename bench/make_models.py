#!/usr/bin/env python3
"""Benchmark models: a EuroBERT-610m-shaped and a bert-base-shaped checkpoint with random weights (not committed) and
ONNX exports (fp32 and dynamic-int8 "q8") of it and of the bundled compact model, all from the
very same safetensors, with ORT's logits checked against PyTorch's on a padded batch.

    python bench/make_models.py [--out bench/out] [--skip-610m]

Writes bench/out/<name>/{config.json, model.safetensors, tokenizer*.json, onnx/model.onnx,
onnx/model_quantized.onnx}. Needs torch, transformers, onnx, onnxruntime (PyPI).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from transformers import (AutoModelForTokenClassification, AutoTokenizer, BertConfig, BertForTokenClassification, EuroBertConfig,
                          EuroBertForTokenClassification)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_fixtures import NORNE_LABELS  # noqa: E402
COMPACT = os.path.join(ROOT, "models", "norne-compact")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def make_610m(out: str) -> None:
    """26 layers, hidden 1152, 18/6 heads, head_dim 64, intermediate 4096, vocab 128256."""
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        random_weights(out)
    # The compact model's tokenizer: its ids are a subset of the 128256-entry vocabulary.
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(COMPACT, f), os.path.join(out, f))
    cfg = json.load(open(os.path.join(out, "tokenizer_config.json")))
    cfg["model_max_length"] = 8192
    json.dump(cfg, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)


def random_weights(out: str) -> None:
    labels = {str(i): l for i, l in enumerate(NORNE_LABELS)}
    config = EuroBertConfig(
        vocab_size=128256, hidden_size=1152, intermediate_size=4096, num_hidden_layers=26,
        num_attention_heads=18, num_key_value_heads=6, head_dim=64, max_position_embeddings=8192,
        rope_parameters={"rope_type": "default", "rope_theta": 250000.0}, rms_norm_eps=1e-5,
        id2label={int(k): v for k, v in labels.items()}, label2id={v: int(k) for k, v in labels.items()},
        bos_token_id=0, eos_token_id=1, pad_token_id=1, mask_token_id=2,
    )
    torch.manual_seed(0)
    model = EuroBertForTokenClassification(config)
    model.save_pretrained(out, safe_serialization=True)


def make_bert_base(out: str) -> None:
    """bert-base-cased's shape (12 layers, hidden 768, 12 heads, intermediate 3072, vocab 28996,
    512 positions) with random weights and NorNE's labels; the tokenizer is the BERT family
    fixture's (its ids are a subset of the vocabulary)."""
    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        labels = dict(enumerate(NORNE_LABELS))
        config = BertConfig(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                            max_position_embeddings=512, id2label=labels, label2id={v: k for k, v in labels.items()})
        torch.manual_seed(0)
        BertForTokenClassification(config).save_pretrained(out, safe_serialization=True)
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(ROOT, "__test__", "fixtures", "families", "bert-cased", f), os.path.join(out, f))


def make_xlmr_base(out: str) -> None:
    """xlm-roberta-base's shape (12 layers, hidden 768, 12 heads, intermediate 3072, a 250,002-row
    vocabulary, 514 positions from pad + 1) with random weights and NorNE's labels: the embedding
    table is 768 MB of its 1.1 GB. The tokenizer is the XLM-R family fixture's."""
    from transformers import XLMRobertaConfig, XLMRobertaForTokenClassification

    os.makedirs(out, exist_ok=True)
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        labels = dict(enumerate(NORNE_LABELS))
        config = XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                                  max_position_embeddings=514, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                                  id2label=labels, label2id={v: k for k, v in labels.items()})
        torch.manual_seed(0)
        XLMRobertaForTokenClassification(config).save_pretrained(out, safe_serialization=True)
    for f in TOKENIZER_FILES:
        src = os.path.join(ROOT, "__test__", "fixtures", "families", "xlm-roberta", f)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(out, f))


def export(model_dir: str) -> None:
    onnx_dir = os.path.join(model_dir, "onnx")
    path = os.path.join(onnx_dir, "model.onnx")
    weights = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(path) and os.path.getmtime(path) < os.path.getmtime(weights):
        shutil.rmtree(onnx_dir)  # exported from older weights (a retrained model)
    os.makedirs(onnx_dir, exist_ok=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    batch = tok(["Erna Solberg besøkte Universitetet i Oslo forrige uke.", "Oslo."], padding=True, return_tensors="pt")
    if not os.path.exists(path):
        # Real padding in the dummy batch keeps the attention mask in the traced graph.
        torch.onnx.export(
            model, (batch["input_ids"], batch["attention_mask"]), path,
            input_names=["input_ids", "attention_mask"], output_names=["logits"],
            dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                          "attention_mask": {0: "batch_size", 1: "sequence_length"},
                          "logits": {0: "batch_size", 1: "sequence_length"}},
            opset_version=17, dynamo=False,
        )
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Over 2 GB the exporter writes the weights to files beside model.onnx.
    large = any(f not in ("model.onnx", "model_quantized.onnx", "check.json") for f in os.listdir(onnx_dir))
    data = os.path.join(onnx_dir, "model.onnx_data")
    if large and not os.path.exists(data):
        # One external-data file, as transformers.js expects for models over 2 GB.
        m = onnx.load(path)
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True, location="model.onnx_data")
        del m
        for f in os.listdir(onnx_dir):
            if f not in ("model.onnx", "model.onnx_data", "model_quantized.onnx", "check.json"):
                os.remove(os.path.join(onnx_dir, f))
    q8 = os.path.join(onnx_dir, "model_quantized.onnx")
    if not os.path.exists(q8):
        quantize_dynamic(path, q8, weight_type=QuantType.QInt8, use_external_data_format=large)
    with torch.no_grad():
        ref = model(**batch).logits.numpy()
    mask = batch["attention_mask"].numpy().astype(bool)
    report = {}
    for name in ("model.onnx", "model_quantized.onnx"):
        sess = ort.InferenceSession(os.path.join(onnx_dir, name), providers=["CPUExecutionProvider"])
        got = sess.run(["logits"], {"input_ids": batch["input_ids"].numpy(), "attention_mask": batch["attention_mask"].numpy()})[0]
        report[name] = float(np.abs(got - ref)[mask].max())
    json.dump({"max_abs_diff_vs_torch_on_real_tokens": report}, open(os.path.join(onnx_dir, "check.json"), "w"), indent=2)
    print(model_dir, report, flush=True)
    if report["model.onnx"] > 1e-3:
        raise SystemExit(f"ONNX fp32 disagrees with PyTorch: {report}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "out"))
    ap.add_argument("--skip-610m", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated model names to make (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    only = set(filter(None, args.only.split(",")))
    want = lambda name: not only or name in only  # noqa: E731
    if want("norne-compact"):
        compact = os.path.join(args.out, "norne-compact")
        os.makedirs(compact, exist_ok=True)
        for f in os.listdir(COMPACT):
            shutil.copy2(os.path.join(COMPACT, f), os.path.join(compact, f))
        export(compact)
    if not args.skip_610m and want("eurobert-610m-random"):
        big = os.path.join(args.out, "eurobert-610m-random")
        make_610m(big)
        export(big)
    if want("bert-base-random"):
        bert = os.path.join(args.out, "bert-base-random")
        make_bert_base(bert)
        export(bert)
    if want("xlm-roberta-base-random"):
        xlmr = os.path.join(args.out, "xlm-roberta-base-random")
        make_xlmr_base(xlmr)
        export(xlmr)


if __name__ == "__main__":
    main()
