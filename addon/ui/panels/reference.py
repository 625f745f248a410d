"""View3D › Sidebar › Scenecast › Reference: a style/reference image (IP-Adapter) and its weight, or
"first view" so Texture Objects and Stylize Frames hold the first view's (frame's) look."""

from __future__ import annotations

import bpy


class SCENECAST_PT_reference(bpy.types.Panel):
    bl_label = "Reference Image"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Scenecast"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        s = context.scene.scenecast  # type: ignore[attr-defined]
        layout.prop(s, "reference_first_view")
        col = layout.column()
        col.enabled = not s.reference_first_view
        col.template_ID(s, "reference_image", open="image.open")
        layout.prop(s, "reference_weight", slider=True)
        if s.reference_first_view:
            layout.label(text="Texture Objects / Stylize Frames: later views follow the first", icon="INFO")
            if s.texture_mode != "sequential":  # synchronized/separate: every view in one job (refused there)
                layout.label(text="Texture Objects: needs the Sequential mode", icon="ERROR")


classes: tuple[type, ...] = (SCENECAST_PT_reference,)
