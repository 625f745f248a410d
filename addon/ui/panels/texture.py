"""View3D › Sidebar › Scenecast › Texture: texture the selected meshes, project an image, restore materials."""

from __future__ import annotations

import bpy

from .. import job_operator


class SCENECAST_PT_texture(bpy.types.Panel):
    bl_label = "Texture"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Scenecast"
    bl_parent_id = "SCENECAST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        meshes = [o for o in (context.selected_objects or []) if o.type == "MESH"]
        if not meshes:
            layout.label(text="Select mesh objects to texture", icon="INFO")
        col = layout.column(align=True)
        col.enabled = job_operator.active() is None
        settings = getattr(context.scene, "scenecast", None)
        if settings is not None:  # -- Texture Objects mode (issue 14) --
            col.prop(settings, "texture_mode", text="Mode")
        col.operator("scenecast.texture_objects", icon="TEXTURE")
        col.operator("scenecast.project_image", icon="IMAGE_REFERENCE")
        layout.operator("scenecast.restore_materials", icon="LOOP_BACK")


classes: tuple[type, ...] = (SCENECAST_PT_texture,)
