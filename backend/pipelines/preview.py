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
    # FLUX.1's 16-channel VAE (fitted factors as published with ComfyUI's latent formats).
    "flux": ([[-0.0346, 0.0244, 0.0681], [0.0034, 0.0210, 0.0687], [0.0275, -0.0668, -0.0433],
              [-0.0174, 0.0160, 0.0617], [0.0859, 0.0721, 0.0329], [0.0004, 0.0383, 0.0115],
              [0.0405, 0.0861, 0.0915], [-0.0236, -0.0185, -0.0259], [-0.0245, 0.0250, 0.1180],
              [0.1008, 0.0755, -0.0421], [-0.0515, 0.0201, 0.0011], [0.0428, -0.0012, -0.0036],
              [0.0817, 0.0765, 0.0749], [-0.1264, -0.0522, -0.1103], [-0.0280, -0.0881, -0.0499],
              [-0.1262, -0.0982, -0.0778]], [-0.0329, -0.0718, -0.0851]),
}
LATENT_RGB["flux-schnell"] = LATENT_RGB["flux"]
LATENT_RGB["zimage"] = LATENT_RGB["flux"]  # Z-Image uses FLUX.1's VAE
# Qwen-Image's VAE is Wan 2.1's (fitted factors as published with ComfyUI's latent formats, fitted on raw
# latents; ours are mean/std-normalised, so the preview's colours are approximate).
LATENT_RGB["qwen"] = ([[-0.1299, -0.1692, 0.2932], [0.0671, 0.0406, 0.0442], [0.3568, 0.2548, 0.1747],
                       [0.0372, 0.2344, 0.1420], [0.0313, 0.0189, -0.0328], [0.0296, -0.0956, -0.0665],
                       [-0.3477, -0.4059, -0.2925], [0.0166, 0.1902, 0.1975], [-0.0412, 0.0267, -0.1364],
                       [-0.1293, 0.0740, 0.1636], [0.0680, 0.3019, 0.1128], [0.0032, 0.0581, 0.0639],
                       [-0.1251, 0.0927, 0.1699], [0.0060, -0.0633, 0.0005], [0.3477, 0.2275, 0.2950],
                       [0.1984, 0.0913, 0.1861]], [-0.1835, -0.0868, -0.3360])



def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """3 x H x W in [-1, 1] -> H x W x 3 uint8."""
    return rgb.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def approximate(latents: torch.Tensor, family: str) -> np.ndarray:
    factors, bias = LATENT_RGB[family] if family in LATENT_RGB else LATENT_RGB["sd15"]
    if len(factors) != latents.shape[1]:
        raise ValueError(f"no latent->RGB preview factors for {latents.shape[1]}-channel {family} latents")
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
