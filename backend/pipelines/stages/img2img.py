"""``img2img``: re-noise an image to ``strength`` (0 keeps it, 1 replaces it) and denoise from there;
only the last ``strength`` fraction of the steps run."""

from __future__ import annotations

import numpy as np

from .. import vae
from ..images import to_pixels
from .context import StageContext


def run(ctx: StageContext) -> np.ndarray:
    sched, timesteps = ctx.schedule(ctx.params.strength)
    gen = ctx.generator()
    noise = ctx.noise(gen)
    init = vae.encode(ctx.base, to_pixels(ctx.source, ctx.device, ctx.base.vae.dtype))
    latents = ctx.add_noise(sched, init, noise, timesteps[:1])
    return ctx.decode(ctx.denoise(sched, timesteps, latents, gen))
