"""Saving the panel's settings as a preset in the user's presets folder (issue 13).

Shipped presets live inside the installed extension, which an update replaces; the user's own go to
``core.jobspec.user_preset_dir()`` (the extension's user folder), are listed with the shipped ones
(``core.jobspec.available_presets``) and load the same way. A shipped name cannot be taken.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import bpy

from ..core import jobspec
from ..core.files import write_atomic
from ..core.jobspec import SpecError
from .settings import GENERATE, resolve

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def preset_from_settings(scene: bpy.types.Scene, description: str = "") -> dict[str, Any]:
    """A preset (partial job spec) from the scene's settings: negative prompt, steps, guidance, sampler,
    LoRAs and the ControlNet units (one ``generate`` stage). Prompt, seed, model and size stay per scene."""
    s = resolve(scene, defaults=GENERATE, prompt="(preset)", preset={}, width=512, height=512)
    spec = jobspec.build_job_spec(model="builtin:tiny", units=list(s.units), **{**s.params, "preset": None})
    preset: dict[str, Any] = {"description": description or "saved from the Scenecast panel"}
    for key in ("negative_prompt", "steps", "guidance", "scheduler", "loras"):
        if key in spec:
            preset[key] = spec[key]
    preset["stages"] = spec["stages"]
    return preset


def save_preset(scene: bpy.types.Scene, name: str, *, description: str = "", overwrite: bool = False) -> Path:
    """Write the scene's settings as ``<user presets>/<name>.json`` (atomically); returns the path."""
    name = name.strip()
    if not _NAME.match(name):
        raise SpecError(f"preset name {name!r} is not usable as a file name",
                        "use letters, digits, spaces, '-', '_' or '.' (at most 64)")
    folder = jobspec.user_preset_dir()
    if folder is None:
        raise SpecError("there is no user presets folder", "enable the Scenecast extension (it sets the folder)")
    shipped = {p.stem for d in jobspec.shipped_preset_dirs() for p in d.glob("*.json")}
    if name in shipped:
        raise SpecError(f"{name!r} is a shipped preset", "choose another name for your own preset")
    path = folder / f"{name}.json"
    if path.exists() and not overwrite:
        raise SpecError(f"a preset {name!r} exists already ({path})", "choose another name, or tick Overwrite")
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(preset_from_settings(scene, description), indent=2) + "\n"
    write_atomic(path, data.encode("utf-8"))
    return path
