"""A small scene for texture_sync tests and bench/sync_views.py: an open box (floor + two walls) seen by
N cameras around it, with the correspondence part the add-on would send (addon/core/sync_views)."""

from __future__ import annotations

import numpy as np

from addon.core.projection import rasterize_view
from addon.core.sync_views import Level, PackedTexels, at_resolution, encode, view_correspondence
from addon.core.uv_raster import rasterize_uv
from tests.addon_core.projection_scenes import normals_of, persp_view, quad


def box() -> list[tuple[np.ndarray, np.ndarray]]:
    """(tri_world, tri_uv) of three targets: a floor and two walls meeting at a corner."""
    floor = quad(np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float))
    back = quad(np.array([[-1, 1, 0], [1, 1, 0], [1, 1, 1.2], [-1, 1, 1.2]], float))
    side = quad(np.array([[-1, -1, 0], [-1, 1, 0], [-1, 1, 1.2], [-1, -1, 1.2]], float))
    return [floor, back, side]


def views(n: int, size: int) -> list:
    """``n`` cameras on an arc in front of the open sides (from -y round to +x), looking at the corner."""
    angles = np.radians(np.linspace(-100.0, 10.0, n))
    return [persp_view((4.5 * np.cos(a), 4.5 * np.sin(a), 2.2 + 0.4 * np.cos(2 * a)), (0, 0, 0.4),
                       res=(size, size), lens=60.0) for a in angles]


def correspondence(n: int, size: int, factor: int = 8, latent_texture: int = 8, texture: int = 64,
                   compress: bool = True) -> tuple[bytes, dict]:
    """The encoded part for ``n`` views of ``size``² (latent grid ``size / factor``) and what built it."""
    targets = box()
    tri = np.concatenate([t for t, _ in targets])
    normals = normals_of(tri)
    levels, maps = [], {}
    for name, res, tex in (("latent", size // factor, latent_texture), ("image", size, texture)):
        packed = PackedTexels([(uv, rasterize_uv(uv, (tex, tex))) for _, uv in targets])
        idx, wts = [], []
        for v in views(n, size):
            vv = at_resolution(v, (res, res))
            i, w = view_correspondence(vv, rasterize_view(vv, tri), packed, tri, normals)
            idx.append(i)
            wts.append(w)
        levels.append(Level(name, np.stack(idx), np.stack(wts), packed.count))
        maps[name] = (np.stack(idx), np.stack(wts), packed.count)
    return encode(levels, power=1.0, compress=compress), maps


def view_inputs(data: bytes, n: int, size: int) -> dict:
    """A texture_sync job's inputs: random depth images ``depth0..`` for ``n`` views and the
    correspondence part ``corr``."""
    rng = np.random.default_rng(0)
    out: dict = {f"depth{v}": rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for v in range(n)}
    out["corr"] = data
    return out
