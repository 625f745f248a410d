"""What a ``.safetensors`` file holds, from its header alone: family and kind, no tensor read, no torch.

A safetensors file starts with an 8-byte little-endian length and a JSON header naming every tensor
with its dtype and shape. That is enough to tell an SD1.5 checkpoint from an SDXL one, a ControlNet, a
LoRA or a VAE, which is what the models folders of ComfyUI and A1111/Forge need: their folder names
say what the user meant, the header says what the file is (a LoRA dropped into ``checkpoints`` is
still a LoRA). Reading one header costs one small read, so a folder of 50 GB of models lists in
milliseconds.

Families: ``sd15``, ``sdxl``, ``sd2``, ``sd3``, ``flux``, ``sd`` (a 4-channel VAE, which SD1.5 and SDXL
share), ``unknown``. Kinds: ``base`` (a checkpoint), ``controlnet``, ``lora``, ``vae``, ``unknown``.
Scenecast runs sd15 and sdxl; the others are listed so the user sees why a file is not offered.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Real headers are a few MB at most (SDXL: ~2,500 tensors, ~200 kB); anything bigger is not one.
MAX_HEADER_BYTES = 100 << 20
RUNNABLE_FAMILIES = ("sd15", "sdxl")


class HeaderError(ValueError):
    """The file is not a readable safetensors file (truncated, not safetensors, bad JSON)."""


@dataclass(frozen=True)
class Classified:
    kind: str  # base | controlnet | lora | vae | unknown
    family: str  # sd15 | sdxl | sd2 | sd3 | flux | sd | unknown
    inpainting: bool = False

    @property
    def runnable(self) -> bool:
        """Whether Scenecast can use it (a 4-channel VAE counts: both runnable families use one)."""
        if self.kind == "vae":
            return self.family == "sd"
        return self.kind in ("base", "controlnet", "lora") and self.family in RUNNABLE_FAMILIES


def read_header(path: Path) -> dict[str, Any]:
    """Tensor name -> {"dtype", "shape", ...} (``__metadata__`` dropped); :class:`HeaderError` if unreadable."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise HeaderError(f"{path.name} is too short to be a safetensors file")
            (length,) = struct.unpack("<Q", head)
            size = path.stat().st_size
            if length > MAX_HEADER_BYTES or length > size - 8:
                raise HeaderError(f"{path.name} is not a safetensors file (header length {length} bytes)")
            raw = fh.read(length)
    except OSError as exc:
        raise HeaderError(f"{path.name} cannot be read: {exc}") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeaderError(f"{path.name} has no valid safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise HeaderError(f"{path.name} has no valid safetensors header")
    header.pop("__metadata__", None)
    return header


def _shape(header: dict[str, Any], key: str) -> list[int]:
    entry = header.get(key)
    return list(entry.get("shape", [])) if isinstance(entry, dict) else []


def _context_family(header: dict[str, Any], keys: list[str]) -> str:
    """Family from the width of the text the UNet's cross-attention reads: 768 sd15, 1024 sd2, 2048 sdxl."""
    for key in keys:
        if ("attn2.to_k.weight" in key or "attn2_to_k.weight" in key) and "lora" not in key:
            width = _shape(header, key)[-1:]
            return {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(width[0] if width else 0, "sd15")
    return "unknown"


def _lora_family(header: dict[str, Any], keys: list[str]) -> str:
    if any("double_blocks" in k or "single_transformer_blocks" in k or "single_blocks" in k for k in keys):
        return "flux"
    if any("joint_blocks" in k for k in keys):
        return "sd3"
    if any("text_encoder_2" in k or "lora_te2" in k for k in keys):
        return "sdxl"
    for key in keys:
        if ("attn2.to_k" in key or "attn2_to_k" in key) and ("lora_A" in key or "lora_down" in key):
            width = _shape(header, key)[-1:]
            return {768: "sd15", 1024: "sd2", 2048: "sdxl"}.get(width[0] if width else 0, "sd15")
    return "sd15" if any(k.startswith(("lora_unet_", "unet.", "lora_te_")) for k in keys) else "unknown"


def _is_lora(keys: list[str]) -> bool:
    return any(".lora_" in k or "lora_down" in k or "lora_A" in k or ".lora." in k for k in keys)


def _is_vae(keys: list[str]) -> bool:
    stripped = [k.removeprefix("first_stage_model.").removeprefix("vae.") for k in keys]
    return bool(stripped) and all(k.startswith(("encoder.", "decoder.", "quant_conv.", "post_quant_conv."))
                                  for k in stripped)


def classify_header(header: dict[str, Any]) -> Classified:
    """Kind and family from tensor names and a few shapes (see the module docstring)."""
    keys = [k for k in header if k != "__metadata__"]
    keyset = set(keys)
    if _is_lora(keys):
        return Classified("lora", _lora_family(header, keys))
    if any(k.startswith(("control_model.", "input_hint_block.", "controlnet_cond_embedding.")) for k in keys):
        sdxl = any("label_emb" in k or k.startswith(("add_embedding.", "control_model.label_emb")) for k in keys)
        return Classified("controlnet", "sdxl" if sdxl else "sd15")
    if any(k.startswith(("controlnet_x_embedder.", "controlnet_blocks.")) for k in keys):
        return Classified("controlnet", "flux" if any("single_transformer_blocks" in k or "transformer_blocks" in k
                                                      for k in keys) else "sd3")
    if _is_vae(keys):
        conv = _shape(header, "decoder.conv_in.weight") or _shape(header, "first_stage_model.decoder.conv_in.weight") \
            or _shape(header, "vae.decoder.conv_in.weight")
        latent = conv[1] if len(conv) > 1 else 0
        return Classified("vae", {4: "sd", 16: "flux"}.get(latent, "unknown"))
    if any(k.startswith(("model.diffusion_model.double_blocks.", "double_blocks.")) for k in keys):
        return Classified("base", "flux")
    if any(k.startswith(("model.diffusion_model.joint_blocks.", "joint_blocks.")) for k in keys):
        return Classified("base", "sd3")
    unet = [k for k in keys if k.startswith("model.diffusion_model.")]
    if unet:
        inpainting = (_shape(header, "model.diffusion_model.input_blocks.0.0.weight") + [0, 0])[1] == 9
        if "conditioner.embedders.1.model.positional_embedding" in keyset or \
                "model.diffusion_model.label_emb.0.0.weight" in keyset:
            return Classified("base", "sdxl", inpainting)
        if "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keyset:
            return Classified("base", "sd15", inpainting)
        if any(k.startswith("cond_stage_model.model.") for k in keys):
            return Classified("base", "sd2", inpainting)
        return Classified("base", _context_family(header, unet), inpainting)
    return Classified("unknown", "unknown")


def classify_file(path: Path) -> Classified:
    """:func:`classify_header` of ``path``'s header (raises :class:`HeaderError`)."""
    return classify_header(read_header(path))
