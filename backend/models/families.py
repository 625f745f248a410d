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

import json
import os
import struct
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


# -- detection (pure: from a safetensors header, a model_index.json, a hub id) ------------------------

@dataclass(frozen=True)
class Detected:
    kind: str  # "base" | "controlnet" | "lora"
    family: str  # a FAMILIES key
    layout: str  # "diffusers" | "original" (BFL/ComfyUI/VideoX-Fun key names) | "kohya"
    note: str = ""  # e.g. "FLUX.1 Fill (384 input channels)"


# ComfyUI/A1111 full checkpoints put the denoiser under this prefix (and the VAE / text encoders beside it).
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "unet.")


def _strip(keys: list[str]) -> list[str]:
    out = []
    for k in keys:
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
                break
        out.append(k)
    return out


def _shape(header: dict, *names: str) -> list[int] | None:
    for name in names:
        for prefix in ("", *_PREFIXES):
            entry = header.get(prefix + name)
            if isinstance(entry, dict) and "shape" in entry:
                return list(entry["shape"])
    return None


_SD_LORA_MARKERS = ("down_blocks", "up_blocks", "mid_block", "input_blocks", "output_blocks", "middle_block",
                    "attn1", "attn2", "lora_te")


def _lora_flow_family(keys: list[str]) -> str | None:
    """The flow family a LoRA's keys belong to; None for SD1.5/SDXL LoRAs (UNet block names)."""
    joined = "\n".join(keys[:400])
    if any(m in joined for m in _SD_LORA_MARKERS):
        return None
    if any(m in joined for m in ("double_blocks", "single_blocks", "single_transformer_blocks")):
        return "flux"  # FLUX.1 has single-stream blocks; diffusers, Kohya and BFL names
    if any(m in joined for m in ("context_refiner", "noise_refiner", ".attention.to_", "_attention_to_")):
        return "zimage"
    if "transformer_blocks" in joined:
        return "qwen"  # double-stream blocks only
    return None


def classify_header(header: dict) -> Detected | None:
    """What a single .safetensors file is, from its header alone ({tensor name: {"shape": ...}}, as
    safetensors stores it; ``__metadata__`` is ignored). Covers the flow families' transformers,
    ControlNets and LoRAs in diffusers, original (BFL / ComfyUI / VideoX-Fun) and Kohya key layouts, and
    the SDXL ControlNet Union. None when it is none of these (SD1.5/SDXL checkpoints are classified by
    ``sources.classify_single_file``)."""
    raw = [k for k in header if k != "__metadata__"]
    keys = _strip(raw)
    keyset = set(keys)
    has = lambda *subs: any(any(s in k for s in subs) for k in keys)  # noqa: E731
    starts = lambda *pre: any(k.startswith(pre) for k in keys)  # noqa: E731

    if any(".lora_" in k or "lora_down" in k or "lora_A" in k or "lora_B" in k for k in raw[:400]):
        family = _lora_flow_family(raw)
        if family is None:
            return None
        layout = "kohya" if any(k.startswith("lora_unet_") for k in raw[:50]) else "diffusers"
        return Detected("lora", family, layout)
    if "task_embedding" in keyset and starts("control_add_embedding."):
        return Detected("controlnet", "sdxl", "diffusers", "ControlNet Union")
    # FLUX.1 ControlNets: InstantX/Shakker (diffusers keys, optional Union mode embedder) or XLabs (BFL keys).
    if starts("controlnet_blocks.") and (starts("transformer_blocks.") or starts("double_blocks.")):
        if starts("img_in.") or has("img_mod."):
            return Detected("controlnet", "qwen", "diffusers")
        note = "Union" if "controlnet_mode_embedder.weight" in keyset else ""
        return Detected("controlnet", "flux", "original" if starts("double_blocks.") else "diffusers", note)
    if starts("control_layers.") or starts("control_all_x_embedder."):
        return Detected("controlnet", "zimage", "diffusers" if starts("control_all_x_embedder.") else "original")
    # FLUX.1 transformers: BFL/ComfyUI keys (double_blocks, single_blocks) or diffusers keys.
    if starts("double_blocks.") and starts("single_blocks."):
        dev = starts("guidance_in.")
        width = (_shape(header, "img_in.weight") or [0, 64])[1]
        return Detected("base", "flux" if dev else "flux-schnell", "original",
                        "FLUX.1 Fill / inpainting (384 input channels)" if width == 384 else "")
    if starts("single_transformer_blocks.") and starts("transformer_blocks.") and starts("x_embedder."):
        dev = starts("time_text_embed.guidance_embedder.")
        return Detected("base", "flux" if dev else "flux-schnell", "diffusers")
    # Z-Image: refiners around a single-stream stack, caption embedder.
    if starts("context_refiner.") and starts("noise_refiner.") and starts("cap_embedder."):
        return Detected("base", "zimage", "diffusers" if starts("all_x_embedder.") else "original")
    # Qwen-Image: MMDiT blocks with img_mod/txt_mod, txt_norm.
    if starts("transformer_blocks.") and has(".img_mod.") and "txt_norm.weight" in keyset:
        return Detected("base", "qwen", "diffusers")
    return None


# model_index.json ``_class_name`` -> family (the transformer's config decides FLUX.1 dev vs schnell).
PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd15", "StableDiffusionXLPipeline": "sdxl",
    "FluxPipeline": "flux", "FluxControlNetPipeline": "flux", "FluxImg2ImgPipeline": "flux",
    "ZImagePipeline": "zimage", "ZImageControlNetPipeline": "zimage",
    "QwenImagePipeline": "qwen", "QwenImageControlNetPipeline": "qwen",
}


def family_from_model_index(index: dict, transformer_config: dict | None = None) -> str | None:
    """The family of a diffusers folder from its model_index.json (and transformer/config.json)."""
    family = PIPELINE_FAMILIES.get(str(index.get("_class_name", "")))
    if family == "flux" and transformer_config is not None and not transformer_config.get("guidance_embeds", True):
        return "flux-schnell"
    return family


# Hub ids of the families' reference repos (and common names), so a family is known before download.
HUB_FAMILIES = {
    "black-forest-labs/FLUX.1-dev": "flux", "black-forest-labs/FLUX.1-schnell": "flux-schnell",
    "black-forest-labs/FLUX.1-Krea-dev": "flux", "Tongyi-MAI/Z-Image-Turbo": "zimage", "Qwen/Qwen-Image": "qwen",
}


def family_from_hub_id(repo_id: str) -> str | None:
    """A known hub id's family, else a guess from the name (None when the name says nothing)."""
    if repo_id in HUB_FAMILIES:
        return HUB_FAMILIES[repo_id]
    name = repo_id.lower()
    if "flux" in name and ("flux.2" in name or "flux2" in name):
        return None  # FLUX.2: not a supported family (see docs/models.md)
    if "flux" in name:
        return "flux-schnell" if "schnell" in name else "flux"
    if "z-image" in name or "zimage" in name:
        return "zimage"
    if "qwen-image" in name or "qwenimage" in name:
        return "qwen"
    return None


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a .safetensors file (8-byte little-endian length, then JSON): no tensor read,
    nothing unpickled. The one I/O helper here, for callers that have only a path."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        if size > 100 * 1024 * 1024:
            raise ValueError(f"{path}: safetensors header of {size} bytes is not plausible")
        return json.loads(f.read(size))


# -- GGUF (quantized single-file transformers, city96-style: BFL or diffusers key names) -------------------

GGUF_FAMILIES = ("flux", "flux-schnell", "qwen")  # the families diffusers loads GGUF transformers of, and we do


def classify_gguf(tensors: dict[str, list[int]]) -> Detected | None:
    """What a .gguf file holds, from its tensor names and shapes (torch order: out, in) alone — the same
    rules as a safetensors header. Only transformers of ``GGUF_FAMILIES`` count; anything else (GGUF
    language models, Z-Image, ControlNets) is None, and the loader says why."""
    found = classify_header({name: {"shape": list(shape)} for name, shape in tensors.items()})
    if found is None or found.kind != "base" or found.family not in GGUF_FAMILIES:
        return None
    return Detected(found.kind, found.family, found.layout, ("GGUF " + found.note).strip())


def gguf_tensor_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """Tensor names and shapes (torch order) of a .gguf file, from its header alone (models/gguf_header.py:
    no tensor data is read, and the ``gguf`` package is not needed). Raises ValueError (GgufHeaderError)
    for a file that is no readable GGUF."""
    from .gguf_header import read_gguf_tensors  # noqa: PLC0415

    return {name: list(t.shape) for name, t in read_gguf_tensors(path).items()}
