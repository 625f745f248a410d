"""Reference images on a UNet: IP-Adapters installed for one stage, the way diffusers' ``load_ip_adapter``
does it on a pipeline (``unet._load_ip_adapter_weights``: IPAdapterAttnProcessor2_0 on every
cross-attention layer plus ``encoder_hid_proj`` = the image projection), and taken off afterwards so
the cached UNet is left as it was.

Each reference is its own adapter slot (diffusers' multi-adapter form), so each has its own weight and
its own start/end: the processors' ``scale`` of a slot is its weight inside [start, end) of the steps
and 0 outside. The image embeds follow ``StableDiffusionPipeline.encode_image``: CLIP image embeds and
zeros for the negative half of the CFG batch (Plus adapters: penultimate hidden states, of the image
and of a black image).

FLUX.1 has no IP-Adapter here; its own reference input is Redux (``with_redux``): the image's tokens are
appended to the prompt's, scaled by the weight (FluxPriorReduxPipeline's ``prompt_embeds_scale`` scales
text and image tokens together; here only the image's, so the prompt keeps its strength)."""

from __future__ import annotations

import dataclasses
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


def install(unet: Any, state_dicts: list[dict[str, dict[str, torch.Tensor]]]) -> None:
    """diffusers' ``unet._load_ip_adapter_weights`` (non-Kolors UNets) without its last step, a whole-UNet
    ``unet.to(unet.dtype)``: under fp8 storage ``unet.dtype`` is the compute dtype, so that step would hold
    the entire UNet at 16 bits again (until each layer's next forward) — the memory fp8 mode was chosen to
    avoid. Only the new layers (IP attention processors, image projection) go to the UNet's device and
    compute dtype, as that step would have put them."""
    from diffusers.models.embeddings import MultiIPAdapterImageProjection  # noqa: PLC0415

    unet.encoder_hid_proj = None  # as diffusers: Plus projections carry attention processors of their own
    procs = unet._convert_ip_adapter_attn_to_diffusers(state_dicts, low_cpu_mem_usage=False)
    new = [p for p in procs.values() if isinstance(p, torch.nn.Module)]
    unet.set_attn_processor(procs)  # empties ``procs`` (it pops each layer's processor)
    unet.encoder_hid_proj = MultiIPAdapterImageProjection(
        [unet._convert_ip_adapter_image_proj_to_diffusers(sd["image_proj"], low_cpu_mem_usage=False)
         for sd in state_dicts])
    unet.config.encoder_hid_dim_type = "ip_image_proj"
    for module in (*new, unet.encoder_hid_proj):
        module.to(device=unet.device, dtype=unet.dtype)


@contextmanager
def applied(unet: Any, refs: list[ReferenceInput], cfg: bool, repeat: int = 1) -> Iterator[Applied | None]:
    """Install one adapter slot per reference on ``unet`` for the block; restore it after (also on error).

    ``repeat``: samples per CFG half that all take the same references (synchronized views), so the
    embeds are [negative x repeat, positive x repeat] as the pipeline repeats them per image of a prompt."""
    if not refs:
        yield None
        return
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0  # noqa: PLC0415

    device = unet.device
    embeds = [image_embeds(r, cfg, device).to(unet.dtype).repeat_interleave(repeat, dim=0) for r in refs]
    saved_procs = dict(unet.attn_processors)
    saved_proj = unet.encoder_hid_proj
    saved_type = unet.config.encoder_hid_dim_type
    try:
        install(unet, [r.adapter.state_dict for r in refs])
        procs = [p for p in unet.attn_processors.values() if isinstance(p, IPAdapterAttnProcessor2_0)]
        run = Applied(embeds, refs, procs)
        run.before_step(0, 1)
        yield run
    finally:
        unet.set_attn_processor(saved_procs)
        unet.encoder_hid_proj = saved_proj
        unet.config.encoder_hid_dim_type = saved_type


# -- FLUX.1 Redux ----------------------------------------------------------------------------------------


@dataclass
class ReduxInput:
    redux: Any  # models.redux.FluxRedux
    image: np.ndarray
    weight: float


def redux_tokens(ref: ReduxInput) -> torch.Tensor:
    """1 x N x D extra prompt tokens, as FluxPriorReduxPipeline computes them (SigLIP preprocessing,
    last hidden states, Redux embedder), scaled by the reference's weight."""
    from transformers import SiglipImageProcessor  # noqa: PLC0415

    enc = ref.redux.image_encoder
    size = ref.redux.image_size
    proc = SiglipImageProcessor(size={"height": size, "width": size})
    pixels = proc.preprocess(images=ref.image, do_resize=True, return_tensors="pt", do_convert_rgb=True).pixel_values
    hidden = enc(pixel_values=pixels.to(enc.device, enc.dtype)).last_hidden_state
    return ref.redux.image_embedder(hidden.to(ref.redux.image_embedder.dtype)).image_embeds * ref.weight


def redux_token_list(refs: list[ReduxInput]) -> list[torch.Tensor]:
    """Each reference's Redux tokens (weight 0: left out), computed once for conditionings that share them."""
    return [redux_tokens(r) for r in refs if r.weight > 0]


def with_redux(cond: Any, refs: list[ReduxInput], tokens: list[torch.Tensor] | None = None) -> Any:
    """FLUX text conditioning with each reference's Redux tokens appended (weight 0: left out).
    ``tokens``: ``redux_token_list(refs)`` when already computed (synchronized views: one per prompt)."""
    tokens = [t.to(cond.embeds.dtype) for t in (redux_token_list(refs) if tokens is None else tokens)]
    if not tokens:
        return cond
    embeds = torch.cat([cond.embeds, *tokens], dim=1)
    text_ids = torch.zeros(embeds.shape[1], 3, device=embeds.device, dtype=cond.text_ids.dtype)
    return dataclasses.replace(cond, embeds=embeds, text_ids=text_ids)
