"""A temporary camera that sees what a 3D Viewport shows, for stylizing "the current view".

Blender draws the viewport with the view's focal length on a 72 mm-wide virtual sensor (its view
"zoom" of 2 on the 36 mm default), so the camera gets ``lens / 2`` on 36 mm; orthographic views get
``ortho_scale = 2 · distance · 36 / lens``. The render's aspect ratio is the scene's, so a viewport of
another shape shows more or less at the sides. The camera is linked to the scene only inside the
``with`` block and removed afterwards (also on error), so the scene is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

SENSOR_MM = 36.0


@contextmanager
def view_camera(
    scene: bpy.types.Scene, space: bpy.types.SpaceView3D, region_3d: bpy.types.RegionView3D
) -> Iterator[bpy.types.Object]:
    """The scene camera when the viewport looks through it, else a temporary camera matching the view."""
    if region_3d.view_perspective == "CAMERA" and scene.camera is not None:
        yield scene.camera
        return
    data = bpy.data.cameras.new("Scenecast View")
    data.sensor_width, data.sensor_fit = SENSOR_MM, "AUTO"
    data.clip_start, data.clip_end = space.clip_start, space.clip_end
    if region_3d.view_perspective == "ORTHO":
        data.type = "ORTHO"
        data.ortho_scale = 2.0 * region_3d.view_distance * SENSOR_MM / max(space.lens, 1e-3)
    else:
        data.lens = space.lens / 2.0
    camera = bpy.data.objects.new("Scenecast View", data)
    camera.matrix_world = region_3d.view_matrix.inverted()
    scene.collection.objects.link(camera)
    try:
        yield camera
    finally:
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(data)
