"""Small test scenes built with the data API (bmesh), so expected values are known analytically."""

from __future__ import annotations

import math

import bmesh
import bpy
from mathutils import Matrix, Vector


def add_camera(scene: bpy.types.Scene, location=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0), *,
               lens: float = 50.0, ortho_scale: float | None = None, name: str = "Camera") -> bpy.types.Object:
    """A camera (default: at the origin looking down −z, 50 mm on a 36 mm sensor) made active."""
    data = bpy.data.cameras.new(name)
    data.lens = lens
    data.sensor_fit = "AUTO"
    if ortho_scale is not None:
        data.type = "ORTHO"
        data.ortho_scale = ortho_scale
    cam = bpy.data.objects.new(name, data)
    cam.location, cam.rotation_euler = location, rotation
    scene.collection.objects.link(cam)
    scene.camera = cam
    return cam


def _object(scene: bpy.types.Scene, name: str, bm: bmesh.types.BMesh, location, smooth: bool) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    for poly in mesh.polygons:
        poly.use_smooth = smooth
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    scene.collection.objects.link(obj)
    return obj


def add_plane(scene, name="Plane", size=10.0, location=(0, 0, 0), rotation=(0, 0, 0)) -> bpy.types.Object:
    bm = bmesh.new()
    bmesh.ops.create_grid(bm, x_segments=1, y_segments=1, size=size / 2)
    obj = _object(scene, name, bm, location, smooth=False)
    obj.rotation_euler = rotation
    return obj


def add_sphere(scene, name="Sphere", radius=1.0, location=(0, 0, 0), segments=96, rings=48) -> bpy.types.Object:
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=segments, v_segments=rings, radius=radius)
    return _object(scene, name, bm, location, smooth=True)


def add_cube(scene, name="Cube", size=2.0, location=(0, 0, 0), rotation=(0, 0, 0)) -> bpy.types.Object:
    bm = bmesh.new()
    bmesh.ops.create_cube(bm, size=size)
    obj = _object(scene, name, bm, location, smooth=False)
    obj.rotation_euler = rotation
    return obj


def half_extent(camera: bpy.types.Object, distance: float, aspect: float = 1.0) -> float:
    """Half the visible width at ``distance`` for a perspective camera with sensor fit on width."""
    data = camera.data
    return distance * (data.sensor_width / 2) / data.lens
