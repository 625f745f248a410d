"""Scenecast, the Blender extension (package id ``scenecast``).

Installed from ``dist/scenecast-<version>.zip`` it is ``bl_ext.<repo>.scenecast``. Nothing from bpy is
imported at module level, so ``addon.core`` (numpy and the standard library only) imports and tests in
plain Python; Blender-facing modules load in ``register()``.

Layers, each importing only those below it (``tests/addon_core/test_layers.py``):

- ``ui/``       — the one job operator, operators, panels, preferences, property groups.
- ``api.py``    — the scripting face: each call runs a feature blocking.
- ``features/`` — one settings resolver; each feature a generator of backend jobs.
- ``blender/``  — scene access: render passes, projection, frame runs, settings read by attribute.
- ``core/``     — no bpy: conventions, edge maths, PNG, the backend client.
"""


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
