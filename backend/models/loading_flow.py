"""Flow-matching families (FLUX.1, Z-Image, Qwen-Image) from diffusers folders (hub snapshots or local):
the transformer, the VAE, the text encoders and tokenizers the family's conditioning needs, the
scheduler config. Only safetensors is read. Single-file transformers of these families (ComfyUI's
``diffusion_models/*.safetensors``) are recognised but refused with the fix: they carry no VAE or text
encoders, and diffusers needs the hub config to convert them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .components import BaseComponents
from .errors import UnsupportedModel
from .families import family_from_model_index, family_info

# (transformer class, VAE class, [(text encoder class, subfolder)], tokenizer subfolders), by family
_PARTS = {
    "flux": ("FluxTransformer2DModel", "AutoencoderKL", [("CLIPTextModel", "text_encoder"),
                                                          ("T5EncoderModel", "text_encoder_2")],
             ["tokenizer", "tokenizer_2"]),
    "zimage": ("ZImageTransformer2DModel", "AutoencoderKL", [("AutoModel", "text_encoder")], ["tokenizer"]),
    "qwen": ("QwenImageTransformer2DModel", "AutoencoderKLQwenImage",
             [("Qwen2_5_VLForConditionalGeneration", "text_encoder")], ["tokenizer"]),
}
_PARTS["flux-schnell"] = _PARTS["flux"]
FLOW_CONTROLNETS = {"FluxControlNetModel", "ZImageControlNetModel", "QwenImageControlNetModel"}


def flow_family_of_folder(folder: Path) -> str | None:
    """The flow family of a diffusers folder (None: not a flow model)."""
    index_file = folder / "model_index.json"
    if not index_file.is_file() or not (folder / "transformer").is_dir():
        return None
    index = json.loads(index_file.read_text())
    tcfg = folder / "transformer" / "config.json"
    family = family_from_model_index(index, json.loads(tcfg.read_text()) if tcfg.is_file() else None)
    return family if family in _PARTS else None


def load_flow_folder(folder: Path, model_id: str, source: str, dtype: torch.dtype, family: str,
                     with_transformer: bool = True) -> BaseComponents:
    """The family's parts from a diffusers folder; ``with_transformer=False`` leaves the transformer out
    (None) for a GGUF transformer to take its place (models/gguf_files.py)."""
    import diffusers  # noqa: PLC0415
    import transformers  # noqa: PLC0415

    from .sources import check_weights  # noqa: PLC0415

    tr_cls, vae_cls, encoders, tokenizers = _PARTS[family]
    check_weights(folder, ("transformer",) * with_transformer + ("vae", *[sub for _, sub in encoders]), model_id)
    kw = dict(torch_dtype=dtype, use_safetensors=True, local_files_only=True)
    transformer = (getattr(diffusers, tr_cls).from_pretrained(folder, subfolder="transformer", **kw)
                   if with_transformer else None)
    vae = getattr(diffusers, vae_cls).from_pretrained(folder, subfolder="vae", **kw)
    text = [getattr(transformers, cls).from_pretrained(folder / sub, torch_dtype=dtype, use_safetensors=True)
            for cls, sub in encoders]
    toks = [transformers.AutoTokenizer.from_pretrained(folder / sub) for sub in tokenizers]
    if family in ("flux", "flux-schnell"):  # CLIP's tokenizer, as the CLIP encoder was trained with
        toks[0] = transformers.CLIPTokenizer.from_pretrained(folder / "tokenizer")
    sched = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    extra = {"max_sequence_length": 256 if family == "flux-schnell" else 512}
    if family == "qwen":
        extra["max_sequence_length"] = 1024
    return BaseComponents(id=model_id, family=family, source=source, unet=None, vae=vae.eval(),
                          text_encoders=[e.eval() for e in text], tokenizers=toks, scheduler_config=sched,
                          vae_decode_dtype=vae.dtype, transformer=transformer.eval() if transformer is not None else None,
                          extra=extra)


def flow_controlnet_class(config: dict) -> str | None:
    cls = str(config.get("_class_name", ""))
    return cls if cls in FLOW_CONTROLNETS else None


def refuse_flow_single_file(path: Path, kind: str, family: str) -> UnsupportedModel:
    label = family_info(family).label
    return UnsupportedModel(
        f"{path.name} is a {label} {kind} in a single file; Scenecast loads {label} {kind}s from diffusers "
        "folders or hub ids (a single transformer file has no VAE or text encoders to go with it)",
        f"use the hub id (e.g. {_EXAMPLE[family]}) or a diffusers folder; LoRA files of {label} work as they are")


_EXAMPLE = {"flux": "black-forest-labs/FLUX.1-dev", "flux-schnell": "black-forest-labs/FLUX.1-schnell",
            "zimage": "Tongyi-MAI/Z-Image-Turbo", "qwen": "Qwen/Qwen-Image", "sdxl": "xinsir/controlnet-union-sdxl-1.0"}
