"""View3D › Sidebar › Scenecast (main panel and its ControlNet Units, Passes, Backend children): what to generate, the ControlNet units, generate/cancel, status.

Panels only draw ``Scene.scenecast`` (and the active object's class); all actions are operators.
"""

from __future__ import annotations

import bpy

from ...blender.settings import preferences
from ...features.settings import render_size
from .. import job_operator


class SCENECAST_UL_units(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # type: ignore[no-untyped-def, override]
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "type", text="")
        row.prop(item, "weight", text="")


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Scenecast"


class SCENECAST_PT_main(_Sidebar, bpy.types.Panel):
    bl_label = "Scenecast"
    bl_idname = "SCENECAST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.scenecast  # type: ignore[attr-defined]
        layout.use_property_split = True
        layout.use_property_decorate = False
        layout.prop(s, "model", icon="VIEWZOOM")  # a search list of installed models; any hub id may be typed
        row = layout.row(align=True)
        row.prop(s, "preset")
        row.operator("scenecast.save_preset", text="", icon="ADD")
        layout.prop(s, "prompt", text="Prompt")
        preset_rules = s.preset != "NONE"  # the preset's own negative prompt, steps and guidance apply
        col = layout.column()
        col.active = not preset_rules
        col.prop(s, "negative_prompt", text="Negative")
        layout.prop(s, "seed")
        col = layout.column(align=True)
        col.active = not preset_rules
        col.prop(s, "steps")
        col.prop(s, "guidance")
        col.prop(s, "scheduler")
        layout.prop(s, "vae")  # -- VAE (issue 13): applies with a preset too, so not greyed with these
        layout.prop(s, "size_from_render")
        col = layout.column(align=True)
        if s.size_from_render and context.scene is not None:
            w, h = render_size(context.scene, s.model.strip() or preferences(context).default_model,
                               preferences(context).server)
            col.label(text=f"Size {w} × {h} (from the render resolution)")
        else:
            col.prop(s, "width", text="Size X")
            col.prop(s, "height", text="Y")
        layout.prop(s, "preview_every")

        running = job_operator.active() is not None
        row = layout.row(align=True)
        row.scale_y = 1.4
        if running:
            row.operator("scenecast.cancel", icon="CANCEL")
        else:
            row.operator("scenecast.generate", icon="RENDER_STILL")
        wm = context.window_manager
        status = wm.scenecast_status  # type: ignore[attr-defined]
        if status:
            if running:
                layout.progress(factor=wm.scenecast_progress, text=status)  # type: ignore[attr-defined]
            else:
                layout.label(text=status, icon="INFO")


class SCENECAST_PT_units(_Sidebar, bpy.types.Panel):
    bl_label = "ControlNet Units"
    bl_parent_id = "SCENECAST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.scenecast  # type: ignore[attr-defined]
        row = layout.row()
        row.template_list("SCENECAST_UL_units", "", s, "units", s, "active_unit", rows=3)
        col = row.column(align=True)
        col.operator("scenecast.unit_add", icon="ADD", text="")
        col.operator("scenecast.unit_remove", icon="REMOVE", text="")
        if not len(s.units):
            layout.label(text="No units: one depth unit is used", icon="INFO")
        elif 0 <= s.active_unit < len(s.units):
            unit = s.units[s.active_unit]
            col = layout.column(align=True)
            col.use_property_split = True
            col.prop(unit, "weight")
            col.prop(unit, "start")
            col.prop(unit, "end")
            col.prop(unit, "model", text="ControlNet", icon="VIEWZOOM")  # empty: the family's default


class SCENECAST_UL_loras(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # type: ignore[no-untyped-def, override]
        row = layout.row(align=True)
        row.prop(item, "enabled", text="")
        row.prop(item, "name", text="", emboss=False)
        row.prop(item, "weight", text="")


class SCENECAST_PT_loras(_Sidebar, bpy.types.Panel):
    """LoRAs on the base model (issue 13): installed ones from the search list, or a hub id / file."""

    bl_label = "LoRAs"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        s = context.scene.scenecast  # type: ignore[attr-defined]
        row = layout.row()
        row.template_list("SCENECAST_UL_loras", "", s, "loras", s, "active_lora", rows=2)
        col = row.column(align=True)
        col.operator("scenecast.lora_add", icon="ADD", text="")
        col.operator("scenecast.lora_remove", icon="REMOVE", text="")
        if 0 <= s.active_lora < len(s.loras):
            lora = s.loras[s.active_lora]
            col = layout.column(align=True)
            col.use_property_split = True
            col.prop(lora, "name", icon="VIEWZOOM")
            col.prop(lora, "weight")


class SCENECAST_PT_passes(_Sidebar, bpy.types.Panel):
    bl_label = "Passes"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        s = context.scene.scenecast  # type: ignore[attr-defined]
        layout.prop(s, "depth_override")
        col = layout.column(align=True)
        col.active = s.depth_override
        col.prop(s, "depth_near")
        col.prop(s, "depth_far")
        obj = context.active_object
        if obj is not None and hasattr(obj, "scenecast"):
            layout.prop(obj.scenecast, "segment_class", text=f"{obj.name} Class")
        layout.operator("scenecast.extract_passes", icon="IMAGE_DATA")


class SCENECAST_PT_backend(_Sidebar, bpy.types.Panel):
    bl_label = "Backend"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        row = layout.row(align=True)
        row.operator("scenecast.start_backend", icon="PLAY", text="Start")
        row.operator("scenecast.stop_backend", icon="CANCEL", text="Stop")
        row.operator("scenecast.open_backend_log", icon="TEXT", text="Log")


class SCENECAST_PT_object(bpy.types.Panel):
    """Properties › Object › Scenecast: the object's class in the segmentation image."""

    bl_label = "Scenecast"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "object"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.object is not None and hasattr(context.object, "scenecast")

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(context.object.scenecast, "segment_class")  # type: ignore[attr-defined]


classes = (SCENECAST_UL_units, SCENECAST_UL_loras, SCENECAST_PT_object, SCENECAST_PT_main, SCENECAST_PT_units,
           SCENECAST_PT_loras, SCENECAST_PT_passes, SCENECAST_PT_backend)
