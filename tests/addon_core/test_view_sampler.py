"""The chunked, threaded projection kernel (core.view_sampler) against the reference maths in texture_blend."""

import numpy as np
import pytest

import addon.core.view_sampler as vs
from addon.core.projection import rasterize_view, sample_bilinear
from addon.core.texture_blend import accumulate, view_weights
from addon.core.uv_raster import interpolate, rasterize_uv
from tests.addon_core.projection_scenes import normals_of, ortho_view, persp_view, plane_z, quad


def scene():
    """A bumpy tilted plane half hidden behind a smaller plane: occlusion, silhouettes, grazing angles."""
    back, back_uv = quad(np.array([[-1.5, -1, 0], [1.5, -1, 0.8], [1.5, 1, 0.8], [-1.5, 1, 0]]))
    front, _ = plane_z(1.4, 0.35)
    s = rasterize_uv(back_uv, (96, 80))
    pts, nrm = interpolate(s, back), interpolate(s, normals_of(back))
    nrm += 0.2 * np.sin(7 * pts[:, [1, 2, 0]]).astype(np.float32)  # uneven normals: cos varies per texel
    return np.concatenate([back, front]), s, pts, nrm


def reference(view, pts, nrm, image, depth, **params):
    w, xy = view_weights(view, pts, nrm, depth, **params)
    colors = np.zeros((len(w), 3), np.float32)
    live = np.flatnonzero(w > 0)
    rgba = sample_bilinear(image, xy[live])
    colors[live] = rgba[:, :3]
    if image.shape[2] == 4:
        w[live] *= np.clip(rgba[:, 3], 0, 1)
    return colors, w


@pytest.mark.parametrize("ortho", [False, True])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("chunk,threads", [(1 << 16, 1), (512, 2)])
def test_kernel_matches_view_weights_and_accumulate(monkeypatch, ortho, channels, chunk, threads):
    monkeypatch.setattr(vs, "CHUNK", chunk)
    monkeypatch.setattr(vs.threads, "THREADS", threads)
    tris, s, pts, nrm = scene()
    view = ortho_view([0.3, -0.4, 5.0], [0, 0, 0], (120, 100), 3.5) if ortho else persp_view([0.3, -0.4, 5.0], [0, 0, 0], (120, 100))
    rng = np.random.default_rng(1)
    image = rng.random((100, 120, channels)).astype(np.float32)
    if channels == 4:
        image[:40, :, 3] = 0.0  # transparent band: weight 0
    depth = rasterize_view(view, tris).depth
    params = dict(power=3.0, cutoff_deg=70.0, feather_px=3.0, feather_floor=0.05)
    ref_c, ref_w = reference(view, pts, nrm, image, depth, **params)
    assert 200 < np.count_nonzero(ref_w) < len(ref_w) - 200  # the scene has seen and unseen texels

    sampler = vs.ViewSampler(view, image, depth, **params)
    texels = vs.TexelSet(pts, nrm, s.index)
    c, w = vs.project_arrays(sampler, texels)
    assert np.array_equal(w > 0, ref_w > 0)
    # float32 pixel coordinates differ by ~1e-4 px between the two (another summation order), times a
    # feather slope of 1/3 per px or a random image's slope of up to 1 per px
    np.testing.assert_allclose(w, ref_w, atol=1e-4)
    np.testing.assert_allclose(c[w > 0], ref_c[w > 0], atol=2e-4)

    size = s.size
    start = rng.random((size[1], size[0], 3)).astype(np.float32)
    start_w = np.where(rng.random((size[1], size[0])) < 0.5, 0.0, rng.random((size[1], size[0]))).astype(np.float32)
    tex, wt = start.copy(), start_w.copy()
    accumulate(tex, wt, s.index, ref_c, ref_w)
    tex2, wt2 = start.copy(), start_w.copy()
    total = vs.project_into(sampler, texels, tex2, wt2)
    np.testing.assert_allclose(wt2, wt, atol=1e-4)
    np.testing.assert_allclose(tex2, tex, atol=2e-4)
    assert total == pytest.approx(float(ref_w.sum()), rel=1e-4)


def test_texels_no_view_sees_are_left_alone():
    tris, s, pts, nrm = scene()
    view = persp_view([0, 0, -5.0], [0, 0, 0])  # from behind: every texel faces away
    depth = rasterize_view(view, tris).depth
    tex, wt = np.full((80, 96, 3), 0.25, np.float32), np.zeros((80, 96), np.float32)
    total = vs.project_into(vs.ViewSampler(view, np.ones((128, 128, 3), np.float32), depth), vs.TexelSet(pts, nrm, s.index), tex, wt)
    assert total == 0.0 and (tex == 0.25).all() and (wt == 0).all()


def test_mismatched_inputs_are_refused():
    tris, s, pts, nrm = scene()
    view = persp_view([0, 0, 5.0], [0, 0, 0])
    with pytest.raises(ValueError, match="depth map"):
        vs.ViewSampler(view, np.ones((128, 128, 3), np.float32), np.ones((64, 64), np.float32))
    with pytest.raises(ValueError, match="interpolate"):
        vs.TexelSet(pts[:-1], nrm, s.index)


@pytest.mark.parametrize("ortho", [False, True])
def test_rasterize_view_is_the_same_on_threads_and_small_chunks(monkeypatch, ortho):
    import addon.core.projection as pj

    tris, *_ = scene()
    view = ortho_view([0.3, -0.4, 5.0], [0, 0, 0], (120, 100), 3.5) if ortho else persp_view([0.3, -0.4, 5.0], [0, 0, 0], (120, 100))
    monkeypatch.setattr(vs.threads, "THREADS", 1)
    serial = rasterize_view(view, tris)
    monkeypatch.setattr(vs.threads, "THREADS", 2)
    monkeypatch.setattr(pj, "_SCANLINES", 7)  # many chunks, shared edges split across them
    threaded = rasterize_view(view, tris)
    assert np.isfinite(serial.depth).sum() > 1000
    for field in ("depth", "tri", "bary"):
        assert np.array_equal(getattr(serial, field), getattr(threaded, field))
