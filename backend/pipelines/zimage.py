"""Z-Image as a velocity function for the flow denoise loop: latents as one-frame 5D tensors in a
list (the transformer's batch-of-variable-size interface), time as ``(1000 - t) / 1000`` and the
model's output negated (Z-Image predicts x0 - noise, the scheduler wants noise - x0), true CFG as
``pos + g * (pos - neg)`` when guidance > 0 (Turbo runs without), and Z-Image ControlNet block samples
(control image as VAE latents, the posterior mode) added to the transformer's layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import ZImageControlNetModel

from ..models.components import BaseComponents
from . import vae as vae_io
from .control import ControlUnit
from .flow_prompt import FlowConditioning


@dataclass
class ZImageControl:
    unit: ControlUnit
    context: torch.Tensor  # 1 x control_in_dim x 1 x h x w


def prepare_controls(base: BaseComponents, units: list[ControlUnit]) -> list[ZImageControl]:
    """Each unit's control context: VAE latents (mode) of the image, zero-padded to the net's input width
    (Z-Image ControlNet 2.x takes more channels than the latents have)."""
    vae, out = base.vae, []
    for unit in units:
        latents = vae_io.scale(vae, vae_io.posterior(vae, unit.image * 2.0 - 1.0).mode()).unsqueeze(2)
        extra = int(unit.model.config.control_in_dim) - latents.shape[1]
        if extra > 0:
            latents = torch.cat([latents, latents.new_zeros(latents.shape[0], extra, *latents.shape[2:])], dim=1)
        out.append(ZImageControl(unit, latents))
    return out


class ZImageVelocity:
    def __init__(self, base: BaseComponents, cond: FlowConditioning, guidance: float,
                 controls: list[ZImageControl]) -> None:
        self.base, self.cond, self.guidance, self.controls = base, cond, guidance, controls
        for c in controls:  # the ControlNet borrows the transformer's embedders and refiners
            ZImageControlNetModel.from_transformer(c.unit.model, base.transformer)

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        tr, c = self.base.transformer, self.cond
        cfg = self.guidance > 0 and c.negative is not None
        x = latents.to(tr.dtype)
        caps = c.embeds + (c.negative if cfg else [])
        timestep = (1000 - t.expand(1)) / 1000
        if cfg:
            x, timestep = x.repeat(2, 1, 1, 1), timestep.repeat(2)
        frames = list(x.unsqueeze(2).unbind(dim=0))
        samples: dict[int, torch.Tensor] | None = None
        for ctl in self.controls:
            if not ctl.unit.active(i, n):
                continue
            net = ctl.unit.model
            context = ctl.context.to(net.dtype).repeat(len(frames), 1, 1, 1, 1)
            s = net(frames, timestep, caps, context, conditioning_scale=ctl.unit.weight)
            samples = s if samples is None else {k: samples[k] + s[k] for k in samples}
        out = tr(frames, timestep, caps, controlnet_block_samples=samples)[0]
        pred = out[0].float()
        if cfg:
            pred = pred + self.guidance * (pred - out[1].float())
        return -pred.squeeze(1).unsqueeze(0)
