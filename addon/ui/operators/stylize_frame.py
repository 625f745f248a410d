"""Stylize Frame: the camera's (or the viewport's) view as one stylized image (``features.stylize``)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import bpy

from ...blender import settings as blender_settings
from ...blender.view_camera import view_camera
from ...features import stylize
from ...features.base import FeatureRun
from ...features.settings import STYLIZE, resolve
from ..job_operator import JobOperator


class SCENECAST_OT_stylize_frame(JobOperator):
    """Stylize the camera's (or the viewport's) view into one image, shown in the Image Editor (Esc cancels)"""

    bl_idname = "scenecast.stylize_frame"
    bl_label = "Stylize Frame"

    def make_run(self, context: bpy.types.Context) -> FeatureRun[Any]:
        scene = context.scene
        if scene is None:
            raise ValueError("no active scene: run this from a window showing a scene")
        f = blender_settings.frame_settings(scene)
        look = stylize.FrameLook(init=None if f.init == "NONE" else f.init.lower(), init_strength=f.init_strength,
                                 refine=f.refine)
        with ExitStack() as stack:  # a viewport camera lives only while the passes render
            camera, from_view = scene.camera, False
            space, region = context.space_data, context.region_data
            if f.from_view and isinstance(space, bpy.types.SpaceView3D) and region is not None:
                camera, from_view = stack.enter_context(view_camera(scene, space, region)), True
            if camera is None:
                raise ValueError("no camera: set the scene camera, or use From View in a 3D Viewport")
            return stylize.stylize_frame(scene, resolve(scene, defaults=STYLIZE), camera, look=look,
                                         camera_background=f.camera_background and not from_view,
                                         compositor=f.compositor)

    def report_result(self, context: bpy.types.Context, image: bpy.types.Image) -> None:
        self.report({"INFO"}, f"Scenecast: {image.name} saved as {bpy.path.abspath(image.filepath)}")


classes: tuple[type, ...] = (SCENECAST_OT_stylize_frame,)
