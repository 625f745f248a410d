"""Qwen-Image as a velocity function for the flow denoise loop: FLUX-style 2x2 packing with the image's
shape given as ``img_shapes`` (the transformer builds its own RoPE ids), no guidance input, true CFG
``neg + g * (pos - neg)`` rescaled to the conditional prediction's norm per token (when guidance > 1),
and Qwen-Image ControlNet block samples (control image as VAE latents, a posterior sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.components import BaseComponents
from . import vae as vae_io
from .control import ControlUnit
from .flow_prompt import FlowConditioning
from .flux import pack, unpack


@dataclass
class QwenControl:
    unit: ControlUnit
    cond: torch.Tensor  # packed, scaled VAE latents of the control image


def prepare_controls(base: BaseComponents, units: list[ControlUnit], generator: torch.Generator) -> list[QwenControl]:
    """As diffusers' QwenImageControlNetPipeline: a posterior sample (from ``generator``, unit order)."""
    vae = base.vae
    return [QwenControl(u, pack(vae_io.scale(vae, vae_io.posterior(vae, u.image * 2.0 - 1.0).sample(generator))))
            for u in units]


class QwenVelocity:
    def __init__(self, base: BaseComponents, cond: FlowConditioning, guidance: float, controls: list[QwenControl],
                 h: int, w: int) -> None:
        self.base, self.cond, self.guidance, self.controls, self.h, self.w = base, cond, guidance, controls, h, w
        self.img_shapes = [(1, h // 2, w // 2)]

    def _predict(self, x: torch.Tensor, timestep: torch.Tensor, embeds: torch.Tensor,
                 samples: list[torch.Tensor] | None) -> torch.Tensor:
        return self.base.transformer(hidden_states=x, timestep=timestep, encoder_hidden_states=embeds,
                                     encoder_hidden_states_mask=None, img_shapes=self.img_shapes,
                                     controlnet_block_samples=samples, return_dict=False)[0]

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        tr, c = self.base.transformer, self.cond
        x = pack(latents).to(tr.dtype)
        timestep = t.expand(1).to(x.dtype) / 1000
        samples = None
        for ctl in self.controls:
            if not ctl.unit.active(i, n):
                continue
            net = ctl.unit.model
            s = net(hidden_states=x.to(net.dtype), controlnet_cond=ctl.cond.to(net.dtype),
                    conditioning_scale=ctl.unit.weight, timestep=timestep.to(net.dtype),
                    encoder_hidden_states=c.embeds.to(net.dtype), encoder_hidden_states_mask=None,
                    img_shapes=self.img_shapes, return_dict=False)
            samples = list(s) if samples is None else [a + b for a, b in zip(samples, s)]
        pred = self._predict(x, timestep, c.embeds, samples)
        if c.negative is not None and self.guidance > 1:
            neg = self._predict(x, timestep, c.negative, samples)
            comb = neg + self.guidance * (pred - neg)
            pred = comb * (torch.norm(pred, dim=-1, keepdim=True) / torch.norm(comb, dim=-1, keepdim=True))
        return unpack(pred.float(), self.h, self.w)
