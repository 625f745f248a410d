import math

import numpy as np
import pytest

from addon.core import conventions as cv
from addon.core.conventions import DepthRange


def test_depth_range_validates_order_and_sign():
    assert DepthRange(1, 10).near == 1.0
    for near, far in [(0, 1), (-1, 1), (2, 2), (3, 1), (1, math.inf)]:
        with pytest.raises(ValueError):
            DepthRange(near, far)


def test_depth_range_from_bounds_adds_margin_and_ignores_points_behind():
    rng = cv.depth_range_from_bounds(np.array([2.0, 4.0, 8.0, 8.0]), margin=0.1)
    assert rng.near == pytest.approx(1.8)
    assert rng.far == pytest.approx(8.8)
    behind = cv.depth_range_from_bounds(np.array([-3.0, 5.0, 10.0]), margin=0.0, min_near=0.1)
    assert behind.near == pytest.approx(5.0)  # nearest corner in front
    with pytest.raises(ValueError, match="in front of the camera"):
        cv.depth_range_from_bounds(np.array([-1.0, -5.0]))


def test_inverse_depth_near_is_white_far_and_background_black():
    rng = DepthRange(2.0, 10.0)
    depth = np.array([[2.0, 10.0, np.inf, np.nan], [1.0, 11.0, 0.0, -2.0]], dtype=np.float32)
    img = cv.depth_to_control(depth, rng)
    assert img.shape == (2, 4, 3) and img.dtype == np.uint8
    grey = img[..., 0]
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert grey[0, 0] == 255  # exactly at near
    assert grey[0, 1] == 0  # exactly at far
    assert grey[0, 2] == 0 and grey[0, 3] == 0  # inf, nan: background
    assert grey[1, 0] == 255  # closer than near: clipped
    assert grey[1, 1] == 0  # beyond far: background
    assert grey[1, 2] == 0  # non-positive depth: no surface
    # inverse: v = (1/d - 1/far) / (1/near - 1/far); d = 5 -> (0.2 - 0.1) / 0.4 = 0.25 -> 63.75 -> 64
    assert cv.depth_to_control(np.array([[5.0]]), rng)[0, 0, 0] == 64
    assert cv.depth_to_control(np.array([[5.0]]), rng, "linear")[0, 0, 0] == 159  # 5/8 * 255 = 159.4


def test_linear_depth_mapping_and_unknown_mapping():
    rng = DepthRange(2.0, 10.0)
    img = cv.depth_to_control(np.array([[2.0, 6.0, 10.0]]), rng, mapping="linear")[..., 0]
    assert img.tolist() == [[255, 128, 0]]
    with pytest.raises(ValueError, match="inverse"):
        cv.depth_to_control(np.ones((2, 2)), rng, mapping="log")


def test_depth_is_not_normalised_per_image():
    """Two images of the same range: a surface at the same distance gets the same grey."""
    rng = DepthRange(1.0, 20.0)
    a = cv.depth_to_control(np.array([[5.0, 6.0]]), rng)
    b = cv.depth_to_control(np.array([[5.0, 19.0]]), rng)
    assert a[0, 0, 0] == b[0, 0, 0]
    assert a[0, 0, 0] != 255  # min/max normalisation would make 5.0 white


def test_depth_round_trip_within_quantisation():
    rng = DepthRange(1.0, 9.0)
    d = np.linspace(1.0, 8.9, 50, dtype=np.float32)[None]
    for mapping in cv.DEPTH_MAPPINGS:
        back = cv.control_to_depth(cv.depth_to_control(d, rng, mapping), rng, mapping)
        v = cv.depth_to_control(back, rng, mapping)
        assert np.array_equal(v, cv.depth_to_control(d, rng, mapping))


def test_normals_follow_controlnet_11_colours():
    n = np.array(
        [[[0, 0, 1], [-1, 0, 0], [1, 0, 0]], [[0, 1, 0], [0, -1, 0], [0, 0, 1]]], dtype=np.float32
    )
    mask = np.array([[True, True, True], [True, True, False]])
    img = cv.normals_to_control(n, mask)
    assert img[0, 0].tolist() == [128, 128, 255]  # facing the camera: blue is front
    assert img[0, 1].tolist() == [255, 128, 128]  # facing left: red is left
    assert img[0, 2].tolist() == [0, 128, 128]  # facing right
    assert img[1, 0].tolist() == [128, 255, 128]  # facing up: green is top
    assert img[1, 1].tolist() == [128, 0, 128]  # facing down
    assert img[1, 2].tolist() == list(cv.BACKGROUND_RGB)  # background black
    back = cv.control_to_normals(img)
    assert np.allclose(back[0], n[0], atol=0.01)


def test_sphere_normals_image_is_lit_from_the_expected_sides():
    """A sphere's normals: the left side of the image is red, the top green, the centre blue."""
    h = w = 65
    y, x = np.mgrid[0:h, 0:w]
    nx = (x - 32) / 30.0
    ny = (32 - y) / 30.0  # row 0 is the top: y up means smaller row
    r2 = nx**2 + ny**2
    mask = r2 < 1
    nz = np.sqrt(np.clip(1 - r2, 0, 1))
    img = cv.normals_to_control(np.stack([nx, ny, nz], -1).astype(np.float32), mask)
    assert img[32, 4, 0] > 240 and img[32, 60, 0] < 15  # red left
    assert img[4, 32, 1] > 240 and img[60, 32, 1] < 15  # green top
    assert img[32, 32, 2] == 255
    assert (img[~mask] == 0).all()


def test_normals_world_to_camera_uses_inverse_rotation_and_removes_scale():
    # Camera rotated 90° about world Z: camera x axis = world +Y, camera y = world -X, z = world +Z.
    r = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    world = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 2]], dtype=np.float64)
    cam = cv.normals_world_to_camera(world, r * 3.0)
    assert np.allclose(cam, [[1, 0, 0], [0, 1, 0], [0, 0, 1]], atol=1e-6)
    assert cv.normals_world_to_camera(np.zeros((1, 3)), r).tolist() == [[0, 0, 0]]


def test_flip_rows():
    a = np.arange(6).reshape(3, 2)
    assert cv.flip_rows(a).tolist() == [[4, 5], [2, 3], [0, 1]]


def test_widen_to_cover_grows_a_range_to_what_was_rendered_and_never_shrinks_it():
    from addon.core.conventions import DepthRange, widen_to_cover

    rng = DepthRange(4.0, 6.0)
    depth = np.array([[5.0, np.inf], [20.0, np.nan]], dtype=np.float32)
    wide = widen_to_cover(rng, depth, margin=0.0)
    assert (wide.near, wide.far) == (4.0, 20.0)
    inside = np.array([[4.5, 5.5]], dtype=np.float32)
    assert widen_to_cover(rng, inside) is rng
    assert widen_to_cover(rng, np.full((2, 2), np.inf, np.float32)) is rng


def test_linear_to_srgb_matches_the_srgb_standard():
    from addon.core.conventions import linear_to_srgb, linear_to_srgb8

    linear = np.array([0.0, 0.0031308, 0.18, 0.5, 1.0, 2.0, -0.1])
    expected = np.array([0.0, 0.040449936, 0.46135613, 0.73535698, 1.0, 1.0, 0.0])  # IEC 61966-2-1
    encoded = linear_to_srgb(linear)
    assert encoded.dtype == np.float32 and np.allclose(encoded, expected, atol=1e-6)
    assert linear_to_srgb8(linear).tolist() == [0, 10, 118, 188, 255, 255, 0]
    ramp = np.linspace(0.0, 1.0, 4097)
    assert np.array_equal(linear_to_srgb8(ramp), np.rint(linear_to_srgb(ramp).astype(np.float64) * 255).astype(np.uint8))


def test_the_srgb_transfer_function_is_written_once_in_the_addon():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    holders = sorted(str(p.relative_to(root)) for p in (root / "addon").rglob("*.py")
                     if "0.0031308" in p.read_text(encoding="utf-8"))
    assert holders == ["addon/core/conventions.py"]
