#!/usr/bin/env python3
"""Masked-LM pretraining of the compact EuroBERT on Norwegian text (NoReC + NorNE train).

The bundled model otherwise learns Norwegian from NorNE's 0.6M words alone; this gives its
encoder ~15M words of news reviews first. Not run by CI. Needs torch, transformers, tokenizers
from PyPI, and the NoReC text (the public repository ltgoslo/norec, `data/{train,dev,test}/*.txt`):

    python tools/pretrain_mlm.py --norec /root/norec/data --norne ../shared/norne --out /root/pretrain

Resumable: it writes `<out>/checkpoint.pt` (weights, optimizer, schedule, data position, RNG)
every --save-minutes and at the end; run the same command again to go on. `<out>/encoder/`
holds the latest encoder weights, config and tokenizer, which `train_compact.py --init`
fine-tunes. The log is `<out>/log.txt`.

Dev stays fair: a NoReC document that shares a run of 8 or more words with any NorNE dev
sentence is left out (the count is printed and kept in `<out>/corpus.json`).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import re
import sys
import time

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import EuroBertConfig, EuroBertForMaskedLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eurobert_tokenizer import BOS, EOS, MASK, norne_texts, tokenizer_config, train_tokenizer  # noqa: E402

WORD = re.compile(r"\w+", re.UNICODE)
NGRAM = 8


def ngrams(text: str) -> set[tuple[str, ...]]:
    words = [w.lower() for w in WORD.findall(text)]
    return {tuple(words[i : i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def read_corpus(norec: str, norne: str) -> tuple[list[list[str]], dict]:
    """Documents as lists of lines: NoReC (minus dev overlaps) and NorNE train, one doc per 50 sentences."""
    dev = set()
    for t in norne_texts(norne, "dev"):
        dev |= ngrams(t)
    docs, excluded, files = [], [], sorted(glob.glob(os.path.join(norec, "*", "*.txt")))
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = [l.strip() for l in f if l.strip()]
        if any(g in dev for l in lines for g in ngrams(l)):
            excluded.append(os.path.relpath(path, norec))
            continue
        docs.append(lines)
    train = list(norne_texts(norne, "train"))
    docs += [train[i : i + 50] for i in range(0, len(train), 50)]
    info = {"norec_files": len(files), "norec_excluded_dev_overlap": len(excluded), "excluded": excluded,
            "norne_train_sentences": len(train), "documents": len(docs)}
    return docs, info


def pack(tok, docs, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of whole lines up to seq_len tokens (BOS ... EOS), with each token's word index."""
    ids_out, words_out = [], []
    body = seq_len - 2
    for d0 in range(0, len(docs), 256):
        encs = tok.encode_batch([l for d in docs[d0 : d0 + 256] for l in d], add_special_tokens=False)
        k = 0
        for d in docs[d0 : d0 + 256]:
            cur, cw, nword = [], [], 0
            for _ in d:
                e = encs[k]
                k += 1
                ids = e.ids[:body]
                wids = [w if w is not None else 0 for w in e.word_ids[:body]]
                if cur and len(cur) + len(ids) > body:
                    ids_out.append(cur); words_out.append(cw)
                    cur, cw, nword = [], [], 0
                base = nword
                cur += ids
                cw += [base + w for w in wids]
                nword = (max(cw) + 1) if cw else 0
            if cur:
                ids_out.append(cur); words_out.append(cw)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    n = len(ids_out)
    ids = np.full((n, seq_len), eos, dtype=np.int32)
    words = np.full((n, seq_len), -1, dtype=np.int32)
    for i, (s, w) in enumerate(zip(ids_out, words_out)):
        ids[i, 0] = bos
        ids[i, 1 : 1 + len(s)] = s
        ids[i, 1 + len(s)] = eos
        words[i, 1 : 1 + len(w)] = w
    return ids, words


def widen_mlp(enc: dict, intermediate: int) -> int:
    """Widens a warm start's SwiGLU MLPs to `intermediate` without changing what they compute:
    the new gate/up rows start small and random, the new down-projection columns at zero, so
    the widened model first gives the same outputs and the new units grow from there (Net2Net's
    idea). Returns the old width, or 0 when nothing was widened."""
    old = 0
    for k in list(enc):
        if k.endswith("mlp.down_proj.weight"):
            down = enc[k]
            old = down.shape[1]
            if old >= intermediate:
                return 0
            pre = k[: -len("down_proj.weight")]
            extra = intermediate - old
            enc[k] = torch.cat([down, torch.zeros(down.shape[0], extra)], 1)
            for name in ("gate_proj.weight", "up_proj.weight"):
                w = enc[pre + name]
                enc[pre + name] = torch.cat([w, torch.randn(extra, w.shape[1]) * 0.02], 0)
    return old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norec", required=True, help="NoReC's data folder (train/, dev/, test/ of .txt)")
    ap.add_argument("--norne", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--vocab-size", type=int, default=14000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--epochs", type=float, default=2.0, help="passes over the corpus (sets the schedule's length)")
    ap.add_argument("--mask", type=float, default=0.25, help="share of words masked (whole-word)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--save-minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AVX-512 BF16 or AMX)")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--init", default="", help="warm start: a EuroBERT folder (token classifier or encoder) whose tokenizer and "
                    "encoder weights this run continues from; the MLM head starts as a copy of the embeddings; "
                    "an --intermediate wider than its MLP widens it (the outputs are unchanged at the start)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "log.txt"), "a")

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n"); log.flush()

    enc_dir = os.path.join(args.out, "encoder")
    data_path = os.path.join(args.out, "data.npz")
    tok_path = os.path.join(enc_dir, "tokenizer.json")
    if not os.path.exists(data_path):
        t0 = time.time()
        docs, info = read_corpus(args.norec, args.norne)
        say(f"corpus: {info['documents']} documents; {info['norec_excluded_dev_overlap']} of {info['norec_files']} NoReC files excluded for an {NGRAM}-word run shared with NorNE dev")
        os.makedirs(enc_dir, exist_ok=True)
        if args.init:
            # The warm start's own vocabulary: its embeddings mean these ids.
            from tokenizers import Tokenizer as _Tok
            tok = _Tok.from_file(os.path.join(args.init, "tokenizer.json"))
            tok.no_padding(); tok.no_truncation()
        else:
            tok = train_tokenizer((l for d in docs for l in d), args.vocab_size, prefix_space=True)
        tok.save(tok_path)
        ids, words = pack(tok, docs, args.seq_len)
        info["sequences"] = int(ids.shape[0])
        info["tokens"] = int((ids != tok.token_to_id(EOS)).sum())
        info["words"] = int(sum(len(WORD.findall(l)) for d in docs for l in d))
        with open(os.path.join(args.out, "corpus.json"), "w") as f:
            json.dump(info, f, indent=1)
        np.savez(data_path, ids=ids, words=words)
        say(f"tokenizer and {ids.shape[0]} sequences ({info['tokens']} tokens, {info['words']} words) in {time.time() - t0:.0f}s")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tok_path)
    arr = np.load(data_path)
    ids_all, words_all = torch.from_numpy(arr["ids"].astype(np.int64)), torch.from_numpy(arr["words"].astype(np.int64))
    pad_id, mask_id, vocab = tok.token_to_id(EOS), tok.token_to_id(MASK), tok.get_vocab_size()

    config = EuroBertConfig(
        vocab_size=vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=512, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 250000.0},
        bos_token_id=tok.token_to_id(BOS), eos_token_id=pad_id, pad_token_id=pad_id, mask_token_id=mask_id,
    )
    torch.manual_seed(args.seed)
    model = EuroBertForMaskedLM(config)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if args.init and not os.path.exists(ckpt_path):
        from safetensors.torch import load_file
        src = load_file(os.path.join(args.init, "model.safetensors"))
        enc = {k[len("model."):]: v.float() for k, v in src.items() if k.startswith("model.")}
        if not enc:  # an encoder folder (EuroBertModel) has no "model." prefix
            enc = {k: v.float() for k, v in src.items()}
        widened = widen_mlp(enc, args.intermediate)
        missing, unexpected = model.model.load_state_dict(enc, strict=False)
        if missing or unexpected:
            raise SystemExit(f"--init {args.init}: missing {missing}, unexpected {unexpected}")
        with torch.no_grad():
            model.lm_head.weight.copy_(model.model.embed_tokens.weight)
        say(f"warm start from {args.init} ({len(enc)} tensors); lm_head from the embeddings"
            + (f"; MLP widened {widened} -> {args.intermediate}" if widened else ""))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    n = ids_all.shape[0]
    per_epoch = n // args.batch_size
    total = int(args.epochs * per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / args.warmup) * max(0.02, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    )
    step, seen_tokens, elapsed = 0, 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(ck["model"]); opt.load_state_dict(ck["opt"]); sched.load_state_dict(ck["sched"])
        step, seen_tokens, elapsed = ck["step"], ck["tokens"], ck["elapsed"]
        torch.set_rng_state(ck["rng"])
        say(f"resumed at step {step}/{total} ({seen_tokens} tokens, {elapsed / 3600:.2f} h)")
    n_params = sum(p.numel() for p in model.parameters())
    say(f"{n_params / 1e6:.2f}M parameters, {n} sequences of {args.seq_len}, {total} steps of {args.batch_size}")

    def save() -> None:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                    "tokens": seen_tokens, "elapsed": elapsed, "rng": torch.get_rng_state(), "args": vars(args)},
                   ckpt_path + ".tmp")
        os.replace(ckpt_path + ".tmp", ckpt_path)
        state = {k: v.detach().contiguous() for k, v in model.model.state_dict().items()}
        save_file(state, os.path.join(enc_dir, "model.safetensors"), metadata={"format": "pt"})
        cfg = config.to_dict()
        cfg["architectures"] = ["EuroBertModel"]
        with open(os.path.join(enc_dir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
        with open(os.path.join(enc_dir, "tokenizer_config.json"), "w") as f:
            json.dump(tokenizer_config(512), f, indent=2)
        with open(os.path.join(enc_dir, "pretraining.json"), "w") as f:
            json.dump({"step": step, "steps": total, "tokens": seen_tokens, "hours": elapsed / 3600, "args": vars(args)}, f, indent=1)

    model.train()
    last_save, t_prev, losses = time.time(), time.time(), []
    while step < total:
        # The epoch's order comes from the seed and the epoch, so a resumed run continues it.
        epoch, pos = divmod(step, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed + epoch))
        idx = order[pos * args.batch_size : (pos + 1) * args.batch_size]
        ids, words = ids_all[idx], words_all[idx]
        mask = (ids != pad_id).long()
        mask[:, 0] = 1
        # Trim the batch to its longest sequence.
        L = int(mask.sum(1).max()) + 1
        L = min(L, ids.shape[1])
        ids, words, mask = ids[:, :L], words[:, :L], mask[:, :L]
        eos_pos = ids == pad_id
        mask = mask | eos_pos.long() * (torch.cumsum(eos_pos.long(), 1) == 1).long()  # the closing EOS
        chosen = torch.rand(ids.shape[0], int(words.max()) + 2) < args.mask
        pick = chosen.gather(1, words.clamp(min=0)) & (words >= 0)
        r = torch.rand(ids.shape)
        inp = ids.clone()
        inp[pick & (r < 0.8)] = mask_id
        rand = pick & (r >= 0.8) & (r < 0.9)
        inp[rand] = torch.randint(3, vocab, (int(rand.sum()),))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            hidden = model.model(input_ids=inp, attention_mask=mask).last_hidden_state
            # The vocabulary projection only where a word was masked: a quarter of the rows,
            # and the costliest matrix of this small model.
            logits = model.lm_head(hidden[pick])
        loss = torch.nn.functional.cross_entropy(logits.float(), ids[pick])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True)
        step += 1
        seen_tokens += int(mask.sum())
        losses.append(loss.item())
        now = time.time()
        elapsed += now - t_prev
        t_prev = now
        if step % args.log_every == 0:
            say(f"step {step}/{total} epoch {step / per_epoch:.3f} loss {sum(losses) / len(losses):.3f} lr {sched.get_last_lr()[0]:.2e} "
                f"{seen_tokens / 1e6:.2f}M tokens {elapsed / 3600:.2f} h")
            losses = []
        if now - last_save > args.save_minutes * 60:
            save()
            last_save = time.time()
    save()
    say(f"done: {step} steps, {seen_tokens} tokens, {elapsed / 3600:.2f} h")


if __name__ == "__main__":
    main()
