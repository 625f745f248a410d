import math

import numpy as np
import pytest

from addon.core.bounds import clip_polygon, frustum_planes, visible_box_depths
from addon.core.conventions import depth_range_from_bounds


def perspective(fov_deg=90.0, aspect=1.0, near=0.1, far=1000.0):
    f = 1.0 / math.tan(math.radians(fov_deg) / 2)
    return np.array([
        [f / aspect, 0, 0, 0],
        [0, f, 0, 0],
        [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0, 0, -1, 0],
    ])


def orthographic(half=5.0, near=0.1, far=100.0):
    return np.array([
        [1 / half, 0, 0, 0],
        [0, 1 / half, 0, 0],
        [0, 0, -2 / (far - near), -(far + near) / (far - near)],
        [0, 0, 0, 1],
    ])


def box(lo, hi):
    """8 corners in Blender's bound_box order."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    return np.array([(x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0),
                     (x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0)], dtype=float)


def test_box_inside_the_frustum_gives_its_corner_depths():
    corners = box((-1, -1, -6), (1, 1, -4))
    d = visible_box_depths(corners[None], perspective())
    assert sorted(set(np.round(d, 9))) == [4.0, 6.0]


def test_ground_plane_reaching_behind_the_camera_is_clipped_to_what_is_seen():
    """A 200-unit floor 1 unit below a camera with a 90° view: the nearest floor in view is 1 away
    (bottom frustum plane y = z), the farthest is where the floor ends (100), not the corners."""
    floor = box((-100, -1, -100), (100, -1, 100))
    d = visible_box_depths(floor[None], perspective())
    assert d.min() == pytest.approx(1.0)
    assert d.max() == pytest.approx(100.0)
    corner_only = -floor[:, 2]
    assert corner_only[corner_only > 0].min() == 100.0  # what the corners alone would claim
    rng = depth_range_from_bounds(d, margin=0.0)
    assert rng.near == pytest.approx(1.0) and rng.far == pytest.approx(100.0)


def test_boxes_outside_the_view_add_nothing():
    behind = box((-1, -1, 4), (1, 1, 6))
    beside = box((50, -1, -6), (52, 1, -4))  # 90° view: x must be within |z|
    inside = box((-1, -1, -6), (1, 1, -4))
    d = visible_box_depths(np.stack([behind, beside, inside]), perspective())
    assert d.min() == pytest.approx(4.0) and d.max() == pytest.approx(6.0)
    assert visible_box_depths(np.stack([behind, beside]), perspective()).size == 0


def test_camera_inside_a_box_sees_its_walls():
    """Inside a 2-unit room with a 90° view the nearest wall in view is 1 away, the back wall 3."""
    around_camera = box((-1, -1, -3), (1, 1, 1))
    d = visible_box_depths(around_camera[None], perspective(near=0.1))
    assert d.min() == pytest.approx(1.0) and d.max() == pytest.approx(3.0)


def test_near_clip_plane_bounds_the_depth():
    wall = box((-1, -1, -0.05), (1, 1, -0.05))  # a wall closer than the clip start is not seen
    assert visible_box_depths(wall[None], perspective(near=0.1)).size == 0
    slab = box((-1, -1, -2), (1, 1, 0.5))  # its side walls reach through the near plane
    assert visible_box_depths(slab[None], perspective(near=0.1)).min() == pytest.approx(1.0)


def test_orthographic_projection():
    floor = box((-100, -1, -200), (100, -1, 100))
    d = visible_box_depths(floor[None], orthographic(half=5.0, near=0.1, far=100.0))
    assert d.min() == pytest.approx(0.1) and d.max() == pytest.approx(100.0)


def test_clip_polygon_square_against_one_plane():
    square = np.array([[0, 0, 0, 1], [2, 0, 0, 1], [2, 2, 0, 1], [0, 2, 0, 1]], float)
    half = clip_polygon(square, np.array([[-1.0, 0, 0, 1.0]]))  # x <= 1
    assert half[:, 0].max() == pytest.approx(1.0) and len(half) == 4
    assert clip_polygon(square, np.array([[-1.0, 0, 0, -5.0]])).size == 0
    with pytest.raises(ValueError):
        frustum_planes(np.eye(3))
    with pytest.raises(ValueError):
        visible_box_depths(np.zeros((2, 4, 3)), np.eye(4))
