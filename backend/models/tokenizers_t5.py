"""A byte-level stand-in for T5's SentencePiece tokenizer, built without the hub, for the tiny flow
models: ids 0..2 are T5's ``<pad>``, ``</s>``, ``<unk>`` (as in the real tokenizer), then one token per
byte; ``</s>`` is appended like T5 does. Real models load their own ``tokenizer_2`` folder instead."""

from __future__ import annotations

from functools import lru_cache

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from .tokenizers import bytes_to_unicode

PAD, EOS, UNK = "<pad>", "</s>", "<unk>"


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    vocab = {PAD: 0, EOS: 1, UNK: 2}
    for sym in bytes_to_unicode().values():
        vocab[sym] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}",
                                                       special_tokens=[(EOS, 1)])
    return tok.to_str()


def make_byte_t5_tokenizer(model_max_length: int = 512) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json()), pad_token=PAD,
                                   eos_token=EOS, unk_token=UNK, model_max_length=model_max_length)
