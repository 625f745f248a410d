"""Projection texturing in real Blender: round trip, accumulation, occlusion, UVs, modifiers, materials, undo, errors.

Scenes are built with bmesh (UVs from its ``calc_uvs``), renders come from the extension's own
``render_passes`` (Cycles CPU, 1 sample at pixel centres, Standard view transform), so a render of an
emission-shaded texture holds the texture's sRGB values.
"""

from __future__ import annotations

import math

import bmesh
import bpy
import numpy as np
import pytest
from mathutils import Vector

from blender_scenes import add_camera, add_cube


def uv_plane(scene, name="Plane", size=2.0, location=(0, 0, 0)) -> bpy.types.Object:
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")  # calc_uvs fills an existing layer
    bmesh.ops.create_grid(bm, x_segments=4, y_segments=4, size=size / 2, calc_uvs=True)
    return _link(scene, name, bm, location)


def uv_sphere(scene, name="Sphere", location=(0, 0, 0)) -> bpy.types.Object:
    bm = bmesh.new()
    bm.loops.layers.uv.new("UVMap")
    bmesh.ops.create_uvsphere(bm, u_segments=32, v_segments=16, radius=1.0, calc_uvs=True)
    obj = _link(scene, name, bm, location)
    for poly in obj.data.polygons:
        poly.use_smooth = True
    return obj


def _link(scene, name, bm, location) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new(name, mesh)
    obj.location = location
    scene.collection.objects.link(obj)
    return obj


def look_at(scene, position, target=(0, 0, 0), name="Camera", **kwargs) -> bpy.types.Object:
    cam = add_camera(scene, location=position, name=name, **kwargs)
    direction = Vector(target) - Vector(position)
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
    bpy.context.view_layer.update()
    return cam


def pixels(image: bpy.types.Image) -> np.ndarray:
    """(H, W, 4) float32, row 0 bottom (Blender's order)."""
    w, h = image.size
    px = np.empty(w * h * 4, dtype=np.float32)
    image.pixels.foreach_get(px)
    return px.reshape(h, w, 4)


def known_texture(size: int) -> np.ndarray:
    """A smooth (H, W, 3) sRGB 0..1 pattern, row 0 bottom: gradients and a blurred large checker."""
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    u, v = (u + 0.5) / size, (v + 0.5) / size
    checker = ((np.floor(u * 4) + np.floor(v * 4)) % 2).astype(np.float32)
    k = max(size // 16, 1)
    for axis in (0, 1):  # separable box blur, twice: a soft checker
        for _ in range(2):
            checker = sum(np.roll(checker, s, axis=axis) for s in range(-k, k + 1)) / (2 * k + 1)
    return np.stack([0.15 + 0.7 * u, 0.2 + 0.6 * checker, 0.8 - 0.6 * v], axis=-1)


def emission_material(image: bpy.types.Image, uv_map: str, name="Known") -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_map
    tex = nodes.new("ShaderNodeTexImage")
    tex.image, tex.interpolation, tex.extension = image, "Linear", "EXTEND"
    emit = nodes.new("ShaderNodeEmission")
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    links.new(tex.outputs["Color"], emit.inputs["Color"])
    links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def render_color(sc_module, scene, camera, size) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 sRGB colour render and (H, W) planar depth, row 0 top."""
    raw = sc_module("blender.passes").render_passes(scene, camera, size, color=True, color_samples=1)
    return raw.color, raw.depth


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def test_round_trip_of_a_known_texture_is_accurate(empty_scene, scenecast, sc_module):
    """Render a known texture from 4 views, project the renders onto a blank texture: ≥ 30 dB where seen."""
    scene = empty_scene
    ball = uv_sphere(scene)
    size = 96
    known = known_texture(size)
    image = bpy.data.images.new("Known", size, size, alpha=False)
    rgba = np.ones((size, size, 4), np.float32)
    rgba[..., :3] = known
    image.pixels.foreach_set(rgba.ravel())
    ball.data.materials.append(emission_material(image, "UVMap"))
    views = []
    for i in range(4):
        a = math.radians(90 * i + 20)
        cam = look_at(scene, (4 * math.cos(a), 4 * math.sin(a), 1.5 * (-1) ** i), name=f"View{i}")
        views.append((cam, render_color(sc_module, scene, cam, (160, 160))))
    target = uv_plane(scene, "Unused", location=(50, 0, 0))  # a second object that no view sees
    for cam, (rgb, depth) in views:
        result = scenecast.api.project([ball, target], cam, rgb, size=size, depth=depth if cam.name == "View0" else None)
    texture = pixels(result[ball])[..., :3]
    weight = pixels(bpy.data.images[f"{ball.name} Scenecast.weight"])[..., 0]
    seen = weight > 0
    assert result.coverage[ball.name] > 0.8  # the poles are seen by no view
    assert result.coverage[target.name] == 0.0 and any("not visible" in n for n in result.notes)
    assert psnr(texture[seen], known[seen]) >= 30.0


def test_second_camera_blends_by_weight_and_weights_survive_save_and_reload(empty_scene, scenecast, tmp_path):
    scene = empty_scene
    plane = uv_plane(scene)
    cam_a = look_at(scene, (-2, 0, 4), name="A")
    cam_b = look_at(scene, (2, 0, 4), name="B")
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    scenecast.api.project([plane], cam_a, red, size=32)
    w1 = pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0].copy()
    path = str(tmp_path / "first.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    plane = bpy.data.objects["Plane"]
    assert np.array_equal(pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0], w1)
    scenecast.api.project([plane], bpy.data.objects["B"], blue, size=32)
    texture = pixels(bpy.data.images["Plane Scenecast"])[..., :3]
    w2 = pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0] - w1
    both = (w1 > 0.05) & (w2 > 0.05)
    assert both.sum() > 100
    expected_red = w1 / np.maximum(w1 + w2, 1e-9)
    assert np.abs(texture[..., 0][both] - expected_red[both]).max() < 2 / 255
    assert np.abs(texture[..., 2][both] - (1 - expected_red[both])).max() < 2 / 255
    # camera A sees the left side (u small) more squarely than B: more red there
    assert texture[16, 4, 0] > texture[16, 27, 0]


def test_another_object_occludes(empty_scene, scenecast):
    scene = empty_scene
    plane = uv_plane(scene)
    add_cube(scene, size=0.5, location=(0, 0, 0.5))  # between the camera and the plane's centre
    cam = look_at(scene, (0, 0, 5), ortho_scale=3.0)
    white = np.full((60, 60, 3), 255, np.uint8)
    scenecast.api.project([plane], cam, white, size=40)
    weight = pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0]
    assert weight[18:22, 18:22].max() == 0.0  # the cube's shadow (u, v ≈ 0.5)
    assert weight[6:10, 6:34].min() > 0.2  # open plane, seen head-on (feathered near the plane's border)
    assert weight[16:24, 4:8].min() > 0.2


def test_mesh_without_uvs_gets_smart_uvs_and_a_note(empty_scene, scenecast):
    scene = empty_scene
    box = add_cube(scene, name="Box")
    assert len(box.data.uv_layers) == 0
    cam = look_at(scene, (4, -4, 3))
    result = scenecast.api.project([box], cam, np.full((32, 32, 3), 200, np.uint8), size=32)
    assert len(box.data.uv_layers) == 1
    assert result.uvs_added == ["Box"] and any("Smart UV" in n and "Box" in n for n in result.notes)
    assert result.coverage["Box"] > 0.2  # three of six faces face the camera (less their feathered borders)


def test_modifiers_and_object_transform_are_respected(empty_scene, scenecast):
    """A Displace modifier lifts the plane to z = 2 and the object sits at x = 0.3: texels land where that is."""
    scene = empty_scene
    plane = uv_plane(scene, location=(0.3, 0, 0))
    displace = plane.modifiers.new("Lift", "DISPLACE")
    displace.direction, displace.strength, displace.mid_level = "Z", 4.0, 0.5  # (1 − 0.5) · 4 = 2
    cam = look_at(scene, (0, 0, 5), target=(0, 0, 0))
    width = 256
    ramp = np.zeros((width, width, 3), np.float32)
    ramp[..., 0] = (np.arange(width) + 0.5)[None, :] / width  # red = x pixel / W
    scenecast.api.project([plane], cam, ramp, size=64)
    texture = pixels(bpy.data.images["Plane Scenecast"])
    focal_px = width * cam.data.lens / cam.data.sensor_width
    for col in (16, 32, 48):
        x_world = 0.3 - 1.0 + 2.0 * (col + 0.5) / 64
        expected_x = width / 2 + x_world / (5.0 - 2.0) * focal_px
        assert abs(texture[32, col, 0] * width - expected_x) < 2.0


def test_restore_materials_puts_back_new_and_node_changes(empty_scene, scenecast):
    scene = empty_scene
    plane = uv_plane(scene)
    user = bpy.data.materials.new("UserPaint")
    if bpy.app.version < (5, 0, 0):
        user.use_nodes = True
    rgb = user.node_tree.nodes.new("ShaderNodeRGB")
    principled = user.node_tree.nodes["Principled BSDF"]
    user.node_tree.links.new(rgb.outputs[0], principled.inputs["Base Color"])
    plane.data.materials.append(user)
    cam = look_at(scene, (0, 0, 4))
    image = np.full((32, 32, 3), 90, np.uint8)

    scenecast.api.project([plane], cam, image, size=16, material="new")
    assert plane.material_slots[0].material.name == "Plane Scenecast"
    assert plane.data.materials[0] == user  # the mesh keeps the user's material
    assert scenecast.api.restore_materials([plane]) == ["Plane"]
    assert plane.material_slots[0].material == user and plane.material_slots[0].link == "DATA"

    scenecast.api.project([plane], cam, image, size=16, material="node")
    base = principled.inputs["Base Color"]
    assert base.links[0].from_node.name == "Scenecast Texture"
    assert base.links[0].from_node.image == bpy.data.images["Plane Scenecast"]
    scenecast.api.restore_materials([plane])
    assert base.links[0].from_node == rgb
    assert "Scenecast Texture" not in user.node_tree.nodes


def test_written_texture_renders_with_the_projected_colours(empty_scene, scenecast, sc_module):
    """The new material's image node, shaded as emission, renders the projected image back (colour space, flips)."""
    scene = empty_scene
    ball = uv_sphere(scene)
    cam = look_at(scene, (0, -4, 1))
    size = (96, 96)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32) / 96
    image = np.stack([0.2 + 0.6 * x, 0.9 - 0.7 * y, 0.4 + 0.3 * np.sin(6 * x)], axis=-1)  # row 0 top
    blender_image = bpy.data.images.new("Painting", *size, alpha=False, float_buffer=True)  # linear pixels
    linear = np.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4)
    rgba = np.ones((*size[::-1], 4), np.float32)
    rgba[..., :3] = linear[::-1]
    blender_image.pixels.foreach_set(rgba.ravel())
    scenecast.api.project([ball], cam, blender_image, size=128)
    material = ball.material_slots[0].material
    tree = material.node_tree
    emit = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(tree.nodes["Scenecast Texture"].outputs["Color"], emit.inputs["Color"])
    tree.links.new(emit.outputs["Emission"], tree.nodes["Material Output"].inputs["Surface"])
    rendered, depth = render_color(sc_module, scene, cam, size)
    inner = np.isfinite(depth)
    for _ in range(4):  # away from the silhouette (feathered, and the render mixes in the background there)
        inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    assert inner.sum() > 1000
    assert psnr(rendered[inner] / 255.0, image[inner]) >= 30.0


def _fingerprint() -> dict:
    return {
        "images": sorted(i.name for i in bpy.data.images),
        "materials": sorted(m.name for m in bpy.data.materials),
        "slots": {o.name: [s.material.name if s.material else None for s in o.material_slots] for o in bpy.data.objects},
        "uvs": {m.name: len(m.uv_layers) for m in bpy.data.meshes},
        "props": {o.name: sorted(o.keys()) for o in bpy.data.objects},
    }


def test_bad_input_names_the_fix_and_changes_nothing(empty_scene, scenecast):
    scene = empty_scene
    plane = uv_plane(scene)
    box = add_cube(scene, name="NoUV", location=(0, 0, 3))  # would get UVs if validation came late
    cam = look_at(scene, (0, 0, 6))
    no_principled = bpy.data.materials.new("Bare")
    if bpy.app.version < (5, 0, 0):
        no_principled.use_nodes = True
    no_principled.node_tree.nodes.remove(no_principled.node_tree.nodes["Principled BSDF"])
    plane.data.materials.append(no_principled)
    good = np.full((16, 16, 3), 128, np.uint8)
    before = _fingerprint()
    cases = [
        (([], cam, good), {}, "select mesh objects"),
        (([plane, box], plane, good), {}, "not a camera"),
        (([plane, box], cam, good[..., :2]), {}, "H×W×3"),
        (([plane, box], cam, good / 255.0 * 3), {}, "0..1"),
        (([plane, box, cam], cam, good), {}, "only mesh objects"),
        (([plane, box], cam, good), {"material": "bogus"}, "use 'new'"),
        (([plane, box], cam, good), {"material": "node"}, "material='new'"),
        (([plane, box], cam, good), {"size": 3}, "texels per side"),
        (([plane, box], cam, good), {"depth": np.zeros((4, 4))}, "same view and size"),
    ]
    for args, kwargs, fix in cases:
        with pytest.raises(ValueError, match=fix.replace("(", r"\(").replace("*", r"\*")):
            scenecast.api.project(*args, **kwargs)
        assert _fingerprint() == before, f"{fix}: the scene changed"


def test_operator_projects_headless_and_undo_takes_it_back(empty_scene, scenecast):
    scene = empty_scene
    plane = uv_plane(scene)
    cam = look_at(scene, (0, 0, 4))
    scene.camera = cam
    image = bpy.data.images.new("Paint", 32, 32, alpha=False)
    view_layer = bpy.context.view_layer
    view_layer.update()
    plane.select_set(True)
    view_layer.objects.active = plane
    bpy.ops.ed.undo_push(message="before projection")
    # ("EXEC_DEFAULT", True): run it as a click would, pushing its own undo step (scripts skip that by default)
    assert bpy.ops.scenecast.project_image("EXEC_DEFAULT", True, image="Paint", size=16) == {"FINISHED"}
    assert bpy.data.objects["Plane"].material_slots[0].material.name == "Plane Scenecast"
    bpy.ops.ed.undo()
    plane = bpy.data.objects["Plane"]
    assert len(plane.material_slots) == 0 and "Plane Scenecast" not in bpy.data.images
    plane.select_set(True)
    assert bpy.ops.scenecast.project_image("EXEC_DEFAULT", True, image="Paint", size=16) == {"FINISHED"}
    first = pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0].copy()
    assert bpy.ops.scenecast.project_image("EXEC_DEFAULT", True, image="Paint", size=16) == {"FINISHED"}
    assert np.allclose(pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0], 2 * first)
    bpy.ops.ed.undo()  # the second projection's weights go, the first's come back
    assert np.array_equal(pixels(bpy.data.images["Plane Scenecast.weight"])[..., 0], first)
    plane = bpy.data.objects["Plane"]
    assert bpy.ops.scenecast.restore_materials() == {"FINISHED"}
    assert len(plane.material_slots) == 0


def test_projector_renders_the_texture_so_far_back_into_a_view(empty_scene, sc_module):
    """Multi-view texturing's view of the texture: what one view projected comes back where it is seen."""
    scene = empty_scene
    ball = uv_sphere(scene)
    wall = uv_plane(scene, "Wall", size=6.0, location=(0, 2.5, 0))
    wall.rotation_euler = (math.pi / 2, 0, 0)
    cam = look_at(scene, (0, -4, 0.5))
    projection = sc_module("blender.projection")
    projector = projection.Projector([ball], (256, 256))
    view = projector.view(cam, (96, 96))
    y, x = np.mgrid[0:96, 0:96].astype(np.float32) / 96
    image = np.stack([x, 1 - y, 0.5 + 0.4 * np.sin(5 * x + 3 * y)], axis=-1)
    projector.project(view, image)
    rgb, weight, mask = projector.render_into_view(view)
    assert not mask[0, 0] and mask[48, 48]  # the wall behind is not a target
    good = mask & (weight > 0.3)
    assert good.sum() > 1500
    assert psnr(rgb[good], image[good]) >= 30.0
    untouched = bpy.data.images.get("Sphere Scenecast")
    assert untouched is None  # nothing is written until .write()
    images = projector.write()
    assert images[ball].name == "Sphere Scenecast"
