"""The add-on's settings as plain data: preferences, the scene's Scenecast settings, object classes.

Read by attribute from Blender's data (``AddonPreferences``, ``Scene.scenecast``, ``Object.scenecast``),
so this layer needs no import of ``ui/`` where the PropertyGroup classes are declared. When the
add-on is not registered (``api`` imported from a checkout) the defaults apply.

There is exactly one :func:`object_classes`: the segmentation classes every feature (Generate,
Stylize, Texture Objects, ``api.extract_passes``) sends, from the class set in the UI
(``Object.scenecast.segment_class``) or, for scripts, the ``scenecast_class`` custom property.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bpy

from ..core import backend_process
from ..core.conventions import DepthRange

#: The add-on's package (``bl_ext.<repo>.scenecast`` when installed as an extension).
ADDON_ID = __package__.rsplit(".", 1)[0] if __package__ else "scenecast"
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
#: ``Object.scenecast.segment_class`` when the UI sets no class.
NO_CLASS = "NONE"
#: ``Scene.scenecast.preset`` when no preset is chosen.
NO_PRESET = "NONE"
#: Custom property a script may set on an object for its segmentation class (an ADE20K class name).
CLASS_PROPERTY = "scenecast_class"


@dataclass(frozen=True)
class Preferences:
    """The add-on preferences as plain values, safe to hand to a worker thread."""

    server: str = backend_process.DEFAULT_URL
    token: str = ""
    ca_file: str = ""  # a PEM file of certificates to trust for an https:// backend (a proxy's own CA)
    backend_python: str = ""
    backend_dir: str = ""
    auto_start: bool = True
    output_dir: str = ""
    default_model: str = DEFAULT_MODEL
    log_path: str = ""
    offline: bool = False  # Blender's "Allow Online Access" is off: models only from the local cache
    models_folders: str = ""  # os.pathsep-separated ComfyUI / A1111 folders, for a backend the add-on starts


def log_path() -> str:
    """The backend log file: the extension's user folder when installed, else the user cache."""
    try:
        folder = bpy.utils.extension_path_user(ADDON_ID, path="logs", create=True)
    except (ValueError, AttributeError, OSError):  # not installed as an extension
        return backend_process.default_log_path()
    return os.path.join(folder, "backend.log")


def user_preset_dir() -> str:
    """The user's presets folder: the extension's user folder (kept across updates of the extension),
    else Blender's user config folder when the add-on is not installed as an extension."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="presets", create=True)
    except (ValueError, AttributeError, OSError):  # not installed as an extension
        return bpy.utils.user_resource("CONFIG", path=os.path.join("scenecast", "presets"), create=True)


def preferences(context: Any = None) -> Preferences:
    """The current preferences (defaults when the add-on is not registered). Main thread only."""
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    prefs = getattr(addon, "preferences", None)
    offline = not getattr(bpy.app, "online_access", True)
    if prefs is None:
        return Preferences(log_path=log_path(), offline=offline)
    return Preferences(
        server=backend_process.normalize_url(prefs.server_url),
        token=prefs.token,
        ca_file=bpy.path.abspath(prefs.ca_file) if prefs.ca_file else "",
        backend_python=bpy.path.abspath(prefs.backend_python) if prefs.backend_python else "",
        backend_dir=bpy.path.abspath(prefs.backend_dir) if prefs.backend_dir else "",
        auto_start=prefs.auto_start,
        output_dir=prefs.output_dir,
        default_model=prefs.default_model.strip() or DEFAULT_MODEL,
        log_path=log_path(),
        offline=offline,
        models_folders=_folders(prefs.models_folders),
    )


def _folders(text: str) -> str:
    """The Models Folders preference (``;`` or ``os.pathsep`` between folders) as an os.pathsep list."""
    return os.pathsep.join(p.strip() for p in text.replace(os.pathsep, ";").split(";") if p.strip())


def scene_settings(scene: bpy.types.Scene) -> Any:
    """``scene.scenecast`` (the sidebar's settings), or None when the add-on's properties are not registered."""
    return getattr(scene, "scenecast", None)


def frame_settings(scene: bpy.types.Scene) -> Any:
    """``scene.scenecast_frames`` (the Frames panel's settings), or None."""
    return getattr(scene, "scenecast_frames", None)


def depth_override(scene: bpy.types.Scene) -> DepthRange | None:
    """The scene's Set Depth Range (Passes panel) when it is on, else None (from the scene's bounds)."""
    s = scene_settings(scene)
    return DepthRange(s.depth_near, s.depth_far) if s is not None and s.depth_override else None


def output_dir(prefs: Preferences | None = None) -> str:
    """Where results are saved: the preference, else ``//scenecast/`` by the .blend, else a temp folder."""
    chosen = (prefs or preferences()).output_dir
    if chosen:
        if chosen.startswith("//") and not bpy.data.filepath:
            return os.path.join(tempfile.gettempdir(), "scenecast", chosen[2:])
        return bpy.path.abspath(chosen)
    if bpy.data.filepath:
        return bpy.path.abspath("//scenecast")
    return os.path.join(tempfile.gettempdir(), "scenecast")


def folder_path(path: str) -> str:
    """A folder setting as an absolute path; ``//`` of an unsaved file goes to the temp folder."""
    if path.startswith("//") and not bpy.data.filepath:
        return os.path.join(tempfile.gettempdir(), "scenecast", path[2:])
    return os.path.abspath(bpy.path.abspath(path))


def object_classes(scene: bpy.types.Scene, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Object name → segmentation class (ADE20K names, see ``core.segmentation``).

    ``overrides`` first, then the class set in the UI (Object › Scenecast › Class), then the
    object's ``scenecast_class`` custom property. Objects with none are left out: the segmentation
    image draws them black ("unlabelled"), like the background.
    """
    found: dict[str, str] = {}
    for obj in scene.objects:
        ui = getattr(getattr(obj, "scenecast", None), "segment_class", NO_CLASS)
        if isinstance(ui, str) and ui and ui != NO_CLASS:
            found[obj.name] = ui
            continue
        value = obj.get(CLASS_PROPERTY)
        if isinstance(value, str) and value.strip():
            found[obj.name] = value.strip()
    if overrides:
        found.update({str(k): str(v) for k, v in overrides.items()})
    return found
