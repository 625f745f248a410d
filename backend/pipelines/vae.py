"""Pixels <-> latents through the base model's VAE, in the VAE's own dtype (float32 where fp16 would
overflow, see models/loading.py), so an SDXL decode on a float16 GPU never turns black.

Scaled latents are always 1 x C x h x w. Two kinds of VAE: ``AutoencoderKL`` (scale, optional shift:
SD1.5, SDXL, FLUX.1, Z-Image) and the Qwen-Image causal 3D VAE (5D, one frame, normalised per
channel by ``latents_mean``/``latents_std``)."""

from __future__ import annotations

import torch

from ..models.components import BaseComponents


def _scale_shift(vae: torch.nn.Module, device: torch.device) -> tuple[torch.Tensor | float, torch.Tensor | float]:
    """(scale, shift) with scaled = (raw - shift) * scale, per channel for the 3D VAE."""
    cfg = vae.config
    if is_3d(vae):
        mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return 1.0 / std, mean
    return float(cfg.scaling_factor), float(cfg.get("shift_factor") or 0.0)


def is_3d(vae: torch.nn.Module) -> bool:
    return "temperal_downsample" in vae.config  # Qwen-Image (Wan) VAE


def posterior(vae: torch.nn.Module, pixels: torch.Tensor):  # noqa: ANN201 - a DiagonalGaussianDistribution
    """The VAE's latent distribution for 1 x 3 x H x W pixels in [-1, 1] (raw, unscaled, 4D)."""
    x = pixels.to(device=vae.device, dtype=vae.dtype)
    dist = vae.encode(x.unsqueeze(2) if is_3d(vae) else x).latent_dist
    if is_3d(vae):  # one frame: drop the time axis from the distribution's parameters
        dist.mean, dist.std, dist.var, dist.logvar = (t[:, :, 0] for t in (dist.mean, dist.std, dist.var, dist.logvar))
    return dist


def scale(vae: torch.nn.Module, raw: torch.Tensor) -> torch.Tensor:
    s, shift = _scale_shift(vae, raw.device)
    return (raw.float() - shift) * s


def encode(base: BaseComponents, pixels: torch.Tensor) -> torch.Tensor:
    """1 x 3 x H x W in [-1, 1] -> scaled latents (float32). Uses the posterior mean: deterministic."""
    return scale(base.vae, posterior(base.vae, pixels).mean)


def decode(base: BaseComponents, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> 1 x 3 x H x W in [-1, 1] (float32)."""
    vae = base.vae
    s, shift = _scale_shift(vae, latents.device)
    raw = (latents / s + shift).to(dtype=vae.dtype)
    if is_3d(vae):
        return vae.decode(raw.unsqueeze(2), return_dict=False)[0][:, :, 0].float()
    return vae.decode(raw, return_dict=False)[0].float()
