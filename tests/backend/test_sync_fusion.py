"""Texture-space fusion (backend/pipelines/sync/fusion.py) against a direct reference, and the
correspondence reader against the add-on's writer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.pipelines.sync import wire
from backend.pipelines.sync.fusion import TexelMap, annealed_exponent, bake

# two views of 2x2 pixels over 3 texels; -1 is background
INDEX = np.array([[[0, 1], [-1, 2]],
                  [[1, 1], [2, -1]]], np.int32)
WEIGHT = np.array([[[1.0, 0.5], [0.0, 1.0]],
                   [[0.25, 0.25], [0.8, 0.0]]], np.float32)


def reference_mean(values: np.ndarray, exponent: float) -> dict[int, np.ndarray]:
    """Per texel, the weighted mean of every pixel that sees it, by plain loops."""
    num: dict[int, np.ndarray] = {}
    den: dict[int, float] = {}
    for v in range(INDEX.shape[0]):
        for y in range(2):
            for x in range(2):
                t = int(INDEX[v, y, x])
                if t < 0:
                    continue
                w = float(WEIGHT[v, y, x]) ** exponent
                num[t] = num.get(t, 0) + w * values[v, :, y, x]
                den[t] = den.get(t, 0.0) + w
    return {t: num[t] / den[t] for t in num if den[t] > 0}


@pytest.mark.parametrize("exponent", [1.0, 3.0])
def test_a_texel_seen_by_two_views_gets_their_weighted_mean(exponent) -> None:  # noqa: ANN001
    values = np.random.default_rng(0).normal(size=(2, 4, 2, 2)).astype(np.float32)
    tmap = TexelMap(INDEX, WEIGHT, texels=3)
    tex, wsum = tmap.scatter(torch.from_numpy(values), exponent)
    ref = reference_mean(values, exponent)
    for t, mean in ref.items():
        np.testing.assert_allclose(tex[t].numpy(), mean, rtol=1e-5, atol=1e-6)
    # texel 1: view 0 at 0.5, view 1 twice at 0.25 -> weights 0.5^e, 0.25^e, 0.25^e
    assert wsum[1].item() == pytest.approx(0.5 ** exponent + 2 * 0.25 ** exponent)
    fused = tmap.fuse(torch.from_numpy(values), exponent).numpy()
    for v in range(2):
        for y in range(2):
            for x in range(2):
                t = int(INDEX[v, y, x])
                want = ref[t] if t >= 0 else values[v, :, y, x]  # background keeps its own values
                np.testing.assert_allclose(fused[v, :, y, x], want, rtol=1e-5, atol=1e-6)


def test_a_texel_nobody_weighs_leaves_its_pixels_alone() -> None:
    index = np.array([[[0, 1]]], np.int32)
    weight = np.array([[[1.0, 0.0]]], np.float32)  # texel 1 is seen only past the cut-off
    x = torch.tensor([[[[2.0, 5.0]]]])
    out = TexelMap(index, weight, texels=2).fuse(x)
    assert out.tolist() == [[[[2.0, 5.0]]]]


def test_texture_space_noise_is_shared_by_pixels_of_one_texel_and_unit_variance() -> None:
    rng = np.random.default_rng(1)
    n, h, w, m = 4, 32, 32, 600
    index = rng.integers(-1, m, size=(n, h, w)).astype(np.int32)
    tmap = TexelMap(index, np.ones((n, h, w), np.float32), texels=m)
    noise = tmap.render_noise(4, torch.Generator().manual_seed(0)).numpy()
    flat = noise.transpose(0, 2, 3, 1).reshape(-1, 4)
    ids = index.reshape(-1)
    for t in (0, 17, 599):  # every pixel of one texel, in any view, holds the same draw
        rows = flat[ids == t]
        assert len(rows) > 1 and np.allclose(rows, rows[0])
    bg = flat[ids < 0]
    assert len(np.unique(bg[:, 0])) == len(bg)  # background: independent draws
    assert abs(flat.std() - 1.0) < 0.05 and abs(flat.mean()) < 0.05


def test_annealed_exponent_rises_linearly() -> None:
    assert annealed_exponent(0, 5) == 1.0 and annealed_exponent(4, 5) == 6.0
    assert annealed_exponent(2, 5, 2.0, 4.0) == 3.0 and annealed_exponent(0, 1) == 1.0


def test_bake_of_two_orthographic_views_of_a_plane() -> None:
    from addon.core.projection import rasterize_view
    from addon.core.sync_views import PackedTexels, view_correspondence
    from addon.core.uv_raster import rasterize_uv
    from tests.addon_core.projection_scenes import normals_of, ortho_view, plane_z

    tri, uv = plane_z(0.0, 1.0)
    packed = PackedTexels([(uv, rasterize_uv(uv, (8, 8)))])
    views = [ortho_view((0, 0, 5), (0, 0, 0), res=(8, 8), scale=2.0),  # head-on: cos 1
             ortho_view((0, -5 * np.sqrt(3), 5), (0, 0, 0), res=(8, 8), scale=4.0)]  # 60 degrees: cos 0.5
    idx, wts = zip(*(view_correspondence(v, rasterize_view(v, tri), packed, tri, normals_of(tri)) for v in views))
    tmap = TexelMap(np.stack(idx), np.stack(wts), packed.count)
    images = torch.stack([torch.full((3, 8, 8), 0.2), torch.full((3, 8, 8), 0.8)])
    tex, wsum = bake(tmap, images, exponent=2.0)
    both = wsum > 1.0  # seen by the head-on view (1) and the slanted one (0.25)
    assert both.sum() > 4
    np.testing.assert_allclose(tex[both].numpy(), (0.2 * 1 + 0.8 * 0.25) / 1.25, atol=1e-3)
    np.testing.assert_allclose(wsum[both].numpy(), 1.25, atol=1e-3)


def test_reader_agrees_with_the_addon_writer_and_refuses_damage() -> None:
    from addon.core.sync_views import Level, encode

    rng = np.random.default_rng(2)
    idx = rng.integers(-1, 40, size=(3, 6, 5)).astype(np.int32)
    w = np.where(idx >= 0, rng.random((3, 6, 5)), 0).astype(np.float32)
    for compress in (True, False):
        got = wire.parse(encode([Level("latent", idx, w, 40), Level("image", idx, w, 40)], power=2.0, compress=compress))
        assert got.views == 3 and got.power == 2.0 and set(got.levels) == {"latent", "image"}
        np.testing.assert_array_equal(got.levels["image"].index, idx)
        np.testing.assert_allclose(got.levels["latent"].weight, w, atol=1e-3)
    data = encode([Level("latent", idx, w, 40)], compress=False)
    with pytest.raises(ValueError, match="SCCR"):
        wire.parse(b"\x89PNG" + data[4:])
    with pytest.raises(ValueError, match="ends inside"):
        wire.parse(data[:-40])
    with pytest.raises(ValueError, match="more than"):
        wire.parse(data, max_pixels=10)
