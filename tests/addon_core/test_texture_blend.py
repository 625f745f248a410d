"""Projection texturing: occlusion, facing weights, feathering, round trip, accumulation, padding, fill."""

import math

import numpy as np

from addon.core.projection import rasterize_view
from addon.core.texture_blend import (accumulate, feather_map, fill_unseen, pad_islands, project_image, render_texture_into_view,
                                      view_weights)
from addon.core.uv_raster import interpolate, rasterize_uv
from tests.addon_core.projection_scenes import normals_of, ortho_view, persp_view, plane_z, quad


def texels(tri, uv, size):
    s = rasterize_uv(uv, size)
    return s, interpolate(s, tri), interpolate(s, normals_of(tri))


def test_a_plane_behind_another_gets_zero_weight_where_covered():
    back, back_uv = plane_z(0.0, 1.0)
    front, _ = plane_z(1.0, 0.4)
    view = persp_view([0, 0, 5.0], [0, 0, 0])
    depth = rasterize_view(view, np.concatenate([back, front])).depth
    s, pts, nrm = texels(back, back_uv, (64, 64))
    w, xy = view_weights(view, pts, nrm, depth, feather_px=2)
    # where the front plane's own projection covers the back texel: occluded
    covered = (np.abs(pts[:, 0] * 5 / 4) < 0.4 * 0.95) & (np.abs(pts[:, 1] * 5 / 4) < 0.4 * 0.95)
    assert covered.sum() > 100 and (w[covered] == 0).all()
    clear = (np.abs(pts[:, :2]) > 0.6).any(1) & (np.abs(pts[:, :2]) < 0.85).all(1)
    assert (w[clear] > 0.9).all()


def test_weights_follow_cos_power_and_cut_off():
    for angle in (0, 30, 60, 75, 85, 120):
        a = math.radians(angle)
        c, s_ = math.cos(a), math.sin(a)
        tri, uv = quad(np.array([[-1, -c, -s_], [1, -c, -s_], [1, c, s_], [-1, c, s_]]))  # tilted about x
        view = ortho_view([0, 0, 5.0], [0, 0, 0], (128, 128), scale=4.0)
        smp, pts, nrm = texels(tri, uv, (32, 32))
        depth = rasterize_view(view, tri).depth
        for power in (1.0, 3.0):
            w, xy = view_weights(view, pts, nrm, depth, power=power, cutoff_deg=80, feather_px=0)
            expect = abs(c) ** power if angle < 80 else 0.0
            inner = np.all(np.abs(smp.texel_uv() - 0.5) < 0.35, axis=1)  # off the silhouette (always 0)
            assert inner.sum() > 20 or angle >= 80
            assert np.allclose(w[inner], expect, atol=1e-5), (angle, power)
            assert (w >= 0).all() and (w <= expect + 1e-6).all()


def test_feathering_ramps_to_zero_at_silhouettes():
    tri, uv = plane_z(0.0, 1.0)
    view = ortho_view([0, 0, 5.0], [0, 0, 0], (64, 64), scale=4.0)  # plane spans pixels 16..48
    smp, pts, nrm = texels(tri, uv, (128, 128))
    depth = rasterize_view(view, tri).depth
    w, xy = view_weights(view, pts, nrm, depth, feather_px=8)
    row = np.abs(xy[:, 1] - 32.5) < 0.3  # texels on the middle row of pixels
    x, ww = xy[row, 0], w[row]
    order = np.argsort(x)
    x, ww = x[order], ww[order]
    assert ww[0] < 0.05 and ww[-1] < 0.05  # at the silhouette
    assert np.allclose(ww[(x > 26) & (x < 38)], 1.0)  # more than 8 px in: full weight
    left = x < 25
    assert np.all(np.diff(ww[left]) >= -1e-6) and ww[left].max() > 0.5  # rising across the ramp


def smooth_image(h, w):
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    return np.stack([0.5 + 0.4 * np.sin(3 * x + 1), 0.5 + 0.4 * np.cos(2 * y), 0.3 + 0.5 * x * y], -1).astype(np.float32)


def test_projecting_then_rendering_back_reproduces_the_image():
    tri, uv = quad(np.array([[-1, -1, 0.0], [1, -1, 0.3], [1, 1, 0.3], [-1, 1, 0.0]]))
    view = persp_view([0.2, -0.3, 3.0], [0, 0, 0], (96, 80))
    raster = rasterize_view(view, tri)
    smp, pts, nrm = texels(tri, uv, (512, 512))
    image = smooth_image(80, 96)
    colors, weights = project_image(smp, pts, nrm, view, image, raster.depth)
    tex, wtex = np.zeros((512, 512, 3), np.float32), np.zeros((512, 512), np.float32)
    accumulate(tex, wtex, smp.index, colors, weights)
    rgb, w = render_texture_into_view(raster, uv, tex, wtex)
    interior = (feather_map(raster.depth, 8.0) >= 1.0) & (w > 0)  # 8+ px from the silhouette
    assert interior.sum() > 1500
    mse = np.mean((rgb[interior] - image[interior]) ** 2)
    assert 10 * np.log10(1.0 / mse) > 40  # PSNR in dB
    assert (w[raster.tri < 0] == 0).all() and (rgb[raster.tri < 0] == 0).all()


def test_accumulation_blends_by_weight_and_zero_weight_changes_nothing():
    tex = np.zeros((4, 4, 3), np.float32)
    wt = np.zeros((4, 4), np.float32)
    idx = np.array([0, 5, 15])
    accumulate(tex, wt, idx, np.array([[1, 0, 0]] * 3, np.float32), np.array([1.0, 3.0, 0.0], np.float32))
    accumulate(tex, wt, idx, np.array([[0, 1, 0]] * 3, np.float32), np.array([1.0, 1.0, 2.0], np.float32))
    flat, fw = tex.reshape(-1, 3), wt.reshape(-1)
    assert np.allclose(flat[0], [0.5, 0.5, 0]) and np.allclose(flat[5], [0.75, 0.25, 0]) and np.allclose(flat[15], [0, 1, 0])
    assert np.allclose(fw[[0, 5, 15]], [2, 4, 2])
    before, wbefore = tex.copy(), wt.copy()
    accumulate(tex, wt, idx, np.array([[0, 0, 1]] * 3, np.float32), np.zeros(3, np.float32))
    assert np.array_equal(tex, before) and np.array_equal(wt, wbefore)


def test_pad_islands_fills_a_ring_and_leaves_far_texels():
    known = np.zeros((40, 40), bool)
    known[15:25, 15:25] = True
    tex = np.zeros((40, 40, 3), np.float32)
    tex[known] = [0.2, 0.4, 0.6]
    out = pad_islands(tex, known, iterations=3)
    ring = np.zeros_like(known)
    ring[12:28, 12:28] = True
    assert np.allclose(out[ring], [0.2, 0.4, 0.6])
    assert (out[~ring] == 0).all()
    assert np.array_equal(out[known], tex[known])


def test_fill_unseen_leaves_no_island_texel_empty():
    islands = np.zeros((64, 64), bool)
    islands[4:30, 4:60] = True  # seen in part
    islands[40:60, 10:20] = True  # never seen
    weight = np.zeros((64, 64), np.float32)
    weight[4:30, 4:12] = 1.0
    tex = np.zeros((64, 64, 3), np.float32)
    tex[weight > 0] = [0.9, 0.1, 0.3]
    out = fill_unseen(tex, weight, islands)
    assert np.allclose(out[islands], [0.9, 0.1, 0.3], atol=1e-6)
    assert (out[~islands] == 0).all()
    grey = fill_unseen(tex, np.zeros_like(weight), islands)
    assert np.allclose(grey[islands], 0.5)
