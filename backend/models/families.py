"""Model families Scenecast runs, what kind of denoiser each has, and their generation defaults.

Pure data and pure functions (no torch): the loader, the pipelines, the server's checks and the
models-folder scanner all ask this module, so a family is described once.

Kinds of denoiser:
- ``unet``: epsilon/v-prediction UNets with a DDPM-family scheduler and classifier-free guidance
  (SD1.5, SDXL) — ``pipelines/denoise.py``;
- ``flow``: flow-matching transformers over packed latent tokens with FlowMatchEulerDiscreteScheduler
  (FLUX.1, Z-Image, Qwen-Image) — ``pipelines/flow_denoise.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    kind: str  # "unet" | "flow"
    label: str
    steps: int | None  # default steps when the job names none (None: the spec's default)
    guidance: float | None  # default guidance when the job names none (None: the spec's); see docs/models.md
    latent_channels: int
    controlnet_class: str  # the diffusers class of this family's ControlNets
    true_cfg: bool = False  # runs classifier-free guidance with the negative prompt when guidance asks for it


FAMILIES: dict[str, FamilyInfo] = {
    "sd15": FamilyInfo("sd15", "unet", "Stable Diffusion 1.5", None, None, 4, "ControlNetModel", True),
    "sdxl": FamilyInfo("sdxl", "unet", "Stable Diffusion XL", None, None, 4, "ControlNetModel", True),
    # FLUX.1 [dev]: guidance is distilled into the transformer (guidance embedding), 3.5 is BFL's default.
    "flux": FamilyInfo("flux", "flow", "FLUX.1 [dev]", 28, 3.5, 16, "FluxControlNetModel"),
    # FLUX.1 [schnell]: timestep-distilled, no guidance input at all, 4 steps.
    "flux-schnell": FamilyInfo("flux-schnell", "flow", "FLUX.1 [schnell]", 4, 0.0, 16, "FluxControlNetModel"),
    # Z-Image Turbo: 8 steps without CFG (guidance 0); Z-Image base models use CFG (guidance > 0).
    "zimage": FamilyInfo("zimage", "flow", "Z-Image", 8, 0.0, 16, "ZImageControlNetModel", True),
    # Qwen-Image: true CFG (guidance > 1, 4.0 is the model card's), 50 steps.
    "qwen": FamilyInfo("qwen", "flow", "Qwen-Image", 50, 4.0, 16, "QwenImageControlNetModel", True),
}


def family_info(family: str) -> FamilyInfo:
    return FAMILIES[family]


def is_flow(family: str) -> bool:
    return family in FAMILIES and FAMILIES[family].kind == "flow"
