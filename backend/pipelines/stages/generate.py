"""``generate``: txt2img from pure noise, steered by the stage's ControlNets."""

from __future__ import annotations

import numpy as np

from .context import StageContext


def run(ctx: StageContext) -> np.ndarray:
    sched, timesteps = ctx.schedule()
    gen = ctx.generator()
    latents = ctx.noise(gen) * ctx.initial_sigma(sched)
    return ctx.decode(ctx.denoise(sched, timesteps, latents, gen))
