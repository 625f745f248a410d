"""Blender UI of Scenecast: operators, panels, preferences and property groups.

``register``/``unregister`` are called by the add-on's ``__init__``; classes register in order and
unregister in reverse. Unregistering also cancels a running job and stops a backend the add-on started
(one the user started is left alone).
"""

from __future__ import annotations

import bpy

from ..core import backend_process
from . import job_runner, operators, panels, preferences, properties, texture_objects_op, texture_ops, texture_panel
from . import frame_ops, frame_panel, install_backend_op

#: Classes to register, in dependency order (property groups before the types that point to them).
CLASSES: tuple[type, ...] = (
    *preferences.classes,
    *properties.classes,
    *operators.classes,
    *install_backend_op.classes,
    *texture_ops.classes,
    *texture_objects_op.classes,
    *panels.classes,
    *texture_panel.classes,
    *frame_ops.classes,
    *frame_panel.classes,  # after panels: its panel is a child of the main one
)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register_properties()
    frame_panel.register_properties()


def unregister() -> None:
    job_runner.cancel_active()
    frame_ops.stop_active()
    operators.forget_start()
    backend_process.stop_started()
    properties.unregister_properties()
    frame_panel.unregister_properties()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
