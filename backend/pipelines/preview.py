"""Previews during denoising: TAESD (a tiny VAE decoder) when its weights are installed, otherwise a
linear latent -> RGB map (fitted factors, as used across the SD ecosystem) at latent resolution."""

from __future__ import annotations

import numpy as np
import torch

LATENT_RGB = {
    "sd15": ([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721],
              [-0.2120, -0.2616, -0.7177]], [0.0, 0.0, 0.0]),
    "sdxl": ([[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362],
              [-0.3165, -0.2492, -0.2188]], [0.1084, -0.0175, -0.0011]),
}


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """3 x H x W in [-1, 1] -> H x W x 3 uint8."""
    return rgb.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def approximate(latents: torch.Tensor, family: str) -> np.ndarray:
    factors, bias = LATENT_RGB.get(family, LATENT_RGB["sd15"])
    f = torch.tensor(factors, dtype=torch.float32, device=latents.device)
    b = torch.tensor(bias, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("chw,cr->rhw", latents[0].float(), f) + b[:, None, None]
    return _to_uint8(rgb)


def render(latents: torch.Tensor, family: str, taesd: torch.nn.Module | None) -> np.ndarray:
    """A preview of (scaled) ``latents``: H x W x 3 uint8, row 0 at the top."""
    if taesd is not None:
        out = taesd.decode(latents.to(device=taesd.device, dtype=taesd.dtype), return_dict=False)[0]
        return _to_uint8(out[0])
    return approximate(latents, family)
