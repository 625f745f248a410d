"""CameraView projection against hand-built cameras, the z-buffer against analytic depth, bilinear sampling."""

import numpy as np

from addon.core.projection import CameraView, rasterize_view, sample_bilinear
from tests.addon_core.projection_scenes import look_at, ortho_view, persp_view, quad


def test_perspective_project_matches_a_pinhole_camera():
    res = (160, 90)  # wider than tall: the 36 mm sensor spans the width (sensor fit AUTO)
    view = persp_view([4.0, -3.0, 2.0], [0.0, 0.0, 0.5], res, lens=35.0, sensor=36.0)
    pts = np.random.default_rng(0).uniform(-1, 1, (50, 3))
    xy, depth = view.project(pts)
    pc = pts @ view.world_to_camera[:3, :3].T + view.world_to_camera[:3, 3]
    f_px = 35.0 / 36.0 * 160
    assert np.allclose(depth, -pc[:, 2])
    assert np.allclose(xy[:, 0], 80 + f_px * pc[:, 0] / -pc[:, 2])
    assert np.allclose(xy[:, 1], 45 - f_px * pc[:, 1] / -pc[:, 2])  # y grows downwards, row 0 top
    assert not view.is_orthographic


def test_the_point_the_camera_looks_at_lands_in_the_image_centre():
    view = persp_view([3.0, 1.0, 2.0], [0.2, -0.1, 0.3], (64, 48))
    xy, depth = view.project(np.array([[0.2, -0.1, 0.3]]))
    assert np.allclose(xy, [[32, 24]]) and np.isclose(depth[0], np.linalg.norm([2.8, 1.1, 1.7]))


def test_orthographic_project_is_a_scaled_parallel_projection():
    view = ortho_view([0.0, -5.0, 0.0], [0.0, 0.0, 0.0], (100, 50), scale=4.0)  # 4 units span the width
    xy, depth = view.project(np.array([[1.0, 0.0, 0.5], [-2.0, 3.0, -1.0]]))
    assert view.is_orthographic
    assert np.allclose(xy, [[50 + 25, 25 - 12.5], [0, 25 + 25]])
    assert np.allclose(depth, [5.0, 8.0])
    assert np.allclose(view.directions_to_camera(np.zeros((2, 3))), [0, -1, 0])


def test_directions_point_to_the_eye():
    view = persp_view([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    d = view.directions_to_camera(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]]))
    assert np.allclose(d, [np.array([1, 2, 3]) / np.sqrt(14), [0, 0, 1]], atol=1e-6)


def ray_plane_depth(view: CameraView, p0: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Analytic planar depth of the plane (p0, n) at each pixel centre of a perspective view."""
    w, h = view.resolution
    f_px = view.projection[0, 0] * w / 2
    y, x = np.mgrid[0:h, 0:w] + 0.5
    ray = np.stack([(x - w / 2) / f_px, -(y - h / 2) / f_px, -np.ones_like(x)], -1)  # camera space, z = -1
    r = view.world_to_camera[:3, :3]
    p0c, nc = r @ p0 + view.world_to_camera[:3, 3], r @ n
    t = (p0c @ nc) / (ray @ nc)
    return t  # planar depth: the ray has z = -1 per unit t


def test_rasterized_depth_is_the_planar_depth_of_a_tilted_plane():
    tri, _ = quad(np.array([[-2, -2, -1.0], [2, -2, 0.5], [2, 2, 0.5], [-2, 2, -1.0]]))
    view = persp_view([0.3, -0.5, 4.0], [0.0, 0.0, 0.0], (96, 80))
    r = rasterize_view(view, tri)
    hit = r.tri >= 0
    assert hit.mean() > 0.5 and np.isinf(r.depth[~hit]).all()
    n = np.cross([4, 0, 1.5], [0, 4, 0])
    expect = ray_plane_depth(view, np.array([-2, -2, -1.0]), n / np.linalg.norm(n))
    assert np.allclose(r.depth[hit], expect[hit], rtol=1e-5)
    # perspective-correct barycentrics rebuild the 3-D point under each pixel centre
    p = np.einsum("hwk,hwkc->hwc", r.bary, tri[np.maximum(r.tri, 0)])
    xy, depth = view.project(p[hit])
    y, x = np.nonzero(hit)
    assert np.allclose(xy, np.stack([x + 0.5, y + 0.5], 1), atol=1e-3)


def test_the_nearer_surface_wins_the_z_buffer():
    back, _ = quad(np.array([[-2, -2, 0.0], [2, -2, 0], [2, 2, 0], [-2, 2, 0]]))
    front, _ = quad(np.array([[-0.5, -0.5, 1.0], [0.5, -0.5, 1], [0.5, 0.5, 1], [-0.5, 0.5, 1]]))
    view = CameraView(look_at([0, 0, 5.0], [0, 0, 0]), ortho_view([0, 0, 5.0], [0, 0, 0]).projection, (64, 64))
    r = rasterize_view(view, np.concatenate([front, back]))  # order must not matter
    r2 = rasterize_view(view, np.concatenate([back, front]))
    assert np.array_equal(r.depth, r2.depth)
    assert np.isclose(r.depth[32, 32], 4.0) and np.isclose(r.depth[2, 2], 5.0)
    assert r.tri[32, 32] in (0, 1) and r2.tri[32, 32] in (2, 3)


def test_sample_bilinear_is_exact_on_a_linear_ramp_and_clamps():
    h, w = 20, 30
    y, x = np.mgrid[0:h, 0:w] + 0.5  # value = pixel-centre coordinates
    img = np.stack([x, y], -1).astype(np.float32)
    pts = np.array([[3.2, 7.9], [0.5, 0.5], [29.5, 19.5], [12.75, 4.25]])
    assert np.allclose(sample_bilinear(img, pts), pts, atol=1e-5)
    assert np.allclose(sample_bilinear(img, np.array([[-5.0, 40.0]])), [[0.5, 19.5]])
    assert sample_bilinear(img[:, :, 0], pts).shape == (4, 1)


def test_backface_culling_drops_only_faces_turned_away():
    tri, _ = quad(np.array([[-1, -1, 0.0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]))  # counter-clockwise from +z
    front, back = persp_view([0, 0, 4.0], [0, 0, 0]), persp_view([0, 0, -4.0], [0, 0, 0])
    assert (rasterize_view(front, tri, cull_backfaces=True).tri >= 0).sum() > 1000
    assert (rasterize_view(back, tri, cull_backfaces=True).tri < 0).all()
    seen_from_behind = rasterize_view(back, tri)
    assert np.array_equal(seen_from_behind.tri >= 0, rasterize_view(front, tri).tri[:, ::-1] >= 0)
