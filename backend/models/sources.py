"""Where a model id points, and whether it is safe to load — answered fast, without loading anything.

An id is one of: ``builtin:...``; a local path (a diffusers folder, or a single ``.safetensors`` file);
the file name of a model in the models folders (:mod:`folders`, ComfyUI/A1111 layouts); or a Hugging
Face hub id ``org/name`` (diffusers layout) looked up in the standard HF cache. Pickle
formats are refused wherever they turn up, because unpickling can run arbitrary code.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from safetensors import safe_open

from .errors import ModelError, ModelNotFound, UnsafeCheckpoint, UnsupportedModel
from .families import classify_header, read_safetensors_header

Kind = Literal["base", "controlnet", "lora"]
PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
BASE_COMPONENTS = ("unet", "vae", "text_encoder", "text_encoder_2")


@dataclass(frozen=True)
class Located:
    id: str
    source: str  # builtin | hub | local | single_file | gguf
    path: Path | None  # the folder or file; None for builtins and hub models not downloaded yet
    installed: bool


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def hub_cache() -> Path:
    """The standard HF cache, read from the environment at call time (tests point it at a temp dir)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot for ``repo_id`` (``refs/main``, else the newest one), or None."""
    repo = hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        if snap.is_dir():
            return snap
    snaps = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime)
    return snaps[-1] if snaps else None


def _looks_like_path(model_id: str) -> bool:
    """Absolute/relative/home paths and file names; ``org/name`` is a hub id unless it exists on disk."""
    return model_id.startswith(("/", "./", "../", "~", "\\")) or model_id.lower().endswith(".safetensors")


def refuse_pickle(what: str) -> UnsafeCheckpoint:
    return UnsafeCheckpoint(
        f"{what} is a pickle-format checkpoint; loading pickles can execute arbitrary code, so Scenecast refuses them",
        "use the .safetensors version of this model (most models publish one), or convert it once in a sandbox",
    )


def missing_hub_model(repo_id: str) -> ModelNotFound:
    return ModelNotFound(
        f"model {repo_id!r} is not in the Hugging Face cache ({hub_cache()}) "
        "and HF_HUB_OFFLINE=1 forbids downloading it",
        f"download it once with `hf download {repo_id}` (or unset HF_HUB_OFFLINE so the backend fetches it)",
    )


def check_weights(folder: Path, components: tuple[str, ...], what: str) -> None:
    """Every component folder must hold .safetensors weights; .bin-only components are refused."""
    if (folder / "transformer").is_dir() and not (folder / "unet").is_dir():  # flow families (families.py)
        components = tuple("transformer" if c == "unet" else c for c in components)
    missing = [c for c in ("unet", "vae", "text_encoder") if c in components and not (folder / c).is_dir()]
    if missing:
        raise ModelNotFound(f"{what} is incomplete: no {', '.join(missing)} folder in {folder}",
                            "download the whole model again (e.g. `hf download <org/name>`)")
    for comp in components:
        sub = folder / comp if comp else folder
        if not sub.is_dir():
            continue
        names = [p.name for p in sub.iterdir()]
        if any(n.endswith(".safetensors") or n.endswith(".safetensors.index.json") for n in names):
            continue
        if any(n.endswith(PICKLE_EXTS) for n in names):
            pickles = ", ".join(n for n in names if n.endswith(PICKLE_EXTS))
            raise refuse_pickle(f"{what} ({comp or 'weights'}: {pickles})")
        raise ModelNotFound(f"{what} has no weights for {comp or 'the model'} in {sub}",
                            "download the model completely (or re-save it with diffusers' save_pretrained)")


def folder_kind(folder: Path) -> Kind | None:
    if (folder / "model_index.json").is_file() or (folder / "unet" / "config.json").is_file():
        return "base"
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            cls = json.loads(cfg.read_text()).get("_class_name", "")
        except (OSError, ValueError):
            return None
        return "controlnet" if "ControlNet" in cls else None
    if any(folder.glob("*lora*.safetensors")):
        return "lora"
    return None


def family_of_config(config: dict) -> str | None:
    """sdxl for UNets/ControlNets with SDXL's size conditioning; None for SD2 (1024-wide text); else sd15
    (real SD1.5 is 768 wide; tiny test models of the SD1.5 shape are narrower)."""
    if config.get("addition_embed_type") == "text_time":
        return "sdxl"
    dim = config.get("cross_attention_dim")
    return None if dim == 1024 else "sd15"


def header_keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def _lora_family(path: Path, keys: list[str]) -> str:
    """SDXL LoRAs train a second text encoder, or their cross-attention keys read 2048-wide text."""
    if any("text_encoder_2" in k or "lora_te2" in k for k in keys):
        return "sdxl"
    cross = [k for k in keys if ("attn2.to_k" in k or "attn2_to_k" in k) and ("lora_A" in k or "lora_down" in k)]
    if cross:
        with safe_open(str(path), framework="pt") as f:
            if f.get_slice(cross[0]).get_shape()[-1] == 2048:
                return "sdxl"
    return "sd15"


class UnreadableModel(UnsupportedModel):
    """A ``.safetensors`` file whose header cannot be read (truncated, not safetensors at all)."""


def classify_single_file(path: Path) -> tuple[Kind, str, bool]:
    """(kind, family, inpainting) of a single .safetensors file; an unreadable file is a ModelError."""
    try:
        return _classify_single_file(path)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated files, bad headers, missing tensors
        raise UnreadableModel(f"{path.name} cannot be read as a safetensors model ({exc})",
                               "check that the file downloaded completely and is an SD1.5/SDXL checkpoint,"
                               " ControlNet or LoRA") from exc


def _classify_single_file(path: Path) -> tuple[Kind, str, bool]:
    """(kind, family, inpainting) from a .safetensors header alone — no tensor is read."""
    flow = classify_header(read_safetensors_header(path))  # flow families, SDXL Union (models/families.py)
    if flow is not None:
        return flow.kind, flow.family, False  # type: ignore[return-value]
    keys = header_keys(path)
    keyset = set(keys)
    if any(".lora_" in k or "lora_down" in k or "lora_A" in k for k in keys[:200]):
        return "lora", _lora_family(path, keys), False
    if any(k.startswith(("control_model.", "input_hint_block.", "controlnet_cond_embedding.")) for k in keys):
        family = "sdxl" if any("label_emb" in k or k.startswith("add_embedding.") for k in keys) else "sd15"
        return "controlnet", family, False
    if "conditioner.embedders.1.model.positional_embedding" in keyset:
        family = "sdxl"
    elif "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keyset:
        family = "sd15"
    elif any(k.startswith("cond_stage_model.model.") for k in keys):
        raise UnsupportedModel(f"{path.name} is a Stable Diffusion 2.x checkpoint, which Scenecast does not run",
                               "use an SD1.5 or SDXL checkpoint")
    else:
        raise UnsupportedModel(f"{path.name} is not a Stable Diffusion 1.5/SDXL checkpoint, ControlNet or LoRA",
                               "check that the file is the model you meant")
    with safe_open(str(path), framework="pt") as f:
        shape = f.get_slice("model.diffusion_model.input_blocks.0.0.weight").get_shape()
    return "base", family, shape[1] == 9


def not_in_model_folders(model_id: str, kind: Kind) -> ModelNotFound:
    """The one answer for a path that is no usable model, whatever is or is not there: an error that
    differed for a missing path, a plain file and a folder would let any client map the server's disk."""
    what = {"base": "a diffusers base model folder", "controlnet": "a diffusers ControlNet folder",
            "lora": "a LoRA"}[kind]
    return ModelNotFound(f"{kind} model {model_id!r} was not found in the model folders",
                         f"give a hub id (org/name) in the backend's Hugging Face cache, a builtin, or the path of"
                         f" a .safetensors file or {what} on the backend's machine; GET /v1/models lists what"
                         " is installed")


def _in_models_folders(name: str, kind: Kind) -> Located | None:
    """A file of the models folders (:mod:`folders`) called ``name``; None when no folder has one."""
    from .folders import GGUF_PACKAGE_MISSING, find_by_name, pickles_named  # noqa: PLC0415

    try:
        found = find_by_name(name, kind)
    except LookupError as exc:
        raise ModelNotFound(f"{name!r} names several {kind} files in the models folders: {exc}",
                            "give the full path of the one you mean") from exc
    if found is None:
        pickles = pickles_named(name)
        if pickles:
            raise refuse_pickle(str(pickles[0]))
        return None
    c = found.classified
    if found.format == "gguf":  # a quantized transformer (models/gguf_files.py): its reason, when it has one
        if not found.runnable:
            fix = ("pip install gguf into the backend's environment" if found.reason == GGUF_PACKAGE_MISSING
                   else "pick a FLUX.1 or Qwen-Image transformer GGUF, or another model")
            raise UnsupportedModel(f"{name} ({found.path}): {found.reason}", fix)
        if c.kind == kind:
            return Located(name, "gguf", found.path.resolve(), True)
    if c.kind != kind:
        raise ModelNotFound(f"{name} in the models folders ({found.path}) is a {c.kind}, not a {kind}",
                            f"pick a {kind} here (GET /v1/models lists each file's kind)")
    if not c.runnable:
        raise UnsupportedModel(f"{name} ({found.path}) is a {c.family} {c.kind}; Scenecast runs SD1.5 and SDXL models",
                               "pick an SD1.5 or SDXL model")
    return Located(name, "single_file", found.path.resolve(), True)


def locate(model_id: str, kind: Kind) -> Located:
    """Find ``model_id`` and check that it is safe; raise a :class:`ModelError` naming the fix."""
    from .builtins import BASES, CONTROLNETS  # noqa: PLC0415 - torch-heavy

    mid = model_id.strip()
    if mid.startswith("builtin:"):
        valid = {"base": set(BASES), "controlnet": set(CONTROLNETS), "lora": set()}
        if mid in valid[kind]:
            return Located(mid, "builtin", None, True)
        raise ModelNotFound(f"there is no builtin {kind} called {mid!r}",
                            f"builtin {kind}s: {', '.join(sorted(valid[kind])) or 'none'}")
    if mid.lower().endswith(PICKLE_EXTS):
        raise refuse_pickle(mid)
    try:
        path = Path(mid).expanduser()
        exists = path.exists()
    except (RuntimeError, OSError, ValueError) as exc:  # "~nobody/…", names too long, NUL bytes
        raise not_in_model_folders(mid, kind) from exc
    if "/" not in mid and "\\" not in mid and not exists:
        named = _in_models_folders(mid, kind)
        if named is not None:
            return named
    if _looks_like_path(mid) or exists:
        if path.is_file() and path.name.lower().endswith(".safetensors"):
            return Located(mid, "single_file", path.resolve(), True)
        if path.is_file() and path.name.lower().endswith(".gguf") and kind == "base":
            return Located(mid, "gguf", path.resolve(), True)  # a quantized transformer (models/gguf_files.py)
        if path.is_dir() and kind == "lora":
            return Located(mid, "local", path.resolve(), True)
        if path.is_dir() and folder_kind(path) == kind:
            check_weights(path, BASE_COMPONENTS if kind == "base" else ("",), mid)
            return Located(mid, "local", path.resolve(), True)
        raise not_in_model_folders(mid, kind)
    if HUB_ID.match(mid):
        snap = hub_snapshot(mid)
        if snap is None:
            if offline():
                raise missing_hub_model(mid)
            return Located(mid, "hub", None, False)
        if kind != "lora":
            check_weights(snap, BASE_COMPONENTS if kind == "base" else ("",), mid)
        return Located(mid, "hub", snap, True)
    lora_dir = os.environ.get("SCENECAST_LORA_DIR")
    if kind == "lora" and lora_dir:
        for cand in (Path(lora_dir) / mid, Path(lora_dir) / f"{mid}.safetensors"):
            if cand.is_file() and cand.name.endswith(".safetensors"):
                return Located(mid, "local", cand.resolve(), True)
    raise ModelNotFound(f"{mid!r} is neither a builtin, an existing path nor a hub id (org/name)",
                        "use a Hugging Face id like `stable-diffusion-v1-5/stable-diffusion-v1-5`, a diffusers folder, "
                        "a .safetensors file, or builtin:tiny")
