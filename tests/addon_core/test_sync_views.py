"""Correspondences view pixel -> packed texel for synchronized texturing, checked by hand on tiny scenes."""

import numpy as np
import pytest

from addon.core.projection import rasterize_view
from addon.core.sync_views import (CONTENT_TYPE, Level, PackedTexels, at_resolution, decode, encode,
                                   view_correspondence)
from addon.core.uv_raster import rasterize_uv

from tests.addon_core.projection_scenes import normals_of, ortho_view, persp_view, plane_z, quad


def _one_target(tri, uv, size):
    return PackedTexels([(uv, rasterize_uv(uv, size))])


def _corr(view, packed, tri, **kw):
    raster = rasterize_view(view, tri)
    return view_correspondence(view, raster, packed, tri, normals_of(tri), **kw)


def test_straight_down_view_maps_each_pixel_to_the_texel_under_it():
    tri, uv = plane_z(0.0, 1.0)  # [-1, 1]^2, UV [0, 1]^2
    packed = _one_target(tri, uv, (4, 4))
    view = ortho_view((0, 0, 5), (0, 0, 0), res=(4, 4), scale=2.0)  # pixel x -> world x, row 0 -> y = +1
    index, weight = _corr(view, packed, tri)
    # pixel (col i, row j from the top) sees texel (col i, row 3 - j from the bottom); all 16 are covered
    expected = np.array([[(3 - j) * 4 + i for i in range(4)] for j in range(4)])
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(weight, 1.0, atol=1e-6)


def test_weight_is_abs_cos_to_the_power_and_zero_past_the_cutoff():
    tri, uv = plane_z(0.0, 1.0)
    packed = _one_target(tri, uv, (8, 8))
    # orthographic view axis 60 degrees from the normal: cos = 0.5
    view = ortho_view((0, -np.sqrt(3) * 2, 2), (0, 0, 0), res=(16, 16), scale=4.0)
    index, weight = _corr(view, packed, tri, power=2.0)
    seen = index >= 0
    assert seen.sum() > 20
    np.testing.assert_allclose(weight[seen], 0.25, atol=1e-5)
    assert np.all(weight[~seen] == 0)
    _, cut = _corr(view, packed, tri, power=2.0, cutoff_deg=50.0)
    assert np.all(cut == 0)
    # seen from below (the back of the open plane): |cos|, the same texels, the same weight
    below = ortho_view((0, 0, -5), (0, 0, 0), res=(4, 4), scale=2.0)
    idx_b, w_b = _corr(below, packed, tri)
    assert np.all(idx_b >= 0)
    np.testing.assert_allclose(w_b, 1.0, atol=1e-6)


def test_background_occluders_and_two_targets_pack_one_after_the_other():
    a_tri, a_uv = quad(np.array([[-2, -1, 0], [0, -1, 0], [0, 1, 0], [-2, 1, 0]], float))  # left half, x in [-2, 0]
    b_tri, b_uv = quad(np.array([[0, -1, 0], [2, -1, 0], [2, 1, 0], [0, 1, 0]], float))  # right half
    occ_tri, _ = quad(np.array([[-2, 0, 1], [2, 0, 1], [2, 1, 1], [-2, 1, 1]], float))  # above the top half
    packed = PackedTexels([(a_uv, rasterize_uv(a_uv, (2, 2))), (b_uv, rasterize_uv(b_uv, (4, 4)))])
    assert packed.count == 4 + 16 and list(packed.offsets) == [0, 4, 20]
    scene = np.concatenate([a_tri, b_tri, occ_tri])
    view = ortho_view((0, 0, 5), (0, 0, 0), res=(8, 8), scale=8.0)  # [-4, 4]^2, 1 unit per pixel
    index, weight = _corr(view, packed, scene)
    # columns 2-3 see target a, 4-5 target b, 0-1 and 6-7 background; rows 2-3 (y in [0, 2]) the occluder
    assert np.all(index[:, [0, 1, 6, 7]] == -1) and np.all(index[[0, 1, 6, 7]] == -1)
    assert np.all(index[2:4, 2:6] == -1) and np.all(weight[index < 0] == 0)
    # row 4 (y in [-1, 0]: v in [0, 0.5]): a's texel row 0 (ids 0, 1), b's texel row 1 (4 + 4 + col)
    # pixel col 4 (x in [0, 1]: u in [0, 0.5]) holds b's texel cols 0-1, its centre u = 0.25: col 1
    np.testing.assert_array_equal(index[4, 2:6], [0, 1, 4 + 4 + 1, 4 + 4 + 3])
    assert np.all(index[5, 2:6] == -1)  # y in [-2, -1]: below the planes


def test_uv_just_outside_an_island_resolves_to_the_nearest_texel():
    tri, uv = plane_z(0.0, 1.0)
    uv = 0.2 + 0.6 * uv  # island [0.2, 0.8]^2 in a 4x4 texture: centres 0.125 and 0.875 fall outside it
    samples = rasterize_uv(uv, (4, 4))
    assert len(samples.index) == 4  # only the inner 2x2 texels are covered
    view = ortho_view((0, 0, 5), (0, 0, 0), res=(20, 20), scale=2.0)
    grown, _ = _corr(view, PackedTexels([(uv, samples)]), tri)
    bare, _ = _corr(view, PackedTexels([(uv, samples)], seam_rings=0), tri)
    assert np.all(grown >= 0)  # every pixel of the plane names a texel
    assert np.any(bare < 0)  # without the rings, pixels near the island's border would name none
    # the top-left pixel (u, v near 0.2, 0.8: texel col 0, row 3) takes the nearest covered texel (col 1, row 2)
    assert grown[0, 0] == np.flatnonzero(samples.index == 2 * 4 + 1)[0]


def test_latent_grid_is_the_same_camera_at_one_eighth():
    tri, uv = plane_z(0.0, 1.0)
    view = persp_view((0.5, -3, 3), (0, 0, 0), res=(64, 48))
    small = at_resolution(view, (8, 6))
    np.testing.assert_array_equal(small.projection, view.projection)
    packed = _one_target(tri, uv, (8, 8))
    big_idx, _ = _corr(view, packed, tri)
    small_idx, _ = _corr(small, packed, tri)
    # each latent pixel names the texel its 8x8 block's centre sees: the same as the big view at that centre
    centres = big_idx[4::8, 4::8]
    assert (small_idx == centres).mean() > 0.9
    with pytest.raises(ValueError, match="aspect"):
        at_resolution(view, (8, 8))


def test_encode_decode_round_trip_and_refusals():
    rng = np.random.default_rng(0)
    idx = rng.integers(-1, 50, size=(3, 4, 5)).astype(np.int32)
    w = np.where(idx >= 0, rng.random((3, 4, 5)), 0).astype(np.float32)
    big = rng.integers(-1, 999, size=(3, 8, 10)).astype(np.int32)
    for compress in (True, False):
        data = encode([Level("latent", idx, w, 50), Level("image", big, np.ones_like(big, np.float32), 999)],
                      power=2.0, compress=compress)
        header, levels = decode(data)
        assert header["views"] == 3 and header["power"] == 2.0 and [lv.name for lv in levels] == ["latent", "image"]
        np.testing.assert_array_equal(levels[0].index, idx)
        np.testing.assert_allclose(levels[0].weight, w, atol=1e-3)  # float16 on the wire
        np.testing.assert_array_equal(levels[1].index, big)
        assert levels[1].texels == 999
    raw = encode([Level("latent", idx, w, 50)], compress=False)
    # the documented layout: magic, version, header length, header padded to 8, int32 index, float16 weight
    assert raw[:4] == b"SCCR" and int.from_bytes(raw[4:8], "little") == 1
    hlen = int.from_bytes(raw[8:12], "little")
    assert hlen % 8 == 0
    body = raw[12 + hlen:]
    np.testing.assert_array_equal(np.frombuffer(body[:240], "<i4").reshape(3, 4, 5), idx)
    with pytest.raises(ValueError, match="SCCR"):
        decode(b"PNG...")
    with pytest.raises(ValueError, match="ends inside"):
        decode(raw[:-30])
    with pytest.raises(ValueError, match="texel ids"):
        Level("latent", idx, w, 10)
    assert CONTENT_TYPE == "application/x-scenecast-correspondence"


def test_view_suffix_from_the_camera_position():
    from addon.core.sync_views import view_suffix

    assert view_suffix(persp_view((0, -5, 1), (0, 0, 0))) == "front view"
    assert view_suffix(persp_view((0, 5, 1), (0, 0, 0))) == "back view"
    assert view_suffix(persp_view((5, 0.5, 0), (0, 0, 0))) == "side view"
    assert view_suffix(persp_view((0.1, -0.1, 5), (0, 0, 0))) == "top view"
    assert view_suffix(ortho_view((0, 0, -5), (0, 0, 0))) == "bottom view"


def test_strip_and_unpack_give_each_target_its_texture():
    from addon.core.sync_views import strip_values, unpack

    a_tri, a_uv = plane_z(0.0, 1.0)
    b_uv = a_uv * 0.5  # only the lower-left quarter of b's texture is an island
    sa, sb = rasterize_uv(a_uv, (4, 4)), rasterize_uv(b_uv, (4, 4))
    packed = PackedTexels([(a_uv, sa), (b_uv, sb)])
    assert packed.count == 16 + 4
    values = np.arange(packed.count * 3, dtype=np.float32).reshape(-1, 3)
    width = 8  # the backend's strip: rows of 8 packed texels, the last row padded with zeros
    strip = np.zeros((3, width, 3), np.float32)
    strip.reshape(-1, 3)[:packed.count] = values
    got = strip_values(strip, packed.count)
    np.testing.assert_array_equal(got, values)
    tex_b = unpack(packed, got, 1, sb, fill=-1.0)
    assert tex_b.shape == (4, 4, 3)
    np.testing.assert_array_equal(tex_b.reshape(-1, 3)[sb.index], values[16:])
    assert np.all(tex_b[2:, :] == -1) and np.all(tex_b[:, 2:] == -1)  # outside b's island
    with pytest.raises(ValueError, match="packed 16 texels"):
        unpack(packed, got, 0, sb)
    with pytest.raises(ValueError, match="fewer than"):
        strip_values(strip[:2], packed.count)
