"""The models a base model is used with besides ControlNets and LoRAs — a VAE of another file, and
reference-image encoders (IP-Adapter, FLUX.1 Redux) — loaded into :class:`ModelManager`'s cache like
every model. A mixin of ModelManager, kept apart so the manager's own file stays about finding, loading
and placing base models."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from .components import BaseComponents, module_bytes
from .errors import ModelNotFound, UnsupportedModel
from .folders import find_by_name
from .families import FAMILIES
from .configs import FAMILY_CONFIGS
from .loading import DownloadCallback, _vae_dtype, download
from .sizes import estimate_bytes
from .sources import (
    PICKLE_EXTS,
    UnreadableModel,
    classify_single_file,
    HUB_ID,
    hub_snapshot,
    missing_hub_model,
    offline,
    refuse_pickle,
)

log = logging.getLogger("scenecast.models")


class ExtraModels:
    """VAE and reference-image models for a loaded base (see the module doc)."""

    # -- VAE (issue 13) ---------------------------------------------------------------------------------

    def vae(self, model_id: str, base: BaseComponents, on_download: DownloadCallback | None = None) -> Any:
        """An AutoencoderKL to use instead of ``base``'s own, from the cache (one entry per family and dtype) or
        loaded and placed in the dtype ``_job_vae_dtype`` gives it: a diffusers folder (or a model folder with
        ``vae/``), a hub id, a single .safetensors VAE (converted with the base VAE's config) or a models-folder
        file of kind ``vae``."""
        from diffusers import AutoencoderKL  # noqa: PLC0415

        path, key_id = self._vae_source(model_id, on_download)
        assert path is not None  # fetch=True downloads a hub VAE
        dtype = self._job_vae_dtype(path, base)

        def load() -> Any:
            if path.is_file():
                with tempfile.TemporaryDirectory() as cfg:
                    (Path(cfg) / "config.json").write_text(json.dumps(dict(base.vae.config)))
                    vae = AutoencoderKL.from_single_file(str(path), config=cfg, torch_dtype=dtype,
                                                         local_files_only=True)
            else:
                folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
                vae = AutoencoderKL.from_pretrained(folder, torch_dtype=dtype, use_safetensors=True)
            return self._place(vae.eval(), dtype)

        estimate = estimate_bytes(path, ("",), torch.empty((), dtype=dtype).element_size()) if path.is_dir() else None
        vae = self._cached(("vae", f"{key_id}@{base.family}@{dtype_name(dtype)}"), load, lambda m: module_bytes(m),
                           estimate)
        own, got = (int(m.config.get("latent_channels") or m.config.get("z_dim") or 0) for m in (base.vae, vae))
        if own != got:
            raise UnsupportedModel(f"VAE {model_id} makes {got}-channel latents; base model {base.id} ({base.family})"
                                   f" needs {own}", f"use a VAE made for {base.family}, or leave `vae` out to use"
                                   " the model's own")
        return vae

    @staticmethod
    def _job_vae_dtype(path: Path, base: BaseComponents) -> torch.dtype:
        """The dtype a job's own VAE decodes in: the base's compute dtype, float32 where the VAE's config says
        float16 overflows (``force_upcast``: SDXL's VAE) — the rule the base's own VAE follows
        (loading._vae_dtype), applied to this VAE's config, not to the base VAE's: an SDXL base may carry the
        fp16-fix VAE (float16) while the VAE a job names is the stock one, black in float16. A single file has
        no config of its own: the family's stock VAE config decides (the base VAE's where there is none)."""
        if path.is_file():
            config = FAMILY_CONFIGS.get(base.family, {}).get("vae/config.json") or dict(base.vae.config)
        else:
            folder = path / "vae" if (path / "vae" / "config.json").is_file() else path
            config = json.loads((folder / "config.json").read_text())
        return _vae_dtype(config, base.compute_dtype)

    def check_vae(self, model_id: str, base_id: str) -> None:
        """At submit (nothing loaded): the VAE exists, and where its config or header says how many latent
        channels it makes, they match the base family's (UnsupportedModel otherwise: a 400 with the fix)."""
        path, _ = self._vae_source(model_id, None, fetch=False)
        got: int | None = None
        if path is not None and path.is_file():
            try:
                found = classify_single_file(path)
            except UnreadableModel as exc:
                raise ModelNotFound(f"VAE {model_id!r} is not a readable .safetensors VAE",
                                    "give a VAE file (A1111 `VAE` or ComfyUI `vae` folder)") from exc
            if found[0] != "vae":
                raise ModelNotFound(f"{model_id} is a {found[0]}, not a VAE", "use a VAE file here")
            got = {"sd": 4, "flux": 16}.get(found[1])
        elif path is not None:
            cfg = path / "vae" / "config.json" if (path / "vae" / "config.json").is_file() else path / "config.json"
            try:
                got = int(json.loads(cfg.read_text()).get("latent_channels") or 0) or None
            except (OSError, ValueError):
                got = None
        family = self.family(base_id)
        own = FAMILIES[family].latent_channels if family in FAMILIES else None
        if got is not None and own is not None and got != own:
            raise UnsupportedModel(f"VAE {model_id} makes {got}-channel latents; base model {base_id} ({family})"
                                   f" needs {own}", f"use a VAE made for {family}, or leave `vae` out to use"
                                   " the model's own")

    def _vae_source(self, model_id: str, on_download: DownloadCallback | None,
                    fetch: bool = True) -> tuple[Path | None, str]:
        mid = model_id.strip()
        if mid.lower().endswith(PICKLE_EXTS):
            raise refuse_pickle(mid)
        try:
            path = Path(mid).expanduser()
            exists = path.exists()
        except (RuntimeError, OSError, ValueError):
            exists = False
        if "/" not in mid and "\\" not in mid and not exists:
            try:
                found = find_by_name(mid, "vae")
            except LookupError as exc:
                raise ModelNotFound(f"{mid!r} names several VAE files in the models folders: {exc}",
                                    "give the full path of the one you mean") from exc
            if found is not None and found.classified.kind == "vae":
                return found.path, str(found.path)
        if exists:
            if path.is_file() and path.name.lower().endswith(".safetensors"):
                return path.resolve(), str(path.resolve())
            if path.is_dir() and any((d / "config.json").is_file() for d in (path, path / "vae")):
                return path.resolve(), str(path.resolve())
        elif HUB_ID.match(mid):
            snap = hub_snapshot(mid)
            if snap is None:
                if offline():
                    raise missing_hub_model(mid)
                if not fetch:  # a submit-time check: the job downloads it
                    return None, mid
                snap = download(mid, False, on_download)
            return snap, mid
        raise ModelNotFound(f"VAE {mid!r} was not found",
                            "give a hub id (org/name), a diffusers AutoencoderKL folder, a .safetensors VAE file"
                            " or the name of a file in the models folders' vae folder; GET /v1/models lists them")

    # -- reference images (IP-Adapter) -----------------------------------------------------------------

    def ip_adapter(self, model_id: str, base: BaseComponents) -> Any:
        """An IP-Adapter (models/ip_adapter.py) with its image encoder, placed on the device in the dtype
        ``base``'s UNet computes in (its family's, not the device default; the compute dtype under fp8
        storage): a cache entry like any model, one per dtype. The tiny builtin is built to fit ``base``'s
        UNet, so it is cached per base."""
        from .ip_adapter import TINY_IP_ADAPTER_ID, load_ip_adapter  # noqa: PLC0415

        dtype = base.compute_dtype
        key_id = f"{model_id}@{base.id}" if model_id == TINY_IP_ADAPTER_ID else model_id

        def load() -> Any:
            adapter = load_ip_adapter(model_id, base.unet)
            adapter.state_dict = {part: {k: v.to(self.device, dtype) for k, v in tensors.items()}
                                  for part, tensors in adapter.state_dict.items()}
            adapter.image_encoder = adapter.image_encoder.to(self.device, dtype).requires_grad_(False)
            return adapter

        return self._cached(("ip_adapter", f"{key_id}@{dtype_name(dtype)}"), load, lambda a: a.nbytes(), None)

    def flux_redux(self, model_id: str, base: BaseComponents) -> Any:
        """FLUX.1 Redux (models/redux.py), placed on the device in the dtype ``base``'s transformer computes
        in (as ``ip_adapter``); a cache entry like any model, one per dtype."""
        from .redux import TINY_FLUX_REDUX_ID, load_flux_redux  # noqa: PLC0415

        dtype = base.compute_dtype
        width = int(base.transformer.config.joint_attention_dim)
        key_id = f"{model_id}@{width}" if model_id == TINY_FLUX_REDUX_ID else model_id

        def load() -> Any:
            redux = load_flux_redux(model_id, width)
            redux.image_encoder = redux.image_encoder.to(self.device, dtype).requires_grad_(False)
            redux.image_embedder = redux.image_embedder.to(self.device, dtype).requires_grad_(False)
            return redux

        return self._cached(("flux_redux", f"{key_id}@{dtype_name(dtype)}"), load, lambda r: r.nbytes(), None)


def dtype_name(dtype: torch.dtype) -> str:
    """``bfloat16`` for torch.bfloat16: the part of a cache key that keeps one model's copies in two dtypes apart."""
    return str(dtype).removeprefix("torch.")
