"""View3D › Sidebar › Scenecast › Frames: stylize this frame or a frame range, and their settings.

Settings live in ``Scene.scenecast_frames`` (``ui.properties``); prompt, model, seed, size and
ControlNet units are the main panel's (``Scene.scenecast``), shared with Generate.
"""

from __future__ import annotations

import bpy

from .. import job_operator


class SCENECAST_PT_frames(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Scenecast"
    bl_label = "Frames"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        f = context.scene.scenecast_frames  # type: ignore[attr-defined]
        busy = job_operator.active() is not None

        col = layout.column(heading="This Frame")
        col.prop(f, "from_view")
        col.prop(f, "init")
        sub = col.column()
        sub.active = f.init != "NONE"
        sub.prop(f, "init_strength")
        col.prop(f, "refine")
        col.prop(f, "camera_background")
        col.prop(f, "compositor")
        row = layout.row()
        row.enabled = not busy
        row.operator("scenecast.stylize_frame", icon="RENDER_STILL")

        layout.separator()
        col = layout.column(heading="Sequence")
        col.prop(f, "use_scene_range")
        sub = col.column(align=True)
        sub.active = not f.use_scene_range
        sub.prop(f, "frame_start")
        sub.prop(f, "frame_end")
        col.prop(f, "output_dir")
        col.prop(f, "consistency")
        sub = col.column(align=True)
        sub.active = f.consistency
        sub.prop(f, "hole_strength")
        sub.prop(f, "refresh_strength")
        sub.prop(f, "dilate_px")
        col.prop(f, "add_strip")
        col.prop(f, "encode_video")
        row = layout.row()
        row.scale_y = 1.3
        if busy:
            row.operator("scenecast.cancel", icon="CANCEL")
        else:
            row.enabled = not busy
            row.operator("scenecast.stylize_frames", icon="RENDER_ANIMATION")


classes: tuple[type, ...] = (SCENECAST_PT_frames,)
