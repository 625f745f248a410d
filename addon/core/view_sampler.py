"""The per-texel work of projecting one view onto UV textures, streamed in cache-sized chunks over threads.

``ViewSampler`` prepares a view once — its feather map, depth plane and one packed table of colour +
feather (+ alpha) per pixel — so every target texture projected from that view shares it.
``project_into`` then streams a target's texels (``TexelSet``, float32 rows) in chunks of ``CHUNK``, keeps only the texels that face
the camera within the cut-off, land in the image and are not occluded (each test shrinks the arrays
the next one works on), reads all their channels with 4 gathers of packed rows, and blends them straight into the texture (no (N, 3) colour array). Chunks own
disjoint texels, so they run on ``threads.THREADS`` threads: numpy releases the GIL inside its loops.

The maths is ``texture_blend.view_weights`` / ``project_image`` / ``accumulate`` exactly (same formulas,
float32); ``tests/addon_core/test_texture_blend.py`` checks both agree. View images are row 0 top,
textures row 0 bottom, colours sRGB 0..1 as given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import threads
from .projection import CameraView
from .feather import DEFAULT_EDGE_THRESHOLD, FEATHER_FLOOR, feather_map

#: Texels per chunk: large enough that numpy's per-call overhead (~60 calls a chunk) is small, small
#: enough (~10 MB of temporaries) to split the work evenly over threads.
CHUNK = 1 << 16


class ViewSampler:
    """One view, one image and its planar depth map (row 0 top), prepared for ``project_into``.

    Keyword parameters are those of ``texture_blend.view_weights``; ``feather``: the depth map's
    ``feather_map`` if already computed (it depends on neither image nor target)."""

    def __init__(self, view: CameraView, image: np.ndarray, depth_map: np.ndarray, feather: np.ndarray | None = None,
                 /, *, power: float = 2.0,
                 cutoff_deg: float = 80.0, feather_px: float = 8.0, depth_tolerance: float = 0.01,
                 edge_threshold: float = DEFAULT_EDGE_THRESHOLD, feather_floor: float = FEATHER_FLOOR) -> None:
        w, h = view.resolution
        dmap = np.ascontiguousarray(depth_map, dtype=np.float32)
        if dmap.shape != (h, w):
            raise ValueError(f"depth map is {dmap.shape[::-1]} (W, H) but the view is {w}x{h}: rasterise it for this view")
        img = np.asarray(image, dtype=np.float32)
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"image must be (H, W, 3) or (H, W, 4), got {img.shape}")
        if img.shape[:2] != (h, w):
            raise ValueError(f"image is {img.shape[1]}x{img.shape[0]} but the view is {w}x{h}")
        if feather is None:
            feather = feather_map(dmap, feather_px, edge_threshold)
        self.view, self.size = view, (w, h)
        self.power, self.depth_tolerance = float(power), float(depth_tolerance)
        self.cos_min = np.float32(max(math.cos(math.radians(cutoff_deg)), 1e-6))
        self.floor = np.float32(feather_floor)
        self.alpha = img.shape[2] == 4
        self.depth = dmap.reshape(-1)
        # one 16- or 32-byte row per pixel: r, g, b, feather (+ alpha, padding); a tap is one gather of rows
        self.channels = 5 if self.alpha else 4
        table = np.zeros((h * w, 8 if self.alpha else 4), dtype=np.float32)
        table[:, :3] = img[:, :, :3].reshape(-1, 3)
        table[:, 3] = np.asarray(feather, dtype=np.float32).reshape(-1)
        if self.alpha:
            table[:, 4] = img[:, :, 3].reshape(-1)
        self.table = table.view(np.complex128)  # (h * w, 1 or 2): whole rows for np.take's fast copy
        m = view.projection @ view.world_to_camera  # the rows project32 uses: clip x, y, w and planar depth
        self.rows = np.concatenate([m[[0, 1, 3]], -view.world_to_camera[2:3]], axis=0).astype(np.float32)
        self.ortho = view.is_orthographic
        self.toward = (view.view_axis() if self.ortho else view.eye()).astype(np.float32)

    def _affine(self, k: int, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
        r = self.rows[k]
        out = px * r[0]
        out += py * r[1]
        out += pz * r[2]
        out += r[3]
        return out

    def weigh(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For a chunk ``f`` (9, C) of ``TexelSet.features``: the positions (k,) of texels with weight > 0,
        their weights (k,) float32 and colours (3, k) float32 (``view_weights`` × alpha, ``project_image``)."""
        px, py, pz, nx, ny, nz, nn, n_p, pp = f
        e = self.toward
        facing = nx * e[0]
        facing += ny * e[1]
        facing += nz * e[2]
        if self.ortho:
            norm2 = nn
        else:
            facing -= n_p
            pe = px * e[0]
            pe += py * e[1]
            pe += pz * e[2]
            dist2 = pp - 2.0 * pe
            dist2 += np.float32(e @ e)
            np.maximum(dist2, np.float32(1e-30), out=dist2)
            norm2 = nn * dist2
        np.maximum(norm2, np.float32(1e-30), out=norm2)
        cos = facing / np.sqrt(norm2)
        live = np.flatnonzero(cos >= self.cos_min)  # implies facing > 0
        if not len(live):
            return live, np.zeros(0, np.float32), np.zeros((3, 0), np.float32)
        px, py, pz = np.take(px, live), np.take(py, live), np.take(pz, live)
        w, h = self.size
        wcl = self._affine(2, px, py, pz)
        wcl[wcl <= 0] = np.nan
        x = self._affine(0, px, py, pz)
        x /= wcl
        x += 1.0
        x *= 0.5 * w
        y = self._affine(1, px, py, pz)
        y /= wcl
        y = (1.0 - y) * np.float32(0.5 * h)
        depth = self._affine(3, px, py, pz)
        with np.errstate(invalid="ignore"):
            keep = np.flatnonzero((x >= 0) & (x < w) & (y >= 0) & (y < h) & (depth > 0))
        live, x, y, depth, cos = live[keep], x[keep], y[keep], depth[keep], np.take(cos, live[keep])
        # bilinear taps (as projection.bilinear_taps); xy are inside the image here
        x -= np.float32(0.5)
        y -= np.float32(0.5)
        np.clip(x, 0, w - 1, out=x)
        np.clip(y, 0, h - 1, out=y)
        x0 = np.minimum(x.astype(np.intp), max(w - 2, 0))  # intp: np.take converts other index types
        y0 = np.minimum(y.astype(np.intp), max(h - 2, 0))
        fx: np.ndarray = x - x0.astype(np.float32)
        fy: np.ndarray = y - y0.astype(np.float32)
        i00 = y0 * w
        i00 += x0
        dx, dy = (1 if w > 1 else 0), (w if h > 1 else 0)
        # occlusion: the depth map read bilinearly, or the farthest surface of the 4 at silhouettes
        d00, d01, d10, d11 = (np.take(self.depth, i00 + k) if k else np.take(self.depth, i00) for k in (0, dx, dy, dx + dy))
        with np.errstate(invalid="ignore"):
            seen = (d00 * (1 - fx) + d01 * fx) * (1 - fy) + (d10 * (1 - fx) + d11 * fx) * fy
        odd = np.flatnonzero(~np.isfinite(seen))
        if len(odd):
            stack = np.stack([d00[odd], d01[odd], d10[odd], d11[odd]])
            far = np.where(np.isfinite(stack), stack, -np.inf).max(axis=0)
            far[~np.isfinite(far)] = np.inf
            seen[odd] = far
        vis = np.flatnonzero(depth <= seen * (1.0 + self.depth_tolerance))
        live, i00, fx, fy, cos = live[vis], i00[vis], fx[vis], fy[vis], cos[vis]
        w11 = fx * fy
        w01, w10 = fx - w11, fy - w11
        w00 = 1.0 - fx - w10
        acc = np.empty((self.channels, len(live)), dtype=np.float32)  # channels x texels: contiguous rows
        tmp = np.empty_like(acc)
        for tap, (k, wk) in enumerate(((0, w00), (dx, w01), (dy, w10), (dx + dy, w11))):
            rows = np.take(self.table, i00 + k if k else i00, axis=0).view(np.float32)
            np.multiply(rows[:, :self.channels].T, wk, out=tmp if tap else acc)
            if tap:
                acc += tmp
        weight = cos * cos if self.power == 2 else cos if self.power == 1 else np.power(cos, np.float32(self.power))
        weight *= np.maximum(acc[3], self.floor)
        if self.alpha:
            weight *= np.clip(acc[4], 0.0, 1.0)
        pos = np.flatnonzero(weight > 0)  # accumulate skips weight 0 (alpha 0, feather_floor 0)
        if len(pos) == len(weight):
            return live, weight, acc[:3]
        return live[pos], weight[pos], acc[:3, pos]


class TexelSet:
    """A target's texels laid out for ``project_into``, built once and reused by every view: ``features``
    (9, N) float32 rows px, py, pz, nx, ny, nz, |n|², n·p, |p|² (world space; contiguous rows, so the
    per-view arithmetic runs on contiguous memory), and ``index`` (N,) their flat texel indices."""

    def __init__(self, points: np.ndarray, normals: np.ndarray, index: np.ndarray) -> None:
        if len(points) != len(index) or len(normals) != len(index):
            raise ValueError(f"{len(points)} points, {len(normals)} normals for {len(index)} texel samples: "
                             "interpolate them from the same samples")
        f = np.empty((9, len(index)), dtype=np.float32)
        f[0:3] = np.asarray(points, dtype=np.float32).T
        f[3:6] = np.asarray(normals, dtype=np.float32).T
        f[6] = np.einsum("ij,ij->j", f[3:6], f[3:6])
        f[7] = np.einsum("ij,ij->j", f[3:6], f[0:3])
        f[8] = np.einsum("ij,ij->j", f[0:3], f[0:3])
        self.features = f
        self.index = np.asarray(index)

    def __len__(self) -> int:
        return len(self.index)

    def chunks(self) -> int:
        return (len(self.index) + CHUNK - 1) // CHUNK


def _run(chunks: int, work: Callable[[int], float]) -> float:
    return float(sum(threads.map_chunks(work, range(chunks))))


def project_into(sampler: ViewSampler, texels: TexelSet, color_tex: np.ndarray, weight_tex: np.ndarray) -> float:
    """Blend ``sampler``'s view into a texture in place, as ``project_image`` then ``accumulate`` would;
    returns the sum of the weights it gave. Textures are C-contiguous (H, W, C) and (H, W), row 0 bottom."""
    if not (color_tex.flags.c_contiguous and weight_tex.flags.c_contiguous):
        raise ValueError("color_tex and weight_tex must be C-contiguous arrays (use np.ascontiguousarray)")
    if color_tex.dtype != np.float32 or weight_tex.dtype != np.float32:
        raise ValueError("color_tex and weight_tex must be float32")
    channels = color_tex.shape[-1]
    # whole texels as single items: a gather/scatter of (k,) 12- or 16-byte items is ~7x faster than [idx, :3]
    ct = color_tex.reshape(-1, channels).view(np.dtype((np.void, 4 * channels))).reshape(-1)
    wt = weight_tex.reshape(-1)

    def work(c: int) -> float:
        a, b = c * CHUNK, min((c + 1) * CHUNK, len(texels))
        live, w_new, new = sampler.weigh(texels.features[:, a:b])
        if not len(live):
            return 0.0
        idx = np.take(texels.index[a:b], live)
        w_old = np.take(wt, idx)
        total = w_old + w_new
        keep = w_old / total
        rows = np.take(ct, idx).view(np.float32).reshape(len(idx), channels)
        old = rows[:, :3].T
        new -= old  # c_old + (c - c_old) * w / (w_old + w), as accumulate
        new *= 1.0 - keep
        new += old
        rows[:, :3] = new.T
        np.put(ct, idx, rows.view(ct.dtype).reshape(-1))
        np.put(wt, idx, total)
        return float(w_new.sum(dtype=np.float64))

    return _run(texels.chunks(), work)


def project_arrays(sampler: ViewSampler, texels: TexelSet) -> tuple[np.ndarray, np.ndarray]:
    """Colours (N, 3) and weights (N,) float32 of every texel, zero where unseen (``project_image``'s result)."""
    colors = np.zeros((len(texels), 3), dtype=np.float32)
    weights = np.zeros(len(texels), dtype=np.float32)

    def work(c: int) -> float:
        a, b = c * CHUNK, min((c + 1) * CHUNK, len(texels))
        live, w, rgb = sampler.weigh(texels.features[:, a:b])
        weights[a:b][live] = w
        colors[a:b][live] = rgb.T
        return 0.0

    _run(texels.chunks(), work)
    return colors, weights
