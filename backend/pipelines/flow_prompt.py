"""Prompt -> text conditioning for flow-matching transformers.

FLUX.1: CLIP-L's pooled output (77 tokens) feeds ``pooled_projections``; T5's last hidden states
(``max_sequence_length`` tokens, padded) are the joint-attention text tokens, with all-zero RoPE ids.
Z-Image: the prompt in Qwen3's chat template; the second-to-last hidden states of its real (unpadded)
tokens, one variable-length tensor per prompt.
Qwen-Image: the prompt in Qwen-Image's describe-the-image system template; Qwen2.5-VL's last hidden
states with the template's first ``QWEN_DROP`` tokens dropped, cut to ``max_sequence_length``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..models.components import BaseComponents


@dataclass
class FlowConditioning:
    embeds: Any  # FLUX: 1 x L x D text tokens; Z-Image: [L x D] (unpadded)
    pooled: torch.Tensor | None  # 1 x D (FLUX: CLIP pooled)
    text_ids: torch.Tensor | None  # L x 3 (FLUX RoPE ids of the text tokens)
    truncated: bool
    negative: Any = None  # the negative prompt's ``embeds`` for families with true CFG; None without


def _ids(tokenizer, text: str, max_length: int, device: torch.device) -> tuple[torch.Tensor, bool]:  # noqa: ANN001
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
    full = len(tokenizer(text, truncation=False).input_ids)
    return ids.to(device), full > max_length


def encode_flux(base: BaseComponents, prompt: str) -> FlowConditioning:
    clip, t5 = base.text_encoders
    clip_tok, t5_tok = base.tokenizers
    device = base.device
    ids, cut_clip = _ids(clip_tok, prompt, clip_tok.model_max_length, device)
    pooled = clip(ids, output_hidden_states=False).pooler_output
    ids, cut_t5 = _ids(t5_tok, prompt, int(base.extra.get("max_sequence_length", 512)), device)
    embeds = t5(ids, output_hidden_states=False)[0]
    text_ids = torch.zeros(embeds.shape[1], 3, device=device, dtype=embeds.dtype)
    return FlowConditioning(embeds, pooled, text_ids, cut_clip or cut_t5)


def _zimage_embeds(base: BaseComponents, prompt: str) -> tuple[list[torch.Tensor], bool]:
    tok, encoder = base.tokenizers[0], base.text_encoders[0]
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True,
                                   enable_thinking=True)
    max_length = int(base.extra.get("max_sequence_length", 512))
    inputs = tok([text], padding="max_length", max_length=max_length, truncation=True, return_tensors="pt")
    ids, mask = inputs.input_ids.to(encoder.device), inputs.attention_mask.to(encoder.device).bool()
    hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
    return [hidden[0][mask[0]]], len(tok([text]).input_ids[0]) > max_length


def encode_zimage(base: BaseComponents, prompt: str, negative: str, cfg: bool) -> FlowConditioning:
    embeds, cut = _zimage_embeds(base, prompt)
    neg = _zimage_embeds(base, negative)[0] if cfg else None
    return FlowConditioning(embeds, None, None, cut, neg)


QWEN_TEMPLATE = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
                 "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}"
                 "<|im_end|>\n<|im_start|>assistant\n")
QWEN_DROP = 34  # the system part of the template, in Qwen2.5-VL tokens (``extra["prompt_drop"]`` overrides)
QWEN_TOKENIZER_MAX = 1024


def _qwen_embeds(base: BaseComponents, prompt: str) -> tuple[torch.Tensor, bool]:
    tok, encoder = base.tokenizers[0], base.text_encoders[0]
    drop = int(base.extra.get("prompt_drop", QWEN_DROP))
    inputs = tok([QWEN_TEMPLATE.format(prompt)], max_length=QWEN_TOKENIZER_MAX + drop, padding=True,
                 truncation=True, return_tensors="pt").to(encoder.device)
    hidden = encoder(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                     output_hidden_states=True).hidden_states[-1]
    embeds = hidden[0][inputs.attention_mask[0].bool()][drop:]
    max_length = int(base.extra.get("max_sequence_length", 1024))
    return embeds[None, :max_length], embeds.shape[0] > max_length


def encode_qwen(base: BaseComponents, prompt: str, negative: str, cfg: bool) -> FlowConditioning:
    embeds, cut = _qwen_embeds(base, prompt)
    neg = _qwen_embeds(base, negative)[0] if cfg else None
    return FlowConditioning(embeds, None, None, cut, neg)


def encode(base: BaseComponents, prompt: str, negative: str, guidance: float) -> FlowConditioning:
    """The text conditioning of a flow family; with the negative prompt's where the family runs true CFG
    at this ``guidance`` (Z-Image: guidance > 0; Qwen-Image: guidance > 1)."""
    if base.family in ("flux", "flux-schnell"):
        return encode_flux(base, prompt)
    if base.family == "zimage":
        return encode_zimage(base, prompt, negative, guidance > 0)
    if base.family == "qwen":
        return encode_qwen(base, prompt, negative, guidance > 1)
    raise NotImplementedError(f"no text conditioning for family {base.family!r}")
