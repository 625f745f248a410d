"""Stylize Frames: the frame range as frame_####.png files, consistent across frames (``features.stylize``)."""

from __future__ import annotations

import os
from typing import Any

import bpy

from ...blender import settings as blender_settings
from ...blender.frame_run import FrameOptions, FramesResult
from ...features import stylize
from ...features.base import FeatureRun
from ...features.settings import STYLIZE, resolve
from ..job_operator import JobOperator


def frame_range(scene: bpy.types.Scene) -> tuple[int, int]:
    f = blender_settings.frame_settings(scene)
    return (scene.frame_start, scene.frame_end) if f.use_scene_range else (f.frame_start, f.frame_end)


class SCENECAST_OT_stylize_frames(JobOperator):
    """Stylize the frame range into frame_####.png files, consistent across frames; continues an earlier run (Esc cancels)"""

    bl_idname = "scenecast.stylize_frames"
    bl_label = "Stylize Frames"

    restart: bpy.props.BoolProperty(name="Restart", default=False,  # type: ignore[valid-type]
                                    description="Redo the range's finished frames (each is kept until its new one is made)")

    def make_run(self, context: bpy.types.Context) -> FeatureRun[Any]:
        scene = context.scene
        if scene is None:
            raise ValueError("no active scene: run this from a window showing a scene")
        f = blender_settings.frame_settings(scene)
        options = FrameOptions(consistency=f.consistency, hole_strength=f.hole_strength,
                               refresh_strength=f.refresh_strength, dilate_px=f.dilate_px, restart=self.restart)
        start, end = frame_range(scene)
        return stylize.stylize_frames(scene, resolve(scene, defaults=STYLIZE), start, end,
                                      blender_settings.folder_path(f.output_dir), options=options,
                                      show=not bpy.app.background, strip=f.add_strip, video=f.encode_video)

    def report_result(self, context: bpy.types.Context, result: FramesResult) -> None:
        made = result.record.get("outputs", {})
        extra = f", video {made['video']}" if "video" in made else ""
        self.report({"INFO"}, f"Scenecast: {len(result.made)} frame(s) made, {len(result.skipped)} kept, in"
                              f" {os.path.dirname(result.record_path)}{extra}")


classes: tuple[type, ...] = (SCENECAST_OT_stylize_frames,)
