"""Add-on preferences: where the backend is, how to start one, where results go.

Machine-wide settings live here (saved with Blender's user preferences); per-scene generation settings
live in ``properties.py``. ``settings()`` reads them as plain data for code that may run outside the UI,
falling back to the defaults when the add-on is not registered as an extension (e.g. ``api`` imported
from a checkout).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy
from bpy.props import BoolProperty, StringProperty

from ..core import backend_process

#: The add-on's package (``bl_ext.<repo>.scenecast`` when installed as an extension).
ADDON_ID = __package__.rsplit(".", 1)[0] if __package__ else "scenecast"
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass(frozen=True)
class Settings:
    """The preferences as plain values, safe to hand to a worker thread."""

    server: str = backend_process.DEFAULT_URL
    token: str = ""
    ca_file: str = ""
    backend_python: str = ""
    backend_dir: str = ""
    auto_start: bool = True
    output_dir: str = ""
    default_model: str = DEFAULT_MODEL
    log_path: str = ""


class SCENECAST_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    server_url: StringProperty(  # type: ignore[valid-type]
        name="Backend URL",
        description="Where the Scenecast backend listens (protocol 1)",
        default=backend_process.DEFAULT_URL,
    )
    token: StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="Bearer token, when the backend was started with --token (required off this machine)",
        default="",
        subtype="PASSWORD",
    )
    ca_file: StringProperty(  # type: ignore[valid-type]
        name="CA File",
        description="For an https:// backend behind a TLS proxy with its own certificate: the PEM file of"
        " that certificate or its authority (trusted besides the system's). Empty: the system's only",
        default="",
        subtype="FILE_PATH",
    )
    default_model: StringProperty(  # type: ignore[valid-type]
        name="Default Model",
        description="Base model id used when a scene names none (hub id, local path or builtin:tiny)",
        default=DEFAULT_MODEL,
    )
    auto_start: BoolProperty(  # type: ignore[valid-type]
        name="Start Local Backend Automatically",
        description="When the URL is on this machine and nothing answers, start the backend on first use"
        " (and stop it when Blender quits)",
        default=True,
    )
    backend_python: StringProperty(  # type: ignore[valid-type]
        name="Backend Python",
        description="Python executable of the backend's virtual environment (torch, diffusers, ...)."
        " Empty: $SCENECAST_BACKEND_PYTHON, else <backend directory>/.venv",
        default="",
        subtype="FILE_PATH",
    )
    backend_dir: StringProperty(  # type: ignore[valid-type]
        name="Backend Directory",
        description="Folder that contains the backend/ package (the Scenecast checkout)."
        " Empty: $SCENECAST_BACKEND_DIR, else the folder holding the Python's .venv",
        default="",
        subtype="DIR_PATH",
    )
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Where results are saved. Empty: //scenecast/ next to the .blend, or a temp folder"
        " for unsaved files",
        default="",
        subtype="DIR_PATH",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Backend")
        col.prop(self, "server_url")
        col.prop(self, "token")
        col.prop(self, "ca_file")
        col.prop(self, "default_model")
        col = layout.column(heading="Local Backend")
        col.prop(self, "auto_start")
        col.prop(self, "backend_python")
        col.prop(self, "backend_dir")
        row = col.row(align=True)
        row.operator("scenecast.start_backend", icon="PLAY")
        row.operator("scenecast.stop_backend", icon="CANCEL")
        row.operator("scenecast.open_backend_log", icon="TEXT")
        layout.prop(self, "output_dir")


def log_path() -> str:
    """The backend log file: the extension's user folder when installed, else the user cache."""
    try:
        folder = bpy.utils.extension_path_user(ADDON_ID, path="logs", create=True)
    except (ValueError, AttributeError, OSError):  # not installed as an extension
        return backend_process.default_log_path()
    return os.path.join(folder, "backend.log")


def settings(context: bpy.types.Context | None = None) -> Settings:
    """The current preferences as :class:`Settings` (defaults when the add-on is not registered)."""
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    prefs = getattr(addon, "preferences", None)
    if prefs is None:
        return Settings(log_path=log_path())
    return Settings(
        server=prefs.server_url.strip() or backend_process.DEFAULT_URL,
        token=prefs.token,
        ca_file=bpy.path.abspath(prefs.ca_file) if prefs.ca_file else "",
        backend_python=bpy.path.abspath(prefs.backend_python) if prefs.backend_python else "",
        backend_dir=bpy.path.abspath(prefs.backend_dir) if prefs.backend_dir else "",
        auto_start=prefs.auto_start,
        output_dir=prefs.output_dir,
        default_model=prefs.default_model.strip() or DEFAULT_MODEL,
        log_path=log_path(),
    )


classes = (SCENECAST_AP_preferences,)
