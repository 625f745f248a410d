"""The ControlNet a unit gets when it names only its ``type``: the standard one for the base family.

Documented in docs/models.md; keep the two in step.
"""

from __future__ import annotations

from .errors import UnsupportedModel
from .families import HUB_FAMILIES

#: The base models a user most likely wants, listed by /v1/models even before they are installed.
KNOWN_BASES: dict[str, str] = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd15",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    **HUB_FAMILIES,  # FLUX.1 dev/schnell, Z-Image Turbo, Qwen-Image (families.py)
}

SDXL_UNION = "xinsir/controlnet-union-sdxl-1.0"
FLUX_UNION = "Shakker-Labs/FLUX.1-dev-ControlNet-Union-Pro"

DEFAULT_CONTROLNETS: dict[str, dict[str, str]] = {
    "sd15": {
        "depth": "lllyasviel/control_v11f1p_sd15_depth",
        "normal": "lllyasviel/control_v11p_sd15_normalbae",
        "edges": "lllyasviel/control_v11p_sd15_lineart",
        "lineart": "lllyasviel/control_v11p_sd15_lineart",
        "canny": "lllyasviel/control_v11p_sd15_canny",
        "segmentation": "lllyasviel/control_v11p_sd15_seg",
    },
    "sdxl": {
        "depth": "diffusers/controlnet-depth-sdxl-1.0",
        "canny": "diffusers/controlnet-canny-sdxl-1.0",
        "edges": "diffusers/controlnet-canny-sdxl-1.0",
        # No dedicated SDXL ControlNets of quality for these: one ControlNet Union serves them all (and
        # several units of a stage share one forward pass, see pipelines/control.py).
        "normal": SDXL_UNION,
        "segmentation": SDXL_UNION,
        "lineart": SDXL_UNION,
    },
    # FLUX.1: one Union ControlNet with control modes (canny 0, depth 2; pipelines/flux.py maps the types).
    "flux": {t: FLUX_UNION for t in ("depth", "canny", "edges", "lineart")},
    "flux-schnell": {t: FLUX_UNION for t in ("depth", "canny", "edges", "lineart")},
    # Qwen-Image: InstantX's Union ControlNet (canny, soft edge, depth, pose) needs no mode input.
    "qwen": {t: "InstantX/Qwen-Image-ControlNet-Union" for t in ("depth", "canny", "edges", "lineart")},
    # Z-Image: the Fun ControlNet Union is published as a single VideoX-Fun file only; no default yet
    # (name a diffusers-format Z-Image ControlNet folder in the unit's `model`), see docs/models.md.
}


def default_controlnet(base_id: str, family: str, unit_type: str) -> str:
    """The ControlNet id for a unit of ``unit_type`` on a base model; builtins get their own."""
    from .builtins import DEFAULT_CONTROLNET  # noqa: PLC0415 - builds torch modules

    if base_id in DEFAULT_CONTROLNET:
        return DEFAULT_CONTROLNET[base_id](unit_type)
    table = DEFAULT_CONTROLNETS.get(family, {})
    if unit_type not in table:
        known = ", ".join(sorted(table)) or "none"
        raise UnsupportedModel(
            f"there is no default {family} ControlNet for type {unit_type!r} (defaults exist for: {known})",
            "name the ControlNet in the unit's `model` field (a hub id, diffusers folder or .safetensors file)",
        )
    return table[unit_type]
