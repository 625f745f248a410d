"""Models built in code, by id: ``builtin:tiny`` (noise, for tests and install checks) and
``builtin:sd15-random`` (the real SD1.5 architecture with random weights, ~1.2 B parameters with its
ControlNet, for benchmarks that must measure real-size compute without downloading anything)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from .components import BaseComponents
from .configs import CLIP_L, SD15_SCHEDULER, SD15_UNET, SD15_VAE, controlnet_config_of
from .tiny import CONTROLNET_TYPES, TINY_CONTROLNET_PREFIX, TINY_ID, build_tiny_base, build_tiny_controlnet
from .tiny_flux import (TINY_FLUX_CONTROLNET_PREFIX, TINY_FLUX_ID, TINY_FLUX_SCHNELL_ID, TINY_FLUX_UNION_ID,
                        build_tiny_flux, build_tiny_flux_controlnet, build_tiny_flux_schnell)
from .tiny_qwen import TINY_QWEN_CONTROLNET_ID, TINY_QWEN_ID, build_tiny_qwen, build_tiny_qwen_controlnet
from .tiny_sdxl import (DEDICATED_TYPES, TINY_SDXL_CONTROLNET_PREFIX, TINY_SDXL_ID, TINY_SDXL_UNION_ID,
                        build_tiny_sdxl, build_tiny_sdxl_controlnet)
from .tiny_zimage import TINY_ZIMAGE_CONTROLNET_ID, TINY_ZIMAGE_ID, build_tiny_zimage, build_tiny_zimage_controlnet
from .tokenizers import clip_bpe_vocab, make_tokenizer

SD15_RANDOM_ID = "builtin:sd15-random"
SD15_RANDOM_CONTROLNET_ID = "builtin:sd15-random-controlnet"


def _cfg(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_") and k not in ("architectures", "model_type")}


def build_sd15_random() -> BaseComponents:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(**_cfg(SD15_UNET))
        vae = AutoencoderKL(**_cfg(SD15_VAE))
        text = CLIPTextModel(CLIPTextConfig(**_cfg(CLIP_L)))
    return BaseComponents(id=SD15_RANDOM_ID, family="sd15", source="builtin", unet=unet.eval(), vae=vae.eval(),
                          text_encoders=[text.eval()], tokenizers=[make_tokenizer(*clip_bpe_vocab())],
                          scheduler_config=dict(SD15_SCHEDULER), vae_decode_dtype=torch.float32)


def build_sd15_random_controlnet() -> ControlNetModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return ControlNetModel(**_cfg(controlnet_config_of(SD15_UNET))).eval()


BASES: dict[str, Callable[[], BaseComponents]] = {
    TINY_ID: build_tiny_base, SD15_RANDOM_ID: build_sd15_random,
    TINY_FLUX_ID: build_tiny_flux, TINY_FLUX_SCHNELL_ID: build_tiny_flux_schnell,
    TINY_ZIMAGE_ID: build_tiny_zimage, TINY_QWEN_ID: build_tiny_qwen, TINY_SDXL_ID: build_tiny_sdxl,
}
CONTROLNETS: dict[str, Callable[[], Any]] = {
    **{TINY_CONTROLNET_PREFIX + t: partial(build_tiny_controlnet, t) for t in CONTROLNET_TYPES},
    SD15_RANDOM_CONTROLNET_ID: build_sd15_random_controlnet,
    **{TINY_FLUX_CONTROLNET_PREFIX + t: partial(build_tiny_flux_controlnet, t) for t in CONTROLNET_TYPES},
    TINY_FLUX_UNION_ID: partial(build_tiny_flux_controlnet, "union"),
    TINY_ZIMAGE_CONTROLNET_ID: build_tiny_zimage_controlnet, TINY_QWEN_CONTROLNET_ID: build_tiny_qwen_controlnet,
    **{TINY_SDXL_CONTROLNET_PREFIX + t: partial(build_tiny_sdxl_controlnet, t) for t in DEDICATED_TYPES},
    TINY_SDXL_UNION_ID: partial(build_tiny_sdxl_controlnet, "union"),
}
DEFAULT_CONTROLNET = {TINY_ID: lambda unit_type: TINY_CONTROLNET_PREFIX + unit_type,
                      SD15_RANDOM_ID: lambda unit_type: SD15_RANDOM_CONTROLNET_ID,
                      TINY_FLUX_ID: lambda unit_type: TINY_FLUX_CONTROLNET_PREFIX + unit_type,
                      TINY_FLUX_SCHNELL_ID: lambda unit_type: TINY_FLUX_CONTROLNET_PREFIX + unit_type,
                      TINY_ZIMAGE_ID: lambda unit_type: TINY_ZIMAGE_CONTROLNET_ID,  # one Union net for all types
                      TINY_QWEN_ID: lambda unit_type: TINY_QWEN_CONTROLNET_ID,
                      TINY_SDXL_ID: lambda unit_type: _tiny_sdxl_default(unit_type)}
def _tiny_sdxl_default(unit_type: str) -> str:
    """As the real SDXL table: dedicated nets where SDXL has them, the Union net for the rest."""
    return TINY_SDXL_CONTROLNET_PREFIX + unit_type if unit_type in DEDICATED_TYPES else TINY_SDXL_UNION_ID


#: The family of every builtin base and ControlNet (answered without building anything).
BUILTIN_FAMILIES: dict[str, str] = {
    **{mid: "sd15" for mid in (TINY_ID, SD15_RANDOM_ID, SD15_RANDOM_CONTROLNET_ID)},
    **{TINY_CONTROLNET_PREFIX + t: "sd15" for t in CONTROLNET_TYPES},
    TINY_FLUX_ID: "flux", TINY_FLUX_SCHNELL_ID: "flux-schnell", TINY_FLUX_UNION_ID: "flux",
    **{TINY_FLUX_CONTROLNET_PREFIX + t: "flux" for t in CONTROLNET_TYPES},
    TINY_ZIMAGE_ID: "zimage", TINY_ZIMAGE_CONTROLNET_ID: "zimage", TINY_QWEN_ID: "qwen", TINY_QWEN_CONTROLNET_ID: "qwen",
    TINY_SDXL_ID: "sdxl", TINY_SDXL_UNION_ID: "sdxl", **{TINY_SDXL_CONTROLNET_PREFIX + t: "sdxl" for t in DEDICATED_TYPES},
}
