"""Prompt -> text conditioning, for SD1.5 (one CLIP) and SDXL (CLIP-L + OpenCLIP-bigG, penultimate
hidden states concatenated, bigG's projected pooled output and the size/crop "time ids")."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.components import BaseComponents


@dataclass
class Conditioning:
    """Text conditioning for one image; with CFG the batch is [negative, positive]."""

    embeds: torch.Tensor  # B x 77 x D
    added: dict[str, torch.Tensor] | None  # SDXL: text_embeds (B x 1280), time_ids (B x 6)
    truncated: bool  # the prompt was longer than 77 tokens and was cut


def _tokenize(tokenizer, text: str, device: torch.device) -> tuple[torch.Tensor, bool]:  # noqa: ANN001
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    full = len(tokenizer(text, truncation=False).input_ids)
    return ids.to(device), full > tokenizer.model_max_length


def _encode_one(base: BaseComponents, text: str) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    device = base.device
    if base.family != "sdxl":
        ids, cut = _tokenize(base.tokenizers[0], text, device)
        return base.text_encoders[0](ids)[0], None, cut
    hidden, pooled, truncated = [], None, False
    for tokenizer, encoder in zip(base.tokenizers, base.text_encoders):
        ids, cut = _tokenize(tokenizer, text, device)
        truncated |= cut
        out = encoder(ids, output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]  # the last encoder (bigG with projection): its text_embeds
    return torch.cat(hidden, dim=-1), pooled, truncated


def encode(base: BaseComponents, prompt: str, negative: str, cfg: bool, width: int, height: int) -> Conditioning:
    dtype = base.unet.dtype
    emb, pooled, truncated = _encode_one(base, prompt)
    if cfg:
        if base.force_zeros_for_empty_prompt and not negative:
            neg_emb, neg_pooled = torch.zeros_like(emb), (torch.zeros_like(pooled) if pooled is not None else None)
        else:
            neg_emb, neg_pooled, cut = _encode_one(base, negative)
            truncated |= cut
        emb = torch.cat([neg_emb, emb])
        pooled = torch.cat([neg_pooled, pooled]) if pooled is not None else None
    added = None
    if base.family == "sdxl":
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=emb.device, dtype=dtype)
        added = {"text_embeds": pooled.to(dtype), "time_ids": time_ids.repeat(emb.shape[0], 1)}
    return Conditioning(emb.to(dtype), added, truncated)
