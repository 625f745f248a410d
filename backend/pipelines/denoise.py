"""The one denoising loop every stage runs: CFG-batched UNet + ControlNet residuals + a diffusers
scheduler step, with optional inpainting (latent blending or a 9-channel UNet's extra inputs).

Latents stay in float32 between steps (the scheduler's arithmetic is precision-sensitive); the UNet and
ControlNets run in the manager's dtype. Cancel is polled before every step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import inspect

import torch

from ..models.components import BaseComponents
from .control import ControlUnit, residuals
from .interface import JobCancelled
from .prompt import Conditioning
from .reference import Applied


@dataclass
class InpaintInputs:
    mask: torch.Tensor  # 1 x 1 x h x w at latent size, 1 = repaint
    image_latents: torch.Tensor  # the original, encoded (scaled) — blended back outside the mask
    masked_latents: torch.Tensor | None  # 9-channel UNets: latents of the image with the mask area blanked
    noise: torch.Tensor  # the noise the blended original is re-noised with


StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor | None], None]  # (step 1-based, total, latents, x0)
#: After each scheduler step: (step 0-based, latents, x0) -> replacements; synchronized multi-view
#: texturing fuses the views' x0 here (pipelines/sync/step.py). Family-agnostic: latents and x0 only.
StepHook = Callable[[int, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor | None]]


def denoise(base: BaseComponents, scheduler, timesteps: torch.Tensor, latents: torch.Tensor,  # noqa: ANN001
            cond: Conditioning, guidance: float, units: list[ControlUnit], generator: torch.Generator,
            cancelled: Callable[[], bool], on_step: StepCallback, inpaint: InpaintInputs | None = None,
            hook: StepHook | None = None, reference: Applied | None = None) -> torch.Tensor:
    """``reference``: IP-Adapters installed on the UNet (pipelines/reference.py): their image embeds go in
    ``added_cond_kwargs`` and their scales are set before each step (start/end). ``hook``: called after
    each scheduler step with (step, latents, x0), may return replacements (synchronized views)."""
    unet = base.unet
    added = cond.added
    if reference is not None:
        added = {**(cond.added or {}), "image_embeds": reference.embeds}
    dtype = unet.dtype
    cfg = guidance > 1.0
    n = len(timesteps)
    step_kw = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    for i, t in enumerate(timesteps):
        if cancelled():
            raise JobCancelled()
        if reference is not None:
            reference.before_step(i, n)
        x = torch.cat([latents, latents]) if cfg else latents
        x = scheduler.scale_model_input(x, t)
        down, mid = residuals(units, i, n, x, t, cond.embeds, cond.added, cfg)
        unet_in = x
        if inpaint is not None and inpaint.masked_latents is not None:
            b = x.shape[0]
            extra = [inpaint.mask.expand(b, -1, -1, -1), inpaint.masked_latents.expand(b, -1, -1, -1)]
            unet_in = torch.cat([x, *extra], dim=1)
        pred = unet(unet_in.to(dtype), t, encoder_hidden_states=cond.embeds, added_cond_kwargs=added,
                    down_block_additional_residuals=down, mid_block_additional_residual=mid, return_dict=False)[0]
        pred = pred.float()
        if cfg:
            uncond, text = pred.chunk(2)
            pred = uncond + guidance * (text - uncond)
        out = scheduler.step(pred, t, latents, return_dict=True, **step_kw)
        latents = out.prev_sample.float()
        x0 = getattr(out, "pred_original_sample", None)
        if x0 is None:
            x0 = getattr(out, "denoised", None)
        if hook is not None:
            latents, x0 = hook(i, latents, x0)
        if inpaint is not None and inpaint.masked_latents is None:
            keep = inpaint.image_latents
            if i + 1 < n:
                keep = scheduler.add_noise(inpaint.image_latents, inpaint.noise, timesteps[i + 1 : i + 2])
            latents = (1.0 - inpaint.mask) * keep + inpaint.mask * latents
        on_step(i + 1, n, latents, x0)
    return latents
