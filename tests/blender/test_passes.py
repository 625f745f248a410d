"""Raw passes from real Cycles against analytic values: depth, normals, object ids, orientation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mathutils import Matrix

from blender_scenes import add_camera, add_cube, add_plane, add_sphere

W, H = 64, 48


def pixel_rays(camera, width: int, height: int) -> np.ndarray:
    """(H, W, 3) camera-space ray directions through pixel centres, z = −1 (row 0 top; sensor fit on width)."""
    data = camera.data
    half_w = (data.sensor_width / 2) / data.lens
    pixel = 2 * half_w / width
    cols = (np.arange(width) + 0.5 - width / 2) * pixel
    rows = (height / 2 - np.arange(height) - 0.5) * pixel
    x, y = np.meshgrid(cols, rows)
    return np.stack([x, y, -np.ones_like(x)], axis=-1)


def test_depth_of_perpendicular_plane_is_planar_everywhere(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    add_plane(empty_scene, size=40, location=(0, 0, -4))
    raw = passes.render_passes(empty_scene, cam, (W, H))
    assert raw.depth.shape == (H, W) and raw.depth.dtype == np.float32
    # Radial distance would be 4/cos(angle): 4.28 in the corners at 50 mm. Planar is 4 everywhere.
    np.testing.assert_allclose(raw.depth, 4.0, rtol=1e-5)
    assert list(raw.objects.values()) == ["Plane"]
    assert (raw.object_id == next(iter(raw.objects))).all()


def test_depth_of_tilted_plane_matches_ray_intersection(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    tilt = math.radians(35)
    add_plane(empty_scene, size=40, location=(0, 0, -5), rotation=(tilt, 0, 0))
    raw = passes.render_passes(empty_scene, cam, (W, H))
    normal = np.array([0.0, -math.sin(tilt), math.cos(tilt)])  # the plane's normal (camera = world here)
    rays = pixel_rays(cam, W, H)
    expected = normal @ np.array([0, 0, -5.0]) / (rays @ normal)  # t with z = −t: planar depth
    np.testing.assert_allclose(raw.depth, expected, rtol=1e-4)
    # Rotating +35° about x lifts the plane's top towards the camera: rows near 0 are nearer.
    assert raw.depth[0].mean() < raw.depth[-1].mean() - 1.0


def test_orthographic_depth_is_planar_and_linear_on_a_tilted_plane(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene, ortho_scale=4.0)
    tilt = math.radians(30)
    add_plane(empty_scene, size=40, location=(0, 0, -3), rotation=(tilt, 0, 0))
    raw = passes.render_passes(empty_scene, cam, (W, H))
    y = (H / 2 - np.arange(H) - 0.5) * 4.0 / W  # pixel-centre heights, row 0 top
    expected = np.repeat((3.0 - y * math.tan(tilt))[:, None], W, axis=1)
    np.testing.assert_allclose(raw.depth, expected, rtol=1e-4)


def test_background_is_inf_depth_zero_normal_and_minus_one_id(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, radius=0.5, location=(0, 0, -6))
    raw = passes.render_passes(empty_scene, cam, (W, H))
    background = raw.object_id == -1
    assert 0.3 < background.mean() < 0.99
    assert np.isinf(raw.depth[background]).all() and np.isfinite(raw.depth[~background]).all()
    assert (raw.normal[background] == 0).all()


@pytest.mark.parametrize("camera_pose", ["identity", "rotated"])
def test_sphere_normals_match_analytic_camera_space_normals(empty_scene, sc_module, camera_pose):
    passes = sc_module("blender.passes")
    centre_world = np.array([0.6, 0.4, -5.0])
    if camera_pose == "identity":
        cam = add_camera(empty_scene)
    else:  # camera somewhere else, looking at the sphere: exercises world → camera conversion
        cam = add_camera(empty_scene, location=(4.0, -3.0, 1.0))
        direction = Matrix.Translation(centre_world).to_translation() - cam.location
        cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()
        empty_scene.view_layers[0].update()
    add_sphere(empty_scene, radius=1.0, location=tuple(centre_world))
    w, h = 96, 96
    raw = passes.render_passes(empty_scene, cam, (w, h))

    world_from_cam = np.array(cam.matrix_world)
    centre = np.linalg.inv(world_from_cam) @ np.append(centre_world, 1.0)
    rays = pixel_rays(cam, w, h)
    # |t·d − c|² = 1 → t² d·d − 2t d·c + c·c − 1 = 0; the nearer root.
    a = (rays * rays).sum(-1)
    b = -2 * (rays @ centre[:3])
    c = centre[:3] @ centre[:3] - 1.0
    disc = b * b - 4 * a * c
    hit = disc > 0
    t = (-b - np.sqrt(np.where(hit, disc, 0))) / (2 * a)
    expected = rays * t[..., None] - centre[:3]

    both = hit & raw.mask
    # Silhouette pixels may differ by one sample; everything else must agree.
    assert (hit != raw.mask).sum() <= 0.05 * both.sum()
    cos = np.clip((expected[both] * raw.normal[both]).sum(-1), -1, 1)
    errors = np.degrees(np.arccos(cos))
    # Measured: mean 0.08°, median 0.06° (the smooth-shaded 96×48 mesh vs the true sphere).
    assert errors.mean() < 0.3, errors.mean()
    assert np.median(errors) < 0.2
    np.testing.assert_allclose(np.linalg.norm(raw.normal[both], axis=-1), 1.0, atol=1e-4)
    # Depth on the 96×48-segment mesh vs the true sphere: chords sit up to ~0.4 % inside it.
    np.testing.assert_allclose(raw.depth[both], -(rays * t[..., None])[both][:, 2], rtol=5e-3)


def test_object_ids_and_name_map(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    left = add_sphere(empty_scene, name="LeftBall", radius=0.6, location=(-1.2, 0, -6))
    right = add_cube(empty_scene, name="RightBox", size=1.0, location=(1.2, 0, -6))
    wall = add_plane(empty_scene, name="Wall", size=3.0, location=(0, 1.5, -8))
    left.pass_index, right.pass_index = 11, 0
    raw = passes.render_passes(empty_scene, cam, (W, H))
    names = {name: object_id for object_id, name in raw.objects.items()}
    assert set(names) == {"LeftBall", "RightBox", "Wall"}
    assert raw.object_id.dtype == np.int32
    assert raw.object_id[H // 2, W // 4] == names["LeftBall"]
    assert raw.object_id[H // 2, 3 * W // 4] == names["RightBox"]
    assert raw.object_id[2, W // 2] == names["Wall"]
    assert raw.object_id[H - 1, 0] == -1
    # Temporary pass indices are gone afterwards.
    assert (left.pass_index, right.pass_index, wall.pass_index) == (11, 0, 0)


def test_object_in_top_left_appears_near_row_and_column_zero(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    add_cube(empty_scene, size=0.6, location=(-1.2, 0.8, -5))  # up and left in the camera's view
    raw = passes.render_passes(empty_scene, cam, (W, H))
    rows, cols = np.nonzero(raw.mask)
    assert rows.size > 20
    assert rows.max() < H // 2 and cols.max() < W // 2
    assert rows.min() < H // 4


def test_clay_render_is_lit_from_upper_left_and_black_outside(empty_scene, sc_module):
    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, radius=1.0, location=(0, 0, -5))
    raw = passes.render_passes(empty_scene, cam, (W, W), clay=True)
    clay = raw.clay
    assert clay is not None and clay.shape == (W, W)
    assert (clay[~raw.mask] == 0).all()
    upper_left, lower_right = clay[W // 2 - 6, W // 2 - 6], clay[W // 2 + 6, W // 2 + 6]
    assert upper_left > lower_right + 0.1
    # Half-Lambert from the documented camera-space light, per pixel, from the normal pass.
    light = np.array(passes.CLAY_LIGHT_CAMERA) / np.linalg.norm(passes.CLAY_LIGHT_CAMERA)
    expected = passes.CLAY_OFFSET + passes.CLAY_SCALE * (raw.normal @ light)
    np.testing.assert_allclose(clay[raw.mask], expected[raw.mask], atol=2e-3)
    assert 0.09 < clay[raw.mask].min() and clay.max() <= 0.951


def test_color_render_shows_user_material(empty_scene, sc_module):
    import bpy

    passes = sc_module("blender.passes")
    cam = add_camera(empty_scene)
    plane = add_plane(empty_scene, size=40, location=(0, 0, -4))
    mat = bpy.data.materials.new("Red")
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    out = mat.node_tree.nodes["Material Output"]
    emission = mat.node_tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (0.5, 0.0, 0.0, 1.0)
    mat.node_tree.links.new(emission.outputs[0], out.inputs["Surface"])
    plane.data.materials.append(mat)
    raw = passes.render_passes(empty_scene, cam, (32, 24), color=True, color_samples=2)
    assert raw.color is not None and raw.color.dtype == np.uint8 and raw.color.shape == (24, 32, 3)
    # Linear 0.5 → sRGB 188; emission has no noise.
    np.testing.assert_allclose(raw.color[..., 0], 188, atol=1)
    assert raw.color[..., 1:].max() <= 1
    assert raw.depth[0, 0] == pytest.approx(4.0, rel=1e-4)  # the passes still used the clay override


def test_exr_readers_agree(empty_scene, sc_module, tmp_path):
    """The numpy EXR reader against OpenImageIO, on a file Blender wrote (4.5+ bundle OpenImageIO)."""
    exr = sc_module("blender.exr")
    oiio = exr._openimageio()
    import bpy

    if oiio is None:
        assert bpy.app.version < (4, 5, 0), "the bpy 4.5+ wheels bundle OpenImageIO: it should import"
        pytest.skip("no OpenImageIO Python module in this Blender (the 4.2 wheel ships none)")

    cam = add_camera(empty_scene)
    add_sphere(empty_scene, location=(0, 0.3, -4))
    passes = sc_module("blender.passes")
    path = str(tmp_path / "p.exr")
    original = exr.read_exr
    captured = {}

    def keep(p):
        import shutil

        shutil.copy(p, path)
        captured["x"] = original(p)
        return captured["x"]

    try:
        exr.read_exr = keep
        passes.render_passes(empty_scene, cam, (W, H))
    finally:
        exr.read_exr = original
    ours, theirs = exr.read_exr_numpy(path), exr.read_exr_oiio(path, oiio)
    assert sorted(ours) == sorted(theirs) and len(ours) >= 9
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("codec, depth", [("ZIP", "32"), ("ZIPS", "32"), ("ZIP", "16"), ("NONE", "16")])
def test_numpy_exr_reader_reads_blenders_other_codecs(empty_scene, sc_module, tmp_path, codec, depth):
    """Files Blender writes with ZIP/ZIPS and half floats read the same as the uncompressed float file."""
    import bpy

    exr = sc_module("blender.exr")
    add_camera(empty_scene)
    add_sphere(empty_scene, location=(0.3, 0.2, -4), segments=16, rings=8)
    render = empty_scene.render
    render.engine = "CYCLES"
    empty_scene.cycles.samples = 1
    render.resolution_x, render.resolution_y, render.resolution_percentage = 40, 36, 100  # 36: ZIP's 16-line blocks + a partial one
    view_layer = empty_scene.view_layers[0]
    view_layer.use_pass_z = view_layer.use_pass_normal = True
    bpy.ops.render.render()
    result = next(i for i in bpy.data.images if i.type == "RENDER_RESULT")
    settings = render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "MULTI_LAYER_IMAGE"
    settings.file_format = "OPEN_EXR_MULTILAYER"

    def write(codec_name: str, bits: str) -> dict:
        settings.color_depth, settings.exr_codec = bits, codec_name
        path = str(tmp_path / f"{codec_name}{bits}.exr")
        result.save_render(path, scene=empty_scene)
        return exr.read_exr_numpy(path)

    reference, other = write("NONE", "32"), write(codec, depth)
    if codec != "NONE":  # really compressed, so the zlib + predictor path ran
        assert (tmp_path / f"{codec}{depth}.exr").stat().st_size < 0.8 * (tmp_path / "NONE32.exr").stat().st_size
    assert sorted(reference) == sorted(other)
    for name in reference:
        if depth == "32" or "Depth" in name:  # Blender keeps depth 32-bit even in half-float files
            np.testing.assert_array_equal(other[name], reference[name], err_msg=name)
        else:
            np.testing.assert_allclose(other[name], reference[name], rtol=1e-3, atol=1e-3, err_msg=name)
    assert np.isfinite(reference["ViewLayer.Depth.Z"]).all() and reference["ViewLayer.Depth.Z"].min() < 4.0
