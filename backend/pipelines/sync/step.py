"""The synchronized denoise: a hook for ``denoise``'s loop, batching of N views, micro-batches.

At step i of n, for i < ``fraction`` * n, ``SyncHook`` replaces each view's predicted x0 by the texture's
fused x0 (``TexelMap.fuse``, weights raised to an exponent annealed upward) and redoes the scheduler's
update with it. With latents x = a * x0 + s * noise (``signal_noise``) the first-order update (DDIM,
Euler, flow-matching Euler) from x at (a, s) to x' at (a', s') is
``x' = (s'/s) * x + (a' - s' * a / s) * x0``, so::

    x'_synced = x' + (a' - s' * a / s) * (x0_fused - x0)

exactly what the scheduler would have returned had the model predicted x0_fused. Keeping the view's own
noise estimate instead (``x' + a' * (x0_fused - x0)``) would not do: that estimate holds the view's own
x0 error, which then comes back unfused (the oracle test fails that way). ``a``, ``s`` come from the
scheduler's own tables, so nothing here knows a model family. Multistep solvers that keep x0 history
(DPM-Solver++, UniPC) get their latest entry replaced too (their higher-order terms then use the fused
x0; the correction itself is first order), ancestral ones add their noise per view. After the
synchronized part the views finish
on their own, which sharpens details each view sees best; background pixels are never touched.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import torch

from .fusion import TexelMap, annealed_exponent


class SyncHook:
    """``denoise(..., hook=SyncHook(...))``: fuse x0 through texture space for the first ``fraction`` of
    the steps. ``fused_steps`` counts what it did (for the job record); ``seconds`` its own time."""

    def __init__(self, tmap: TexelMap, scheduler: Any, timesteps: torch.Tensor, fraction: float = 0.8,
                 power_start: float = 1.0, power_end: float = 6.0,
                 on_fused: Callable[[int, torch.Tensor], None] | None = None) -> None:
        self.tmap, self.scheduler, self.timesteps = tmap, scheduler, timesteps
        self.steps = len(timesteps)
        self.sync_steps = max(0, min(self.steps, round(fraction * self.steps)))
        self.power_start, self.power_end = power_start, power_end
        self.on_fused = on_fused
        self.fused_steps = 0

    def _coefficient(self, i: int) -> float:
        """d x_prev / d x0 of the first-order (DDIM / Euler) update from step i to i + 1."""
        a, s = signal_noise(self.scheduler, self.timesteps, i)
        a2, s2 = signal_noise(self.scheduler, self.timesteps, i + 1)
        return a2 - s2 * a / max(s, 1e-12)

    def __call__(self, i: int, latents: torch.Tensor, x0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        history = getattr(self.scheduler, "model_outputs", None)
        if x0 is None and isinstance(history, list) and history and isinstance(history[-1], torch.Tensor) \
                and getattr(self.scheduler.config, "algorithm_type", "") in ("dpmsolver++", "sde-dpmsolver++"):
            x0 = history[-1]  # DPM-Solver++ keeps its x0 predictions there and returns none
        if x0 is None or i >= self.sync_steps:
            return latents, x0
        exponent = annealed_exponent(i, self.sync_steps, self.power_start, self.power_end)
        fused = self.tmap.fuse(x0, exponent)
        latents = latents + self._coefficient(i) * (fused - x0.float())
        if isinstance(history, list) and history and isinstance(history[-1], torch.Tensor) \
                and history[-1].shape == x0.shape and torch.equal(history[-1], x0):
            history[-1] = fused.to(history[-1].dtype)
        self.fused_steps += 1
        if self.on_fused is not None:
            self.on_fused(i, fused)
        return latents, fused


def signal_noise(scheduler: Any, timesteps: torch.Tensor, k: int) -> tuple[float, float]:
    """(a, s) with latents = a * x0 + s * noise at step ``k`` of ``timesteps`` (``k == len``: the end, x0).

    Read from the scheduler's own tables, so one rule serves every family: sigma-space schedulers (Euler,
    Euler a: ``init_noise_sigma`` > 1) have a = 1, s = sigma; flow matching a = 1 - sigma, s = sigma;
    DDPM-type ones (DDIM, DPM-Solver, UniPC, LCM) a = sqrt(alpha_bar), s = sqrt(1 - alpha_bar)."""
    if k >= len(timesteps):
        return 1.0, 0.0
    name = type(scheduler).__name__
    begin = len(scheduler.timesteps) - len(timesteps)  # img2img-style schedules run a tail of the steps
    if name.startswith("FlowMatch"):
        sig = float(scheduler.sigmas[begin + k])
        return 1.0 - sig, sig
    if hasattr(scheduler, "sigmas") and float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0:
        return 1.0, float(scheduler.sigmas[begin + k])
    abar = float(scheduler.alphas_cumprod[int(timesteps[k])])
    return abar ** 0.5, (1.0 - abar) ** 0.5


def _split(value: Any, batch: int, a: int, b: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[a:b] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, (list, tuple)):
        return type(value)(_split(v, batch, a, b) for v in value)
    if isinstance(value, dict):
        return {k: _split(v, batch, a, b) for k, v in value.items()}
    return value


def _join(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, (list, tuple)):
        return type(first)(_join([p[k] for p in parts]) for k in range(len(first)))
    return first


class MicroBatched:
    """A UNet or ControlNet called on at most ``size`` samples at a time: every argument whose first
    dimension is the batch is sliced, outputs (tensors, tuples and lists of them) are concatenated.
    Attributes (``dtype``, ``device``, ``config``) are the wrapped model's."""

    def __init__(self, model: Any, size: int) -> None:
        self.model, self.size = model, max(1, int(size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        batch = sample.shape[0]
        if batch <= self.size:
            return self.model(sample, *args, **kwargs)
        parts = []
        for a in range(0, batch, self.size):
            b = min(batch, a + self.size)
            parts.append(self.model(sample[a:b], *_split(args, batch, a, b), **_split(kwargs, batch, a, b)))
        return _join(parts)


def micro_batched(base: Any, size: int) -> Any:
    """``base`` (BaseComponents) whose UNet runs in micro-batches of ``size`` (CFG doubles the batch)."""
    return dataclasses.replace(base, unet=MicroBatched(base.unet, size))


#: Peak activation bytes of one UNet sample per latent pixel at fp16 with PyTorch's SDPA attention: an
#: ESTIMATE (not measured here: this project's dev machine has no GPU) from the largest live tensors of
#: SD1.5's first attention block at 64x64 latents (~0.45 GB a sample) and SDXL's deeper transformer
#: stacks (~1.5x per pixel). Conservative on purpose: a too-small micro-batch only costs speed.
#: Flow transformers (FLUX.1, Qwen-Image: width 3072; Z-Image: 3840), also an ESTIMATE: one 2x2-packed
#: token is 4 latent pixels, and a single-stream block holds about 40 widths of live 16-bit values per
#: token (QKV, the 4x MLP, the concatenated attention+MLP input of ``proj_out``, float32 RoPE copies of
#: q and k), so ~250 KB a token, ~64 KB a latent pixel; the 512 text tokens add a fixed ~0.13 GB that
#: the headroom of ``pick_micro_batch`` covers. 1024^2 FLUX: ~1 GB a view.
ACTIVATION_BYTES_PER_LATENT_PIXEL = {"sd15": 110_000, "sdxl": 165_000, "flux": 64_000, "flux-schnell": 64_000,
                                     "qwen": 64_000, "zimage": 80_000}


def per_sample_bytes(family: str, latent_hw: tuple[int, int], dtype_bytes: int = 2) -> int:
    """Estimated peak activation memory of one denoiser sample (one view, one CFG branch)."""
    per = ACTIVATION_BYTES_PER_LATENT_PIXEL.get(family, ACTIVATION_BYTES_PER_LATENT_PIXEL["sdxl"])
    return int(per * latent_hw[0] * latent_hw[1] * dtype_bytes / 2)


def free_memory(device: torch.device) -> int:
    """Bytes free for activations on ``device`` (CUDA: the driver's figure; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def pick_micro_batch(free_bytes: int, sample_bytes: int, samples: int, headroom: float = 0.7) -> int:
    """How many samples to run at once: as many as fit in ``headroom`` of the free memory, at least 1,
    at most ``samples`` (all views, both CFG branches); rounded down to a divisor-friendly even count."""
    fit = int(free_bytes * headroom) // max(1, sample_bytes)
    size = max(1, min(samples, fit))
    if 1 < size < samples and size % 2:
        size -= 1
    return size
