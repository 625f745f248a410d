"""View3D › Sidebar › Scenecast › Frames: stylize this frame or a frame range, and their settings.

Settings live in ``Scene.scenecast_frames`` (saved with the .blend); prompt, model, seed, size and
ControlNet units are the main panel's (``Scene.scenecast``), shared with Generate.
"""

from __future__ import annotations

import os
import tempfile

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import job_runner

INIT_ITEMS = (
    ("NONE", "None", "Generate from the ControlNets alone"),
    ("CLAY", "Clay", "Start from the clay render (img2img)"),
    ("COLOR", "Colour", "Start from a colour render with the scene's materials (img2img)"),
)


class SCENECAST_PG_frames(bpy.types.PropertyGroup):
    """How Stylize Frame and Stylize Frames run."""

    from_view: BoolProperty(  # type: ignore[valid-type]
        name="From View", default=False,
        description="Stylize what the 3D Viewport shows instead of the scene camera's view (single frame)",
    )
    init: EnumProperty(name="Start From", items=INIT_ITEMS, default="NONE")  # type: ignore[valid-type]
    init_strength: FloatProperty(  # type: ignore[valid-type]
        name="Init Strength", default=0.6, min=0.01, max=1.0, subtype="FACTOR",
        description="How much of the clay/colour render is repainted (1: all)",
    )
    refine: FloatProperty(  # type: ignore[valid-type]
        name="Refine", default=0.0, min=0.0, max=1.0, subtype="FACTOR",
        description="Strength of a final img2img refine stage (0: none)",
    )
    camera_background: BoolProperty(name="Camera Background", default=False,  # type: ignore[valid-type]
                                     description="Show the result behind the camera's view")
    compositor: BoolProperty(name="To Compositor", default=False,  # type: ignore[valid-type]
                             description="Put the result in an Image node 'Scenecast Image' of the compositor")
    use_scene_range: BoolProperty(name="Scene Frame Range", default=True,  # type: ignore[valid-type]
                                  description="Stylize the scene's frame range (else the range below)")
    frame_start: IntProperty(name="Start", default=1)  # type: ignore[valid-type]
    frame_end: IntProperty(name="End", default=24)  # type: ignore[valid-type]
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output", subtype="DIR_PATH", default="//scenecast_frames/",
        description="Folder of frame_####.png and the run record; a run continues the frames already there",
    )
    consistency: BoolProperty(  # type: ignore[valid-type]
        name="Consistency", default=True,
        description="Warp the previous frame along the scene's motion, inpaint what it cannot show, refresh lightly",
    )
    hole_strength: FloatProperty(name="Hole Strength", default=1.0, min=0.0, max=1.0,  # type: ignore[valid-type]
                                 subtype="FACTOR", description="Inpaint strength where the previous frame has no pixel")
    refresh_strength: FloatProperty(name="Refresh", default=0.3, min=0.0, max=1.0,  # type: ignore[valid-type]
                                    subtype="FACTOR", description="img2img strength over the whole warped frame (0: skip)")
    dilate_px: IntProperty(name="Hole Margin", default=2, min=0, max=64, subtype="PIXEL",  # type: ignore[valid-type]
                           description="Grow the disocclusion mask by this many pixels")
    add_strip: BoolProperty(name="Sequencer Strip", default=False,  # type: ignore[valid-type]
                            description="Add the frames as an image strip in the Video Sequence Editor")
    encode_video: BoolProperty(name="Video", default=False,  # type: ignore[valid-type]
                               description="Also encode an MP4 with Blender's FFmpeg (the scene is not changed)")


def frames_output_dir(path: str) -> str:
    """The output folder as an absolute path; ``//`` of an unsaved file goes to the temp folder."""
    if path.startswith("//") and not bpy.data.filepath:
        return os.path.join(tempfile.gettempdir(), "scenecast", path[2:])
    return os.path.abspath(bpy.path.abspath(path))


def frame_range(scene: bpy.types.Scene) -> tuple[int, int]:
    f = scene.scenecast_frames  # type: ignore[attr-defined]
    return (scene.frame_start, scene.frame_end) if f.use_scene_range else (f.frame_start, f.frame_end)


class SCENECAST_PT_frames(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Scenecast"
    bl_label = "Frames"
    bl_parent_id = "SCENECAST_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        from .frame_ops import active_run

        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        f = context.scene.scenecast_frames  # type: ignore[attr-defined]
        busy = active_run() is not None or job_runner.active() is not None

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
        if active_run() is not None:
            row.operator("scenecast.cancel_frames", icon="CANCEL")
        else:
            row.enabled = not busy
            row.operator("scenecast.stylize_frames", icon="RENDER_ANIMATION")


classes = (SCENECAST_PG_frames, SCENECAST_PT_frames)


def register_properties() -> None:
    bpy.types.Scene.scenecast_frames = PointerProperty(type=SCENECAST_PG_frames)  # type: ignore[attr-defined, func-returns-value]


def unregister_properties() -> None:
    if hasattr(bpy.types.Scene, "scenecast_frames"):
        del bpy.types.Scene.scenecast_frames  # type: ignore[attr-defined]
