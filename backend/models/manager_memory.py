"""Memory modes on :class:`ModelManager` (models/memory.py decides; this applies): the compute dtype per
family, the plan for a loaded base by free device memory, fp8 storage and offload hooks, GGUF bases,
and what ``/v1/health`` reports. A mixin of ModelManager, kept apart from finding and loading."""

from __future__ import annotations

import json
import logging
from typing import Any

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from .components import BaseComponents, module_bytes
from .errors import ModelError, UnsupportedModel
from .families import FAMILIES, family_info
from .loading_flow import load_flow_folder
from .loading import DownloadCallback, download
from .gguf_files import detect_gguf, gguf_base, is_quantized
from .memory import MemoryPlan, apply_memory_plan, choose_mode, default_dtype
from .sources import classify_single_file, locate

log = logging.getLogger("scenecast.models")


def keeps_own_attention(module: torch.nn.Module) -> bool:
    """Flow transformers (FLUX, ...) bring attention processors of their own (joint attention, RoPE);
    replacing them with the UNet's AttnProcessor2_0 would break them."""
    return any(type(p).__name__ not in ("AttnProcessor", "AttnProcessor2_0")
               for p in getattr(module, "attn_processors", {}).values())


class MemoryModes:
    """Memory modes of the manager (see the module doc)."""

    # -- memory modes (models/memory.py) -----------------------------------------------------------------

    def family_dtype(self, family: str | None) -> torch.dtype:
        """The compute dtype of ``family``: the one asked for (--dtype, SCENECAST_DTYPE) for every family,
        else bfloat16 for the flow families where the GPU has it and the device default otherwise."""
        if self._dtype_asked or family is None:
            return self.dtype
        dev = self.device
        bf16 = dev.type == "mps" or (dev.type == "cuda" and torch.cuda.is_bf16_supported())
        return getattr(torch, default_dtype(family, dev.type, bf16))

    def free_device_bytes(self) -> int | None:
        """Free memory on the device now (CUDA), None elsewhere (CPU: RAM is where the weights live)."""
        if self.device.type == "cuda":
            return int(torch.cuda.mem_get_info(self.device)[0])
        return None

    def memory_plan_for(self, base: BaseComponents, dtype: torch.dtype) -> MemoryPlan:
        """The plan for a loaded (CPU-resident) ``base``: sizes counted from its parameters at 16-bit."""
        parts = [m for m in (base.unet, base.transformer, base.vae, *base.text_encoders) if m is not None]
        sizes = [module_bytes(m) if is_quantized(m) else 2 * sum(p.numel() for p in m.parameters()) for m in parts]
        return choose_mode(base.family, sum(sizes), self.free_device_bytes(), largest_bytes=max(sizes),
                           device_type=self.device.type, requested=self.memory_mode,
                           dtype=str(dtype).removeprefix("torch."))

    def _place_with_memory_plan(self, base: BaseComponents, plan: MemoryPlan, dtype: torch.dtype) -> None:
        """fp8 storage and/or offload hooks on the base's modules (cast to ``dtype`` first, on the CPU)."""
        for m in (base.unet, base.transformer, *base.text_encoders):
            if m is not None:
                (m if is_quantized(m) else m.to(dtype)).requires_grad_(False)
                if self.attention == "sdpa" and hasattr(m, "set_attn_processor") and not keeps_own_attention(m):
                    m.set_attn_processor(AttnProcessor2_0())
        base.vae.to(base.vae_decode_dtype).requires_grad_(False)
        order = [*base.text_encoders, base.denoiser]  # the order a job runs them: offload hands over along it
        base.extra["offload_hooks"] = apply_memory_plan(order, base.vae, plan, self.device)
        base.exec_device = self.device

    def check_gguf_companion(self, model_id: str, family: str) -> None:
        """Refuse (ModelError naming the fix) a GGUF transformer of ``family`` whose companion — the model
        its VAE, text encoders and scheduler come from — is missing offline or of another family; fast,
        nothing loaded, so that a job is refused at submit."""
        companion_id = self.gguf_companions[family]
        label = family_info(family).label
        option = f"--gguf-companion {family}=<a {label} diffusers folder or hub id you have>"
        try:
            comp = locate(companion_id, "base")
            comp_family = self.family(companion_id)
        except ModelError as exc:
            raise type(exc)(f"{model_id} is a GGUF {label} transformer; its VAE and text encoders come from"
                            f" {companion_id}, and {exc.message}",
                            f"{exc.fix}; or start the backend with {option}") from exc
        if comp_family is not None and comp_family.removesuffix("-schnell") != family.removesuffix("-schnell"):
            raise UnsupportedModel(f"{model_id} is a GGUF {label} transformer but its companion {comp.id} is "
                                   f"{family_info(comp_family).label if comp_family in FAMILIES else comp_family}",
                                   f"start the backend with {option}")

    def _gguf_base(self, loc: Any, on_download: DownloadCallback | None) -> BaseComponents:
        """A GGUF transformer with its companion's VAE, text encoders, tokenizers and scheduler
        (models/gguf_files.py); the companion's own transformer is not loaded."""
        family = detect_gguf(loc.path).family
        dtype = self.family_dtype(family)
        companion_id = self.gguf_companions[family]

        def load() -> BaseComponents:
            from .builtins import BASES  # noqa: PLC0415 - torch-heavy

            comp = locate(companion_id, "base")
            if comp.source == "builtin":
                companion = BASES[comp.id]()
                config = json.loads(companion.transformer.to_json_string())
                companion.transformer = None
            else:
                folder = comp.path or download(comp.id, False, on_download)
                companion = load_flow_folder(folder, comp.id, comp.source, dtype, family, with_transformer=False)
                config = json.loads((folder / "transformer" / "config.json").read_text())
            return self._place_base(gguf_base(loc.path, loc.id, family, companion, config, dtype), dtype)

        return self._cached(("base", loc.id), load, lambda b: b.nbytes(), loc.path.stat().st_size)

    def describe_memory(self) -> dict[str, Any]:
        """What health shows: the mode asked for, the free memory it decides by, the plans of loaded bases."""
        free = self.free_device_bytes()
        plans = {}
        for (kind, mid) in self.cache.keys():
            if kind == "base":
                base = self.cache.peek(("base", mid))
                plan = base.extra.get("memory") if base is not None else None
                if plan is not None:
                    plans[mid] = plan.describe()
        return {"memory_mode": self.memory_mode, "free_device_gb": None if free is None else round(free / 1e9, 3),
                "dtypes": {fam: str(self.family_dtype(fam)).removeprefix("torch.") for fam in FAMILIES},
                "memory_plans": plans}

    def _controlnet_family(self, loc: Any) -> str | None:
        """The family of a ControlNet before loading it (None: unknown — the device dtype)."""
        try:
            if loc.source == "builtin":
                from .builtins import BUILTIN_FAMILIES  # noqa: PLC0415 - torch-heavy

                return BUILTIN_FAMILIES.get(loc.id)
            if loc.source == "single_file":
                return classify_single_file(loc.path)[1]
            if loc.path is not None and (loc.path / "config.json").is_file():
                cls = json.loads((loc.path / "config.json").read_text()).get("_class_name", "")
                return {"FluxControlNetModel": "flux", "ZImageControlNetModel": "zimage",
                        "QwenImageControlNetModel": "qwen"}.get(cls, "sdxl")
        except Exception:  # noqa: BLE001 - unreadable: loading says why
            return None
        return None
