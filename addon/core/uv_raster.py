"""Rasterise a mesh's UV layout into texel samples: which triangle, and where in it, each texel lies.

Texture orientation is Blender's ``Image.pixels`` one: row 0 at the **bottom** (v = 0), column 0 at
u = 0; texel (col i, row j) has its centre at UV ((i + 0.5) / W, (j + 0.5) / H). A texel belongs to the
layout when its *centre* lies inside a UV triangle (edges included), so a texture far larger than the
image it is projected from still gets one sample per texel and no holes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

#: Pixels/texels produced per chunk (bounds memory: ~60 bytes each).
_CHUNK = 1 << 22
#: Slack on the inside test, in barycentric units: texel centres exactly on an edge count as inside.
_EDGE_EPS = 1e-7


@dataclass
class TexelSamples:
    """One sample per covered texel of a (W, H) texture; ``index`` is ``row * W + col``, row 0 bottom."""

    size: tuple[int, int]
    index: np.ndarray  # (N,) int64, increasing
    tri: np.ndarray  # (N,) int32
    bary: np.ndarray  # (N, 3) float32

    def covered_mask(self) -> np.ndarray:
        """(H, W) bool, row 0 at the bottom (v = 0): texels that have a sample."""
        w, h = self.size
        mask = np.zeros(h * w, dtype=bool)
        mask[self.index] = True
        return mask.reshape(h, w)

    def texel_uv(self) -> np.ndarray:
        """(N, 2) float64 UV of each sample's texel centre."""
        w, h = self.size
        return np.stack([(self.index % w + 0.5) / w, (self.index // w + 0.5) / h], axis=1)


def _chunks(counts: np.ndarray, limit: int = _CHUNK) -> list[np.ndarray]:
    """Split item indices into consecutive runs whose counts sum to about ``limit`` each."""
    cum = np.cumsum(counts)
    bounds = np.searchsorted(cum, np.arange(limit, int(cum[-1]) if len(cum) else 0, limit), side="right")
    edges = np.unique(np.concatenate([[0], bounds, [len(counts)]]))
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def edge_coefficients(ax: np.ndarray, ay: np.ndarray, inv: list[np.ndarray], ox: np.ndarray, oy: np.ndarray
                      ) -> list[list[np.ndarray]]:
    """``c[k][j]`` (T,) float64: barycentric k at ``(ox + dx, oy + dy)`` is ``c[k][0] * dx + c[k][1] * dy + c[k][2]``,
    for triangles with first corner (ax, ay) and inverse edge matrix ``inv`` = [i00, i01, i10, i11] (T,) each.

    Relative to a per-triangle origin (its bounding box corner) so float32 keeps full precision.
    One contiguous array per coefficient: the scan loops gather them per scanline and per pixel.
    """
    d0, d1 = ox - ax, oy - ay
    i00, i01, i10, i11 = inv
    c1 = [i00, i01, i00 * d0 + i01 * d1]
    c2 = [i10, i11, i10 * d0 + i11 * d1]
    c0 = [-c1[0] - c2[0], -c1[1] - c2[1], (-c1[2] - c2[2]) + 1.0]
    return [c0, c1, c2]


@dataclass
class TriangleSetup:
    """Per-triangle scan data of the triangles that cover some pixel centre, one (n,) array each: ``ids``
    their indices, ``lox``/``loy`` int64 bounding-box corner, ``spanx``/``spany`` its size; ``cols`` the
    float64 and ``coef`` the float32 ``edge_coefficients`` relative to the corner."""

    ids: np.ndarray
    lox: np.ndarray
    loy: np.ndarray
    spanx: np.ndarray
    spany: np.ndarray
    cols: list[list[np.ndarray]]
    coef: list[list[np.ndarray]]

    def barycentrics(self, local: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(3, n) float32 barycentrics of pixel centres (x, y) (int) in triangles ``ids[local]``."""
        fx = (x - np.take(self.lox, local)).astype(np.float32)
        fy = (y - np.take(self.loy, local)).astype(np.float32)
        b = np.empty((3, len(local)), dtype=np.float32)
        for k in range(3):
            np.multiply(np.take(self.coef[k][0], local), fx, out=b[k])
            b[k] += np.take(self.coef[k][1], local) * fy
            b[k] += np.take(self.coef[k][2], local)
        return b


def setup_triangles(corners: np.ndarray, size: tuple[int, int]) -> TriangleSetup | None:
    """``TriangleSetup`` of (T, 3, 2) pixel-unit corners (see ``scan_triangles``); None if none covers a pixel.
    All per-triangle arithmetic on contiguous (T,) arrays; zero-area triangles cover nothing."""
    w, h = int(size[0]), int(size[1])
    corners = np.asarray(corners, dtype=np.float64)
    x0, y0, x1, y1, x2, y2 = (np.ascontiguousarray(corners[:, k, j]) for k in range(3) for j in range(2))
    m00, m01, m10, m11 = x1 - x0, x2 - x0, y1 - y0, y2 - y0  # columns: b - a, c - a
    det = m00 * m11 - m01 * m10
    with np.errstate(invalid="ignore"):
        ok = np.abs(det) > 1e-12
        lox, loy = np.ceil(np.minimum(np.minimum(x0, x1), x2)), np.ceil(np.minimum(np.minimum(y0, y1), y2))
        hix, hiy = np.floor(np.maximum(np.maximum(x0, x1), x2)), np.floor(np.maximum(np.maximum(y0, y1), y2))
        ok &= np.isfinite(lox) & np.isfinite(loy) & np.isfinite(hix) & np.isfinite(hiy)
        ok &= (hix >= 0) & (hiy >= 0) & (lox <= w - 1) & (loy <= h - 1)
    ids = np.flatnonzero(ok)
    if not len(ids):
        return None
    lox, loy = np.clip(lox[ids], 0, w - 1), np.clip(loy[ids], 0, h - 1)
    spanx = np.clip(hix[ids], -1, w - 1) - lox + 1
    spany = np.clip(hiy[ids], -1, h - 1) - loy + 1
    keep = np.flatnonzero((spanx >= 1) & (spany >= 1))
    ids, lox, loy, spanx, spany = ids[keep], lox[keep], loy[keep], spanx[keep], spany[keep]
    if not len(ids):
        return None
    safe = det[ids]
    inv = [m11[ids] / safe, -m01[ids] / safe, -m10[ids] / safe, m00[ids] / safe]
    cols = edge_coefficients(x0[ids], y0[ids], inv, lox, loy)
    return TriangleSetup(ids, lox.astype(np.int64), loy.astype(np.int64), spanx.astype(np.int64), spany.astype(np.int64),
                         cols, [[c.astype(np.float32) for c in row] for row in cols])


def scan_triangles(corners: np.ndarray, size: tuple[int, int], bary: bool = True
                   ) -> "list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]":
    """Chunks of (triangle, flat pixel index, (3, n) float32 barycentrics) for every pixel centre inside.

    ``corners`` (T, 3, 2) are in pixel units where pixel (i, j)'s centre is at integer (i, j); pixels
    are ``j * W + i``. Chunks, and the pixels within one, come in increasing triangle order.
    Barycentrics are one row per corner (contiguous, for the per-fragment arithmetic that follows);
    ``bary=False`` leaves them out (None). Shared by the UV and view rasterisers.
    """
    setup = setup_triangles(corners, size)
    return [] if setup is None else _scan(setup, int(size[0]), bary)


def span_parts(setup: TriangleSetup, rows: int = _CHUNK // 16) -> list[np.ndarray]:
    """Runs of triangles (local indices) of about ``rows`` scanlines each, for ``span_chunk``."""
    return _chunks(setup.spany, rows)


def span_chunk(setup: TriangleSetup, part: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(local triangle index into ``setup.ids``, dx, dy, flat pixel index) of every pixel centre inside the
    triangles ``part``, (dx, dy) (int64) relative to the triangle's bounding-box corner; in triangle order."""
    cols, lox, loy, spanx, spany = setup.cols, setup.lox, setup.loy, setup.spanx, setup.spany
    rows = spany[part]
    r = np.repeat(part, rows)
    dy = np.arange(int(rows.sum()), dtype=np.int64) - np.repeat(np.cumsum(rows) - rows, rows)
    width = np.take(spanx, r)
    first = np.zeros(len(r))
    last = (width - 1).astype(np.float64)
    for k in range(3):  # the span of x where edge function k >= -eps on this row
        ak = np.take(cols[k][0], r)
        rest = np.take(cols[k][1], r) * dy
        rest += np.take(cols[k][2], r)
        rest += _EDGE_EPS
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = -rest / ak
        pos, neg = ak > 0, ak < 0
        np.maximum(first, np.ceil(cross), out=first, where=pos)
        np.minimum(last, np.floor(cross), out=last, where=neg)
        last[(ak == 0) & (rest < 0)] = -1.0
    np.clip(first, 0, width, out=first)
    np.clip(last, -1, width - 1, out=last)
    counts = np.maximum(last - first + 1, 0).astype(np.int64)
    # pixels of each row span, in triangle order
    dx = np.arange(int(counts.sum()), dtype=np.int64)
    dx -= np.repeat(np.cumsum(counts) - counts - first.astype(np.int64), counts)
    t = np.repeat(r, counts)
    dyq = np.repeat(dy, counts)
    pix = np.take(loy, t)
    pix += dyq
    pix *= w
    pix += np.take(lox, t)
    pix += dx
    return t, dx, dyq, pix


def scan_spans(setup: TriangleSetup, w: int) -> "Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]":
    """``span_chunk`` of each of ``span_parts``: every pixel centre inside, in increasing triangle order."""
    for part in span_parts(setup):
        yield span_chunk(setup, part, w)


def _scan(setup: TriangleSetup, w: int, bary: bool) -> "list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]":
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    coef = setup.coef
    for t, dx, dy, pix in scan_spans(setup, w):
        b = None
        if bary:
            fx, fy = dx.astype(np.float32), dy.astype(np.float32)
            b = np.empty((3, len(t)), dtype=np.float32)
            for k in range(3):
                np.multiply(np.take(coef[k][0], t), fx, out=b[k])
                b[k] += np.take(coef[k][1], t) * fy
                b[k] += np.take(coef[k][2], t)
        out.append((setup.ids[t], pix, b))
    return out


def rasterize_uv(uv: np.ndarray, size: tuple[int, int]) -> TexelSamples:
    """Texel samples of the (T, 3, 2) UV triangles in a (W, H) texture (row 0 bottom).

    Scanline conversion vectorised over triangles: each (triangle, row) pair gets its span of texel
    centres from the three edge functions, and the spans are enumerated with ``np.repeat`` (chunked).
    Where islands overlap, the triangle with the **highest index** wins the texel. Triangles with zero
    UV area cover nothing. Barycentrics are computed for the winners only, once the owners are known.
    """
    w, h = int(size[0]), int(size[1])
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 3 or uv.shape[1:] != (3, 2):
        raise ValueError(f"uv must be (T, 3, 2) per-corner UVs, got shape {uv.shape}")
    corners = uv * np.array([w, h]) - 0.5
    owner = np.full(w * h, -1, dtype=np.int32)
    setup = setup_triangles(corners, (w, h))
    for t, pix, _ in [] if setup is None else _scan(setup, w, bary=False):
        np.maximum.at(owner, pix, t.astype(np.int32))  # exact "highest index wins", whatever numpy's write order
    index = np.flatnonzero(owner >= 0)
    tri = owner[index]
    if setup is None or not len(index):
        return TexelSamples((w, h), index.astype(np.int64), tri, np.zeros((len(index), 3), np.float32))
    local_of = np.zeros(len(uv), dtype=np.intp)
    local_of[setup.ids] = np.arange(len(setup.ids))  # winners always have a setup
    row = index // w
    b = setup.barycentrics(np.take(local_of, tri), index - row * w, row)
    np.clip(b, 0.0, 1.0, out=b)
    total = b[0] + b[1]
    total += b[2]
    b /= total
    return TexelSamples((w, h), index.astype(np.int64), tri, np.ascontiguousarray(b.T))


def interpolate(samples: TexelSamples, corner_values: np.ndarray) -> np.ndarray:
    """(N, C) float32 barycentric interpolation of per-corner (T, 3, C) values (positions, normals) at each texel."""
    corner_values = np.asarray(corner_values, dtype=np.float32)
    if corner_values.ndim == 2:
        corner_values = corner_values[:, :, None]
    return np.einsum("nkc,nk->nc", np.take(corner_values, samples.tri, axis=0), samples.bary)
