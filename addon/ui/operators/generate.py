"""Generate: images from the scene's passes with the backend (``features.generate``)."""

from __future__ import annotations

import os
from typing import Any

import bpy

from ...blender.image_pixels import show_in_image_editors
from ...features import checks, generate
from ...features.base import FeatureRun
from ...features.settings import GENERATE, resolve
from ..job_operator import JobOperator, poll_with_reason


class SCENECAST_OT_generate(JobOperator):
    """Generate images from the scene's passes with the backend (Esc cancels)"""

    bl_idname = "scenecast.generate"
    bl_label = "Generate"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return super().poll(context) and poll_with_reason(cls, checks.camera_problem(context.scene))

    def make_run(self, context: bpy.types.Context) -> FeatureRun[Any]:
        scene = context.scene
        if scene is None:  # poll() keeps this from happening in the UI
            raise ValueError("no active scene: run this from a window showing a scene")
        return generate.generate(scene, resolve(scene, defaults=GENERATE))

    def report_result(self, context: bpy.types.Context, result: generate.Generated) -> None:
        images = result.images
        if images and context.window is not None and not bpy.app.background:
            show_in_image_editors(images[0])
        folder = os.path.dirname(result.outcome.files[0]) if result.outcome.files else "?"
        self.report({"INFO"}, f"Scenecast: {len(images)} image(s) saved in {folder}")


classes: tuple[type, ...] = (SCENECAST_OT_generate,)
