"""A byte-level stand-in for the Qwen tokenizers (Qwen3 for Z-Image, Qwen2.5-VL for Qwen-Image), built
without the hub, for the tiny flow models: one token per byte plus Qwen's chat special tokens, and a
ChatML chat template of the same shape as Qwen's. Real models load their own ``tokenizer`` folder."""

from __future__ import annotations

from functools import lru_cache

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .tokenizers import bytes_to_unicode

PAD = "<|endoftext|>"
SPECIALS = (PAD, "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    vocab = {sym: i for i, sym in enumerate(bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    return tok.to_str()


def make_byte_qwen_tokenizer(model_max_length: int = 1024) -> PreTrainedTokenizerFast:
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(_tokenizer_json()), pad_token=PAD,
                                  eos_token="<|im_end|>", model_max_length=model_max_length)
    tok.chat_template = CHATML
    return tok
