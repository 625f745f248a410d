"""Animated test scenes with emission textures, for the Vector pass and warping (tests and bench).

A wall (plane at distance 10) and a cube (front face at distance 5.25) in front of a camera at the
origin looking down −z, each with its own noise texture in Object coordinates (the texture moves
with the object) shaded by pure emission: the colour render is noise-free and view independent, so
frame t−1 warped by exact motion reproduces frame t. Keys at frames 1 and 2 only (frame 2 = t).
"""

from __future__ import annotations

import bpy

from blender_scenes import add_camera, add_cube, add_plane, half_extent

WALL_DISTANCE = 10.0
CUBE_CENTRE_DISTANCE = 6.0
CUBE_SIZE = 1.5


def emission_texture(name: str, scale: float, tint: tuple[float, float, float]) -> bpy.types.Material:
    """Emission coloured by a noise texture in Object coordinates (detail 2), times ``tint``."""
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    coords = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = scale
    noise.inputs["Detail"].default_value = 2.0
    mix = nodes.new("ShaderNodeVectorMath")
    mix.operation = "MULTIPLY"
    mix.inputs[1].default_value = tint
    emission = nodes.new("ShaderNodeEmission")
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(coords.outputs["Object"], noise.inputs["Vector"])
    links.new(noise.outputs["Color"], mix.inputs[0])
    links.new(mix.outputs["Vector"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return mat


def motion_scene(scene: bpy.types.Scene, kind: str, width: int, shift_px: tuple[float, float]) -> dict:
    """Build the scene; ``kind`` "camera" (the camera translates, the scene is static) or "object"
    (the cube translates, the camera is static). ``shift_px`` = (right, up) image motion per frame
    of the moving thing, in pixels at the wall (camera) or at the cube's front face (object), for a
    render ``width`` pixels wide. Returns {"camera", "wall", "cube"}."""
    cam = add_camera(scene)
    wall = add_plane(scene, "Wall", size=40.0, location=(0, 0, -WALL_DISTANCE))
    cube = add_cube(scene, "Cube", size=CUBE_SIZE, location=(0, 0, -CUBE_CENTRE_DISTANCE), rotation=(0.3, 0.5, 0.0))
    wall.data.materials.append(emission_texture("Wall texture", 1.5, (1.0, 0.9, 0.8)))
    cube.data.materials.append(emission_texture("Cube texture", 4.0, (0.6, 0.9, 1.0)))
    front = CUBE_CENTRE_DISTANCE - CUBE_SIZE / 2
    if kind == "camera":
        metres = 2 * half_extent(cam, WALL_DISTANCE) / width
        # The image moves opposite to the camera: the camera by (−dx, −dy) moves the wall (+dx, +dy) px.
        moving, start = cam, (0.0, 0.0, 0.0)
        offset = (-shift_px[0] * metres, -shift_px[1] * metres, 0.0)
    elif kind == "object":
        metres = 2 * half_extent(cam, front) / width
        moving, start = cube, (-0.5, 0.0, -CUBE_CENTRE_DISTANCE)
        offset = (shift_px[0] * metres, shift_px[1] * metres, 0.0)
    else:
        raise ValueError(f"kind must be 'camera' or 'object', got {kind!r}")
    moving.location = start
    moving.keyframe_insert("location", frame=1)
    moving.location = tuple(s + o for s, o in zip(start, offset))
    moving.keyframe_insert("location", frame=2)
    scene.frame_set(2)
    return {"camera": cam, "wall": wall, "cube": cube}
