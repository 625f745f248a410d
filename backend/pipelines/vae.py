"""Pixels <-> latents through the base model's VAE, in the VAE's own dtype (float32 where fp16 would
overflow, see models/loading.py), so an SDXL decode on a float16 GPU never turns black."""

from __future__ import annotations

import torch

from ..models.components import BaseComponents


def _scale_shift(base: BaseComponents) -> tuple[float, float]:
    cfg = base.vae.config
    return float(cfg.scaling_factor), float(cfg.get("shift_factor") or 0.0)


def encode(base: BaseComponents, pixels: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W in [-1, 1] -> scaled latents (float32). Uses the posterior mean: deterministic."""
    scale, shift = _scale_shift(base)
    vae = base.vae
    latents = vae.encode(pixels.to(device=vae.device, dtype=vae.dtype)).latent_dist.mean
    return (latents.float() - shift) * scale


def decode(base: BaseComponents, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> 1 x 3 x H x W in [-1, 1] (float32)."""
    scale, shift = _scale_shift(base)
    vae = base.vae
    pixels = vae.decode((latents / scale + shift).to(dtype=vae.dtype), return_dict=False)[0]
    return pixels.float()
