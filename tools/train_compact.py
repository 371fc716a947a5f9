#!/usr/bin/env python3
"""Trains the compact Norwegian NER model bundled with eurobert-ner, from scratch on NorNE.

A small EuroBERT (transformers' own EuroBertConfig / EuroBertForTokenClassification) with a
byte-level BPE tokenizer built like EuroBERT's, trained on NorNE train (Bokmål + Nynorsk),
optionally after masked-LM pretraining on the same text; epochs and weights are chosen on a
held-out tenth of train's documents with `--holdout 0.1` (else on NorNE dev). Not run by CI. Needs torch, transformers, tokenizers, seqeval from PyPI:

    python tools/train_compact.py --norne ../shared/norne --out models/norne-compact

(the bundled model's full recipe, with its two teachers, is in models/norne-compact/README.md).
Each sentence's text is rebuilt from its tokens and SpaceAfter flags; a word's label goes to
the first model token that overlaps it; the other tokens are ignored by the loss, or with
--label-all learn I-X (or O). Dev scores use the first token only, the same rule the
package's `evaluate` uses, so the dev scores printed here and those of `eurobert-ner
evaluate` agree.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import sys
import time

import tokenizers
import torch
import transformers
from seqeval.metrics import classification_report, f1_score
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import EuroBertConfig, EuroBertForMaskedLM, EuroBertForTokenClassification

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eurobert_tokenizer import BOS, EOS, MASK, tokenizer_config, train_tokenizer  # noqa: E402
from make_fixtures import NORNE_LABELS  # noqa: E402

LABEL_ID = {l: i for i, l in enumerate(NORNE_LABELS)}


def read_conllu(path: str) -> list[tuple[str, list[tuple[int, int]], list[str]]]:
    """(text, word spans, tags) per sentence; text rebuilt from forms and SpaceAfter."""
    out, forms = [], []
    with open(path, encoding="utf-8") as f:
        for line in list(f) + [""]:
            line = line.rstrip("\n")
            if not line.strip():
                if forms:
                    text, spans, tags = "", [], []
                    for form, space, tag in forms:
                        spans.append((len(text), len(text) + len(form)))
                        text += form + (" " if space else "")
                        tags.append(tag)
                    out.append((text.rstrip(" "), spans, tags))
                forms = []
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            misc = cols[9].split("|")
            tag = next(m[5:] for m in misc if m.startswith("name="))
            forms.append((cols[1], "SpaceAfter=No" not in misc, tag))
    return out


def load_split(norne: str, split: str):
    return [s for lang in ("nob", "nno") for s in read_conllu(os.path.join(norne, lang, f"{split}.conllu"))]


def split_documents(norne: str, split: str):
    """The document of each sentence of load_split's list: its sent_id without the sentence
    number ('ap001_0000-1' -> 'ap001_0000'; 366 documents in train)."""
    docs = []
    for lang in ("nob", "nno"):
        with open(os.path.join(norne, lang, f"{split}.conllu"), encoding="utf-8") as f:
            docs += [line.split("=", 1)[1].strip().rsplit("-", 1)[0] for line in f if line.startswith("# sent_id")]
    return docs


def hold_out(norne: str, sentences, fraction: float):
    """(train, held out): whole documents, those whose name hashes below fraction, so every run
    holds out the same slice (for selection: epochs, weights, recipes), and dev is seen once."""
    docs = split_documents(norne, "train")
    if len(docs) != len(sentences):
        raise SystemExit(f"{len(docs)} sent_ids for {len(sentences)} sentences")
    held = {d for d in set(docs) if int(hashlib.sha256(d.encode()).hexdigest()[:8], 16) / 2**32 < fraction}
    return ([s for s, d in zip(sentences, docs) if d not in held], [s for s, d in zip(sentences, docs) if d in held])


def norec_sentences(norec: str, norne: str, count: int, rng):
    """count NoReC lines of 4-50 words as (text, word spans, all-'O' tags), for self-training:
    only the teachers' soft labels train on them. Files are drawn at random; a file that shares
    an 8-word run with NorNE dev is skipped (pretrain_mlm.py's rule), so dev stays unseen."""
    import glob
    from pretrain_mlm import ngrams
    from eurobert_tokenizer import norne_texts

    dev = set()
    for t in norne_texts(norne, "dev"):
        dev |= ngrams(t)
    files = sorted(glob.glob(os.path.join(norec, "*", "*.txt")))
    rng.shuffle(files)
    out, skipped = [], 0
    for path in files:
        with open(path, encoding="utf-8") as f:
            lines = [l.strip() for l in f if l.strip()]
        if any(g in dev for l in lines for g in ngrams(l)):
            skipped += 1
            continue
        for line in lines:
            words = [m.span() for m in WORD_OR_MARK.finditer(line)]
            if 4 <= len(words) <= 50:
                out.append((line, words, ["O"] * len(words)))
                if len(out) == count:
                    print(f"NoReC: {count} sentences; {skipped} files skipped for a dev overlap", flush=True)
                    return out
    return out


WORD_OR_MARK = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def encode(tok, sentences, max_len, label_all=False):
    """Token ids and per-token labels (-100 except on each word's first token).

    With label_all, a word's later tokens are trained too, as inside the word's entity (I-X, or
    O): more signal per sentence; prediction still reads each word's first token."""
    data = []
    for text, spans, tags in sentences:
        enc = tok.encode(text)
        ids = enc.ids[:max_len]
        labels = [-100] * len(ids)
        first = []  # model token index of each word's first token
        for (ws, we), tag in zip(spans, tags):
            toks = [i for i, (s, e) in enumerate(enc.offsets[: len(ids)]) if not enc.special_tokens_mask[i] and s < we and e > ws]
            k = toks[0] if toks else None
            first.append(k)
            if k is not None and labels[k] == -100:
                labels[k] = LABEL_ID[tag]
            if label_all:
                inside = LABEL_ID["O" if tag == "O" else "I-" + tag[2:]]
                for i in toks[1:]:
                    if labels[i] == -100:
                        labels[i] = inside
        words = [-1 if w is None else w for w in enc.word_ids[: len(ids)]]
        data.append((ids, labels, first, words))
    return data


def batches(data, batch_size, shuffle, rng, pad_id):
    order = list(range(len(data)))
    if shuffle:
        rng.shuffle(order)
    # Group similar lengths to waste little on padding; shuffle the batches.
    chunks = [order[i : i + batch_size * 50] for i in range(0, len(order), batch_size * 50)]
    out = []
    for chunk in chunks:
        chunk.sort(key=lambda i: len(data[i][0]))
        out += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    if shuffle:
        rng.shuffle(out)
    for idx in out:
        n = max(len(data[i][0]) for i in idx)
        ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        labels = torch.full((len(idx), n), -100, dtype=torch.long)
        words = torch.full((len(idx), n), -1, dtype=torch.long)
        for r, i in enumerate(idx):
            L = len(data[i][0])
            ids[r, :L] = torch.tensor(data[i][0])
            mask[r, :L] = 1
            labels[r, :L] = torch.tensor(data[i][1])
            words[r, :L] = torch.tensor(data[i][3])
        yield idx, ids, mask, labels, words


def schedule(opt, total, warmup):
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    )


def add_dropout(model, p):
    """Dropout on the residual branches while training, by forward hooks: the architecture, and
    so the saved model and its inference, stay EuroBERT's own, which has no hidden dropout."""
    if p <= 0:
        return

    def hook(module, _inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (torch.nn.functional.dropout(output[0], p, True),) + output[1:]
        return torch.nn.functional.dropout(output, p, True)

    model.embed_tokens.register_forward_hook(hook)
    for layer in model.layers:
        layer.self_attn.register_forward_hook(hook)
        layer.mlp.register_forward_hook(hook)


def mlm_pretrain(args, config, data, pad_id, mask_id, vocab_size, rng):
    model = EuroBertForMaskedLM(config)
    add_dropout(model.model, args.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=args.mlm_lr, weight_decay=0.01)
    steps = args.mlm_epochs * math.ceil(len(data) / args.batch_size)
    sched = schedule(opt, steps, 200)
    model.train()
    step, t0 = 0, time.time()
    for epoch in range(args.mlm_epochs):
        for _, ids, mask, _, words in batches(data, args.batch_size, True, rng, pad_id):
            labels = ids.clone()
            special = ids < 3  # BOS, EOS, MASK are ids 0..2
            if args.wwm:
                # Whole-word masking: a word is masked with all its tokens, or not at all.
                chosen = torch.rand(ids.shape[0], int(words.max()) + 2) < 0.25
                pick = chosen.gather(1, (words + 1).clamp(min=0)) & (words >= 0)
            else:
                pick = torch.rand(ids.shape) < 0.3
            pick = pick & mask.bool() & ~special
            labels[~pick] = -100
            r = torch.rand(ids.shape)
            inp = ids.clone()
            inp[pick & (r < 0.8)] = mask_id
            rand = pick & (r >= 0.8) & (r < 0.9)
            inp[rand] = torch.randint(3, vocab_size, (int(rand.sum()),))
            loss = model(input_ids=inp, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            step += 1
            if step % 200 == 0:
                print(f"mlm epoch {epoch} step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
    return model.model.state_dict()


@torch.no_grad()
def predict(model, data, pad_id, batch_size=64, with_logp=False):
    """Argmax labels of each word's first token; with_logp, also the (words, labels) log-softmax."""
    model.eval()
    preds, logps = [None] * len(data), [None] * len(data)
    for idx, ids, mask, _, _ in batches(data, batch_size, False, None, pad_id):
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        best = logits.argmax(-1)
        for r, i in enumerate(idx):
            preds[i] = [NORNE_LABELS[int(best[r, k])] if k is not None else "O" for k in data[i][2]]
            if with_logp:
                rows = torch.stack([logits[r, k] if k is not None else torch.full((len(NORNE_LABELS),), 0.0) for k in data[i][2]]) \
                    if data[i][2] else torch.zeros((0, len(NORNE_LABELS)))
                logps[i] = torch.log_softmax(rows, -1)
    return (preds, logps) if with_logp else preds


def _allowed(prev, cur):
    """IOB2: I-X only after B-X or I-X (prev None: the start)."""
    c = NORNE_LABELS[cur]
    if not c.startswith("I-"):
        return True
    return prev is not None and NORNE_LABELS[prev][2:] == c[2:] and NORNE_LABELS[prev] != "O"


_ALLOWED = torch.tensor([[_allowed(p, c) for c in range(len(NORNE_LABELS))] for p in range(len(NORNE_LABELS))])
_START = torch.tensor([_allowed(None, c) for c in range(len(NORNE_LABELS))])


def viterbi(logp):
    """The IOB2-valid label sequence of highest total log-probability (as src/pipeline/viterbi.ts)."""
    if len(logp) == 0:
        return []
    neg = torch.tensor(float("-inf"))
    score = torch.where(_START, logp[0], neg)
    back = []
    for i in range(1, len(logp)):
        cand = torch.where(_ALLOWED, score[:, None], neg)  # (prev, cur)
        best, arg = cand.max(0)
        back.append(arg)
        score = best + logp[i]
    path = [int(score.argmax())]
    for arg in reversed(back):
        path.append(int(arg[path[-1]]))
    return [NORNE_LABELS[j] for j in reversed(path)]


class EMA:
    """Exponential moving average of the weights, evaluated beside the raw weights each epoch."""

    def __init__(self, model, decay):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    @torch.no_grad()
    def update(self, model):
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v, 1 - self.decay)

    @contextlib.contextmanager
    def swapped(self, model):
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict({**raw, **self.shadow})
        try:
            yield
        finally:
            model.load_state_dict(raw)


def teacher_targets(dirs, sentences, temp, max_len, n_gold):
    """Per sentence, the teachers' mean label distribution (at temperature temp) of each word,
    read at each word's first token under the teacher's own tokenizer: word-level targets, so
    a student with another tokenizer, or BPE-dropout, can learn from them."""
    total = None
    for d in dirs.split(","):
        t_tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        teacher = EuroBertForTokenClassification.from_pretrained(d, dtype=torch.float32)
        data = encode(t_tok, sentences, max_len)
        _, logps = predict(teacher, data, t_tok.token_to_id(EOS), with_logp=True)
        probs = [torch.softmax(lp / temp, -1) for lp in logps]  # log-softmax / T, renormalized
        total = probs if total is None else [a + b for a, b in zip(total, probs)]
        gold, pred = [t for _, _, t in sentences[:n_gold]], [[NORNE_LABELS[int(j)] for j in lp.argmax(-1)] for lp in logps[:n_gold]]
        print(f"teacher {d}: train micro F1 {f1_score(gold, pred):.4f}", flush=True)
    n = len(dirs.split(","))
    return [p / n for p in total]


def kd_loss(logits, idx, data, soft, temp):
    """KL(teacher || student) at each word's first token, times T² (Hinton et al.)."""
    rows, targets = [], []
    for r, i in enumerate(idx):
        for w, k in enumerate(data[i][2]):
            if k is not None:
                rows.append(logits[r, k])
                targets.append(soft[i][w])
    if not rows:
        return logits.sum() * 0
    student = torch.log_softmax(torch.stack(rows) / temp, -1)
    return torch.nn.functional.kl_div(student, torch.stack(targets), reduction="batchmean") * temp * temp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--norne", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=768)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--token-dropout", type=float, default=0.0,
                    help="share of input tokens replaced by <|mask|> while training (a regularizer)")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="training-only dropout on the embeddings and each attention and MLP output (EuroBERT has none)")
    ap.add_argument("--mlm-epochs", type=int, default=0)
    ap.add_argument("--wwm", action="store_true", help="whole-word masking in MLM pretraining")
    ap.add_argument("--mention-replace", type=float, default=0.0,
                    help="each epoch, replace each entity mention with another of its type with this probability")
    ap.add_argument("--faker", action="store_true", help="add Faker (no_NO, MIT) names, cities and companies to the mention pools")
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--average-last", type=int, default=0, help="also try the average of the last K epochs' weights")
    ap.add_argument("--holdout", type=float, default=0.0, help="hold out this share of train's documents; choices are made on it, not on dev")
    ap.add_argument("--limit", type=int, default=0, help="use only this many train and dev sentences (a smoke test)")
    ap.add_argument("--mlm-lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--bpe-dropout", type=float, default=0.0, help="BPE-dropout while training (segmentations vary each epoch)")
    ap.add_argument("--prefix-space", action="store_true", help="tokenizer puts a space before the text (first word as mid-sentence)")
    ap.add_argument("--mlm-aux", type=float, default=0.0, help="weight of an auxiliary masked-LM loss on the --token-dropout tokens")
    ap.add_argument("--label-all", action="store_true", help="train each word's later tokens too (I-X or O)")
    ap.add_argument("--ema", type=float, default=0.0, help="also score an exponential moving average of the weights (decay)")
    ap.add_argument("--teacher", default="", help="comma-separated model folders whose mean word-level predictions are distilled")
    ap.add_argument("--kd-weight", type=float, default=0.5, help="share of the distillation loss (with --teacher)")
    ap.add_argument("--kd-temp", type=float, default=2.0, help="distillation temperature")
    ap.add_argument("--norec", default="", help="NoReC's data folder: with --unlabeled, self-training sentences")
    ap.add_argument("--unlabeled", type=int, default=0, help="this many NoReC sentences trained on the teachers' soft labels only (needs --teacher)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default="", help="start from a pretrained encoder folder (tools/pretrain_mlm.py's <out>/encoder), or a token classifier's encoder: its weights, tokenizer and shape")
    ap.add_argument("--save-dtype", choices=["float32", "bfloat16", "float16"], default="float16")
    args = ap.parse_args()
    t_start = time.time()  # wall time includes the tokenizer, MLM and teachers

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    os.makedirs(args.out, exist_ok=True)

    train, dev = load_split(args.norne, "train"), load_split(args.norne, "dev")
    held = []
    if args.holdout > 0:
        train, held = hold_out(args.norne, train, args.holdout)
    if args.limit:
        train, dev, held = train[: args.limit], dev[: args.limit], held[: args.limit]
    print(f"train {len(train)} sentences, held out {len(held)}, dev {len(dev)}", flush=True)
    if args.init:
        # A pretrained encoder (tools/pretrain_mlm.py's <out>/encoder): its tokenizer and shape.
        tok = Tokenizer.from_file(os.path.join(args.init, "tokenizer.json"))
        with open(os.path.join(args.init, "config.json")) as f:
            shape = json.load(f)
        args.hidden, args.layers = shape["hidden_size"], shape["num_hidden_layers"]
        args.heads, args.kv_heads, args.intermediate = shape["num_attention_heads"], shape["num_key_value_heads"], shape["intermediate_size"]
        args.vocab_size = tok.get_vocab_size()
    else:
        tok = train_tokenizer((t for t, _, _ in train), args.vocab_size, args.prefix_space)
    pad_id, mask_id = tok.token_to_id(EOS), tok.token_to_id(MASK)
    n_labeled = len(train)
    if args.unlabeled:
        if not (args.teacher and args.norec):
            raise SystemExit("--unlabeled needs --teacher and --norec")
        train = train + norec_sentences(args.norec, args.norne, args.unlabeled, random.Random(args.seed))
    train_data, dev_data = encode(tok, train, args.max_len, args.label_all), encode(tok, dev, args.max_len)
    dev_gold = [tags for _, _, tags in dev]
    # Self-training sentences carry no gold labels: the loss reads only their soft labels.
    train_data[n_labeled:] = [(ids, [-100] * len(labels), first, words) for ids, labels, first, words in train_data[n_labeled:]]
    held_data, held_gold = encode(tok, held, args.max_len), [tags for _, _, tags in held]
    # Choices (epoch, raw or EMA, averaging) use the held-out slice when there is one.
    sel = "held_f1" if held else "dev_f1"

    config = EuroBertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=args.max_len, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 250000.0},
        bos_token_id=tok.token_to_id(BOS), eos_token_id=pad_id, pad_token_id=pad_id, mask_token_id=mask_id,
        id2label=dict(enumerate(NORNE_LABELS)), label2id=LABEL_ID,
    )
    model = EuroBertForTokenClassification(config)
    if args.init:
        from safetensors.torch import load_file
        weights = load_file(os.path.join(args.init, "model.safetensors"))
        # A token classifier (a shipped model) starts from its encoder; its classifier is new.
        if any(k.startswith("model.") for k in weights):
            weights = {k[len("model."):]: v.float() for k, v in weights.items() if k.startswith("model.")}
        missing, unexpected = model.model.load_state_dict(weights, strict=False)
        print(f"encoder from {args.init}; missing {missing}, unexpected {unexpected}", flush=True)
    if args.mlm_epochs > 0:
        model.model.load_state_dict(mlm_pretrain(args, config, train_data, pad_id, mask_id, tok.get_vocab_size(), rng))
    add_dropout(model.model, args.dropout)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f}M parameters", flush=True)

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * math.ceil(len(train_data) / args.batch_size)
    sched = schedule(opt, steps, 300)
    pools = mention_pools(train, args.faker, rng) if args.mention_replace > 0 else None
    # BPE-dropout: a copy of the tokenizer that splits words at random while training, so the
    # model sees many segmentations of each name (the saved tokenizer has no dropout).
    train_tok = tok
    if args.bpe_dropout > 0:
        train_tok = Tokenizer.from_str(tok.to_str())
        train_tok.model.dropout = args.bpe_dropout
    soft = teacher_targets(args.teacher, train, args.kd_temp, args.max_len, n_labeled) if args.teacher else None
    ema = EMA(model, args.ema) if args.ema > 0 else None
    best, history, t0, step, recent, saved, report = -1.0, [], time.time(), 0, [], None, None

    def score(tag):
        pred, logp = predict(model, dev_data, pad_id, with_logp=True)
        f1, f1v = f1_score(dev_gold, pred), f1_score(dev_gold, [viterbi(lp) for lp in logp])
        row = {"dev_f1" + tag: f1, "dev_f1_viterbi" + tag: f1v}
        if held:
            hpred, hlogp = predict(model, held_data, pad_id, with_logp=True)
            row["held_f1" + tag] = f1_score(held_gold, hpred)
            row["held_f1_viterbi" + tag] = f1_score(held_gold, [viterbi(lp) for lp in hlogp])
        return row, pred

    for epoch in range(args.epochs):
        model.train()
        epoch_data = train_data
        if pools is not None:
            epoch_data = encode(train_tok, [replace_mentions(s, pools, args.mention_replace, rng) for s in train], args.max_len, args.label_all)
        elif train_tok is not tok:
            epoch_data = encode(train_tok, train, args.max_len, args.label_all)
        if epoch_data is not train_data:
            epoch_data[n_labeled:] = [(ids, [-100] * len(labels), first, words) for ids, labels, first, words in epoch_data[n_labeled:]]
        for idx, ids, mask, labels, _ in batches(epoch_data, args.batch_size, True, rng, pad_id):
            orig, drop = ids, torch.zeros(ids.shape, dtype=torch.bool)
            if args.token_dropout > 0:
                drop = (torch.rand(ids.shape) < args.token_dropout) & mask.bool() & (ids > 2)
                ids = ids.masked_fill(drop, mask_id)
            hidden = model.model(input_ids=ids, attention_mask=mask)[0]
            logits = model.classifier(hidden)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, label_smoothing=args.label_smoothing
            ) if (labels != -100).any() else logits.sum() * 0  # a batch of self-training sentences only
            if args.mlm_aux > 0 and drop.any():
                # Auxiliary masked-LM loss on the dropped tokens, decoded through the input
                # embeddings (tied), so the encoder also learns to predict words from context.
                mlm = hidden[drop] @ model.model.embed_tokens.weight.T
                loss = loss + args.mlm_aux * torch.nn.functional.cross_entropy(mlm, orig[drop])
            if soft is not None:
                loss = (1 - args.kd_weight) * loss + args.kd_weight * kd_loss(logits, idx, epoch_data, soft, args.kd_temp)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(); sched.step(); opt.zero_grad()
            if ema is not None:
                ema.update(model)
            step += 1
            if step % 200 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s", flush=True)
        row, pred = score("")
        candidates = [(row[sel], None, pred)]
        if ema is not None:
            with ema.swapped(model):
                ema_row, ema_pred = score("_ema")
            row.update(ema_row)
            candidates.append((ema_row[sel + "_ema"], "ema", ema_pred))
        history.append({"epoch": epoch + 1, **row, "seconds": round(time.time() - t0)})
        print(f"epoch {epoch + 1}: " + " ".join(f"{k} {v:.4f}" for k, v in row.items()) + f" ({time.time() - t0:.0f}s)", flush=True)
        f1, which, pred = max(candidates, key=lambda c: c[0])
        if f1 > best:
            best, saved = f1, {"epoch": epoch + 1, "weights": which or "raw", sel: f1}
            if which == "ema":
                with ema.swapped(model):
                    report = save(model, tok, args, history, config, dev_gold, pred, n_params)
            else:
                report = save(model, tok, args, history, config, dev_gold, pred, n_params)
        if args.average_last > 0:
            recent = (recent + [{k: v.detach().clone() for k, v in model.state_dict().items()}])[-args.average_last :]
    if len(recent) > 1:
        # Checkpoint averaging: the mean of the last epochs' weights often beats each of them.
        last = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict({k: sum(r[k] for r in recent) / len(recent) for k in last})
        row, pred = score("")
        history.append({"epoch": f"average of last {len(recent)}", **row, "seconds": round(time.time() - t0)})
        print(f"average of the last {len(recent)} epochs: {sel} {row[sel]:.4f}", flush=True)
        if row[sel] > best:
            best = row[sel]
            saved = {"epoch": history[-1]["epoch"], "weights": "average", sel: best}
            report = save(model, tok, args, history, config, dev_gold, pred, n_params)
    # The whole history, not only up to the saved epoch, and which weights were kept.
    write_record(args, {"parameters": n_params, "history": history, "dev_report": report,
                        "saved": saved, "wall_seconds": round(time.time() - t_start)})
    print(f"best {sel} {best:.4f}")


def mentions(sentence):
    """(start word, end word, type) of each entity of an IOB2-tagged sentence."""
    _, _, tags = sentence
    out, start = [], None
    for i, tag in enumerate(tags + ["O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == tags[start][2:]):
            out.append((start, i, tags[start][2:]))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start = i
    return out


def mention_pools(train, faker, rng):
    """Surface forms of each entity type: NorNE train's, plus Faker's Norwegian names if asked."""
    pools = {}
    for s in train:
        text, spans, _ = s
        for a, b, typ in mentions(s):
            pools.setdefault(typ, []).append(text[spans[a][0] : spans[b - 1][1]])
    if faker:
        from faker import Faker

        fk = Faker("no_NO")
        fk.seed_instance(rng.randrange(1 << 30))
        pools["PER"] += [fk.name() for _ in range(5000)] + [fk.last_name() for _ in range(2000)]
        pools["GPE_LOC"] += [fk.city() for _ in range(3000)]
        pools["LOC"] += [fk.street_name() for _ in range(2000)]
        pools["ORG"] += [fk.company() for _ in range(3000)]
    return pools


def replace_mentions(sentence, pools, p, rng):
    """The sentence with each mention, with probability p, swapped for another of its type."""
    text, spans, tags = sentence
    found = [m for m in mentions(sentence) if m[2] in pools and rng.random() < p]
    if not found:
        return sentence
    new_text, new_spans, new_tags = "", [], []
    at, w = 0, 0  # next original character and word to copy

    def copy(upto_char, upto_word):
        nonlocal new_text
        base = len(new_text) - at
        new_text += text[at:upto_char]
        for k in range(w, upto_word):
            new_spans.append((spans[k][0] + base, spans[k][1] + base))
            new_tags.append(tags[k])

    for a, b, typ in found:
        copy(spans[a][0], a)
        for j, word in enumerate(rng.choice(pools[typ]).split()):
            if j:
                new_text += " "
            new_spans.append((len(new_text), len(new_text) + len(word)))
            new_text += word
            new_tags.append(("B-" if j == 0 else "I-") + typ)
        at, w = spans[b - 1][1], b
    copy(len(text), len(spans))
    return new_text, new_spans, new_tags



def save(model, tok, args, history, config, gold, pred, n_params):
    dtype = getattr(torch, args.save_dtype)
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    os.chmod(os.path.join(args.out, "model.safetensors"), 0o644)  # save_file leaves it owner-only
    config_dict = config.to_dict()
    config_dict["architectures"] = ["EuroBertForTokenClassification"]
    config_dict["dtype"] = args.save_dtype
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config_dict, f, indent=2, sort_keys=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(args.max_len), f, indent=2)
    report = classification_report(gold, pred, digits=4)
    write_record(args, {"parameters": n_params, "history": history, "dev_report": report})
    print(report, flush=True)
    return report


def write_record(args, record):
    """training.json: the command's arguments, versions, per-epoch scores, the saved epoch."""
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump({"script": "tools/train_compact.py", "args": vars(args), "torch": torch.__version__,
                   "transformers": transformers.__version__, "tokenizers": tokenizers.__version__, **record}, f, indent=2)


if __name__ == "__main__":
    main()
