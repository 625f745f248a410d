"""Operators: Project Image (an image from the active camera onto the selected meshes) and Restore Materials.

Both wrap ``api.project`` / ``api.restore_materials`` and are undoable ('UNDO'): undo removes the
texture, its weights and the material change in one step. In the UI, Project Image asks for the image
and settings in a dialog; headless (``bpy.app.background``) it runs with its properties as given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bpy

from ... import api
from ...features import checks
from ..job_operator import poll_with_reason
from ..properties import MATERIAL_ITEMS

if TYPE_CHECKING:
    from bpy.stub_internal.rna_enums import OperatorReturnItems as Result
else:
    Result = str


def _selected_meshes(context: bpy.types.Context) -> list[bpy.types.Object]:
    return [o for o in (context.selected_objects or []) if o.type == "MESH"]


class SCENECAST_OT_project_image(bpy.types.Operator):
    """Project an image from the active camera onto the selected meshes' UV textures (blends with earlier projections)"""

    bl_idname = "scenecast.project_image"
    bl_label = "Project Image"
    bl_options = {"REGISTER", "UNDO"}

    image: bpy.props.StringProperty(name="Image", description="Image to project, as the active camera sees it")  # type: ignore[valid-type]
    size: bpy.props.IntProperty(name="Texture Size", default=1024, min=8, max=16384,  # type: ignore[valid-type]
                                description="Texels per side of a new texture")
    material: bpy.props.EnumProperty(name="Material", items=MATERIAL_ITEMS, default="new")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_with_reason(cls, checks.selection_problem(context.selected_objects or [], "Project Image",
                                                              context.mode))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[Result]:
        if not self.image and context.space_data is not None and getattr(context.space_data, "image", None):
            self.image = context.space_data.image.name  # type: ignore[attr-defined]
        return context.window_manager.invoke_props_dialog(self)

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop_search(self, "image", bpy.data, "images")
        layout.prop(self, "size")
        layout.prop(self, "material")

    def execute(self, context: bpy.types.Context) -> set[Result]:
        image = bpy.data.images.get(self.image)
        if image is None:
            self.report({"ERROR"}, f"no image called {self.image!r}: choose one from the list (open or generate it first)")
            return {"CANCELLED"}
        scene = context.scene
        if scene is None or scene.camera is None:
            self.report({"ERROR"}, "the scene has no active camera: add one and make it active (Ctrl Numpad 0)")
            return {"CANCELLED"}
        try:
            result = api.project(_selected_meshes(context), scene.camera, image, size=self.size, material=self.material)
        except (ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        for note in getattr(result, "notes", []):
            self.report({"WARNING"}, note)
        coverage = getattr(result, "coverage", {})
        seen = ", ".join(f"{name} {100 * c:.0f}%" for name, c in coverage.items())
        self.report({"INFO"}, f"Scenecast: projected {image.name!r} onto {len(result)} object(s); texels seen: {seen}")
        return {"FINISHED"}


class SCENECAST_OT_restore_materials(bpy.types.Operator):
    """Give the selected objects back the materials Project Image replaced (their Scenecast textures stay)"""

    bl_idname = "scenecast.restore_materials"
    bl_label = "Restore Materials"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return poll_with_reason(cls, checks.selection_problem(context.selected_objects or [], "Restore Materials"))

    def execute(self, context: bpy.types.Context) -> set[Result]:
        changed = api.restore_materials(_selected_meshes(context))
        if not changed:
            self.report({"INFO"}, "Scenecast: nothing to restore on the selected objects")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Scenecast: restored the materials of {', '.join(changed)}")
        return {"FINISHED"}


classes: tuple[type, ...] = (SCENECAST_OT_project_image, SCENECAST_OT_restore_materials)
