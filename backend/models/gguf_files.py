"""GGUF transformers (city96's FLUX.1 and Qwen-Image quantizations: Q8_0, Q5_K, Q4_K ...): loaded with
diffusers' ``GGUFQuantizationConfig`` so the weights stay quantized in memory and are dequantized per
layer to the compute dtype. A GGUF file holds the transformer only; the VAE, text encoders, tokenizers
and scheduler come from the family's *companion* model (the reference hub repo by default, e.g.
black-forest-labs/FLUX.1-dev; ``ModelManager(gguf_companions=...)`` names another, a folder or builtin).
No pickles: GGUF is a flat tensor format, read by the ``gguf`` package."""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch

from .components import BaseComponents
from .errors import UnsupportedModel
from .families import GGUF_FAMILIES, Detected, classify_gguf, family_info, gguf_tensor_shapes
from .gguf_header import gguf_package_missing

# The transformer class of each family diffusers can load a GGUF of.
_CLASSES = {"flux": "FluxTransformer2DModel", "flux-schnell": "FluxTransformer2DModel",
            "qwen": "QwenImageTransformer2DModel"}
# Where the other parts come from unless told otherwise (their VAE, text encoders, tokenizers, scheduler).
COMPANIONS = {"flux": "black-forest-labs/FLUX.1-dev", "flux-schnell": "black-forest-labs/FLUX.1-schnell",
              "qwen": "Qwen/Qwen-Image"}


MISSING_PACKAGE_FIX = "pip install gguf into the backend's environment (backend/requirements.txt pins it)"


def detect_gguf(path: Path) -> Detected:
    """The family of a GGUF transformer file; UnsupportedModel (with the fix) for anything else, or when
    the ``gguf`` package that loading needs is missing. Reads the header only."""
    try:
        shapes = gguf_tensor_shapes(path)
    except (ValueError, OSError) as exc:
        raise UnsupportedModel(f"{path.name} cannot be read as a GGUF file ({exc})",
                               "check that the file downloaded completely") from exc
    found = classify_gguf(shapes)
    if found is None:
        families = ", ".join(family_info(f).label for f in GGUF_FAMILIES)
        raise UnsupportedModel(f"{path.name} is not a GGUF transformer Scenecast can load (it loads {families})",
                               "use a FLUX.1 or Qwen-Image transformer GGUF (e.g. city96's), or a safetensors model")
    if gguf_package_missing():
        raise UnsupportedModel(f"{path.name} is a GGUF file and the `gguf` package is not installed",
                               MISSING_PACKAGE_FIX)
    return found


def load_gguf_transformer(path: Path, family: str, config: dict, dtype: torch.dtype) -> torch.nn.Module:
    """The transformer of ``family`` from a GGUF file, its architecture from ``config`` (the companion's
    transformer/config.json), quantized weights kept as they are and computed in ``dtype``."""
    import diffusers  # noqa: PLC0415

    cls = getattr(diffusers, _CLASSES[family])
    with tempfile.TemporaryDirectory(prefix="scenecast-gguf-") as tmp:
        (Path(tmp) / "transformer").mkdir()
        (Path(tmp) / "transformer" / "config.json").write_text(json.dumps(config))
        model = cls.from_single_file(str(path), config=tmp, subfolder="transformer", torch_dtype=dtype,
                                     quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
                                     local_files_only=True)
    return model.eval().requires_grad_(False)


def gguf_base(path: Path, model_id: str, family: str, companion: BaseComponents, transformer_config: dict,
              dtype: torch.dtype) -> BaseComponents:
    """``companion``'s parts with the GGUF transformer in place of its own (``companion.transformer`` may be
    None: it was not loaded)."""
    if companion.family.removesuffix("-schnell") != family.removesuffix("-schnell"):
        raise UnsupportedModel(f"{path.name} is a {family_info(family).label} transformer but its companion "
                               f"{companion.id} is {family_info(companion.family).label}",
                               "name a companion model of the same family")
    transformer = load_gguf_transformer(path, family, transformer_config, dtype)
    return replace(companion, id=model_id, family=family, source="gguf", transformer=transformer,
                   extra={**companion.extra, "gguf": path.name, "companion": companion.id})


def is_quantized(module: torch.nn.Module) -> bool:
    """A module whose weights are quantized (GGUF): no dtype casts, no float8 storage on top."""
    return bool(getattr(module, "is_quantized", False))
