"""extract_passes end to end: ControlNet images with the documented conventions, edges, segmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from blender_scenes import add_camera, add_cube, add_plane, add_sphere

W, H = 96, 72


def to_pixel(scene, camera, point, width: int, height: int) -> tuple[float, float]:
    """(row, col) of a world point in a width × height render, row 0 at the top."""
    render = scene.render
    saved = render.resolution_x, render.resolution_y, render.resolution_percentage
    render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
    try:
        ndc = world_to_camera_view(scene, camera, Vector(point))
    finally:
        render.resolution_x, render.resolution_y, render.resolution_percentage = saved
    return (1.0 - ndc.y) * height, ndc.x * width


def test_control_images_follow_the_conventions(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, radius=1.0, location=(0, 0, -5))
    add_plane(empty_scene, name="Back", size=4, location=(2.2, 0, -9))
    passes = extract.extract_passes(empty_scene, cam, (W, H))
    control = passes.control
    assert set(control) == {"depth", "normal", "edges", "segmentation"}
    for name, image in control.items():
        assert image.shape == (H, W, 3) and image.dtype == np.uint8, name
        assert (image[0, 0] == 0).all(), f"{name}: background must be black"
    assert set(passes.raw) == {"depth", "normal", "object_id"}

    # Depth: near bright. The sphere's front (4 units) against the plane behind (9 units).
    depth = control["depth"][..., 0].astype(int)
    centre = depth[H // 2, W // 2]
    back_row, back_col = to_pixel(empty_scene, cam, (2.6, 0, -9), W, H)
    back = depth[int(back_row), int(back_col)]
    assert centre > back > 0
    assert passes.depth_range.near <= 4.0 <= 9.0 <= passes.depth_range.far
    rng = passes.depth_range
    nearest = passes.raw["depth"][H // 2, W // 2]
    expected = (1 / nearest - 1 / rng.far) / (1 / rng.near - 1 / rng.far) * 255  # inverse mapping
    assert centre == pytest.approx(expected, abs=0.51)

    # Normal: the sphere's centre faces the camera → (128, 128, 255) ±1 (the exact centre would be
    # 127.5/127.5/255: the pixel centre sits half a pixel off the axis).
    normal = control["normal"].astype(int)
    ys, xs = slice(H // 2 - 1, H // 2 + 1), slice(W // 2 - 1, W // 2 + 1)
    np.testing.assert_allclose(normal[ys, xs].reshape(-1, 3), [[127.5, 127.5, 255]] * 4, atol=1.6)
    # Green is top, red is left.
    top_row, _ = to_pixel(empty_scene, cam, (0, 0.85, -5.3), W, H)
    _, left_col = to_pixel(empty_scene, cam, (-0.85, 0, -5.3), W, H)
    assert normal[int(top_row), W // 2, 1] > 200 and normal[int(top_row), W // 2, 0] == pytest.approx(128, abs=3)
    assert normal[H // 2, int(left_col), 0] > 200 and normal[H // 2, int(left_col), 1] == pytest.approx(128, abs=3)
    # Edges: white on black, around the sphere's silhouette.
    edges = control["edges"]
    assert set(np.unique(edges)) <= {0, 255}
    assert (edges[H // 2, W // 2] == 0).all()


def test_depth_range_is_shared_and_near_is_bright(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    conventions = sc_module("core.conventions")
    cam = add_camera(empty_scene)
    add_plane(empty_scene, size=40, location=(0, 0, -4))
    fixed = conventions.DepthRange(2.0, 8.0)
    first = extract.extract_passes(empty_scene, cam, (32, 24), depth_range=fixed)
    empty_scene.objects["Plane"].location.z = -6
    second = extract.extract_passes(empty_scene, cam, (32, 24), depth_range=fixed)
    # inverse mapping: v = (1/d − 1/8) / (1/2 − 1/8)
    assert first.control["depth"][5, 5, 0] == round((1 / 4 - 1 / 8) / (1 / 2 - 1 / 8) * 255)
    assert second.control["depth"][5, 5, 0] == round((1 / 6 - 1 / 8) / (1 / 2 - 1 / 8) * 255)
    assert first.depth_range == second.depth_range == fixed


def test_default_depth_range_comes_from_the_visible_bounds(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_cube(empty_scene, size=2.0, location=(0, 0, -5))  # spans 4..6 along the view axis
    add_cube(empty_scene, name="Behind", size=2.0, location=(0, 0, 10))  # behind the camera: ignored
    add_cube(empty_scene, name="Aside", size=2.0, location=(60, 0, -40))  # outside the frustum: ignored
    add_cube(empty_scene, name="Hidden", size=2.0, location=(0, 0, -50)).hide_render = True  # not rendered
    rng = extract.scene_depth_range(empty_scene, [cam], (32, 32))
    assert rng.near == pytest.approx(4.0 * 0.95) and rng.far == pytest.approx(6.0 * 1.05)


def test_cube_silhouette_and_creases_are_edges(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene, location=(0, 0, 0))
    cube = add_cube(empty_scene, size=2.0, location=(0, 0, -7), rotation=(math.radians(30), math.radians(40), 0))
    empty_scene.view_layers[0].update()
    for mode, tolerance, min_fraction in (("geometric", 1, 0.95), ("canny", 2, 0.8), ("freestyle", 2, 0.8)):
        passes = extract.extract_passes(empty_scene, cam, (W, W), edges=mode)
        edges = passes.control["edges"][..., 0] > 0
        mask = passes.raw["object_id"] >= 0
        # Silhouette: object pixels with a background 4-neighbour.
        pad = np.pad(mask, 1)
        border = mask & ~(pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:])
        near_edge = _dilate(edges, tolerance)
        assert near_edge[border].mean() >= min_fraction, (mode, near_edge[border].mean())
        # Creases: the three edges from the corner nearest the camera, sampled in their middle.
        corners = [cube.matrix_world @ Vector(c) for c in cube.bound_box]
        nearest = min(corners, key=lambda c: (c - cam.location).length)
        adjacent = [c for c in corners if abs((c - nearest).length - 2.0) < 1e-4]
        assert len(adjacent) == 3
        hits = []
        for other in adjacent:
            for t in np.linspace(0.25, 0.75, 9):
                row, col = to_pixel(empty_scene, cam, nearest.lerp(other, t), W, W)
                hits.append(near_edge[int(row), int(col)])
        assert np.mean(hits) >= min_fraction, (mode, np.mean(hits))
        # Face interiors stay black: the centre of each visible face (between the nearest corner
        # and the corner diagonally across that face).
        for a, b in ((0, 1), (1, 2), (0, 2)):
            centre = (adjacent[a] + adjacent[b]) / 2
            row, col = to_pixel(empty_scene, cam, centre, W, W)
            assert not edges[int(row), int(col)], (mode, "edge inside a face")
        interior = mask & ~_dilate(edges, 1)  # lines stay thin: most of the cube is face, not edge
        assert interior.sum() > 0.5 * mask.sum(), mode


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def test_object_ids_map_to_names_and_classes_to_ade20k_colours(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    segmentation = sc_module("core.segmentation")
    cam = add_camera(empty_scene)
    tree = add_sphere(empty_scene, name="Tree", radius=0.8, location=(-1.3, 0, -6))
    house = add_cube(empty_scene, name="House", size=1.4, location=(1.3, 0, -6))
    add_cube(empty_scene, name="Rock", size=0.6, location=(0, -1.2, -6))
    tree["scenecast_class"] = "tree"
    house["scenecast_class"] = "building"
    passes = extract.extract_passes(empty_scene, cam, (W, H), classes={"House": "house"})
    by_name = {name: i for i, name in passes.objects.items()}
    assert set(by_name) == {"Tree", "House", "Rock"}
    assert passes.classes == {by_name["Tree"]: "tree", by_name["House"]: "house"}
    seg = passes.control["segmentation"]
    ids = passes.raw["object_id"]
    assert (seg[ids == by_name["Tree"]] == segmentation.ade20k_color("tree")).all()
    assert (seg[ids == by_name["House"]] == segmentation.ade20k_color("house")).all()
    assert (seg[ids == by_name["Rock"]] == 0).all()  # no class: unlabelled, black
    assert (seg[ids == -1] == 0).all()


def test_unknown_class_names_the_object_before_rendering(empty_scene, sc_module, monkeypatch):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, name="Blob", location=(0, 0, -5))["scenecast_class"] = "treee"

    def no_render(*args, **kwargs):
        raise AssertionError("rendered before checking the classes")

    monkeypatch.setattr(extract, "render_passes", no_render)
    with pytest.raises(ValueError, match="Blob.*treee.*did you mean 'tree'"):
        extract.extract_passes(empty_scene, cam, (16, 16))


def test_no_camera_and_bad_edges_mode_say_what_to_do(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    add_sphere(empty_scene, location=(0, 0, -5))
    with pytest.raises(RuntimeError, match="camera"):
        extract.extract_passes(empty_scene)
    cam = add_camera(empty_scene)
    with pytest.raises(ValueError, match="geometric"):
        extract.extract_passes(empty_scene, cam, edges="sobel")


def test_scene_resolution_and_percentage_are_the_default_size(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, location=(0, 0, -5))
    empty_scene.render.resolution_x, empty_scene.render.resolution_y = 200, 100
    empty_scene.render.resolution_percentage = 25
    passes = extract.extract_passes(empty_scene, cam)
    assert passes.resolution == (50, 25)
    assert passes.control["depth"].shape == (25, 50, 3)


def test_canny_on_smooth_clay_draws_only_the_outline(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_sphere(empty_scene, radius=1.0, location=(0, 0, -4))
    passes = extract.extract_passes(empty_scene, cam, (W, W), edges="canny")
    assert passes.clay is not None and passes.clay.shape == (W, W)
    edges = passes.control["edges"][..., 0] > 0
    mask = passes.raw["object_id"] >= 0
    inner = mask.copy()
    for _ in range(3):  # erode by 3 px: away from the silhouette
        inner = inner & np.roll(inner, 1, 0) & np.roll(inner, -1, 0) & np.roll(inner, 1, 1) & np.roll(inner, -1, 1)
    assert edges[inner].mean() < 0.01
    assert edges[mask & ~inner].any()


def test_one_depth_range_over_an_animation_and_frames_render_their_own_pose(empty_scene, sc_module):
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    ball = add_sphere(empty_scene, radius=1.0, location=(0, 0, -5), segments=32, rings=16)
    ball.keyframe_insert("location", frame=1)
    ball.location = (0, 0, -15)
    ball.keyframe_insert("location", frame=10)
    empty_scene.frame_set(4)
    rng = extract.scene_depth_range(empty_scene, [cam], (32, 32), frames=[1, 10])
    assert empty_scene.frame_current == 4
    assert rng.near == pytest.approx(4.0 * 0.95, rel=1e-3) and rng.far == pytest.approx(16.0 * 1.05, rel=1e-3)
    first = extract.extract_passes(empty_scene, cam, (32, 32), depth_range=rng, frame=1)
    last = extract.extract_passes(empty_scene, cam, (32, 32), depth_range=rng, frame=10)
    assert empty_scene.frame_current == 4
    assert (first.frame, last.frame) == (1, 10)
    assert first.raw["depth"][16, 16] == pytest.approx(4.0, rel=2e-3)
    assert last.raw["depth"][16, 16] == pytest.approx(14.0, rel=2e-3)
    assert first.control["depth"][16, 16, 0] > last.control["depth"][16, 16, 0] > 0
    assert first.depth_range == last.depth_range == rng


def test_depth_range_follows_the_visible_ground_not_its_far_corners(empty_scene, sc_module):
    """A 200-unit ground plane under a camera 2 units up: the floor at the bottom of the frame is a few
    units away, so `near` must be too — its bounding box corners (≈100 units off) would wash it out."""
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene, location=(0, 0, 2), rotation=(math.radians(60), 0, 0))
    add_plane(empty_scene, name="Ground", size=200)
    passes = extract.extract_passes(empty_scene, cam, (W, H))
    depth = passes.raw["depth"]
    nearest = float(np.min(depth[np.isfinite(depth)]))
    assert passes.depth_range.near <= nearest < passes.depth_range.near * 1.5
    column = passes.control["depth"][:, W // 2, 0].astype(int)
    assert column[-1] > 200, "the nearest floor is bright"
    assert (np.diff(column[column > 0]) >= 0).all(), "the floor darkens steadily towards the horizon"


def test_extracts_from_a_scene_that_is_not_the_context_scene(empty_scene, sc_module):
    """Batch scripts build scenes with bpy.data.scenes.new() and never make them current."""
    import bpy

    extract = sc_module("blender.extract")
    other = bpy.data.scenes.new("Other")
    assert bpy.context.scene != other
    cam = add_camera(other)
    add_cube(other, location=(0, 0, -5))
    passes = extract.extract_passes(other, cam, (W, H))
    assert passes.depth_range.near <= 4.0 <= passes.depth_range.far
    assert passes.raw["depth"][H // 2, W // 2] == pytest.approx(4.0, abs=1e-3)


def test_an_object_hidden_only_in_the_viewport_still_gets_depth(empty_scene, sc_module):
    """Cycles renders it, so the control depth must not clip it to black like the background."""
    extract = sc_module("blender.extract")
    cam = add_camera(empty_scene)
    add_cube(empty_scene, size=1.0, location=(0, 0, -5))
    back = add_plane(empty_scene, name="Back", size=40, location=(0, 0, -20))
    back.hide_set(True)
    passes = extract.extract_passes(empty_scene, cam, (W, H))
    assert passes.raw["depth"][2, 2] == pytest.approx(20.0, abs=1e-3)
    assert passes.depth_range.far >= 20.0
    assert passes.control["depth"][2, 2, 0] > 0
