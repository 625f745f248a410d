"""Scenecast, the Blender extension (package id ``scenecast``).

Installed from ``dist/scenecast-<version>.zip`` it is ``bl_ext.<repo>.scenecast``. Nothing from bpy is
imported at module level, so ``addon.core`` (numpy and the standard library only) imports and tests in
plain Python; Blender-facing modules load in ``register()``.

- ``core/``    — no bpy: conventions, edge maths, PNG, the backend client.
- ``blender/`` — scene access: render passes, scene-state snapshots, images.
- ``ui/``      — operators, panels, preferences, property groups.
- ``api.py``   — the scripting face the operators wrap.
"""


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
