"""``inpaint``: repaint where the mask is white, keep where it is black.

Works with any UNet: an ordinary 4-channel one by blending, after every step, the re-noised original
back in outside the mask; a 9-channel inpainting UNet by also feeding it the mask and the latents of the
masked image. Either way the final pixels outside the mask are the original's exactly (composited with
the full-resolution mask), so projection can fill only what earlier views did not see.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .. import vae
from ..denoise import InpaintInputs
from ..images import to_pixels
from .context import StageContext


def run(ctx: StageContext) -> np.ndarray:
    base, p = ctx.base, ctx.params
    sched, timesteps = ctx.schedule(p.strength)
    gen = ctx.generator()
    noise = ctx.noise(gen)
    pixels = to_pixels(ctx.source, ctx.device, base.vae.dtype)
    image_latents = vae.encode(base, pixels)
    full_mask = torch.from_numpy(ctx.mask)[None, None].to(ctx.device)
    mask = F.interpolate(full_mask, size=image_latents.shape[-2:], mode="bilinear", align_corners=False)
    masked_latents = None
    if base.is_inpainting:
        masked_pixels = pixels * (full_mask < 0.5).to(pixels.dtype)
        masked_latents = vae.encode(base, masked_pixels)
        mask = (mask >= 0.5).float()  # the inpainting UNet was trained on binary masks
        ctx.notes.append("9-channel inpainting UNet")
    if len(timesteps) == p.steps and p.strength >= 1.0:
        latents = noise * ctx.initial_sigma(sched)
    else:
        latents = ctx.add_noise(sched, image_latents, noise, timesteps[:1])
    inputs = InpaintInputs(mask=mask, image_latents=image_latents, masked_latents=masked_latents, noise=noise)
    out = ctx.decode(ctx.denoise(sched, timesteps, latents, gen, inputs))
    m = ctx.mask[:, :, None]
    return np.clip(np.round(ctx.source * (1.0 - m) + out * m), 0, 255).astype(np.uint8)
