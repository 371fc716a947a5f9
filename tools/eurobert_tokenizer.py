"""A byte-level BPE tokenizer laid out like EuroBERT's (Llama-3 style), trained on NorNE text.

Shared by the fixture script and the training script so both build the same kind of file:
Split(Llama-3 regex, isolated) + ByteLevel pre-tokenizer, ByteLevel decoder, and a
post-processor that keeps untrimmed offsets (ByteLevel trim_offsets=False) and adds
<|begin_of_text|> ... <|end_of_text|> around every sequence.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

BOS, EOS, MASK = "<|begin_of_text|>", "<|end_of_text|>", "<|mask|>"
SPECIALS = [BOS, EOS, MASK]
# Llama-3 / EuroBERT pre-tokenizer pattern.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def norne_texts(norne_dir: str, split: str = "train") -> Iterator[str]:
    """Yields the `# text` line of every sentence of both written standards."""
    for lang in ("nob", "nno"):
        path = os.path.join(norne_dir, lang, f"{split}.conllu")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("# text = "):
                    yield line[len("# text = "):].rstrip("\n")


def train_tokenizer(texts: Iterable[str], vocab_size: int, prefix_space: bool = False) -> Tokenizer:
    """With prefix_space, a normalizer puts a space before the text, so a sentence's first word
    is tokenized as it is mid-sentence ("ĠJonas", not "J on as"); offsets still point into the
    original text."""
    tok = Tokenizer(models.BPE())
    if prefix_space:
        tok.normalizer = normalizers.Prepend(" ")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A {EOS}",
                pair=f"{BOS} $A {EOS} $B {EOS}",
                special_tokens=[(BOS, bos), (EOS, eos)],
            ),
        ]
    )
    return tok


def tokenizer_config(model_max_length: int) -> dict:
    """tokenizer_config.json for transformers' fast tokenizer; pad is EOS as in EuroBERT."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "pad_token": EOS,
        "mask_token": MASK,
        "model_max_length": model_max_length,
        "padding_side": "right",
        "clean_up_tokenization_spaces": False,
    }
