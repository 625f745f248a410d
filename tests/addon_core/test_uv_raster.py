"""UV rasterisation: exactly the texels whose centres are inside, one winner per texel, exact barycentrics."""

import numpy as np

from addon.core.uv_raster import interpolate, rasterize_uv


def brute_force(uv: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) mask of texel centres inside any triangle, and the highest containing triangle (−1 none)."""
    jj, ii = np.mgrid[0:h, 0:w]
    c = np.stack([(ii + 0.5) / w, (jj + 0.5) / h], -1).reshape(-1, 2)
    winner = np.full(len(c), -1)
    for t, (a, b, cc) in enumerate(uv):
        m = np.array([b - a, cc - a]).T
        l1, l2 = np.linalg.solve(m, (c - a).T)
        inside = (l1 >= 0) & (l2 >= 0) & (l1 + l2 <= 1)
        winner[inside] = t
    return (winner >= 0).reshape(h, w), winner.reshape(h, w)


def test_covers_exactly_the_texels_whose_centres_are_inside():
    rng = np.random.default_rng(1)
    for w, h in [(37, 23), (16, 16), (5, 40)]:
        uv = rng.uniform(-0.1, 1.1, (25, 3, 2))
        s = rasterize_uv(uv, (w, h))
        mask, winner = brute_force(uv, w, h)
        assert np.array_equal(s.covered_mask(), mask)
        assert np.array_equal(s.tri, winner.reshape(-1)[s.index])  # overlaps: the highest index wins
        assert len(np.unique(s.index)) == len(s.index)


def test_row_zero_is_the_bottom_of_the_texture():
    uv = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 0.5]]])  # a triangle in the lower half (v < 0.5)
    mask = rasterize_uv(uv, (8, 8)).covered_mask()
    assert mask[0, :7].all() and not mask[4:].any()


def test_shared_edges_leave_no_gap_and_no_duplicate():
    g = np.linspace(0, 1, 7)
    u, v = np.meshgrid(g, g)
    p = np.stack([u, v], -1)
    a, b, c, d = p[:-1, :-1], p[:-1, 1:], p[1:, 1:], p[1:, :-1]
    uv = np.concatenate([np.stack([a, b, c], 2).reshape(-1, 3, 2), np.stack([a, c, d], 2).reshape(-1, 3, 2)])
    s = rasterize_uv(uv, (64, 48))
    assert s.covered_mask().all() and len(s.index) == 64 * 48


def test_barycentrics_reproduce_positions():
    rng = np.random.default_rng(2)
    uv = rng.uniform(0, 1, (30, 3, 2))
    s = rasterize_uv(uv, (50, 40))
    assert np.allclose(interpolate(s, uv), s.texel_uv(), atol=1e-5)
    assert np.allclose(s.bary.sum(1), 1) and (s.bary >= 0).all()
    # any affine map of UV into 3-D interpolates to the map of the texel centre
    a = rng.normal(size=(2, 3))
    pos = uv @ a + [1.0, 2.0, 3.0]
    assert np.allclose(interpolate(s, pos), s.texel_uv() @ a + [1.0, 2.0, 3.0], atol=1e-4)


def test_degenerate_and_outside_triangles_cover_nothing():
    uv = np.array([[[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]], [[2.0, 2.0], [3.0, 2.0], [2.0, 3.0]]])
    assert len(rasterize_uv(uv, (32, 32)).index) == 0
