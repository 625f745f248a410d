"""Blender data a run uses across ticks, held by name and looked up again each time.

A feature runs for minutes while the user keeps working: undo frees and rebuilds every ID, deleting
an object or loading a file frees it, and a Python reference kept across that points at freed
memory (Blender's "Gotchas": never keep bpy data across undo). So a run keeps names, looks the data
up when it needs it, and :meth:`Held.check` — called by the job driver on every tick — stops the run
with a message that says what went away and what to do.

A file load is told apart from "the same names in another file" by :func:`generation`, which a
``load_post`` handler bumps (``register``/``unregister`` with the add-on).
"""

from __future__ import annotations

from collections.abc import Iterable

import bpy
from bpy.app.handlers import persistent

from ..core.errors import ScenecastError

_generation = [0]


class DataGone(ScenecastError):
    """Data a running feature uses was deleted, undone away or the file was reloaded."""


def generation() -> int:
    """A counter that changes each time a .blend is loaded (or File › New)."""
    return _generation[0]


@persistent
def _on_load(*_args: object) -> None:
    _generation[0] += 1


def register() -> None:
    if _on_load not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(_on_load)


def unregister() -> None:
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)


class Held:
    """The names of a run's scene, objects and cameras (see the module doc)."""

    def __init__(self, scene: bpy.types.Scene, objects: Iterable[bpy.types.Object] = (), what: str = "the run") -> None:
        self.scene_name = scene.name
        self.object_names: list[str] = []
        self.what = what
        self._generation = generation()
        self.add(objects)

    def add(self, objects: Iterable[bpy.types.Object]) -> None:
        for obj in objects:
            if obj.name not in self.object_names:
                self.object_names.append(obj.name)

    def discard(self, names: Iterable[str]) -> None:
        gone = set(names)
        self.object_names = [n for n in self.object_names if n not in gone]

    def _stop(self, missing: str) -> DataGone:
        return DataGone(f"{missing}, so {self.what} stopped",
                        "keep the scene and its objects while Scenecast runs, then run it again")

    def _check_file(self) -> None:
        if generation() != self._generation:
            raise self._stop("another file was loaded")

    @property
    def scene(self) -> bpy.types.Scene:
        self._check_file()
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is None:
            raise self._stop(f"scene {self.scene_name!r} was deleted or undone away")
        return scene

    def object(self, name: str) -> bpy.types.Object:
        self._check_file()
        obj = bpy.data.objects.get(name)
        if obj is None:
            raise self._stop(f"object {name!r} was deleted or undone away")
        return obj

    @property
    def objects(self) -> list[bpy.types.Object]:
        return [self.object(n) for n in self.object_names]

    def check(self) -> None:
        """Raise :class:`DataGone` when the scene or one of the objects is gone."""
        scene = self.scene
        for name in self.object_names:
            if self.object(name).name not in scene.objects:
                raise self._stop(f"object {name!r} was removed from scene {self.scene_name!r}")
