"""Prompt -> text conditioning for flow-matching transformers.

FLUX.1: CLIP-L's pooled output (77 tokens) feeds ``pooled_projections``; T5's last hidden states
(``max_sequence_length`` tokens, padded) are the joint-attention text tokens, with all-zero RoPE ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.components import BaseComponents


@dataclass
class FlowConditioning:
    embeds: torch.Tensor  # 1 x L x D text tokens
    pooled: torch.Tensor | None  # 1 x D (FLUX: CLIP pooled)
    text_ids: torch.Tensor | None  # L x 3 (FLUX RoPE ids of the text tokens)
    truncated: bool


def _ids(tokenizer, text: str, max_length: int, device: torch.device) -> tuple[torch.Tensor, bool]:  # noqa: ANN001
    ids = tokenizer(text, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt").input_ids
    full = len(tokenizer(text, truncation=False).input_ids)
    return ids.to(device), full > max_length


def encode_flux(base: BaseComponents, prompt: str) -> FlowConditioning:
    clip, t5 = base.text_encoders
    clip_tok, t5_tok = base.tokenizers
    device = base.transformer.device
    ids, cut_clip = _ids(clip_tok, prompt, clip_tok.model_max_length, device)
    pooled = clip(ids, output_hidden_states=False).pooler_output
    ids, cut_t5 = _ids(t5_tok, prompt, int(base.extra.get("max_sequence_length", 512)), device)
    embeds = t5(ids, output_hidden_states=False)[0]
    text_ids = torch.zeros(embeds.shape[1], 3, device=device, dtype=embeds.dtype)
    return FlowConditioning(embeds, pooled, text_ids, cut_clip or cut_t5)


def encode(base: BaseComponents, prompt: str) -> FlowConditioning:
    if base.family in ("flux", "flux-schnell"):
        return encode_flux(base, prompt)
    raise NotImplementedError(f"no text conditioning for family {base.family!r}")
