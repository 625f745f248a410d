"""Models folders: the checkpoints, ControlNets, LoRAs and VAEs artists already keep for ComfyUI or
A1111/Forge, usable by file name.

Folders come from ``$SCENECAST_MODELS_FOLDERS`` (``os.pathsep``-separated; the CLI's ``--models-folder``
adds to it, the add-on's Models Folders preference passes it to a backend it starts). Each folder may
be a ComfyUI or A1111/Forge install, its ``models/`` folder, or a plain folder of ``.safetensors``
(and ``.gguf``) files. Known subfolders are read recursively:

- ComfyUI: ``models/checkpoints``, ``controlnet``, ``loras``, ``vae`` (also ``diffusion_models``/``unet``)
- A1111/Forge: ``models/Stable-diffusion``, ``ControlNet``, ``Lora``, ``VAE`` (Forge's ``ControlNet`` too)

Each file is classified from its safetensors header (:mod:`header`), not from the folder it sits in.
``.gguf`` files (city96's quantized FLUX.1 / Qwen-Image transformers, which ComfyUI keeps in ``unet`` or
``diffusion_models`` and Forge in ``Stable-diffusion``) are classified from their GGUF header's tensor
names and shapes (:mod:`gguf_header`), with their quantization; one Scenecast cannot load is listed as not
runnable with the reason. Its id is its file name without ``.safetensors``/``.gguf`` (the stem); two
files with one stem are ambiguous and must be given by path. Pickle files (``.ckpt``, ``.pt``, ...) are never listed, and asking for one by
name is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .families import GGUF_FAMILIES, classify_header as classify_flow_header, family_info
from .gguf_header import GgufHeaderError, gguf_package_missing, quantization, read_gguf_tensors
from .header import Classified, HeaderError, classify_file

log = logging.getLogger("scenecast.models")
ENV = "SCENECAST_MODELS_FOLDERS"
PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
MODEL_EXTS = (".safetensors", ".gguf")
GGUF_PACKAGE_MISSING = ("the `gguf` package is not installed in the backend's environment"
                        " (fix: pip install gguf; backend/requirements.txt pins it)")
#: subfolder (relative to the models folder) -> (layout, what the UI calls it). Case-sensitive names
#: as the two tools create them.
LAYOUTS: dict[str, tuple[str, str]] = {
    "checkpoints": ("comfyui", "checkpoints"), "controlnet": ("comfyui", "controlnet"),
    "loras": ("comfyui", "loras"), "vae": ("comfyui", "vae"), "diffusion_models": ("comfyui", "diffusion_models"),
    "unet": ("comfyui", "unet"),
    "Stable-diffusion": ("a1111", "checkpoints"), "ControlNet": ("a1111", "controlnet"),
    "Lora": ("a1111", "loras"), "VAE": ("a1111", "vae"),
}


@dataclass(frozen=True)
class FolderModel:
    id: str  # the file's stem
    path: Path
    layout: str  # comfyui | a1111 | flat
    classified: Classified
    quantization: str = ""  # GGUF only: the type most weights are stored in ("Q8_0", "Q4_K", "F16")
    reason: str = ""  # GGUF only: why Scenecast cannot run it ("" when it can)

    @property
    def format(self) -> str:
        return "gguf" if self.path.suffix.lower() == ".gguf" else "safetensors"

    @property
    def runnable(self) -> bool:
        """Whether a job can name it: a GGUF transformer of a GGUF family with the ``gguf`` package there,
        else what the safetensors header says."""
        return not self.reason if self.format == "gguf" else self.classified.runnable

    def entry(self) -> dict[str, Any]:
        """The ``GET /v1/models`` row."""
        c = self.classified
        gguf = {"quantization": self.quantization} if self.format == "gguf" else {}
        return {"id": self.id, "kind": c.kind, "family": c.family, "source": "folder", "installed": True,
                "path": str(self.path), "layout": self.layout, "format": self.format, "runnable": self.runnable,
                **gguf, **({"reason": self.reason} if self.reason else {}),
                **({"inpainting": True} if c.inpainting else {})}


def models_folders() -> list[Path]:
    """The configured folders, in order, read from the environment at call time."""
    raw = os.environ.get(ENV, "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p.strip()]


def _roots(folder: Path) -> list[tuple[Path, str]]:
    """(directory to scan, layout) for one configured folder."""
    for base in (folder / "models", folder):
        found = [(base / sub, layout) for sub, (layout, _) in LAYOUTS.items() if (base / sub).is_dir()]
        if found:
            return found
    return [(folder, "flat")] if folder.is_dir() else []


_cache: dict[tuple[str, int, int], Any] = {}
_cache_lock = threading.Lock()


def _classify_cached(path: Path) -> Any:
    """:func:`_classify` remembered per (path, size, mtime), so listing again reads nothing."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    result = _classify(path)
    with _cache_lock:
        _cache[key] = result
    return result


def _classify(path: Path) -> tuple[Classified, str, str] | None:
    """(classification, quantization, why it cannot run) from the file's header; None (skipped, with a
    warning in the log) when the header cannot be read."""
    try:
        if path.suffix.lower() != ".gguf":
            return classify_file(path), "", ""
        tensors = read_gguf_tensors(path)
    except (HeaderError, GgufHeaderError) as exc:
        log.warning("skipping %s: %s", path, exc)
        return None
    quant = quantization(tensors)
    found = classify_flow_header({name: {"shape": list(t.shape)} for name, t in tensors.items()})
    if found is None:
        return Classified("unknown", "unknown"), quant, (
            "not a diffusion transformer Scenecast knows (a language model or text encoder GGUF?);"
            " Scenecast loads FLUX.1 and Qwen-Image transformer GGUFs")
    if found.kind != "base" or found.family not in GGUF_FAMILIES:
        return Classified(found.kind, found.family), quant, (
            f"a {family_info(found.family).label} {found.kind} in GGUF: Scenecast loads GGUF transformers of"
            " FLUX.1 and Qwen-Image only (diffusers' GGUF support); use its .safetensors version")
    return Classified("base", found.family), quant, ""


def _walk(root: Path, flat: bool) -> list[Path]:
    pattern = "*" if flat else "**/*"
    try:
        return sorted(p for p in root.glob(pattern) if p.is_file())
    except OSError as exc:
        log.warning("cannot read models folder %s: %s", root, exc)
        return []


def scan(folders: list[Path] | None = None) -> list[FolderModel]:
    """Every readable ``.safetensors`` and ``.gguf`` file in the models folders, classified; in folder order."""
    out: list[FolderModel] = []
    seen: set[Path] = set()
    for folder in models_folders() if folders is None else folders:
        for root, layout in _roots(folder):
            for path in _walk(root, layout == "flat"):
                real = path.resolve()
                if path.suffix.lower() not in MODEL_EXTS or real in seen:
                    continue
                seen.add(real)
                found = _classify_cached(path)
                if found is None:
                    continue
                classified, quant, reason = found
                if path.suffix.lower() == ".gguf" and not reason and gguf_package_missing():
                    reason = GGUF_PACKAGE_MISSING  # not cached: installing the package needs no rescan
                out.append(FolderModel(path.stem, path, layout, classified, quant, reason))
    return out


def pickles_named(name: str, folders: list[Path] | None = None) -> list[Path]:
    """Pickle files whose stem is ``name`` (to refuse them by name with the reason, not "not found")."""
    found = []
    for folder in models_folders() if folders is None else folders:
        for root, layout in _roots(folder):
            found += [p for p in _walk(root, layout == "flat")
                      if p.suffix.lower() in PICKLE_EXTS and p.stem == name]
    return found


def find_by_name(name: str, kind: str) -> FolderModel | None:
    """The folder model called ``name`` (stem, or file name) of ``kind``; None when no folder has it.

    Raises ``LookupError`` with the paths when the name is ambiguous within that kind.
    """
    stem = next((name[: -len(ext)] for ext in MODEL_EXTS if name.lower().endswith(ext)), name)
    matches = [m for m in scan() if m.id == stem]
    of_kind = [m for m in matches if m.classified.kind == kind]
    if len(of_kind) > 1:
        raise LookupError(", ".join(str(m.path) for m in of_kind))
    if of_kind:
        return of_kind[0]
    return matches[0] if matches else None
