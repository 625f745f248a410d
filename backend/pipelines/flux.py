"""FLUX.1 as a velocity function for the flow denoise loop: latent packing, RoPE image ids, the
guidance embedding (dev) or none (schnell), and FLUX ControlNet residuals (InstantX/Shakker style,
conditioned on VAE latents of the control image, incl. Union ControlNets with a control mode; and
XLabs style with a pixel-space hint block).

Latents outside this module are unpacked (1 x 16 x h x w, h and w = pixels / 8); the transformer sees
2x2 patches packed into tokens (1 x h/2*w/2 x 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.components import BaseComponents
from ..models.errors import UnsupportedModel
from . import vae as vae_io
from .control import ControlUnit
from .flow_prompt import FlowConditioning

# Control modes of the FLUX.1 Union ControlNets (InstantX/FLUX.1-dev-Controlnet-Union, Shakker-Labs
# Union-Pro): 0 canny, 1 tile, 2 depth, 3 blur, 4 pose, 5 gray, 6 low quality. Unit types -> mode.
UNION_MODES = {"canny": 0, "edges": 0, "lineart": 0, "depth": 2}


def pack(latents: torch.Tensor) -> torch.Tensor:
    """B x C x h x w -> B x (h/2 * w/2) x 4C (2x2 patches, row-major)."""
    b, c, h, w = latents.shape
    x = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`pack` for latents of h x w."""
    b, _, d = tokens.shape
    x = tokens.view(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def image_ids(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """RoPE ids (0, row, column) of each packed token of an h x w latent: (h/2 * w/2) x 3."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


def image_seq_len(height: int, width: int, vae_scale: int) -> int:
    return (height // vae_scale // 2) * (width // vae_scale // 2)


@dataclass
class FluxControl:
    unit: ControlUnit
    cond: torch.Tensor  # packed VAE latents (InstantX) or 1 x 3 x H x W pixels in [-1, 1] (XLabs)
    mode: torch.Tensor | None  # Union: 1 x 1 long
    repeat_blocks: bool  # XLabs ControlNets have fewer blocks, repeated over the transformer's


def prepare_controls(base: BaseComponents, units: list[ControlUnit], unit_types: list[str],
                     generator: torch.Generator) -> list[FluxControl]:
    """Each unit's conditioning, in unit order. InstantX-style nets get the control image VAE-encoded
    with a posterior *sample* drawn from ``generator`` (as diffusers' FluxControlNetPipeline does; a
    sample, not the mean, is what these nets were trained with)."""
    out = []
    vae = base.vae
    for unit, unit_type in zip(units, unit_types):
        net = unit.model
        pixels = unit.image * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        mode = None
        if net.config.get("num_mode") is not None:
            if unit_type not in UNION_MODES:
                raise UnsupportedModel(
                    f"FLUX Union ControlNet {unit.model_id} has no control mode for {unit_type!r} units "
                    f"(it has: {', '.join(sorted(UNION_MODES))})",
                    "give this unit a ControlNet made for its type in its `model` field, or change its type")
            mode = torch.tensor([[UNION_MODES[unit_type]]], device=pixels.device, dtype=torch.long)
        if net.input_hint_block is None:
            latents = vae_io.scale(vae, vae_io.posterior(vae, pixels).sample(generator))
            out.append(FluxControl(unit, pack(latents), mode, False))
        else:
            out.append(FluxControl(unit, pixels, mode, True))
    if len({c.repeat_blocks for c in out}) > 1:
        raise UnsupportedModel("XLabs-style and InstantX-style FLUX ControlNets cannot be mixed in one stage",
                               "use ControlNets of one kind for all units of the stage")
    return out


class FluxVelocity:
    """v(x_t, t) of a FLUX.1 transformer for unpacked latents of h x w, with ControlNet residuals."""

    def __init__(self, base: BaseComponents, cond: FlowConditioning, guidance: float, controls: list[FluxControl],
                 h: int, w: int) -> None:
        self.base, self.cond, self.controls, self.h, self.w = base, cond, controls, h, w
        tr = base.transformer
        self.dtype = tr.dtype
        self.ids = image_ids(h, w, base.device, self.dtype)
        self.guidance = torch.tensor([guidance], device=base.device, dtype=torch.float32)

    def _guidance(self, config) -> torch.Tensor | None:  # noqa: ANN001
        return self.guidance if config.guidance_embeds else None

    def __call__(self, latents: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        tr, c = self.base.transformer, self.cond
        x = pack(latents).to(self.dtype)
        timestep = (t.expand(x.shape[0]) / 1000).to(self.dtype)
        blocks, singles, repeat = None, None, False
        for ctl in self.controls:
            if not ctl.unit.active(i, n):
                continue
            net = ctl.unit.model
            b, s = net(hidden_states=x.to(net.dtype), controlnet_cond=ctl.cond.to(net.dtype),
                       controlnet_mode=ctl.mode, conditioning_scale=ctl.unit.weight, timestep=timestep.to(net.dtype),
                       guidance=self._guidance(net.config), pooled_projections=c.pooled.to(net.dtype),
                       encoder_hidden_states=c.embeds.to(net.dtype), txt_ids=c.text_ids, img_ids=self.ids,
                       return_dict=False)
            repeat = ctl.repeat_blocks
            blocks = b if blocks is None else [x1 + x2 for x1, x2 in zip(blocks, b)] if b is not None else blocks
            singles = s if singles is None else [x1 + x2 for x1, x2 in zip(singles, s)] if s is not None else singles
        v = tr(hidden_states=x, timestep=timestep, guidance=self._guidance(tr.config), pooled_projections=c.pooled,
               encoder_hidden_states=c.embeds, controlnet_block_samples=blocks,
               controlnet_single_block_samples=singles, txt_ids=c.text_ids, img_ids=self.ids, return_dict=False,
               controlnet_blocks_repeat=repeat)[0]
        return unpack(v.float(), self.h, self.w)
