"""The denoising loop of flow-matching transformers (FLUX.1, ...): a velocity per step from the
family's model function, a FlowMatchEulerDiscreteScheduler step, optional inpainting by blending the
re-noised original back in outside the mask. No classifier-free guidance batch: these families take
guidance as an input (FLUX.1 dev) or are distilled without it (schnell).

Also the flow schedule: sigmas linear from 1 to 1/steps, shifted by ``mu`` from the image's token
count when the scheduler config asks for dynamic shifting (FLUX.1 dev), as the model was trained.
Latents stay float32 and unpacked (1 x C x h x w) between steps; cancel is polled before every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from .denoise import InpaintInputs, StepCallback, StepHook
from .interface import JobCancelled


class Velocity(Protocol):
    def __call__(self, latents: torch.Tensor, t: torch.Tensor, i: int, n: int) -> torch.Tensor:
        """The predicted velocity (noise - x0) for unpacked float32 latents at timestep ``t`` (step i of n)."""


def calculate_mu(seq_len: int, config: dict) -> float:
    """The timestep shift for an image of ``seq_len`` tokens, linear between the config's two anchors."""
    base_len, max_len = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    base_shift, max_shift = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    m = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * m + (base_shift - m * base_len)


def make_flow_scheduler(config: dict, steps: int, seq_len: int,
                        device: torch.device) -> FlowMatchEulerDiscreteScheduler:
    sched = FlowMatchEulerDiscreteScheduler.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    sigmas = np.linspace(1.0, 1 / steps, steps)
    mu = calculate_mu(seq_len, sched.config) if sched.config.use_dynamic_shifting else None
    sched.set_timesteps(sigmas=sigmas, mu=mu, device=device)
    return sched


def flow_denoise(velocity: Velocity, scheduler: FlowMatchEulerDiscreteScheduler, timesteps: torch.Tensor,
                 latents: torch.Tensor, cancelled: Callable[[], bool], on_step: StepCallback,
                 inpaint: InpaintInputs | None = None, hook: StepHook | None = None) -> torch.Tensor:
    """``hook``: called after each scheduler step with (step, latents, x0 = x_t - sigma * v), may return
    replacements (synchronized views fuse x0 in texture space: pipelines/sync/step.py)."""
    n = len(timesteps)
    for i, t in enumerate(timesteps):
        if cancelled():
            raise JobCancelled()
        sigma = scheduler.sigmas[scheduler.step_index if scheduler.step_index is not None
                                 else (scheduler.begin_index or 0)].to(latents.device)
        v = velocity(latents, t, i, n)
        x0 = latents - sigma * v
        latents = scheduler.step(v, t, latents, return_dict=False)[0].float()
        if hook is not None:
            latents, x0 = hook(i, latents, x0)
        if inpaint is not None:
            keep = inpaint.image_latents
            if i + 1 < n:
                keep = scheduler.scale_noise(inpaint.image_latents, timesteps[i + 1 : i + 2], inpaint.noise)
            latents = (1.0 - inpaint.mask) * keep + inpaint.mask * latents
        on_step(i + 1, n, latents, x0)
    return latents
