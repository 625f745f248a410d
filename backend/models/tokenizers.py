"""CLIP tokenizers built without the hub.

Two kinds:
- the real CLIP BPE tokenizer (49408 tokens) that SD1.5 and SDXL were trained with, rebuilt from
  ``bpe_simple_vocab_16e6.txt.gz`` (OpenAI CLIP's merge list, MIT, shipped beside this file as in
  open_clip) exactly the way CLIP's own ``SimpleTokenizer`` derives its vocabulary;
- a byte-level tokenizer (514 tokens, no merges) for the tiny random models: every byte is a token.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

from transformers import CLIPTokenizer

BPE_GZ = Path(__file__).with_name("bpe_simple_vocab_16e6.txt.gz")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 77


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _byte_symbols() -> list[str]:
    symbols = list(bytes_to_unicode().values())
    return symbols + [s + "</w>" for s in symbols]


def byte_level_vocab() -> tuple[dict[str, int], list[str]]:
    """Vocab and (empty) merges for the tiny models: ids 0..511 are bytes, then BOS, EOS."""
    vocab = _byte_symbols() + [BOS, EOS]
    return {tok: i for i, tok in enumerate(vocab)}, []


@lru_cache(maxsize=1)
def clip_bpe_vocab() -> tuple[dict[str, int], list[str]]:
    """CLIP's 49408-token vocabulary and its 48894 merges, derived as CLIP's SimpleTokenizer does."""
    lines = gzip.open(BPE_GZ).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    vocab = _byte_symbols() + ["".join(m.split()) for m in merges] + [BOS, EOS]
    return {tok: i for i, tok in enumerate(vocab)}, merges


def make_tokenizer(vocab: dict[str, int], merges: list[str], pad_token: str = EOS) -> CLIPTokenizer:
    pairs = [tuple(m.split()) for m in merges]
    return CLIPTokenizer(vocab=dict(vocab), merges=pairs, pad_token=pad_token, model_max_length=MAX_LENGTH)


def write_tokenizer_files(folder: Path, vocab: dict[str, int], merges: list[str], pad_token: str = EOS) -> None:
    """vocab.json + merges.txt + config, the layout ``CLIPTokenizer.from_pretrained`` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": MAX_LENGTH, "bos_token": BOS,
        "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token, "do_lower_case": True}))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}))
