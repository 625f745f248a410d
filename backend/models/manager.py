"""ModelManager: the one object the pipelines ask for models. It owns the device policy, the cache and
the performance settings (dtype, channels_last, attention processor, torch.compile), so that the
denoise path has no device- or speed-specific branches of its own."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderTiny
from diffusers.models.attention_processor import AttnProcessor2_0

from .cache import Key, ModelCache
from .components import BaseComponents, module_bytes
from .defaults import DEFAULT_CONTROLNETS, KNOWN_BASES, default_controlnet
from .device import choose_device
from .errors import ModelNotFound
from .folders import scan as scan_models_folders
from .families import HUB_FAMILIES
from .loading_flow import flow_family_of_folder
from .loading import DownloadCallback, download, load_base, load_controlnet
from .lora import applied_loras
from .manager_extras import ExtraModels
from .manager_memory import MemoryModes, keeps_own_attention
from .gguf_files import COMPANIONS, detect_gguf, is_quantized
from .memory import REQUESTABLE
from .sizes import estimate_bytes
from .sources import (
    PICKLE_EXTS,
    UnreadableModel,
    classify_single_file,
    family_of_config,
    folder_kind,
    hub_cache,
    hub_snapshot,
    locate,
    not_in_model_folders,
    refuse_pickle,
)
from .tiny import CONTROLNET_TYPES, TINY_CONTROLNET_PREFIX, TINY_ID

log = logging.getLogger("scenecast.models")
TAESD = {"sd15": "madebyollin/taesd", "sdxl": "madebyollin/taesdxl"}


def _default_budget_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory * 0.75)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return int(ram * 0.5)


def model_family(model_id: str) -> str | None:
    """The family (families.FAMILIES) of a base model from its config or checkpoint header (nothing
    loaded); None when it is a hub model that is not downloaded yet and not a known reference repo.
    A module function so that submit-time checks without a manager (pipelines/sync/ingest.py) ask it too."""
    loc = locate(model_id, "base")
    if loc.source == "builtin":
        from .builtins import BUILTIN_FAMILIES  # noqa: PLC0415 - torch-heavy

        return BUILTIN_FAMILIES[loc.id]
    if loc.source == "single_file":
        return classify_single_file(loc.path)[1]
    if loc.source == "gguf":
        return detect_gguf(loc.path).family
    if loc.path is None:
        return HUB_FAMILIES.get(loc.id) if loc.source == "hub" else None
    flow = flow_family_of_folder(loc.path)  # flow families: model_index.json + transformer/
    if flow is not None:
        return flow
    return family_of_config(json.loads((loc.path / "unet" / "config.json").read_text()))


class ModelManager(ExtraModels, MemoryModes):
    """Finds, loads, caches and places models.

    ``memory_budget_gb`` bounds the bytes of cached models — base models, ControlNets and TAESD previewers
    (default: 75% of GPU memory, or half the RAM on CPU/MPS). Room is made before a model loads, from
    its safetensors headers; models fetched inside :meth:`lease` stay pinned until it ends. ``channels_last``, ``attention`` ("sdpa" or "default") and ``compile`` are applied
    to every UNet, ControlNet and VAE when they are placed on the device. ``single_file_configs`` maps a
    family ("sd15"/"sdxl") to a diffusers config folder to use instead of the shipped one for single files.
    ``memory_mode`` ("auto" or a mode of models/memory.py) decides how each base model is held (float8
    storage, offload hooks, VAE tiling) and the compute dtype is per family unless ``dtype`` forces one.
    ``gguf_companions`` maps a family to the model whose VAE and text encoders a GGUF transformer of that
    family uses (default: the reference hub repo; models/gguf_files.py).
    """

    def __init__(self, device: str | None = None, dtype: str | None = None, memory_budget_gb: float | None = None,
                 *, channels_last: bool = False, attention: str = "sdpa", compile: bool = False,
                 single_file_configs: dict[str, str | Path] | None = None, memory_mode: str = "auto",
                 gguf_companions: dict[str, str] | None = None) -> None:
        self.plan = choose_device(device, dtype)
        if memory_mode not in REQUESTABLE:
            raise ValueError(f"unknown memory mode {memory_mode!r}: use one of {', '.join(REQUESTABLE)}")
        self.memory_mode = memory_mode
        self.gguf_companions = {**COMPANIONS, **(gguf_companions or {})}  # family -> model for a GGUF's other parts
        self._dtype_asked = bool(dtype or os.environ.get("SCENECAST_DTYPE"))
        budget = _default_budget_bytes(self.plan.device) if memory_budget_gb is None else int(memory_budget_gb * 1e9)
        self.cache = ModelCache(budget)
        self.channels_last = channels_last
        self.attention = attention
        self.compile = compile
        self.single_file_configs = {k: Path(v) for k, v in (single_file_configs or {}).items()}
        self._no_previewer: set[str] = set()  # families whose TAESD is not in the HF cache
        self._leases = threading.local()

    @property
    def device(self) -> torch.device:
        return self.plan.device

    @property
    def dtype(self) -> torch.dtype:
        return self.plan.dtype

    def describe(self) -> dict[str, Any]:
        return {"device": self.plan.label, "dtype": self.plan.dtype_name,
                "memory_budget_gb": round(self.cache.budget_bytes / 1e9, 3),
                "cached": [f"{kind}:{mid}" for kind, mid in self.cache.keys()],
                "channels_last": self.channels_last, "attention": self.attention, "compile": self.compile,
                **self.describe_memory()}

    # -- finding ---------------------------------------------------------------------------------------

    def check(self, model_id: str, kind: str = "base") -> None:
        """Raise ModelNotFound / UnsafeCheckpoint now (fast, nothing loaded) so a bad id is a 4xx at submit."""
        loc = locate(model_id, kind)  # type: ignore[arg-type]
        if loc.source == "gguf":
            self.check_gguf_companion(model_id, detect_gguf(loc.path).family)  # now, not after a load
            return
        if loc.source == "single_file" and kind != "lora":
            try:
                found, _, _ = classify_single_file(loc.path)
            except UnreadableModel as exc:  # as for any other path that is no model: say nothing about it
                raise not_in_model_folders(model_id, kind) from exc  # type: ignore[arg-type]
            if found != kind:
                raise ModelNotFound(f"{model_id} is a {found}, not a {kind}", f"use a {kind} checkpoint here")

    def family(self, model_id: str) -> str | None:
        """The family of a base model, nothing loaded (:func:`model_family`)."""
        return model_family(model_id)

    def default_controlnet(self, base_id: str, unit_type: str) -> str | None:
        """The ControlNet a unit of ``unit_type`` gets on ``base_id`` (raises UnsupportedModel when the
        family has none); None when the family cannot be known before downloading. Fast: for submit-time checks."""
        family = self.family(base_id)
        return None if family is None else default_controlnet(locate(base_id, "base").id, family, unit_type)

    def controlnet_id(self, base_id: str, family: str, unit_type: str, model: str | None) -> str:
        """The ControlNet a unit uses: its own ``model``, else the default for (family, type)."""
        return model if model else default_controlnet(base_id, family, unit_type)

    def list_models(self) -> list[dict[str, Any]]:
        from .builtins import BUILTIN_FAMILIES, CONTROLNETS  # noqa: PLC0415 - torch-heavy

        out = [{"id": TINY_ID, "kind": "base", "family": "sd15", "source": "builtin", "installed": True}]
        out += [{"id": TINY_CONTROLNET_PREFIX + t, "kind": "controlnet", "family": "sd15", "source": "builtin",
                 "installed": True} for t in CONTROLNET_TYPES]
        out += [{"id": mid, "kind": "controlnet" if mid in CONTROLNETS else "base", "family": fam,
                 "source": "builtin", "installed": True}
                for mid, fam in BUILTIN_FAMILIES.items() if fam != "sd15"]  # flow families' tiny builtins
        seen = {m["id"] for m in out}
        for entry in self._hub_models():
            if entry["id"] not in seen:
                out.append(entry)
                seen.add(entry["id"])
        for bid, family in KNOWN_BASES.items():
            if bid not in seen:
                out.append({"id": bid, "kind": "base", "family": family, "source": "hub", "installed": False})
                seen.add(bid)
        for family, table in DEFAULT_CONTROLNETS.items():
            for cid in sorted(set(table.values())):
                if cid not in seen:
                    out.append({"id": cid, "kind": "controlnet", "family": family, "source": "hub", "installed": False})
                    seen.add(cid)
        lora_dir = os.environ.get("SCENECAST_LORA_DIR")
        if lora_dir and Path(lora_dir).is_dir():
            for f in sorted(Path(lora_dir).glob("*.safetensors")):
                try:
                    _, family, _ = classify_single_file(f)
                except Exception:  # noqa: BLE001 - an unreadable file is just not listed
                    continue
                out.append({"id": f.stem, "kind": "lora", "family": family, "source": "local", "installed": True})
        for m in scan_models_folders():  # ComfyUI / A1111 folders (models/folders.py)
            entry = m.entry()
            if m.format == "gguf" and m.classified.family in self.gguf_companions:
                entry["companion"] = self.gguf_companions[m.classified.family]  # its VAE and text encoders
            out.append(entry)
        return out

    def _hub_models(self) -> Iterator[dict[str, Any]]:
        from huggingface_hub import scan_cache_dir  # noqa: PLC0415

        if not hub_cache().is_dir():
            return
        try:
            info = scan_cache_dir(hub_cache())
        except Exception as exc:  # noqa: BLE001 - a damaged cache must not break listing
            log.warning("could not scan the HF cache: %s", exc)
            return
        for repo in sorted(info.repos, key=lambda r: r.repo_id):
            if repo.repo_type != "model":
                continue
            snap = hub_snapshot(repo.repo_id)
            kind = folder_kind(snap) if snap else None
            if kind is None:
                continue
            family = self._folder_family(snap, kind)
            if family:
                yield {"id": repo.repo_id, "kind": kind, "family": family, "source": "hub", "installed": True}

    @staticmethod
    def _folder_family(folder: Path, kind: str) -> str | None:
        try:
            if kind == "lora":
                return classify_single_file(next(folder.glob("*lora*.safetensors")))[1]
            if kind == "base" and flow_family_of_folder(folder):
                return flow_family_of_folder(folder)
            cfg = json.loads((folder / ("unet/config.json" if kind == "base" else "config.json")).read_text())
        except Exception:  # noqa: BLE001 - unreadable: not listed
            return None
        return family_of_config(cfg)

    # -- loading ---------------------------------------------------------------------------------------

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Pin every model this thread fetches inside the block (a running job's), so that no other
        thread's load can evict it; released when the block ends. Nested leases pin once more each."""
        outer = getattr(self._leases, "keys", None)
        keys: list[Key] = []
        self._leases.keys = keys
        try:
            yield
        finally:
            self._leases.keys = outer
            for key in keys:
                self.cache.unpin(key)

    def _cached(self, key: Key, load: Any, size: Any, estimate: int | None) -> Any:
        keys = getattr(self._leases, "keys", None)
        value = self.cache.get(key, load, size, estimate, pin=keys is not None)
        if keys is not None:
            keys.append(key)
        return value

    def _float_size(self) -> int:
        return torch.empty((), dtype=self.dtype).element_size()

    def base(self, model_id: str, on_download: DownloadCallback | None = None) -> BaseComponents:
        """The base model, from the cache or loaded and placed on the device."""
        loc = locate(model_id, "base")
        if loc.source == "gguf":
            return self._gguf_base(loc, on_download)
        dtype = self.family_dtype(self.family(model_id))
        estimate = estimate_bytes(loc.path, ("unet", "transformer", "vae", "text_encoder", "text_encoder_2"),
                                  torch.empty((), dtype=dtype).element_size())
        return self._cached(("base", loc.id), lambda: self._place_base(
            load_base(loc, dtype, self.single_file_configs, on_download), dtype), lambda b: b.nbytes(), estimate)

    def controlnet(self, model_id: str, on_download: DownloadCallback | None = None) -> Any:
        """A ControlNet (ControlNetModel, FluxControlNetModel, ...) from the cache or loaded and placed."""
        loc = locate(model_id, "controlnet")
        dtype = self.family_dtype(self._controlnet_family(loc))
        estimate = estimate_bytes(loc.path, ("",), torch.empty((), dtype=dtype).element_size())
        return self._cached(("controlnet", loc.id), lambda: self._place(
            load_controlnet(loc, dtype, self.single_file_configs, on_download), dtype),
            lambda m: module_bytes(m), estimate)

    @contextmanager
    def loras(self, base: BaseComponents, refs: Sequence[tuple[str, float]],
              on_download: DownloadCallback | None = None) -> Iterator[list[dict[str, Any]]]:
        """Apply LoRAs ((name, weight)) to ``base`` for the duration of the block; yields what was resolved."""
        files = [(name, self._lora_file(name, on_download), weight) for name, weight in refs]
        with applied_loras(base, files):
            yield [{"name": n, "file": str(f), "weight": w} for n, f, w in files]

    def _lora_file(self, name: str, on_download: DownloadCallback | None) -> Path:
        loc = locate(name, "lora")
        if loc.source == "single_file" or (loc.path and loc.path.is_file()):
            return loc.path
        folder = loc.path or download(loc.id, False, on_download)
        files = sorted(folder.glob("*.safetensors"))
        preferred = [f for f in files if f.name == "pytorch_lora_weights.safetensors"]
        if preferred or len(files) == 1:
            return (preferred or files)[0]
        pickles = [f.name for f in folder.iterdir() if f.name.endswith(PICKLE_EXTS)]
        if pickles and not files:
            raise refuse_pickle(f"LoRA {name} ({', '.join(pickles)})")
        raise ModelNotFound(f"LoRA {name!r}: expected one .safetensors file in {folder}, found {len(files)}",
                            "point at the .safetensors file itself")

    def previewer(self, family: str) -> AutoencoderTiny | None:
        """TAESD for fast, good previews when its weights are in the HF cache; else None. A cache entry
        like any model: inside the budget, evictable, pinned by the job that uses it."""
        if family in self._no_previewer:
            return None
        snap = hub_snapshot(TAESD[family]) if family in TAESD else None
        if snap is None or not any(snap.glob("*.safetensors")):
            self._no_previewer.add(family)
            return None

        def load() -> AutoencoderTiny | None:
            try:
                model = AutoencoderTiny.from_pretrained(snap, torch_dtype=self.dtype, use_safetensors=True)
                return model.to(self.device).eval().requires_grad_(False)
            except Exception as exc:  # noqa: BLE001 - previews are optional; fall back to the approximation
                log.warning("could not load %s for previews: %s", TAESD[family], exc)
                return None

        model = self._cached(("previewer", TAESD[family]), load, lambda m: module_bytes(m),
                             estimate_bytes(snap, ("",), self._float_size()))
        if model is None:
            self._no_previewer.add(family)
        return model

    # -- placement -------------------------------------------------------------------------------------

    def _place(self, module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
        module = module.to(self.device)
        if next(module.parameters()).dtype != dtype and not is_quantized(module):
            module = module.to(dtype)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.attention == "sdpa" and hasattr(module, "set_attn_processor") and not keeps_own_attention(module):
            module.set_attn_processor(AttnProcessor2_0())
        if self.compile:
            module.compile()
        return module.requires_grad_(False)

    def _place_base(self, base: BaseComponents, dtype: torch.dtype) -> BaseComponents:
        plan = self.memory_plan_for(base, dtype)
        if plan.mode == "full":
            if base.unet is not None:
                base.unet = self._place(base.unet, dtype)
            if base.transformer is not None:  # flow-matching families
                base.transformer = self._place(base.transformer, dtype)
            base.vae = self._place(base.vae, base.vae_decode_dtype)
            base.text_encoders = [e.to(self.device, dtype).requires_grad_(False) for e in base.text_encoders]
        else:
            self._place_with_memory_plan(base, plan, dtype)
        base.extra["memory"] = plan
        log.info("loaded %s (%s, %.0f MB) on %s in %s (%s)", base.id, base.family, base.nbytes() / 1e6,
                 self.plan.label, plan.mode, plan.reason)
        return base
