"""Texture Objects: a texture for each selected mesh from several agreeing views (``features.texturing``).

Prompt, model, seed, steps and view size come from the Scenecast panel; the operator's own settings
(views, elevations, texture size, material) are asked in a dialog and remembered. One undo step
holds the whole run, finished or cancelled: textures, materials and UV maps it added.
"""

from __future__ import annotations

from typing import Any

import bpy

from ...features import checks, texturing
from ...features.base import FeatureRun
from ..job_operator import JobOperator, poll_with_reason
from ..properties import MATERIAL_ITEMS, TEXTURE_MODE_ITEMS


class SCENECAST_OT_texture_objects(JobOperator):
    """Generate a texture for each selected mesh from several views that agree (Esc cancels)"""

    bl_idname = "scenecast.texture_objects"
    bl_label = "Texture Objects"

    source: bpy.props.EnumProperty(name="Views", default="RIG", items=(  # type: ignore[valid-type]
        ("RIG", "Camera Rig", "Temporary cameras around the selection, removed afterwards"),
        ("CAMERAS", "Selected Cameras", "The cameras among the selected objects, in name order")))
    views: bpy.props.IntProperty(name="Rig Views", default=6, min=1, max=32,  # type: ignore[valid-type]
                                 description="Number of rig cameras, spread evenly around the selection")
    elevation_low: bpy.props.FloatProperty(name="Low Ring", default=15.0, min=-89.0, max=89.0,  # type: ignore[valid-type]
                                           description="Elevation of the low ring of rig cameras (degrees)")
    elevation_high: bpy.props.FloatProperty(name="High Ring", default=50.0, min=-89.0, max=89.0,  # type: ignore[valid-type]
                                            description="Elevation of the high ring (degrees); views alternate rings")
    texture_size: bpy.props.IntProperty(name="Texture Size", default=1024, min=64, max=8192,  # type: ignore[valid-type]
                                        description="Texels per side of each object's texture")
    material: bpy.props.EnumProperty(name="Material", items=MATERIAL_ITEMS, default="new")  # type: ignore[valid-type]
    # -- texture mode (features.texturing MODES; issue 14) --
    mode: bpy.props.EnumProperty(name="Mode", default="synchronized",  # type: ignore[valid-type]
                                 items=TEXTURE_MODE_ITEMS, options={"SKIP_SAVE"},
                                 description="Texture mode; unset: the panel's Texture Mode")
    view_suffixes: bpy.props.BoolProperty(name="View Prompts", default=False,  # type: ignore[valid-type]
                                          description="Append \"front view\", \"side view\"... to each view's prompt"
                                                      " (synchronized and separate)")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "mode")
        sub = layout.row()
        sub.active = self.mode != "sequential"
        sub.prop(self, "view_suffixes")
        layout.prop(self, "source")
        col = layout.column()
        col.active = self.source == "RIG"
        col.prop(self, "views")
        row = col.row(align=True)
        row.prop(self, "elevation_low")
        row.prop(self, "elevation_high")
        layout.prop(self, "texture_size")
        layout.prop(self, "material")

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return super().poll(context) and poll_with_reason(cls, checks.selection_problem(
            context.selected_objects or [], "Texture Objects", context.mode))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Any:
        self._mode_from_scene(context)
        return context.window_manager.invoke_props_dialog(self)

    def _mode_from_scene(self, context: bpy.types.Context) -> None:
        """Unless the caller set ``mode``, the panel's Texture Mode (scene.scenecast.texture_mode)."""
        settings = getattr(context.scene, "scenecast", None)
        if settings is not None and not self.properties.is_property_set("mode"):
            self.mode = settings.texture_mode

    def make_run(self, context: bpy.types.Context) -> FeatureRun[Any]:
        scene = context.scene
        if scene is None:
            raise ValueError("no active scene")
        self._mode_from_scene(context)
        selected = list(context.selected_objects or [])
        views: Any = int(self.views)
        if self.source == "CAMERAS":
            views = sorted((o for o in selected if o.type == "CAMERA"), key=lambda o: o.name)
            if not views:
                raise ValueError("no camera is selected: select the cameras to texture from, or use the Camera Rig")
        low, high = self.elevation_low, self.elevation_high
        settings = texturing.settings_for(scene, texture_size=self.texture_size, material=self.material,
                                          mode=self.mode, view_suffixes=self.view_suffixes)
        return texturing.texture_objects(scene, [o for o in selected if o.type == "MESH"], settings, views,
                                         (low,) if low == high else (low, high))

    def report_result(self, context: bpy.types.Context, result: texturing.TextureResult) -> None:
        for note in result.notes:
            self.report({"WARNING"}, note)
        seen = ", ".join(f"{name} {100 * c:.0f}%" for name, c in result.coverage.items())
        done = len([v for v in result.views if not v.get("skipped")])
        self.report({"INFO"}, f"Scenecast: textured {len(result)} object(s) from {done} view(s)"
                              f" ({self.mode}); texels seen: {seen}")


classes: tuple[type, ...] = (SCENECAST_OT_texture_objects,)
