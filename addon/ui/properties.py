"""Per-scene generation settings and per-object segmentation classes, as PropertyGroups.

``Scene.scenecast`` holds what the sidebar panel shows (saved with the .blend, undoable);
``Object.scenecast`` holds the object's class for the segmentation ControlNet image;
``WindowManager.scenecast_status`` / ``scenecast_progress`` hold the running job's status line — on the
window manager because it is neither saved nor undone.
"""

from __future__ import annotations

import json
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core import jobspec
from ..core.segmentation import ADE20K_CLASSES

#: ControlNet unit types the add-on can produce from the scene (the keys of ``Passes.control``).
UNIT_TYPES = (
    ("depth", "Depth", "Depth pass: near bright, normalised against the job's near/far"),
    ("normal", "Normal", "Camera-space normals, ControlNet 1.1 convention"),
    ("edges", "Edges", "Geometric edges: silhouettes and creases, white on black"),
    ("segmentation", "Segmentation", "ADE20K colours from each object's Scenecast class"),
)
NO_PRESET = "NONE"
NO_CLASS = "NONE"


def _preset_items(self: Any, context: Any) -> list[tuple[str, str, str]]:
    items = [(NO_PRESET, "None", "No preset: the values below as they are")]
    for name, description in available_presets():
        items.append((name, name.replace("-", " ").title(), description))
    _preset_items_cache[:] = items  # Blender needs the strings kept alive
    return items


_preset_items_cache: list[tuple[str, str, str]] = []


def available_presets() -> list[tuple[str, str]]:
    """``(name, description)`` of the presets shipped in the package's ``presets/`` folder."""
    out = []
    for name, path in jobspec.available_presets().items():
        try:
            description = str(json.loads(path.read_text(encoding="utf-8")).get("description", ""))
        except (OSError, ValueError):
            description = "(unreadable: generating with it reports why)"
        out.append((name, description))
    return out


def _class_items() -> list[tuple[str, str, str]]:
    items = [(NO_CLASS, "None (by object)", "No class: the object's colour comes from its object id")]
    for name in sorted(ADE20K_CLASSES):
        items.append((name, name.title(), f"ADE20K class '{name}'"))
    return items


class SCENECAST_PG_unit(bpy.types.PropertyGroup):
    """One ControlNet unit: which pass conditions the image, how strongly and over which steps."""

    enabled: BoolProperty(name="Enabled", default=True)  # type: ignore[valid-type]
    type: EnumProperty(name="Pass", items=UNIT_TYPES, default="depth")  # type: ignore[valid-type]
    weight: FloatProperty(name="Weight", default=1.0, min=0.0, max=2.0)  # type: ignore[valid-type]
    start: FloatProperty(  # type: ignore[valid-type]
        name="Start", description="Fraction of the steps where the unit starts", default=0.0, min=0.0, max=1.0,
        subtype="FACTOR",
    )
    end: FloatProperty(  # type: ignore[valid-type]
        name="End", description="Fraction of the steps where the unit stops", default=1.0, min=0.0, max=1.0,
        subtype="FACTOR",
    )


class SCENECAST_PG_scene(bpy.types.PropertyGroup):
    """What the next generation asks for; ``api.generate`` falls back to these for unset arguments."""

    model: StringProperty(  # type: ignore[valid-type]
        name="Model", description="Base model id; empty uses the add-on preference's default model", default="",
    )
    prompt: StringProperty(name="Prompt", default="")  # type: ignore[valid-type]
    negative_prompt: StringProperty(name="Negative", default="")  # type: ignore[valid-type]
    seed: IntProperty(name="Seed", default=0, min=0)  # type: ignore[valid-type]
    steps: IntProperty(name="Steps", default=20, min=1, max=150)  # type: ignore[valid-type]
    guidance: FloatProperty(name="Guidance", default=7.5, min=0.0, max=30.0)  # type: ignore[valid-type]
    width: IntProperty(  # type: ignore[valid-type]
        name="Width", description="Output width in pixels (a multiple of 8)", default=512, min=64, max=2048, step=8,
    )
    height: IntProperty(  # type: ignore[valid-type]
        name="Height", description="Output height in pixels (a multiple of 8)", default=512, min=64, max=2048, step=8,
    )
    preset: EnumProperty(name="Preset", items=_preset_items)  # type: ignore[valid-type]
    preview_every: IntProperty(  # type: ignore[valid-type]
        name="Preview Every", description="Show a preview every N steps (0: none)", default=5, min=0, max=150,
    )
    units: CollectionProperty(type=SCENECAST_PG_unit)  # type: ignore[valid-type]
    active_unit: IntProperty(default=0)  # type: ignore[valid-type]
    depth_override: BoolProperty(  # type: ignore[valid-type]
        name="Set Depth Range",
        description="Normalise depth against the near/far below instead of the scene's bounds",
        default=False,
    )
    depth_near: FloatProperty(name="Near", default=0.1, min=1e-4, unit="LENGTH")  # type: ignore[valid-type]
    depth_far: FloatProperty(name="Far", default=100.0, min=1e-3, unit="LENGTH")  # type: ignore[valid-type]


class SCENECAST_PG_object(bpy.types.PropertyGroup):
    """An object's class in the segmentation image (ADE20K names)."""

    segment_class: EnumProperty(  # type: ignore[valid-type]
        name="Class", description="What this object is, for the segmentation ControlNet", items=_class_items(),
        default=NO_CLASS,
    )


def object_classes(scene: bpy.types.Scene) -> dict[str, str]:
    """``{object name: ADE20K class}`` for every object in ``scene`` that has a class set."""
    out: dict[str, str] = {}
    for obj in scene.objects:
        settings = getattr(obj, "scenecast", None)
        if settings is not None and settings.segment_class != NO_CLASS:
            out[obj.name] = settings.segment_class
    return out


classes = (SCENECAST_PG_unit, SCENECAST_PG_scene, SCENECAST_PG_object)


def register_properties() -> None:
    bpy.types.Scene.scenecast = PointerProperty(type=SCENECAST_PG_scene)  # type: ignore[attr-defined, func-returns-value]
    bpy.types.Object.scenecast = PointerProperty(type=SCENECAST_PG_object)  # type: ignore[attr-defined, func-returns-value]
    bpy.types.WindowManager.scenecast_status = StringProperty(default="")  # type: ignore[attr-defined, func-returns-value]
    bpy.types.WindowManager.scenecast_progress = FloatProperty(  # type: ignore[attr-defined, func-returns-value]
        default=0.0, min=0.0, max=1.0, subtype="FACTOR",
    )


def unregister_properties() -> None:
    for owner, name in (
        (bpy.types.WindowManager, "scenecast_progress"),
        (bpy.types.WindowManager, "scenecast_status"),
        (bpy.types.Object, "scenecast"),
        (bpy.types.Scene, "scenecast"),
    ):
        if hasattr(owner, name):
            delattr(owner, name)
