"""Blender UI of Scenecast: the job operator, operators, panels, preferences and property groups.

``register``/``unregister`` are called by the add-on's ``__init__``; classes register in order and
unregister in reverse. Unregistering also cancels a running run and stops a backend the add-on started
(one the user started is left alone).
"""

from __future__ import annotations

import bpy

from ..blender import held
from ..blender import settings as blender_settings
from ..core import backend_process, jobspec
from . import job_operator, operators, panels, preferences, properties
from .operators import backend

#: Classes to register, in dependency order (property groups before the types that point to them).
CLASSES: tuple[type, ...] = (
    *preferences.classes,
    *properties.classes,
    *operators.classes,
    *panels.classes,
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    held.register()
    jobspec.set_user_preset_dir(blender_settings.user_preset_dir())  # the user's presets (issue 13)


def unregister() -> None:
    job_operator.cancel_active()
    backend.forget_start()
    backend_process.stop_started()
    held.unregister()
    jobspec.set_user_preset_dir(None)
    properties.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
