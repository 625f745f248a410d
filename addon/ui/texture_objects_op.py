"""Operator: Texture Objects — generate a texture for each selected mesh from several agreeing views.

Wraps the same job chain as ``api.texture_objects`` (``blender.texturing``): modal in the UI (progress
per view in the status bar, the textures updating on the meshes as views finish, Esc cancels during or
between views), blocking under ``blender -b``. Prompt, model, seed, steps and view size come from the
Scenecast panel; the operator's own settings (views, elevations, texture size, material) are asked in
a dialog and remembered. Undo removes the textures, the materials and the UV maps it added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import bpy

from .. import texture_api
from ..blender.texturing import texture_steps
from ..core.job_chain import JobSteps
from .chain_operator import ChainOperator

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str


class SCENECAST_OT_texture_objects(ChainOperator):
    """Generate a texture for each selected mesh from several views that agree (Esc cancels)"""

    bl_idname = "scenecast.texture_objects"
    bl_label = "Texture Objects"
    bl_options = {"REGISTER", "UNDO"}

    source: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Views",
        items=(
            ("RIG", "Camera Rig", "Temporary cameras around the selection, removed afterwards"),
            ("CAMERAS", "Selected Cameras", "The cameras among the selected objects, in name order"),
        ),
        default="RIG",
    )
    views: bpy.props.IntProperty(name="Rig Views", default=6, min=1, max=32,  # type: ignore[valid-type]
                                 description="Number of rig cameras, spread evenly around the selection")
    elevation_low: bpy.props.FloatProperty(name="Low Ring", default=15.0, min=-89.0, max=89.0,  # type: ignore[valid-type]
                                           description="Elevation of the low ring of rig cameras (degrees)")
    elevation_high: bpy.props.FloatProperty(name="High Ring", default=50.0, min=-89.0, max=89.0,  # type: ignore[valid-type]
                                            description="Elevation of the high ring (degrees); views alternate rings")
    texture_size: bpy.props.IntProperty(name="Texture Size", default=1024, min=64, max=8192,  # type: ignore[valid-type]
                                        description="Texels per side of each object's texture")
    material: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Material",
        items=(
            ("new", "New Material", "A new material with the texture (the old one can be restored)"),
            ("node", "Image Node", "An Image Texture node into the Base Color of the object's own material"),
        ),
        default="new",
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return super().poll(context) and context.mode == "OBJECT" and any(
            o.type == "MESH" for o in (context.selected_objects or []))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "source")
        col = layout.column()
        col.active = self.source == "RIG"
        col.prop(self, "views")
        row = col.row(align=True)
        row.prop(self, "elevation_low")
        row.prop(self, "elevation_high")
        layout.prop(self, "texture_size")
        layout.prop(self, "material")

    def make_steps(self, context: bpy.types.Context) -> JobSteps[Any]:
        scene = context.scene
        if scene is None:
            raise ValueError("no active scene")
        selected = list(context.selected_objects or [])
        meshes = [o for o in selected if o.type == "MESH"]
        if self.source == "CAMERAS":
            views: Any = sorted((o for o in selected if o.type == "CAMERA"), key=lambda o: o.name)
            if not views:
                raise ValueError("no camera is selected: select the cameras to texture from, or use the Camera Rig")
        else:
            views = int(self.views)
        elevations = (self.elevation_low,) if self.elevation_low == self.elevation_high else (
            self.elevation_low, self.elevation_high)
        settings = texture_api.settings_for(scene, None, texture_size=self.texture_size, material=self.material)
        return texture_steps(scene, meshes, settings, views, elevations,
                             on_view=lambda i, n, text: self.status(context, text, i / max(n, 1)))

    def chain_done(self, context: bpy.types.Context, result: Any) -> None:
        for note in result.notes:
            self.report({"WARNING"}, note)
        seen = ", ".join(f"{name} {100 * c:.0f}%" for name, c in result.coverage.items())
        done = len([v for v in result.views if not v.get("skipped")])
        self.report({"INFO"}, f"Scenecast: textured {len(result)} object(s) from {done} view(s); texels seen: {seen}")


classes: tuple[type, ...] = (SCENECAST_OT_texture_objects,)
