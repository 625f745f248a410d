"""LoRAs applied for one job and removed after it, so the cached base model stays exactly as loaded.

Files are read with safetensors only (we pass diffusers a state dict, never a path it could unpickle).
Kohya/A1111-style keys are converted by diffusers' ``lora_state_dict``; the adapters are injected with
peft into the denoiser — the UNet, or a flow family's transformer (FLUX.1: diffusers, Kohya, XLabs and
BFL formats via ``FluxLoraLoaderMixin``) — and into the CLIP text encoders when the LoRA trains them
(never T5), weighted with ``set_adapters``,
and on exit the peft layers are removed again (``unload_lora``), restoring the original modules.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from diffusers.loaders import (FluxLoraLoaderMixin, QwenImageLoraLoaderMixin, StableDiffusionLoraLoaderMixin,
                               StableDiffusionXLLoraLoaderMixin, ZImageLoraLoaderMixin)
from diffusers.loaders.lora_base import _remove_text_encoder_monkey_patch, set_adapters_for_text_encoder
from safetensors.torch import load_file

from .components import BaseComponents
from .errors import UnsupportedModel

log = logging.getLogger("scenecast.models")


def _upcast_float8_adapters(base: BaseComponents) -> None:
    """In fp8 memory modes (models/memory.py) peft creates the LoRA layers in the float8 dtype of the
    weights they wrap, where they cannot compute: hold them in the compute dtype instead. Their values were
    rounded to float8 on the way in, like the base weights."""
    plan = base.extra.get("memory")
    if plan is None or plan.storage != "float8_e4m3fn":
        return
    compute = getattr(torch, plan.dtype)
    for module in [base.denoiser, *base.text_encoders]:
        for name, p in module.named_parameters():
            if "lora_" in name and p.dtype == torch.float8_e4m3fn:
                p.data = p.data.to(compute)


@contextmanager
def applied_loras(base: BaseComponents, loras: Sequence[tuple[str, Path, float]]) -> Iterator[None]:
    """Within the block, ``base`` runs with ``loras`` ((name, .safetensors file, weight)) active."""
    if not loras:
        yield
        return
    mixin = _MIXINS.get(base.family, StableDiffusionLoraLoaderMixin)
    prefixes = ["text_encoder"] if base.family in ("flux", "flux-schnell") else [] if base.is_flow else ["text_encoder", "text_encoder_2"][: len(base.text_encoders)]
    denoiser = base.denoiser
    names: list[str] = []
    weights: list[float] = []
    encoder_adapters: dict[int, list[tuple[str, float]]] = {}
    try:
        for i, (name, path, weight) in enumerate(loras):
            adapter = f"scenecast_{i}"
            try:
                parts = _inject(base, mixin, prefixes, name, path, adapter)
            except UnsupportedModel:
                raise
            except (ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise UnsupportedModel(f"LoRA {name!r} does not fit {base.id} ({base.family}): {exc}",
                                       f"use a LoRA trained for {base.family} models") from exc
            if _prefix(base) in parts:
                names.append(adapter)
                weights.append(weight)
            for p in parts:
                if p != _prefix(base):
                    encoder_adapters.setdefault(prefixes.index(p), []).append((adapter, weight))
            log.info("applied LoRA %s (weight %g) to %s", name, weight, ", ".join(parts))
        _upcast_float8_adapters(base)
        if names:
            denoiser.set_adapters(names, weights)
        for idx, pairs in encoder_adapters.items():
            set_adapters_for_text_encoder([a for a, _ in pairs], base.text_encoders[idx], [w for _, w in pairs])
        yield
    finally:
        if getattr(denoiser, "peft_config", None):
            denoiser.unload_lora()
        for enc in base.text_encoders:
            if getattr(enc, "peft_config", None) is not None:
                _remove_text_encoder_monkey_patch(enc)


def _inject(base: BaseComponents, mixin: type, prefixes: list[str], name: str, path: Path, adapter: str) -> list[str]:
    """Load one LoRA file into the UNet / text encoders as peft adapter ``adapter``; returns where it went."""
    if mixin is FluxLoraLoaderMixin:
        state, alphas = mixin.lora_state_dict(load_file(str(path)), return_alphas=True)
    elif base.is_flow:  # Z-Image, Qwen-Image: alphas are folded into the converted state dict
        state, alphas = mixin.lora_state_dict(load_file(str(path))), None
    else:
        state, alphas = mixin.lora_state_dict(load_file(str(path)), unet_config=base.unet.config)
    prefix = _prefix(base)
    denoiser_keys = [k for k in state if k.startswith(prefix + ".")]
    te_prefixes = [p for p in prefixes if any(k.startswith(p + ".") for k in state)]
    if not denoiser_keys and not te_prefixes:
        raise UnsupportedModel(f"LoRA {name!r} has no layers this {base.family} model can take",
                               f"use a LoRA trained for {base.family}")
    if denoiser_keys:
        base.denoiser.load_lora_adapter(state, prefix=prefix, network_alphas=alphas, adapter_name=adapter)
    for p in te_prefixes:
        mixin.load_lora_into_text_encoder(state, alphas, base.text_encoders[prefixes.index(p)], prefix=p,
                                          adapter_name=adapter)
    return [prefix] * bool(denoiser_keys) + te_prefixes


_MIXINS: dict[str, type] = {"sdxl": StableDiffusionXLLoraLoaderMixin, "flux": FluxLoraLoaderMixin,
                            "flux-schnell": FluxLoraLoaderMixin, "zimage": ZImageLoraLoaderMixin,
                            "qwen": QwenImageLoraLoaderMixin}


def _prefix(base: BaseComponents) -> str:
    """The key prefix of the denoiser's layers in a diffusers-format LoRA."""
    return "transformer" if base.is_flow else "unet"
