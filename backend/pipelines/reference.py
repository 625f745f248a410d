"""Reference images on a UNet: IP-Adapters installed for one stage, the way diffusers' ``load_ip_adapter``
does it on a pipeline (``unet._load_ip_adapter_weights``: IPAdapterAttnProcessor2_0 on every
cross-attention layer plus ``encoder_hid_proj`` = the image projection), and taken off afterwards so
the cached UNet is left as it was.

Each reference is its own adapter slot (diffusers' multi-adapter form), so each has its own weight and
its own start/end: the processors' ``scale`` of a slot is its weight inside [start, end) of the steps
and 0 outside. The image embeds follow ``StableDiffusionPipeline.encode_image``: CLIP image embeds and
zeros for the negative half of the CFG batch (Plus adapters: penultimate hidden states, of the image
and of a black image)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..models.ip_adapter import IPAdapter


@dataclass
class ReferenceInput:
    adapter: IPAdapter
    image: np.ndarray  # H x W x 3 uint8
    weight: float
    start: float = 0.0
    end: float = 1.0


def preprocess(image: np.ndarray, size: int) -> torch.Tensor:
    """CLIPImageProcessor's defaults (shortest side to ``size``, bicubic; centre crop; CLIP mean/std)."""
    from transformers import CLIPImageProcessor  # noqa: PLC0415

    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    return proc(images=image, return_tensors="pt").pixel_values


def image_embeds(ref: ReferenceInput, cfg: bool, device: torch.device) -> torch.Tensor:
    """(2 if cfg else 1) x 1 x D (or x tokens x D for Plus): [negative, positive] as the pipeline batches them."""
    enc = ref.adapter.image_encoder
    dtype = next(enc.parameters()).dtype
    pixels = preprocess(ref.image, ref.adapter.image_size).to(device, dtype)
    if ref.adapter.hidden_states:
        pos = enc(pixels, output_hidden_states=True).hidden_states[-2]
        neg = enc(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    else:
        pos = enc(pixels).image_embeds
        neg = torch.zeros_like(pos)
    out = torch.cat([neg, pos]) if cfg else pos
    return out[:, None]


@dataclass
class Applied:
    """What the denoise loop needs while the adapters are on: the embeds and the per-step scales."""

    embeds: list[torch.Tensor]
    refs: list[ReferenceInput]
    processors: list[Any] = field(default_factory=list)

    def before_step(self, index: int, total: int) -> None:
        frac = index / total
        scales = [r.weight if r.start <= frac < r.end else 0.0 for r in self.refs]
        for proc in self.processors:
            proc.scale = list(scales)


@contextmanager
def applied(unet: Any, refs: list[ReferenceInput], cfg: bool) -> Iterator[Applied | None]:
    """Install one adapter slot per reference on ``unet`` for the block; restore it after (also on error)."""
    if not refs:
        yield None
        return
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0  # noqa: PLC0415

    device = unet.device
    embeds = [image_embeds(r, cfg, device).to(unet.dtype) for r in refs]
    saved_procs = dict(unet.attn_processors)
    saved_proj = unet.encoder_hid_proj
    saved_type = unet.config.encoder_hid_dim_type
    try:
        unet._load_ip_adapter_weights([r.adapter.state_dict for r in refs], low_cpu_mem_usage=False)
        procs = [p for p in unet.attn_processors.values() if isinstance(p, IPAdapterAttnProcessor2_0)]
        run = Applied(embeds, refs, procs)
        run.before_step(0, 1)
        yield run
    finally:
        unet.set_attn_processor(saved_procs)
        unet.encoder_hid_proj = saved_proj
        unet.config.encoder_hid_dim_type = saved_type
