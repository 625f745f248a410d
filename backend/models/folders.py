"""Models folders: the checkpoints, ControlNets, LoRAs and VAEs artists already keep for ComfyUI or
A1111/Forge, usable by file name.

Folders come from ``$SCENECAST_MODELS_FOLDERS`` (``os.pathsep``-separated; the CLI's ``--models-folder``
adds to it, the add-on's Models Folders preference passes it to a backend it starts). Each folder may
be a ComfyUI or A1111/Forge install, its ``models/`` folder, or a plain folder of ``.safetensors``
files. Known subfolders are read recursively:

- ComfyUI: ``models/checkpoints``, ``controlnet``, ``loras``, ``vae`` (also ``diffusion_models``/``unet``)
- A1111/Forge: ``models/Stable-diffusion``, ``ControlNet``, ``Lora``, ``VAE`` (Forge's ``ControlNet`` too)

Each file is classified from its safetensors header (:mod:`header`), not from the folder it sits in.
Its id is its file name without ``.safetensors`` (the stem); two files with one stem are ambiguous and
must be given by path. Pickle files (``.ckpt``, ``.pt``, ...) are never listed, and asking for one by
name is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .header import Classified, HeaderError, classify_file

log = logging.getLogger("scenecast.models")
ENV = "SCENECAST_MODELS_FOLDERS"
PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
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

    def entry(self) -> dict[str, Any]:
        """The ``GET /v1/models`` row."""
        c = self.classified
        return {"id": self.id, "kind": c.kind, "family": c.family, "source": "folder", "installed": True,
                "path": str(self.path), "layout": self.layout, "runnable": c.runnable,
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


_cache: dict[tuple[str, int, int], Classified | None] = {}
_cache_lock = threading.Lock()


def _classify_cached(path: Path) -> Classified | None:
    """Header classification, remembered per (path, size, mtime) so listing again reads nothing."""
    try:
        st = path.stat()
    except OSError:
        return None
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    try:
        result: Classified | None = classify_file(path)
    except HeaderError as exc:
        log.warning("skipping %s: %s", path, exc)
        result = None
    with _cache_lock:
        _cache[key] = result
    return result


def _walk(root: Path, flat: bool) -> list[Path]:
    pattern = "*" if flat else "**/*"
    try:
        return sorted(p for p in root.glob(pattern) if p.is_file())
    except OSError as exc:
        log.warning("cannot read models folder %s: %s", root, exc)
        return []


def scan(folders: list[Path] | None = None) -> list[FolderModel]:
    """Every readable ``.safetensors`` file in the models folders, classified; in folder order."""
    out: list[FolderModel] = []
    seen: set[Path] = set()
    for folder in models_folders() if folders is None else folders:
        for root, layout in _roots(folder):
            for path in _walk(root, layout == "flat"):
                real = path.resolve()
                if path.suffix.lower() != ".safetensors" or real in seen:
                    continue
                seen.add(real)
                classified = _classify_cached(path)
                if classified is not None:
                    out.append(FolderModel(path.stem, path, layout, classified))
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
    stem = name[: -len(".safetensors")] if name.lower().endswith(".safetensors") else name
    matches = [m for m in scan() if m.id == stem]
    of_kind = [m for m in matches if m.classified.kind == kind]
    if len(of_kind) > 1:
        raise LookupError(", ".join(str(m.path) for m in of_kind))
    if of_kind:
        return of_kind[0]
    return matches[0] if matches else None
