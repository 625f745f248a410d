"""Add-on preferences: where the backend is, how to start one, where results go.

Machine-wide settings live here (saved with Blender's user preferences); per-scene generation settings
live in ``properties.py``. Code below the UI reads them as plain data through
``blender.settings.preferences()`` (by attribute, without importing this module).
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender.settings import ADDON_ID, DEFAULT_MODEL
from ..core import backend_process


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
    models_folders: StringProperty(  # type: ignore[valid-type]
        name="Models Folders",
        description="ComfyUI or A1111/Forge folders (or folders of .safetensors / .gguf) whose models a backend the"
        " add-on starts can use by file name; separate several with ';'",
        default="",
    )
    backend_wheels: StringProperty(  # type: ignore[valid-type]
        name="Wheel Folder",
        description="Optional folder of wheels Install Backend installs from (needed when online access is off)",
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
        row = col.row(align=True)
        row.operator("scenecast.install_backend", icon="IMPORT")
        row.operator("scenecast.stop_left_backend", icon="CANCEL")
        col.prop(self, "backend_wheels")
        col.prop(self, "models_folders")
        layout.prop(self, "output_dir")


classes = (SCENECAST_AP_preferences,)
